"""OGC API – Features at `/ogc`: landing page, conformance, OpenAPI, collections, items.

Every layer of the registry is a collection, with one geometry type per collection (GDAL
guesses a collection's type from its first features): polygon layers are served as
MultiPolygon, and `renovation_projects`, whose column holds lines and polygons, is served as
two collections, `renovation_projects_lines` (MultiLineString) and `renovation_projects_areas`
(MultiPolygon), split by `ST_Dimension`.

Items are paged with keys, not OFFSET: the `next` link carries an opaque cursor holding the
last primary key of the page, so every page costs one index range scan however deep it is,
and `numberMatched` is omitted (counting every row is what makes OFFSET servers slow).
PostGIS serialises each feature (`json_build_object` + `ST_AsGeoJSON`) with only the
published columns; Python only joins the strings, it parses no feature.
Every query runs on `db.connection()`.

The parameters are parsed by layers.queries.params; the conditions built from them here
(`bbox`, `datetime`/`since`/`until`, property filters) are shared with tiles and exports.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote_plus, urlencode

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, render_template_string, request, url_for
from sqlalchemy.dialects import postgresql as pg

from app import auth, db
from app.capabilities import logged_in, reads
from app.errors import BadRequest, NotFound
from layers import LAYERS, Layer
from layers.queries import params, slices
from layers.queries.params import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_VALUE_LENGTH,
    check_params,
    encode_cursor,
    parse_limit,
    single,
)
from layers.queries.slices import (
    CRS84,
    TIME_PARAMS,
    bbox_condition,
    filter_names,
    property_conditions,
    time_conditions,
)
from layers.queries.types import GEOMETRY_NAMES, json_schema

bp = Blueprint("ogc", __name__, url_prefix="/ogc")

GREGORIAN = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"
CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
)
GEOJSON = "application/geo+json"
JSON = "application/json"
HTML = "text/html"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"

ITEMS_PARAMS = ("f", "limit", "bbox", "bbox-crs", "crs", "cursor")


@dataclass(frozen=True)
class Collection:
    """One OGC collection: a layer, or the part of a mixed layer with one geometry dimension."""

    id: str
    layer: Layer
    title: str
    geometry_type: str
    dimension: int | None = None

    @property
    def table(self) -> sa.Table:
        return self.layer.table

    @property
    def key(self) -> sa.Column[Any]:
        return self.table.c[self.layer.key]

    @property
    def integer_key(self) -> bool:
        return isinstance(self.key.type, sa.Integer)

    def geometry(self) -> sa.ColumnElement[Any]:
        """The geometry as served: one type for the whole collection."""
        geom: sa.ColumnElement[Any] = self.table.c.geom
        if self.dimension is not None:
            geom = sa.func.ST_CollectionExtract(geom, self.dimension + 1)
        if self.geometry_type.startswith("Multi") and self.layer.geometry_type != "MULTIPOLYGON":
            geom = sa.func.ST_Multi(geom)
        return geom

    def conditions(self) -> list[sa.ColumnElement[bool]]:
        """The rows that belong to this collection."""
        if self.dimension is None:
            return []
        return [sa.func.ST_Dimension(self.table.c.geom) == self.dimension]


@cache
def collections() -> tuple[Collection, ...]:
    """The collections, in registry order."""
    out: list[Collection] = []
    for layer in LAYERS:
        if layer.geometry_type in GEOMETRY_NAMES:
            out.append(
                Collection(
                    layer.name, layer, layer.title, _collection_geometry(layer.geometry_type)
                )
            )
        else:
            out.append(
                Collection(
                    f"{layer.name}_lines", layer, f"{layer.title}（线）", "MultiLineString", 1
                )
            )
            out.append(
                Collection(f"{layer.name}_areas", layer, f"{layer.title}（面）", "MultiPolygon", 2)
            )
    return tuple(out)


def readable() -> list[Collection]:
    """The collections the caller's role may read (zones are the database's business)."""
    principal = auth.current()
    return [c for c in collections() if principal is None or principal.may_read(c.layer.name)]


def get_collection(collection_id: str) -> Collection:
    """The collection `collection_id`: 404 when there is none, 403 when the role may not read it."""
    for c in collections():
        if c.id == collection_id:
            auth.require_layer(c.layer.name)
            return c
    hint = [c.id for c in collections() if c.layer.name == collection_id]
    extra = f"; 请使用 use {' / '.join(hint)}" if hint else ""
    raise NotFound(
        f"未知集合 unknown collection: {collection_id!r}{extra}", collection=collection_id
    )


def local_zone() -> dt.tzinfo:
    """The district's time zone (the BLOCKDATA_TZ setting) of the current app."""
    zone: dt.tzinfo = current_app.config["BLOCKDATA_SETTINGS"].zone
    return zone


