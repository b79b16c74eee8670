"""Open311 GeoReport v2 at `/open311/v2`: the request categories as services, the requests.

JSON only: `.json` resources; any other format extension is a 400. Errors come in
GeoReport's shape, `[{"code": 400, "description": "…"}]`, the description in Chinese and
English, naming the bad value. The services are the categories of the routing
configuration (`etl/config/departments.yaml`), the service code being the category itself.

Reads go through the caller's zone like every other endpoint (row-level security). A POST
needs a token (`api_key`, or `Authorization: Bearer`; never the session cookie: this
blueprint is exempt from CSRF) of a user who may file requests (district, commander, clerk,
grid officer). It is stored by the ETL's own steps for one record (`etl.intake`: validate,
locate, place, route, time) and written as `blockdata_reader` in the caller's zone, so the
policy of migration 0007 refuses a request located outside a street user's street (403);
its case (`cases`, in 受理 received, `reported_by` the caller) is made in the same
transaction, and the answer gives its `case_id`. Placing the point (every grid, every
lane) and refreshing the aggregates are the server's own work, done in its own role.

GET requests is paged with `page` (from 1) and `page_size` (1–1000, default 1000), newest
first; its window is at most 90 days (the spec's default and limit), which keeps OFFSET
cheap. A `Link: <…>; rel="next"` header says that a next page exists.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify, request, url_for
from werkzeug.exceptions import HTTPException

from app import auth, capabilities, db
from app.capabilities import INTAKE, api_key, does, logged_in, reads
from app.config import Settings
from app.errors import ApiError, BadRequest, Forbidden, NotFound, Unauthorized
from app.openapi import JSON, Param, contribute, names, operation, path_param
from etl import intake
from etl.aggregates import AggregatesZoneError, refresh_unless_busy
from etl.geocode import geocode
from etl.place import DEFAULT_BUDGET_MB, placer_for
from etl.rules import Limit, load_routing, load_time_limits
from layers.cases import create_case
from layers.queries import georeport
from layers.queries.georeport import CODE_LEVELS, DIGITS, LAYER
from layers.queries.params import (
    ParamError,
    check_params,
    parse_page_number,
    refusal,
    single,
)
from layers.registry import level_layer

log = logging.getLogger(__name__)
bp = Blueprint("open311", __name__, url_prefix="/open311/v2")

FORMAT = "json"
MAX_PAGE_SIZE = 1000
MAX_PAGE = 1_000_000
MAX_DESCRIPTION = 4000  # the spec's limit
MAX_ADDRESS = 500
MAX_CODE = 100
# Contact and client fields: checked, not stored (service_requests has no columns for them).
CONTACT_LIMITS = {
    "email": 254,
    "first_name": 100,
    "last_name": 100,
    "phone": 50,
    "device_id": 200,
    "account_id": 200,
    "media_url": 2000,
}
INSUFFICIENT_PRIVILEGE = "42501"  # SQLSTATE of a row-level security WITH CHECK refusal
# Query parameters, declared once: checked here, documented in /api/openapi.json.
COMMON_QUERY = (
    Param("jurisdiction_id", "管辖区 jurisdiction (one here: ignored)"),
    Param(auth.API_KEY, "API 令牌 the caller's token (or Authorization: Bearer)"),
)
LIST_QUERY = (
    *COMMON_QUERY,
    Param(
        "service_request_id",
        "诉求编号，逗号分隔；给出时忽略其他条件 ids, comma-separated; override every filter",
        example="1",
    ),
    Param("service_code", "服务代码（诉求类别），逗号分隔 categories, comma-separated"),
    Param("start_date", "受理时间起 earliest requested_datetime (ISO 8601 or a date)"),
    Param("end_date", "受理时间止 latest requested_datetime (ISO 8601 or a date)"),
    Param("status", "open / closed, 逗号分隔 comma-separated", example="open"),
    Param("bbox", "范围 minx,miny,maxx,maxy (WGS84)", example="116.30,39.90,116.34,39.92"),
    *(
        Param(
            level,
            f"{level} 代码（{level_layer(level).code_length} 位），逗号分隔 codes, comma-separated",
        )
        for level in CODE_LEVELS
    ),
    Param("department", "承办部门，逗号分隔 departments, comma-separated", example="城市管理部"),
    Param("page", "页码（从 1 起）page, from 1", {"type": "integer", "minimum": 1}),
    Param(
        "page_size",
        f"每页条数 requests per page (default and max {MAX_PAGE_SIZE})",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
    ),
)
COMMON_PARAMS = names(COMMON_QUERY)
LIST_PARAMS = names(LIST_QUERY)
POST_PARAMS = (
    *COMMON_PARAMS,
    "service_code",
    "lat",
    "long",
    "address_string",
    "address_id",
    "description",
    *CONTACT_LIMITS,
)
NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # tab and newlines are fine


def _error(status: int, description: str) -> Response:
    response = jsonify([{"code": status, "description": description}])
    response.status_code = status
    return response


@bp.errorhandler(ApiError)
@bp.errorhandler(ParamError)
def _api_error(exc: ApiError | ParamError) -> Response:
    return _error(exc.status, exc.message)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return _error(exc.code or 500, f"请求错误 {exc.name}: {exc.description}")


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error")
    return _error(500, "服务器内部错误 internal error")


def _json_only(fmt: str) -> None:
    if fmt != FORMAT:
        raise BadRequest(
            f"不支持的格式 unsupported format: {fmt!r} (only {FORMAT})", format=fmt[:20]
        )


# --- services -----------------------------------------------------------------------------


def _limit_text(limit: Limit) -> str:
    unit = "小时" if limit.unit == "hours" else "个工作日"
    return f"{limit.limit:g}{unit}"


def services() -> list[dict[str, Any]]:
    """One service per category of the routing configuration, in its order."""
    routing = load_routing()
    limits = load_time_limits()
    out = []
    for category, department in routing.by_category.items():
        limit = _limit_text(limits.by_category.get(category, limits.default))
        out.append(
            {
                "service_code": category,
                "service_name": category,
                "description": f"{category}：由{department}办理，办理时限{limit}",
                "metadata": False,
                "type": "realtime",
                "keywords": f"{category},{department}",
                "group": department,
            }
        )
    return out


@bp.get("/services.<fmt>")
@api_key
@logged_in
def services_list(fmt: str) -> Response:
    _json_only(fmt)
    check_params(request.args, COMMON_PARAMS)
    return jsonify(services())


@bp.get("/services/<service_code>.<fmt>")
@api_key
@logged_in
def service_definition(service_code: str, fmt: str) -> Response:
    _json_only(fmt)
    check_params(request.args, COMMON_PARAMS)
    if service_code not in load_routing().by_category:
        raise NotFound(f"未知服务代码 unknown service_code: {service_code[:MAX_CODE]!r}")
    return jsonify({"service_code": service_code, "attributes": []})


# --- reading requests ---------------------------------------------------------------------


def _settings() -> Settings:
    settings: Settings = current_app.config["BLOCKDATA_SETTINGS"]
    return settings


def _now() -> dt.datetime:
    """The app's clock, in the district's time zone."""
    return _settings().now()


@bp.get("/requests.<fmt>")
@api_key
@reads("service_requests")
def requests_list(fmt: str) -> Response:
    """The requests matching the filters, newest first, one page of them."""
    _json_only(fmt)
    auth.require_layer(LAYER)
    args = request.args
    check_params(args, LIST_PARAMS)
    zone = _settings().zone
    conds = georeport.conditions(args, _now(), zone)
    page = parse_page_number(single(args, "page"), "page", default=1, top=MAX_PAGE)
    size = parse_page_number(
        single(args, "page_size"), "page_size", default=MAX_PAGE_SIZE, top=MAX_PAGE_SIZE
    )
    found, more = georeport.page(db.connection(), conds, page, size, zone)
    response = jsonify(found)
    if more:
        params: dict[str, Any] = {k: v for k, v in args.lists() if k not in ("page", auth.API_KEY)}
        nxt = url_for("open311.requests_list", fmt=fmt, **params, page=page + 1)
        response.headers["Link"] = f'<{nxt}>; rel="next"'
    return response


@bp.get("/requests/<request_id>.<fmt>")
@api_key
@reads("service_requests")
def request_one(request_id: str, fmt: str) -> Response:
    """One request, as a one-element list (the spec's shape)."""
    _json_only(fmt)
    auth.require_layer(LAYER)
    check_params(request.args, COMMON_PARAMS)
    missing = NotFound(f"没有该诉求 no such service request: {request_id[:40]!r}")
    if not DIGITS.fullmatch(request_id):
        raise missing
    found = georeport.one(db.connection(), int(request_id), _settings().zone)
    if found is None:
        raise missing
    return jsonify([found])


# --- filing a request ---------------------------------------------------------------------


def _writer() -> auth.Principal:
    """The caller, when they may file requests: by token, in a writing role."""
    principal = auth.current()
    if principal is None or principal.via != "token":
        raise Unauthorized(
            "提交诉求需要 api_key 或 Bearer 令牌 a POST needs an api_key or a bearer token"
        )
    if not capabilities.may(principal.role, capabilities.INTAKE):
        raise Forbidden(f"该角色不能提交诉求 role {principal.role!r} may not file requests")
    return principal


def _fields() -> dict[str, str]:
    """The POSTed fields (form-encoded, or a JSON object), trimmed; empty ones dropped."""
    check_params(request.args, COMMON_PARAMS)
    raw: dict[str, Any] = {}
    if request.is_json:
        body = auth.json_body()  # 400, not a RecursionError, for a deeply nested body
        if not isinstance(body, dict):
            raise BadRequest("请求体应为 JSON 对象 the body must be a JSON object")
        raw = body
    else:
        if request.files:
            raise BadRequest("不接受上传文件 no file uploads: give a media_url")
        for name in request.form:
            values = request.form.getlist(name)
            if len(values) > 1:
                raise refusal(name, values, "参数重复", "parameter given more than once")
            raw[name] = values[0]
    fields: dict[str, str] = {}
    for name, value in raw.items():
        if name not in POST_PARAMS and not name.startswith("attribute["):
            raise BadRequest(
                f"未知参数 unknown parameter: {name[:40]!r}; 可用 allowed: "
                f"{', '.join(POST_PARAMS)}, attribute[…]",
                parameter=name[:40],
            )
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise refusal(name, value, "应为文本或数字", "must be text or a number")
        text = str(value).strip()
        if text:
            fields[name] = text
    return fields


def text_field(fields: dict[str, str], name: str, limit: int) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if len(value) > limit:
        raise BadRequest(
            f"{name} 过长 too long: {len(value)} characters (at most {limit})", parameter=name
        )
    if CONTROL.search(value):
        raise refusal(name, value[:40], "含控制字符", "contains control characters")
    return value


def coordinates_of(fields: dict[str, str]) -> tuple[str, str] | None:
    """(long, lat) as sent, checked to be decimal degrees; None when neither is given."""
    lng, lat = fields.get("long"), fields.get("lat")
    if lng is None and lat is None:
        return None
    if lng is None or lat is None:
        raise BadRequest(
            f"lat 与 long 须同时给出 lat and long go together: lat={lat!r}, long={lng!r}"
        )
    for name, value, top in (("long", lng, 180), ("lat", lat, 90)):
        if len(value) > 32 or not NUMBER.fullmatch(value) or not math.isfinite(float(value)):
            raise refusal(name, value, "坐标不是数字", "coordinates are not numbers")
        if abs(float(value)) > top:
            raise refusal(name, value, "坐标超出范围", f"must lie in -{top}…{top} (WGS84 degrees)")
    return lng, lat


def _placer_cache() -> Path | None:
    """The on-disk placer cache the CLI uses (`PLACER_CACHE_DIR` overrides); none in tests,
    whose grids are throwaway, unless they set it."""
    configured = current_app.config.get("PLACER_CACHE_DIR")
    if configured:
        return Path(configured)
    if current_app.testing:
        return None
    cache: Path = current_app.config["BLOCKDATA_SETTINGS"].var_dir / "cache"
    return cache


@contextmanager
def _as_server(zone: str) -> Iterator[sa.Connection]:
    """The server's own database role for a moment, in a savepoint; the caller's zone after.

    Placing a point needs every grid and geocoding every lane, whatever the caller's zone,
    and the aggregates are the server's bookkeeping: a reader confined to a street can do
    neither. Only fixed statements with bound parameters run here; the request row itself
    is written in the caller's zone. An error rolls the savepoint back, and the role with it.
    """
    conn = db.connection()
    with conn.begin_nested():
        db.unscope()
        yield conn
        db.scope(zone)


@dataclass(frozen=True)
class Filed:
    """A filed request: its row, its case (受理) and what the rules made of it."""

    request_id: int
    case_id: int
    prepared: intake.Prepared

    def value(self, name: str) -> Any:
        return self.prepared.value(name)


def file_request(
    principal: auth.Principal,
    category: str,
    description: str,
    coordinates: tuple[str, str] | None,
    address: str | None,
) -> Filed:
    """Store one request and its case in 受理 (received), in the request's transaction and
    the caller's zone: validated, located, placed (street, community, grid), routed and
    timed by the ETL's steps. 403 for a point outside the caller's zone. Shared by the
    Open311 POST and the 网格员上报 page (app/intake.py)."""
    quality = None
    with _as_server(principal.zone) as conn:
        # A cache that cannot be written is logged by placer_for; the request goes on.
        budget = current_app.config["BLOCKDATA_SETTINGS"].placement_mb or DEFAULT_BUDGET_MB
        placer = placer_for(conn, _placer_cache(), budget_mb=budget)
        if coordinates is None:
            assert address is not None
            found = geocode(conn, address)
            if found is None:
                raise refusal("address_string", address, "地址无法解析", "address not found")
            coordinates, quality = (repr(found.lng), repr(found.lat)), found.quality
    received = _now()
    submission = intake.Submission(
        category=category,
        description=description,
        received_at=received,
        lng=coordinates[0],
        lat=coordinates[1],
        address=address,
        geocode_quality=quality,
    )
    try:
        prepared = intake.prepare_one(submission, placer, zone=_settings().tz)
    except intake.Rejected as exc:
        raise BadRequest(exc.message, reason=exc.reason) from None
    street = prepared.value("street_code")
    conn = db.connection()
    try:
        with conn.begin_nested():
            request_id = intake.insert_one(conn, prepared)
            case = create_case(
                conn,
                kind="service_request",
                source_id=request_id,
                street_code=street,
                category=category,
                received_at=received,
                reported_by=principal.name,
            )
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != INSUFFICIENT_PRIVILEGE:
            raise
        raise Forbidden(
            f"不在辖区内 outside your zone: the location lies in street {street}, "
            f"your zone is {principal.zone}"
        ) from None
    try:
        with _as_server(principal.zone) as conn:
            refresh_unless_busy(conn, zone=_settings().tz)
    except AggregatesZoneError as exc:
        # The request is kept; its day stays marked for the rebuild the message asks for.
        log.warning("%s", exc)
    except sa.exc.DBAPIError as exc:
        # A full rebuild (DDL) is the owner's: the marks stay for the next refresh, as when
        # a bulk load holds the refresh lock (the savepoint gave the reader's role back).
        if getattr(exc.orig, "sqlstate", None) != INSUFFICIENT_PRIVILEGE:
            raise
        log.warning("open311: aggregates left for the next refresh (%s)", exc.orig)
    return Filed(request_id=request_id, case_id=int(case["id"]), prepared=prepared)


def notice(filed: Filed) -> str | None:
    """The service notice of a filed request: who handles it, by when."""
    return georeport.notice(filed.value("department"), filed.value("due_at"), _settings().zone)


@bp.post("/requests.<fmt>")
@api_key
@does(INTAKE)
def create_request(fmt: str) -> Response:
    """File one request and its case (受理): validated, located, placed, routed and timed
    by the ETL's steps; the answer names the case (`case_id`, beyond GeoReport's fields)."""
    _json_only(fmt)
    principal = _writer()
    fields = _fields()
    category = fields.get("service_code")
    if category is None:
        raise BadRequest("缺少 service_code service_code is required", parameter="service_code")
    if category not in load_routing().by_category:
        raise refusal("service_code", category[:MAX_CODE], "未知服务代码", "unknown (see services)")
    description = text_field(fields, "description", MAX_DESCRIPTION)
    if description is None:
        raise BadRequest("缺少诉求内容 description is required", parameter="description")
    for name, limit in CONTACT_LIMITS.items():
        text_field(fields, name, limit)
    address = text_field(fields, "address_string", MAX_ADDRESS)
    coordinates = coordinates_of(fields)
    if coordinates is None and address is None:
        raise BadRequest(
            "缺少位置 no location: give lat and long, or address_string"
            + (" (address_id is not supported)" if "address_id" in fields else ""),
            parameter="lat",
        )
    filed = file_request(principal, category, description, coordinates, address)
    auth.audit(
        "open311_post",
        rows=1,
        service_code=category,
        service_request_id=filed.request_id,
        case_id=filed.case_id,
        street=filed.value("street_code"),
    )
    return jsonify(
        [
            {
                "service_request_id": filed.request_id,
                "case_id": filed.case_id,
                "service_notice": notice(filed),
                "account_id": None,
            }
        ]
    )


# --- /api/openapi.json --------------------------------------------------------------------

_ERROR = {
    "description": "GeoReport 错误 [{code, description}]",
    "content": {
        JSON: {
            "schema": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"code": {"type": "integer"}, "description": {"type": "string"}},
                },
            }
        }
    },
}
_POST_BODY = {
    "type": "object",
    "required": ["service_code", "description"],
    "properties": {
        "service_code": {"type": "string", "description": "服务代码（诉求类别）"},
        "lat": {"type": "number", "description": "纬度 WGS84"},
        "long": {"type": "number", "description": "经度 WGS84"},
        "address_string": {"type": "string", "maxLength": MAX_ADDRESS},
        "description": {"type": "string", "maxLength": MAX_DESCRIPTION},
        "api_key": {"type": "string"},
        **{name: {"type": "string", "maxLength": n} for name, n in CONTACT_LIMITS.items()},
    },
}


