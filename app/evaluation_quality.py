"""`/api/evaluation/departments` and `/api/evaluation/guards`: the streets' rating of the
departments and the data-quality guards beside the rates they would inflate (考评).

Thin views: parse (layers.queries.params) → layers.queries.departments / guards → JSON. A
window is `period=YYYY-MM` (a calendar month) or `since` and `until` (local dates, both
included; `since` alone runs to today, `until` alone from the first of its month); neither:
this month. Every view declares `@reads("service_requests")`: the roles
that read the requests (district, analyst, commander — and the assessor where its role reads
them); a commander's connection is confined to its street by row-level security, so it sees
its street's guards and how the departments served its street. Dates are the district's
local days, "now" the app's clock.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify, request

from app import auth, db
from app.capabilities import reads
from app.config import Settings
from app.errors import Forbidden
from app.openapi import JSON, Param, contribute, names, operation, path_param
from etl.aggregates import load_rates
from layers.queries import access, params
from layers.queries import departments as dept_query
from layers.queries import guards as guard_query
from layers.queries.params import ParamError, refusal
from layers.queries.scorecards import street_directory

bp = Blueprint("evaluation_quality", __name__, url_prefix="/api/evaluation")

FIRST_DATE = dt.date(2000, 1, 1)
LAST_DATE = dt.date(2099, 12, 31)
MAX_DAYS = 366
DEFAULT_LIMIT = 50
STREET = re.compile(r"[0-9]{9}")

WINDOW = (
    Param(
        "period",
        "考评周期：月份 YYYY-MM（默认本月）period: a calendar month",
        {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
        "2026-11",
    ),
    Param(
        "since",
        "起始日期 YYYY-MM-DD（与 until 一起，代替 period）first local day",
        {"type": "string", "format": "date"},
        "2026-11-01",
    ),
    Param(
        "until",
        "结束日期 YYYY-MM-DD（含当日）last local day, included",
        {"type": "string", "format": "date"},
        "2026-11-30",
    ),
)
QUERY: dict[str, tuple[Param, ...]] = {
    "evaluation_quality.departments": WINDOW,
    "evaluation_quality.guards": WINDOW,
    "evaluation_quality.guard": (
        *WINDOW,
        Param(
            "street",
            "街道代码（9 位）street code",
            {"type": "string", "pattern": "^[0-9]{9}$"},
            "110102001",
        ),
        Param(
            "limit",
            f"每页条数 per page (default {DEFAULT_LIMIT})",
            {
                "type": "integer",
                "minimum": 1,
                "maximum": guard_query.MAX_LIMIT,
                "default": DEFAULT_LIMIT,
            },
            "20",
        ),
        Param(
            "offset",
            "跳过的条数 records skipped (default 0)",
            {"type": "integer", "minimum": 0, "maximum": guard_query.MAX_OFFSET, "default": 0},
            "0",
        ),
    ),
}


def _checked(view: str) -> Settings:
    """The app's settings, once the query names only the parameters `view` declares (400
    for any other, as /api's rule)."""
    params.check_params(request.args, names(QUERY[f"evaluation_quality.{view}"]))
    found: Settings = current_app.config["BLOCKDATA_SETTINGS"]
    return found


def _day(name: str) -> dt.date | None:
    value = params.single(request.args, name)
    if not value:
        return None
    return params.parse_day(value, name, default=FIRST_DATE, first=FIRST_DATE, last=LAST_DATE)


def window(settings: Settings) -> tuple[dt.date, dt.date]:
    """The local days [since, until] of `period` or of `since` and `until` (`until` alone: from
    the first of its month; `since` alone: up to today); this month when none is given."""
    today = settings.today()
    period = params.single(request.args, "period")
    since, until = _day("since"), _day("until")
    if period and (since or until):
        raise ParamError(
            "period 与 since/until 只能给出一种 give either period or since and until", "period"
        )
    if since or until:
        until = until or today
        since = since or until.replace(day=1)
        if since > until:
            raise refusal(
                "since", since.isoformat(), "起始日期晚于结束日期", "since is after until"
            )
        if (until - since).days + 1 > MAX_DAYS:
            raise refusal(
                "until", until.isoformat(), "时间窗口超过一年", f"longer than {MAX_DAYS} days"
            )
        return since, until
    month = params.parse_month(period, today=today, first=FIRST_DATE, name="period")
    end = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    return month, end


def _window_json(since: dt.date, until: dt.date) -> dict[str, str]:
    return {"since": since.isoformat(), "until": until.isoformat()}


@bp.get("/departments")
@reads("service_requests")
def departments() -> Response:
    """Per unit: whistles, arrival delays, the streets' ratings, cases, on-time resolution,
    return rate, score and rank."""
    settings = _checked("departments")
    since, until = window(settings)
    rows = dept_query.department_ratings(
        db.connection(), since, until, settings.tz, now=settings.now()
    )
    return jsonify(
        {
            **_window_json(since, until),
            "weights": dept_query.WEIGHTS,
            "components": dept_query.COMPONENTS,
            "departments": rows,
        }
    )


