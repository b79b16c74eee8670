"""/api/evaluation/drill and the /evaluation page's access, on a real PostGIS.

The drill's figures are checked against counts made here from the hand-made request rows
(tests/aggregates.py: 240 requests over Sept–Nov 2026 in the tiny district), placed in their
grid by the boxes of tests/district.py and dated by their local (Beijing) receipt time — not
through layers.queries.drill nor the aggregates. The three rates use DESIGN.md's k and weights.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from etl.aggregates import refresh_request_aggregates
from tests.aggregates import requests
from tests.clock import HOURS, PROCESS_ZONES, FrozenClock, process_tz
from tests.district import grid_cells, write_csv
from tests.helpers import add_unit, add_user, clocked_app, get, login
from tests.plugins.hand import STREET_A, STREET_B, run_layer

NOW = dt.datetime.fromisoformat("2026-11-18T15:20:00+08:00")
K = 0.9
WEIGHTS = (0.10, 0.50, 0.40)
OCTOBER = ("2026-10-01", "2026-10-31")
COMMUNITY_A1 = f"{STREET_A}001"
DRILL = "/api/evaluation/drill"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def app(connection: sa.Connection, clock: FrozenClock) -> Flask:
    return clocked_app(connection, clock)


@pytest.fixture
def rows(connection: sa.Connection, district: Any, tmp_path: Path) -> list[dict[str, str]]:
    """The 240 requests, loaded through the ETL and aggregated."""
    made = requests()
    run_layer(connection, write_csv(tmp_path / "r.csv", made), "service_requests")
    refresh_request_aggregates(connection)
    return made


def _grid_of(row: dict[str, str]) -> tuple[str, str, str]:
    x, y = float(row["经度"]), float(row["纬度"])
    for grid, community, street, (x0, y0, x1, y1) in grid_cells():
        if x0 <= x < x1 and y0 <= y < y1:
            return street, community, grid
    raise AssertionError(f"no grid holds {x}, {y}")


def _expected(
    made: list[dict[str, str]], since: str, until: str, level: str
) -> dict[str, dict[str, int]]:
    """Per unit of `level` (street, community or grid) the window's counts, by hand."""
    index = {"street": 0, "community": 1, "grid": 2}[level]
    out: dict[str, Counter[str]] = {}
    for row in made:
        day = row["受理时间"][:10]  # written in Beijing time: its local day
        if not since <= day <= until:
            continue
        unit = _grid_of(row)[index]
        c = out.setdefault(unit, Counter())
        c["requests"] += 1
        if row.get("是否有效回访") == "是":
            c["callbacks"] += 1
            c["contacted"] += row["是否联系"] == "是"
            c["solved"] += row["是否解决"] == "是"
            c["satisfied"] += row["满意度"] == "满意"
            c["basic_satisfied"] += row["满意度"] == "基本满意"
    return {unit: dict(c) for unit, c in out.items()}


def _check(figures: dict[str, Any], counts: dict[str, int]) -> None:
    names = ("requests", "callbacks", "contacted", "solved", "satisfied", "basic_satisfied")
    assert {n: figures[n] for n in names} == {n: counts.get(n, 0) for n in names}
    v = counts.get("callbacks", 0)
    if v == 0:
        assert figures["response_rate"] is None and figures["composite"] is None
        return
    response = counts["contacted"] / v
    resolution = counts["solved"] / v
    satisfaction = (counts["satisfied"] + K * counts["basic_satisfied"]) / v
    assert figures["response_rate"] == pytest.approx(response, abs=5e-5)
    assert figures["resolution_rate"] == pytest.approx(resolution, abs=5e-5)
    assert figures["satisfaction_rate"] == pytest.approx(satisfaction, abs=5e-5)
    composite = 100 * (WEIGHTS[0] * response + WEIGHTS[1] * resolution + WEIGHTS[2] * satisfaction)
    assert figures["composite"] == pytest.approx(composite, abs=5e-3)


def _as(app: Flask, connection: sa.Connection, role: str, street: str | None = None) -> FlaskClient:
    unit = add_unit(connection) if role in ("department", "assessor") else None
    return login(app.test_client(), add_user(connection, f"drill-{role}", role, street, unit))


