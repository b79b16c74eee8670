"""The data-quality guards (layers/queries/guards.py) on a hand-made November: which requests
and cases each guard finds, per street, as the district and as a commander (row-level
security); expected records are listed by hand here, distances placed in metres."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from etl.units import build_units
from layers.queries import access
from layers.queries.guards import GUARDS, guard_counts, guard_records
from layers.queries.params import ParamError
from tests.evaldepts_fixtures import (
    CITY_A,
    ETL,
    FIRE,
    MARKET,
    SINCE,
    UNTIL,
    ZONE,
    A,
    B,
    at,
    by_unit,
    callback,
    case,
    close,
    dispatch,
    east,
    north,
    redispatch,
    request,
    resolved,
)

P1 = (116.305, 39.905)  # street A
P7 = (116.325, 39.905)  # street B


@pytest.fixture
def november(connection: sa.Connection, district: Any) -> dict[str, int]:
    build_units(connection)
    c = connection
    made: dict[str, int] = {}
    noise = "噪声扰民"
    # Repeats. P2 is 40 m north of P1, 29 days later → a repeat of P1 (before the window).
    made["P1"] = request(c, "P1", at(10, 20, 10), noise, *P1)
    made["P2"] = request(c, "P2", at(11, 18, 10), noise, P1[0], north(P1[1], 40))
    # P3 60 m south of P1, 21 days later → not (too far; 100 m from P2, and earlier)
    made["P3"] = request(c, "P3", at(11, 10, 10), noise, P1[0], north(P1[1], -60))
    # P6 on P1's spot, another category → not
    made["P6"] = request(c, "P6", at(11, 5, 10), "环境卫生", *P1)
    # P4 40 m east of P5, 31 days later → not
    p5 = (116.315, 39.915)
    made["P5"] = request(c, "P5", at(10, 1, 10), noise, *p5)
    made["P4"] = request(c, "P4", at(11, 1, 10), noise, east(p5[0], p5[1], 40), p5[1])
    # street B: P8 10 m from P7, received 1 Nov 00:30 Beijing (31 Oct in UTC) → in, a repeat;
    # P9 on P8's spot, 1 Dec 00:30 Beijing (30 Nov in UTC) → out
    made["P7"] = request(c, "P7", at(10, 25, 10), noise, *P7)
    made["P8"] = request(c, "P8", at(11, 1, 0, 30), noise, P7[0], north(P7[1], 10))
    made["P9"] = request(c, "P9", at(12, 1, 0, 30), noise, P7[0], north(P7[1], 10))
    # Quick closes and callbacks; each case its own category and place.
    pa = (116.301, 39.901)
    pb = (116.331, 39.911)
    # Q1 (A): resolved 9 min after dispatch → quick; valid callback, closed
    made["Q1"] = case(
        c,
        "Q1",
        at(11, 3, 9),
        [
            dispatch(MARKET, at(11, 3, 9, 5)),
            *resolved(MARKET, at(11, 3, 9, 7), at(11, 3, 9, 14)),
            callback(at(11, 4, 9), True),
            close(at(11, 4, 10)),
        ],
        point=pa,
    )
    # Q2 (A): 11 min → not quick; an invalid callback, closed → no_callback
    made["Q2"] = case(
        c,
        "Q2",
        at(11, 3, 9),
        [
            dispatch(MARKET, at(11, 3, 10)),
            *resolved(MARKET, at(11, 3, 10, 5), at(11, 3, 10, 11)),
            callback(at(11, 4, 9), False, "不满意"),
            close(at(11, 4, 10)),
        ],
        point=(pa[0] + 0.002, pa[1]),
    )
    # Q3 (B): exactly 10 min → quick; called back, not closed
    made["Q3"] = case(
        c,
        "Q3",
        at(11, 4, 9),
        [
            dispatch(FIRE, at(11, 4, 10)),
            *resolved(FIRE, at(11, 4, 10, 5), at(11, 4, 10, 10)),
            callback(at(11, 5, 9), True),
        ],
        point=pb,
    )
    # Q4 (B), from an extract: closed, the callback without answers, the request's valid → not
    etl_life = [
        ("dispatch", ETL, {"main_unit": FIRE}, at(11, 6, 10)),
        ("accept", ETL, {}, at(11, 6, 11)),
        ("resolve", ETL, {}, at(11, 7, 10)),
        ("callback", ETL, {}, at(11, 8, 10)),
        ("close", ETL, {}, at(11, 8, 11)),
    ]
    made["Q4"] = case(
        c, "Q4", at(11, 6, 9), etl_life, point=(pb[0] + 0.002, pb[1]), callback_valid=True
    )
    # Q5 (B): the same with no valid callback anywhere → no_callback
    made["Q5"] = case(c, "Q5", at(11, 6, 9), etl_life, point=(pb[0] + 0.004, pb[1]))
    # Q6 (A): quick, but received 1 Dec 00:20 Beijing (30 Nov in UTC) → out
    made["Q6"] = case(
        c,
        "Q6",
        at(12, 1, 0, 20),
        [dispatch(MARKET, at(12, 1, 0, 25)), *resolved(MARKET, at(12, 1, 0, 26), at(12, 1, 0, 27))],
        point=(pa[0] + 0.004, pa[1]),
    )
    # X1 (A): return, return, and a redispatch before acceptance → 3 moves → bounced
    made["X1"] = case(
        c,
        "X1",
        at(11, 12, 9),
        [
            dispatch(MARKET, at(11, 12, 10)),
            by_unit("return", MARKET, at(11, 12, 11), reason="非本单位"),
            redispatch(FIRE, at(11, 12, 12)),
            by_unit("return", FIRE, at(11, 12, 13), reason="非本单位"),
            redispatch(CITY_A, at(11, 12, 14)),
            redispatch(MARKET, at(11, 12, 15)),
        ],
        point=(pa[0] + 0.006, pa[1]),
    )
    # X2 (A): return, return, redispatched after each → 2 moves → not
    made["X2"] = case(
        c,
        "X2",
        at(11, 12, 9),
        [
            dispatch(MARKET, at(11, 12, 10)),
            by_unit("return", MARKET, at(11, 12, 11), reason="非本单位"),
            redispatch(FIRE, at(11, 12, 12)),
            by_unit("return", FIRE, at(11, 12, 13), reason="非本单位"),
            redispatch(MARKET, at(11, 12, 14)),
        ],
        point=(pa[0] + 0.008, pa[1]),
    )
    return made


EXPECTED = {
    A: {"quick_close": 1, "no_callback": 1, "repeat": 1, "bounced": 1},
    B: {"quick_close": 1, "no_callback": 1, "repeat": 1, "bounced": 0},
}


def test_counts_as_the_district(connection: sa.Connection, november: dict[str, int]) -> None:
    access.scope(connection, access.DISTRICT)
    assert guard_counts(connection, SINCE, UNTIL, ZONE) == EXPECTED


def test_counts_as_a_commander(connection: sa.Connection, november: dict[str, int]) -> None:
    access.scope(connection, A)
    assert guard_counts(connection, SINCE, UNTIL, ZONE) == {A: EXPECTED[A]}
    access.scope(connection, B)
    assert guard_counts(connection, SINCE, UNTIL, ZONE) == {B: EXPECTED[B]}


def _sources(found: dict[str, Any]) -> list[str]:
    return [r["source_id"] for r in found["records"]]


def test_records_behind_each_guard(connection: sa.Connection, november: dict[str, int]) -> None:
    access.scope(connection, access.DISTRICT)

    def records(guard: str, **kw: Any) -> dict[str, Any]:
        return guard_records(connection, guard, SINCE, UNTIL, ZONE, **kw)

    quick = records("quick_close")
    assert _sources(quick) == ["Q1", "Q3"] and quick["total"] == 2
    assert [r["minutes"] for r in quick["records"]] == [9.0, 10.0]
    assert quick["inflates"] == "resolution_rate"
    assert _sources(records("no_callback")) == ["Q2", "Q5"]
    assert _sources(records("bounced")) == ["X1"]
    assert records("bounced")["records"][0]["moves"] == 3
    repeat = records("repeat")
    assert _sources(repeat) == ["P8", "P2"]  # by receipt time
    p8, p2 = repeat["records"]
    assert p2["earlier_source_id"] == "P1" and p2["earlier_request_id"] == november["P1"]
    assert p2["metres"] == pytest.approx(40, abs=0.5)
    assert p8["earlier_source_id"] == "P7" and p8["street_code"] == B
    assert p2["grid_code"] and p2["community_code"] and p2["category"] == "噪声扰民"
    assert p2["case_id"] is None  # a request without a case
    q1 = quick["records"][0]
    assert q1["case_id"] and q1["street_code"] == A
    assert q1["received_at"] == at(11, 3, 9).isoformat()
    # one street, and paging
    assert _sources(records("repeat", street=A)) == ["P2"]
    first = records("quick_close", limit=1)
    second = records("quick_close", limit=1, offset=1)
    past = records("quick_close", limit=1, offset=5)
    assert _sources(first) == ["Q1"] and _sources(second) == ["Q3"]
    assert first["total"] == second["total"] == past["total"] == 2 and past["records"] == []


def test_a_commander_lists_its_street_only(
    connection: sa.Connection, november: dict[str, int]
) -> None:
    access.scope(connection, A)
    for guard in GUARDS:
        found = guard_records(connection, guard, SINCE, UNTIL, ZONE)
        assert {r["street_code"] for r in found["records"]} <= {A}
        assert found["total"] == EXPECTED[A][guard]
    assert guard_records(connection, "repeat", SINCE, UNTIL, ZONE, street=B)["total"] == 0


def test_quick_close_minutes_and_an_unknown_guard(
    connection: sa.Connection, november: dict[str, int]
) -> None:
    access.scope(connection, access.DISTRICT)
    counts = guard_counts(connection, SINCE, UNTIL, ZONE, minutes=11)
    assert counts[A]["quick_close"] == 2  # Q1 (9 min) and Q2 (11 min)
    with pytest.raises(ParamError) as raised:
        guard_records(connection, "nonesuch", SINCE, UNTIL, ZONE)
    assert raised.value.status == 404
