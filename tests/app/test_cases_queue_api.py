"""The command post's API on a real PostGIS, at a frozen clock, as every role concerned:
/api/cases' grid and source filters, its due-time order and first-page counts, the
`updated_after` filter and the live `stamp`, the unit load board (/api/cases/load), overdue
per street and per unit (/api/cases/overdue) and the actions a case's drawer offers.
Expected values come from SQL and Python written here over the fixture's rows (the zone or
the unit applied by hand), never from the code under test."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.config import from_env
from etl.rules import DUE_SOON_SHARE
from etl.units import build_units
from layers.cases import Actor, create_case, transition
from tests.clock import HOURS, FrozenClock
from tests.district import Cell, grid_cells
from tests.helpers import add_user, login

A, B = "110102001", "110102003"
CHANNELS = ("12345热线", "网格员上报", "街巷长")
OPEN = ("received", "dispatched", "accepted", "contacted", "returned")
CLOCK = FrozenClock(HOURS["noon-beijing"])


@pytest.fixture
def app(connection: sa.Connection) -> Flask:
    return create_app(
        {"TESTING": True, "DB_CONNECTION": connection, "WTF_CSRF_ENABLED": False},
        settings=from_env().with_(clock=CLOCK),
    )


@pytest.fixture
def units(connection: sa.Connection, district: Any) -> list[str]:
    build_units(connection)
    return [f"{A}-city", "district-market", "district-fire", f"{B}-city"]


def _event(conn: sa.Connection, table: str, cell: Cell, values: dict[str, Any]) -> int:
    """A row of `table` (service_requests or enforcement_cases) at the centre of `cell`,
    placed in its grid, community and street; its id."""
    grid, community, street, (x0, y0, x1, y1) = cell
    row = {"street_code": street, "community_code": community, "grid_code": grid, **values}
    names = ", ".join(row)
    marks = ", ".join(f":{k}" for k in row)
    return int(
        conn.execute(
            sa.text(
                f"insert into {table} (source, {names}, geom) values ('test-queue', {marks}, "
                "ST_SetSRID(ST_MakePoint(:x, :y), 4326)) returning id"
            ),
            {**row, "x": (x0 + x1) / 2, "y": (y0 + y1) / 2},
        ).scalar_one()
    )


def _request(conn: sa.Connection, i: int, cell: Cell, channel: str, at: dt.datetime) -> int:
    values = {"source_id": f"R{i}", "received_at": at, "channel": channel}
    return _event(conn, "service_requests", cell, {**values, "address": f"测试地址{i}"})


def _enforcement(conn: sa.Connection, i: int, cell: Cell, at: dt.datetime) -> int:
    return _event(conn, "enforcement_cases", cell, {"source_id": f"E{i}", "opened_at": at})


@pytest.fixture
def mixed(connection: sa.Connection, district: list[Cell], units: list[str]) -> list[int]:
    """30 cases in the 8 grids of streets A and B: service requests of three channels and
    enforcement cases; received, dispatched at various times before now (some 临期, some
    超期), accepted, resolved in time or late, through the write path as the owner."""
    now = CLOCK.instant
    clerk = Actor("setup-clerk", "clerk")
    ids = []
    for i in range(30):
        cell = district[i % len(district)]
        start = now - dt.timedelta(hours=5 * i + 1)
        if i % 4 == 3:
            kind, source = "enforcement_case", _enforcement(connection, i, cell, start)
        else:
            kind, source = "service_request", _request(connection, i, cell, CHANNELS[i % 3], start)
        category = ("噪声扰民", "燃气", "供暖")[i % 3]
        row = create_case(
            connection,
            kind=kind,
            source_id=source,
            street_code=cell[2],
            category=category,
            received_at=start,
        )
        case_id = int(row["id"])
        ids.append(case_id)
        if i % 7 == 0:
            continue  # still received
        main = units[i % 4]
        other = units[(i + 1) % 4]
        transition(
            connection,
            case_id,
            "dispatch",
            0,
            clerk,
            {"main_unit": main, "assisting_units": [other]},
            start,
        )
        if i % 3 == 1:
            unit = Actor("setup-unit", "department", main)
            transition(connection, case_id, "accept", 1, unit, {}, start + dt.timedelta(hours=1))
            done = start + dt.timedelta(hours=4 * (i % 5) + 2)
            if done < now:
                transition(connection, case_id, "resolve", 2, unit, {"result": "已处理"}, done)
    for n, cell in enumerate((district[0], district[-1])):  # 供暖: 24 h, 21 gone: 临期
        start = now - dt.timedelta(hours=21)
        source = _request(connection, 100 + n, cell, CHANNELS[n], start)
        row = create_case(
            connection,
            kind="service_request",
            source_id=source,
            street_code=cell[2],
            category="供暖",
            received_at=start,
        )
        ids.append(int(row["id"]))
        fields = {"main_unit": units[1], "assisting_units": []}
        transition(connection, int(row["id"]), "dispatch", 0, clerk, fields, start)
    return ids


def _client(
    app: Flask, conn: sa.Connection, role: str, street: str | None = None, unit: str | None = None
) -> FlaskClient:
    name = f"queue-{role}-{street or unit or 'all'}"
    return login(app.test_client(), add_user(conn, name, role, street, unit))


def _due_state(r: dict[str, Any], now: dt.datetime) -> str | None:
    due, start, done = r["due_at"], r["dispatched_at"], r["resolved_at"]
    if due is None:
        return None
    is_open = done is None or done > now
    if done is not None and done <= now and done > due:
        return "resolved_late"
    if due < now and is_open:
        return "overdue"
    if is_open and start is not None and (due - now) <= DUE_SOON_SHARE * (due - start):
        return "due_soon"
    return None


def _rows(
    conn: sa.Connection, street: str | None = None, unit: str | None = None
) -> list[dict[str, Any]]:
    """Every case (as the owner) with its event's grid and source, the zone or unit applied
    here, in (due_at nulls last, id) order, with its due state at the clock's instant."""
    where = ["true"]
    if street is not None:
        where.append("c.street_code = :street")
    if unit is not None:
        where.append("(c.main_unit = :unit or :unit = any(c.assisting_units))")
    rows = conn.execute(
        sa.text(
            "select c.*, coalesce(sr.grid_code, ec.grid_code) as grid, "
            "case when c.kind = 'enforcement_case' then 'enforcement' else sr.channel end "
            "as source from cases c "
            "left join service_requests sr on sr.id = c.service_request_id "
            "left join enforcement_cases ec on ec.id = c.enforcement_case_id "
            f"where {' and '.join(where)} order by c.due_at nulls last, c.id"
        ),
        {"street": street, "unit": unit},
    ).mappings()
    out = []
    for r in rows:
        d = dict(r)
        d["due_here"] = _due_state(d, CLOCK.instant)
        out.append(d)
    return out


