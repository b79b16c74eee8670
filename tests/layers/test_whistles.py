"""吹哨报到 through layers/whistles.py on a plain connection scoped as each role: summons,
arrivals with their delays, completions, ratings; refusals with their status; zones."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from etl.units import build_units
from layers import whistles as w
from layers.cases import Actor, Refused
from layers.queries import access
from tests.clock import BEIJING
from tests.district import request_row, write_csv

A, B = "110102001", "110102003"
MEET = dt.datetime(2026, 11, 18, 9, 0, tzinfo=BEIJING)
COMMANDER_A = Actor("commander-a", "commander")
CLERK = Actor("clerk-a", "clerk")


@pytest.fixture
def street_units(connection: sa.Connection, district: Any) -> list[str]:
    build_units(connection)
    return [f"{A}-city", f"{A}-safety", "district-market", "district-fire"]


def _blow(conn: sa.Connection, codes: list[str], actor: Actor = COMMANDER_A, **kw: Any) -> int:
    values: dict[str, Any] = {
        "street": A,
        "target": w.Place("relocation_target", ref="S1"),
        "unit_codes": codes,
        "reason": "无证经营的农贸市场疏解，联合执法",
        "meeting_point": "西长安街街道办事处门口",
        "meet_at": MEET,
        "actor": actor,
        "now": MEET - dt.timedelta(hours=2),
    } | kw
    return w.blow(conn, **values)


def _refused(status: int, fn: Any, *args: Any, **kw: Any) -> str:
    with pytest.raises(Refused) as raised:
        fn(*args, **kw)
    assert raised.value.status == status, raised.value.message
    return raised.value.message


def test_a_whistle_from_summons_to_ratings(
    connection: sa.Connection, street_units: list[str]
) -> None:
    access.scope(connection, A)  # the commander's zone
    wid = _blow(connection, street_units, lng=116.37, lat=39.90)
    late = {f"{A}-city": 0, f"{A}-safety": 25, "district-market": 70, "district-fire": -10}
    market = Actor("market-user", "department", "district-market")
    for code, minutes in late.items():
        actor = market if code == "district-market" else CLERK
        delay = w.report_arrival(connection, wid, code, actor, MEET + dt.timedelta(minutes=minutes))
        assert delay == dt.timedelta(minutes=max(minutes, 0)), code
    open_now = w.in_progress(connection)
    assert [x["id"] for x in open_now] == [wid]
    assert {u["unit_code"] for u in open_now[0]["units"]} == set(late)
    done_at = MEET + dt.timedelta(hours=3)
    for code in late:
        w.report_completion(connection, wid, code, CLERK, done_at, note="已处置")
    assert w.in_progress(connection) == []
    ratings = {f"{A}-city": "满意", f"{A}-safety": "基本满意", "district-market": "不满意"}
    for code, rating in ratings.items():
        w.rate(
            connection,
            wid,
            code,
            rating,
            COMMANDER_A,
            done_at,
            comment="到场迟" * (rating == "不满意"),
        )
    # Independently: the rows as stored (as the owner, no zone).
    connection.execute(sa.text("reset role"))
    stored = {
        r.unit_code: r
        for r in connection.execute(
            sa.text(
                "select unit_code, arrived_at, completed_at, rating, arrived_by"
                " from whistle_units where whistle_id = :w"
            ),
            {"w": wid},
        )
    }
    for code, minutes in late.items():
        assert stored[code].arrived_at == MEET + dt.timedelta(minutes=minutes)
        assert stored[code].completed_at == done_at
        assert stored[code].rating == ratings.get(code)
    assert stored["district-market"].arrived_by == "market-user"
    record = {
        r["unit_code"]: r
        for r in w.unit_record(connection, MEET - dt.timedelta(days=1), MEET + dt.timedelta(days=1))
    }
    assert record["district-market"]["max_delay_minutes"] == pytest.approx(70)
    assert record["district-fire"]["max_delay_minutes"] == pytest.approx(0)
    assert record["district-market"]["ratings"] == {"满意": 0, "基本满意": 0, "不满意": 1}
    assert record[f"{A}-city"]["summoned"] == record[f"{A}-city"]["completed"] == 1


def test_refusals_say_why_with_their_status(
    connection: sa.Connection, street_units: list[str]
) -> None:
    access.scope(connection, A)
    _refused(403, _blow, connection, street_units, actor=Actor("a", "analyst"))
    _refused(403, _blow, connection, street_units, actor=Actor("p", "planner"))
    _refused(400, _blow, connection, [])
    _refused(400, _blow, connection, ["district-nonesuch"])
    _refused(400, _blow, connection, street_units, reason=" ")
    _refused(400, _blow, connection, street_units, meet_at=dt.datetime(2026, 11, 18, 9))
    _refused(400, _blow, connection, street_units, target=w.Place("case"))
    wid = _blow(connection, street_units)
    code = street_units[0]
    other = Actor("u", "department", "district-fire")
    assert "本单位" in _refused(403, w.report_arrival, connection, wid, code, other, MEET)
    _refused(404, w.report_arrival, connection, wid, f"{B}-city", CLERK, MEET)
    _refused(409, w.report_completion, connection, wid, code, CLERK, MEET)  # not arrived
    w.report_arrival(connection, wid, code, CLERK, MEET)
    _refused(409, w.report_arrival, connection, wid, code, CLERK, MEET)  # twice
    _refused(409, w.rate, connection, wid, code, "满意", COMMANDER_A, MEET)  # not completed
    w.report_completion(connection, wid, code, CLERK, MEET)
    _refused(400, w.rate, connection, wid, code, "很好", COMMANDER_A, MEET)
    _refused(403, w.rate, connection, wid, code, "满意", Actor("u", "department", code), MEET)
    w.rate(connection, wid, code, "满意", COMMANDER_A, MEET)
    _refused(409, w.rate, connection, wid, code, "不满意", COMMANDER_A, MEET)


def test_a_commander_blows_and_sees_only_in_their_street(
    connection: sa.Connection, street_units: list[str]
) -> None:
    access.scope(connection, access.DISTRICT)
    in_a = _blow(connection, street_units, actor=Actor("d", "district"))
    in_b = _blow(connection, ["district-market"], street=B, actor=Actor("d", "district"))
    assert {x["id"] for x in w.in_progress(connection)} == {in_a, in_b}
    connection.execute(sa.text("reset role"))
    access.scope(connection, B)
    assert [x["id"] for x in w.in_progress(connection)] == [in_b]
    _refused(404, w.report_arrival, connection, in_a, street_units[0], CLERK, MEET)
    connection.execute(sa.text("savepoint other_street"))
    _refused(403, _blow, connection, street_units, actor=Actor("cb", "commander"))
    connection.execute(sa.text("rollback to savepoint other_street"))
    connection.execute(sa.text("reset role"))
    access.scope(connection, A)
    assert [x["id"] for x in w.in_progress(connection)] == [in_a]


def test_a_whistle_on_a_case_of_the_street(
    connection: sa.Connection, street_units: list[str], tmp_path: Path
) -> None:
    from etl.jobs import run_file

    row = request_row("W1")  # at the centre of a grid of street A
    run_file(connection, write_csv(tmp_path / "r.csv", [row]), layer="service_requests")
    # the load made the request's case (etl.replay)
    case_id, street = connection.execute(
        sa.text(
            "select c.id, c.street_code from cases c join service_requests r "
            "on r.id = c.service_request_id where r.source_id = 'W1'"
        )
    ).one()
    assert street == A
    access.scope(connection, A)
    wid = _blow(connection, street_units[:1], target=w.Place("case", case_id=case_id))
    assert w.in_progress(connection)[0]["case_id"] == case_id
    _refused(404, _blow, connection, street_units, target=w.Place("case", case_id=case_id + 999))
    connection.execute(sa.text("reset role"))
    access.scope(connection, B)
    _refused(
        404, _blow, connection, street_units, street=B, target=w.Place("case", case_id=case_id)
    )
    assert wid > 0


def test_the_reader_never_deletes_a_whistle_or_a_rating(
    connection: sa.Connection, street_units: list[str]
) -> None:
    access.scope(connection, access.DISTRICT)
    wid = _blow(connection, street_units[:1], actor=Actor("d", "district"))
    for table in ("whistle_units", "whistles"):
        connection.execute(sa.text("savepoint del"))
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            connection.execute(sa.text(f"delete from {table} where true"))
        connection.execute(sa.text("rollback to savepoint del"))
    assert w.summoned(connection, wid)[0]["unit_code"] == street_units[0]
