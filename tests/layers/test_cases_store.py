"""The case write path on a real PostgreSQL: version check, history, grants, row-level
security, due times."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from etl.rules import Limit, TimeLimits
from layers.cases import (
    Actor,
    Case,
    Refused,
    apply,
    case_of,
    create_case,
    history,
    replay,
    transition,
    transitions,
)
from layers.cases.machine import FROM
from layers.cases.store import due_at
from tests.district import Cell

BEIJING = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=BEIJING)
UNITS = ["district-cases-a", "district-cases-b", "district-cases-c"]
SEVEN_WORKDAYS = TimeLimits(default=Limit(7, "workdays"), by_category={"燃气": Limit(2, "hours")})
CENTRE = ("district", "commander", "clerk")
ROLES = ["district", "commander", "clerk", "department", "analyst", "planner"]
CLERK = Actor("clerk-1", "clerk")


def _units(conn: sa.Connection) -> None:
    for i, code in enumerate(UNITS):
        conn.execute(
            sa.text("insert into units (code, name, kind) values (:c, :n, 'district_department')"),
            {"c": code, "n": f"测试区级部门{i}"},
        )


def _enforcement_case(conn: sa.Connection, source_id: str, street: str | None = None) -> int:
    return int(
        conn.execute(
            sa.text(
                "insert into enforcement_cases (source, source_id, opened_at, street_code, geom) "
                "values ('test-cases', :s, :t, :street, "
                "ST_SetSRID(ST_MakePoint(116.4, 39.9), 4326)) returning id"
            ),
            {"s": source_id, "t": NOW, "street": street},
        ).scalar_one()
    )


def _new_case(conn: sa.Connection, source_id: str = "C1", street: str | None = None) -> int:
    row = create_case(
        conn,
        kind="enforcement_case",
        source_id=_enforcement_case(conn, source_id, street),
        street_code=street,
        category="噪声扰民",
        received_at=NOW,
    )
    assert row["state"] == "received" and row["version"] == 0
    return int(row["id"])


def _row(conn: sa.Connection, case_id: int) -> sa.RowMapping:
    return (
        conn.execute(sa.text("select * from cases where id = :i"), {"i": case_id}).mappings().one()
    )


def _history_count(conn: sa.Connection, case_id: int) -> int:
    return int(
        conn.execute(
            sa.text("select count(*) from case_history where case_id = :i"), {"i": case_id}
        ).scalar_one()
    )


def test_a_life_through_the_write_path(connection: sa.Connection) -> None:
    _units(connection)
    case_id = _new_case(connection)
    unit = Actor("dept-a", "department", UNITS[0])
    t = NOW
    steps: list[tuple[str, Actor, dict[str, Any]]] = [
        ("dispatch", CLERK, {"main_unit": UNITS[0], "assisting_units": [UNITS[1]]}),
        ("accept", unit, {}),
        ("extend", unit, {"hours": 48}),
        ("approve_extension", Actor("boss", "commander"), {}),
        ("resolve", unit, {"result": "已拆除 removed"}),
        ("callback", CLERK, {"valid": True, "contacted": True, "solved": True, "rating": "满意"}),
        ("close", CLERK, {}),
    ]
    for version, (action, actor, fields) in enumerate(steps):
        t += dt.timedelta(hours=1)
        row = transition(connection, case_id, action, version, actor, fields, t)
        assert row["version"] == version + 1
    assert row["state"] == "closed" and row["closed_at"] == t
    assert row["main_unit"] == UNITS[0] and row["assisting_units"] == [UNITS[1]]
    # Dispatched Monday 2 March 10:00: the 7th working day after is Wednesday 11 March;
    # the extension adds 48 hours.
    assert row["due_at"] == dt.datetime(2026, 3, 13, 23, 59, 59, tzinfo=BEIJING)
    rows = history(connection, case_id)
    assert [r["action"] for r in rows] == [s[0] for s in steps]
    assert [(r["from_state"], r["to_state"]) for r in rows[:2]] == [
        ("received", "dispatched"),
        ("dispatched", "accepted"),
    ]
    assert rows[1]["user_name"] == "dept-a" and rows[1]["unit_code"] == UNITS[0]
    recorded = dt.datetime.fromisoformat(rows[0]["fields"]["due_at"])
    assert recorded == dt.datetime(2026, 3, 11, 23, 59, 59, tzinfo=BEIJING)
    assert replay(transitions(rows)) == case_of(row)


def test_refusals_write_nothing(connection: sa.Connection) -> None:
    _units(connection)
    case_id = _new_case(connection)
    cases: list[tuple[str, int, Actor, dict[str, Any], int, str]] = [
        ("accept", 0, Actor("d", "department", UNITS[0]), {}, 403, "只有主办单位"),
        ("close", 0, CLERK, {}, 409, "受理状态下不能归档"),
        ("dispatch", 0, Actor("a", "analyst"), {"main_unit": UNITS[0]}, 403, "角色analyst无权派单"),
        ("dispatch", 1, CLERK, {"main_unit": UNITS[0]}, 409, "已被他人修改"),
        ("dispatch", 0, CLERK, {"main_unit": "district-nope"}, 400, "未知承办单位"),
        ("dispatch", 0, CLERK, {"main_unit": UNITS[0], "due_at": NOW.isoformat()}, 400, "办理时限"),
    ]
    before = _row(connection, case_id)
    for action, version, actor, fields, status, message in cases:
        with pytest.raises(Refused) as err:
            transition(connection, case_id, action, version, actor, fields, NOW)
        assert err.value.status == status, (action, err.value.message)
        assert err.value.message.startswith(message), err.value.message
    assert dict(_row(connection, case_id)) == dict(before)
    assert _history_count(connection, case_id) == 0
    with pytest.raises(Refused) as err:
        transition(connection, case_id + 1000, "dispatch", 0, CLERK, {}, NOW)
    assert err.value.status == 404


def test_a_case_needs_its_source_row(connection: sa.Connection) -> None:
    with pytest.raises(sa.exc.IntegrityError, match="案件的来源记录不存在"):
        create_case(
            connection,
            kind="service_request",
            source_id=-1,
            street_code=None,
            category=None,
            received_at=NOW,
        )


def test_the_etl_may_still_rebuild_the_event_tables(connection: sa.Connection) -> None:
    """The case's reference is a trigger, not a foreign key: the bulk load (etl/load.py)
    truncates an empty event table and drops and re-adds its primary key, which a foreign
    key from `cases` would forbid."""
    for table in ("service_requests", "enforcement_cases"):
        for statement in (
            f"truncate {table}",
            f"alter table {table} drop constraint pk_{table}",
        ):
            assert _refused(connection, statement) is None, statement


def test_spring_festival_2026_by_hand() -> None:
    """Seven working days from Thursday 12 Feb 2026, counted on the State Council's 2026
    holiday schedule (its notice of November 2025), not on chinese_calendar: 春节 holidays
    Sun 15 – Mon 23 Feb, make-up working Saturdays 14 Feb and 28 Feb. Working days after
    the 12th: Fri 13 (1), Sat 14 (2, make-up), Tue 24 (3), Wed 25 (4), Thu 26 (5),
    Fri 27 (6), Sat 28 (7, make-up). National Day: 1 – 7 Oct off, Sun 20 Sep and Sat 10 Oct
    worked; Mid-Autumn Fri 25 Sep off. From Fri 18 Sep: Sun 20 (1, make-up),
    Mon 21 … Thu 24 (2–5), Mon 28 (6), Tue 29 (7)."""
    start = dt.datetime(2026, 2, 12, 10, 0, tzinfo=BEIJING)
    expected = dt.datetime(2026, 2, 28, 23, 59, 59, tzinfo=BEIJING)
    assert due_at("噪声扰民", start, limits=SEVEN_WORKDAYS, zone="Asia/Shanghai") == expected
    start = dt.datetime(2026, 9, 18, 10, 0, tzinfo=BEIJING)
    expected = dt.datetime(2026, 9, 29, 23, 59, 59, tzinfo=BEIJING)
    assert due_at("噪声扰民", start, limits=SEVEN_WORKDAYS, zone="Asia/Shanghai") == expected
    # An hours limit runs on the clock, holidays or not.
    start = dt.datetime(2026, 2, 16, 23, 0, tzinfo=BEIJING)
    assert due_at(
        "燃气", start, limits=SEVEN_WORKDAYS, zone="Asia/Shanghai"
    ) == start + dt.timedelta(hours=2)


def test_dispatch_over_the_spring_festival_sets_the_hand_counted_due_time(
    connection: sa.Connection,
) -> None:
    _units(connection)
    case_id = _new_case(connection)
    at = dt.datetime(2026, 2, 12, 10, 0, tzinfo=BEIJING)
    row = transition(
        connection,
        case_id,
        "dispatch",
        0,
        CLERK,
        {"main_unit": UNITS[0]},
        at,
        limits=SEVEN_WORKDAYS,
    )
    assert row["due_at"] == dt.datetime(2026, 2, 28, 23, 59, 59, tzinfo=BEIJING)
    assert row["dispatched_at"] == at


def _refused(conn: sa.Connection, statement: str) -> str | None:
    savepoint = conn.begin_nested()
    try:
        conn.exec_driver_sql(statement)
    except sa.exc.DBAPIError as exc:
        savepoint.rollback()
        return str(exc.orig)
    savepoint.rollback()
    return None


def test_history_is_append_only(connection: sa.Connection) -> None:
    _units(connection)
    case_id = _new_case(connection)
    transition(connection, case_id, "dispatch", 0, CLERK, {"main_unit": UNITS[0]}, NOW)
    update = f"update case_history set note = 'x' where case_id = {case_id}"
    delete = f"delete from case_history where case_id = {case_id}"
    for statement in (update, delete):  # the owner: the trigger refuses
        assert "append-only" in (_refused(connection, statement) or ""), statement
    for role in ("blockdata_reader", "blockdata_web"):
        connection.exec_driver_sql(f"set local role {role}")
        connection.execute(sa.text("select set_config('blockdata.zone', '*', true)"))
        assert _history_count(connection, case_id) == 1
        for statement in (update, delete, "truncate case_history"):
            assert "permission denied" in (_refused(connection, statement) or ""), statement
        connection.exec_driver_sql("reset role")
    assert _history_count(connection, case_id) == 1


def test_a_commander_sees_only_their_streets_cases(
    connection: sa.Connection, district: list[Cell]
) -> None:
    _units(connection)
    streets = sorted({street for _, _, street, _ in district})
    assert len(streets) >= 2
    ids = {s: _new_case(connection, f"S{i}", street=s) for i, s in enumerate(streets)}
    for case_id in ids.values():
        transition(connection, case_id, "dispatch", 0, CLERK, {"main_unit": UNITS[0]}, NOW)
    connection.exec_driver_sql("set local role blockdata_reader")
    for street in streets:
        connection.execute(sa.text("select set_config('blockdata.zone', :z, true)"), {"z": street})
        seen = connection.execute(sa.text("select id from cases")).scalars().all()
        assert seen == [ids[street]]
        in_history = connection.execute(sa.text("select distinct case_id from case_history"))
        assert in_history.scalars().all() == [ids[street]]
        # Another street's case is not there to act on.
        other = next(i for s, i in ids.items() if s != street)
        commander = Actor("cmdr", "commander")
        with pytest.raises(Refused) as err:
            transition(connection, other, "supervise", 1, commander, {"note": "快 now"}, NOW)
        assert err.value.status == 404
        mine = transition(connection, ids[street], "supervise", 1, commander, {"note": "快"}, NOW)
        assert mine["supervised"] and mine["version"] == 2
    connection.execute(sa.text("select set_config('blockdata.zone', '*', true)"))
    assert len(connection.execute(sa.text("select id from cases")).all()) == len(streets)


@pytest.fixture
def committed_case(engine: sa.Engine) -> Iterator[int]:
    """A dispatched case committed, so that two connections see it; removed after."""
    with engine.begin() as conn:
        conn.exec_driver_sql("alter table enforcement_cases disable trigger user")
        _units(conn)
        case_id = _new_case(conn, "RACE")
        transition(conn, case_id, "dispatch", 0, CLERK, {"main_unit": UNITS[0]}, NOW)
        conn.exec_driver_sql("alter table enforcement_cases enable trigger user")
    yield case_id
    with engine.begin() as conn:
        conn.exec_driver_sql("alter table enforcement_cases disable trigger user")
        conn.exec_driver_sql("truncate case_history, cases cascade")  # the owner may truncate
        conn.exec_driver_sql("delete from enforcement_cases where source = 'test-cases'")
        conn.execute(sa.text("delete from units where code like 'district-cases-%'"))
        conn.exec_driver_sql("alter table enforcement_cases enable trigger user")


def test_two_users_at_once_one_wins(engine: sa.Engine, committed_case: int) -> None:
    """Two connections read version 1 and act together. The first to write holds its
    transaction open until the other's UPDATE waits for the row (or is done): the second
    then finds the version moved on and is refused with 409; one transition is written."""
    barrier = threading.Barrier(2, timeout=30)
    outcomes: dict[str, Any] = {}
    actors = {
        "accept": Actor("dept-a", "department", UNITS[0]),
        "redispatch": Actor("clerk-2", "clerk"),
    }
    done = {action: threading.Event() for action in actors}

    def someone_waits_for_a_lock() -> bool:
        with engine.connect() as conn:
            return bool(
                conn.exec_driver_sql(
                    "select exists (select 1 from pg_stat_activity "
                    "where datname = current_database() and wait_event_type = 'Lock')"
                ).scalar_one()
            )

    def act(action: str) -> None:
        other = next(a for a in actors if a != action)
        fields = {"main_unit": UNITS[1]} if action == "redispatch" else {}
        try:
            with engine.connect() as conn, conn.begin():
                assert _row(conn, committed_case)["version"] == 1
                barrier.wait()
                try:
                    transition(conn, committed_case, action, 1, actors[action], fields, NOW)
                    outcomes[action] = "won"
                except Refused as exc:
                    outcomes[action] = exc.status
                    return
                while not done[other].is_set() and not someone_waits_for_a_lock():
                    time.sleep(0.01)
        finally:
            done[action].set()

    threads = [threading.Thread(target=act, args=(a,)) for a in actors]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(map(str, outcomes.values())) == ["409", "won"], outcomes
    with engine.connect() as conn:
        row = _row(conn, committed_case)
        rows = history(conn, committed_case)
    assert row["version"] == 2
    assert len(rows) == 2  # the dispatch and the winner's move
    winner = next(a for a, o in outcomes.items() if o == "won")
    assert rows[-1]["action"] == winner
    assert replay(transitions(rows)) == case_of(row)


class DatabaseCaseMachine(RuleBasedStateMachine):
    """The write path agrees with the pure machine step by step, stale versions are
    refused, and the stored history replays to the stored case."""

    engine: sa.Engine

    def __init__(self) -> None:
        super().__init__()
        self.conn = self.engine.connect()
        self.tx = self.conn.begin()
        _units(self.conn)
        self.case_id = _new_case(self.conn)
        self.now = NOW

    def teardown(self) -> None:
        self.tx.rollback()
        self.conn.close()

    @rule(minutes=st.integers(1, 3000), stale=st.booleans(), data=st.data())
    def act(self, minutes: int, stale: bool, data: Any) -> None:
        self.now += dt.timedelta(minutes=minutes)
        row = _row(self.conn, self.case_id)
        before = case_of(row)
        # Biased towards moves the state allows (the machine's own table: it only steers
        # the walk; the pure machine is checked against an independent table elsewhere).
        possible = sorted(a for a, s in FROM.items() if before.state in s) or sorted(FROM)
        action = data.draw(st.sampled_from(possible) | st.sampled_from(sorted(ACTION_FIELDS)))
        role = data.draw(st.sampled_from(ROLES))
        if data.draw(st.booleans()):  # half the time a role and unit that may act
            role = "department" if action in UNIT_ACTIONS else data.draw(st.sampled_from(CENTRE))
        unit = before.main_unit if role == "department" else None
        fields = dict(ACTION_FIELDS[action])
        if action in ("dispatch", "redispatch"):
            fields["main_unit"] = data.draw(st.sampled_from(UNITS))
        version = row["version"] - 1 if stale and row["version"] > 0 else row["version"]
        count = _history_count(self.conn, self.case_id)
        given = dict(fields)
        if action in ("dispatch", "redispatch", "reopen"):
            given["due_at"] = due_at("噪声扰民", self.now, zone="Asia/Shanghai")
        try:
            expected: Case | int = apply(before, action, role, given, self.now, unit=unit)
        except Refused as exc:
            expected = exc.status
        if version != row["version"]:
            expected = 409
        try:
            after = transition(
                self.conn, self.case_id, action, version, Actor("u", role, unit), fields, self.now
            )
        except Refused as exc:
            assert exc.status == expected, (action, role, exc.message)
            assert _history_count(self.conn, self.case_id) == count
            assert dict(_row(self.conn, self.case_id)) == dict(row)
            return
        assert case_of(after) == expected
        DB_REACHED.add(after["state"])
        assert after["version"] == row["version"] + 1
        assert _history_count(self.conn, self.case_id) == count + 1

    @invariant()
    def history_replays_to_the_row(self) -> None:
        row = _row(self.conn, self.case_id)
        rows = history(self.conn, self.case_id)
        assert row["version"] == len(rows)
        assert replay(transitions(rows)) == case_of(row)


DB_REACHED: set[str] = set()
UNIT_ACTIONS = {"accept", "contact", "resolve", "return", "extend"}
ACTION_FIELDS: dict[str, dict[str, Any]] = {
    "dispatch": {},
    "redispatch": {},
    "accept": {},
    "contact": {},
    "resolve": {"result": "已处理 done"},
    "callback": {"valid": True, "contacted": True, "solved": False, "rating": "不满意"},
    "return": {"reason": "非本单位 not ours"},
    "extend": {"hours": 24},
    "approve_extension": {},
    "refuse_extension": {},
    "supervise": {"note": "督办 hurry"},
    "reopen": {},
    "close": {},
}


def test_the_write_path_follows_the_machine(engine: sa.Engine) -> None:
    DatabaseCaseMachine.engine = engine
    case = DatabaseCaseMachine.TestCase
    case.settings = settings(
        max_examples=25,
        stateful_step_count=30,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    case("runTest").runTest()
    # The walk must get past the middle of the life. Not required to reach `closed`: the walk
    # is seeded, but Hypothesis also draws integers from the constants of the modules already
    # imported, so it varies with the test files that ran before it in the process (xdist),
    # and some orders end every walk before 归档. test_a_life_through_the_write_path closes a
    # case through the same write path every time.
    assert {"dispatched", "accepted", "resolved", "called_back", "returned"} <= DB_REACHED