# --- content negotiation and links ---------------------------------------------------------


def wants_html() -> bool:
    """`f=html|json` wins; otherwise the Accept header (JSON unless HTML is preferred)."""
    f = single(request.args, "f")
    if f is not None:
        if f not in ("json", "html", "geojson"):
            raise BadRequest(f"f 只能是 json 或 html (f must be json or html): {f!r}")
        return f == "html"
    best = request.accept_mimetypes.best_match([JSON, GEOJSON, HTML], default=JSON)
    return best == HTML


def _url(endpoint: str, **values: Any) -> str:
    return url_for(endpoint, _external=True, **values)


def _link(href: str, rel: str, type_: str, title: str) -> dict[str, str]:
    return {"href": href, "rel": rel, "type": type_, "title": title}


def _self_links(
    endpoint: str, html: bool, json_type: str = JSON, **values: Any
) -> list[dict[str, str]]:
    as_json = _link(_url(endpoint, f="json", **values), "self", json_type, "JSON")
    as_html = _link(_url(endpoint, f="html", **values), "self", HTML, "HTML")
    if html:
        as_json["rel"] = "alternate"
    else:
        as_html["rel"] = "alternate"
    return [as_json, as_html] if not html else [as_html, as_json]


def _json(body: Any, mimetype: str = JSON) -> Response:
    return Response(json.dumps(body, ensure_ascii=False, default=str), mimetype=mimetype)


def _collection_geometry(geometry_type: str) -> str:
    """A collection's GeoJSON geometry type: polygons are written as multi-polygons."""
    return "MultiPolygon" if geometry_type == "POLYGON" else GEOMETRY_NAMES[geometry_type]


# --- serialisation ------------------------------------------------------------------------


def _name(name: str) -> sa.ColumnElement[str]:
    """A registry identifier as an SQL string constant (never user input)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"not an identifier: {name!r}")
    return sa.literal_column(f"'{name}'", sa.Text)


def properties_json(layer: Layer) -> sa.ScalarSelect[Any]:
    """The published columns of the outer row as one JSON object.

    `row_to_json` of a correlated sub-select: about twice as fast as `json_build_object` over
    the same columns, and compact (no spaces), with the registry's column names as keys.
    """
    t = layer.table
    row = sa.select(*(t.c[f.name] for f in layer.published)).correlate(t).subquery("p")
    return sa.select(sa.func.row_to_json(row.table_valued())).select_from(row).scalar_subquery()


_FEATURES: dict[str, sa.ColumnElement[str]] = {}


def _feature(c: Collection) -> sa.ColumnElement[str]:
    """One GeoJSON Feature as text, built by PostGIS.

    Compiled once per collection to SQL text: building the expression (a sub-select of every
    published column) and computing its cache key cost more of the server's CPU on each
    request than PostgreSQL spends running it.
    """
    done = _FEATURES.get(c.id)
    if done is None:
        # Compiled in a SELECT from the table, so that the properties' sub-select correlates
        # with the outer row, then cut out of it.
        query = sa.select(_feature_expression(c).label("feature")).select_from(c.table)
        sql = str(query.compile(dialect=pg.dialect(), compile_kwargs={"literal_binds": True}))
        column, found, _ = sql.removeprefix("SELECT ").rpartition(" AS feature")
        if not found:
            raise RuntimeError(f"unexpected SQL for {c.id}'s features: {sql[:200]}")
        done = _FEATURES[c.id] = sa.literal_column(column, sa.Text)
    return done


def _feature_expression(c: Collection) -> sa.ColumnElement[str]:
    return sa.cast(
        sa.func.json_build_object(
            _name("type"),
            _name("Feature"),
            _name("id"),
            c.key,
            _name("geometry"),
            sa.cast(sa.func.ST_AsGeoJSON(c.geometry()), pg.JSON),
            _name("properties"),
            properties_json(c.layer),
        ),
        sa.Text,
    )


def decode_cursor(c: Collection, value: str) -> Any:
    """The last key of the previous page, of the collection's key type."""
    return params.decode_cursor(value, integer=c.integer_key)


