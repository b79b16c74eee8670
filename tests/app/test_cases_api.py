"""/api/cases and /api/whistles on a real PostGIS, as every role concerned, at a frozen clock
(two hours of the day): lists, filters, pages and counts against SQL written here (as the
owner, the zone applied by hand), zones, a case's life, whistles, refusals."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from etl.rules import DUE_SOON_SHARE
from etl.units import build_units
from layers.cases import Actor, create_case, transition
from tests.clock import BEIJING, HOURS, FrozenClock
from tests.helpers import add_user, clocked_app, login

A, B = "110102001", "110102003"
ROLES = ("district", "commander", "clerk")
CASE_ROUTES = [
    ("GET", "/api/cases"),
    ("GET", "/api/cases/1"),
    ("POST", "/api/cases/1/transitions"),
    ("GET", "/api/whistles"),
    ("POST", "/api/whistles"),
    ("POST", "/api/whistles/1/units/district-fire/arrival"),
    ("POST", "/api/whistles/1/units/district-fire/completion"),
    ("POST", "/api/whistles/1/units/district-fire/rating"),
]


@pytest.fixture(params=["2330-beijing", "noon-beijing"])
def clock(request: pytest.FixtureRequest) -> FrozenClock:
    return FrozenClock(HOURS[request.param])


@pytest.fixture
def app(connection: sa.Connection, clock: FrozenClock) -> Flask:
    return clocked_app(connection, clock)


@pytest.fixture
def units(connection: sa.Connection, district: Any) -> list[str]:
    build_units(connection)
    return [f"{A}-city", "district-market", "district-fire"]


def _source(conn: sa.Connection, name: str, street: str, at: dt.datetime) -> int:
    return int(
        conn.execute(
            sa.text(
                "insert into enforcement_cases (source, source_id, opened_at, street_code, geom) "
                "values ('test-cases-api', :s, :t, :street, "
                "ST_SetSRID(ST_MakePoint(116.4, 39.9), 4326)) returning id"
            ),
            {"s": name, "t": at, "street": street},
        ).scalar_one()
    )


def _case(conn: sa.Connection, name: str, street: str, at: dt.datetime, category: str) -> int:
    row = create_case(
        conn,
        kind="enforcement_case",
        source_id=_source(conn, name, street, at),
        street_code=street,
        category=category,
        received_at=at,
    )
    return int(row["id"])


@pytest.fixture
def many(connection: sa.Connection, units: list[str], clock: FrozenClock) -> list[int]:
    """26 cases in streets A and B, received, dispatched at various times before now (so
    that some are due soon, some overdue), some resolved in time or late, through the write
    path as the owner."""
    now = clock.instant
    clerk = Actor("setup-clerk", "clerk")
    ids = []
    for i in range(24):
        street = A if i % 2 else B
        category = ("噪声扰民", "燃气", "环境卫生")[i % 3]
        start = now - dt.timedelta(hours=7 * i + 1)
        case_id = _case(connection, f"M{i}", street, start, category)
        ids.append(case_id)
        if i % 6 == 0:
            continue  # still received: no due time
        main, other = units[i % 3], units[(i + 1) % 3]
        fields = {"main_unit": main, "assisting_units": [other]}
        transition(connection, case_id, "dispatch", 0, clerk, fields, start)
        if i % 4 == 1:
            unit = Actor("setup-unit", "department", main)
            transition(connection, case_id, "accept", 1, unit, {}, start + dt.timedelta(hours=1))
            done = start + dt.timedelta(hours=6 * (i % 5) + 2)
            if done < now:
                transition(connection, case_id, "resolve", 2, unit, {"result": "已处理"}, done)
    for street in (A, B):  # 供暖: 24 hours, 21 of them gone: in the last fifth (临期)
        start = now - dt.timedelta(hours=21)
        case_id = _case(connection, f"H{street}", street, start, "供暖")
        ids.append(case_id)
        fields = {"main_unit": units[2], "assisting_units": []}
        transition(connection, case_id, "dispatch", 0, clerk, fields, start)
    return ids


def _user(app: Flask, conn: sa.Connection, role: str, street: str | None = None) -> FlaskClient:
    name = f"cases-{role}-{street or 'all'}"
    return login(app.test_client(), add_user(conn, name, role, street))


def _expected(
    conn: sa.Connection, now: dt.datetime, zone: str | None, where: str = "true", **p: Any
) -> list[dict[str, Any]]:
    """The cases in (due_at nulls last, id) order with their due state at `now`, by SQL and
    Python written here."""
    zone_sql = "true" if zone is None else "street_code = :zone"
    rows = conn.execute(
        sa.text(f"select * from cases where {zone_sql} and {where} order by due_at nulls last, id"),
        {"zone": zone, **p},
    ).mappings()
    out = []
    for r in rows:
        d = dict(r)
        due, start, done = d["due_at"], d["dispatched_at"], d["resolved_at"]
        state = None
        if due is not None:
            is_open = done is None or done > now
            if done is not None and done <= now and done > due:
                state = "resolved_late"
            elif due < now and is_open:
                state = "overdue"
            elif is_open and start is not None and (due - now) <= DUE_SOON_SHARE * (due - start):
                state = "due_soon"
        d["due_state_here"] = state
        out.append(d)
    return out


def _pages(client: FlaskClient, **query: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every page of GET /api/cases (3 at a time): the cases and the first page's counts."""
    got: list[dict[str, Any]] = []
    counts = None
    cursor = None
    while True:
        args = {**query, "limit": 3, **({"cursor": cursor} if cursor else {})}
        response = client.get("/api/cases", query_string=args)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        counts = counts or body["counts"]
        assert len(body["cases"]) <= 3
        got += body["cases"]
        cursor = body["next"]
        if cursor is None:
            return got, counts


