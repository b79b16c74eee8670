"""Hand-made requests, cases and whistles for the departments' ratings and the data-quality
guards (tests/layers/test_departments.py, test_guards.py, tests/app/test_evaluation_quality.py):
requests are rows of the layer, cases and whistles go through their write paths
(layers/cases/store.py, layers/whistles.py). Times are Beijing's; the window is November 2026.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import sqlalchemy as sa

from etl.rules import Limit, TimeLimits
from layers import whistles as w
from layers.cases import Actor, create_case, transition
from tests.clock import BEIJING
from tests.helpers import grid_of

ZONE = "Asia/Shanghai"
A, B = "110102001", "110102003"
SINCE, UNTIL = dt.date(2026, 11, 1), dt.date(2026, 11, 30)
# 24 hours on the clock, or 15 days for 复杂: due times a test computes by hand.
LIMITS = TimeLimits(default=Limit(24, "hours"), by_category={"复杂": Limit(360, "hours")})
CLERK = Actor("clerk", "clerk")
ETL = Actor("etl", "etl")
MARKET, FIRE = "district-market", "district-fire"
CITY_A = f"{A}-city"


def at(month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    """A Beijing time of 2026."""
    return dt.datetime(2026, month, day, hour, minute, tzinfo=BEIJING)


def unit_actor(code: str) -> Actor:
    return Actor(f"user-{code}", "department", code)


def north(lat: float, metres: float) -> float:
    """The latitude `metres` north (a degree of latitude is 111,035 m at 39.9°N)."""
    return lat + metres / 111_035.0


def east(lng: float, lat: float, metres: float) -> float:
    """The longitude `metres` east at `lat` (a degree of longitude: 111,320 m × cos φ)."""
    return lng + metres / (111_320.0 * math.cos(math.radians(lat)))


def request(
    conn: sa.Connection,
    source_id: str,
    received: dt.datetime,
    category: str,
    lng: float,
    lat: float,
    callback_valid: bool | None = None,
) -> int:
    """A service request at (lng, lat), placed in its grid by PostGIS."""
    grid, community, street = grid_of(conn, lng, lat)
    return int(
        conn.execute(
            sa.text(
                "insert into service_requests (source, source_id, received_at, category,"
                " street_code, community_code, grid_code, callback_valid, geom)"
                " values ('test-evaldepts', :s, :t, :c, :street, :community, :grid, :v,"
                " ST_SetSRID(ST_MakePoint(:x, :y), 4326)) returning id"
            ),
            {
                "s": source_id,
                "t": received,
                "c": category,
                "street": street,
                "community": community,
                "grid": grid,
                "v": callback_valid,
                "x": lng,
                "y": lat,
            },
        ).scalar_one()
    )


def case(
    conn: sa.Connection,
    source_id: str,
    received: dt.datetime,
    steps: list[tuple[str, Actor, dict[str, Any], dt.datetime]],
    *,
    category: str | None = None,
    point: tuple[float, float] = (116.305, 39.905),
    callback_valid: bool | None = None,
) -> int:
    """A request and its case, taken through `steps` (action, actor, fields, time)."""
    category = category or f"类别{source_id}"
    rid = request(conn, source_id, received, category, *point, callback_valid=callback_valid)
    street = grid_of(conn, *point)[2]
    row = create_case(
        conn,
        kind="service_request",
        source_id=rid,
        street_code=street,
        category=category,
        received_at=received,
    )
    version = 0
    for action, actor, fields, when in steps:
        row = transition(
            conn, row["id"], action, version, actor, fields, when, limits=LIMITS, zone=ZONE
        )
        version = row["version"]
    return int(row["id"])


def dispatch(unit: str, when: dt.datetime, assisting: list[str] | None = None) -> Any:
    return ("dispatch", CLERK, {"main_unit": unit, "assisting_units": assisting or []}, when)


def redispatch(unit: str, when: dt.datetime) -> Any:
    return ("redispatch", CLERK, {"main_unit": unit}, when)


def by_unit(action: str, unit: str, when: dt.datetime, **fields: Any) -> Any:
    return (action, unit_actor(unit), fields, when)


def resolved(unit: str, accepted: dt.datetime, done: dt.datetime) -> list[Any]:
    return [by_unit("accept", unit, accepted), by_unit("resolve", unit, done, result="已处理")]


def callback(when: dt.datetime, valid: bool, rating: str = "满意") -> Any:
    fields = {"valid": valid, "contacted": True, "solved": True, "rating": rating}
    return ("callback", CLERK, fields, when)


def close(when: dt.datetime) -> Any:
    return ("close", CLERK, {}, when)


def whistle(
    conn: sa.Connection,
    street: str,
    meet: dt.datetime,
    arrivals: dict[str, int | None],
    ratings: dict[str, str],
) -> int:
    """A whistle of `street` met at `meet`: each unit arrives `minutes` after it (None: never),
    completes an hour later; the street rates the units of `ratings`."""
    commander = Actor(f"commander-{street}", "commander")
    wid = w.blow(
        conn,
        street=street,
        target=w.Place("lane", ref="测试胡同"),
        unit_codes=list(arrivals),
        reason="联合整治",
        meeting_point="胡同口",
        meet_at=meet,
        actor=commander,
        now=meet - dt.timedelta(hours=3),
    )
    for unit, minutes in arrivals.items():
        if minutes is None:
            continue
        w.report_arrival(conn, wid, unit, CLERK, meet + dt.timedelta(minutes=minutes))
        w.report_completion(conn, wid, unit, CLERK, meet + dt.timedelta(hours=1))
    for unit, rating in ratings.items():
        w.rate(conn, wid, unit, rating, commander, meet + dt.timedelta(hours=2))
    return wid
