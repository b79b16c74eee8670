"""Search and areas: find a place or a record and read an area's figures at a glance.

- `GET /api/search?q=&limit=`: streets, communities, grids (by name, code or label
  "百万庄社区 第4网格"), lanes, landmarks, case and work-order numbers (layers.queries.search),
  else the geocoder's addresses.
- `GET /api/geocode?q=&limit=`: the geocoder's best matches (etl.geocoder).
- `GET /api/reverse?lng=&lat=`: the street, community, grid and nearest lane of a point.
- `GET /api/areas/<level>/<code>?since=&until=`: a street's, community's or grid's figures
  over a window of local days (layers.queries.areas), what the map's area card shows.

Who may: search, geocode and reverse need the boundary layers (every role with a map page —
district, commander, analyst, planner, assessor — and the clerk and the grid officer, who read
the boundaries too; not a department, which reads no layer); an area's figures need the
requests as well (district, commander, analyst, assessor). Records in search results are
shown only to the roles that may read them (requests) or work them (cases).

Zones: the caller reads through row-level security, and a commander's geocoder and reverse
answers are cut to its street: a place, a record, a candidate street outside it never comes
back (a point outside it is 404, as outside the district).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, current_app, jsonify, request

from app import api, auth, db
from app.capabilities import may, reads
from app.config import Settings
from app.errors import NotFound
from app.openapi import JSON, Param, contribute, names, operation, path_param
from etl.aggregates import load_rates
from etl.geocoder import Geocoder, Match
from etl.geocoder import reverse as reverse_point
from layers.queries import areas as areas_query
from layers.queries import params
from layers.queries import search as search_query
from layers.queries.access import CASES, DISTRICT
from layers.queries.params import refusal

if TYPE_CHECKING:
    import sqlalchemy as sa

bp = Blueprint("search", __name__, url_prefix="/api")

DEFAULT_LIMIT = 10
MAX_LIMIT = 50
GEOCODE_LIMIT = 5
GEOCODE_MAX = 20
CODE_LENGTH = {"street": 9, "community": 12, "grid": 15}
GEOCODER_SECONDS = 300.0  # a loaded geocoder is kept this long (the gazetteer changes rarely)
GEOCODERS = "blockdata.geocoders"
BOUNDARIES = ("streets", "communities", "grids")

Q_PARAM = Param(
    "q", "查询文字（必填，最多 100 字）text to find", {"type": "string", "maxLength": 100}, "百万庄"
)
QUERY: dict[str, tuple[Param, ...]] = {
    "search.search": (
        Q_PARAM,
        Param(
            "limit",
            "最多条数 at most this many (default 10)",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
            "5",
        ),
    ),
    "search.geocode": (
        Param(
            "q",
            "地址（必填）address",
            {"type": "string", "maxLength": 100},
            "西城区展览路街道百万庄大街11号",
        ),
        Param(
            "limit",
            "最多条数 at most this many (default 5)",
            {"type": "integer", "minimum": 1, "maximum": GEOCODE_MAX, "default": GEOCODE_LIMIT},
            "3",
        ),
    ),
    "search.reverse": (
        Param("lng", "经度 WGS84 longitude（必填）", {"type": "number"}, "116.366"),
        Param("lat", "纬度 WGS84 latitude（必填）", {"type": "number"}, "39.912"),
    ),
    # the window of days, as /api/heat takes it
    "search.area": tuple(p for p in api.QUERY["api.heat"] if p.name in ("since", "until")),
}


@bp.before_request
def _declared_params_only() -> None:
    """400 for any query parameter the endpoint does not declare."""
    allowed = QUERY.get(request.endpoint or "")
    if allowed is not None:
        params.check_params(request.args, names(allowed))


def _settings() -> Settings:
    settings: Settings = current_app.config["BLOCKDATA_SETTINGS"]
    return settings


def _zone() -> str:
    principal = auth.current()
    return principal.zone if principal is not None else DISTRICT


def _query() -> str:
    """`q`: required, at most 100 characters, no control characters."""
    value = params.optional_text(request.args, "q", search_query.MAX_QUERY)
    if value is None or not search_query.normalise(value):
        raise refusal("q", request.args.get("q"), "缺少查询文字", "q is required")
    return value


def _coordinate(name: str, bound: float) -> float:
    raw = params.single(request.args, name)
    if raw is None or raw == "":
        raise refusal(name, raw, "缺少坐标", f"{name} is required")
    try:
        value = float(raw)
    except ValueError:
        raise refusal(name, raw, "坐标应为数字", "not a number") from None
    if not math.isfinite(value) or abs(value) > bound:
        raise refusal(name, raw, "坐标超出范围", f"must lie in −{bound:g}…{bound:g}")
    return value


# --- the geocoder ---------------------------------------------------------------------------


def _geocoder(conn: sa.Connection, zone: str) -> Geocoder:
    """The geocoder loaded through the caller's connection, kept per zone for a while (a
    commander's is loaded through its own zone's connection, never shared with another)."""
    kept: dict[str, tuple[float, Geocoder]] = current_app.extensions.setdefault(GEOCODERS, {})
    entry = kept.get(zone)
    if entry is None or time.monotonic() - entry[0] > GEOCODER_SECONDS:
        entry = (time.monotonic(), Geocoder.load(conn))
        kept[zone] = entry
    return entry[1]


def _in_zone(match: Match, zone: str) -> Match | None:
    """`match` as a commander of `zone` may see it: None when it lies in another street (or
    cannot be placed in a street), an ambiguous match's candidates cut to the zone."""
    if zone == DISTRICT or match.level == "failed":
        return match
    if match.street_code == zone:
        return match
    if match.ambiguous and zone in match.candidates:
        return dataclasses.replace(match, candidates=(zone,))
    return None


