"""The data-quality guards (layers/queries/guards.py) on a hand-made November: which requests
and cases each guard finds, per street, as the district and as a commander (row-level
security); expected records are listed by hand here, distances placed in metres."""

from __future__ import annotations

import datetime as dt
import math
import random
from typing import Any

import pytest
import sqlalchemy as sa

from layers.queries import access
from layers.queries.guards import GUARDS, guard_counts, guard_records
from layers.queries.params import ParamError
from tests.evaldepts_fixtures import (
    SINCE,
    UNTIL,
    ZONE,
    A,
    B,
    at,
    east,
    guards_november,
    north,
    request,
)


@pytest.fixture
def november(connection: sa.Connection, district: Any) -> dict[str, int]:
    return guards_november(connection)


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


def test_repeats_agree_with_a_plain_distance_join(connection: sa.Connection, district: Any) -> None:
    """Pairs 40 to 60 m apart at any bearing, across the lattice's cells: the repeats found
    are those of a join of every pair on the geography's distance (no lattice, no plane)."""
    rng = random.Random(7)
    for i in range(60):
        lng, lat = rng.uniform(116.301, 116.319), rng.uniform(39.901, 39.919)
        metres, bearing = rng.uniform(40, 60), rng.uniform(0, 2 * math.pi)
        first = at(10, 20, 0) + dt.timedelta(hours=rng.randrange(0, 20 * 24))
        request(connection, f"R{i}a", first, "噪声扰民", lng, lat)
        request(
            connection,
            f"R{i}b",
            first + dt.timedelta(days=rng.uniform(1, 29)),
            "噪声扰民",
            east(lng, lat, metres * math.sin(bearing)),
            north(lat, metres * math.cos(bearing)),
        )
    expected = set(
        connection.execute(
            sa.text(
                "select distinct r.source_id from service_requests r join service_requests e"
                " on e.category = r.category and (e.received_at, e.id) < (r.received_at, r.id)"
                " and e.received_at >= r.received_at - interval '30 days'"
                " and ST_DWithin(r.geom::geography, e.geom::geography, 50)"
                " where r.received_at >= :lo and r.received_at < :hi"
            ),
            {"lo": at(11, 1, 0), "hi": at(12, 1, 0)},
        ).scalars()
    )
    assert 10 < len(expected) < 40  # some within 50 m, some not
    access.scope(connection, access.DISTRICT)
    found = guard_records(connection, "repeat", SINCE, UNTIL, ZONE, limit=500)
    assert {r["source_id"] for r in found["records"]} == expected
    assert all(r["metres"] <= 50 for r in found["records"])