FILTERS: list[tuple[dict[str, str], str, dict[str, Any]]] = [
    ({}, "true", {}),
    ({"street": A}, "street_code = :s", {"s": A}),
    (
        {"unit": "district-market"},
        "(main_unit = :u or :u = any(assisting_units))",
        {"u": "district-market"},
    ),
    ({"state": "dispatched,resolved"}, "state in ('dispatched', 'resolved')", {}),
    ({"category": "燃气"}, "category = :c", {"c": "燃气"}),
    ({"kind": "enforcement_case"}, "kind = 'enforcement_case'", {}),
    ({"kind": "service_request"}, "kind = 'service_request'", {}),
]


@pytest.mark.parametrize(
    ("role", "street"),
    [("district", None), ("commander", A), ("commander", B), ("clerk", A), ("clerk", B)],
)
def test_lists_filters_pages_and_counts_equal_sql(
    app: Flask,
    connection: sa.Connection,
    clock: FrozenClock,
    many: list[int],
    role: str,
    street: str | None,
) -> None:
    client = _user(app, connection, role, street)
    now = clock.instant
    for query, where, p in FILTERS:
        want = _expected(connection, now, street, where, **p)
        got, counts = _pages(client, **query)
        assert [c["id"] for c in got] == [r["id"] for r in want], (role, street, query)
        assert [c["due_state"] for c in got] == [r["due_state_here"] for r in want], query
        assert counts["by_state"] == dict(Counter(r["state"] for r in want)), query
        by_unit = Counter(r["main_unit"] for r in want if r["main_unit"] is not None)
        assert counts["by_unit"] == dict(by_unit), query
        if street is not None:
            assert {c["street"] for c in got} <= {street}
    everything = _expected(connection, now, street)
    assert len(everything) == (26 if street is None else 13)
    seen = set()
    for due_state in ("due_soon", "overdue", "resolved_late"):
        got, _ = _pages(client, due_state=due_state)
        want = [r["id"] for r in everything if r["due_state_here"] == due_state]
        assert [c["id"] for c in got] == want, due_state
        seen |= {due_state} if want else set()
    if street is None:  # the data has every due state
        assert seen == {"due_soon", "overdue", "resolved_late"}
    first = client.get("/api/cases").get_json()["cases"][0]
    row = next(r for r in everything if r["id"] == first["id"])
    assert dt.datetime.fromisoformat(first["due_at"]) == row["due_at"]
    assert first["due_at"].endswith("+08:00")  # the district's zone
    assert first["source_id"] == row["enforcement_case_id"]
    labels = {
        "received": "受理",
        "dispatched": "已派单",
        "accepted": "处理中",
        "resolved": "已办结",
    }
    assert {c["state_label"] for c in got} <= set(labels.values())
    assert all(
        labels[r["state"]] == c["state_label"]
        for r, c in zip(everything, _pages(client)[0], strict=True)
    )


