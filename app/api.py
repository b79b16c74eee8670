"""`/api`: the JSON the map pages draw — heat, scorecards, the commander's panel, overlays.

Every parameter is checked here (parsed by layers.queries.params) and a bad one raises
ParamError (400) or NotFound (404) naming the parameter and the value;
the query layer (layers.queries: heat, scorecards, planner, geojson) does the querying.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify, request, url_for

from app import auth, db, export
from app.capabilities import EXPORT, does, logged_in, reads
from app.config import Settings
from app.errors import NotFound, ServiceUnavailable
from app.openapi import (
    CSV,
    GEOJSON,
    Param,
    contribute,
    filter_params,
    names,
    ok,
    operation,
    path_param,
    time_params,
)
from etl.aggregates import AggregatesZoneError, check_zone, load_rates
from layers import LAYERS, Layer, get_layer
from layers.queries import export as exports
from layers.queries import features as features_query
from layers.queries import geojson, params, scorecards, slices
from layers.queries import heat as heat_query
from layers.queries import planner as planner_query
from layers.queries import units as units_query
from layers.queries.params import refusal
from layers.queries.window import Window
from layers.registry import overlay_layers
from layers.units import UNIT_KINDS

bp = Blueprint("api", __name__, url_prefix="/api")

MAX_WINDOW_DAYS = 1096  # three years, a leap day included
DEFAULT_WINDOW_DAYS = 30
LATEST_LIMIT = 200
LATEST_MAX = 500
MAX_TEXT = 100
FIRST_DATE = dt.date(2000, 1, 1)
LAST_DATE = dt.date(2099, 12, 31)
STREET = re.compile(r"[0-9]{9}")


# --- the query parameters of each endpoint: checked here, documented in /api/openapi.json ---

DATE_SCHEMA = {"type": "string", "format": "date"}
STREET_PARAM = Param(
    "street",
    "街道代码（9 位）street code",
    {"type": "string", "pattern": "^[0-9]{9}$"},
    "110102007",
)
MONTH_PARAM = Param(
    "month",
    "月份 YYYY-MM，默认本月 month (default: this month)",
    {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
    "2026-10",
)
QUERY: dict[str, tuple[Param, ...]] = {
    "api.heat": (
        Param(
            "level",
            "聚合级别 aggregation level",
            {"type": "string", "enum": ["street", "community", "grid", "cell"], "default": "grid"},
            "street",
        ),
        Param(
            "since",
            "起始日期（含）first day, inclusive (default: until − 29 days)",
            DATE_SCHEMA,
            "2026-10-01",
        ),
        Param(
            "until", "结束日期（含）last day, inclusive (default: today)", DATE_SCHEMA, "2026-10-31"
        ),
        Param("category", "诉求类别 category", {"type": "string", "maxLength": 100}, "噪声扰民"),
        STREET_PARAM,
    ),
    "api.streets": (MONTH_PARAM,),
    "api.command_summary": (MONTH_PARAM,),
    "api.latest": (
        Param(
            "since",
            "起始时刻 ISO 8601（默认 24 小时前）since this instant (default: 24 h ago)",
            {"type": "string", "format": "date-time"},
            "2026-11-01T08:00:00+08:00",
        ),
        Param(
            "limit",
            "最多条数 at most this many (default 200)",
            {"type": "integer", "minimum": 1, "maximum": 500, "default": 200},
            "50",
        ),
    ),
    "api.planner": (
        Param("as_of", "截至日期 as of this day (default: today)", DATE_SCHEMA, "2026-06-30"),
        Param("kind", "类型 kind", {"type": "string", "maxLength": 100}, "农贸市场"),
        STREET_PARAM,
    ),
    "api.layer_geojson": (STREET_PARAM,),
    "api.layers": (),
    "api.units": (
        STREET_PARAM,
        Param(
            "kind",
            "单位类型 kind: centre 街道中心, department 七大部, station 科站队所,"
            " district_department 区级部门",
            {"type": "string", "enum": list(UNIT_KINDS)},
            "station",
        ),
    ),
}


def feature_params(layer: Layer) -> tuple[Param, ...]:
    """The parameters of /api/layers/<layer>/features: format, then the slice's filters."""
    out = [
        Param(
            "f",
            "格式 format (gpkg: GeoPackage)",
            {"type": "string", "enum": ["geojson", "json", "csv", "gpkg"]},
            "csv",
        ),
        Param(
            "header",
            "CSV 表头：字段名或中文标签 CSV header: field names or Chinese labels",
            {"type": "string", "enum": list(CSV_HEADERS)},
            "label",
        ),
        Param(
            "bbox",
            "范围 minx,miny,maxx,maxy (CRS84)",
            {"type": "array", "minItems": 4, "maxItems": 4, "items": {"type": "number"}},
            "116.35,39.90,116.37,39.92",
            {"style": "form", "explode": False},
        ),
        Param(
            "limit",
            "最多导出行数（按主键顺序）at most this many rows, in key order",
            {"type": "integer", "minimum": 1},
            "10",
        ),
    ]
    return (*out, *time_params(layer), *filter_params(layer))