def _timestamp() -> str:
    """The response's timeStamp, by the app's clock, in UTC (RFC 3339 "Z")."""
    now = current_app.config["BLOCKDATA_SETTINGS"].now().astimezone(dt.UTC)
    return str(now.isoformat(timespec="seconds")).replace("+00:00", "Z")


# --- metadata -------------------------------------------------------------------------------


_BOX = re.compile(r"BOX\(([-0-9.e+]+) ([-0-9.e+]+),([-0-9.e+]+) ([-0-9.e+]+)\)")


def _extent(conn: sa.Connection, c: Collection) -> dict[str, Any]:
    """Spatial extent from the GiST index (no table scan), temporal from the time index."""
    box = conn.execute(
        sa.select(sa.cast(sa.func.ST_EstimatedExtent("public", c.table.name, "geom"), sa.Text))
    ).scalar()
    extent: dict[str, Any] = {}
    match = _BOX.fullmatch(box or "")
    if match:
        extent["spatial"] = {"bbox": [[round(float(v), 7) for v in match.groups()]], "crs": CRS84}
    if c.layer.time_field:
        column = c.table.c[c.layer.time_field]
        lo, hi = conn.execute(
            sa.select(sa.func.min(column), sa.func.max(column)).where(*c.conditions())
        ).one()
        extent["temporal"] = {"interval": [[_iso(lo), _iso(hi)]], "trs": GREGORIAN}
    return extent


def _iso(value: dt.date | dt.datetime | None) -> str | None:
    if value is None:
        return None
    return params.start_of(value, local_zone()).isoformat()


def _collection_doc(conn: sa.Connection, c: Collection, html: bool) -> dict[str, Any]:
    cid = c.id
    return {
        "id": cid,
        "title": c.title,
        "description": f"{c.title} — {c.layer.name}，几何 geometry {c.geometry_type}",
        "itemType": "feature",
        "crs": [CRS84],
        "geometryType": c.geometry_type,
        "extent": _extent(conn, c),
        "links": [
            *_self_links("ogc.collection", html, collection_id=cid),
            _link(_url("ogc.items", collection_id=cid), "items", GEOJSON, f"{c.title} 要素 items"),
            _link(_url("ogc.items", collection_id=cid, f="html"), "items", HTML, "HTML"),
        ],
    }


def _fields(c: Collection) -> list[dict[str, Any]]:
    filters = {f.name for f in c.layer.filterable}
    return [
        {
            "name": f.name,
            "label": f.label,
            "type": json_schema(f.column)["type"],
            "filterable": f.name in filters,
        }
        for f in c.layer.published
    ]


# --- endpoints ------------------------------------------------------------------------------


