"""The demo's units: every street's centre, seven departments and stations, and the district
departments, loaded with the demo and again without a change."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from etl.demo.load import generate, load, load_units
from etl.units import DISTRICT_DEPARTMENTS

STATIONS = ("司法所", "劳动保障所", "城管执法队", "派出所", "市场监管所", "房管所")


def _district_departments() -> int:
    return len(yaml.safe_load(DISTRICT_DEPARTMENTS.read_text("utf-8"))["district_departments"])


def _by_street(conn: sa.Connection) -> dict[str | None, Counter[str]]:
    out: dict[str | None, Counter[str]] = {}
    for street, kind in conn.exec_driver_sql("select street_code, kind from units").all():
        out.setdefault(street, Counter())[kind] += 1
    return out


def test_the_demo_district_gets_its_units_with_the_demo(
    connection: sa.Connection, tmp_path: Path
) -> None:
    out = tmp_path / "demo"
    files = generate(out, requests=200, cases=10, targets=5, projects=5)
    assert files["units"] == out / "units.csv"
    report = load(connection, out)
    assert [(r.status, r.rejected) for r in report.units] == [("succeeded", 0)] * 2

    streets = dict(connection.exec_driver_sql("select code, name from streets").all())
    assert len(streets) == 15
    by_street = _by_street(connection)
    assert by_street.pop(None) == Counter(district_department=_district_departments())
    assert by_street == {
        code: Counter(centre=1, department=7, station=len(STATIONS)) for code in streets
    }
    names = connection.exec_driver_sql(
        "select name from units where street_code = '110102012' and kind = 'station'"
    ).scalars()
    assert set(names) == {f"什刹海{station}" for station in STATIONS}

    again = load_units(connection, out)
    assert [(r.inserted, r.updated) for r in again] == [(0, 0), (0, 0)]


def test_a_demo_without_a_units_file_gets_one_from_its_streets(
    connection: sa.Connection, district: Any, tmp_path: Path
) -> None:
    """A demo loaded before units existed: `demo load` writes the file from the streets."""
    reports = load_units(connection, tmp_path)
    assert [(r.status, r.rejected) for r in reports] == [("succeeded", 0)] * 2
    assert (tmp_path / "units.csv").exists()
    stations = connection.exec_driver_sql(
        "select street_code, name from units where kind = 'station'"
    ).all()
    assert sorted(stations) == sorted(
        (code, f"测试{code[-3:]}{station}")
        for code in ("110102001", "110102003")
        for station in STATIONS
    )
