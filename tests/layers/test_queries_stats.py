"""Heat, scorecards and the planner called through layers.queries on a plain Connection (no
Flask), scoped as the district and as each street's commander (layers.queries.access.scope),
and checked against counts taken straight from the tables as their owner — never from the
aggregates the queries read."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from etl.aggregates import RatesConfig
from layers import get_layer
from layers.aggregates import CELL_DLAT, CELL_DLNG, CELL_ORIGIN
from layers.queries import access, geojson, heat, planner, scorecards
from layers.queries.types import json_value
from layers.queries.window import Window
from tests.clock import FrozenClock
from tests.district import NORTH, SOUTH, STREETS
from tests.plugins.hand import STREET_A, STREET_B, Hand

NOW = dt.datetime.fromisoformat("2026-11-18T15:20:00+08:00")
ZONES = (access.DISTRICT, STREET_A, STREET_B)
RATES = RatesConfig(
    k=0.9, weights={"response_rate": 0.1, "resolution_rate": 0.5, "satisfaction_rate": 0.4}
)

REQUESTS = f"""
select street_code as street, community_code as community, grid_code as grid,
       floor((ST_X(geom) - {CELL_ORIGIN[0]!r}) / {CELL_DLNG!r})::int as cell_x,
       floor((ST_Y(geom) - {CELL_ORIGIN[1]!r}) / {CELL_DLAT!r})::int as cell_y,
       (received_at at time zone 'Asia/Shanghai')::date as day, category,
       status is distinct from '已办结' as open, due_at < :now as overdue,
       coalesce(callback_valid, false) as valid, callback_contacted as contacted,
       callback_solved as solved, satisfaction
  from service_requests
