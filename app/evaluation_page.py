"""The evaluation page (/evaluation, 考评) and its drill-down API (/api/evaluation/drill).

The page is a shell: static/js/evaluation.js draws the ranking, the charts (ECharts, vendored
in static/vendor/echarts/), the "what if" panel and the versions from the evaluation API
(app/evaluation.py: /api/evaluation/periods/<label>, …/what-if, …/versions, …/publish),
whose answer is what the caller may see — a commander gets the published ranking and its own
street's detail only, so the page draws what it is given. Every value is set as text.

The drill-down answers "which communities, grids and cases are behind this figure": the three
rates of a unit's children over the period's window (layers/queries/drill.py), through the
caller's row-level security (a commander drills into its own street only).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from app import auth, db
from app.capabilities import page, reads
from app.config import Settings
from app.errors import NotFound
from app.openapi import JSON, Param, contribute, names, operation
from etl.aggregates import load_rates
from layers.evaluation.periods import PeriodError, period_window
from layers.evaluation.scheme import Scheme, UnknownScheme, load_scheme
from layers.queries import drill as drill_query
from layers.queries import params

bp = Blueprint("evaluation_page", __name__)

FIRST_DATE = dt.date(2000, 1, 1)
LAST_DATE = dt.date(2099, 12, 31)
MAX_WINDOW_DAYS = 1096  # three years, a leap day included
CODE_LENGTH = {"street": 9, "community": 12, "grid": 15}

DRILL_PARAMS = (
    Param(
        "level",
        "层级：district 全区（各街道）、street 街道（各社区）、community 社区（各网格）、grid 网格",
        {"type": "string", "enum": list(drill_query.LEVELS)},
        example="district",
    ),
    Param("code", "单位代码（街道 9 位、社区 12 位、网格 15 位；全区不需要）", example="110102001"),
    Param(
        "period",
        "考评期（如 2026-11、2026Q4、2026），按考评方案的周期取其起止日期",
        example="2026-11",
    ),
    Param("scheme", "考评方案代码（缺省：最新的方案）；与 period 同用", example="xicheng"),
    Param(
        "since",
        "考评期第一天 YYYY-MM-DD（缺省：until 所在月的第一天）",
        {"type": "string", "format": "date"},
    ),
    Param("until", "考评期最后一天 YYYY-MM-DD（缺省：今天）", {"type": "string", "format": "date"}),
)


def _settings() -> Settings:
    settings: Settings = current_app.config["BLOCKDATA_SETTINGS"]
    return settings


@bp.get("/evaluation")
@page("evaluation")
def evaluation() -> Response:
    """考评: the ranking of a period, its charts, the what-if weighting, the published
    versions and the drill-down; drawn by static/js/evaluation.js from the APIs."""
    principal = auth.current()
    role = principal.role if principal else ""
    config = {
        "page": "evaluation",
        "tz": _settings().tz,
        "today": _settings().today().isoformat(),
        "role": role,
        "street": principal.street_code if principal and role == "commander" else None,
        "mayPublish": role == "district",
    }
    response = Response(
        render_template("evaluation.html", title="考评", config=config), mimetype="text/html"
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _code(level: str) -> str:
    code = params.single(request.args, "code")
    if level == "district":
        return drill_query.DISTRICT_CODE
    if not code:
        raise params.refusal("code", code, "缺少单位代码", f"a {level} code is required")
    if len(code) != CODE_LENGTH[level] or not code.isdigit():
        raise params.refusal(
            "code", code, "单位代码格式错误", f"a {level} code has {CODE_LENGTH[level]} digits"
        )
    return code


def _period(label: str) -> tuple[Scheme, dt.date, dt.date]:
    """The scheme (?scheme=, else the latest) and the window of its period `label`."""
    for name in ("since", "until"):
        if params.single(request.args, name):
            raise params.refusal(
                name, request.args[name], "考评期与起止日期不能同时给出", "give period or dates"
            )
    try:
        scheme = load_scheme(db.connection(), params.single(request.args, "scheme") or None)
    except UnknownScheme as exc:
        raise NotFound(str(exc)) from None
    try:
        since, until = period_window(scheme, label)
    except PeriodError as exc:
        raise params.refusal("period", label, str(exc), "not a period of the scheme") from None
    return scheme, since, until


def _days() -> tuple[dt.date, dt.date]:
    """since … until (local days), by default this month up to today."""
    until = params.parse_day(
        params.single(request.args, "until"),
        "until",
        default=_settings().today(),
        first=FIRST_DATE,
        last=LAST_DATE,
    )
    since = params.parse_day(
        params.single(request.args, "since"),
        "since",
        default=until.replace(day=1),
        first=FIRST_DATE,
        last=LAST_DATE,
    )
    if since > until or (until - since).days >= MAX_WINDOW_DAYS:
        raise params.refusal(
            "since",
            since.isoformat(),
            "时间窗口无效",
            f"since must lie within {MAX_WINDOW_DAYS} days before until",
        )
    return since, until


@bp.get("/api/evaluation/drill")
@reads("service_requests")
def drill() -> Response:
    """The three rates of a unit's children over a period's window, with links to the cases."""
    params.check_params(request.args, names(DRILL_PARAMS))
    level = params.single(request.args, "level") or "district"
    if level not in drill_query.LEVELS:
        raise params.refusal(
            "level", level, "层级无效", f"level must be one of {', '.join(drill_query.LEVELS)}"
        )
    code = _code(level)
    label = params.single(request.args, "period")
    if label:
        scheme, since, until = _period(label)
        rates = scheme.rates
    else:
        since, until = _days()
        rates = load_rates()
    try:
        answer = drill_query.drill(
            db.connection(), level, code, since, until, _settings().tz, rates
        )
    except drill_query.UnknownUnit:
        raise NotFound(f"单位不存在或不在您的辖区 unknown unit: code={code!r}") from None
    return jsonify(answer)


_COUNT = {"type": "integer", "minimum": 0}
_RATE = {"type": "number", "nullable": True}
_FIGURES: dict[str, Any] = {
    **{name: _COUNT for name in drill_query.COUNTS},
    "response_rate": _RATE,
    "resolution_rate": _RATE,
    "satisfaction_rate": _RATE,
    "composite": _RATE,
}
_TEXT_OR_NULL = {"type": "string", "nullable": True}
DRILL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["level", "code", "name", "window", "child_level", "children", "total", "cases"],
    "properties": {
        "level": {"type": "string", "enum": list(drill_query.LEVELS)},
        "code": {"type": "string"},
        "name": _TEXT_OR_NULL,
        "street_code": {"type": "string"},
        "window": {
            "type": "object",
            "required": ["since", "until"],
            "properties": {
                "since": {"type": "string", "format": "date"},
                "until": {"type": "string", "format": "date"},
            },
        },
        "child_level": {
            "type": "string",
            "nullable": True,
            "enum": ["street", "community", "grid", None],
        },
        "children": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["code", "name", "cases", *_FIGURES],
                "properties": {
                    "code": {"type": "string"},
                    "name": _TEXT_OR_NULL,
                    "cases": {"type": "string"},
                    **_FIGURES,
                },
            },
        },
        "total": {"type": "object", "required": list(_FIGURES), "properties": _FIGURES},
        "cases": _TEXT_OR_NULL,
    },
}


@contribute
def _paths() -> dict[str, dict[str, Any]]:
    from app.openapi import page_operation

    answer = {"200": {"description": "下钻", "content": {JSON: {"schema": DRILL_SCHEMA}}}}
    return {
        "/evaluation": {
            "get": page_operation("考评页：排名、图表、假设权重与下钻 the evaluation page")
        },
        "/api/evaluation/drill": {
            "get": operation(
                "考评下钻：单位各下级的三率与案件链接 the three rates of a unit's children",
                "api",
                DRILL_PARAMS,
                answer,
            )
        },
    }
