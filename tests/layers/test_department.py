"""The department role (承办单位) on a real PostgreSQL: a user bound to one unit sees and acts
on the cases dispatched to its unit (main or assisting), across streets, their history, the
whistles its unit is summoned to and its own arrivals — and nothing else (row-level security
by unit, migration 0018). The expected rows are listed by hand from what each test sets up."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from layers import whistles as w
from layers.cases import Actor, Refused, create_case, history, transition
from layers.queries import access
from tests.clock import BEIJING
from tests.district import Cell

A, B = "110102001", "110102003"
U, V, W = "district-dept-u", "district-dept-v", "district-dept-w"
NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=BEIJING)
CLERK = Actor("clerk-1", "clerk")
DEPT_U = Actor("dept-u", "department", U)


def _units(conn: sa.Connection) -> None:
    for i, code in enumerate((U, V, W)):
        conn.execute(
            sa.text("insert into units (code, name, kind) values (:c, :n, 'district_department')"),
            {"c": code, "n": f"测试承办单位{i}"},
        )


def _case(conn: sa.Connection, source: str, street: str, dispatch: dict[str, Any] | None) -> int:
    enforcement_id = conn.execute(
        sa.text(
            "insert into enforcement_cases (source, source_id, opened_at, street_code, geom) "
            "values ('test-dept', :s, :t, :street, "
            "ST_SetSRID(ST_MakePoint(116.4, 39.9), 4326)) returning id"
        ),
        {"s": source, "t": NOW, "street": street},
    ).scalar_one()
    case_id = int(
        create_case(
            conn,
            kind="enforcement_case",
            source_id=enforcement_id,
            street_code=street,
            category="噪声扰民",
            received_at=NOW,
        )["id"]
    )
    if dispatch is not None:
        transition(conn, case_id, "dispatch", 0, CLERK, dispatch, NOW)
    return case_id


def _as_department(conn: sa.Connection, unit: str = U) -> None:
    conn.exec_driver_sql("reset role")
    access.scope(
        conn,
        access.zone_of("department", None),
        unit=access.unit_of("department", unit),
    )


def _ids(conn: sa.Connection, sql: str) -> set[int]:
    return set(conn.execute(sa.text(sql)).scalars())


@pytest.fixture
def cases_by_name(connection: sa.Connection, district: list[Cell]) -> dict[str, int]:
    """Six cases in two streets: U is main on a1 and b1, assisting on a2; V and W have the
    rest; a0 is not dispatched yet."""
    assert {street for _, _, street, _ in district} >= {A, B}
    _units(connection)
    return {
        "a0": _case(connection, "a0", A, None),
        "a1": _case(connection, "a1", A, {"main_unit": U}),
        "a2": _case(connection, "a2", A, {"main_unit": V, "assisting_units": [U]}),
        "a3": _case(connection, "a3", A, {"main_unit": V, "assisting_units": [W]}),
        "b1": _case(connection, "b1", B, {"main_unit": U}),
        "b2": _case(connection, "b2", B, {"main_unit": W}),
    }


def test_a_department_sees_exactly_its_units_cases_across_streets(
    connection: sa.Connection, cases_by_name: dict[str, int]
) -> None:
    c = cases_by_name
    _as_department(connection)
    mine = {c["a1"], c["a2"], c["b1"]}
    assert _ids(connection, "select id from cases") == mine
    assert _ids(connection, "select distinct case_id from case_history") == mine
    assert [r["action"] for r in history(connection, c["b1"])] == ["dispatch"]
    assert history(connection, c["b2"]) == []
    # Another unit: another set, from the same rows.
    _as_department(connection, W)
    assert _ids(connection, "select id from cases") == {c["a3"], c["b2"]}
    # A commander (no unit) still sees their street only; the district everything.
    connection.exec_driver_sql("reset role")
    access.scope(connection, A)
    assert _ids(connection, "select id from cases") == {c["a0"], c["a1"], c["a2"], c["a3"]}
    connection.exec_driver_sql("reset role")
    access.scope(connection, access.DISTRICT)
    assert _ids(connection, "select id from cases") == set(c.values())


def test_unit_case_ids_gives_a_units_cases_the_caller_may_see_and_no_other(
    connection: sa.Connection, cases_by_name: dict[str, int]
) -> None:
    """migration 0021's function runs with its owner's rights: it must repeat the policies,
    so no caller learns of a case it could not read (the ids are listed by hand above)."""
    c = cases_by_name

    def ids(unit: str) -> set[int]:
        return _ids(connection, f"select unit_case_ids('{unit}')")

    connection.exec_driver_sql("reset role")
    access.scope(connection, access.DISTRICT)
    assert ids(U) == {c["a1"], c["a2"], c["b1"]}  # main or assisting, across streets
    assert ids(W) == {c["a3"], c["b2"]}
    connection.exec_driver_sql("reset role")
    access.scope(connection, A)  # a commander of A: A's cases only
    assert ids(U) == {c["a1"], c["a2"]}
    assert ids(W) == {c["a3"]}
    _as_department(connection)  # U: its own cases, and of V's only a2, where U assists
    assert ids(U) == {c["a1"], c["a2"], c["b1"]}
    assert ids(V) == {c["a2"]}
    assert ids(W) == set()


def test_a_department_acts_on_its_cases_only(
    connection: sa.Connection, cases_by_name: dict[str, int]
) -> None:
    c = cases_by_name
    spare = connection.execute(  # an enforcement case without a case yet
        sa.text(
            "insert into enforcement_cases (source, source_id, opened_at, street_code, geom) "
            "values ('test-dept', 'spare', :t, :s, "
            "ST_SetSRID(ST_MakePoint(116.4, 39.9), 4326)) returning id"
        ),
        {"t": NOW, "s": A},
    ).scalar_one()
    _as_department(connection)
    t = NOW + dt.timedelta(hours=1)
    row = transition(connection, c["b1"], "accept", 1, DEPT_U, {}, t)
    assert row["state"] == "accepted" and row["version"] == 2
    row = transition(connection, c["b1"], "resolve", 2, DEPT_U, {"result": "已处理 done"}, t)
    assert row["state"] == "resolved"
    rows = history(connection, c["b1"])
    assert [(r["action"], r["unit_code"]) for r in rows] == [
        ("dispatch", None),
        ("accept", U),
        ("resolve", U),
    ]
    # Another unit's case is not there (404), even for an actor claiming that unit.
    for name, actor in (("b2", DEPT_U), ("a3", Actor("x", "department", V))):
        with pytest.raises(Refused) as err:
            transition(connection, c[name], "accept", 1, actor, {}, t)
        assert err.value.status == 404, name
    # Assisting: seen, but only the main unit accepts (the machine's rule).
    with pytest.raises(Refused) as err:
        transition(connection, c["a2"], "accept", 1, DEPT_U, {}, t)
    assert err.value.status == 403
    # Plain SQL, past the write path: nothing of another unit is updated or written.
    updated = connection.execute(
        sa.text("update cases set result = 'x' where id = any(:ids)"),
        {"ids": [c["a3"], c["b2"], c["a0"]]},
    )
    assert updated.rowcount == 0
    connection.exec_driver_sql("savepoint h")
    with pytest.raises(sa.exc.ProgrammingError, match="row-level security"):
        connection.execute(
            sa.text(
                "insert into case_history (case_id, action, from_state, to_state, role, at) "
                "values (:i, 'accept', 'dispatched', 'accepted', 'department', :t)"
            ),
            {"i": c["b2"], "t": t},
        )
    connection.exec_driver_sql("rollback to savepoint h")
    # A department creates no case (the street dispatches).
    connection.exec_driver_sql("savepoint n")
    with pytest.raises(sa.exc.ProgrammingError, match="row-level security"):
        connection.execute(
            sa.text(
                "insert into cases (kind, enforcement_case_id, street_code, received_at) "
                "values ('enforcement_case', :e, :s, :t)"
            ),
            {"e": spare, "s": A, "t": t},
        )
    connection.exec_driver_sql("rollback to savepoint n")
    connection.exec_driver_sql("reset role")
    access.scope(connection, access.DISTRICT)
    assert (
        connection.execute(
            sa.text("select state from cases where id = :i"), {"i": c["b2"]}
        ).scalar_one()
        == "dispatched"
    )


def test_a_department_sees_no_street_data(
    connection: sa.Connection, cases_by_name: dict[str, int]
) -> None:
    tables = ("service_requests", "enforcement_cases", "streets", "grids", "request_open")
    before = {
        t: connection.execute(sa.text(f"select count(*) from {t}")).scalar_one() for t in tables
    }
    assert before["enforcement_cases"] == len(cases_by_name) and before["streets"] >= 2
    assert before["grids"] > 0
    _as_department(connection)
    for table in tables:
        assert connection.execute(sa.text(f"select count(*) from {table}")).scalar_one() == 0


MEET = dt.datetime(2026, 11, 18, 9, 0, tzinfo=BEIJING)


def _blow(conn: sa.Connection, street: str, codes: list[str]) -> int:
    return w.blow(
        conn,
        street=street,
        target=w.Place("relocation_target", ref="S1"),
        unit_codes=codes,
        reason="联合执法",
        meeting_point="街道办事处门口",
        meet_at=MEET,
        actor=Actor("d", "district"),
        now=MEET - dt.timedelta(hours=2),
    )


def test_a_department_sees_and_reports_for_its_own_summons_only(
    connection: sa.Connection, district: list[Cell]
) -> None:
    _units(connection)
    access.scope(connection, access.DISTRICT)
    in_a = _blow(connection, A, [U, V])
    in_b = _blow(connection, B, [U])
    others = _blow(connection, A, [V, W])
    _as_department(connection)
    assert _ids(connection, "select id from whistles") == {in_a, in_b}
    summons = connection.execute(sa.text("select whistle_id, unit_code from whistle_units"))
    assert {tuple(r) for r in summons} == {(in_a, U), (in_b, U)}
    late = w.report_arrival(connection, in_b, U, DEPT_U, MEET + dt.timedelta(minutes=20))
    assert late == dt.timedelta(minutes=20)
    # For another unit: refused by the layer (403), and past it by the database (not found).
    with pytest.raises(Refused) as err:
        w.report_arrival(connection, in_a, V, DEPT_U, MEET)
    assert err.value.status == 403
    with pytest.raises(Refused) as err:
        w.report_arrival(connection, others, V, Actor("x", "department", V), MEET)
    assert err.value.status == 404
    updated = connection.execute(
        sa.text("update whistle_units set arrived_at = :t where unit_code <> :u"),
        {"t": MEET, "u": U},
    )
    assert updated.rowcount == 0
    # A department blows no whistle: the layer refuses it, and so does the database.
    with pytest.raises(Refused) as err:
        w.blow(
            connection,
            street=A,
            target=w.Place("lane", ref="L1"),
            unit_codes=[U],
            reason="r",
            meeting_point="m",
            meet_at=MEET,
            actor=DEPT_U,
            now=MEET,
        )
    assert err.value.status == 403
    connection.exec_driver_sql("savepoint b")
    with pytest.raises(sa.exc.ProgrammingError, match="row-level security"):
        connection.execute(
            sa.text(
                "insert into whistles (street_code, target_kind, target_ref, reason, "
                "meeting_point, meet_at, blown_role, blown_at) "
                "values (:s, 'lane', 'L1', 'r', 'm', :t, 'department', :t)"
            ),
            {"s": A, "t": MEET},
        )
    connection.exec_driver_sql("rollback to savepoint b")
    connection.exec_driver_sql("reset role")
    access.scope(connection, access.DISTRICT)
    arrived = connection.execute(
        sa.text("select whistle_id, unit_code from whistle_units where arrived_at is not null")
    )
    assert {tuple(r) for r in arrived} == {(in_b, U)}