@bp.get("/", strict_slashes=False)
@logged_in
def landing() -> Response:
    check_params(request.args, ["f"])
    html = wants_html()
    body = {
        "title": "Blockdata 西城区块数据 OGC API – Features",
        "description": "街道、社区、网格、街巷、诉求、执法案件、疏解目标与整治提升项目的要素服务",
        "links": [
            *_self_links("ogc.landing", html),
            _link(_url("ogc.api"), "service-desc", OPENAPI, "OpenAPI 3.0 接口定义"),
            _link(_url("ogc.api", f="html"), "service-doc", HTML, "接口文档 API documentation"),
            _link(_url("ogc.conformance"), "conformance", JSON, "一致性声明 conformance"),
            _link(_url("ogc.collections_list"), "data", JSON, "数据集合 collections"),
        ],
    }
    if html:
        return _html(LANDING_HTML, title=body["title"], body=body)
    return _json(body)


@bp.get("/conformance")
@logged_in
def conformance() -> Response:
    check_params(request.args, ["f"])
    body = {"conformsTo": list(CONFORMANCE)}
    if wants_html():
        return _html(CONFORMANCE_HTML, title="一致性声明 Conformance", body=body)
    return _json(body)


@bp.get("/api")
@logged_in
def api() -> Response:
    check_params(request.args, ["f"])
    doc = openapi()
    if wants_html():
        return _html(API_HTML, title="接口文档 API", doc=doc)
    return _json(doc, OPENAPI)


@bp.get("/collections")
@logged_in
def collections_list() -> Response:
    check_params(request.args, ["f"])
    html = wants_html()
    conn = db.connection()
    body = {
        "collections": [_collection_doc(conn, c, html) for c in readable()],
        "links": _self_links("ogc.collections_list", html),
    }
    if html:
        return _html(COLLECTIONS_HTML, title="数据集合 Collections", body=body)
    return _json(body)


@bp.get("/collections/<collection_id>")
@reads(url_collection="collection_id")
def collection(collection_id: str) -> Response:
    c = get_collection(collection_id)
    check_params(request.args, ["f"])
    html = wants_html()
    body = _collection_doc(db.connection(), c, html)
    if html:
        return _html(COLLECTION_HTML, title=c.title, body=body, fields=_fields(c))
    body["properties"] = _fields(c)
    return _json(body)


@bp.get("/collections/<collection_id>/items")
@reads(url_collection="collection_id")
def items(collection_id: str) -> Response:
    c = get_collection(collection_id)
    args = request.args
    # Time parameters pass here on any layer, so that one without a time field is told so.
    check_params(args, [*ITEMS_PARAMS, *TIME_PARAMS, *filter_names(c.layer)])
    html = wants_html()
    limit = parse_limit(single(args, "limit"))
    for name in ("bbox-crs", "crs"):
        crs = single(args, name)
        if crs is not None and crs != CRS84:
            raise BadRequest(f"{name} 只支持 CRS84 (only {CRS84} is supported): {crs!r}")
    conds = [
        *c.conditions(),
        *time_conditions(c.layer, args, local_zone()),
        *property_conditions(c.layer, args),
    ]
    bbox = single(args, "bbox")
    if bbox is not None:
        conds.append(bbox_condition(c.table.c.geom, bbox))
    cursor = single(args, "cursor")
    if cursor is not None:
        conds.append(c.key > decode_cursor(c, cursor))
    # limit + 1 rows: the extra one only says that a next page exists.
    rows = (
        db.connection()
        .execute(sa.select(c.key, _feature(c)).where(*conds).order_by(c.key).limit(limit + 1))
        .all()
    )
    page, more = rows[:limit], len(rows) > limit
    # The links differ only in `f` and `cursor`: the path is built once and the request's
    # other parameters encoded once (url_for for each link cost a tenth of the request).
    collection_url = _url("ogc.collection", collection_id=c.id)
    query = urlencode([(k, v) for k, v in args.items(multi=True) if k not in ("cursor", "f")])
    base = f"{collection_url}/items?{query}{'&' if query else ''}"
    here = f"{base}cursor={quote_plus(cursor)}&" if cursor is not None else base
    as_json = _link(f"{here}f=json", "alternate" if html else "self", GEOJSON, "JSON")
    as_html = _link(f"{here}f=html", "self" if html else "alternate", HTML, "HTML")
    links = [as_html, as_json] if html else [as_json, as_html]
    if more:
        nxt = f"{base}cursor={encode_cursor(page[-1][0])}&"
        links.append(_link(f"{nxt}f=json", "next", GEOJSON, "下一页 next page"))
        links.append(_link(f"{nxt}f=html", "next", HTML, "下一页 next page"))
    links.append(_link(collection_url, "collection", JSON, c.title))
    if html:
        return _html(
            ITEMS_HTML,
            title=f"{c.title} 要素",
            collection=c,
            fields=[f.name for f in c.layer.published],
            labels=c.layer.labels,
            features=[json.loads(r[1]) for r in page],
            links=links,
        )
    text = "".join(
        (
            '{"type":"FeatureCollection","features":[',
            ",".join(r[1] for r in page),
            '],"numberReturned":',
            str(len(page)),
            ',"timeStamp":"',
            _timestamp(),
            '","links":',
            json.dumps(links, ensure_ascii=False),
            "}",
        )
    )
    return Response(text, mimetype=GEOJSON)


