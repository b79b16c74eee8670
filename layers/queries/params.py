"""Query parameters parsed from a plain mapping, with no web framework.

Every read path (the OGC API, tiles, /api, Open311, exports, the CLI) parses its parameters
here: bbox, instants and intervals, limits, cursors, property filters. The input is any
mapping of names to strings (`request.args`, a dict, a MultiDict: a repeated name is only
seen where the mapping has `getlist`). A bad value raises ParamError, which carries its HTTP
status (400) and the parameter's name; the web turns it into its JSON answer in one place
(app/errors.py). Nothing here reads settings or the clock: the district's time zone and
"now" are arguments.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, overload
from zoneinfo import ZoneInfo

DEFAULT_TZ = "Asia/Shanghai"  # the district's time zone unless BLOCKDATA_TZ says otherwise

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
MAX_VALUE_LENGTH = 500
OPEN = ("", "..")  # an open end of an interval

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
_TRUE = frozenset({"true", "1", "yes", "是", "t"})
_FALSE = frozenset({"false", "0", "no", "否", "f"})

Moment = dt.date | dt.datetime


class ParamError(ValueError):
    """A bad query parameter: `status` is the HTTP status (400), `param` the parameter's name;
    the answer's body is {error, message, **details}."""

    code = "bad_request"

    def __init__(
        self, message: str, param: str | None = None, status: int = 400, **details: Any
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.details}


def zone_of(zone: dt.tzinfo | str | None) -> dt.tzinfo:
    """A time zone given as a tzinfo or an IANA name; None means DEFAULT_TZ."""
    if zone is None:
        return ZoneInfo(DEFAULT_TZ)
    return ZoneInfo(zone) if isinstance(zone, str) else zone


# --- reading the mapping --------------------------------------------------------------------


def values(args: Mapping[str, Any], name: str) -> list[str]:
    """Every value of `name` (several only where the mapping has `getlist`)."""
    getlist = getattr(args, "getlist", None)
    if getlist is not None:
        return list(getlist(name))
    return [args[name]] if name in args else []


def check_text(name: str, value: str) -> str:
    """A free-text parameter value: bounded length, no control characters."""
    if len(value) > MAX_VALUE_LENGTH:
        raise ParamError(
            f"参数 {name} 过长 (parameter too long, max {MAX_VALUE_LENGTH}): {value[:40]!r}…",
            name,
        )
    if any(ord(ch) < 32 for ch in value):
        raise ParamError(f"参数 {name} 含控制字符 (control characters in {name}): {value!r}", name)
    return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def optional_text(args: Mapping[str, Any], name: str, maximum: int) -> str | None:
    """An optional free-text filter (a category, a kind, a unit): trimmed; None when absent
    or blank; refused (400) over `maximum` characters or with control characters."""
    value = args.get(name)
    if value is None or not value.strip():
        return None
    value = value.strip()
    if len(value) > maximum or _CONTROL.search(value):
        raise refusal(name, value, "取值无效", f"not a valid value (at most {maximum} characters)")
    return str(value)


def single(args: Mapping[str, Any], name: str) -> str | None:
    """The one value of parameter `name`, None when absent; refused when given twice."""
    given = values(args, name)
    if not given:
        return None
    if len(given) > 1:
        raise ParamError(f"参数 {name} 重复 (parameter given more than once): {given!r}", name)
    return check_text(name, given[0])


def check_params(args: Iterable[str], allowed: Iterable[str]) -> None:
    """Refuses the first parameter name of `args` not in `allowed`."""
    known = set(allowed)
    for name in args:
        if name not in known:
            raise ParamError(
                f"未知参数 unknown parameter: {name!r}; 可用 allowed: {', '.join(sorted(known))}",
                name,
                parameter=name,
            )


# --- limit and cursor -----------------------------------------------------------------------