def _georeport(op: dict[str, Any]) -> dict[str, Any]:
    """An operation whose errors have GeoReport's shape."""
    for code in ("400", "401", "403", "404"):
        if code in op["responses"]:
            op["responses"][code] = _ERROR
    return op


@contribute
def _paths() -> dict[str, dict[str, Any]]:
    """The Open311 part of /api/openapi.json."""
    codes = list(load_routing().by_category)
    service = path_param(
        "service_code", "服务代码（诉求类别）service code", {"type": "string", "enum": codes}
    )
    request_id = path_param(
        "service_request_id", "诉求编号 request id", {"type": "string", "pattern": "^[0-9]+$"}
    )
    body = {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": _POST_BODY},
            JSON: {"schema": _POST_BODY},
        },
    }
    return {
        f"{bp.url_prefix}/services.json": {
            "get": _georeport(operation("服务列表 the services", "open311", COMMON_QUERY))
        },
        f"{bp.url_prefix}/services/{{service_code}}.json": {
            "get": _georeport(
                operation("服务定义 a service definition", "open311", [service, *COMMON_QUERY])
            )
        },
        f"{bp.url_prefix}/requests.json": {
            "get": _georeport(operation("查询诉求 service requests", "open311", LIST_QUERY)),
            "post": _georeport(
                operation(
                    "提交诉求 file a service request",
                    "open311",
                    COMMON_QUERY,
                    requestBody=body,
                )
            ),
        },
        f"{bp.url_prefix}/requests/{{service_request_id}}.json": {
            "get": _georeport(
                operation("单个诉求 one service request", "open311", [request_id, *COMMON_QUERY])
            )
        },
    }
