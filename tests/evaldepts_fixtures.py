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
from etl.units import build_units
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


def departments_november(connection: sa.Connection) -> None:
    """The departments' November (tests/layers/test_departments.py counts it by hand)."""
    build_units(connection)
    # d1 market: dispatched 3 Nov 10:00, due 4 Nov 10:00, resolved 15:00 → on time
    case(
        connection,
        "d1",
        at(11, 3, 9),
        [dispatch(MARKET, at(11, 3, 10)), *resolved(MARKET, at(11, 3, 11), at(11, 3, 15))],
    )
    # d2 market (city assisting): due 6 Nov 10:00, resolved 7 Nov → late
    case(
        connection,
        "d2",
        at(11, 5, 9),
        [
            dispatch(MARKET, at(11, 5, 10), [CITY_A]),
            *resolved(MARKET, at(11, 5, 11), at(11, 7, 10)),
        ],
    )
    # d3: market returns it, fire gets it at 13:00 (due 11 Nov 13:00), resolves 14:00 → on time
    case(
        connection,
        "d3",
        at(11, 10, 9),
        [
            dispatch(MARKET, at(11, 10, 10)),
            by_unit("return", MARKET, at(11, 10, 12), reason="不属本单位职责"),
            redispatch(FIRE, at(11, 10, 13)),
            *resolved(FIRE, at(11, 10, 13, 30), at(11, 10, 14)),
        ],
    )
    # d4 market, street B: due 21 Nov 10:00, still open on 2 Dec → overdue, judged late
    case(
        connection, "d4", at(11, 20, 9), [dispatch(MARKET, at(11, 20, 10))], point=(116.325, 39.905)
    )
    # d5 fire, street B, 复杂: due 15 Dec → not judged yet
    case(
        connection,
        "d5",
        at(11, 30, 9),
        [dispatch(FIRE, at(11, 30, 10))],
        category="复杂",
        point=(116.326, 39.906),
    )
    # d6 fire: dispatched 1 Nov 00:30 Beijing (31 Oct in UTC) → in; due 2 Nov 00:30, resolved
    # 00:31 → late
    case(
        connection,
        "d6",
        at(11, 1, 0, 10),
        [dispatch(FIRE, at(11, 1, 0, 30)), *resolved(FIRE, at(11, 1, 1), at(11, 2, 0, 31))],
    )
    # d7 market: dispatched 1 Dec 00:30 Beijing (30 Nov in UTC) → out
    case(
        connection,
        "d7",
        at(12, 1, 0, 10),
        [dispatch(MARKET, at(12, 1, 0, 30)), *resolved(MARKET, at(12, 1, 0, 40), at(12, 1, 0, 50))],
    )
    # d8 city: dispatched 31 Oct 23:30 Beijing → out
    case(connection, "d8", at(10, 31, 23), [dispatch(CITY_A, at(10, 31, 23, 30))])
    # W1 (A) 12 Nov 09:00: market 30 min late, fire 10 min early, city never; rated 不满意 / 满意
    whistle(
        connection,
        A,
        at(11, 12, 9),
        {MARKET: 30, FIRE: -10, CITY_A: None},
        {MARKET: "不满意", FIRE: "满意"},
    )
    # W2 (B) 25 Nov 14:00: market 10 min late, fire on the minute; 基本满意 / 满意
    whistle(
        connection, B, at(11, 25, 14), {MARKET: 10, FIRE: 0}, {MARKET: "基本满意", FIRE: "满意"}
    )
    # W3 (A) 1 Dec 00:30 Beijing → out
    whistle(connection, A, at(12, 1, 0, 30), {MARKET: 120}, {MARKET: "不满意"})
    # W4 (A) 1 Nov 00:10 Beijing → in: fire 30 min late, 基本满意
    whistle(connection, A, at(11, 1, 0, 10), {FIRE: 30}, {FIRE: "基本满意"})


P1 = (116.305, 39.905)  # street A
P7 = (116.325, 39.905)  # street B


def guards_november(connection: sa.Connection) -> dict[str, int]:
    """The guards' November: request and case ids by source id (tests/layers/test_guards.py
    lists what each guard finds by hand)."""
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