@overload
def parse_limit(
    value: str | None,
    *,
    default: int = ...,
    maximum: int | None = ...,
    digits: int = ...,
    name: str = ...,
) -> int: ...
@overload
def parse_limit(
    value: str | None,
    *,
    default: None,
    maximum: int | None = ...,
    digits: int = ...,
    name: str = ...,
) -> int | None: ...
def parse_limit(
    value: str | None,
    *,
    default: int | None = DEFAULT_LIMIT,
    maximum: int | None = MAX_LIMIT,
    digits: int = 9,
    name: str = "limit",
) -> int | None:
    """A page or row limit: 1 to `maximum` (None: no maximum), at most `digits` digits;
    `default` when absent."""
    if value is None:
        return default
    if not re.fullmatch(f"[0-9]{{1,{digits}}}", value):
        raise ParamError(f"limit 应为正整数 (limit must be a positive integer): {value!r}", name)
    limit = int(value)
    if limit < 1:
        raise ParamError(f"limit 至少为 1 (limit must be at least 1): {value!r}", name)
    if maximum is not None and limit > maximum:
        raise ParamError(
            f"limit 超过最大值 {maximum} (limit exceeds the maximum {maximum}): {value!r}",
            name,
            maximum=maximum,
        )
    return limit


def refusal(name: str, value: object, zh: str, en: str) -> ParamError:
    """A refusal in the /api and Open311 form: "<zh> <en>: name=value"; the body names the
    parameter and its value."""
    return ParamError(f"{zh} {en}: {name}={value!r}", name, parameter=name, value=value)


def parse_count(value: str | None, *, default: int, maximum: int, name: str = "limit") -> int:
    """An integer in 1…`maximum` (Python's integer syntax), `default` when absent or empty."""
    if value is None or value == "":
        return default
    try:
        count = int(value)
    except ValueError:
        raise refusal(name, value, "应为整数", "not an integer") from None
    if not 1 <= count <= maximum:
        raise refusal(name, value, "超出范围", f"must lie in 1…{maximum}")
    return count


def encode_cursor(key: Any) -> str:
    """An opaque cursor holding a page's last key."""
    raw = json.dumps(key, ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: str, *, integer: bool, name: str = "cursor") -> Any:
    """The key a cursor holds: a 64-bit integer when `integer`, otherwise a string UTF-8 can
    carry (no control characters, no lone surrogates)."""
    bad = ParamError(f"无效的分页游标 (invalid cursor): {value!r}", name)
    try:
        key = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (binascii.Error, ValueError):
        raise bad from None
    if integer:
        if type(key) is not int or not -(2**63) <= key < 2**63:
            raise bad
    elif not isinstance(key, str) or any(ord(ch) < 32 or 0xD800 <= ord(ch) < 0xE000 for ch in key):
        raise bad
    return key


# --- bbox -------------------------------------------------------------------------------------


def _number(value: str, whole: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ParamError(f"bbox 含非数字 (bbox has a non-number): {whole!r}", name) from None
    if not math.isfinite(number):
        raise ParamError(f"bbox 含非有限数 (bbox has a non-finite number): {whole!r}", name)
    return number


def parse_bbox(value: str, name: str = "bbox") -> tuple[float, float, float, float]:
    """minx,miny,maxx,maxy (or the 6-number 3D form) in CRS84; minx > maxx crosses the
    antimeridian, as the standard allows."""
    parts = value.split(",")
    if len(parts) not in (4, 6):
        raise ParamError(
            f"bbox 应为 4 个或 6 个数字 (bbox must be 4 or 6 comma-separated numbers): {value!r}",
            name,
        )
    nums = [_number(p.strip(), value, name) for p in parts]
    minx, miny, maxx, maxy = (nums[0], nums[1], nums[3], nums[4]) if len(nums) == 6 else nums
    if not (
        -180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90 and -90 <= maxy <= 90
    ):
        raise ParamError(f"bbox 超出经纬度范围 (bbox outside lon/lat range): {value!r}", name)
    if miny > maxy:
        raise ParamError(f"bbox 南边界大于北边界 (bbox miny > maxy): {value!r}", name)
    return minx, miny, maxx, maxy


# --- instants and intervals -------------------------------------------------------------------


def parse_instant(value: str, name: str = "datetime", *, zone: dt.tzinfo | str) -> Moment:
    """An RFC 3339 date-time (naive means local time in `zone`, the district's time zone)
    or a bare date, years 1000–9998."""
    tz = zone_of(zone)
    text = value.strip()
    try:
        if _DATE.fullmatch(text):
            moment: Moment = dt.date.fromisoformat(text)
        elif _DATE.match(text) and len(text) >= 13:
            moment = dt.datetime.fromisoformat(text.upper())
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=tz)
        else:
            raise ValueError(text)
    except ValueError:
        raise ParamError(
            f"{name} 不是 RFC 3339 时间或日期 (not an RFC 3339 date-time or date): {value!r}", name
        ) from None
    if not 1000 <= moment.year <= 9998:
        raise ParamError(f"{name} 年份超出范围 (year outside 1000–9998): {value!r}", name)
    return moment


