"""/api/evaluation as every role concerned: the district, analysts and assessors read periods
live; a commander reads published periods only (every street's line, its own street's
detail); only the district publishes; clerks, planners, departments and grid officers are
refused. The figures are tests/layers/test_evaluation_compute.py's, worked out by hand; the
app's clock is frozen at several hours."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from layers.evaluation.scheme import save_scheme
from tests.clock import HOURS, FrozenClock
from tests.evalcore_fixtures import NOW, OWNER, A, B, hotline_row, scheme_body, seed
from tests.helpers import add_unit, add_user, clocked_app, login

BASE = "/api/evaluation"
PERIOD = f"{BASE}/periods/2026-11?scheme=small"
# A by hand: internal 58.5 (3 cases overdue by the 20th), survey 83.5, hotline 75.2.
A_COMPOSITE = round(0.4 * 58.5 + 0.4 * 83.5 + 0.2 * 75.2, 2)  # 71.84
# On New Year's day the case due on the 28th is past due too: bonus −2 + 2, internal 58.
A_COMPOSITE_LATER = round(0.4 * 58 + 0.4 * 83.5 + 0.2 * 75.2, 2)  # 71.64
DETAIL = {"internal", "survey", "survey_margin", "hotline", "aspects", "items", "rates"}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def app(connection: sa.Connection, clock: FrozenClock, district: Any) -> Flask:
    seed(connection)
    save_scheme(connection, scheme_body(), by="test")
    return clocked_app(connection, clock)


def _client(app: Flask, conn: sa.Connection, role: str, street: str = A) -> FlaskClient:
    unit = None
    if role == "assessor":
        unit = OWNER
    elif role == "department":
        unit = add_unit(conn)
    where = street if role in ("commander", "clerk", "grid_officer") else None
    user = add_user(conn, f"eval-{role}-{street}", role, where, unit=unit)
    return login(app.test_client(), user)


def _street(rows: list[dict[str, Any]], code: str) -> dict[str, Any]:
    return next(s for s in rows if s["code"] == code)


def _json(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


@pytest.mark.parametrize("role", ["district", "analyst", "assessor"])
@pytest.mark.parametrize(
    ("hour", "expected"),
    [("noon-beijing", A_COMPOSITE), ("2330-beijing", A_COMPOSITE), ("new-year-0100", None)],
)
def test_the_districts_roles_read_the_live_period(
    app: Flask,
    connection: sa.Connection,
    clock: FrozenClock,
    role: str,
    hour: str,
    expected: float | None,
) -> None:
    clock.instant = HOURS[hour]
    result = _json(_client(app, connection, role).get(PERIOD))
    assert result["published"] is None
    a = _street(result["streets"], A)
    assert a["composite"] == (A_COMPOSITE_LATER if expected is None else expected)
    assert (a["rank"], _street(result["streets"], B)["composite"]) == (1, None)
    assert result["scheme"]["code"] == "small"


def test_a_commander_reads_published_periods_only(app: Flask, connection: sa.Connection) -> None:
    commander = _client(app, connection, "commander", A)
    refused = _json(commander.get(PERIOD), 404)
    assert "尚未发布" in refused["message"]
    district = _client(app, connection, "district")
    _json(district.post(f"{BASE}/periods/2026-11/publish?scheme=small"), 201)
    seen = _json(commander.get(PERIOD))
    assert seen["published"]["version"] == 1
    own, other = _street(seen["streets"], A), _street(seen["streets"], B)
    assert own["composite"] == A_COMPOSITE and set(own) >= DETAIL
    assert set(other) == {"code", "name", "rank", "rank_change", "class", "composite"}
    other_commander = _client(app, connection, "commander", B)
    theirs = _json(other_commander.get(PERIOD))
    assert set(_street(theirs["streets"], B)) >= DETAIL
    assert set(_street(theirs["streets"], A)) & DETAIL == set()
    assert _json(commander.get(f"{PERIOD}&version=1"))["published"]["version"] == 1
    assert "第 2 版尚未发布" in _json(commander.get(f"{PERIOD}&version=2"), 404)["message"]
    assert _json(commander.get(f"{BASE}/periods/2026-11/what-if?scheme=small"), 403)
    versions = _json(commander.get(f"{BASE}/periods/2026-11/versions?scheme=small"))
    assert [v["version"] for v in versions["versions"]] == [1]


def test_publishing_freezes_and_versions(app: Flask, connection: sa.Connection) -> None:
    district = _client(app, connection, "district")
    first = _json(district.post(f"{BASE}/periods/2026-11/publish?scheme=small"), 201)
    assert first["published"]["version"] == 1
    assert first["published"]["published_by"] == "eval-district-110102001"
    assert first["published"]["published_at"] == NOW.isoformat()
    # B's callbacks arrive after publication: the live result changes, version 1 does not.
    hotline_row(connection, (NOW.date(), B, 5, 5, 5, 5, 5, 5, 0))
    live = _json(district.get(PERIOD))
    b_now = round(0.4 * 93 + 0.4 * 25.25 + 0.2 * 100, 2)  # 67.3: V = 5, every rate 1
    assert _street(live["streets"], B)["composite"] == b_now
    frozen = _json(district.get(f"{PERIOD}&version=1"))
    assert _street(frozen["streets"], B)["composite"] is None
    second = _json(district.post(f"{BASE}/periods/2026-11/publish?scheme=small"), 201)
    assert second["published"]["version"] == 2
    assert _street(second["streets"], B)["composite"] == b_now
    versions = _json(district.get(f"{BASE}/periods/2026-11/versions?scheme=small"))
    assert [v["version"] for v in versions["versions"]] == [2, 1]


@pytest.mark.parametrize("role", ["analyst", "assessor", "commander"])
def test_only_the_district_publishes(app: Flask, connection: sa.Connection, role: str) -> None:
    answer = _json(
        _client(app, connection, role).post(f"{BASE}/periods/2026-11/publish?scheme=small"), 403
    )
    assert "无权发布考评" in answer["message"]
    count = connection.execute(sa.text("select count(*) from evaluation_publications"))
    assert count.scalar() == 0


@pytest.mark.parametrize("role", ["clerk", "planner", "department", "grid_officer"])
def test_other_roles_have_no_evaluation(app: Flask, connection: sa.Connection, role: str) -> None:
    client = _client(app, connection, role)
    for url in (
        f"{BASE}/schemes",
        f"{BASE}/schemes/small",
        PERIOD,
        f"{BASE}/periods/2026-11/versions",
        f"{BASE}/periods/2026-11/what-if",
    ):
        assert "无权" in _json(client.get(url), 403)["message"], url
    assert client.post(f"{BASE}/periods/2026-11/publish").status_code == 403


def test_the_what_if_weights_change_who_leads(app: Flask, connection: sa.Connection) -> None:
    """With B's callbacks in (hotline 100), A leads on 40/40/20 (71.84 against 67.3); with
    the survey's weight at 0 (internal 80), B's internal 93 leads: A 0.8 × 58.5 + 0.2 × 75.2
    = 61.84, B 0.8 × 93 + 0.2 × 100 = 94.4."""
    hotline_row(connection, (NOW.date(), B, 5, 5, 5, 5, 5, 5, 0))
    client = _client(app, connection, "assessor")
    answer = _json(
        client.get(f"{BASE}/periods/2026-11/what-if?scheme=small&internal=80&survey=0&hotline=20")
    )
    assert answer["current_parts"] == {"internal": 40, "survey": 40, "hotline": 20}
    assert answer["parts"] == {"internal": 80, "survey": 0, "hotline": 20}
    assert [(s["code"], s["rank"], s["composite"]) for s in answer["current"]] == [
        (A, 1, A_COMPOSITE),
        (B, 2, 67.3),
    ]
    assert [(s["code"], s["rank"], s["composite"]) for s in answer["what_if"]] == [
        (B, 1, 94.4),
        (A, 2, 61.84),
    ]


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        (f"{BASE}/periods/2026-13?scheme=small", 400, "月份应为 01–12"),
        (f"{BASE}/periods/2026Q4?scheme=small", 400, "考评周期无效"),
        (f"{BASE}/periods/2026-11?scheme=small&version=0", 400, "超出范围"),
        (f"{BASE}/periods/2026-11?scheme=small&version=x", 400, "应为整数"),
        (f"{BASE}/periods/2026-11?scheme=nothing", 404, "没有考评方案 nothing"),
        (f"{BASE}/periods/2026-11?scheme=small&zzz=1", 400, "zzz"),
        (f"{BASE}/periods/2026-11/what-if?scheme=small&internal=50", 400, "之和应为 100"),
        (f"{BASE}/periods/2026-11/what-if?scheme=small&survey=abc", 400, "权重应为数值"),
        (f"{BASE}/periods/2026-11/what-if?scheme=small&survey=nan", 400, "权重应为数值"),
        (f"{BASE}/periods/2026-11/what-if?scheme=small&survey=-10&internal=90", 400, "不能小于 0"),
        (f"{BASE}/schemes/nothing", 404, "没有考评方案 nothing"),
    ],
)
def test_bad_parameters_get_a_chinese_json_error(
    app: Flask, connection: sa.Connection, url: str, status: int, message: str
) -> None:
    answer = _json(_client(app, connection, "district").get(url), status)
    assert message in answer["message"]


def test_schemes(app: Flask, connection: sa.Connection) -> None:
    client = _client(app, connection, "commander")
    listed = _json(client.get(f"{BASE}/schemes"))["schemes"]
    assert [(s["code"], s["version"]) for s in listed] == [("small", 1)]
    one = _json(client.get(f"{BASE}/schemes/small?version=1"))
    assert one["body"]["parts"] == {"internal": 40, "survey": 40, "hotline": 20}