def _geocode(conn: sa.Connection, text: str, limit: int, zone: str) -> list[Match]:
    matches = _geocoder(conn, zone).geocode(text, limit=limit)
    seen = [_in_zone(m, zone) for m in matches]
    return [m for m in seen if m is not None][:limit]


@bp.get("/geocode")
@reads(*BOUNDARIES)
def geocode() -> Response:
    """An address's best matches, each with its level, score, point and codes."""
    text = _query()
    limit = params.parse_count(
        request.args.get("limit"), default=GEOCODE_LIMIT, maximum=GEOCODE_MAX
    )
    matches = _geocode(db.connection(), text, limit, _zone())
    return jsonify({"query": text, "results": [m.as_dict() for m in matches]})


@bp.get("/reverse")
@reads(*BOUNDARIES)
def reverse() -> Response:
    """A point's street, community, grid (with its label) and nearest lane."""
    lng = _coordinate("lng", 180.0)
    lat = _coordinate("lat", 90.0)
    zone = _zone()
    found = reverse_point(db.connection(), lng, lat)
    street = (found or {}).get("street") or {}
    if found is None or (zone != DISTRICT and street.get("code") != zone):
        raise NotFound(
            f"该位置不在您可查看的范围内 no place of yours here: lng={lng}, lat={lat}",
            lng=lng,
            lat=lat,
        )
    return jsonify(found)


# --- search ---------------------------------------------------------------------------------


def _reach() -> search_query.Reach:
    principal = auth.current()
    if principal is None:
        return search_query.Reach(requests=True, cases=True)
    return search_query.Reach(
        requests=principal.may_read("service_requests"), cases=may(principal.role, CASES)
    )


def _address(match: Match) -> dict[str, Any]:
    """A geocoder match as a search result (kind "address")."""
    code = match.grid_code or match.community_code or match.street_code
    return {
        "kind": "address",
        "label": match.matched or match.query,
        "code": code,
        "street_code": match.street_code,
        "lng": match.lng,
        "lat": match.lat,
        "bbox": None,
        "level": match.level,
        "score": round(float(match.score), 4),
    }


@bp.get("/search")
@reads(*BOUNDARIES)
def search() -> Response:
    """Places and records matching `q`, best first; the geocoder's addresses when no place or
    record matches, or when the query names a house number; else places with a close name."""
    text = _query()
    limit = params.parse_count(request.args.get("limit"), default=DEFAULT_LIMIT, maximum=MAX_LIMIT)
    conn = db.connection()
    results = search_query.search(conn, text, limit, _reach())
    if len(results) < limit and search_query.looks_like_address(text, results):
        found = _geocode(conn, text, limit - len(results), _zone())
        results += [_address(m) for m in found if m.level != "failed" and m.lng is not None]
    if not results:
        results = search_query.fuzzy(conn, text, limit)
    return jsonify({"query": text, "results": results})


# --- areas ----------------------------------------------------------------------------------


def _area_code(level: str, code: str) -> str:
    if level not in areas_query.LEVELS:
        raise refusal(
            "level", level, "层级无效", f"level must be one of {', '.join(areas_query.LEVELS)}"
        )
    if len(code) != CODE_LENGTH[level] or not code.isdigit() or not code.isascii():
        raise refusal(
            "code", code, "代码格式错误", f"a {level} code has {CODE_LENGTH[level]} digits"
        )
    return code


@bp.get("/areas/<level>/<code>")
@reads(*BOUNDARIES, "service_requests")
def area(level: str, code: str) -> Response:
    """A street's, community's or grid's figures over a window of local days."""
    code = _area_code(level, code)
    settings = _settings()
    now = settings.now()
    since, until = params.parse_days(
        request.args,
        today=now.date(),
        default_days=api.DEFAULT_WINDOW_DAYS,
        max_days=api.MAX_WINDOW_DAYS,
        first=api.FIRST_DATE,
        last=api.LAST_DATE,
    )
    try:
        answer = areas_query.area(
            db.connection(), level, code, since, until, settings.tz, now, load_rates()
        )
    except areas_query.UnknownUnit:
        raise NotFound(
            f"该区域不存在或不在您的辖区 unknown area: {level}/{code}", level=level, code=code
        ) from None
    return jsonify(answer)