def start_of(moment: Moment, zone: dt.tzinfo | str) -> dt.datetime:
    """A date-time itself; a date the local midnight that starts it in `zone`."""
    if isinstance(moment, dt.datetime):
        return moment
    return dt.datetime.combine(moment, dt.time(), zone_of(zone))


def end_of(moment: Moment, zone: dt.tzinfo | str) -> dt.datetime:
    """The end of an interval: a date-time itself, a date the local midnight after it."""
    if isinstance(moment, dt.datetime):
        return moment
    return start_of(moment + dt.timedelta(days=1), zone)


def day_of(moment: Moment, zone: dt.tzinfo | str) -> dt.date:
    """The local day of `moment` in `zone` (a date is its own day)."""
    return moment.astimezone(zone_of(zone)).date() if isinstance(moment, dt.datetime) else moment


@dataclass(frozen=True)
class Interval:
    """The closed interval [start, end] an OGC `datetime` names; None is an open end. An
    instant is start == end with `instant` set (a date instant is its whole local day)."""

    start: Moment | None
    end: Moment | None
    instant: bool = False


def parse_interval(value: str, name: str = "datetime", *, zone: dt.tzinfo | str) -> Interval:
    """OGC `datetime`: an instant, or `start/end` with `..` (or nothing) for an open end."""
    parts = value.split("/")
    if len(parts) == 1:
        moment = parse_instant(parts[0], name, zone=zone)
        return Interval(moment, moment, instant=True)
    if len(parts) != 2:
        raise ParamError(
            f"datetime 应为时刻或 起点/终点 (instant or start/end interval): {value!r}", name
        )
    start = None if parts[0] in OPEN else parse_instant(parts[0], name, zone=zone)
    end = None if parts[1] in OPEN else parse_instant(parts[1], name, zone=zone)
    if start is not None and end is not None and start_of(start, zone) > end_of(end, zone):
        raise ParamError(f"datetime 起点晚于终点 (interval start after end): {value!r}", name)
    return Interval(start, end)


def parse_day(
    value: str | None, name: str, *, default: dt.date, first: dt.date, last: dt.date
) -> dt.date:
    """A local day YYYY-MM-DD in [first, last]; `default` when absent or empty."""
    if value is None or value == "":
        return default
    try:
        day = dt.date.fromisoformat(value) if _DATE.fullmatch(value) else None
    except ValueError:
        day = None
    if day is None:
        raise refusal(name, value, "日期格式应为 YYYY-MM-DD", "not a date (YYYY-MM-DD)")
    if not first <= day <= last:
        raise refusal(name, value, "日期超出范围", f"date outside {first}…{last}")
    return day


def parse_month(
    value: str | None, *, today: dt.date, first: dt.date, name: str = "month"
) -> dt.date:
    """The first day of month YYYY-MM, from `first`'s month up to `today`'s; this month when
    absent or empty."""
    if value is None or value == "":
        return today.replace(day=1)
    match = _MONTH.fullmatch(value)
    if not match or not 1 <= int(match[2]) <= 12:
        raise refusal(name, value, "月份格式应为 YYYY-MM", "not a month (YYYY-MM)")
    month = dt.date(max(int(match[1]), 1), int(match[2]), 1)
    if month < first or month > today:
        raise refusal(name, value, "月份超出范围", f"month outside {first:%Y-%m}…{today:%Y-%m}")
    return month


def parse_days(
    args: Mapping[str, Any],
    *,
    today: dt.date,
    default_days: int,
    max_days: int,
    first: dt.date,
    last: dt.date,
) -> tuple[dt.date, dt.date]:
    """/api's window of local days: `since` and `until` (YYYY-MM-DD, both included); `until`
    defaults to `today`, `since` to `default_days` days ending on `until`; at most
    `max_days` days."""
    until = parse_day(args.get("until"), "until", default=today, first=first, last=last)
    start = until - dt.timedelta(days=default_days - 1)
    since = parse_day(args.get("since"), "since", default=start, first=first, last=last)
    if since > until:
        raise ParamError(
            f"起始日期晚于结束日期 since is after until: since={since}, until={until}",
            "since",
            parameter="since",
            value=since.isoformat(),
        )
    days = (until - since).days + 1
    if days > max_days:
        raise ParamError(
            f"时间窗口超过三年 window longer than three years ({max_days} days): "
            f"since={since}, until={until} ({days} days)",
            "since",
            parameter="since",
            value=since.isoformat(),
        )
    return since, until


