"""layers.evaluation.report.build_report on the tiny district: the top categories and the
grids' counts come from the aggregates over the Result's window (whole months and odd days
alike), checked against counts made straight from the loaded rows; the changes against the
previous period and the worst items by hand."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from shapely.geometry import shape

from etl.aggregates import refresh_request_aggregates
from etl.jobs import run_file
from layers.evaluation.report import build_report
from tests import evalreport_fixtures as fx
from tests.aggregates import LOAD_NOW, requests
from tests.district import STREETS, grid_cells, write_csv

A, B = "110102001", "110102003"
TINY = [
    (A, "测试001街道", 90.0, 88.0, 2.0, 80.0, 1, "先进"),
    (B, "测试003街道", 85.0, 86.0, 2.5, 78.5, -1, None),
]


@pytest.fixture
def rows(connection: sa.Connection, district: Any, tmp_path: Path) -> list[dict[str, str]]:
    loaded = requests(300, seed=13)
    report = run_file(
        connection, write_csv(tmp_path / "r.csv", loaded), layer="service_requests", now=LOAD_NOW
    )
    assert report.rejected == 0, report.reasons
    refresh_request_aggregates(connection)
    return loaded


def _grid(lng: float, lat: float) -> tuple[str, str]:
    for code, _, street, (x0, y0, x1, y1) in grid_cells():
        if x0 <= lng < x1 and y0 <= lat < y1:
            return street, code
    raise AssertionError((lng, lat))


def _expected(rows: list[dict[str, str]], since: dt.date, until: dt.date) -> dict[str, Any]:
    by_street: dict[str, Counter[str]] = {A: Counter(), B: Counter()}
    grids: Counter[str] = Counter()
    for row in rows:
        day = dt.date.fromisoformat(row["受理时间"][:10])
        if not since <= day <= until:
            continue
        street, grid = _grid(float(row["经度"]), float(row["纬度"]))
        by_street[street][row["诉求类别"]] += 1
        grids[grid] += 1
    return {"by_street": by_street, "grids": grids}


def _ranked(counter: Counter[str], n: int) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


@pytest.mark.parametrize(
    ("since", "until"),
    [
        (dt.date(2026, 11, 1), dt.date(2026, 11, 30)),  # a calendar month: the month rows
        (dt.date(2026, 10, 19), dt.date(2026, 11, 18)),  # 19th to 18th: days and a month
    ],
)
def test_top_categories_and_maps_are_the_windows_counts(
    connection: sa.Connection, rows: list[dict[str, str]], since: dt.date, until: dt.date
) -> None:
    result = fx.result(TINY)
    result["period"].update(since=since.isoformat(), until=until.isoformat())
    report = build_report(connection, result, [], scheme_body=fx.SCHEME_BODY)
    expected = _expected(rows, since, until)
    district = expected["by_street"][A] + expected["by_street"][B]
    total = sum(district.values())
    assert total > 50  # the window holds a good part of the 300 requests
    assert report["requests"] == total
    assert [(p["category"], p["n"]) for p in report["top_problems"]] == _ranked(district, 10)
    assert report["top_problems"][0]["share"] == round(_ranked(district, 1)[0][1] / total, 4)
    for street in report["streets"]:
        mine = expected["by_street"][street["code"]]
        assert [(p["category"], p["n"]) for p in street["top_categories"]] == _ranked(mine, 3)
    for code, (x0, x1) in STREETS.items():
        street_map = report["maps"][code]
        assert shape(street_map["street"]).bounds == pytest.approx((x0, 39.90, x1, 39.92))
        cells = {c[0] for c in grid_cells() if c[2] == code}
        assert {g["code"] for g in street_map["grids"]} == cells
        assert {g["code"]: g["n"] for g in street_map["grids"]} == {
            c: expected["grids"][c] for c in cells
        }
        assert street_map["total"] == sum(expected["by_street"][code].values())


def test_changes_against_the_previous_period_and_worst_items(
    connection: sa.Connection, rows: list[dict[str, str]]
) -> None:
    previous = fx.result(
        [
            (A, "测试001街道", 88.0, 90.0, 2.0, 80.0, 0, None),
            (B, "测试003街道", 85.0, 86.0, 2.5, None, 0, None),
        ],
        label="2026-10",
    )
    result = fx.result(TINY)
    # street A: every item full but two: work_review 12 of 20 (−8), city_tasks 20 of 25 (−5),
    # and the bonus deduction −1.5
    result["streets"][0]["items"] = {
        "city_tasks": {"points": 20.0}, "dept_tasks": {"points": 15.0},
        "law_admin": {"points": 25.0}, "party_build": {"points": 15.0},
        "work_review": {"points": 12.0}, "overdue": {"points": -1.5},
    }  # fmt: skip
    report = build_report(
        connection, result, fx.departments(), previous=previous, scheme_body=fx.SCHEME_BODY
    )
    a, b = report["streets"]
    # A: composite 0.4·90 + 0.4·88 + 0.2·80 = 87.2, before 0.4·88 + 0.4·90 + 0.2·80 = 87.2
    assert a["changes"] == {"composite": 0.0, "internal": 2.0, "survey": -2.0, "hotline": 0.0}
    # B had no hotline score before: no composite either, so neither changes
    assert b["changes"] == {"composite": None, "internal": 0.0, "survey": 0.0, "hotline": None}
    assert [(i["code"], i["lost"]) for i in a["worst_items"]] == [
        ("work_review", 8.0),
        ("city_tasks", 5.0),
        ("overdue", 1.5),
    ]
    assert report["previous_period"] == "2026-10"
    assert report["departments"] == fx.departments()
    assert report["aspect_names"]["law"] == "依法行政及综合管理"