def test_bad_list_parameters_are_400_json(
    app: Flask, connection: sa.Connection, many: list[int]
) -> None:
    client = _user(app, connection, "district")
    for query, named in [
        ({"state": "nonesuch"}, "state"),
        ({"due_state": "late"}, "due_state"),
        ({"kind": "x"}, "kind"),
        ({"street": "12"}, "street"),
        ({"limit": "501"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"cursor": "bm9wZQ"}, "cursor"),
        ({"cursor": "!!"}, "cursor"),
        ({"zzz": "1"}, "zzz"),
    ]:
        response = client.get("/api/cases", query_string=query)
        assert response.status_code == 400, query
        assert response.is_json and named in response.get_json()["message"], query
    body = client.get("/api/cases", query_string={"limit": 500}).get_json()
    assert len(body["cases"]) == 26 and body["next"] is None


def test_a_commander_never_sees_the_other_streets_cases(
    app: Flask, connection: sa.Connection, many: list[int]
) -> None:
    of_b = connection.execute(
        sa.text("select id, version from cases where street_code = :b order by id"), {"b": B}
    ).all()
    commander = _user(app, connection, "commander", A)
    listed = {c["id"] for c in _pages(commander)[0]}
    assert listed and not listed & {r.id for r in of_b}
    for case_id, version in of_b:
        response = commander.get(f"/api/cases/{case_id}")
        assert response.status_code == 404 and response.is_json
        response = commander.post(
            f"/api/cases/{case_id}/transitions",
            json={"action": "supervise", "version": version, "note": "督办"},
        )
        assert response.status_code == 404 and response.is_json, response.get_json()
    assert (
        connection.execute(
            sa.text("select count(*) from cases where street_code = :b and supervised"), {"b": B}
        ).scalar_one()
        == 0
    )
    district = _user(app, connection, "district")
    assert district.get(f"/api/cases/{of_b[0].id}").status_code == 200


def _history_count(conn: sa.Connection, case_id: int) -> int:
    return int(
        conn.execute(
            sa.text("select count(*) from case_history where case_id = :i"), {"i": case_id}
        ).scalar_one()
    )


@pytest.mark.parametrize("role", ROLES)
def test_a_case_life_through_the_api(
    app: Flask, connection: sa.Connection, clock: FrozenClock, units: list[str], role: str
) -> None:
    now = clock.instant
    case_id = _case(connection, "L1", A, now - dt.timedelta(hours=2), "噪声扰民")
    client = _user(app, connection, role, None if role == "district" else A)
    url = f"/api/cases/{case_id}/transitions"

    def post(body: Any, status: int) -> dict[str, Any]:
        response = client.post(url, json=body)
        assert response.status_code == status, response.get_json()
        assert response.is_json
        answer: dict[str, Any] = response.get_json()
        return answer

    # A department-only action, an unknown one, a bad field, an unknown unit, a given due time.
    assert "accept" in post({"action": "accept", "version": 0}, 403)["message"]
    post({"action": "fly", "version": 0}, 400)
    post({"action": "dispatch", "version": 0, "main_unit": "nonesuch"}, 400)
    post({"action": "dispatch", "version": 0, "main_unit": units[0], "colour": "red"}, 400)
    post({"action": "dispatch", "version": 0, "main_unit": units[0], "due_at": "2027-01-01"}, 400)
    assert _history_count(connection, case_id) == 0
    dispatched = post(
        {
            "action": "dispatch",
            "version": 0,
            "main_unit": units[0],
            "assisting_units": [units[1]],
            "note": "请尽快处理",
        },
        201,
    )
    assert (dispatched["state"], dispatched["version"]) == ("dispatched", 1)
    assert dispatched["main_unit"] == units[0] and dispatched["assisting_units"] == [units[1]]
    assert dt.datetime.fromisoformat(dispatched["times"]["dispatched_at"]) == now
    assert dt.datetime.fromisoformat(dispatched["due_at"]) > now
    # A stale version: 409, nothing written.
    before = connection.execute(sa.text("select * from cases where id = :i"), {"i": case_id})
    stale = post({"action": "redispatch", "version": 0, "main_unit": units[2]}, 409)
    assert "stale" in stale["message"]
    after = connection.execute(sa.text("select * from cases where id = :i"), {"i": case_id})
    assert before.mappings().one() == after.mappings().one()
    assert _history_count(connection, case_id) == 1
    if role in ("district", "commander"):
        supervised = post({"action": "supervise", "version": 1, "note": "限期办结"}, 201)
        assert supervised["supervised"] and supervised["supervise_note"] == "限期办结"
    else:  # the clerk may not supervise
        post({"action": "supervise", "version": 1, "note": "限期办结"}, 403)
    version = 2 if role in ("district", "commander") else 1
    post({"action": "close", "version": version}, 409)  # not called back: the state forbids
    redone = post({"action": "redispatch", "version": version, "main_unit": units[2]}, 201)
    assert redone["main_unit"] == units[2] and redone["version"] == version + 1
    detail = client.get(f"/api/cases/{case_id}").get_json()
    actions = [h["action"] for h in detail["history"]]
    want = ["dispatch", "supervise", "redispatch"] if version == 2 else ["dispatch", "redispatch"]
    assert actions == want
    first = detail["history"][0]
    assert (first["from_state"], first["to_state"], first["action_label"]) == (
        "received",
        "dispatched",
        "派单",
    )
    assert (first["role"], first["user"], first["note"]) == (
        role,
        f"cases-{role}-{'all' if role == 'district' else A}",
        "请尽快处理",
    )
    assert first["fields"]["main_unit"] == units[0]
    assert dt.datetime.fromisoformat(first["fields"]["due_at"]) == dt.datetime.fromisoformat(
        dispatched["due_at"]
    )
    audited = connection.execute(
        sa.text(
            "select filters->>'case_action' from audit_log where action = 'case_transition' "
            "and (filters->>'case_id')::bigint = :i order by id"
        ),
        {"i": case_id},
    ).scalars()
    assert list(audited) == want


