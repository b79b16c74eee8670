"""layers.queries.params: every parser's accepted and refused inputs, hand-written.

Expected values are written out by hand (dates, offsets, base64 text), not computed by the
code under test; a refusal is checked for its HTTP status (400), the parameter it names and
the start of its Chinese-first message.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from layers.queries import DEFAULT_TZ, ParamError
from layers.queries.params import (
    Interval,
    check_params,
    check_text,
    decode_cursor,
    encode_cursor,
    parse_bbox,
    parse_count,
    parse_day,
    parse_days,
    parse_instant,
    parse_interval,
    parse_limit,
    parse_moment_range,
    parse_month,
    parse_page_number,
    parse_properties,
    parse_since,
    single,
    zone_of,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
UTC = dt.UTC


class Multi(dict[str, list[str]]):
    """A mapping with repeated names, as a query string has (request.args is one)."""

    def getlist(self, name: str) -> list[str]:
        return list(self.get(name, []))


def refused(call: Any, param: str, starts: str) -> ParamError:
    with pytest.raises(ParamError) as caught:
        call()
    exc = caught.value
    assert exc.status == 400
    assert exc.param == param
    assert exc.message.startswith(starts), exc.message
    assert exc.body()["error"] == "bad_request"
    assert exc.body()["message"] == exc.message
    return exc


def test_the_default_zone_is_beijing_time() -> None:
    assert DEFAULT_TZ == "Asia/Shanghai"
    assert zone_of(None) == SHANGHAI
    assert zone_of("Europe/Berlin") == ZoneInfo("Europe/Berlin")
    assert zone_of(UTC) is UTC


# --- single, check_text, check_params ---------------------------------------------------------


def test_single_reads_plain_and_repeated_mappings() -> None:
    assert single({"f": "json"}, "f") == "json"
    assert single({}, "f") is None
    assert single(Multi(f=["html"]), "f") == "html"
    exc = refused(lambda: single(Multi(f=["json", "html"]), "f"), "f", "参数 f 重复")
    assert "['json', 'html']" in exc.message


def test_free_text_is_bounded_and_has_no_control_characters() -> None:
    assert check_text("q", "x" * 500) == "x" * 500
    refused(lambda: check_text("q", "x" * 501), "q", "参数 q 过长")
    refused(lambda: check_text("q", "a\nb"), "q", "参数 q 含控制字符")
    refused(lambda: single({"street": "a\x00"}, "street"), "street", "参数 street 含控制字符")


def test_unknown_parameters_are_named() -> None:
    check_params({"bbox": "1", "limit": "2"}, ["bbox", "limit", "f"])
    check_params({}, [])
    exc = refused(lambda: check_params({"bbox": "1", "bobx": "2"}, ["bbox"]), "bobx", "未知参数")
    assert exc.body()["parameter"] == "bobx"
    assert exc.message == "未知参数 unknown parameter: 'bobx'; 可用 allowed: bbox"


# --- limit, count, cursor ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, 100), ("1", 1), ("7", 7), ("0010", 10), ("10000", 10_000)],
)
def test_limit_accepted(value: str | None, expected: int) -> None:
    assert parse_limit(value) == expected


@pytest.mark.parametrize(
    ("value", "starts"),
    [
        ("0", "limit 至少为 1"),
        ("10001", "limit 超过最大值 10000"),
        ("-1", "limit 应为正整数"),
        ("1.5", "limit 应为正整数"),
        ("", "limit 应为正整数"),
        ("ten", "limit 应为正整数"),
        (" 5", "limit 应为正整数"),
        ("１", "limit 应为正整数"),  # a full-width digit
        ("1234567890", "limit 应为正整数"),  # ten digits
    ],
)
def test_limit_refused(value: str, starts: str) -> None:
    refused(lambda: parse_limit(value), "limit", starts)


def test_limit_names_its_maximum_and_may_have_none() -> None:
    exc = refused(lambda: parse_limit("10001"), "limit", "limit 超过最大值")
    assert exc.body()["maximum"] == 10_000
    assert parse_limit(None, default=None, maximum=None, digits=10) is None
    assert parse_limit("1234567890", default=None, maximum=None, digits=10) == 1_234_567_890
    assert parse_limit("600", maximum=500 + 100) == 600
    refused(lambda: parse_limit("601", maximum=600), "limit", "limit 超过最大值 600")


def test_count_uses_the_api_messages() -> None:
    assert parse_count(None, default=200, maximum=500) == 200
    assert parse_count("", default=200, maximum=500) == 200
    assert parse_count("500", default=200, maximum=500) == 500
    assert parse_count("+3", default=200, maximum=500) == 3
    exc = refused(lambda: parse_count("x", default=1, maximum=5), "limit", "应为整数")
    assert exc.body()["parameter"] == "limit"
    assert exc.body()["value"] == "x"
    refused(lambda: parse_count("0", default=1, maximum=5), "limit", "超出范围")
    refused(lambda: parse_count("6", default=1, maximum=5), "limit", "超出范围")


def test_cursors_hold_a_key() -> None:
    # base64url of the JSON text 42 and "a", padding dropped.
    assert encode_cursor(42) == "NDI"
    assert encode_cursor("a") == "ImEi"
    assert decode_cursor("NDI", integer=True) == 42
    assert decode_cursor("ImEi", integer=False) == "a"
    assert decode_cursor("ImEi==", integer=False) == "a"


@pytest.mark.parametrize(
    ("value", "integer"),
    [
        ("NDI", False),  # an integer where the key is text
        ("ImEi", True),  # text where the key is an integer
        ("eyJhIjoxfQ", True),  # {"a":1}
        ("!!!", True),
        (base64.urlsafe_b64encode(b"9223372036854775808").decode(), True),  # 2**63
        (base64.urlsafe_b64encode(b'"\\u0001"').decode(), False),  # a control character
        (base64.urlsafe_b64encode(b'"\\ud800"').decode(), False),  # a lone surrogate
    ],
)
def test_cursor_refused(value: str, integer: bool) -> None:
    refused(lambda: decode_cursor(value, integer=integer), "cursor", "无效的分页游标")


# --- bbox -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("116.3,39.9,116.5,40.0", (116.3, 39.9, 116.5, 40.0)),
        (" 116.3, 39.9 ,116.5,40", (116.3, 39.9, 116.5, 40.0)),
        ("116.3,39.9,0,116.5,40.0,100", (116.3, 39.9, 116.5, 40.0)),  # 3D: heights dropped
        ("170,-10,-170,10", (170.0, -10.0, -170.0, 10.0)),  # across the antimeridian
        ("-180,-90,180,90", (-180.0, -90.0, 180.0, 90.0)),
    ],
)
def test_bbox_accepted(value: str, expected: tuple[float, ...]) -> None:
    assert parse_bbox(value) == expected


@pytest.mark.parametrize(
    ("value", "starts"),
    [
        ("1,2,3", "bbox 应为 4 个或 6 个数字"),
        ("1,2,3,4,5", "bbox 应为 4 个或 6 个数字"),
        ("a,b,c,d", "bbox 含非数字"),
        ("1,2,,4", "bbox 含非数字"),
        ("nan,0,1,1", "bbox 含非有限数"),
        ("0,0,inf,1", "bbox 含非有限数"),
        ("0,0,181,1", "bbox 超出经纬度范围"),
        ("0,-91,1,1", "bbox 超出经纬度范围"),
        ("0,5,1,4", "bbox 南边界大于北边界"),
    ],
)
def test_bbox_refused(value: str, starts: str) -> None:
    refused(lambda: parse_bbox(value), "bbox", starts)


# --- instants and intervals -------------------------------------------------------------------


def test_instant_dates_and_date_times() -> None:
    assert parse_instant("2024-03-01", zone=SHANGHAI) == dt.date(2024, 3, 1)
    naive = parse_instant("2024-03-01T08:00:00", zone=SHANGHAI)
    assert naive == dt.datetime(2024, 3, 1, 0, 0, tzinfo=UTC)  # 08:00 in Beijing
    assert parse_instant("2024-03-01T08:00:00", zone="UTC") == dt.datetime(
        2024, 3, 1, 8, tzinfo=UTC
    )
    assert parse_instant("2024-03-01t08:00:00z", zone=SHANGHAI) == dt.datetime(
        2024, 3, 1, 8, tzinfo=UTC
    )
    assert parse_instant(" 2024-03-01T10:00+02:00 ", zone=SHANGHAI) == dt.datetime(
        2024, 3, 1, 8, tzinfo=UTC
    )
    assert parse_instant("1000-01-01", zone=SHANGHAI) == dt.date(1000, 1, 1)


@pytest.mark.parametrize(
    ("value", "starts"),
    [
        ("yesterday", "since 不是 RFC 3339 时间或日期"),
        ("2024-13-01", "since 不是 RFC 3339 时间或日期"),
        ("2024-02-30", "since 不是 RFC 3339 时间或日期"),
        ("2024-03-01T", "since 不是 RFC 3339 时间或日期"),
        ("20240301", "since 不是 RFC 3339 时间或日期"),
        ("0999-12-31", "since 年份超出范围"),
        ("9999-01-01", "since 年份超出范围"),
    ],
)
def test_instant_refused(value: str, starts: str) -> None:
    refused(lambda: parse_instant(value, "since", zone=SHANGHAI), "since", starts)


def test_interval_forms() -> None:
    day = dt.date(2024, 3, 1)
    assert parse_interval("2024-03-01", zone=SHANGHAI) == Interval(day, day, instant=True)
    at = dt.datetime(2024, 3, 1, 0, tzinfo=UTC)
    assert parse_interval("2024-03-01T08:00", zone=SHANGHAI) == Interval(at, at, instant=True)
    assert parse_interval("2024-03-01/2024-03-05", zone=SHANGHAI) == Interval(
        day, dt.date(2024, 3, 5)
    )
    assert parse_interval("2024-03-01/..", zone=SHANGHAI) == Interval(day, None)
    assert parse_interval("2024-03-01/", zone=SHANGHAI) == Interval(day, None)
    assert parse_interval("../2024-03-01", zone=SHANGHAI) == Interval(None, day)
    assert parse_interval("../..", zone=SHANGHAI) == Interval(None, None)
    assert parse_interval("2024-03-01/2024-03-01", zone=SHANGHAI) == Interval(day, day)


def test_interval_refused() -> None:
    refused(
        lambda: parse_interval("2024-03-05/2024-03-01", zone=SHANGHAI),
        "datetime",
        "datetime 起点晚于终点",
    )
    refused(
        lambda: parse_interval("2024-03-01/2024-03-02/2024-03-03", zone=SHANGHAI),
        "datetime",
        "datetime 应为时刻或 起点/终点",
    )
    refused(
        lambda: parse_interval("2024-03-01/soon", zone=SHANGHAI),
        "datetime",
        "datetime 不是 RFC 3339 时间或日期",
    )


def test_a_date_end_is_its_whole_local_day_in_the_given_zone() -> None:
    # 00:30 on 2 March in Beijing is 16:30 UTC on 1 March: after the Beijing day 1 March,
    # inside the UTC day 1 March.
    value = "2024-03-02T00:30:00+08:00/2024-03-01"
    refused(lambda: parse_interval(value, zone=SHANGHAI), "datetime", "datetime 起点晚于终点")
    assert parse_interval(value, zone="UTC").end == dt.date(2024, 3, 1)


def test_api_days_and_months() -> None:
    first, last = dt.date(2000, 1, 1), dt.date(2099, 12, 31)
    default = dt.date(2026, 12, 6)
    assert parse_day(None, "since", default=default, first=first, last=last) == default
    assert parse_day("", "since", default=default, first=first, last=last) == default
    assert parse_day("2024-02-29", "since", default=default, first=first, last=last) == dt.date(
        2024, 2, 29
    )
    exc = refused(
        lambda: parse_day("2023-02-29", "until", default=default, first=first, last=last),
        "until",
        "日期格式应为 YYYY-MM-DD",
    )
    assert exc.body()["parameter"] == "until"
    refused(
        lambda: parse_day("1999-12-31", "since", default=default, first=first, last=last),
        "since",
        "日期超出范围",
    )
    today = dt.date(2026, 12, 6)
    assert parse_month(None, today=today, first=first) == dt.date(2026, 12, 1)
    assert parse_month("2026-12", today=today, first=first) == dt.date(2026, 12, 1)
    assert parse_month("2000-01", today=today, first=first) == dt.date(2000, 1, 1)
    refused(lambda: parse_month("2027-01", today=today, first=first), "month", "月份超出范围")
    refused(lambda: parse_month("1999-12", today=today, first=first), "month", "月份超出范围")
    refused(lambda: parse_month("2026-13", today=today, first=first), "month", "月份格式应为")
    refused(lambda: parse_month("2026-1", today=today, first=first), "month", "月份格式应为")


def test_api_instants_take_zone_and_default_as_arguments() -> None:
    first, last = dt.date(2000, 1, 1), dt.date(2099, 12, 31)
    now = dt.datetime(2026, 12, 6, 4, 0, tzinfo=UTC)

    def since(value: str | None, zone: str = "Asia/Shanghai") -> dt.datetime:
        return parse_since(value, "since", default=now, zone=zone, first=first, last=last)

    assert since(None) is now
    assert since("") is now
    assert since("2024-03-01T08:00") == dt.datetime(2024, 3, 1, 0, tzinfo=UTC)
    # "+08:00" unescaped in a query string arrives as " 08:00".
    assert since("2024-03-01T08:00 08:00") == dt.datetime(2024, 3, 1, 0, tzinfo=UTC)
    # 23:00 UTC on 31 Dec 1999 is already 2000 in Beijing, still 1999 in UTC.
    assert since("1999-12-31T23:00+00:00") == dt.datetime(1999, 12, 31, 23, tzinfo=UTC)
    refused(lambda: since("1999-12-31T23:00+00:00", "UTC"), "since", "时间超出范围")
    refused(lambda: since("0001-01-01T00:00+08:00"), "since", "时间超出范围")
    refused(lambda: since("tomorrow"), "since", "时间格式应为 ISO 8601")


# --- property filters -------------------------------------------------------------------------


def test_properties_split_commas_and_repeats() -> None:
    args = Multi(street=["110101001, 110101002", "110101003"], category=["噪音"], other=["x"])
    assert parse_properties(args, ["street", "category"]) == {
        "street": ["110101001", "110101002", "110101003"],
        "category": ["噪音"],
    }
    assert parse_properties({"street": "a"}, ["street"]) == {"street": ["a"]}
    assert parse_properties({"x": "1"}, ["street"]) == {}


def test_boolean_properties() -> None:
    got = parse_properties(
        Multi(overdue=["是", "F", "TRUE", "0"]), ["overdue"], booleans=["overdue"]
    )
    assert got == {"overdue": [True, False, True, False]}
    refused(
        lambda: parse_properties({"overdue": "maybe"}, ["overdue"], ["overdue"]),
        "overdue",
        "overdue 应为 true 或 false",
    )


def test_properties_refused() -> None:
    refused(lambda: parse_properties({"street": "a,,b"}, ["street"]), "street", "筛选值为空")
    refused(lambda: parse_properties({"street": ""}, ["street"]), "street", "筛选值为空")
    refused(
        lambda: parse_properties({"street": "a\tb"}, ["street"]), "street", "参数 street 含控制字符"
    )


# --- windows ----------------------------------------------------------------------------------


def test_api_day_windows() -> None:
    first, last = dt.date(2000, 1, 1), dt.date(2099, 12, 31)
    today = dt.date(2026, 12, 6)

    def days(**args: str) -> tuple[dt.date, dt.date]:
        return parse_days(args, today=today, default_days=30, max_days=1096, first=first, last=last)

    assert days() == (dt.date(2026, 11, 7), dt.date(2026, 12, 6))  # 30 days up to today
    assert days(until="2026-01-31") == (dt.date(2026, 1, 2), dt.date(2026, 1, 31))
    assert days(since="2026-12-06") == (dt.date(2026, 12, 6), dt.date(2026, 12, 6))
    # 2024-01-01 … 2026-12-31 is 366 + 365 + 365 = 1096 days.
    assert days(since="2024-01-01", until="2026-12-31") == (
        dt.date(2024, 1, 1),
        dt.date(2026, 12, 31),
    )
    exc = refused(lambda: days(since="2023-12-31", until="2026-12-31"), "since", "时间窗口超过三年")
    assert exc.body()["value"] == "2023-12-31"
    assert "(1097 days)" in exc.message
    exc = refused(lambda: days(since="2026-12-07"), "since", "起始日期晚于结束日期")
    assert exc.body() == {
        "error": "bad_request",
        "message": "起始日期晚于结束日期 since is after until: since=2026-12-07, until=2026-12-06",
        "parameter": "since",
        "value": "2026-12-07",
    }
    refused(lambda: days(until="2026-12-32"), "until", "日期格式应为 YYYY-MM-DD")


def test_open311_windows() -> None:
    now = dt.datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    longest = dt.timedelta(days=90)

    def window(**args: str) -> tuple[dt.datetime, dt.datetime | None]:
        return parse_moment_range(args, now=now, zone=SHANGHAI, longest=longest)

    assert window() == (dt.datetime(2026, 9, 7, 12, 0, tzinfo=UTC), None)
    # Dates are Beijing days: 1 March starts at 16:00 UTC on 29 February (a leap year).
    assert window(start_date="2024-03-01", end_date="2024-03-01") == (
        dt.datetime(2024, 2, 29, 16, tzinfo=UTC),
        dt.datetime(2024, 3, 1, 16, tzinfo=UTC),
    )
    assert window(start_date="2024-03-01") == (
        dt.datetime(2024, 2, 29, 16, tzinfo=UTC),
        dt.datetime(2024, 5, 29, 16, tzinfo=UTC),
    )
    # A date-time end is included: the window ends one microsecond after it.
    assert window(end_date="2024-03-01T08:00:00Z") == (
        dt.datetime(2023, 12, 2, 8, 0, 0, 1, tzinfo=UTC),
        dt.datetime(2024, 3, 1, 8, 0, 0, 1, tzinfo=UTC),
    )
    refused(
        lambda: window(start_date="2024-03-02", end_date="2024-03-01"),
        "end_date",
        "结束时间早于开始时间 end_date is before start_date",
    )
    refused(
        lambda: window(start_date="2024-01-01", end_date="2024-03-31"),
        "start_date",
        "时间范围超过 90 天",
    )
    refused(lambda: window(start_date="soon"), "start_date", "start_date 不是 RFC 3339")


def test_open311_page_numbers() -> None:
    assert parse_page_number(None, "page", default=1, top=100) == 1
    assert parse_page_number("", "page", default=1, top=100) == 1
    assert parse_page_number("100", "page", default=1, top=100) == 100


@pytest.mark.parametrize("bad", ["0", "101", "-1", "+1", "1.0", "xxx", "1" * 19])
def test_open311_page_numbers_refused(bad: str) -> None:
    refused(lambda: parse_page_number(bad, "page", default=1, top=100), "page", "应为正整数")


def test_optional_text_trims_and_refuses_long_or_control_values() -> None:
    from layers.queries.params import ParamError, optional_text

    assert optional_text({"category": "  噪声扰民 "}, "category", 100) == "噪声扰民"
    assert optional_text({"category": "   "}, "category", 100) is None
    assert optional_text({}, "category", 100) is None
    for bad in ("x" * 101, "a\x00b", "tab\there"):
        with pytest.raises(ParamError) as raised:
            optional_text({"category": bad}, "category", 100)
        assert raised.value.status == 400 and raised.value.param == "category"