@bp.get("/collections/<collection_id>/items/<feature_id>")
@reads(url_collection="collection_id")
def item(collection_id: str, feature_id: str) -> Response:
    c = get_collection(collection_id)
    check_params(request.args, ["f"])
    html = wants_html()
    missing = NotFound(
        f"集合 {c.id} 中没有要素 (no such feature in {c.id}): {feature_id!r}",
        collection=c.id,
        id=feature_id,
    )
    key: Any = feature_id
    if c.integer_key:
        if not re.fullmatch(r"[0-9]{1,19}", feature_id) or int(feature_id) >= 2**63:
            raise missing
        key = int(feature_id)
    elif any(ord(ch) < 32 for ch in feature_id) or len(feature_id) > MAX_VALUE_LENGTH:
        raise missing
    text = (
        db.connection()
        .execute(sa.select(_feature(c)).where(c.key == key, *c.conditions()))
        .scalar()
    )
    if text is None:
        raise missing
    links = [
        *_self_links("ogc.item", html, GEOJSON, collection_id=c.id, feature_id=feature_id),
        _link(_url("ogc.collection", collection_id=c.id), "collection", JSON, c.title),
    ]
    if html:
        return _html(
            ITEM_HTML,
            title=f"{c.title} {feature_id}",
            collection=c,
            feature=json.loads(text),
            labels=c.layer.labels,
            links=links,
        )
    return Response(
        text[:-1] + ',"links":' + json.dumps(links, ensure_ascii=False) + "}", mimetype=GEOJSON
    )


# --- OpenAPI ------------------------------------------------------------------------------


def items_parameters(c: Collection) -> list[str]:
    """Every query parameter the items endpoint of `c` accepts (the OpenAPI lists these)."""
    times = TIME_PARAMS if c.layer.time_field is not None else ()
    return [*ITEMS_PARAMS, *times, *filter_names(c.layer)]


def _param(name: str, description: str, schema: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
        **kw,
    }