@pytest.mark.parametrize("role", ("district", "commander"))
def test_an_extension_approved_with_a_local_due_time(
    app: Flask, connection: sa.Connection, clock: FrozenClock, units: list[str], role: str
) -> None:
    """A time in a transition's fields without an offset is the district's local time."""
    now = clock.instant
    case_id = _case(connection, "E1", A, now - dt.timedelta(hours=3), "噪声扰民")
    unit = Actor("setup-unit", "department", units[0])
    start = now - dt.timedelta(hours=2)
    transition(
        connection, case_id, "dispatch", 0, Actor("c", "clerk"), {"main_unit": units[0]}, start
    )
    transition(connection, case_id, "accept", 1, unit, {}, start)
    transition(connection, case_id, "extend", 2, unit, {"hours": 24}, start)
    client = _user(app, connection, role, None if role == "district" else A)
    response = client.post(
        f"/api/cases/{case_id}/transitions",
        json={"action": "approve_extension", "version": 3, "due_at": "2027-02-01T18:00"},
    )
    assert response.status_code == 201, response.get_json()
    want = dt.datetime(2027, 2, 1, 18, 0, tzinfo=BEIJING)
    assert (
        connection.execute(
            sa.text("select due_at from cases where id = :i"), {"i": case_id}
        ).scalar_one()
        == want
    )
    assert response.get_json()["due_at"] == "2027-02-01T18:00:00+08:00"
    bad = client.post(
        f"/api/cases/{case_id}/transitions",
        json={"action": "supervise", "version": 4, "note": "x", "due_at": "tomorrow"},
    )
    assert bad.status_code == 400 and "due_at" in bad.get_json()["message"]


@pytest.mark.parametrize("role", ROLES)
def test_bad_bodies_are_400_json(
    app: Flask, connection: sa.Connection, clock: FrozenClock, units: list[str], role: str
) -> None:
    case_id = _case(connection, "X1", A, clock.instant, "噪声扰民")
    client = _user(app, connection, role, None if role == "district" else A)
    url = f"/api/cases/{case_id}/transitions"
    for body in (
        "not json",
        "[1, 2]",
        '{"version": 0}',
        '{"action": "dispatch", "version": "0"}',
        '{"action": "dispatch", "version": true}',
        '{"action": "dispatch", "version": -1}',
        '{"action": "supervise", "version": 0, "note": "a\\u0000b"}',
        '{"action": "dispatch", "version": 0, "main_unit": ["x"]}',
        '{"action": "dispatch", "version": 0, "main_unit": "x", "a": '
        + "[" * 900
        + "]" * 900
        + "}",
    ):
        response = client.post(url, data=body, content_type="application/json")
        assert response.status_code == 400, (body, response.get_data(as_text=True))
        assert response.is_json and "Traceback" not in response.get_data(as_text=True)
    for path, body in [
        ("/api/whistles", {"street": A}),
        ("/api/whistles", {"street": A, "target_kind": "lane", "units": "x"}),
        ("/api/whistles", {"street": "x", "target_kind": "lane"}),
        ("/api/whistles/1/units/district-fire/rating", {"rating": 3}),
        # No such street (a commander or a clerk, bound to one street, is refused any street
        # but theirs first: 403).
        *[("/api/whistles", {**_blow_body(units, clock.instant), "street": "999999999"})]
        * (role == "district"),
    ]:
        response = client.post(path, json=body)
        assert response.status_code == 400 and response.is_json, (path, body)
    assert _history_count(connection, case_id) == 0