@bp.before_request
def _declared_params_only() -> None:
    """400 for any query parameter the endpoint does not declare (the declarations are also
    what /api/openapi.json publishes)."""
    endpoint = request.endpoint or ""
    if endpoint == "api.features":
        layer = get_layer((request.view_args or {}).get("layer", ""))
        allowed = names(feature_params(layer))
    elif endpoint in QUERY:
        allowed = names(QUERY[endpoint])
    else:
        return
    params.check_params(request.args, allowed)


def _settings() -> Settings:
    settings: Settings = current_app.config["BLOCKDATA_SETTINGS"]
    return settings


def _now() -> dt.datetime:
    """The app's clock (injectable: `Settings.clock`) in the district's time zone: every
    "today", default window and month of /api comes from it."""
    return _settings().now()


ZONE_CHECKED = "blockdata.aggregates_zone_checked"


def _aggregates(conn: sa.Connection) -> sa.Connection:
    """`conn`, once the aggregates are known to be keyed on the configured zone's days
    (checked until it holds, then once per app); 503 naming the fix otherwise."""
    if not current_app.extensions.get(ZONE_CHECKED):
        try:
            check_zone(conn, _settings().tz)
        except AggregatesZoneError as exc:
            raise ServiceUnavailable(str(exc), built=exc.built, configured=exc.wanted) from None
        current_app.extensions[ZONE_CHECKED] = True
    return conn


def _month(today: dt.date) -> dt.date:
    return params.parse_month(request.args.get("month"), today=today, first=FIRST_DATE)


def _text(name: str) -> str | None:
    """An optional free-text filter (category, kind): trimmed, no control characters."""
    return params.optional_text(request.args, name, MAX_TEXT)


def _street(value: str, name: str) -> str:
    """A street code: nine digits (else 400) of a street in the database (else 404)."""
    if not STREET.fullmatch(value):
        raise refusal(name, value, "街道代码应为 9 位数字", "street code must be 9 digits")
    if not scorecards.street_exists(db.connection(), value):
        raise NotFound(f"未知街道 unknown street: {name}={value!r}", parameter=name, value=value)
    return value


def _street_filter() -> str | None:
    """The optional `street` parameter."""
    value = request.args.get("street")
    return _street(value, "street") if value else None


def _choice(name: str, choices: tuple[str, ...], default: str) -> str:
    value = request.args.get(name) or default
    if value not in choices:
        raise refusal(name, value, "取值无效", f"must be one of {', '.join(choices)}")
    return value


@bp.get("/heat/<layer>")
@reads(url_layer="layer")
def heat(layer: str) -> Response:
    """Requests per street, community, grid or 100 m cell over a window of days."""
    if get_layer(layer).name != "service_requests":
        raise NotFound(
            f"该图层没有热力聚合 no heat aggregates for layer: {layer!r} (only service_requests)",
            layer=layer,
        )
    level = _choice("level", heat_query.LEVELS, "grid")
    since, until = params.parse_days(
        request.args,
        today=_now().date(),
        default_days=DEFAULT_WINDOW_DAYS,
        max_days=MAX_WINDOW_DAYS,
        first=FIRST_DATE,
        last=LAST_DATE,
    )
    window = Window(since, until)
    category = _text("category")
    street = _street_filter()
    text = heat_query.heat_json(_aggregates(db.connection()), level, window, category, street)
    return Response(text, mimetype="application/json")


@bp.get("/streets")
@reads("streets", "service_requests")
def streets() -> Response:
    """The district overview: every street's scorecard for a month, and the totals."""
    now = _now()
    month = _month(now.date())
    principal = auth.current()
    whole = principal is None or principal.zone == "*"
    conn = _aggregates(db.connection())
    return jsonify(scorecards.streets_overview(conn, month, now, load_rates(), whole=whole))


@bp.get("/command/<street_code>/summary")
@reads("streets", "service_requests")
def command_summary(street_code: str) -> Response:
    """The commander's panel for one street."""
    street = _street(street_code, "street_code")
    now = _now()
    month = _month(now.date())
    conn = _aggregates(db.connection())
    summary = scorecards.command_summary(conn, street, month, now.date(), now, load_rates())
    return jsonify(summary)


