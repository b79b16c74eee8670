"""`/api/cases` and `/api/whistles`: the case lifecycle (全响应) and 吹哨报到 over JSON.

Thin views: parse (layers.queries.params) → layers.cases / layers.whistles (writes, in the
request's transaction, as the reader in the caller's zone) or layers.queries.cases (reads) →
JSON. Every view declares `@does(CASES)`: the district, commanders and the street centre's
clerk. Every time read or compared is the app's clock in the district's zone; a time given
without an offset is local time there. A refusal is `Refused` (400 / 403 / 404 / 409, a JSON
error); a transition and a whistle's every move are audited.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from app import auth, db
from app.api import STREET_PARAM
from app.capabilities import does
from app.config import Settings
from app.errors import BadRequest, Forbidden, NotFound
from app.openapi import JSON, Param, contribute, names, operation, path_param
from layers import whistles as w
from layers.cases import Actor, Refused, transition
from layers.cases.machine import ACTIONS, STATES
from layers.cases.tables import KINDS
from layers.queries import access, params, scorecards
from layers.queries import cases as query
from layers.queries.access import CASES
from layers.queries.due import STATES as DUE_STATES
from layers.queries.params import refusal
from layers.units import CODE_LENGTH

bp = Blueprint("cases", __name__, url_prefix="/api")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_TEXT = 500
MAX_ID = 2**63 - 1
FIRST_DATE = dt.date(2000, 1, 1)
LAST_DATE = dt.date(2099, 12, 31)
STREET = re.compile(r"[0-9]{9}")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
TIME_FIELDS = frozenset({"due_at"})  # transition fields that are times (ISO 8601 strings)
ID = f"int(max={MAX_ID})"

UNIT_PARAM = Param(
    "unit",
    "承办单位代码（主办或协办）unit code, main or assisting",
    {"type": "string", "maxLength": CODE_LENGTH},
    "district-market",
)
GRID_PARAM = Param(
    "grid", "网格代码 grid code", {"type": "string", "maxLength": 15}, "110102001001001"
)
QUERY: dict[str, tuple[Param, ...]] = {
    "cases.list_cases": (
        STREET_PARAM,
        UNIT_PARAM,
        Param(
            "state",
            "状态，逗号分隔 states, comma-separated: " + ", ".join(STATES),
            {"type": "string"},
            "dispatched,accepted",
        ),
        Param("category", "类别 category", {"type": "string", "maxLength": 100}, "噪声扰民"),
        Param(
            "due_state",
            "时限状态 due state: due_soon 临期, overdue 超期, resolved_late 超期办结",
            {"type": "string", "enum": list(DUE_STATES)},
            "overdue",
        ),
        Param("kind", "案件类型 kind", {"type": "string", "enum": list(KINDS)}, "service_request"),
        GRID_PARAM,
        Param(
            "source",
            f"来源：诉求的渠道（如 12345），或 {query.ENFORCEMENT}（执法案件）"
            f" source: a request's channel, or {query.ENFORCEMENT}",
            {"type": "string", "maxLength": 100},
            query.ENFORCEMENT,
        ),
        Param(
            "updated_after",
            "只要此时刻之后有变动（新建或流转）的案件 changed strictly after (ISO 8601)",
            {"type": "string", "format": "date-time"},
            "2026-11-18T08:00:00+08:00",
        ),
        Param(
            "limit",
            f"每页条数 per page (default {DEFAULT_LIMIT})",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
            "10",
        ),
        Param("cursor", "分页游标（上一页的 next）the previous page's `next`"),
    ),
    "cases.case": (),
    "cases.case_load": (
        STREET_PARAM,
        UNIT_PARAM,
    ),
    "cases.cases_overdue": (),
    "cases.case_transition": (),
    "cases.list_whistles": (
        STREET_PARAM,
        Param(
            "to_rate",
            "也列出单位已办结、尚待评价的吹哨 also the whistles with a unit still to rate",
            {"type": "boolean", "default": False},
            "true",
        ),
    ),
    "cases.blow_whistle": (),
    "cases.arrival": (),
    "cases.completion": (),
    "cases.rating": (),
}


@bp.before_request
def _declared_params_only() -> None:
    """400 for any query parameter the endpoint does not declare (as /api's own rule)."""
    endpoint = request.endpoint or ""
    if endpoint in QUERY:
        params.check_params(request.args, names(QUERY[endpoint]))


def _settings() -> Settings:
    settings: Settings = current_app.config["BLOCKDATA_SETTINGS"]
    return settings


def _now() -> dt.datetime:
    """The app's clock in the district's zone."""
    return _settings().now()


def _actor() -> Actor:
    """Who acts: the logged-in user's name, role and unit."""
    principal = auth.current()
    if principal is None:  # every view here declares an action: never anonymous
        raise Forbidden("无权办理案件 not logged in")
    return Actor(principal.name, principal.role, principal.unit)


# --- parsing ----------------------------------------------------------------------------------


def _arg_choice(name: str, choices: tuple[str, ...] | list[str]) -> str | None:
    value = request.args.get(name) or None
    if value is not None and value not in choices:
        raise refusal(name, value, "取值无效", f"must be one of {', '.join(choices)}")
    return value


def _street(value: Any, name: str = "street") -> str:
    if not isinstance(value, str) or not STREET.fullmatch(value):
        raise refusal(name, value, "街道代码应为 9 位数字", "street code must be 9 digits")
    return value


def _filter() -> query.CaseFilter:
    street = request.args.get("street") or None
    states = None
    if request.args.get("state"):
        states = tuple(s.strip() for s in request.args["state"].split(",") if s.strip())
        unknown = [s for s in states if s not in STATES]
        if unknown or not states:
            raise refusal(
                "state", request.args["state"], "状态无效", f"states are {', '.join(STATES)}"
            )
    return query.CaseFilter(
        street=None if street is None else _street(street),
        unit=params.optional_text(request.args, "unit", CODE_LENGTH),
        states=states,
        category=params.optional_text(request.args, "category", 100),
        due_state=_arg_choice("due_state", DUE_STATES),
        kind=_arg_choice("kind", KINDS),
        grid=params.optional_text(request.args, "grid", 15),
        source=params.optional_text(request.args, "source", 100),
        updated_after=_updated_after(),
        **_reach(),
    )


def _reach() -> dict[str, str | None]:
    """The caller's own street (a street's user) or unit (a department user), for
    `CaseFilter.reach_street` / `reach_unit`."""
    principal = auth.current()
    if principal is None:
        return {}
    zone = principal.zone
    street = zone if zone not in (access.DISTRICT, access.NO_STREET) else None
    unit = access.unit_of(principal.role, principal.unit) or None
    return {"reach_street": street, "reach_unit": unit}


def _updated_after() -> dt.datetime | None:
    value = request.args.get("updated_after") or None
    return None if value is None else _instant(value, "updated_after")


def _body() -> dict[str, Any]:
    """The JSON object of the request; 400 for anything else, or a NUL in any string."""
    body = auth.json_body()
    if not isinstance(body, dict):
        raise BadRequest("请求体应为 JSON 对象 the body must be a JSON object")
    _no_nul(body, "body")
    return body


def _no_nul(body: Any, where: str) -> None:
    """400 for a NUL character in any string of `body` (walked without recursion: a JSON
    body may be nested as deep as the parser allows)."""
    stack = [(body, where)]
    while stack:
        value, at = stack.pop()
        if isinstance(value, str) and "\x00" in value:
            raise BadRequest(f"含空字符 (NUL) {at} contains a NUL character", field=at)
        if isinstance(value, dict):
            stack += [(k, at) for k in value] + [(v, str(k)[:40]) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [(v, at) for v in value]


def _integer(body: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if type(value) is not int or not 0 <= value <= MAX_ID:
        raise BadRequest(f"{name} 应为非负整数 {name} must be a whole number ≥ 0", field=name)
    return value


def _text(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip() and not required):
        if required:
            raise BadRequest(f"缺少 {name} ({name} is required)", field=name)
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise BadRequest(
            f"{name} 应为不超过 {MAX_TEXT} 字的文本 ({name}: text of at most {MAX_TEXT})",
            field=name,
        )
    return value


def _instant(value: Any, name: str) -> dt.datetime:
    """An ISO 8601 time; without an offset it is local time in the district's zone."""
    if not isinstance(value, str) or not value.strip():
        raise refusal(name, value, "时间应为 ISO 8601 字符串", "an ISO 8601 date-time string")
    return params.parse_since(
        value, name, default=_now(), zone=_settings().zone, first=FIRST_DATE, last=LAST_DATE
    )


def _coordinate(body: dict[str, Any], name: str, bound: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not -bound <= value <= bound
    ):
        raise BadRequest(f"{name} 应为 −{bound}…{bound} 的数 ({name} out of range)", field=name)
    return float(value)


def _unit_code(value: Any, name: str = "unit_code") -> str:
    if not isinstance(value, str) or not 0 < len(value) <= CODE_LENGTH or CONTROL.search(value):
        raise BadRequest(f"单位代码无效 bad unit code: {str(value)[:80]!r}", field=name)
    return value


# --- cases ------------------------------------------------------------------------------------


@bp.get("/cases")
@does(CASES)
def list_cases() -> Response:
    """The cases of the caller's zone, filtered, by due time then id, a page at a time."""
    chosen = _filter()
    limit = params.parse_count(request.args.get("limit"), default=DEFAULT_LIMIT, maximum=MAX_LIMIT)
    cursor = request.args.get("cursor") or None
    after = None if cursor is None else query.parse_cursor(cursor)
    return jsonify(query.list_cases(db.connection(), chosen, _now(), limit=limit, after=after))


@bp.get("/cases/load")
@does(CASES)
def case_load() -> Response:
    """The unit load board: per main unit, open cases, 临期 and 超期, in the caller's view."""
    street = request.args.get("street") or None
    unit = params.optional_text(request.args, "unit", CODE_LENGTH)
    reach = _reach()  # the same rows as without (row-level security), read by index
    found = query.load(
        db.connection(),
        _now(),
        street=reach.get("reach_street") if street is None else _street(street),
        unit=reach.get("reach_unit") if unit is None else unit,
    )
    return jsonify({"units": found})


@bp.get("/cases/overdue")
@does(CASES)
def cases_overdue() -> Response:
    """超期 per street and per unit (the district overview), in the caller's view."""
    return jsonify(query.overdue(db.connection(), _now()))


def _case_or_404(case_id: int) -> dict[str, Any]:
    principal = auth.current()
    found = query.one_case(
        db.connection(),
        case_id,
        _now(),
        role=principal.role if principal else None,
        unit=principal.unit if principal else None,
    )
    if found is None:
        raise NotFound(f"案件不存在 no case {case_id}", case_id=case_id)
    return found


@bp.get(f"/cases/<{ID}:case_id>")
@does(CASES)
def case(case_id: int) -> Response:
    """One case with its history, oldest first."""
    return jsonify(_case_or_404(case_id))


@bp.post(f"/cases/<{ID}:case_id>/transitions")
@does(CASES)
def case_transition(case_id: int) -> tuple[Response, int]:
    """Take an action on a case at the version the caller read: 201 and the new case."""
    body = _body()
    action = body.get("action")
    if not isinstance(action, str) or not action:
        raise BadRequest("缺少操作 action is required", field="action")
    version = _integer(body, "version")
    assert version is not None
    note = _text(body, "note")
    fields = {k: v for k, v in body.items() if k not in ("action", "version")}
    if action != "supervise":  # the note of 督办 is its field; of any other action, the row's
        fields.pop("note", None)
    for name in TIME_FIELDS & set(fields):
        fields[name] = _instant(fields[name], name)
    actor = _actor()
    try:
        transition(
            db.connection(),
            case_id,
            action,
            version,
            actor,
            fields,
            _now(),
            note=note,
            zone=_settings().tz,
        )
    except OverflowError:
        raise BadRequest("时间超出范围 time out of range") from None
    auth.audit("case_transition", case_id=case_id, case_action=action, version=version)
    return jsonify(_case_or_404(case_id)), 201


# --- whistles ---------------------------------------------------------------------------------


@bp.get("/whistles")
@does(CASES)
def list_whistles() -> Response:
    """The whistles of the caller's zone with a unit still to complete (`to_rate`: or still
    to rate); `may_rate`: whether the caller may rate the units (the street's roles)."""
    street = request.args.get("street") or None
    to_rate = (request.args.get("to_rate") or "false").lower()
    if to_rate not in ("true", "false"):
        raise refusal("to_rate", to_rate, "应为 true 或 false", "must be true or false")
    found = query.open_whistles(
        db.connection(),
        _settings().zone,
        None if street is None else _street(street),
        to_rate=to_rate == "true",
    )
    return jsonify({"whistles": found, "may_rate": _actor().role in w.BLOWERS})


def _whistle_or_404(whistle_id: int) -> dict[str, Any]:
    found = query.one_whistle(db.connection(), whistle_id, _settings().zone)
    if found is None:
        raise NotFound(f"没有该哨 no whistle {whistle_id}", whistle_id=whistle_id)
    return found


@bp.post("/whistles")
@does(CASES)
def blow_whistle() -> tuple[Response, int]:
    """吹哨: summon units to a case or a place of a street; 201 and the whistle."""
    body = _body()
    street = _street(body.get("street"))
    principal = auth.current()
    if principal is not None and principal.zone not in ("*", street):
        raise Forbidden(f"无权在其他街道吹哨 not your street: {street}")
    if not scorecards.street_exists(db.connection(), street):
        raise BadRequest(f"未知街道 unknown street: {street}", field="street")
    kind = body.get("target_kind")
    if kind not in w.TARGETS:
        raise BadRequest(f"吹哨对象无效 target_kind must be one of {', '.join(w.TARGETS)}")
    case_id = _integer(body, "case_id", required=False)
    ref = _text(body, "target_ref")
    codes = body.get("units")
    if not isinstance(codes, list) or not codes or len(codes) > w.MAX_UNITS:
        raise BadRequest(f"须召集 1 至 {w.MAX_UNITS} 个单位 (units: 1 to {w.MAX_UNITS})")
    units = [_unit_code(c, "units") for c in codes]
    whistle_id = w.blow(
        db.connection(),
        street=street,
        target=w.Place(kind, case_id=case_id, ref=ref),
        unit_codes=units,
        reason=_text(body, "reason", required=True) or "",
        meeting_point=_text(body, "meeting_point", required=True) or "",
        meet_at=_instant(body.get("meet_at"), "meet_at"),
        actor=_actor(),
        now=_now(),
        lng=_coordinate(body, "lng", 180),
        lat=_coordinate(body, "lat", 90),
    )
    auth.audit("whistle_blow", whistle_id=whistle_id, street=street, units=units)
    return jsonify(_whistle_or_404(whistle_id)), 201


UNIT_ROUTE = f"/whistles/<{ID}:whistle_id>/units/<unit_code>"


@bp.post(f"{UNIT_ROUTE}/arrival")
@does(CASES)
def arrival(whistle_id: int, unit_code: str) -> Response:
    """报到: the unit has arrived (its delay is in the answer's units)."""
    unit = _unit_code(unit_code)
    w.report_arrival(db.connection(), whistle_id, unit, _actor(), _now())
    auth.audit("whistle_arrival", whistle_id=whistle_id, unit=unit)
    return jsonify(_whistle_or_404(whistle_id))


@bp.post(f"{UNIT_ROUTE}/completion")
@does(CASES)
def completion(whistle_id: int, unit_code: str) -> Response:
    """The unit has done its part (an optional `note`)."""
    unit = _unit_code(unit_code)
    body = _body() if request.get_data() else {}
    note = _text(body, "note")
    w.report_completion(db.connection(), whistle_id, unit, _actor(), _now(), note=note)
    auth.audit("whistle_completion", whistle_id=whistle_id, unit=unit)
    return jsonify(_whistle_or_404(whistle_id))


@bp.post(f"{UNIT_ROUTE}/rating")
@does(CASES)
def rating(whistle_id: int, unit_code: str) -> Response:
    """The street rates a unit that has completed: `rating` 满意 / 基本满意 / 不满意."""
    unit = _unit_code(unit_code)
    body = _body()
    value = body.get("rating")
    if not isinstance(value, str):
        raise Refused(400, "缺少评价 rating is required", field="rating")
    comment = _text(body, "comment")
    w.rate(db.connection(), whistle_id, unit, value, _actor(), _now(), comment=comment)
    auth.audit("whistle_rating", whistle_id=whistle_id, unit=unit, rating=value)
    return jsonify(_whistle_or_404(whistle_id))


# --- the OpenAPI part -------------------------------------------------------------------------


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": schema}}}


def _answer(code: str, schema: str, description: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {code: {"description": description, "content": {JSON: {"schema": ref}}}}


@contribute
def _paths() -> dict[str, dict[str, Any]]:
    from app.openapi import errors

    case_id = path_param(
        "case_id", "案件编号 case id", {"type": "integer", "minimum": 0, "maximum": MAX_ID}
    )
    whistle_id = path_param(
        "whistle_id", "吹哨编号 whistle id", {"type": "integer", "minimum": 0, "maximum": MAX_ID}
    )
    unit = path_param("unit_code", "被召集单位代码 summoned unit's code", {"type": "string"})
    text = {"type": "string", "maxLength": MAX_TEXT}
    transition_body = {
        "type": "object",
        "required": ["action", "version"],
        "properties": {
            "action": {"type": "string", "enum": list(ACTIONS)},
            "version": {"type": "integer", "minimum": 0},
            "note": text,
            "main_unit": {"type": "string"},
            "assisting_units": {"type": "array", "items": {"type": "string"}},
            "result": text,
            "reason": text,
            "valid": {"type": "boolean"},
            "contacted": {"type": "boolean"},
            "solved": {"type": "boolean"},
            "rating": {"type": "string", "enum": list(w.RATINGS)},
            "due_at": {"type": "string", "format": "date-time"},
            "hours": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
        },
    }
    blow_body = {
        "type": "object",
        "required": ["street", "target_kind", "units", "reason", "meeting_point", "meet_at"],
        "properties": {
            "street": {"type": "string", "pattern": "^[0-9]{9}$"},
            "target_kind": {"type": "string", "enum": list(w.TARGETS)},
            "case_id": {"type": "integer", "minimum": 0},
            "target_ref": text,
            "units": {
                "type": "array",
                "minItems": 1,
                "maxItems": w.MAX_UNITS,
                "items": {"type": "string", "maxLength": CODE_LENGTH},
            },
            "reason": text,
            "meeting_point": text,
            "meet_at": {"type": "string", "format": "date-time"},
            "lng": {"type": "number", "minimum": -180, "maximum": 180},
            "lat": {"type": "number", "minimum": -90, "maximum": 90},
        },
    }
    done_body = {"required": False, "content": {JSON: {"schema": _object_of(note=text)}}}
    rating_body = _json_body(
        {
            "type": "object",
            "required": ["rating"],
            "properties": {
                "rating": {"type": "string", "enum": list(w.RATINGS)},
                "comment": text,
            },
        }
    )
    unit_ok = {**_answer("200", "Whistle", "该哨及其单位 the whistle"), **errors(409)}
    return {
        "/api/cases": {
            "get": operation(
                "案件列表：筛选、按时限排序、游标分页、按状态与单位计数 cases, filtered and paged",
                "api",
                QUERY["cases.list_cases"],
            )
        },
        "/api/cases/{case_id}": {
            "get": operation(
                "案件及其流转记录（oldest first）与当前用户可办理的操作 actions"
                " one case with its history and the caller's possible actions",
                "api",
                [case_id],
            )
        },
        "/api/cases/load": {
            "get": operation(
                "承办单位负荷：每个主办单位的未办结、临期、超期案件数 the unit load board",
                "api",
                QUERY["cases.case_load"],
            )
        },
        "/api/cases/overdue": {
            "get": operation(
                "超期统计：按街道与承办单位 overdue per street and per unit",
                "api",
                QUERY["cases.cases_overdue"],
            )
        },
        "/api/cases/{case_id}/transitions": {
            "post": operation(
                "案件流转：派单、督办、回访…（version 为读取时的版本）take an action on a case",
                "api",
                [case_id],
                {**_answer("201", "Case", "流转后的案件 the case after the action"), **errors(409)},
                requestBody=_json_body(transition_body),
            )
        },
        "/api/whistles": {
            "get": operation(
                "进行中的吹哨（to_rate：含待评价的）whistles with a unit still to complete"
                " (to_rate: or to rate), and whether the caller may rate",
                "api",
                QUERY["cases.list_whistles"],
            ),
            "post": operation(
                "吹哨：召集单位到案件或地点 blow a whistle",
                "api",
                (),
                _answer("201", "Whistle", "该哨 the whistle"),
                requestBody=_json_body(blow_body),
            ),
        },
        "/api/whistles/{whistle_id}/units/{unit_code}/arrival": {
            "post": operation(
                "报到 a summoned unit has arrived", "api", [whistle_id, unit], unit_ok
            )
        },
        "/api/whistles/{whistle_id}/units/{unit_code}/completion": {
            "post": operation(
                "办结 a summoned unit has done its part",
                "api",
                [whistle_id, unit],
                unit_ok,
                requestBody=done_body,
            )
        },
        "/api/whistles/{whistle_id}/units/{unit_code}/rating": {
            "post": operation(
                "评价 the street rates a unit that has completed",
                "api",
                [whistle_id, unit],
                unit_ok,
                requestBody=rating_body,
            )
        },
    }


def _object_of(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}