_COMMON_PARAMS: dict[str, dict[str, Any]] = {
    "f": _param(
        "f", "输出格式 output format", {"type": "string", "enum": ["json", "html", "geojson"]}
    ),
    "limit": _param(
        "limit",
        f"每页要素数 features per page (default {DEFAULT_LIMIT}, max {MAX_LIMIT})",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    ),
    "bbox": _param(
        "bbox",
        "范围 minx,miny,maxx,maxy (CRS84)",
        {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
        style="form",
        explode=False,
        example="116.30,39.90,116.40,40.00",
    ),
    "bbox-crs": _param("bbox-crs", "bbox 坐标系 (CRS84 only)", {"type": "string", "enum": [CRS84]}),
    "crs": _param("crs", "输出坐标系 (CRS84 only)", {"type": "string", "enum": [CRS84]}),
    "cursor": _param(
        "cursor", "分页游标，来自 next 链接 (opaque cursor from a next link)", {"type": "string"}
    ),
    "datetime": _param(
        "datetime",
        "时间：时刻或区间，开放端用 .. (RFC 3339 instant or interval, `..` for open ends)",
        {"type": "string"},
        example="2026-01-01T00:00:00+08:00/..",
    ),
    "since": _param(
        "since",
        "时间下限（含）lower time bound, inclusive",
        {"type": "string"},
        example="2026-01-01",
    ),
    "until": _param(
        "until",
        "时间上限（含）upper time bound, inclusive",
        {"type": "string"},
        example="2026-12-31",
    ),
}


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.0 document of this service, built from the same lists the code checks."""
    root = _url("ogc.landing").rstrip("/")
    f_only = [_COMMON_PARAMS["f"]]
    ok_json = {"200": {"description": "OK", "content": {JSON: {}, HTML: {}}}}
    errors = {
        "400": {"description": "参数错误 bad request", "content": {JSON: {}}},
        "404": {"description": "不存在 not found", "content": {JSON: {}}},
    }
    paths: dict[str, Any] = {
        "/": {"get": {"summary": "首页 landing page", "parameters": f_only, "responses": ok_json}},
        "/conformance": {
            "get": {"summary": "一致性声明 conformance", "parameters": f_only, "responses": ok_json}
        },
        "/api": {
            "get": {
                "summary": "本文档 this document",
                "parameters": f_only,
                "responses": {"200": {"description": "OK", "content": {OPENAPI: {}, HTML: {}}}},
            }
        },
        "/collections": {
            "get": {"summary": "集合列表 collections", "parameters": f_only, "responses": ok_json}
        },
    }
    for c in collections():
        labels = c.layer.labels
        params = [
            dict(_COMMON_PARAMS[name]) for name in items_parameters(c) if name in _COMMON_PARAMS
        ]
        for name in filter_names(c.layer):
            field = slices.FILTER_ALIASES.get(name, name)
            schema = json_schema(c.table.c[field])
            params.append(
                _param(
                    name,
                    f"{labels[field]} ({field})，逗号分隔表示任一 (comma-separated: any of)",
                    {"type": "string"} if schema["type"] != "boolean" else schema,
                )
            )
        feature = {"200": {"description": "GeoJSON", "content": {GEOJSON: {}, HTML: {}}}, **errors}
        base = f"/collections/{c.id}"
        paths[base] = {
            "get": {"summary": c.title, "parameters": f_only, "responses": {**ok_json, **errors}}
        }
        paths[f"{base}/items"] = {
            "get": {
                "summary": f"{c.title} 要素 items ({c.geometry_type})",
                "parameters": params,
                "responses": feature,
            }
        }
        paths[f"{base}/items/{{featureId}}"] = {
            "get": {
                "summary": f"{c.title} 单个要素 one feature",
                "parameters": [
                    {
                        "name": "featureId",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer" if c.integer_key else "string"},
                    },
                    *f_only,
                ],
                "responses": feature,
            }
        }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Blockdata OGC API – Features",
            "version": "1.0.0",
            "description": "西城区块数据要素服务 (OGC API – Features Part 1: Core)",
        },
        "servers": [{"url": root}],
        "paths": paths,
    }


# --- HTML ---------------------------------------------------------------------------------


def _html(template: str, **context: Any) -> Response:
    page = render_template_string(_BASE.replace("{{ content }}", template), **context)
    return Response(page, mimetype=HTML)


_BASE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style nonce="{{ csp_nonce() }}">
body{font-family:system-ui,"PingFang SC","Microsoft YaHei",sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:14px}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f3f3f3}a{color:#1565c0}nav a{margin-right:1em}code{background:#f5f5f5}
</style></head><body>
<nav><a href="{{ url_for('ogc.landing', f='html') }}">首页</a>
<a href="{{ url_for('ogc.collections_list', f='html') }}">数据集合</a>
<a href="{{ url_for('ogc.api', f='html') }}">接口文档</a></nav>
<h1>{{ title }}</h1>
{{ content }}
</body></html>"""

LANDING_HTML = """<p>{{ body.description }}</p>
<ul>{% for l in body.links if l.rel != 'self' %}
<li><a href="{{ l.href }}">{{ l.title }}</a> <small>({{ l.rel }}, {{ l.type }})</small></li>
{% endfor %}</ul>"""

CONFORMANCE_HTML = """<ul>{% for c in body.conformsTo %}<li><code>{{ c }}</code></li>
{% endfor %}</ul>"""

COLLECTIONS_HTML = """<table>
<tr><th>集合</th><th>名称</th><th>几何类型</th><th>范围</th><th></th></tr>
{% for c in body.collections %}<tr>
<td><a href="{{ url_for('ogc.collection', collection_id=c.id, f='html') }}">{{ c.id }}</a></td>
<td>{{ c.title }}</td><td>{{ c.geometryType }}</td>
<td>{% if c.extent.spatial %}{{ c.extent.spatial.bbox[0]|join(', ') }}{% endif %}</td>
<td><a href="{{ url_for('ogc.items', collection_id=c.id, f='html') }}">浏览要素</a></td>
</tr>{% endfor %}</table>"""

COLLECTION_HTML = """<p>{{ body.description }}</p>
<p><a href="{{ url_for('ogc.items', collection_id=body.id, f='html') }}">浏览要素</a> ·
<a href="{{ url_for('ogc.items', collection_id=body.id, f='json') }}">GeoJSON</a> ·
<a href="{{ url_for('ogc.collection', collection_id=body.id, f='json') }}">JSON</a></p>
{% if body.extent.temporal %}
<p>时间范围：{{ body.extent.temporal.interval[0]|join(' — ') }}</p>
{% endif %}
<table><tr><th>字段</th><th>中文名</th><th>类型</th><th>可筛选</th></tr>
{% for f in fields %}<tr><td><code>{{ f.name }}</code></td><td>{{ f.label }}</td>
<td>{{ f.type }}</td><td>{{ '是' if f.filterable else '' }}</td></tr>{% endfor %}</table>"""

ITEMS_HTML = """<p>本页 {{ features|length }} 个要素 ·
{% for l in links if l.rel == 'next' and l.type == 'text/html' %}
<a href="{{ l.href }}">下一页</a>{% endfor %}
{% for l in links if l.rel == 'alternate' %}<a href="{{ l.href }}">GeoJSON</a>{% endfor %}</p>
<table><tr>{% for f in fields %}<th>{{ labels[f] }}<br><small>{{ f }}</small></th>{% endfor %}
<th>几何</th></tr>
{% for ft in features %}<tr>{% for f in fields %}{% set v = ft.properties[f] %}<td>
{%- if loop.first -%}
<a href="{{ url_for('ogc.item', collection_id=collection.id, feature_id=ft.id, f='html') }}">
{{- v }}</a>
{%- else %}{{ '' if v is none else v }}{% endif %}</td>{% endfor %}
<td>{{ ft.geometry.type if ft.geometry else '' }}</td></tr>{% endfor %}</table>"""

ITEM_HTML = """<p>{% for l in links if l.rel != 'self' %}
<a href="{{ l.href }}">{{ l.title }}</a> {% endfor %}</p>
<table>{% for k, v in feature.properties.items() %}
<tr><th>{{ labels.get(k, k) }} <small>{{ k }}</small></th><td>{{ '' if v is none else v }}</td></tr>
{% endfor %}
<tr><th>几何 geometry</th><td>{{ feature.geometry.type if feature.geometry else '' }}</td></tr>
</table>"""

API_HTML = """<p>OpenAPI {{ doc.openapi }} ·
<a href="{{ url_for('ogc.api', f='json') }}">JSON</a></p>
<table><tr><th>路径</th><th>说明</th><th>参数</th></tr>
{% for path, ops in doc.paths.items() %}<tr><td><code>{{ path }}</code></td>
<td>{{ ops.get.summary }}</td>
<td>{% for p in ops.get.parameters %}<code>{{ p.name }}</code> {% endfor %}</td></tr>
{% endfor %}</table>"""
