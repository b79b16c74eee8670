"""Evaluation schemes: every refusal names the bad value (in Chinese); versions are stored
only when the body changes; the demo scheme's owners are the demo's district departments.
Periods: windows, labels, the previous period."""

from __future__ import annotations

import copy
import datetime as dt
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from etl.units import build_units
from layers.evaluation.periods import (
    PeriodError,
    period_of,
    period_window,
    periods_of_year,
    previous_period,
)
from layers.evaluation.scheme import (
    DEMO_SCHEME,
    SchemeError,
    UnknownScheme,
    item,
    load_scheme,
    parse_scheme,
    read_scheme_file,
    save_scheme,
    schemes,
)
from tests.helpers import add_unit

Body = dict[str, Any]


def demo() -> Body:
    doc = yaml.safe_load(DEMO_SCHEME.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def changed(edit: Callable[[Body], None]) -> Body:
    body = copy.deepcopy(demo())
    edit(body)
    return body


def _aspect(body: Body, code: str) -> Body:
    return next(a for a in body["internal"] if a["code"] == code)


def _item(body: Body, code: str) -> Body:
    return next(i for a in body["internal"] for i in a["items"] if i["code"] == code)


def test_the_demo_scheme_parses() -> None:
    scheme = parse_scheme(demo())
    assert scheme.code == "xicheng"
    assert scheme.parts == {"internal": 40, "survey": 40, "hotline": 20}
    assert [a.code for a in scheme.aspects] == ["tasks", "law", "party", "work", "bonus"]
    assert sum(a.max for a in scheme.aspects[:4]) == 100
    overdue = item(scheme, "overdue")
    assert (overdue.aspect, overdue.rule, overdue.each, overdue.cap, overdue.source) == (
        "bonus",
        "per_event",
        -0.5,
        5,
        "overdue_cases",
    )
    assert [c.name for c in scheme.classes] == ["先进", "进步", "治理", "整改"]
    assert parse_scheme(scheme.body).body == scheme.body  # the normal form is a fixed point


REFUSALS: list[tuple[str, Callable[[Body], None], str]] = [
    ("parts", lambda b: b["parts"].update(hotline=30), r"之和应为 100.*hotline 30.*= 110"),
    ("part", lambda b: b["parts"].update(external=10), r"未知的键 external"),
    ("aspects", lambda b: _aspect(b, "law").update(max=30), r"前四个方面满分之和应为 100.*law 30"),
    (
        "items over cap",
        lambda b: _item(b, "city_tasks").update(max=30),
        r"方面 tasks 各项满分之和 city_tasks 30 \+ dept_tasks 15 = 45，超过该方面满分 40",
    ),
    ("bonus item", lambda b: _item(b, "honours").update(max=6), r"honours 的 max 6 超过加扣分项"),
    (
        "rule",
        lambda b: _item(b, "law_admin").update(rule="guess"),
        r"law_admin 的计分规则未知.*guess",
    ),
    ("each", lambda b: _item(b, "safety_events").pop("each"), r"safety_events 按次计分.*each"),
    ("cap", lambda b: _item(b, "overdue").pop("cap"), r"overdue 按次计分.*cap"),
    ("cap>max", lambda b: _item(b, "overdue").update(cap=9), r"overdue 的 cap 9 超过其 max 5"),
    ("source", lambda b: _item(b, "overdue").update(source="x"), r"overdue 的事件来源未知.*'x'"),
    (
        "manual each",
        lambda b: _item(b, "honours").update(each=1),
        r"honours 的 each 只用于按次计分",
    ),
    ("kind", lambda b: b.update(period={"kind": "week"}), r"考评周期类型未知.*'week'"),
    ("start_day", lambda b: b.update(period={"kind": "window", "start_day": 31}), r"start_day.*31"),
    ("start_day month", lambda b: b.update(period={"kind": "month", "start_day": 5}), r"window"),
    (
        "class",
        lambda b: b["classes"].append({"name": "优秀", "score_over": 90}),
        r"优秀.*score_over",
    ),
    ("class empty", lambda b: b["classes"].append({"name": "空"}), r"分类 空 没有规则"),
    (
        "survey weights",
        lambda b: b["survey"]["questions"][0].update(weight=0.6),
        r"调查题目权重之和应为 1.*overall 0.6.*= 1.1",
    ),
    ("scale", lambda b: b["survey"]["questions"][1].update(scale="ten"), r"environment 的量表未知"),
    (
        "rates",
        lambda b: b["hotline"]["weights"].update(response_rate=0.2),
        r"三率权重之和应为 1.*response_rate 0.2",
    ),
    ("k", lambda b: b["hotline"].update(k=1.5), r"hotline.k 应在 0 至 1 之间，得到 1.5"),
    ("order", lambda b: b["internal"].reverse(), r"五个方面.*'bonus'"),
    ("duplicate", lambda b: _item(b, "ecology").update(code="market_order"), r"重复.*market_order"),
    ("max text", lambda b: _item(b, "ecology").update(max="七"), r"ecology 的 max 应为数值.*'七'"),
]


@pytest.mark.parametrize(("case", "edit", "message"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_a_bad_scheme_is_refused_naming_the_bad_value(
    case: str, edit: Callable[[Body], None], message: str
) -> None:
    with pytest.raises(SchemeError, match=message):
        parse_scheme(changed(edit))


def test_a_bad_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("code: [unclosed", encoding="utf-8")
    with pytest.raises(SchemeError, match="无法读取考评方案文件"):
        read_scheme_file(path)
    path.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(SchemeError, match="应为一个映射"):
        read_scheme_file(path)


def test_an_unknown_owner_is_refused_on_save(connection: sa.Connection) -> None:
    build_units(connection)  # the district departments of etl/config/district_departments.yaml
    body = changed(lambda b: _item(b, "ecology").update(owner="district-nowhere"))
    with pytest.raises(
        SchemeError, match="ecology 的责任单位 'district-nowhere' 不是已有的区级部门"
    ):
        save_scheme(connection, body, by="test")
    assert connection.execute(sa.text("select count(*) from evaluation_schemes")).scalar() == 0


def test_a_street_unit_is_no_owner(connection: sa.Connection, district: object) -> None:
    build_units(connection)
    street_unit = connection.execute(
        sa.text("select code from units where kind = 'centre' limit 1")
    ).scalar_one()
    body = changed(lambda b: _item(b, "ecology").update(owner=street_unit))
    with pytest.raises(SchemeError, match=f"{street_unit}' 不是已有的区级部门"):
        save_scheme(connection, body, by="test")


def test_versions_change_only_with_the_body(connection: sa.Connection) -> None:
    build_units(connection)
    first, new = save_scheme(connection, demo(), by="a")
    assert (first.version, new) == (1, True)
    again, new = save_scheme(connection, demo(), by="a")
    assert (again.version, new) == (1, False)
    heavier = changed(lambda b: b["parts"].update(internal=30, survey=50))
    second, new = save_scheme(connection, heavier, by="b")
    assert (second.version, new) == (2, True)
    assert load_scheme(connection, "xicheng").parts["survey"] == 50
    assert load_scheme(connection, "xicheng", 1).parts["survey"] == 40
    assert load_scheme(connection).version == 2
    assert schemes(connection)[0] | {"created_at": None} == {
        "code": "xicheng",
        "name": "西城区街道工作考评",
        "version": 2,
        "versions": 2,
        "created_at": None,
        "created_by": "b",
    }
    with pytest.raises(UnknownScheme, match="考评方案 xicheng 第 3 版"):
        load_scheme(connection, "xicheng", 3)


def test_the_owner_check_reads_the_units_table(connection: sa.Connection) -> None:
    """Not a list in code: a department added to `units` may own an item."""
    build_units(connection)
    add_unit(connection, "district-eval-new")
    body = changed(lambda b: _item(b, "ecology").update(owner="district-eval-new"))
    scheme, new = save_scheme(connection, body, by="t")
    assert new and item(scheme, "ecology").owner == "district-eval-new"


# --- periods -----------------------------------------------------------------------------


def scheme_of(period: dict[str, Any]) -> Any:
    return parse_scheme(changed(lambda b: b.update(period=period)))


D = dt.date


@pytest.mark.parametrize(
    ("period", "label", "since", "until", "previous"),
    [
        ({"kind": "month"}, "2026-11", D(2026, 11, 1), D(2026, 11, 30), "2026-10"),
        ({"kind": "month"}, "2026-01", D(2026, 1, 1), D(2026, 1, 31), "2025-12"),
        ({"kind": "month"}, "2024-02", D(2024, 2, 1), D(2024, 2, 29), "2024-01"),
        ({"kind": "quarter"}, "2026Q4", D(2026, 10, 1), D(2026, 12, 31), "2026Q3"),
        ({"kind": "quarter"}, "2026Q1", D(2026, 1, 1), D(2026, 3, 31), "2025Q4"),
        ({"kind": "year"}, "2026", D(2026, 1, 1), D(2026, 12, 31), "2025"),
        (
            {"kind": "window", "start_day": 19},
            "2026-11",
            D(2026, 10, 19),
            D(2026, 11, 18),
            "2026-10",
        ),
        (
            {"kind": "window", "start_day": 19},
            "2026-01",
            D(2025, 12, 19),
            D(2026, 1, 18),
            "2025-12",
        ),
        ({"kind": "window", "start_day": 1}, "2026-03", D(2026, 3, 1), D(2026, 3, 31), "2026-02"),
    ],
)
def test_period_windows(
    period: dict[str, Any], label: str, since: dt.date, until: dt.date, previous: str
) -> None:
    scheme = scheme_of(period)
    assert period_window(scheme, label) == (since, until)
    assert previous_period(scheme, label) == previous
    for day in (since, until):
        assert period_of(scheme, day) == label
    assert period_of(scheme, since - dt.timedelta(days=1)) == previous


def test_a_year_of_windows_tiles_the_days() -> None:
    scheme = scheme_of({"kind": "window", "start_day": 19})
    labels = periods_of_year(scheme, 2026)
    assert len(labels) == 12
    windows = [period_window(scheme, label) for label in labels]
    assert windows[0][0] == D(2025, 12, 19) and windows[-1][1] == D(2026, 12, 18)
    for (_, until), (since, _) in itertools.pairwise(windows):
        assert since == until + dt.timedelta(days=1)


@pytest.mark.parametrize(
    ("period", "label", "message"),
    [
        ({"kind": "month"}, "2026-13", "月份应为 01–12"),
        ({"kind": "month"}, "2026-00", "月份应为 01–12"),
        ({"kind": "month"}, "2026Q4", "'2026Q4'"),
        ({"kind": "month"}, "1999-12", "年份应在 2000–2099"),
        ({"kind": "quarter"}, "2026Q5", "季度应为 1–4"),
        ({"kind": "quarter"}, "2026-11", "2026Q4"),
        ({"kind": "year"}, "2026-11", "'2026-11'"),
        ({"kind": "window", "start_day": 19}, "2026-1", "'2026-1'"),
        ({"kind": "month"}, "２０２６-11", "２０２６"),
    ],
)
def test_bad_labels_are_refused(period: dict[str, Any], label: str, message: str) -> None:
    with pytest.raises(PeriodError, match=message):
        period_window(scheme_of(period), label)
