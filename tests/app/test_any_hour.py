"""The date-sensitive pages and APIs at any hour: the app's clock frozen at several instants
(23:30 and 07:30 Beijing time among them, when the UTC date is another), the process's TZ
set to UTC, Asia/Shanghai and America/New_York. Every expectation is computed here from the
frozen instant and the raw rows, never from the server's clock."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from tests.clock import HOURS, PROCESS_ZONES, FrozenClock, day_start, process_tz
from tests.helpers import call, clocked_app, ok, token
from tests.plugins.hand import STREET_A, Hand


@pytest.fixture(params=list(HOURS))
def clock(request: pytest.FixtureRequest) -> FrozenClock:
    return FrozenClock(HOURS[request.param])


@pytest.fixture(params=PROCESS_ZONES)
def process_zone(request: pytest.FixtureRequest) -> Iterator[str]:
    """The test process (server included) in another TZ: only the app's clock may count."""
    with process_tz(request.param):
        yield request.param


@pytest.fixture
def app(connection: sa.Connection, clock: FrozenClock) -> Flask:
    return clocked_app(connection, clock)


def _count(conn: sa.Connection, since: dt.date, until: dt.date, street: str | None = None) -> int:
    """Requests received on the Beijing days since … until, counted from the rows."""
    return int(
        conn.execute(
            sa.text(
                "select count(*) from service_requests where received_at >= :lo "
                "and received_at < :hi and (street_code = :s or cast(:s as text) is null)"
            ),
            {"lo": day_start(since), "hi": day_start(until + dt.timedelta(days=1)), "s": street},
        ).scalar_one()
    )


def _page_today(client: FlaskClient, path: str) -> str:
    """The `today` a page hands its script (wherever the page puts its configuration)."""
    response = client.get(path)
    assert response.status_code == 200
    found = re.search(r'"today":\s*"([0-9-]{10})"', html.unescape(response.get_data(as_text=True)))
    assert found, path
    return found[1]


def test_today_and_windows_are_the_districts_local_days(
    client: FlaskClient,
    connection: sa.Connection,
    hand: Hand,
    clock: FrozenClock,
    process_zone: str,
) -> None:
    today = clock.today()  # Beijing's date at the frozen instant
    for path in ("/", f"/command/{STREET_A}", "/planner"):
        assert _page_today(client, path) == str(today), path
    # 今日: the local day so far; 近7天: seven days, today included; 近30天 (the default): 30.
    for days in (1, 7, 30):
        since = today - dt.timedelta(days=days - 1)
        body = ok(client, "/api/heat/service_requests", since=str(since), until=str(today))
        assert body["total"] == _count(connection, since, today), days
    body = ok(client, "/api/heat/service_requests")
    assert (body["since"], body["until"]) == (str(today - dt.timedelta(days=29)), str(today))
    assert body["total"] == _count(connection, today - dt.timedelta(days=29), today)
    summary = ok(client, f"/api/command/{STREET_A}/summary")
    assert summary["today"] == str(today) and summary["month"] == f"{today:%Y-%m}"
    assert summary["window"] == {"since": str(today - dt.timedelta(days=29)), "until": str(today)}
    assert summary["new_today"] == _count(connection, today, today, STREET_A)
    overdue = connection.execute(
        sa.text(
            "select count(*) from service_requests where street_code = :s "
            "and status is distinct from '已办结' and due_at < :now"
        ),
        {"s": STREET_A, "now": clock.instant},
    ).scalar_one()
    assert summary["overdue"] == overdue
    assert dt.datetime.fromisoformat(summary["as_of"]) == clock.instant
    assert ok(client, "/api/streets")["month"] == f"{today:%Y-%m}"
    assert ok(client, "/api/planner")["as_of"] == str(today)
    latest = ok(client, f"/api/command/{STREET_A}/latest")
    assert dt.datetime.fromisoformat(latest["since"]) == clock.instant - dt.timedelta(hours=24)
    recent = connection.execute(
        sa.text(
            "select source_id from service_requests where street_code = :s "
            "and received_at >= :since"
        ),
        {"s": STREET_A, "since": clock.instant - dt.timedelta(hours=24)},
    ).scalars()
    got = {f["properties"]["source_id"] for f in latest["features"]}
    assert got == set(recent) and {"N0", "N1"} <= got and "N2" not in got


def test_an_open311_request_lands_on_the_districts_today(
    anonymous: FlaskClient,
    connection: sa.Connection,
    district: Any,
    clock: FrozenClock,
    process_zone: str,
) -> None:
    """Received "now" by the app's clock, counted on Beijing's today, whatever the hour."""
    key = token(connection, "district")
    today = clock.today()
    status, body, _ = call(
        anonymous,
        "POST",
        "/requests.json",
        api_key=key,
        service_code="环境卫生",
        lat="39.905",
        long="116.305",
        description="垃圾未清运",
    )
    assert status == 200, body
    received = connection.execute(
        sa.text("select received_at from service_requests where id = :id"),
        {"id": body[0]["service_request_id"]},
    ).scalar_one()
    assert received == clock.instant.replace(microsecond=0)
    summary = anonymous.get(
        f"/api/command/{STREET_A}/summary", headers={"Authorization": f"Bearer {key}"}
    )
    assert summary.status_code == 200, summary.get_data(as_text=True)
    assert summary.get_json()["new_today"] == _count(connection, today, today, STREET_A) == 1
