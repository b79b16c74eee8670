"""Open311's reading of requests through the query package alone (layers/queries/georeport.py):
a plain connection scoped as each role, a plain dict of parameters, no Flask app."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from layers.queries import ParamError, access, georeport
from tests.clock import BEIJING, HOURS, FrozenClock, day_start
from tests.plugins.hand import STREET_A, STREET_B, Hand


@pytest.fixture(params=["0730-beijing", "2330-beijing"])
def clock(request: pytest.FixtureRequest) -> FrozenClock:
    """Two hours of the day: 07:30 in Beijing is still yesterday in UTC."""
    return FrozenClock(HOURS[request.param])


def _expected(conn: sa.Connection, zone: str, where: str, binds: dict[str, Any]) -> list[int]:
    """The ids, newest first, straight from the table (as the owner, the zone by hand)."""
    in_zone = "" if zone == access.DISTRICT else " and street_code = :zone"
    return list(
        conn.execute(
            sa.text(
                f"select id from service_requests where {where}{in_zone}"
                " order by received_at desc, id desc"
            ),
            {**binds, "zone": zone},
        ).scalars()
    )


@pytest.mark.parametrize("zone", [access.DISTRICT, STREET_A, STREET_B])
def test_pages_follow_the_window_the_filters_and_the_zone(
    connection: sa.Connection, hand: Hand, zone: str
) -> None:
    now = hand.now
    start = now - dt.timedelta(days=60)
    args = {"start_date": f"{start:%Y-%m-%dT%H:%M:%S%z}", "status": "open"}
    want = _expected(
        connection,
        zone,
        "received_at >= :start and received_at <= :now and status is distinct from '已办结'",
        {"start": start, "now": now},
    )
    assert want, "the hand-made requests have open ones in the window"
    access.scope(connection, zone)
    conds = georeport.conditions(args, now, BEIJING)
    got: list[int] = []
    number, more = 1, True
    while more:
        rows, more = georeport.page(connection, conds, number, 2, BEIJING)
        assert len(rows) <= 2
        got += [r["service_request_id"] for r in rows]
        number += 1
    assert got == want


def test_a_start_date_is_the_local_midnight_of_the_district(
    connection: sa.Connection, hand: Hand
) -> None:
    day = hand.last  # the first of last month, a local date
    want = _expected(
        connection,
        access.DISTRICT,
        "received_at >= :start and received_at < :end",
        {"start": day_start(day), "end": day_start(day) + georeport.WINDOW},
    )
    assert want
    access.scope(connection, access.DISTRICT)
    conds = georeport.conditions({"start_date": day.isoformat()}, hand.now, BEIJING)
    rows, more = georeport.page(connection, conds, 1, 1000, BEIJING)
    assert [r["service_request_id"] for r in rows] == want
    assert not more


def test_one_request_in_the_specs_shape_with_local_times(
    connection: sa.Connection, hand: Hand
) -> None:
    row = connection.execute(
        sa.text(
            "select id, received_at, category, department, street_code, ST_X(geom) as x,"
            " ST_Y(geom) as y from service_requests where geom is not null order by id limit 1"
        )
    ).one()
    access.scope(connection, access.DISTRICT)
    found = georeport.one(connection, row.id, BEIJING)
    assert found is not None
    assert found["service_request_id"] == row.id
    assert found["service_code"] == row.category
    assert found["requested_datetime"] == row.received_at.astimezone(BEIJING).isoformat(
        timespec="seconds"
    )
    assert found["requested_datetime"].endswith("+08:00")
    assert (found["long"], found["lat"]) == pytest.approx((row.x, row.y))
    other = STREET_B if row.street_code == STREET_A else STREET_A
    access.scope(connection, other)  # a commander of another street: not found
    assert georeport.one(connection, row.id, BEIJING) is None


def test_bad_parameters_are_param_errors_naming_the_parameter(hand: Hand) -> None:
    for args, name in [
        ({"status": "pending"}, "status"),
        ({"street": "12"}, "street"),
        ({"service_request_id": "1,x"}, "service_request_id"),
        ({"service_request_id": ",".join(map(str, range(1001)))}, "service_request_id"),
        ({"start_date": "2025-02-30"}, "start_date"),
    ]:
        with pytest.raises(ParamError) as raised:
            georeport.conditions(args, hand.now, BEIJING)
        assert raised.value.param == name, args
        assert raised.value.status == 400