@pytest.mark.parametrize("role", ("analyst", "planner"))
def test_analysts_and_planners_are_refused_everywhere(
    app: Flask, connection: sa.Connection, role: str
) -> None:
    client = _user(app, connection, role)
    for method, path in CASE_ROUTES:
        response = client.open(path, method=method, json={})
        assert response.status_code == 403, (role, method, path)
        assert "无权" in response.get_json()["message"]


def test_a_whistle_blown_reported_and_rated_through_the_api(
    app: Flask, connection: sa.Connection, clock: FrozenClock, units: list[str]
) -> None:
    now = clock.instant
    meet_local = (now - dt.timedelta(minutes=70)).astimezone(BEIJING).replace(tzinfo=None)
    commander = _user(app, connection, "commander", A)
    other = _user(app, connection, "commander", B)
    clerk = _user(app, connection, "clerk", A)
    case_id = _case(connection, "W1", A, now - dt.timedelta(days=1), "噪声扰民")
    blown = commander.post(
        "/api/whistles",
        json={
            "street": A,
            "target_kind": "case",
            "case_id": case_id,
            "units": units[:2],
            "reason": "噪声扰民反复投诉，联合执法",
            "meeting_point": "西长安街街道办事处门口",
            "meet_at": meet_local.isoformat(),  # naive: Beijing time
            "lng": 116.37,
            "lat": 39.9,
        },
    )
    assert blown.status_code == 201, blown.get_json()
    whistle = blown.get_json()
    wid = whistle["id"]
    assert dt.datetime.fromisoformat(whistle["meet_at"]) == now - dt.timedelta(minutes=70)
    assert [u["unit_code"] for u in whistle["units"]] == sorted(units[:2])
    assert connection.execute(
        sa.text("select blown_by, case_id from whistles where id = :w"), {"w": wid}
    ).one() == (f"cases-commander-{A}", case_id)
    # Another street's commander sees nothing and may not report; nor blow in A.
    assert other.get("/api/whistles").get_json()["whistles"] == []
    assert other.post(f"/api/whistles/{wid}/units/{units[0]}/arrival").status_code == 404
    refused = other.post("/api/whistles", json={**_blow_body(units, meet_local), "street": A})
    assert refused.status_code == 403
    assert [x["id"] for x in commander.get("/api/whistles").get_json()["whistles"]] == [wid]
    # Arrivals: one 70 minutes late (now), then one 95 minutes late.
    arrived = clerk.post(f"/api/whistles/{wid}/units/{units[0]}/arrival")
    assert arrived.status_code == 200, arrived.get_json()
    mine = {u["unit_code"]: u for u in arrived.get_json()["units"]}
    assert mine[units[0]]["arrival_delay_minutes"] == 70
    assert dt.datetime.fromisoformat(mine[units[0]]["arrived_at"]) == now
    assert clerk.post(f"/api/whistles/{wid}/units/{units[0]}/arrival").status_code == 409
    clock.instant = now + dt.timedelta(minutes=25)
    commander.post(f"/api/whistles/{wid}/units/{units[1]}/arrival")
    # Rating before completion: 409; completion, rating.
    early = commander.post(f"/api/whistles/{wid}/units/{units[0]}/rating", json={"rating": "满意"})
    assert early.status_code == 409
    for code in units[:2]:
        done = commander.post(
            f"/api/whistles/{wid}/units/{code}/completion", json={"note": "已处置"}
        )
        assert done.status_code == 200, done.get_json()
    for code, rating in zip(units[:2], ("满意", "不满意"), strict=True):
        rated = commander.post(
            f"/api/whistles/{wid}/units/{code}/rating", json={"rating": rating, "comment": "好"}
        )
        assert rated.status_code == 200, rated.get_json()
    rows = connection.execute(
        sa.text(
            "select unit_code, extract(epoch from arrived_at - w.meet_at) / 60, completion_note,"
            " rating from whistle_units u join whistles w on w.id = u.whistle_id"
            " where whistle_id = :w order by unit_code"
        ),
        {"w": wid},
    ).all()
    assert [(r[0], float(r[1]), r[2], r[3]) for r in rows] == sorted(
        [(units[0], 70.0, "已处置", "满意"), (units[1], 95.0, "已处置", "不满意")]
    )
    assert commander.get("/api/whistles").get_json()["whistles"] == []  # all completed
    audited = connection.execute(
        sa.text("select action from audit_log where filters->>'whistle_id' = :w order by id"),
        {"w": str(wid)},
    ).scalars()
    assert list(audited) == [
        "whistle_blow",
        "whistle_arrival",
        "whistle_arrival",
        *["whistle_completion"] * 2,
        *["whistle_rating"] * 2,
    ]


