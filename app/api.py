"""`/api`: the JSON the map pages draw — heat, scorecards, the commander's panel, overlays.

Every parameter is checked here and a bad one raises BadRequest (400) or NotFound (404)
naming the parameter and the value; app.stats does the querying.
"""

from __future__ import annotations

import datetime as dt
import re

from flask import Blueprint, Response, jsonify, request

from app import db, stats
from app.errors import BadRequest, NotFound
from etl.aggregates import ZONE, load_rates
from layers import get_layer

bp = Blueprint("api", __name__, url_prefix="/api")

MAX_WINDOW_DAYS = 1096  # three years, a leap day included
DEFAULT_WINDOW_DAYS = 30
LATEST_LIMIT = 200
LATEST_MAX = 500
MAX_TEXT = 100
FIRST_DATE = dt.date(2000, 1, 1)
LAST_DATE = dt.date(2099, 12, 31)
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
STREET = re.compile(r"[0-9]{9}")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _now() -> dt.datetime:
    return dt.datetime.now(ZONE)


def _bad(parameter: str, value: object, zh: str, en: str) -> BadRequest:
    return BadRequest(f"{zh} {en}: {parameter}={value!r}", parameter=parameter, value=value)


def _date(name: str, default: dt.date) -> dt.date:
    value = request.args.get(name)
    if value is None or value == "":
        return default
    try:
        day = dt.date.fromisoformat(value) if DATE.fullmatch(value) else None
    except ValueError:
        day = None
    if day is None:
        raise _bad(name, value, "日期格式应为 YYYY-MM-DD", "not a date (YYYY-MM-DD)")
    if not FIRST_DATE <= day <= LAST_DATE:
        raise _bad(name, value, "日期超出范围", f"date outside {FIRST_DATE}…{LAST_DATE}")
    return day


def _month(today: dt.date) -> dt.date:
    value = request.args.get("month")
    if value is None or value == "":
        return today.replace(day=1)
    match = MONTH.fullmatch(value)
    if not match or not 1 <= int(match[2]) <= 12:
        raise _bad("month", value, "月份格式应为 YYYY-MM", "not a month (YYYY-MM)")
    month = dt.date(max(int(match[1]), 1), int(match[2]), 1)
    if month < FIRST_DATE or month > today:
        raise _bad(
            "month", value, "月份超出范围", f"month outside {FIRST_DATE:%Y-%m}…{today:%Y-%m}"
        )
    return month


def _text(name: str) -> str | None:
    """An optional free-text filter (category, kind): trimmed, no control characters."""
    value = request.args.get(name)
    if value is None or not value.strip():
        return None
    value = value.strip()
    if len(value) > MAX_TEXT or CONTROL.search(value):
        raise _bad(name, value, "取值无效", f"not a valid value (at most {MAX_TEXT} characters)")
    return value


def _street(value: str, name: str) -> str:
    """A street code: nine digits (else 400) of a street in the database (else 404)."""
    if not STREET.fullmatch(value):
        raise _bad(name, value, "街道代码应为 9 位数字", "street code must be 9 digits")
    if not stats.street_exists(db.connection(), value):
        raise NotFound(f"未知街道 unknown street: {name}={value!r}", parameter=name, value=value)
    return value


def _street_filter() -> str | None:
    """The optional `street` parameter."""
    value = request.args.get("street")
    return _street(value, "street") if value else None


def _choice(name: str, choices: tuple[str, ...], default: str) -> str:
    value = request.args.get(name) or default
    if value not in choices:
        raise _bad(name, value, "取值无效", f"must be one of {', '.join(choices)}")
    return value