"""


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@contextmanager
def scoped(conn: sa.Connection, zone: str) -> Iterator[sa.Connection]:
    """`conn` read as the reader confined to `zone`, inside a savepoint: rolling it back
    makes the connection its owner again."""
    savepoint = conn.begin_nested()
    try:
        access.scope(conn, zone)
        assert conn.execute(sa.text("select current_user")).scalar_one() == access.READER_ROLE
        yield conn
    finally:
        savepoint.rollback()


def _requests(conn: sa.Connection) -> list[dict[str, Any]]:
    """Every request, read as the owner (no row-level security)."""
    return [dict(row) for row in conn.execute(sa.text(REQUESTS), {"now": NOW}).mappings()]


def _in_zone(row: dict[str, Any], zone: str) -> bool:
    return zone == access.DISTRICT or row["street"] == zone


def _unit(row: dict[str, Any], level: str) -> str | None:
    return f"{row['cell_x']}_{row['cell_y']}" if level == "cell" else row[level]


# --- heat ---------------------------------------------------------------------------------


@pytest.mark.parametrize("zone", ZONES)
def test_heat_counts_the_zones_requests_per_unit(
    connection: sa.Connection, hand: Hand, zone: str
) -> None:
    rows = _requests(connection)
    window = Window(hand.earlier, hand.today)
    seen = [r for r in rows if _in_zone(r, zone) and window.since <= r["day"] <= window.until]
    assert seen and (zone == access.DISTRICT or len(seen) < len(rows))
    for level in heat.LEVELS:
        want = Counter(_unit(r, level) for r in seen)
        with scoped(connection, zone):
            got = heat.heat(connection, level, window)
        assert {item["code"]: item["n"] for item in got["items"]} == {
            code: n for code, n in want.items() if code is not None
        }, level
        assert (got["total"], got["unplaced"]) == (len(seen), want[None])
        assert got["max"] == max(n for code, n in want.items() if code is not None)
        assert [item["n"] for item in got["items"]] == sorted(
            (item["n"] for item in got["items"]), reverse=True
        )


@pytest.mark.parametrize("zone", ZONES)
def test_heat_points_lie_in_their_units(connection: sa.Connection, hand: Hand, zone: str) -> None:
    for level in ("street", "community", "grid"):
        with scoped(connection, zone):
            items = heat.heat(connection, level, Window(hand.earlier, hand.today))["items"]
        assert items
        table = get_layer({"street": "streets", "community": "communities"}.get(level, "grids"))
        for item in items:
            inside = connection.execute(
                sa.select(
                    sa.func.ST_DWithin(
                        table.table.c.geom,
                        sa.func.ST_SetSRID(sa.func.ST_MakePoint(item["lng"], item["lat"]), 4326),
                        1e-6,
                    )
                ).where(table.table.c.code == item["code"])
            ).scalar_one()
            assert inside, (level, item)


@pytest.mark.parametrize("zone", ZONES)
def test_heat_filters_by_category_and_street(
    connection: sa.Connection, hand: Hand, zone: str
) -> None:
    rows = _requests(connection)
    window = Window(hand.last, hand.today)
    for category in ("噪声扰民", "停车管理"):
        for street in (None, STREET_A, STREET_B):
            want = Counter(
                r["grid"]
                for r in rows
                if _in_zone(r, zone)
                and window.since <= r["day"] <= window.until
                and r["category"] == category
                and street in (None, r["street"])
            )
            with scoped(connection, zone):
                got = heat.heat(connection, "grid", window, category, street)
            assert {i["code"]: i["n"] for i in got["items"]} == dict(want), (category, street)
            assert (got["category"], got["street"]) == (category, street)
    # A commander asking for the other street sees none of it.
    if zone != access.DISTRICT:
        other = STREET_B if zone == STREET_A else STREET_A
        with scoped(connection, zone):
            got = heat.heat(connection, "grid", Window(hand.earlier, hand.today), None, other)
        assert (got["total"], got["items"]) == (0, [])


# --- scorecards ---------------------------------------------------------------------------


def _card(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Volume, valid callbacks and the three rates of some requests, by DESIGN.md's rule."""
    valid = [r for r in rows if r["valid"]]
    v = len(valid)
    card: dict[str, Any] = {"requests": len(rows), "callbacks": v}
    if v == 0:
        return card | dict.fromkeys(
            ("response_rate", "resolution_rate", "satisfaction_rate", "composite")
        )
    response = sum(1 for r in valid if r["contacted"]) / v
    resolution = sum(1 for r in valid if r["solved"]) / v
    satisfied = sum(1 for r in valid if r["satisfaction"] == "满意")
    fairly = sum(1 for r in valid if r["satisfaction"] == "基本满意")
    satisfaction = (satisfied + 0.9 * fairly) / v
    composite = 100 * (0.1 * response + 0.5 * resolution + 0.4 * satisfaction)
    return card | {
        "response_rate": round(response, 4),
        "resolution_rate": round(resolution, 4),
        "satisfaction_rate": round(satisfaction, 4),
        "composite": round(composite, 2),
    }


def _ranks(cards: dict[str, dict[str, Any]]) -> dict[str, int]:
    """1 + the number of streets strictly ahead (higher composite, then higher volume; a
    street without a composite behind every street with one)."""

    def ahead(a: dict[str, Any], b: dict[str, Any]) -> bool:
        if (a["composite"] is None) != (b["composite"] is None):
            return b["composite"] is None
        if a["composite"] != b["composite"]:
            return (a["composite"] or 0) > (b["composite"] or 0)
        return bool(a["requests"] > b["requests"])

    return {
        code: 1 + sum(ahead(other, card) for other in cards.values())
        for code, card in cards.items()
    }


def _month_rows(rows: list[dict[str, Any]], month: dt.date) -> list[dict[str, Any]]:
    return [r for r in rows if (r["day"].year, r["day"].month) == (month.year, month.month)]


