"""The public scorecard is the district's for every role: each commander is shown the rank and
the district totals the district sees, computed here from the raw rows of a demo district
(15 streets), not through layers.queries.scorecards; row data stays in the caller's zone."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.config import from_env
from app.db import make_engine
from tests.clock import FrozenClock, day_start
from tests.helpers import add_user, login
from tests.plugins.ogc import demo_database

END = dt.date(2026, 11, 25)  # the demo's last day
NOW = dt.datetime.fromisoformat("2026-11-25T07:30:00+08:00")  # UTC's 24th: before 08:00
THIS, LAST = dt.date(2026, 11, 1), dt.date(2026, 10, 1)
# DESIGN.md, "The three rates": k and the weights of etl/config/rates.yaml.
K = 0.9
WEIGHTS = (0.10, 0.50, 0.40)


@dataclass
class Demo:
    url: str
    engine: sa.Engine
    app: Flask
    users: dict[str, int]  # "district" or a street code → user id
    streets: list[str]
    names: dict[str, str]  # street code → name, from the rows


@pytest.fixture(scope="module")
def demo(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    name = f"blockdata_test_scorecard_{os.getpid()}"
    sizes = {"requests": 2500, "cases": 20, "targets": 10, "projects": 10, "end": END}
    with demo_database(server_url, name, tmp_path_factory.mktemp("demo"), **sizes) as url:
        engine = make_engine(url)
        with engine.begin() as conn:
            names = dict(conn.execute(sa.text("select code, name from streets order by 1")).all())
            streets = sorted(names)
            users = {"district": add_user(conn, "scorecard-district")}
            for code in streets:
                users[code] = add_user(conn, f"scorecard-{code}", "commander", code)
        app = create_app(
            {"DATABASE_URL": url, "TESTING": True},
            settings=from_env().with_(clock=FrozenClock(NOW)),
        )
        try:
            yield Demo(url, engine, app, users, streets, names)
        finally:
            app.extensions["blockdata.engine"].dispose()
            engine.dispose()


def _client(demo: Demo, who: str) -> FlaskClient:
    return login(demo.app.test_client(), demo.users[who])


def _next(month: dt.date) -> dt.date:
    return (month + dt.timedelta(days=32)).replace(day=1)


def _counts(conn: sa.Connection, month: dt.date) -> dict[str | None, dict[str, int]]:
    """Per street (None: not placed) the month's requests and callbacks, from the rows."""
    rows = conn.execute(
        sa.text(
            "select street_code, count(*) received, "
            "count(*) filter (where callback_valid) v, "
            "count(*) filter (where callback_valid and callback_contacted) contacted, "
            "count(*) filter (where callback_valid and callback_solved) solved, "
            "count(*) filter (where callback_valid and satisfaction = '满意') satisfied, "
            "count(*) filter (where callback_valid and satisfaction = '基本满意') basic "
            "from service_requests where received_at >= :lo and received_at < :hi group by 1"
        ),
        {"lo": day_start(month), "hi": day_start(_next(month))},
    ).mappings()
    return {row["street_code"]: dict(row) for row in rows}


def _total(counts: dict[str | None, dict[str, int]]) -> dict[str, int]:
    keys = ("received", "v", "contacted", "solved", "satisfied", "basic")
    return {k: sum(c[k] for c in counts.values()) for k in keys}


def _composite(c: dict[str, int] | None) -> float | None:
    if not c or not c["v"]:
        return None
    rates = (
        c["contacted"] / c["v"],
        c["solved"] / c["v"],
        (c["satisfied"] + K * c["basic"]) / c["v"],
    )
    return round(100 * sum(w * r for w, r in zip(WEIGHTS, rates, strict=True)), 2)


def _ranks(counts: dict[str | None, dict[str, int]], streets: list[str]) -> dict[str, int]:
    """Competition ranks over every street: composite descending, then volume; no score last."""
    keys = {}
    for code in streets:
        score = _composite(counts.get(code))
        volume = counts[code]["received"] if code in counts else 0
        keys[code] = (score is None, -(score or 0.0), -volume)
    return {code: 1 + sum(k < keys[code] for k in keys.values()) for code in streets}


@dataclass(frozen=True)
class Expected:
    ranks: dict[str, int]
    last_ranks: dict[str, int]
    composite: dict[str, float | None]
    district: dict[str, Any]
    open: dict[str | None, int]
    overdue: dict[str | None, int]


