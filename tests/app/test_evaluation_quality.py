"""/api/evaluation/departments and /api/evaluation/guards over HTTP, as every role concerned,
on the hand-made Novembers of tests/evaldepts_fixtures.py (figures counted by hand there and
here), with the app's clock frozen on 2 December 2026 noon in Beijing."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from etl.aggregates import refresh_request_aggregates
from tests.clock import FrozenClock
from tests.evaldepts_fixtures import (
    FIRE,
    MARKET,
    A,
    B,
    at,
    departments_november,
    guards_november,
)
from tests.helpers import add_unit, add_user, clocked_app, get, json_error, login, ok

DEPARTMENTS = "/api/evaluation/departments"
GUARDS = "/api/evaluation/guards"
NOVEMBER = {"period": "2026-11"}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(at(12, 2, 12))


@pytest.fixture
def app(connection: sa.Connection, clock: FrozenClock) -> Flask:
    return clocked_app(connection, clock)


def _client(app: Flask, conn: sa.Connection, role: str, street: str | None = None) -> FlaskClient:
    unit = {"department": MARKET, "assessor": "district-testdept"}.get(role)
    if unit is not None:
        add_unit(conn, unit)
    user = add_user(conn, f"evaldepts-{role}-{street}", role, street, unit=unit)
    return login(app.test_client(), user)


def _units(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {u["code"]: u for u in body["departments"]}


def test_departments_as_district_analyst_and_commander(
    app: Flask, connection: sa.Connection, district: Any
) -> None:
    departments_november(connection)
    district_user = _client(app, connection, "district")
    for role in ("district", "analyst", "assessor"):
        client = district_user if role == "district" else _client(app, connection, role)
        body = ok(client, DEPARTMENTS, **NOVEMBER)
        assert body["since"] == "2026-11-01" and body["until"] == "2026-11-30"
        got = _units(body)
        # counted by hand in tests/evaldepts_fixtures.py: fire 77, market 35.5 (d4 overdue
        # on 2 December: the app's clock)
        assert (got[FIRE]["score"], got[FIRE]["rank"]) == (77.0, 1), role
        assert (got[MARKET]["score"], got[MARKET]["rank"]) == (35.5, 2), role
        assert got[MARKET]["cases"]["judged"] == 3
    same = ok(
        district_user,
        DEPARTMENTS,
        since="2026-11-01",
        until="2026-11-30",
    )
    assert same["departments"] == body["departments"]
    alone = ok(district_user, DEPARTMENTS, since="2026-11-15")  # up to today (the clock's)
    assert (alone["since"], alone["until"]) == ("2026-11-15", "2026-12-02")
    alone = ok(district_user, DEPARTMENTS, until="2026-11-20")  # from the first of its month
    assert (alone["since"], alone["until"]) == ("2026-11-01", "2026-11-20")
    # the commander of A: how the units served street A (d1 d2 held, d3 returned by market)
    got = _units(ok(_client(app, connection, "commander", A), DEPARTMENTS, **NOVEMBER))
    assert got[MARKET]["cases"]["dispatched"] == 3 and got[MARKET]["rating_rate"] == 0.0
    assert got[FIRE]["rating_rate"] == 0.95


def test_guards_beside_their_rates(app: Flask, connection: sa.Connection, district: Any) -> None:
    guards_november(connection)
    refresh_request_aggregates(connection)
    body = ok(_client(app, connection, "district"), GUARDS, **NOVEMBER)
    streets = {s["code"]: s for s in body["streets"]}
    assert set(streets) == {A, B}
    assert streets[A]["counts"] == {"quick_close": 1, "no_callback": 1, "repeat": 1, "bounced": 1}
    assert streets[B]["counts"] == {"quick_close": 1, "no_callback": 1, "repeat": 1, "bounced": 0}
    assert body["guards"]["repeat"]["inflates"] == "resolution_rate"
    # received in November: A — P2 P3 P6 P4 Q1 Q2 X1 X2; B — P8 Q3 Q4 Q5. Valid callbacks
    # on the requests: only Q4's (B), not contacted, not solved, no rating.
    assert streets[A]["rates"]["requests"] == 8 and streets[A]["rates"]["callbacks"] == 0
    assert streets[A]["rates"]["resolution_rate"] is None  # V = 0
    assert streets[B]["rates"]["requests"] == 4 and streets[B]["rates"]["callbacks"] == 1
    assert streets[B]["rates"]["resolution_rate"] == 0.0
    assert streets[A]["name"] == "测试001街道"
    commander = ok(_client(app, connection, "commander", A), GUARDS, **NOVEMBER)
    assert [s["code"] for s in commander["streets"]] == [A]
    assert commander["streets"][0]["counts"] == streets[A]["counts"]
    # this month (December, by the clock): Q6 quick (A), P9 repeats P8 30 days later (B)
    assessor = ok(_client(app, connection, "assessor"), GUARDS, **NOVEMBER)
    assert assessor["streets"] == body["streets"]
    december = ok(_client(app, connection, "analyst"), GUARDS)
    counts = {s["code"]: s["counts"] for s in december["streets"]}
    assert december["since"] == "2026-12-01" and december["until"] == "2026-12-31"
    assert counts[A] == {"quick_close": 1, "no_callback": 0, "repeat": 0, "bounced": 0}
    assert counts[B] == {"quick_close": 0, "no_callback": 0, "repeat": 1, "bounced": 0}


def test_guard_records_and_their_pages(
    app: Flask, connection: sa.Connection, district: Any
) -> None:
    made = guards_november(connection)
    district_user = _client(app, connection, "district")
    body = ok(district_user, f"{GUARDS}/repeat", **NOVEMBER)
    assert [r["source_id"] for r in body["records"]] == ["P8", "P2"] and body["total"] == 2
    assert body["records"][1]["earlier_request_id"] == made["P1"]
    page = ok(district_user, f"{GUARDS}/quick_close", limit="1", offset="1", **NOVEMBER)
    assert [r["source_id"] for r in page["records"]] == ["Q3"] and page["total"] == 2
    assert page["records"][0]["case_id"] == made["Q3"]
    commander = _client(app, connection, "commander", A)
    mine = ok(commander, f"{GUARDS}/bounced", street=A, **NOVEMBER)
    assert [r["source_id"] for r in mine["records"]] == ["X1"]
    assert [
        r["source_id"] for r in ok(commander, f"{GUARDS}/no_callback", **NOVEMBER)["records"]
    ] == ["Q2"]
    message = json_error(commander, f"{GUARDS}/repeat?period=2026-11&street={B}", 403)
    assert "其他街道" in message
    assert "未知" in json_error(district_user, f"{GUARDS}/nonesuch?period=2026-11", 404)


@pytest.mark.parametrize("role", ["department", "planner", "clerk", "grid_officer"])
def test_other_roles_are_refused(
    app: Flask, connection: sa.Connection, district: Any, role: str
) -> None:
    street = A if role in ("clerk", "grid_officer") else None
    client = _client(app, connection, role, street)
    for path in (DEPARTMENTS, GUARDS, f"{GUARDS}/repeat"):
        status, body = get(client, path, **NOVEMBER)
        assert status == 403, (role, path, body)


def test_anonymous_is_refused(app: Flask) -> None:
    status, _ = get(app.test_client(), DEPARTMENTS, **NOVEMBER)
    assert status == 401


@pytest.mark.parametrize(
    ("query", "word"),
    [
        ("period=2026-13", "月份"),
        ("period=2027-01", "超出范围"),  # after this month
        ("period=2026-11&since=2026-11-01", "只能给出一种"),
        ("since=2026-12-03", "晚于"),  # to today, 2 December
        ("since=2026-11-30&until=2026-11-01", "晚于"),
        ("since=2025-01-01&until=2026-11-30", "超过一年"),
        ("since=2026-11-31&until=2026-12-01", "日期"),
        ("zzz=1", "未知参数"),
        ("period=2026-11&period=2026-10", "重复"),
    ],
)
def test_bad_parameters_are_400_in_chinese(
    app: Flask, connection: sa.Connection, district: Any, query: str, word: str
) -> None:
    client = _client(app, connection, "district")
    for path in (DEPARTMENTS, GUARDS, f"{GUARDS}/repeat"):
        assert word in json_error(client, f"{path}?{query}")


@pytest.mark.parametrize(
    ("query", "word"),
    [("limit=0", "范围"), ("limit=x", "整数"), ("offset=-1", "非负整数"), ("street=abc", "9 位")],
)
def test_bad_paging_is_400(
    app: Flask, connection: sa.Connection, district: Any, query: str, word: str
) -> None:
    client = _client(app, connection, "district")
    assert word in json_error(client, f"{GUARDS}/repeat?period=2026-11&{query}")