@pytest.mark.parametrize("zone", ZONES)
def test_streets_overview_is_the_districts_scorecard_with_the_zones_row_data(
    connection: sa.Connection, hand: Hand, zone: str
) -> None:
    rows = _requests(connection)
    codes = sorted(connection.execute(sa.text("select code from streets")).scalars())
    assert codes == sorted([STREET_A, STREET_B])
    whole = zone == access.DISTRICT
    for month, before in ((hand.this, hand.last), (hand.last, hand.earlier)):
        this = {c: _card([r for r in _month_rows(rows, month) if r["street"] == c]) for c in codes}
        last = {c: _card([r for r in _month_rows(rows, before) if r["street"] == c]) for c in codes}
        rank, rank_before = _ranks(this), _ranks(last)
        with scoped(connection, zone):
            body = scorecards.streets_overview(connection, month, NOW, RATES, whole=whole)
        assert (body["month"], body["last_month"]) == (f"{month:%Y-%m}", f"{before:%Y-%m}")
        assert [s["code"] for s in body["streets"]] == sorted(codes, key=lambda c: (rank[c], c))
        for street in body["streets"]:
            code = street["code"]
            for name, value in this[code].items():
                assert street[name] == pytest.approx(value), (code, name)
            assert (street["rank"], street["rank_last_month"]) == (rank[code], rank_before[code])
            assert street["rank_change"] == rank_before[code] - rank[code]
            assert street["name"]  # the public directory: every street's name, in every zone
            mine = [r for r in rows if r["street"] == code and r["open"]]
            if _in_zone({"street": code}, zone):
                want = (len(mine), sum(1 for r in mine if r["overdue"]))
                assert (street["open"], street["overdue"]) == want
            else:
                assert (street["open"], street["overdue"]) == (None, None)
        district = body["district"]
        for name, value in _card(_month_rows(rows, month)).items():
            assert district[name] == pytest.approx(value), name
        open_rows = [r for r in rows if r["open"]]
        if whole:
            assert district["open"] == len(open_rows)
            assert district["overdue"] == sum(1 for r in open_rows if r["overdue"])
        else:
            assert (district["open"], district["overdue"]) == (None, None)
    # The hand-made months rank the streets differently: the ranks checked above could fail.
    ranks = [
        _ranks({c: _card([r for r in _month_rows(rows, m) if r["street"] == c]) for c in codes})
        for m in (hand.this, hand.last)
    ]
    assert ranks[0] != ranks[1]


@pytest.mark.parametrize("zone", (STREET_A, STREET_B))
def test_command_summary_as_the_commander_and_as_the_district(
    connection: sa.Connection, hand: Hand, zone: str
) -> None:
    rows = _requests(connection)
    codes = [STREET_A, STREET_B]
    rank = _ranks(
        {c: _card([r for r in _month_rows(rows, hand.this) if r["street"] == c]) for c in codes}
    )
    mine = [r for r in rows if r["street"] == zone]
    for reader in (zone, access.DISTRICT):
        with scoped(connection, reader):
            body = scorecards.command_summary(connection, zone, hand.this, hand.today, NOW, RATES)
        assert body["street"]["code"] == zone
        assert body["rank"] == rank[zone] and body["streets"] == len(codes)
        assert body["rates"]["month"]["requests"] == len(_month_rows(mine, hand.this))
        assert body["new_today"] == sum(1 for r in mine if r["day"] == hand.today)
        open_rows = [r for r in mine if r["open"]]
        assert (body["open"], body["overdue"]) == (
            len(open_rows),
            sum(1 for r in open_rows if r["overdue"]),
        )
        recent = [r for r in mine if hand.today - dt.timedelta(days=29) <= r["day"] <= hand.today]
        grids = Counter(r["grid"] for r in recent)
        assert {g["code"]: g["n"] for g in body["hot_grids"]} == dict(grids)


# --- planner ------------------------------------------------------------------------------


def _plans(conn: sa.Connection, table: str, zone: str) -> dict[int, dict[str, Any]]:
    query = sa.text(
        f"select id, kind, progress, planned_start, actual_start, actual_end from {table} "
        "where cast(:zone as text) = '*' or street_code = :zone"
    )
    return {row["id"]: dict(row) for row in conn.execute(query, {"zone": zone}).mappings()}


def _state_today(row: dict[str, Any], today: dt.date) -> str:
    if row["actual_end"] is not None and row["actual_end"] <= today:
        return "done"
    start = row["actual_start"] or row["planned_start"]
    return "in_progress" if start is not None and start <= today else "not_started"