def parse_moment_range(
    args: Mapping[str, Any],
    *,
    now: dt.datetime,
    zone: dt.tzinfo | str,
    longest: dt.timedelta,
    names: tuple[str, str] = ("start_date", "end_date"),
) -> tuple[dt.datetime, dt.datetime | None]:
    """Open311's window [start, end): two instants or dates (`names`), a date end taking its
    whole local day in `zone`; one given, the other is `longest` away; none given, the last
    `longest` up to any time (end None). Refused when end is not after start or the window
    is longer than `longest`."""

    def moment(name: str, end: bool) -> dt.datetime | None:
        value = single(args, name)
        if not value:
            return None
        given = parse_instant(value, name, zone=zone)
        if isinstance(given, dt.datetime):
            return given + dt.timedelta(microseconds=1) if end else given
        return end_of(given, zone) if end else start_of(given, zone)

    first, last = names
    start, until = moment(first, end=False), moment(last, end=True)  # until exclusive
    if start is None and until is None:
        return now - longest, None
    if start is None:
        assert until is not None
        start = until - longest
    elif until is None:
        until = start + longest
    given = f"{first}={args.get(first)!r}, {last}={args.get(last)!r}"
    if until <= start:
        raise ParamError(f"结束时间早于开始时间 {last} is before {first}: {given}", last)
    if until - start > longest + dt.timedelta(microseconds=1):
        raise ParamError(
            f"时间范围超过 {longest.days} 天 the range spans more than {longest.days} days: "
            f"{given}",
            first,
        )
    return start, until


def parse_page_number(value: str | None, name: str, *, default: int, top: int) -> int:
    """Open311's page and page_size: 1…`top`, at most 18 digits; `default` when absent."""
    if not value:
        return default
    if not re.fullmatch(r"[0-9]{1,18}", value) or not 1 <= int(value) <= top:
        raise refusal(name, value, "应为正整数", f"must be an integer in 1…{top}")
    return int(value)


def parse_since(
    value: str | None,
    name: str,
    *,
    default: dt.datetime,
    zone: dt.tzinfo | str,
    first: dt.date,
    last: dt.date,
) -> dt.datetime:
    """An ISO 8601 instant whose local day lies in [first, last]; without an offset it is
    local time in `zone`; `default` when absent or empty. An unescaped "+08:00" in a URL
    arrives as " 08:00": the plus is put back."""
    if value is None or value == "":
        return default
    tz = zone_of(zone)
    text = re.sub(r" ([0-9]{2}(:?[0-9]{2})?)$", r"+\1", value.strip())
    try:
        instant = dt.datetime.fromisoformat(text)
    except ValueError:
        raise refusal(name, value, "时间格式应为 ISO 8601", "not an ISO 8601 date-time") from None
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=tz)
    try:
        inside = first <= instant.astimezone(tz).date() <= last
    except OverflowError:  # e.g. 0001-01-01T00:00+08:00, before year 1 in Beijing
        inside = False
    if not inside:
        raise refusal(name, value, "时间超出范围", f"instant outside {first}…{last}")
    return instant


# --- property filters -------------------------------------------------------------------------


def parse_properties(
    args: Mapping[str, Any], names: Iterable[str], booleans: Iterable[str] = ()
) -> dict[str, list[Any]]:
    """`field=value` filters: for each parameter of `args` among `names`, its values (a comma
    or a repeat means any of); those in `booleans` as True/False."""
    known, flags = set(names), set(booleans)
    out: dict[str, list[Any]] = {}
    for name in args:
        if name not in known:
            continue
        found: list[Any] = []
        for raw in values(args, name):
            for part in check_text(name, raw).split(","):
                value = part.strip()
                if not value:
                    raise ParamError(f"筛选值为空 (empty filter value for {name}): {raw!r}", name)
                if name in flags:
                    if value.lower() not in _TRUE | _FALSE:
                        raise ParamError(
                            f"{name} 应为 true 或 false (must be true or false): {value!r}", name
                        )
                    found.append(value.lower() in _TRUE)
                else:
                    found.append(value)
        out[name] = found
    return out
