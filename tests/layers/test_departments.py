"""The departments rated by the streets (layers/queries/departments.py) on a hand-made
November: cases through the write path, whistles through theirs; every expected figure is
counted by hand in the comments, as the district and as a commander (row-level security)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from layers.queries import access
from layers.queries.departments import department_ratings
from layers.queries.params import ParamError
from tests.evaldepts_fixtures import (
    CITY_A,
    FIRE,
    MARKET,
    SINCE,
    UNTIL,
    ZONE,
    A,
    B,
    at,
    departments_november,
)

NOW = at(12, 2, 12)  # the clock: d4 (due 21 Nov) is overdue, d5 (due 15 Dec) is not yet due


@pytest.fixture
def november(connection: sa.Connection, district: Any) -> None:
    departments_november(connection)


def _by_code(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["code"]: r for r in rows}


def test_the_district_sees_every_street(connection: sa.Connection, november: None) -> None:
    access.scope(connection, access.DISTRICT)
    rows = department_ratings(connection, SINCE, UNTIL, ZONE, now=NOW)
    assert [r["code"] for r in rows] == [FIRE, MARKET, CITY_A]  # by rank
    got = _by_code(rows)
    market, fire, city = got[MARKET], got[FIRE], got[CITY_A]
    # A street's 城市管理部 is named with its street (every street has one); the district's not.
    street_name = connection.execute(
        sa.text("select name from streets where code = :c"), {"c": CITY_A.split("-")[0]}
    ).scalar_one()
    assert city["title"] == f"{street_name} {city['name']}"
    assert market["title"] == market["name"]
    # market: holds d1 d2 d4, returned d3 → 4 dispatched, 1 returned; judged d1 d2 d4, on time d1
    assert market["cases"] == {
        "dispatched": 4,
        "assisted": 0,
        "returned": 1,
        "judged": 3,
        "on_time": 1,
    }
    assert market["return_rate"] == 0.25 and market["on_time_rate"] == pytest.approx(
        1 / 3, abs=1e-4
    )
    # W1 + W2: both late (30, 10): median 20, mean 20; 不满意 + 基本满意 → 0.9 / 2
    assert market["whistles"] == {
        "summoned": 2,
        "arrived": 2,
        "late": 2,
        "median_delay_minutes": 20.0,
        "mean_delay_minutes": 20.0,
    }
    assert market["ratings"] == {"满意": 0, "基本满意": 1, "不满意": 1}
    assert market["rating_rate"] == 0.45
    # 40·45 + 20·0 + 30·33.33… + 10·75 = 3550 → 35.5
    assert market["components"] == {
        "rating": 45.0,
        "arrival": 0.0,
        "on_time": 33.33,
        "returns": 75.0,
    }
    assert market["score"] == 35.5 and market["rank"] == 2
    # fire: holds d3 d5 d6; judged d3 (on time) d6 (late); d5 not due yet
    assert fire["cases"] == {
        "dispatched": 3,
        "assisted": 0,
        "returned": 0,
        "judged": 2,
        "on_time": 1,
    }
    # W1 early (0), W2 on the minute (0), W4 30 late: median 0, mean 10; 满意 ×2, 基本满意
    assert fire["whistles"] == {
        "summoned": 3,
        "arrived": 3,
        "late": 1,
        "median_delay_minutes": 0.0,
        "mean_delay_minutes": 10.0,
    }
    assert fire["rating_rate"] == round((2 + 0.9) / 3, 4)
    # 40·96.667 + 20·66.667 + 30·50 + 10·100 = 7700 → 77
    assert fire["score"] == 77.0 and fire["rank"] == 1
    # city: assisted d2, summoned by W1 and never came: only `arrival` (0) has data
    assert city["cases"] == {
        "dispatched": 0,
        "assisted": 1,
        "returned": 0,
        "judged": 0,
        "on_time": 0,
    }
    assert city["whistles"]["summoned"] == 1 and city["whistles"]["arrived"] == 0
    assert city["whistles"]["median_delay_minutes"] is None
    assert city["components"] == {"rating": None, "arrival": 0.0, "on_time": None, "returns": None}
    assert city["score"] == 0.0 and city["rank"] == 3
    assert city["name"] and city["kind"] == "department" and city["street_code"] == A
    assert market["kind"] == "district_department"


def test_weights_override_and_a_unit_without_data_ranks_last(
    connection: sa.Connection, november: None
) -> None:
    access.scope(connection, access.DISTRICT)
    rows = department_ratings(
        connection, SINCE, UNTIL, ZONE, {"arrival": 0, "returns": 30}, now=NOW
    )
    got = _by_code(rows)
    # market: (40·45 + 30·33.33… + 30·75) / 100 = 50.5; fire: (3866.67 + 1500 + 3000) / 100
    assert got[MARKET]["score"] == 50.5
    assert got[FIRE]["score"] == 83.67
    assert got[CITY_A]["score"] is None  # its one component weighs 0
    assert [r["code"] for r in rows] == [FIRE, MARKET, CITY_A]
    assert [r["rank"] for r in rows] == [1, 2, 3]


def test_without_a_clock_open_cases_are_not_judged(
    connection: sa.Connection, november: None
) -> None:
    access.scope(connection, access.DISTRICT)
    got = _by_code(department_ratings(connection, SINCE, UNTIL, ZONE))
    assert got[MARKET]["cases"]["judged"] == 2  # d1 d2: d4 is open
    assert got[MARKET]["on_time_rate"] == 0.5


def test_a_commander_sees_how_the_units_served_its_street(
    connection: sa.Connection, november: None
) -> None:
    access.scope(connection, A)
    got = _by_code(department_ratings(connection, SINCE, UNTIL, ZONE, now=NOW))
    assert set(got) == {MARKET, FIRE, CITY_A}
    # market in A: d1 d2 held, d3 returned; W1 only (30 late, 不满意)
    assert got[MARKET]["cases"] == {
        "dispatched": 3,
        "assisted": 0,
        "returned": 1,
        "judged": 2,
        "on_time": 1,
    }
    assert got[MARKET]["whistles"]["summoned"] == 1
    assert got[MARKET]["whistles"]["median_delay_minutes"] == 30.0
    assert got[MARKET]["rating_rate"] == 0.0
    # fire in A: d3 d6; W1 (0) and W4 (30): median 15; 满意 + 基本满意 → 0.95
    assert got[FIRE]["cases"]["dispatched"] == 2
    assert got[FIRE]["whistles"]["median_delay_minutes"] == 15.0
    assert got[FIRE]["rating_rate"] == 0.95
    access.scope(connection, B)
    got = _by_code(department_ratings(connection, SINCE, UNTIL, ZONE, now=NOW))
    assert set(got) == {MARKET, FIRE}
    assert got[MARKET]["cases"]["dispatched"] == 1 and got[MARKET]["whistles"]["late"] == 1


@pytest.mark.parametrize(
    "weights",
    [
        {"speed": 1},
        {"rating": -1},
        {"rating": "x"},
        {"rating": float("nan")},
        dict.fromkeys(("rating", "arrival", "on_time", "returns"), 0),
    ],
)
def test_bad_weights_are_refused(connection: sa.Connection, weights: dict[str, Any]) -> None:
    with pytest.raises(ParamError) as raised:
        department_ratings(connection, SINCE, UNTIL, ZONE, weights)
    assert raised.value.status == 400
    assert "权重" in raised.value.message or "评分项" in raised.value.message


def test_since_after_until_is_refused(connection: sa.Connection) -> None:
    with pytest.raises(ParamError):
        department_ratings(connection, UNTIL, SINCE, ZONE)
