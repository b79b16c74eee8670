"""The /api endpoints on a real PostGIS: every answer checked against the database."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from etl.aggregates import refresh_request_aggregates
from layers import get_layer
from layers.queries import heat, planner, scorecards, window
from layers.registry import overlay_layers
from tests.aggregates import direct_heat, requests
from tests.clock import FrozenClock, day_start
from tests.district import write_csv
from tests.helpers import clocked_app, get, ok
from tests.plugins.hand import STREET_A, STREET_B, Hand, run_layer

GRID_A = "110102001001001"  # 116.30–116.31, 39.90–39.91


# The app's clock in these tests: a weekday mid-month (tests/app/test_any_hour.py runs the
# date-sensitive ones at other hours and process time zones too).
NOW = dt.datetime.fromisoformat("2026-11-18T15:20:00+08:00")


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def app(connection: sa.Connection, clock: FrozenClock) -> Flask:
    """The app on the test's connection, its clock frozen (`clock`)."""
    return clocked_app(connection, clock)


def _day(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a Beijing day, computed here."""
    return day_start(day), day_start(day + dt.timedelta(days=1))


def refused(client: FlaskClient, path: str, status: int, value: str, **params: Any) -> Any:
    """The request fails with `status`, a JSON error whose message names `value`."""
    got, body = get(client, path, **params)
    assert got == status, body
    assert body["error"] in ("bad_request", "not_found")
    assert value in body["message"], body
    return body


def scalar(conn: sa.Connection, sql: str, **params: Any) -> Any:
    return conn.execute(sa.text(sql), params).scalar_one()


@pytest.fixture
def spread(connection: sa.Connection, district: Any, tmp_path: Path) -> None:
    """240 requests over Sept–Nov 2026, loaded through the ETL and aggregated."""
    run_layer(connection, write_csv(tmp_path / "r.csv", requests()), "service_requests")
    refresh_request_aggregates(connection)


def test_window_pieces_are_the_fewest_whole_periods() -> None:
    d = dt.date
    assert window.Window(d(2026, 10, 5), d(2026, 10, 5)).pieces() == [
        ("day", d(2026, 10, 5), d(2026, 10, 5))
    ]
    assert window.Window(d(2026, 10, 1), d(2026, 12, 31)).pieces() == [
        ("quarter", d(2026, 10, 1), d(2026, 10, 1))
    ]
    # 2025-11-27 … 2026-11-26, the last 365 days on 2026-11-26: 29 reads, not 365.
    assert window.Window(d(2025, 11, 27), d(2026, 11, 26)).pieces() == [
        ("day", d(2025, 11, 27), d(2025, 11, 30)),
        ("month", d(2025, 12, 1), d(2025, 12, 1)),
        ("quarter", d(2026, 1, 1), d(2026, 7, 1)),
        ("month", d(2026, 10, 1), d(2026, 10, 1)),
        ("dekad", d(2026, 11, 1), d(2026, 11, 11)),
        ("day", d(2026, 11, 21), d(2026, 11, 26)),
    ]
    # With a category: months and days only.
    assert window.Window(d(2026, 9, 25), d(2026, 12, 3)).pieces(("month",)) == [
        ("day", d(2026, 9, 25), d(2026, 9, 30)),
        ("month", d(2026, 10, 1), d(2026, 11, 1)),
        ("day", d(2026, 12, 1), d(2026, 12, 3)),
    ]
    assert window.Window(d(2024, 2, 11), d(2024, 2, 29)).pieces() == [
        ("dekad", d(2024, 2, 11), d(2024, 2, 21))
    ]
    assert window.Window(d(2024, 2, 11), d(2024, 2, 28)).pieces() == [
        ("dekad", d(2024, 2, 11), d(2024, 2, 11)),
        ("day", d(2024, 2, 21), d(2024, 2, 28)),
    ]


def test_heat_equals_direct_counts(
    client: FlaskClient, connection: sa.Connection, spread: None
) -> None:
    windows = [
        ("2026-10-05", "2026-10-05"),
        ("2026-09-25", "2026-11-06"),
        ("2026-10-01", "2026-10-31"),
    ]
    for since, until in windows:
        for level in heat.LEVELS:
            for extra in ({}, {"category": "噪声扰民"}, {"street": STREET_B}):
                body = ok(
                    client,
                    "/api/heat/service_requests",
                    level=level,
                    since=since,
                    until=until,
                    **extra,
                )
                want = direct_heat(
                    connection,
                    level,
                    dt.date.fromisoformat(since),
                    dt.date.fromisoformat(until),
                    extra.get("category"),
                    extra.get("street"),
                )
                items = {i["code"]: i["n"] for i in body["items"]}
                assert items == dict(want), (level, since, until, extra)
                assert body["total"] == sum(want.values())
                assert body["max"] == max(want.values(), default=0)
                assert (body["layer"], body["level"]) == ("service_requests", level)
                assert (body["since"], body["until"]) == (since, until)
    # Points: ST_PointOnSurface of each unit; a cell's centre lies in the cell.
    body = ok(client, "/api/heat/service_requests", level="community", since="2026-09-01")
    points = dict(
        connection.execute(
            sa.text(
                "select code, array[ST_X(p), ST_Y(p)] "
                "from (select code, ST_PointOnSurface(geom) p from communities) c"
            )
        ).all()
    )
    for item in body["items"]:
        assert [item["lng"], item["lat"]] == pytest.approx(points[item["code"]], abs=1e-6)
    body = ok(client, "/api/heat/service_requests", level="cell", since="2026-09-01")
    for item in body["items"][:20]:
        point = f"SRID=4326;POINT({item['lng']} {item['lat']})"
        n = scalar(
            connection,
            "select count(*) from service_requests where received_at >= :lo and "
            f"received_at < :hi and {_cell_sql('geom')} = {_cell_sql('ST_GeomFromEWKT(:p)')}",
            lo=day_start(dt.date(2026, 9, 1)),
            hi=_day(NOW.date())[1],  # until defaults to today, by the app's clock
            p=point,
        )
        assert n == item["n"]


def _cell_sql(geom: str) -> str:
    from layers.aggregates import CELL_DLAT, CELL_DLNG, CELL_ORIGIN

    return (
        f"array[floor((ST_X({geom}) - {CELL_ORIGIN[0]!r}) / {CELL_DLNG!r}), "
        f"floor((ST_Y({geom}) - {CELL_ORIGIN[1]!r}) / {CELL_DLAT!r})]"
    )


def test_heat_defaults_to_the_last_30_days_by_grid(
    client: FlaskClient, connection: sa.Connection, hand: Hand
) -> None:
    body = ok(client, "/api/heat/service_requests")
    since = hand.today - dt.timedelta(days=29)
    assert (body["level"], body["since"], body["until"]) == ("grid", str(since), str(hand.today))
    want = direct_heat(connection, "grid", since, hand.today)
    assert {i["code"]: i["n"] for i in body["items"]} == dict(want)
    assert body["total"] > 0


@pytest.mark.parametrize(
    ("params", "status", "value"),
    [
        ({"level": "block"}, 400, "block"),
        ({"since": "2026-02-30"}, 400, "2026-02-30"),
        ({"since": "2026/01/01"}, 400, "2026/01/01"),
        ({"until": "yesterday"}, 400, "yesterday"),
        ({"since": "20261001"}, 400, "20261001"),
        ({"since": "2026-11-02", "until": "2026-11-01"}, 400, "2026-11-02"),
        ({"since": "2020-01-01", "until": "2026-01-01"}, 400, "2020-01-01"),
        ({"since": "1900-01-01"}, 400, "1900-01-01"),
        ({"until": "2100-01-01"}, 400, "2100-01-01"),
        ({"street": "12345"}, 400, "12345"),
        ({"street": "１１０１０２００１"}, 400, "１１０１０２００１"),
        ({"street": "110102999"}, 404, "110102999"),
        ({"category": "x" * 101}, 400, "x" * 101),
        ({"category": "噪声\x00扰民"}, 400, "噪声"),
    ],
)
def test_heat_rejects_bad_parameters(
    client: FlaskClient, district: Any, params: dict[str, str], status: int, value: str
) -> None:
    body = refused(client, "/api/heat/service_requests", status, value, **params)
    assert body["parameter"] in params


def test_heat_of_other_layers_and_unknown_categories(client: FlaskClient, district: Any) -> None:
    body = refused(client, "/api/heat/grids", 404, "grids")
    assert body["layer"] == "grids"
    assert refused(client, "/api/heat/nope", 404, "nope")["layer"] == "nope"
    body = ok(client, "/api/heat/service_requests", category="没有这类")
    assert (body["total"], body["max"], body["items"]) == (0, 0, [])
    assert ok(client, "/api/heat/service_requests", level="street", street=STREET_A)["total"] == 0


def _street(body: dict[str, Any], code: str) -> dict[str, Any]:
    return next(s for s in body["streets"] if s["code"] == code)


def _direct_open(conn: sa.Connection, street: str) -> tuple[int, int]:
    row = conn.execute(
        sa.text(
            "select count(*), count(*) filter (where due_at < :now) from service_requests "
            "where street_code = :s and status is distinct from '已办结'"
        ),
        {"s": street, "now": NOW},
    ).one()
    return int(row[0]), int(row[1])


def _month_count(conn: sa.Connection, street: str | None, month: dt.date) -> int:
    lo = day_start(month)
    hi = day_start((month + dt.timedelta(days=32)).replace(day=1))
    return int(
        scalar(
            conn,
            "select count(*) from service_requests where received_at >= :lo and received_at < :hi"
            " and (street_code = :s or cast(:s as text) is null)",
            lo=lo,
            hi=hi,
            s=street,
        )
    )


def test_streets_scorecards_rates_and_ranks(
    client: FlaskClient, connection: sa.Connection, hand: Hand
) -> None:
    body = ok(client, "/api/streets", month=f"{hand.last:%Y-%m}")
    assert body["k"] == 0.9
    assert body["weights"] == {
        "response_rate": 0.1,
        "resolution_rate": 0.5,
        "satisfaction_rate": 0.4,
    }
    assert body["month"] == f"{hand.last:%Y-%m}" and body["last_month"] == f"{hand.earlier:%Y-%m}"
    a, b = _street(body, STREET_A), _street(body, STREET_B)
    # Street A, by hand: V = 5, contacted 4, solved 3, 满意 2 and 基本满意 2.
    assert a["callbacks"] == 5
    assert a["response_rate"] == 0.8 and a["resolution_rate"] == 0.6
    assert a["satisfaction_rate"] == pytest.approx((2 + 0.9 * 2) / 5)
    assert a["composite"] == pytest.approx(100 * (0.1 * 0.8 + 0.5 * 0.6 + 0.4 * 0.76))
    # Street B: no valid callback, so no rates ("—"), ranked after A.
    assert b["callbacks"] == 0
    assert [b[k] for k in ("response_rate", "resolution_rate", "satisfaction_rate")] == [None] * 3
    assert b["composite"] is None
    assert (a["rank"], b["rank"]) == (1, 2)
    # The month before was a tie: same composite, same volume, same rank.
    assert (a["rank_last_month"], b["rank_last_month"]) == (1, 1)
    assert (a["rank_change"], b["rank_change"]) == (0, -1)
    for street in (a, b):
        assert street["requests"] == _month_count(connection, street["code"], hand.last)
        assert (street["open"], street["overdue"]) == _direct_open(connection, street["code"])
        area = scalar(
            connection,
            "select ST_Area(geom::geography) / 1e6 from streets where code = :c",
            c=street["code"],
        )
        assert street["area_km2"] == round(area, 2)
        assert street["per_km2"] == round(street["requests"] / area, 1)
    assert b["overdue"] == 2 and a["open"] == 3 and a["overdue"] == 0
    district = body["district"]
    assert district["requests"] == _month_count(connection, None, hand.last)
    assert district["callbacks"] == 5 and district["composite"] == a["composite"]
    assert district["open"] == a["open"] + b["open"]


def test_streets_rank_change_and_the_month_parameter(
    client: FlaskClient, hand: Hand, district: Any
) -> None:
    body = ok(client, "/api/streets", month=f"{hand.this:%Y-%m}")
    a, b = _street(body, STREET_A), _street(body, STREET_B)
    assert (a["composite"], b["composite"]) == (50.0, 100.0)
    assert (a["rank"], b["rank"], a["rank_last_month"], b["rank_last_month"]) == (2, 1, 1, 2)
    assert (a["rank_change"], b["rank_change"]) == (-1, 1)
    assert [s["code"] for s in body["streets"]] == [STREET_B, STREET_A]
    assert ok(client, "/api/streets")["month"] == f"{hand.this:%Y-%m}"
    next_month = window.next_month(hand.this)
    for bad in ("2026-13", "2026-1", "26-01", "1999-12", "0000-01", f"{next_month:%Y-%m}"):
        assert refused(client, "/api/streets", 400, bad, month=bad)["parameter"] == "month"


def test_rank_orders_by_composite_then_volume_and_keeps_ties() -> None:
    ranks = scorecards.rank(
        {
            "a": (90.0, 10),
            "b": (90.0, 10),
            "c": (95.0, 1),
            "d": (90.0, 20),
            "e": (None, 50),
            "f": (None, 50),
            "g": (None, 3),
        }
    )
    assert ranks == {"c": 1, "d": 2, "a": 3, "b": 3, "e": 5, "f": 5, "g": 7}


def test_command_summary(client: FlaskClient, connection: sa.Connection, hand: Hand) -> None:
    body = ok(client, f"/api/command/{STREET_A}/summary", month=f"{hand.this:%Y-%m}")
    assert body["street"]["code"] == STREET_A and body["street"]["name"]
    lo, hi = _day(hand.today)
    new_today = scalar(
        connection,
        "select count(*) from service_requests where street_code = :s "
        "and received_at >= :lo and received_at < :hi",
        s=STREET_A,
        lo=lo,
        hi=hi,
    )
    assert body["new_today"] == new_today
    assert (body["open"], body["overdue"]) == _direct_open(connection, STREET_A)
    rates = body["rates"]
    assert rates["month"]["composite"] == 50.0 and rates["last_month"]["composite"] == 68.4
    assert rates["change"]["composite"] == pytest.approx(50.0 - 68.4)
    assert rates["change"]["response_rate"] == pytest.approx(0.5 - 0.8)
    assert rates["change"]["rank"] == -1
    assert (body["composite"], body["rank"], body["streets"]) == (50.0, 2, 2)
    since = hand.today - dt.timedelta(days=29)
    assert body["window"] == {"since": str(since), "until": str(hand.today)}
    recent = "street_code = :s and received_at >= :lo and received_at < :hi"
    params = {"s": STREET_A, "lo": day_start(since), "hi": hi}
    categories = connection.execute(
        sa.text(
            f"select category, count(*) n from service_requests where {recent} "
            "group by 1 order by 2 desc, 1 limit 5"
        ),
        params,
    ).all()
    assert [(c["category"], c["n"]) for c in body["top_categories"]] == [
        tuple(r) for r in categories
    ]
    grids = connection.execute(
        sa.text(
            "select r.grid_code, count(*), ST_XMin(g.geom), ST_YMin(g.geom), ST_XMax(g.geom), "
            f"ST_YMax(g.geom) from service_requests r join grids g on g.code = r.grid_code "
            f"where r.{recent.replace(' and ', ' and r.')} group by 1, g.code "
            "order by 2 desc, 1 limit 10"
        ),
        params,
    ).all()
    assert [(g["code"], g["n"], g["bbox"]) for g in body["hot_grids"]] == [
        (code, n, [round(v, 6) for v in box]) for code, n, *box in grids
    ]
    year_ago = day_start(dt.date(hand.today.year - 1, hand.today.month, 1))
    categories = connection.execute(
        sa.text(
            "select category from service_requests where street_code = :s "
            "and received_at >= :lo group by 1 order by count(*) desc, 1"
        ),
        {"s": STREET_A, "lo": year_ago},
    ).scalars()
    assert body["categories"] == list(categories)
    assert body["service_hall"]["code"] == "H001"
    assert body["service_hall"]["phone"] == "010-1234"
    updated = scalar(
        connection,
        "select max(updated_at) from service_requests where street_code = :s",
        s=STREET_A,
    )
    assert dt.datetime.fromisoformat(body["updated_at"]) == updated
    assert body["k"] == 0.9 and body["weights"]["resolution_rate"] == 0.5
    b = ok(client, f"/api/command/{STREET_B}/summary")
    assert b["service_hall"]["phone"] is None
    refused(client, "/api/command/110102999/summary", 404, "110102999")
    refused(client, "/api/command/abc/summary", 400, "abc")
    refused(client, f"/api/command/{STREET_A}/summary", 400, "2026-00", month="2026-00")


def test_latest_requests_since_an_instant(
    client: FlaskClient, connection: sa.Connection, hand: Hand
) -> None:
    path = f"/api/command/{STREET_A}/latest"
    response = client.get(path)
    assert response.status_code == 200 and response.mimetype == "application/geo+json"
    body = response.get_json()
    assert body["type"] == "FeatureCollection"
    want = connection.execute(
        sa.text(
            "select source_id, ST_X(geom), ST_Y(geom) from service_requests "
            "where street_code = :s and received_at >= :now - interval '24 hours' "
            "order by received_at desc"
        ),
        {"s": STREET_A, "now": hand.now},
    ).all()
    assert [f["properties"]["source_id"] for f in body["features"]] == [r[0] for r in want]
    assert [f["properties"]["source_id"] for f in body["features"]] == ["N0", "N1"]
    feature = body["features"][0]
    assert set(feature["properties"]) == {
        "id",
        "source_id",
        "received_at",
        "category",
        "status",
        "address",
        "department",
    }
    assert feature["geometry"] == {"type": "Point", "coordinates": [want[0][1], want[0][2]]}
    assert feature["properties"]["department"] == "城市管理部"
    received = dt.datetime.fromisoformat(feature["properties"]["received_at"])
    assert hand.now - received < dt.timedelta(hours=2)
    since = hand.now - dt.timedelta(hours=48)
    for value in (since.isoformat(), since.isoformat().replace("+", " ")):
        body = ok(client, path, since=value)
        assert [f["properties"]["source_id"] for f in body["features"]] == ["N0", "N1", "N2"]
    naive = f"{since:%Y-%m-%dT%H:%M:%S}"
    assert len(ok(client, path, since=naive)["features"]) == 3
    body = ok(client, path, since=naive, limit=1)
    assert [f["properties"]["source_id"] for f in body["features"]] == ["N0"]
    assert body["limit"] == 1
    recent_b = scalar(
        connection,
        "select count(*) from service_requests where street_code = :s "
        "and received_at >= :now - interval '24 hours'",
        s=STREET_B,
        now=hand.now,
    )
    assert len(ok(client, f"/api/command/{STREET_B}/latest")["features"]) == recent_b
    refused(client, path, 400, "501", limit="501")
    refused(client, path, 400, "0", limit="0")
    refused(client, path, 400, "ten", limit="ten")
    refused(client, path, 400, "last tuesday", since="last tuesday")
    for extreme in ("0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-14:00"):
        refused(client, path, 400, extreme, since=extreme)
    refused(client, "/api/command/110102999/latest", 404, "110102999")


def _features(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["properties"]["source_id"]: f["properties"] for f in body["features"]}


def test_planner_states_as_of_a_date(client: FlaskClient, hand: Hand) -> None:
    d = dt.date
    today = hand.today
    body = ok(client, "/api/planner", as_of="2025-08-01")
    assert body["as_of"] == "2025-08-01"
    projects, targets = _features(body["projects"]), _features(body["targets"])
    assert set(projects) == {"P1", "P2", "P3"} and set(targets) == {"S1", "S2"}
    # P2 ran 2025-03-15 … 2025-12-20: on 2025-08-01 in progress, a straight line to 100.
    p2 = projects["P2"]
    assert (p2["state"], p2["state_code"]) == ("进行中", "in_progress")
    expected = 100 * (d(2025, 8, 1) - d(2025, 3, 15)).days / (d(2025, 12, 20) - d(2025, 3, 15)).days
    assert (p2["progress"], p2["progress_basis"]) == (round(expected, 1), "estimated")
    assert (p2["delay_days"], p2["early_days"], p2["delayed"]) == (0, 0, False)
    assert p2["schedule"] == "按期"
    assert (p2["current_phase"], p2["current_progress"]) == ("完成", 100.0)
    # On 2025-08-01 the end of 2025-12-20 had not come: it is not shown.
    assert (p2["planned_end"], p2["actual_start"], p2["actual_end"]) == (
        "2025-12-31",
        "2025-03-15",
        None,
    )
    assert projects["P1"]["state_code"] == "not_started" and projects["P1"]["progress"] == 0
    assert projects["P1"]["actual_start"] is None  # 2026-03-15 was still to come
    # Before its actual start a project has not started, even after its planned start.
    p2_early = _features(ok(client, "/api/planner", as_of="2025-03-10")["projects"])["P2"]
    assert (p2_early["state_code"], p2_early["progress"]) == ("not_started", 0)
    assert (p2_early["actual_start"], p2_early["actual_end"], p2_early["progress_basis"]) == (
        None,
        None,
        "dates",
    )
    # Finished 11 days before the planned end: 提前 11 天, not a delay of −11.
    done = _features(ok(client, "/api/planner", as_of="2025-12-20")["projects"])["P2"]
    assert (done["state_code"], done["progress"], done["actual_end"]) == ("done", 100, "2025-12-20")
    assert (done["delay_days"], done["early_days"], done["delayed"]) == (0, 11, False)
    assert done["schedule"] == "提前 11 天"
    # The day before it finished: in progress, still on schedule, no end known.
    eve = _features(ok(client, "/api/planner", as_of="2025-12-19")["projects"])["P2"]
    assert (eve["state_code"], eve["actual_end"], eve["delay_days"]) == ("in_progress", None, 0)
    # Today: stored progress; P1 still open, P3 planned for next year.
    now = ok(client, "/api/planner")
    projects, targets = _features(now["projects"]), _features(now["targets"])
    assert projects["P1"]["state"] == "进行中" and projects["P1"]["progress"] == 40
    assert projects["P1"]["progress_basis"] == "recorded"
    assert projects["P1"]["delay_days"] == max(0, (today - d(2026, 12, 31)).days)
    assert projects["P3"]["state"] == "未启动" and projects["P3"]["delay_days"] == 0
    assert now["as_of"] == str(today)
    s1, s2 = targets["S1"], targets["S2"]
    assert (s1["state_code"], s1["progress"], s1["current_status"]) == ("in_progress", 70, "进行中")
    assert s1["delay_days"] == (today - d(2026, 6, 30)).days and s1["delayed"]
    assert s1["schedule"] == f"延期 {s1['delay_days']} 天" and s1["early_days"] == 0
    assert (s2["state_code"], s2["delay_days"], s2["delayed"]) == ("done", 15, True)
    assert (s2["early_days"], s2["schedule"], s2["actual_end"]) == (0, "延期 15 天", "2026-06-15")
    # A past day while P1 is still open: a straight line from its start to 40 % today.
    mid = d(2026, 7, 1)
    p1 = _features(ok(client, "/api/planner", as_of=str(mid))["projects"])["P1"]
    span = (today - d(2026, 3, 15)).days
    assert p1["progress"] == round(40 * (mid - d(2026, 3, 15)).days / span, 1)
    # Geometry and filters.
    feature = next(f for f in now["projects"]["features"] if f["properties"]["source_id"] == "P2")
    assert feature["geometry"]["type"] == "Polygon"
    kind = ok(client, "/api/planner", kind="老旧小区改造")
    assert set(_features(kind["projects"])) == {"P2"} and kind["targets"]["features"] == []
    street = ok(client, "/api/planner", street=STREET_B)
    assert set(_features(street["projects"])) == {"P2"}
    assert set(_features(street["targets"])) == {"S2"}
    refused(client, "/api/planner", 400, "2026-02-31", as_of="2026-02-31")
    refused(client, "/api/planner", 400, "1", street="1")
    refused(client, "/api/planner", 404, "110102999", street="110102999")


def test_as_of_state_without_dates() -> None:
    row = {
        "planned_start": None,
        "planned_end": None,
        "actual_start": None,
        "actual_end": None,
        "progress": None,
    }
    today = dt.date(2026, 11, 26)
    state = planner.as_of_state(row, dt.date(2026, 1, 1), today)
    assert (state.state_code, state.progress, state.delay_days) == ("not_started", 0, None)


@pytest.mark.parametrize("layer", overlay_layers())
def test_overlay_layers_as_geojson(
    client: FlaskClient, connection: sa.Connection, hand: Hand, layer: str
) -> None:
    table = get_layer(layer)
    where = "status is distinct from '已结案'" if layer == "enforcement_cases" else "true"
    for street in (None, STREET_A):
        params = {"street": street} if street else {}
        response = client.get(f"/api/layers/{layer}/geojson?" + urlencode(params))
        assert response.status_code == 200 and response.mimetype == "application/geo+json"
        assert len(response.data) < 1 << 20
        body = json.loads(response.data)
        assert body["type"] == "FeatureCollection" and body["layer"] == layer
        column = "code" if layer == "streets" else "street_code"
        keys = connection.execute(
            sa.text(
                f"select {table.key} from {layer} where {where} "
                f"and ({column} = :s or cast(:s as text) is null) order by 1"
            ),
            {"s": street},
        ).scalars()
        assert [f["id"] for f in body["features"]] == list(keys)
        published = {f.name for f in table.published}
        for feature in body["features"]:
            extra = {"overdue"} if layer == "enforcement_cases" else set()
            assert set(feature["properties"]) == published | extra
            assert feature["geometry"]["type"]
    assert body["features"], layer


def test_enforcement_overlay_flags_overdue_cases(client: FlaskClient, hand: Hand) -> None:
    body = json.loads(client.get("/api/layers/enforcement_cases/geojson").data)
    flags = {f["properties"]["source_id"]: f["properties"]["overdue"] for f in body["features"]}
    assert flags == {"C1": True, "C2": False}  # C3 is closed


def test_overlay_errors(client: FlaskClient, district: Any) -> None:
    assert refused(client, "/api/layers/service_requests/geojson", 404, "service_requests")
    assert refused(client, "/api/layers/nope/geojson", 404, "nope")["layer"] == "nope"
    refused(client, "/api/layers/grids/geojson", 400, "11010200", street="11010200")
    refused(client, "/api/layers/grids/geojson", 404, "110102999", street="110102999")


def test_district_grids_are_simplified_but_keep_their_shape(
    client: FlaskClient, connection: sa.Connection, district: Any
) -> None:
    connection.execute(
        sa.text("update grids set geom = ST_Segmentize(geom, 0.0001) where code = :c"),
        {"c": GRID_A},
    )
    body = json.loads(client.get("/api/layers/grids/geojson").data)
    ring = next(f for f in body["features"] if f["id"] == GRID_A)["geometry"]["coordinates"][0]
    assert len(ring) == 5  # the collinear vertices are gone, the corners stay
    assert {(x, y) for x, y in ring} == {
        (116.30, 39.90),
        (116.31, 39.90),
        (116.31, 39.91),
        (116.30, 39.91),
    }