def _names(codes: list[str]) -> dict[str, str]:
    """Street names (public: the street directory) of `codes`."""
    d = street_directory
    found = db.connection().execute(sa.select(d.c.code, d.c.name).where(d.c.code.in_(codes)))
    return {code: name for code, name in found}


@bp.get("/guards")
@reads("service_requests")
def guards() -> Response:
    """Per street the caller sees: each guard's count beside the rate it would inflate."""
    settings = _checked("guards")
    since, until = window(settings)
    conn = db.connection()
    counts = guard_query.guard_counts(conn, since, until, settings.tz)
    rates = guard_query.street_rates(conn, since, until, load_rates())
    named = _names(list(counts))
    streets = [
        {"code": code, "name": named.get(code), "counts": found, "rates": rates.get(code)}
        for code, found in sorted(counts.items())
    ]
    return jsonify({**_window_json(since, until), "guards": guard_query.GUARDS, "streets": streets})


def _street() -> str | None:
    value = params.single(request.args, "street")
    if not value:
        return None
    if not STREET.fullmatch(value):
        raise refusal("street", value, "街道代码应为 9 位数字", "street code must be 9 digits")
    principal = auth.current()
    zone = principal.zone if principal is not None else access.DISTRICT
    if zone != access.DISTRICT and zone != value:
        raise Forbidden(f"无权查看其他街道 not your street: {value}")
    return value


@bp.get("/guards/<guard>")
@reads("service_requests")
def guard(guard: str) -> Response:
    """The records behind one guard, a page at a time (limit/offset, by receipt time)."""
    settings = _checked("guard")
    since, until = window(settings)
    street = _street()
    limit = params.parse_count(
        request.args.get("limit"), default=DEFAULT_LIMIT, maximum=guard_query.MAX_LIMIT
    )
    offset_text = request.args.get("offset") or "0"
    if not re.fullmatch(r"[0-9]{1,7}", offset_text) or int(offset_text) > guard_query.MAX_OFFSET:
        raise refusal(
            "offset", offset_text, "应为非负整数", f"an integer in 0…{guard_query.MAX_OFFSET}"
        )
    found = guard_query.guard_records(
        db.connection(),
        guard,
        since,
        until,
        settings.tz,
        street=street,
        limit=limit,
        offset=int(offset_text),
    )
    return jsonify(found)


_NUMBER = {"type": "number", "nullable": True}
_COUNT = {"type": "integer"}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


def _ok(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"200": {"description": description, "content": {JSON: {"schema": schema}}}}


@contribute
def _paths() -> dict[str, dict[str, Any]]:
    text = {"type": "string"}
    window_props = {"since": text, "until": text}
    unit = _object(
        ["code", "score", "rank", "whistles", "ratings", "cases", "components"],
        code=text,
        name={"type": "string", "nullable": True},
        kind={"type": "string", "nullable": True},
        street_code={"type": "string", "nullable": True},
        whistles={"type": "object"},
        ratings={"type": "object"},
        rated=_COUNT,
        rating_rate=_NUMBER,
        cases={"type": "object"},
        on_time_rate=_NUMBER,
        return_rate=_NUMBER,
        components={"type": "object"},
        score=_NUMBER,
        rank=_COUNT,
    )
    departments_body = _object(
        ["since", "until", "departments"],
        **window_props,
        weights={"type": "object"},
        components={"type": "object"},
        departments={"type": "array", "items": unit},
    )
    street = _object(
        ["code", "counts"],
        code=text,
        name={"type": "string", "nullable": True},
        counts=_object(list(guard_query.GUARDS), **dict.fromkeys(guard_query.GUARDS, _COUNT)),
        rates={"type": "object", "nullable": True},
    )
    guards_body = _object(
        ["since", "until", "guards", "streets"],
        **window_props,
        guards={"type": "object"},
        streets={"type": "array", "items": street},
    )
    records_body = _object(
        ["guard", "total", "limit", "offset", "records"],
        **window_props,
        guard=text,
        name=text,
        inflates=text,
        street={"type": "string", "nullable": True},
        total=_COUNT,
        limit=_COUNT,
        offset=_COUNT,
        records={"type": "array", "items": {"type": "object"}},
    )
    guard_name = path_param(
        "guard",
        "校验项 guard: " + ", ".join(f"{k} {v['name']}" for k, v in guard_query.GUARDS.items()),
        {"type": "string", "enum": list(guard_query.GUARDS)},
    )
    return {
        "/api/evaluation/departments": {
            "get": operation(
                "街道评价部门：吹哨报到、到场延迟、评价、按时办结、退单率、得分与排名"
                " departments rated by the streets",
                "api",
                QUERY["evaluation_quality.departments"],
                _ok(departments_body, "各承办单位 every unit"),
            )
        },
        "/api/evaluation/guards": {
            "get": operation(
                "数据质量校验：各街道每项的条数与其抬高的指标 data-quality guards per street",
                "api",
                QUERY["evaluation_quality.guards"],
                _ok(guards_body, "各街道 every street the caller sees"),
            )
        },
        "/api/evaluation/guards/{guard}": {
            "get": operation(
                "数据质量校验的明细记录（分页）the records behind a guard",
                "api",
                [guard_name, *QUERY["evaluation_quality.guard"]],
                _ok(records_body, "一页记录 a page of records"),
            )
        },
    }