# --- the OpenAPI document -------------------------------------------------------------------

_NUMBER_OR_NULL = {"type": "number", "nullable": True}
_TEXT_OR_NULL = {"type": "string", "nullable": True}
RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["kind", "label", "code", "street_code", "lng", "lat", "bbox"],
    "properties": {
        "kind": {"type": "string", "enum": list(search_query.KINDS)},
        "label": {"type": "string"},
        "code": _TEXT_OR_NULL,
        "street_code": _TEXT_OR_NULL,
        "lng": _NUMBER_OR_NULL,
        "lat": _NUMBER_OR_NULL,
        "bbox": {"type": "array", "nullable": True, "items": {"type": "number"}},
        "case_id": {"type": "integer", "nullable": True},
    },
}
MATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["level", "score", "lng", "lat", "matched", "ambiguous"],
    "properties": {
        "query": {"type": "string"},
        "level": {"type": "string"},
        "score": {"type": "number"},
        "lng": _NUMBER_OR_NULL,
        "lat": _NUMBER_OR_NULL,
        "street_code": _TEXT_OR_NULL,
        "community_code": _TEXT_OR_NULL,
        "grid_code": _TEXT_OR_NULL,
        "matched": {"type": "string"},
        "ambiguous": {"type": "boolean"},
        "candidates": {"type": "array", "items": {"type": "string"}},
        "qualifiers": {"type": "array", "items": {"type": "string"}},
        "message": {"type": "string"},
    },
}
_COUNT = {"type": "integer", "minimum": 0}


def _nullable(**properties: Any) -> dict[str, Any]:
    """An object that may be null, with these properties."""
    return {"type": "object", "nullable": True, "properties": properties}


_CODE = {"type": "string"}
REVERSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["street", "community", "grid", "lane"],
    "properties": {
        "street": _nullable(code=_CODE, name=_TEXT_OR_NULL),
        "community": _nullable(code=_CODE, name=_TEXT_OR_NULL),
        "grid": _nullable(code=_CODE, label=_CODE, grid_officer=_TEXT_OR_NULL),
        "lane": _nullable(
            code=_CODE, name=_CODE, lane_chief=_TEXT_OR_NULL, distance_m={"type": "number"}
        ),
    },
}
AREA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["level", "code", "label", "street", "requests", "open", "overdue"],
    "properties": {
        "level": {"type": "string", "enum": list(areas_query.LEVELS)},
        "code": {"type": "string"},
        "label": {"type": "string"},
        "street": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "name": _TEXT_OR_NULL},
        },
        "requests": _COUNT,
        "open": _COUNT,
        "overdue": _COUNT,
        "top_categories": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"category": {"type": "string"}, "n": _COUNT},
            },
        },
        "rates": {
            "type": "object",
            "nullable": True,
            "properties": {
                "response": _NUMBER_OR_NULL,
                "resolution": _NUMBER_OR_NULL,
                "satisfaction": _NUMBER_OR_NULL,
                "composite": _NUMBER_OR_NULL,
                "callbacks": _COUNT,
            },
        },
    },
}


def _answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"200": {"description": description, "content": {JSON: {"schema": schema}}}}


@contribute
def _paths() -> dict[str, dict[str, Any]]:
    level = path_param(
        "level",
        "层级 street 街道、community 社区、grid 网格",
        {"type": "string", "enum": list(CODE_LENGTH)},
    )
    code = path_param(
        "code",
        "代码（街道 9 位、社区 12 位、网格 15 位）",
        {"type": "string", "pattern": "^[0-9]{9,15}$"},
    )

    def results(items: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["query", "results"],
            "properties": {
                "query": {"type": "string"},
                "results": {"type": "array", "items": items},
            },
        }

    return {
        "/api/search": {
            "get": operation(
                "搜索：社区、网格、街巷、地标、案件号、工单号或地址 search places and records",
                "api",
                QUERY["search.search"],
                _answer(
                    "结果 results",
                    results(RESULT_SCHEMA),
                ),
            )
        },
        "/api/geocode": {
            "get": operation(
                "地址解析：匹配级别、得分、坐标与所在街道社区网格 geocode an address",
                "api",
                QUERY["search.geocode"],
                _answer(
                    "匹配 matches",
                    results(MATCH_SCHEMA),
                ),
            )
        },
        "/api/reverse": {
            "get": operation(
                "逆地址解析：坐标所在街道、社区、网格与最近街巷 reverse geocode a point",
                "api",
                QUERY["search.reverse"],
                _answer("所在街道、社区、网格与最近街巷 the place", REVERSE_SCHEMA),
            )
        },
        "/api/areas/{level}/{code}": {
            "get": operation(
                "区域统计：诉求、未办结、超期、高发类别与三率 an area's figures",
                "api",
                [level, code, *QUERY["search.area"]],
                _answer("区域统计 figures", AREA_SCHEMA),
            )
        },
    }