@pytest.fixture(scope="module")
def expected(demo: Demo) -> Expected:
    with demo.engine.connect() as conn:
        this, last = _counts(conn, THIS), _counts(conn, LAST)
        total = _total(this)
        open_rows = conn.execute(
            sa.text(
                "select street_code, count(*), count(*) filter (where due_at < :now) "
                "from service_requests where status is distinct from '已办结' group by 1"
            ),
            {"now": NOW},
        ).all()
        area = conn.execute(
            sa.text("select sum(ST_Area(geom::geography)) / 1e6 from streets")
        ).scalar_one()
    district = {
        "requests": total["received"],
        "callbacks": total["v"],
        "composite": _composite(total),
        "response_rate": round(total["contacted"] / total["v"], 4),
        "open": sum(n for _, n, _ in open_rows),
        "overdue": sum(o for _, _, o in open_rows),
        "area_km2": round(area, 2),
    }
    return Expected(
        ranks=_ranks(this, demo.streets),
        last_ranks=_ranks(last, demo.streets),
        composite={code: _composite(this.get(code)) for code in demo.streets},
        district=district,
        open={code: n for code, n, _ in open_rows},
        overdue={code: o for code, _, o in open_rows},
    )


def test_the_demo_district_ranks_fifteen_streets_apart(demo: Demo, expected: Expected) -> None:
    assert len(demo.streets) == 15
    assert len(set(expected.ranks.values())) > 10  # a real ranking, not one big tie
    assert expected.district["callbacks"] > 0


@pytest.mark.parametrize("month", [THIS, LAST], ids=["this-month", "last-month"])
def test_every_role_sees_the_districts_ranking_and_totals(
    demo: Demo, expected: Expected, month: dt.date
) -> None:
    """As the district and as each of the 15 commanders: the same public scorecard."""
    with demo.engine.connect() as conn:
        counts = _counts(conn, month)
        previous = _counts(conn, (month - dt.timedelta(days=1)).replace(day=1))
    ranks, last_ranks = _ranks(counts, demo.streets), _ranks(previous, demo.streets)
    total = _total(counts)
    for who in ["district", *demo.streets]:
        response = _client(demo, who).get(f"/api/streets?month={month:%Y-%m}")
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        rows = {row["code"]: row for row in body["streets"]}
        assert set(rows) == set(demo.streets), who
        assert {code: row["rank"] for code, row in rows.items()} == ranks, who
        assert {code: row["rank_last_month"] for code, row in rows.items()} == last_ranks, who
        for code, row in rows.items():
            assert row["composite"] == _composite(counts.get(code)), (who, code)
            assert row["requests"] == (counts[code]["received"] if code in counts else 0)
            assert row["rank_change"] == last_ranks[code] - ranks[code]
        district = body["district"]
        assert (district["requests"], district["callbacks"]) == (total["received"], total["v"])
        assert district["composite"] == _composite(total), who
        whole = who == "district"
        # Names and areas are public (the published ranking names every street); row data
        # (open, overdue): the caller's zone only, its district totals only for the district.
        assert district["area_km2"] == expected.district["area_km2"], who
        for key in ("open", "overdue"):
            assert district[key] == (expected.district[key] if whole else None), (who, key)
        for code, row in rows.items():
            mine = whole or code == who
            assert row["name"] == demo.names[code], (who, code)
            want = (expected.open.get(code, 0), expected.overdue.get(code, 0))
            assert (row["open"], row["overdue"]) == (want if mine else (None, None)), (who, code)


def test_each_commanders_panel_rank_is_the_districts(demo: Demo, expected: Expected) -> None:
    for code in demo.streets:
        for who in (code, "district"):
            response = _client(demo, who).get(f"/api/command/{code}/summary")
            assert response.status_code == 200, response.get_data(as_text=True)
            body = response.get_json()
            assert body["month"] == f"{THIS:%Y-%m}"
            assert (body["rank"], body["streets"]) == (expected.ranks[code], 15), (who, code)
            assert body["composite"] == expected.composite[code]
            assert body["rates"]["change"]["rank"] == (
                expected.last_ranks[code] - expected.ranks[code]
            )
            assert (body["open"], body["overdue"]) == (
                expected.open.get(code, 0),
                expected.overdue.get(code, 0),
            )
        other = demo.streets[0] if code != demo.streets[0] else demo.streets[1]
        assert _client(demo, code).get(f"/api/command/{other}/summary").status_code == 404


def test_a_commander_sees_no_other_streets_rows(demo: Demo, tmp_path: Path) -> None:
    """The scorecard is public; the requests behind it are not."""
    code = demo.streets[3]
    body = _client(demo, code).get("/api/layers/service_requests/features?limit=50").get_json()
    assert body["features"] and {f["properties"]["street_code"] for f in body["features"]} == {code}