def test_drill_figures_equal_hand_counts_at_every_level(
    client: FlaskClient, rows: list[dict[str, str]]
) -> None:
    since, until = OCTOBER
    window = {"since": since, "until": until}
    status, body = get(client, DRILL, level="district", **window)
    assert status == 200, body
    streets = _expected(rows, since, until, "street")
    assert [c["code"] for c in body["children"]] == [STREET_A, STREET_B]
    assert body["child_level"] == "street"
    for child in body["children"]:
        _check(child, streets.get(child["code"], {}))
        assert child["cases"] == f"/api/cases?street={child['code']}"
    total = Counter[str]()
    for c in streets.values():
        total.update(c)
    _check(body["total"], dict(total))

    communities = _expected(rows, since, until, "community")
    status, body = get(client, DRILL, level="street", code=STREET_A, **window)
    assert status == 200, body
    assert body["child_level"] == "community" and body["name"] == "测试001街道"
    assert [c["code"] for c in body["children"]] == [f"{STREET_A}001", f"{STREET_A}002"]
    for child in body["children"]:
        _check(child, communities.get(child["code"], {}))
    _check(body["total"], streets[STREET_A])

    grids = _expected(rows, since, until, "grid")
    status, body = get(client, DRILL, level="community", code=COMMUNITY_A1, **window)
    assert status == 200, body
    assert [c["code"] for c in body["children"]] == [f"{COMMUNITY_A1}001", f"{COMMUNITY_A1}002"]
    for child in body["children"]:
        _check(child, grids.get(child["code"], {}))
        assert child["cases"] == f"/api/cases?street={STREET_A}&grid={child['code']}"
    _check(body["total"], communities[COMMUNITY_A1])

    grid = f"{COMMUNITY_A1}002"
    status, body = get(client, DRILL, level="grid", code=grid, **window)
    assert status == 200, body
    assert body["children"] == [] and body["child_level"] is None
    _check(body["total"], grids.get(grid, {}))
    assert body["cases"] == f"/api/cases?street={STREET_A}&grid={grid}"


def test_drill_window_edges_and_no_callbacks(
    client: FlaskClient, rows: list[dict[str, str]]
) -> None:
    """One day at a time: a request at 00:00:05 or 23:59:55 Beijing time is in its own day
    only; a unit with no valid callback has no rates (None, shown "—"), not 0."""
    days = sorted(
        {r["受理时间"][:10] for r in rows if r["受理时间"][11:] in ("00:00:05", "23:59:55")}
    )
    assert days
    seen_empty = False
    for day in days[:6]:
        status, body = get(client, DRILL, level="street", code=STREET_B, since=day, until=day)
        assert status == 200, body
        expected = _expected(rows, day, day, "community")
        for child in body["children"]:
            _check(child, expected.get(child["code"], {}))
            seen_empty |= child["callbacks"] == 0
    assert seen_empty


def test_drill_defaults_to_this_month(client: FlaskClient, rows: list[dict[str, str]]) -> None:
    """No window: the month of the app's clock, up to its day (18 November 2026)."""
    status, body = get(client, DRILL, level="street", code=STREET_A)
    assert status == 200, body
    assert body["window"] == {"since": "2026-11-01", "until": "2026-11-18"}
    _check(body["total"], _expected(rows, "2026-11-01", "2026-11-18", "street")[STREET_A])


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ({"level": "county"}, "level"),
        ({"level": "street"}, "code"),
        ({"level": "street", "code": "1101"}, "code"),
        ({"level": "grid", "code": "11010200100100x"}, "code"),
        ({"level": "district", "since": "2026-11-05", "until": "2026-11-01"}, "since"),
        ({"level": "district", "since": "2026-13-01"}, "since"),
        ({"level": "district", "zzz": "1"}, "zzz"),
    ],
)
def test_drill_bad_parameters_are_400(
    client: FlaskClient, district: Any, query: dict[str, str], names: str
) -> None:
    status, body = get(client, DRILL, **query)
    assert status == 400, body
    assert names in body["message"]


def test_unknown_unit_is_404(client: FlaskClient, district: Any) -> None:
    status, body = get(client, DRILL, level="community", code="110102009009")
    assert status == 404, body
    assert "110102009009" in body["message"]


def test_commander_drills_into_its_own_street_only(
    app: Flask, connection: sa.Connection, rows: list[dict[str, str]]
) -> None:
    commander = _as(app, connection, "commander", STREET_A)
    since, until = OCTOBER
    status, body = get(commander, DRILL, level="street", code=STREET_A, since=since, until=until)
    assert status == 200, body
    expected = _expected(rows, since, until, "community")
    for child in body["children"]:
        _check(child, expected.get(child["code"], {}))
    # Another street, its community or grid: unknown to the commander (row-level security).
    for level, code in [
        ("street", STREET_B),
        ("community", f"{STREET_B}001"),
        ("grid", f"{STREET_B}001001"),
    ]:
        status, body = get(commander, DRILL, level=level, code=code, since=since, until=until)
        assert status == 404, (level, body)
    # The district's street figures are the public scorecard's: the same for every caller;
    # the other street's name is not the commander's to read.
    status, body = get(commander, DRILL, level="district", since=since, until=until)
    assert status == 200, body
    streets = _expected(rows, since, until, "street")
    by_code = {c["code"]: c for c in body["children"]}
    _check(by_code[STREET_B], streets[STREET_B])
    assert by_code[STREET_A]["name"] == "测试001街道"
    assert by_code[STREET_B]["name"] is None


@pytest.mark.parametrize("role", ["planner", "clerk", "department", "grid_officer"])
def test_other_roles_are_refused(
    app: Flask, connection: sa.Connection, district: Any, role: str
) -> None:
    street = STREET_A if role in ("clerk", "grid_officer") else None
    user = _as(app, connection, role, street)
    status, body = get(user, DRILL, level="street", code=STREET_A)
    assert status == 403, body
    page = user.get("/evaluation")
    assert page.status_code == 403
    assert "无权" in page.get_data(as_text=True)