@bp.get("/heat/<layer>")
def heat(layer: str) -> Response:
    """Requests per street, community, grid or 100 m cell over a window of days."""
    if get_layer(layer).name != "service_requests":
        raise NotFound(
            f"该图层没有热力聚合 no heat aggregates for layer: {layer!r} (only service_requests)",
            layer=layer,
        )
    level = _choice("level", stats.LEVELS, "grid")
    today = _now().date()
    until = _date("until", today)
    since = _date("since", until - dt.timedelta(days=DEFAULT_WINDOW_DAYS - 1))
    if since > until:
        raise BadRequest(
            f"起始日期晚于结束日期 since is after until: since={since}, until={until}",
            parameter="since",
            value=since.isoformat(),
        )
    window = stats.Window(since, until)
    if window.days > MAX_WINDOW_DAYS:
        raise BadRequest(
            f"时间窗口超过三年 window longer than three years ({MAX_WINDOW_DAYS} days): "
            f"since={since}, until={until} ({window.days} days)",
            parameter="since",
            value=since.isoformat(),
        )
    category = _text("category")
    street = _street_filter()
    text = stats.heat_json(db.connection(), level, window, category, street)
    return Response(text, mimetype="application/json")


@bp.get("/streets")
def streets() -> Response:
    """The district overview: every street's scorecard for a month, and the totals."""
    now = _now()
    month = _month(now.date())
    return jsonify(stats.streets_overview(db.connection(), month, now, load_rates()))


@bp.get("/command/<street_code>/summary")
def command_summary(street_code: str) -> Response:
    """The commander's panel for one street."""
    street = _street(street_code, "street_code")
    now = _now()
    month = _month(now.date())
    summary = stats.command_summary(db.connection(), street, month, now.date(), now, load_rates())
    return jsonify(summary)


def _instant(name: str, default: dt.datetime) -> dt.datetime:
    """An ISO 8601 instant; without an offset it is Beijing time."""
    value = request.args.get(name)
    if value is None or value == "":
        return default
    # An unescaped "+08:00" arrives as " 08:00": put the plus back.
    text = re.sub(r" ([0-9]{2}(:?[0-9]{2})?)$", r"+\1", value.strip())
    try:
        instant = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _bad(name, value, "时间格式应为 ISO 8601", "not an ISO 8601 date-time") from None
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=ZONE)
    try:
        inside = FIRST_DATE <= instant.astimezone(ZONE).date() <= LAST_DATE
    except OverflowError:  # e.g. 0001-01-01T00:00+08:00, before year 1 in Beijing
        inside = False
    if not inside:
        raise _bad(name, value, "时间超出范围", f"instant outside {FIRST_DATE}…{LAST_DATE}")
    return instant


def _limit() -> int:
    value = request.args.get("limit")
    if value is None or value == "":
        return LATEST_LIMIT
    try:
        limit = int(value)
    except ValueError:
        raise _bad("limit", value, "应为整数", "not an integer") from None
    if not 1 <= limit <= LATEST_MAX:
        raise _bad("limit", value, "超出范围", f"must lie in 1…{LATEST_MAX}")
    return limit


@bp.get("/command/<street_code>/latest")
def latest(street_code: str) -> Response:
    """The street's latest requests as GeoJSON, for a live layer that polls."""
    street = _street(street_code, "street_code")
    since = _instant("since", _now() - dt.timedelta(hours=24))
    response = jsonify(stats.latest(db.connection(), street, since, _limit()))
    response.mimetype = "application/geo+json"
    return response


@bp.get("/planner")
def planner() -> Response:
    """Renovation projects and relocation targets as they stood on a date."""
    today = _now().date()
    as_of = _date("as_of", today)
    kind = _text("kind")
    street = _street_filter()
    return jsonify(stats.planner(db.connection(), as_of, today, kind, street))


@bp.get("/layers/<layer>/geojson")
def layer_geojson(layer: str) -> Response:
    """An overlay layer as GeoJSON, published columns only, optionally one street's."""
    overlay = get_layer(layer)
    if overlay.name not in stats.OVERLAY_LAYERS:
        raise NotFound(
            f"该图层不作为叠加层提供 layer not served as an overlay: {layer!r} "
            f"(one of {', '.join(stats.OVERLAY_LAYERS)})",
            layer=layer,
        )
    street = _street_filter()
    text = stats.layer_geojson(db.connection(), overlay, street, _now())
    return Response(text, mimetype="application/geo+json")