def _blow_body(units: list[str], meet: dt.datetime) -> dict[str, Any]:
    return {
        "street": B,
        "target_kind": "lane",
        "target_ref": "L1",
        "units": units[1:],
        "reason": "占道经营",
        "meeting_point": "胡同口",
        "meet_at": meet.isoformat(),
    }


def test_a_clerk_dispatches_and_the_unit_works_the_case_to_its_close(
    app: Flask, connection: sa.Connection, clock: FrozenClock, units: list[str]
) -> None:
    """The whole loop through the API: the clerk dispatches to unit U; U's department user
    sees the case in its queue (and no other unit's), accepts, contacts and resolves it; the
    clerk enters the callback and closes it; the history replays every step."""
    now = clock.instant
    mine = _case(connection, "U1", A, now - dt.timedelta(hours=3), "噪声扰民")
    other = _case(connection, "U2", B, now - dt.timedelta(hours=3), "噪声扰民")
    clerk = _user(app, connection, "clerk", A)  # each street's centre dispatches its cases
    clerk_b = _user(app, connection, "clerk", B)
    unit_user = login(
        app.test_client(), add_user(connection, "cases-unit", "department", None, units[1])
    )

    def act(client: FlaskClient, case_id: int, body: dict[str, Any], status: int = 201) -> Any:
        response = client.post(f"/api/cases/{case_id}/transitions", json=body)
        assert response.status_code == status, response.get_json()
        return response.get_json()

    act(clerk, mine, {"action": "dispatch", "version": 0, "main_unit": units[1]})
    act(clerk, other, {"action": "dispatch", "version": 0, "main_unit": units[2]}, 404)
    act(clerk_b, other, {"action": "dispatch", "version": 0, "main_unit": units[2]})
    queue = unit_user.get("/api/cases").get_json()
    assert [c["id"] for c in queue["cases"]] == [mine]  # its unit's case, across streets
    assert unit_user.get(f"/api/cases/{other}").status_code == 404
    act(unit_user, other, {"action": "accept", "version": 1}, 404)
    act(clerk, mine, {"action": "callback", "version": 1}, 409)  # not resolved yet
    for version, body in enumerate(
        [
            {"action": "accept"},
            {"action": "contact"},
            {"action": "resolve", "result": "已协调物业，噪声已消除"},
        ],
        start=1,
    ):
        case = act(unit_user, mine, {**body, "version": version})
    assert case["state"] == "resolved"
    act(unit_user, mine, {"action": "close", "version": 4}, 403)  # the centre closes
    callback = {"valid": True, "contacted": True, "solved": True, "rating": "满意"}
    act(clerk, mine, {"action": "callback", "version": 4, **callback})
    closed = act(clerk, mine, {"action": "close", "version": 5})
    assert closed["state"] == "closed"
    history = clerk.get(f"/api/cases/{mine}").get_json()["history"]
    assert [(h["action"], h["role"], h["unit"]) for h in history] == [
        ("dispatch", "clerk", None),
        ("accept", "department", units[1]),
        ("contact", "department", units[1]),
        ("resolve", "department", units[1]),
        ("callback", "clerk", None),
        ("close", "clerk", None),
    ]
    stored = connection.execute(
        sa.text("select state, version, rating from cases where id = :i"), {"i": mine}
    ).one()
    assert tuple(stored) == ("closed", 6, "满意")