def _pages(client: FlaskClient, **query: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    got: list[dict[str, Any]] = []
    first: dict[str, Any] | None = None
    cursor = None
    while True:
        args = {**query, "limit": 4, **({"cursor": cursor} if cursor else {})}
        response = client.get("/api/cases", query_string=args)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        first = first or body
        got += body["cases"]
        cursor = body["next"]
        if cursor is None:
            return got, first


VIEWS = [
    ("district", None, None),
    ("commander", A, None),
    ("commander", B, None),
    ("clerk", A, None),  # the street centre's clerk, bound to its street (migration 0019)
    ("department", None, "district-market"),
]


def _view(role: str, street: str | None, unit: str | None) -> tuple[str | None, str | None]:
    """The street and unit a role's rows are confined to (what row-level security does)."""
    confined = role in ("commander", "clerk")
    return (street if confined else None), (unit if role == "department" else None)


@pytest.mark.parametrize(("role", "street", "unit"), VIEWS)
def test_grid_and_source_filters_order_and_counts_equal_sql(
    app: Flask,
    connection: sa.Connection,
    mixed: list[int],
    district: list[Cell],
    role: str,
    street: str | None,
    unit: str | None,
) -> None:
    client = _client(app, connection, role, street, unit)
    zone, own = _view(role, street, unit)
    everything = _rows(connection, zone, own)
    assert everything, role
    grids = sorted({c[0] for c in district})
    checks: list[tuple[dict[str, str], Any]] = [({}, lambda r: True)]
    checks += [({"grid": g}, lambda r, g=g: r["grid"] == g) for g in grids[::3]]
    checks += [({"source": s}, lambda r, s=s: r["source"] == s) for s in (*CHANNELS, "enforcement")]
    checks += [
        (
            {"source": CHANNELS[1], "state": "dispatched,accepted"},
            lambda r: r["source"] == CHANNELS[1] and r["state"] in ("dispatched", "accepted"),
        ),
        (
            {"grid": grids[0], "due_state": "overdue"},
            lambda r: r["grid"] == grids[0] and r["due_here"] == "overdue",
        ),
    ]
    for query, keep in checks:
        if role == "department" and (
            "grid" in query or ("source" in query and query["source"] != "enforcement")
        ):
            # A department sees no street's events (migration 0018): it cannot filter by them.
            want: list[dict[str, Any]] = []
        else:
            want = [r for r in everything if keep(r)]
        got, first = _pages(client, **query)
        assert [c["id"] for c in got] == [r["id"] for r in want], (role, query)
        assert [c["due_state"] for c in got] == [r["due_here"] for r in want], query
        counts = first["counts"]
        assert counts["by_state"] == dict(Counter(r["state"] for r in want)), query
        by_unit = Counter(r["main_unit"] for r in want if r["main_unit"] is not None)
        assert counts["by_unit"] == dict(by_unit), query
        assert counts["total"] == len(want), query
    # Sorted by due time, cases without one (received) last, then id.
    got, _ = _pages(client)
    dues = [c["due_at"] for c in got]
    timed = [dt.datetime.fromisoformat(d) for d in dues if d is not None]
    assert timed == sorted(timed) and dues[len(timed) :] == [None] * (len(dues) - len(timed))
    # Every listed case carries its event's grid and source (none for a department).
    for c, r in zip(got, everything, strict=True):
        if role == "department":
            assert (c["grid"], c["lng"]) == (None, None)
        else:
            assert (c["grid"], c["source"]) == (r["grid"], r["source"])
            assert c["lng"] is not None and c["lat"] is not None
    if role == "commander":
        assert {c["street"] for c in got} == {street}


def test_the_filters_are_exact_over_the_whole_district(
    app: Flask, connection: sa.Connection, mixed: list[int]
) -> None:
    """The fixture has each channel, enforcement cases, and every due state."""
    rows = _rows(connection)
    assert {r["source"] for r in rows} == {*CHANNELS, "enforcement"}
    assert {r["due_here"] for r in rows} >= {"due_soon", "overdue", "resolved_late"}


@pytest.mark.parametrize(("role", "street", "unit"), VIEWS)
def test_the_load_board_and_overdue_equal_python(
    app: Flask,
    connection: sa.Connection,
    mixed: list[int],
    role: str,
    street: str | None,
    unit: str | None,
) -> None:
    client = _client(app, connection, role, street, unit)
    zone, own = _view(role, street, unit)
    rows = [r for r in _rows(connection, zone, own) if r["state"] in OPEN]

    def tally(key: str) -> dict[str, tuple[int, int, int]]:
        out: dict[str, list[int]] = {}
        for r in rows:
            if r[key] is None:
                continue
            t = out.setdefault(r[key], [0, 0, 0])
            t[0] += 1
            t[1] += r["due_here"] == "due_soon"
            t[2] += r["due_here"] == "overdue"
        return {k: (a, b, c) for k, (a, b, c) in out.items()}

    by_unit = tally("main_unit")
    assert any(t[2] for t in by_unit.values()), "the fixture has overdue open cases"
    response = client.get("/api/cases/load")
    assert response.status_code == 200, response.get_json()
    board = response.get_json()["units"]
    assert {u["unit"]: (u["open"], u["due_soon"], u["overdue"]) for u in board} == by_unit
    assert [(-u["overdue"], -u["open"], u["unit"]) for u in board] == sorted(
        (-u["overdue"], -u["open"], u["unit"]) for u in board
    )
    names = dict(connection.execute(sa.text("select code, name from units")).all())
    assert all(u["unit_name"] == names[u["unit"]] for u in board)
    if role != "department":
        for s in (A, B):
            one = client.get("/api/cases/load", query_string={"street": s}).get_json()["units"]
            want = tally_street = {}
            for r in rows:
                if r["street_code"] == s and r["main_unit"] is not None:
                    t = tally_street.setdefault(r["main_unit"], [0, 0, 0])
                    t[0] += 1
                    t[1] += r["due_here"] == "due_soon"
                    t[2] += r["due_here"] == "overdue"
            assert {u["unit"]: [u["open"], u["due_soon"], u["overdue"]] for u in one} == want
    market = client.get("/api/cases/load", query_string={"unit": "district-market"}).get_json()
    mine = {}
    for r in rows:
        if r["main_unit"] is not None and (
            r["main_unit"] == "district-market" or "district-market" in r["assisting_units"]
        ):
            t = mine.setdefault(r["main_unit"], [0, 0, 0])
            t[0] += 1
            t[1] += r["due_here"] == "due_soon"
            t[2] += r["due_here"] == "overdue"
    assert {u["unit"]: [u["open"], u["due_soon"], u["overdue"]] for u in market["units"]} == mine
    response = client.get("/api/cases/overdue")
    assert response.status_code == 200, response.get_json()
    overdue = response.get_json()
    by_street = tally("street_code")
    assert {
        s["street"]: (s["open"], s["due_soon"], s["overdue"]) for s in overdue["by_street"]
    } == by_street
    assert {u["unit"]: (u["open"], u["due_soon"], u["overdue"]) for u in overdue["by_unit"]} == (
        by_unit
    )
    if role == "commander":
        assert set(by_street) == {street}


def test_updated_after_and_the_live_stamp(
    app: Flask, connection: sa.Connection, mixed: list[int], units: list[str]
) -> None:
    client = _client(app, connection, "district")
    cutoff = CLOCK.instant - dt.timedelta(hours=30)
    want = (
        connection.execute(
            sa.text("select id from cases where updated_at > :t order by due_at nulls last, id"),
            {"t": cutoff},
        )
        .scalars()
        .all()
    )
    assert 0 < len(want) < len(mixed)
    for given in (cutoff.isoformat(), cutoff.astimezone(dt.UTC).isoformat()):
        got, _ = _pages(client, updated_after=given)
        assert [c["id"] for c in got] == list(want), given
    local = cutoff.astimezone(CLOCK.local().tzinfo).replace(tzinfo=None).isoformat()
    assert [c["id"] for c in _pages(client, updated_after=local)[0]] == list(want)
    before = client.get("/api/cases", query_string={"limit": 1}).get_json()
    assert before["latest"] is not None
    latest = connection.execute(sa.text("select max(updated_at) from cases")).scalar_one()
    assert dt.datetime.fromisoformat(before["latest"]) == latest
    # A transition at the same instant still moves the stamp (the version sum moves).
    received = connection.execute(
        sa.text("select id from cases where state = 'received' order by id limit 1")
    ).scalar_one()
    moved = client.post(
        f"/api/cases/{received}/transitions",
        json={"action": "dispatch", "version": 0, "main_unit": units[0]},
    )
    assert moved.status_code == 201, moved.get_json()
    after = client.get("/api/cases", query_string={"limit": 1}).get_json()
    assert after["stamp"] != before["stamp"]
    again = client.get("/api/cases", query_string={"limit": 1}).get_json()
    assert again["stamp"] == after["stamp"]


# A case's drawer offers exactly these buttons, by role, in the case's state (the machine's
# rules, written out here by hand).
EXPECTED_ACTIONS = {
    ("received", "district"): ["dispatch", "supervise"],
    ("received", "commander"): ["dispatch", "supervise"],
    ("received", "clerk"): ["dispatch"],
    ("dispatched", "district"): ["redispatch", "supervise"],
    ("dispatched", "clerk"): ["redispatch"],
    ("dispatched", "department"): ["accept", "return"],
    ("accepted", "department"): ["contact", "resolve", "return", "extend"],
    ("resolved", "clerk"): ["callback"],
    ("resolved", "department"): [],
}


def test_a_case_offers_the_actions_of_the_role_in_its_state(
    app: Flask, connection: sa.Connection, units: list[str]
) -> None:
    now = CLOCK.instant
    cells = grid_cells()
    source = _request(connection, 99, cells[0], CHANNELS[0], now - dt.timedelta(hours=2))
    case_id = int(
        create_case(
            connection,
            kind="service_request",
            source_id=source,
            street_code=A,
            category="噪声扰民",
            received_at=now - dt.timedelta(hours=2),
        )["id"]
    )
    clients = {
        "district": _client(app, connection, "district"),
        "commander": _client(app, connection, "commander", A),
        "clerk": _client(app, connection, "clerk", A),
        "department": _client(app, connection, "department", unit=units[1]),
    }
    steps = [
        ("received", None),
        ("dispatched", ("clerk", {"action": "dispatch", "main_unit": units[1]})),
        ("accepted", ("department", {"action": "accept"})),
        ("resolved", ("department", {"action": "resolve", "result": "已处理"})),
    ]
    version = 0
    for state, step in steps:
        if step is not None:
            who, body = step
            response = clients[who].post(
                f"/api/cases/{case_id}/transitions", json={**body, "version": version}
            )
            assert response.status_code == 201, response.get_json()
            version += 1
        for (at, role), want in EXPECTED_ACTIONS.items():
            if at != state:
                continue
            body = clients[role].get(f"/api/cases/{case_id}").get_json()
            assert body["state"] == state
            assert [a["action"] for a in body["actions"]] == want, (state, role)
            assert all(a["label"] for a in body["actions"])
    other = _client(app, connection, "department", unit=units[2])
    assert other.get(f"/api/cases/{case_id}").status_code == 404  # not its unit's case
    b = _client(app, connection, "commander", B)
    assert b.get(f"/api/cases/{case_id}").status_code == 404


@pytest.mark.parametrize("role", ["analyst", "planner"])
def test_roles_without_cases_are_refused(
    app: Flask, connection: sa.Connection, mixed: list[int], role: str
) -> None:
    client = _client(app, connection, role)
    for url in ("/api/cases?grid=110102001001001", "/api/cases/load", "/api/cases/overdue"):
        response = client.get(url)
        assert response.status_code == 403 and response.is_json, url


def test_bad_parameters_are_400_json_in_chinese(
    app: Flask, connection: sa.Connection, mixed: list[int]
) -> None:
    client = _client(app, connection, "district")
    for url, named in [
        ("/api/cases?grid=" + "1" * 16, "grid"),
        ("/api/cases?source=a%01b", "source"),
        ("/api/cases?updated_after=yesterday", "updated_after"),
        ("/api/cases?updated_after=1900-01-01T00:00:00%2B08:00", "updated_after"),
        ("/api/cases/load?street=12", "street"),
        ("/api/cases/load?unit=" + "x" * 65, "unit"),
        ("/api/cases/load?zzz=1", "zzz"),
        ("/api/cases/overdue?street=110102001", "street"),
    ]:
        response = client.get(url)
        assert response.status_code == 400, url
        body = response.get_json()
        assert response.is_json and named in body["message"], (url, body)
        assert any("\u4e00" <= ch <= "\u9fff" for ch in body["message"]), body