@pytest.mark.parametrize("zone", ZONES)
def test_planner_shows_the_zones_projects_and_targets(
    connection: sa.Connection, hand: Hand, zone: str
) -> None:
    wanted = {
        "projects": _plans(connection, "renovation_projects", zone),
        "targets": _plans(connection, "relocation_targets", zone),
    }
    everything = len(_plans(connection, "renovation_projects", access.DISTRICT))
    assert wanted["projects"] and (zone == access.DISTRICT or len(wanted["projects"]) < everything)
    with scoped(connection, zone):
        body = planner.planner(connection, hand.today, hand.today)
    for part, want in wanted.items():
        features = {f["id"]: f["properties"] for f in body[part]["features"]}
        assert set(features) == set(want), part
        for key, props in features.items():
            assert props["state_code"] == _state_today(want[key], hand.today), (part, key)
            assert props["progress"] == pytest.approx(float(want[key]["progress"]))
            assert props["progress_basis"] == "recorded"
    kind = "批发市场"
    with scoped(connection, zone):
        body = planner.planner(connection, hand.today, hand.today, kind=kind)
    targets = {f["id"] for f in body["targets"]["features"]}
    assert targets == {k for k, row in wanted["targets"].items() if row["kind"] == kind}


# --- GeoJSON ------------------------------------------------------------------------------


def _decimals(coordinates: Any) -> int:
    """The most decimals of any number in nested coordinates."""
    if isinstance(coordinates, list):
        return max((_decimals(c) for c in coordinates), default=0)
    text = repr(coordinates)
    return len(text.split(".")[1]) if "." in text else 0


# Moves rows by a distance with more decimals than GeoJSON keeps.
NUDGE = "update {} set geom = ST_Translate(geom, 0.0000012345678, 0.0000043219876)"


@pytest.mark.parametrize("zone", ZONES)
def test_latest_is_the_streets_newest_requests_in_the_zone(
    connection: sa.Connection, hand: Hand, zone: str
) -> None:
    connection.execute(sa.text(NUDGE.format("service_requests")))
    since = NOW - dt.timedelta(days=60)
    for street in (STREET_A, STREET_B):
        want = list(
            connection.execute(
                sa.text(
                    "select id from service_requests where street_code = :s "
                    "and received_at >= :since and (cast(:zone as text) = '*' or :s = :zone) "
                    "order by received_at desc, id desc limit 3"
                ),
                {"s": street, "since": since, "zone": zone},
            ).scalars()
        )
        assert want or zone not in (access.DISTRICT, street)
        with scoped(connection, zone):
            body = geojson.latest(connection, street, since, 3)
        assert [f["id"] for f in body["features"]] == want, street
        if want:
            decimals = {_decimals(f["geometry"]["coordinates"]) for f in body["features"]}
            assert decimals == {geojson.COORDINATE_DECIMALS}


def test_overlays_and_the_planner_write_the_one_precision(
    connection: sa.Connection, hand: Hand
) -> None:
    connection.execute(sa.text(NUDGE.format("renovation_projects")))
    layer = get_layer("renovation_projects")
    overlay = json.loads(geojson.layer_geojson(connection, layer, None, NOW))["features"]
    plans = planner.planner(connection, hand.today, hand.today)["projects"]["features"]
    for features in (overlay, plans):
        assert features
        decimals = {_decimals(f["geometry"]["coordinates"]) for f in features}
        assert decimals == {geojson.COORDINATE_DECIMALS}


def test_json_value_writes_dates_in_iso_8601() -> None:
    assert json_value(dt.date(2026, 11, 18)) == "2026-11-18"
    assert json_value(NOW) == "2026-11-18T15:20:00+08:00"
    assert [json_value(v) for v in (None, 3, "x", 1.5)] == [None, 3, "x", 1.5]


@pytest.mark.parametrize("zone", ZONES)
def test_a_streets_name_and_extent_in_the_zone(
    connection: sa.Connection, district: Any, zone: str
) -> None:
    names = {
        code: name for code, name in connection.execute(sa.text("select code, name from streets"))
    }
    for code, (west, east) in STREETS.items():
        with scoped(connection, zone):
            name = scorecards.street_name(connection, code)
            extent = scorecards.street_extent(connection, code)
        if zone in (access.DISTRICT, code):
            assert name == names[code]
            assert extent is not None and (extent["code"], extent["name"]) == (code, names[code])
            box = (extent["minx"], extent["miny"], extent["maxx"], extent["maxy"])
            assert box == pytest.approx((west, SOUTH, east, NORTH))
        else:
            assert (name, extent) == (None, None)