def _instant(name: str, default: dt.datetime) -> dt.datetime:
    """An ISO 8601 instant; without an offset it is local time in the district's zone."""
    return params.parse_since(
        request.args.get(name),
        name,
        default=default,
        zone=_settings().zone,
        first=FIRST_DATE,
        last=LAST_DATE,
    )


def _limit() -> int:
    return params.parse_count(request.args.get("limit"), default=LATEST_LIMIT, maximum=LATEST_MAX)


@bp.get("/command/<street_code>/latest")
@reads("service_requests")
def latest(street_code: str) -> Response:
    """The street's latest requests as GeoJSON, for a live layer that polls."""
    street = _street(street_code, "street_code")
    since = _instant("since", _now() - dt.timedelta(hours=24))
    response = jsonify(geojson.latest(db.connection(), street, since, _limit()))
    response.mimetype = "application/geo+json"
    return response


@bp.get("/planner")
@reads("relocation_targets", "renovation_projects")
def planner() -> Response:
    """Renovation projects and relocation targets as they stood on a date."""
    today = _now().date()
    as_of = params.parse_day(
        request.args.get("as_of"), "as_of", default=today, first=FIRST_DATE, last=LAST_DATE
    )
    kind = _text("kind")
    street = _street_filter()
    return jsonify(planner_query.planner(db.connection(), as_of, today, kind, street))


@bp.get("/layers/<layer>/geojson")
@reads(url_layer="layer")
def layer_geojson(layer: str) -> Response:
    """An overlay layer as GeoJSON, published columns only, optionally one street's."""
    overlay = get_layer(layer)
    if not overlay.overlay:
        raise NotFound(
            f"该图层不作为叠加层提供 layer not served as an overlay: {layer!r} "
            f"(one of {', '.join(overlay_layers())})",
            layer=layer,
        )
    street = _street_filter()
    text = geojson.layer_geojson(db.connection(), overlay, street, _now())
    return Response(text, mimetype="application/geo+json")


# --- layers and exports --------------------------------------------------------------------

FEATURE_FORMATS = ("geojson", "csv", "gpkg")
MIMETYPES = {"csv": "text/csv", "gpkg": "application/geopackage+sqlite3"}
CSV_HEADERS = ("name", "label")


def _layer_doc(layer: Layer) -> dict[str, Any]:
    features = url_for("api.features", layer=layer.name, _external=True)
    return {
        "name": layer.name,
        "title": layer.title,
        "kind": layer.kind,
        "geometry_type": layer.geometry_type,
        "time_field": layer.time_field,
        "fields": features_query.field_doc(layer),
        "parameters": slices.slice_params(layer),
        "links": {
            "geojson": features,
            "csv": features + "?f=csv",
            "ogc": url_for("ogc.collections_list", _external=True),
            "tilejson": url_for("tiles.tilejson", layer=layer.name, _external=True),
        },
    }


@bp.get("/layers")
@logged_in
def layers() -> Response:
    """The layers the caller may read: fields, filters and where to get the features."""
    params.check_params(request.args, ())
    principal = auth.current()
    readable = [layer for layer in LAYERS if principal is None or principal.may_read(layer.name)]
    return jsonify({"layers": [_layer_doc(layer) for layer in readable]})


@bp.get("/units")
@logged_in
def units() -> Response:
    """The units (承办单位) cases are dispatched to: every street's centre, seven departments
    and stations, and the district departments. Unit names are not secret: every role reads
    them; a street's name is shown in the caller's zone only."""
    street = _street_filter()
    kind = request.args.get("kind") or None
    if kind is not None:
        kind = _choice("kind", tuple(UNIT_KINDS), kind)
    return jsonify({"units": units_query.list_units(db.connection(), street=street, kind=kind)})