@pytest.mark.parametrize("role", ["district", "analyst", "commander", "assessor"])
def test_evaluation_page_opens_and_is_linked(
    app: Flask, connection: sa.Connection, district: Any, role: str
) -> None:
    user = _as(app, connection, role, STREET_A if role == "commander" else None)
    page = user.get("/evaluation")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'href="/evaluation"' in html  # in the navigation
    assert "/static/vendor/echarts/echarts.common.min.js" in html
    assert ('id="ev-publish"' in html) == (role == "district")


@pytest.mark.parametrize("role", ["analyst", "assessor"])
def test_analyst_and_assessor_drill_the_whole_district(
    app: Flask, connection: sa.Connection, rows: list[dict[str, str]], role: str
) -> None:
    user = _as(app, connection, role)
    since, until = OCTOBER
    expected = _expected(rows, since, until, "community")
    for street in (STREET_A, STREET_B):
        status, body = get(user, DRILL, level="street", code=street, since=since, until=until)
        assert status == 200, body
        assert len(body["children"]) == 2
        for child in body["children"]:
            _check(child, expected.get(child["code"], {}))


def _store_scheme(connection: sa.Connection, period: dict[str, Any]) -> str:
    """The demo scheme with `period`, stored as it is (owners unchecked: no unit is read)."""
    from etl.aggregates import CONFIG_DIR
    from layers.evaluation.scheme import read_scheme_file
    from layers.evaluation.tables import evaluation_schemes

    body = read_scheme_file(CONFIG_DIR / "evaluation" / "xicheng.yaml") | {"period": period}
    body["hotline"] = {
        "k": 0.5,
        "weights": {"response_rate": 0.2, "resolution_rate": 0.3, "satisfaction_rate": 0.5},
    }
    connection.execute(
        sa.insert(evaluation_schemes).values(
            code="drilltest", version=1, name="测试方案", body=body, created_by="test"
        )
    )
    return "drilltest"


def test_drill_over_a_schemes_period(
    client: FlaskClient, connection: sa.Connection, rows: list[dict[str, str]]
) -> None:
    """?period= takes the window of the scheme's period (here the 19th to the 18th: '2026-11'
    is 19 October … 18 November) and the scheme's k and weights."""
    scheme = _store_scheme(connection, {"kind": "window", "start_day": 19})
    status, body = get(
        client, DRILL, level="street", code=STREET_A, period="2026-11", scheme=scheme
    )
    assert status == 200, body
    assert body["window"] == {"since": "2026-10-19", "until": "2026-11-18"}
    counts = _expected(rows, "2026-10-19", "2026-11-18", "street")[STREET_A]
    v = counts["callbacks"]
    assert body["total"]["callbacks"] == v and body["total"]["requests"] == counts["requests"]
    response, resolution = counts["contacted"] / v, counts["solved"] / v
    satisfaction = (counts["satisfied"] + 0.5 * counts["basic_satisfied"]) / v
    composite = 100 * (0.2 * response + 0.3 * resolution + 0.5 * satisfaction)
    assert body["total"]["satisfaction_rate"] == pytest.approx(satisfaction, abs=5e-5)
    assert body["total"]["composite"] == pytest.approx(composite, abs=5e-3)


def test_drill_period_errors(client: FlaskClient, connection: sa.Connection, district: Any) -> None:
    scheme = _store_scheme(connection, {"kind": "quarter"})
    status, body = get(client, DRILL, level="district", period="2026-11", scheme=scheme)
    assert status == 400 and "2026-11" in body["message"], body
    status, body = get(client, DRILL, level="district", period="2026Q4", since="2026-10-01")
    assert status == 400 and "since" in body["message"], body
    status, body = get(client, DRILL, level="district", period="2026Q4", scheme="nosuch")
    assert status == 404 and "nosuch" in body["message"], body
    status, body = get(client, DRILL, level="district", period="2026Q4", scheme=scheme)
    assert status == 200 and body["window"] == {"since": "2026-10-01", "until": "2026-12-31"}


@pytest.mark.parametrize("hour", list(HOURS))
@pytest.mark.parametrize("process", PROCESS_ZONES)
def test_drill_default_window_follows_the_apps_clock(
    client: FlaskClient, clock: FrozenClock, district: Any, hour: str, process: str
) -> None:
    """Without dates the window is the app clock's Beijing month up to its Beijing day,
    whatever the process's time zone (00:05 on 1 November is November's first day)."""
    clock.instant = HOURS[hour]
    today = clock.today()
    with process_tz(process):
        status, body = get(client, DRILL, level="district")
    assert status == 200, body
    assert body["window"] == {"since": today.replace(day=1).isoformat(), "until": today.isoformat()}
    page = client.get("/evaluation")
    assert f'"today": "{today.isoformat()}"' in page.get_data(as_text=True)
