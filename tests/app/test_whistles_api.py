"""/api/whistles?to_rate=true (the whistles a street still has to rate) and the flags the
command post's page reads — `may_rate` on the list, `may_whistle` on a case — on a real
PostGIS, as every role concerned. Expected lists come from SQL written here."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from etl.units import build_units
from layers import whistles as w
from layers.cases import Actor, create_case
from tests.clock import HOURS, FrozenClock
from tests.helpers import add_user, clocked_app, login

A = "110102001"
BLOWERS = ("district", "commander", "clerk")


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(HOURS["noon-beijing"])


@pytest.fixture
def app(connection: sa.Connection, clock: FrozenClock) -> Flask:
    return clocked_app(connection, clock)


@pytest.fixture
def units(connection: sa.Connection, district: Any) -> list[str]:
    build_units(connection)
    return [f"{A}-city", "district-market", "district-fire"]


def _client(app: Flask, conn: sa.Connection, role: str, unit: str | None = None) -> FlaskClient:
    street = A if role in ("commander", "clerk") else None
    user = add_user(conn, f"whistles-{role}", role, street, unit=unit)
    return login(app.test_client(), user)


def _whistles(conn: sa.Connection, clock: FrozenClock, units: list[str]) -> dict[str, int]:
    """Four whistles of street A, through the write path as the owner: one with a unit still
    to arrive, one completed and half rated, one completed and unrated, one all rated."""
    now = clock.instant
    clerk = Actor("setup-clerk", "clerk")
    made = {}
    for i, name in enumerate(("open", "half_rated", "unrated", "rated")):
        made[name] = w.blow(
            conn,
            street=A,
            target=w.Place("lane", ref=f"测试胡同{i}"),
            unit_codes=units[:2],
            reason=f"联合整治 {name}",
            meeting_point="胡同口",
            meet_at=now - dt.timedelta(hours=5 - i),
            actor=clerk,
            now=now - dt.timedelta(hours=6),
        )
        if name == "open":
            continue
        for code in units[:2]:
            w.report_arrival(conn, made[name], code, clerk, now - dt.timedelta(hours=1))
            w.report_completion(conn, made[name], code, clerk, now - dt.timedelta(minutes=30))
    w.rate(conn, made["half_rated"], units[0], "满意", clerk, now)
    for code in units[:2]:
        w.rate(conn, made["rated"], code, "基本满意", clerk, now, comment="尚可")
    return made


def _expected(conn: sa.Connection, to_rate: bool) -> list[int]:
    waiting = "rating is null" if to_rate else "completed_at is null"
    return list(
        conn.execute(
            sa.text(
                "select id from whistles where street_code = :s and id in (select whistle_id "
                f"from whistle_units where {waiting}) order by meet_at, id"
            ),
            {"s": A},
        ).scalars()
    )


@pytest.mark.parametrize("role", BLOWERS)
def test_to_rate_lists_the_whistles_still_to_rate(
    app: Flask, connection: sa.Connection, clock: FrozenClock, units: list[str], role: str
) -> None:
    made = _whistles(connection, clock, units)
    client = _client(app, connection, role)
    open_only = client.get("/api/whistles").get_json()
    assert [x["id"] for x in open_only["whistles"]] == _expected(connection, False)
    assert [x["id"] for x in open_only["whistles"]] == [made["open"]]
    assert open_only["may_rate"] is True
    with_rating = client.get("/api/whistles", query_string={"to_rate": "true"}).get_json()
    ids = [x["id"] for x in with_rating["whistles"]]
    assert ids == _expected(connection, True)
    assert ids == [made["open"], made["half_rated"], made["unrated"]]
    half = next(x for x in with_rating["whistles"] if x["id"] == made["half_rated"])
    assert {u["unit_code"]: u["rating"] for u in half["units"]} == {
        units[0]: "满意",
        units[1]: None,
    }
    street = client.get("/api/whistles", query_string={"to_rate": "true", "street": A})
    assert [x["id"] for x in street.get_json()["whistles"]] == ids
    # Once its last unit is rated, the whistle leaves the list.
    rated = client.post(
        f"/api/whistles/{made['half_rated']}/units/{units[1]}/rating",
        json={"rating": "不满意", "comment": "迟到"},
    )
    assert rated.status_code == 200, rated.get_json()
    again = client.get("/api/whistles?to_rate=true").get_json()["whistles"]
    assert (
        [x["id"] for x in again] == _expected(connection, True) == [made["open"], made["unrated"]]
    )


def test_a_department_may_not_rate_and_sees_its_units_whistles(
    app: Flask, connection: sa.Connection, clock: FrozenClock, units: list[str]
) -> None:
    made = _whistles(connection, clock, units)
    department = _client(app, connection, "department", unit=units[1])
    answer = department.get("/api/whistles?to_rate=true").get_json()
    assert answer["may_rate"] is False
    assert [x["id"] for x in answer["whistles"]] == [
        made["open"],
        made["half_rated"],
        made["unrated"],
    ]
    refused = department.post(
        f"/api/whistles/{made['unrated']}/units/{units[1]}/rating", json={"rating": "满意"}
    )
    assert refused.status_code == 403
    assert (
        connection.execute(
            sa.text("select rating from whistle_units where whistle_id = :w and unit_code = :u"),
            {"w": made["unrated"], "u": units[1]},
        ).scalar_one()
        is None
    )


@pytest.mark.parametrize("value", ["maybe", "2", "", "true,false"])
def test_a_bad_to_rate_is_a_400(
    app: Flask, connection: sa.Connection, units: list[str], value: str
) -> None:
    response = _client(app, connection, "district").get(
        "/api/whistles", query_string={"to_rate": value}
    )
    if value == "":
        assert response.status_code == 200  # empty: the default, as every parameter here
        return
    assert response.status_code == 400 and response.is_json
    assert "to_rate" in response.get_json()["message"]


@pytest.mark.parametrize(
    ("role", "may"),
    [("district", True), ("commander", True), ("clerk", True), ("department", False)],
)
def test_a_case_says_whether_the_caller_may_blow_a_whistle(
    app: Flask,
    connection: sa.Connection,
    clock: FrozenClock,
    units: list[str],
    role: str,
    may: bool,
) -> None:
    source = connection.execute(
        sa.text(
            "insert into enforcement_cases (source, source_id, opened_at, street_code, geom) "
            "values ('test-whistles-api', 'W1', :t, :s, "
            "ST_SetSRID(ST_MakePoint(116.4, 39.9), 4326)) returning id"
        ),
        {"t": clock.instant, "s": A},
    ).scalar_one()
    case = create_case(
        connection,
        kind="enforcement_case",
        source_id=source,
        street_code=A,
        category="占道经营",
        received_at=clock.instant - dt.timedelta(hours=1),
    )
    if role == "department":  # a department sees its unit's cases: dispatch it there
        from layers.cases import transition

        fields = {"main_unit": units[0], "assisting_units": []}
        transition(
            connection, case["id"], "dispatch", 0, Actor("c", "clerk"), fields, clock.instant
        )
    client = _client(app, connection, role, unit=units[0] if role == "department" else None)
    answer = client.get(f"/api/cases/{case['id']}")
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["may_whistle"] is may