@bp.get("/layers/<layer>/features")
@reads(url_layer="layer", snapshot=True)
@does(EXPORT)
def features(layer: str) -> Response:
    """Any filtered slice of a layer as GeoJSON or CSV.

    The count comes first (it is the provenance's row count and the audit's); the rows then
    come out of PostgreSQL's COPY (layers.queries.export) into a temporary file
    (`export.spool`), and the request's transaction ends before the file is sent: a client
    reading slowly holds neither a database connection nor, under waitress, a thread. HEAD
    answers the headers from the count alone.
    """
    source = get_layer(layer)
    fmt = params.single(request.args, "f") or "geojson"
    if fmt == "json":
        fmt = "geojson"
    if fmt not in FEATURE_FORMATS:
        raise refusal("f", fmt, "格式无效", f"format must be one of {', '.join(FEATURE_FORMATS)}")
    header = params.single(request.args, "header") or "name"
    if header not in CSV_HEADERS:
        raise refusal("header", header, "取值无效", f"must be one of {', '.join(CSV_HEADERS)}")
    chosen = slices.parse_slice(
        source, request.args, also_allowed=("f", "header"), zone=_settings().zone
    )
    conn = db.connection()
    rows = slices.count(conn, chosen)
    principal = auth.current()
    prov = exports.provenance(chosen, rows, principal.name if principal else None, fmt, _now())
    headers = {
        "X-Blockdata-Rows": str(rows),
        "X-Blockdata-Provenance": json.dumps(prov, ensure_ascii=True),
        "Cache-Control": "private, no-store",
    }
    mimetype = MIMETYPES.get(fmt, "application/geo+json")
    if fmt in MIMETYPES:
        name = f"{source.name}-{_now():%Y%m%d-%H%M}.{fmt}"
        fallback = f"{source.name}.{fmt}"
        headers["Content-Disposition"] = (
            f"attachment; filename={fallback}; filename*=UTF-8''{quote(name)}"
        )
    if request.method == "HEAD":  # no Content-Length: the body's is not known
        response = Response(iter(()), mimetype=mimetype, headers=headers)
    else:
        exports.prepare(conn, rows)
        if fmt == "gpkg":  # a file format: written to a path, then sent as spooled bodies are
            spooled, size = export.spool_file(
                lambda path: exports.write_gpkg(conn, chosen, path, prov, None),
                f"{source.name}.gpkg",
                export.directory(),
            )
        else:
            body = (
                exports.csv_chunks(conn, chosen, header)
                if fmt == "csv"
                else exports.geojson_chunks(conn, chosen, prov)
            )
            spooled, size = export.spool(body, export.directory())
        # Audited once the export is made (an error answer's transaction commits too).
        auth.audit("export", rows=rows, layer=source.name, format=fmt, filters=chosen.filters)
        response = Response(
            export.sent(spooled, request.environ),
            mimetype=mimetype,
            headers=headers,
            direct_passthrough=True,
        )
        response.content_length = size
    if fmt == "csv":
        response.mimetype_params["charset"] = "utf-8"
    return response


@contribute
def _paths() -> dict[str, dict[str, Any]]:
    """The /api part of /api/openapi.json, from QUERY and feature_params."""
    street = path_param(
        "street_code", "街道代码（9 位）street code", {"type": "string", "pattern": "^[0-9]{9}$"}
    )
    heat_layer = path_param(
        "layer", "图层（只有 service_requests）", {"type": "string", "enum": ["service_requests"]}
    )
    overlay = path_param(
        "layer", "叠加图层 overlay layer", {"type": "string", "enum": list(overlay_layers())}
    )
    paths: dict[str, dict[str, Any]] = {
        "/api/heat/{layer}": {
            "get": operation(
                "热力：按街道、社区、网格或 100 米格统计诉求 heat of service requests",
                "api",
                [heat_layer, *QUERY["api.heat"]],
            )
        },
        "/api/streets": {
            "get": operation(
                "全区概览：各街道三率排名 district overview: the three rates",
                "api",
                QUERY["api.streets"],
            )
        },
        "/api/command/{street_code}/summary": {
            "get": operation(
                "战区看板 the commander's panel for one street",
                "api",
                [street, *QUERY["api.command_summary"]],
            )
        },
        "/api/command/{street_code}/latest": {
            "get": operation(
                "最新诉求（实时图层）latest requests of a street, for the live layer",
                "api",
                [street, *QUERY["api.latest"]],
                ok(GEOJSON),
            )
        },
        "/api/planner": {
            "get": operation(
                "规划视图：整治与疏解进度 renovation and relocation as of a day",
                "api",
                QUERY["api.planner"],
            )
        },
        "/api/layers": {
            "get": operation(
                "可读图层及其字段、筛选条件 the layers the caller may read",
                "api",
                QUERY["api.layers"],
            )
        },
        "/api/units": {
            "get": operation(
                "承办单位：街道中心、七大部、科站队所与区级部门 the units cases go to",
                "api",
                QUERY["api.units"],
            )
        },
        "/api/layers/{layer}/geojson": {
            "get": operation(
                "叠加图层 GeoJSON an overlay layer",
                "api",
                [overlay, *QUERY["api.layer_geojson"]],
                ok(GEOJSON),
            )
        },
    }
    for layer in LAYERS:
        paths[f"/api/layers/{layer.name}/features"] = {
            "get": operation(
                f"导出{layer.title}：GeoJSON 流、CSV（UTF-8 BOM）或 GeoPackage，附来源说明 "
                f"export {layer.name}",
                "api",
                feature_params(layer),
                ok(
                    GEOJSON,
                    CSV,
                    MIMETYPES["gpkg"],
                    description="要素流 streamed; provenance in X-Blockdata-Provenance",
                ),
            )
        }
    return paths
