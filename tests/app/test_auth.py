"""Who sees what: logins, tokens, roles, and zones enforced by row-level security."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.auth import new_token
from etl.jobs import run_file
from layers.accounts import api_tokens
from tests.district import request_row, write_csv
from tests.helpers import add_user, login

A, B = "110102001", "110102003"  # the two streets of the tiny test district


@pytest.fixture
def loaded(connection: sa.Connection, district: object, tmp_path: Path) -> None:
    rows = [request_row(f"A{i}") for i in range(3)]  # street A (116.305, 39.905)
    rows += [request_row(f"B{i}", 经度="116.335", 纬度="39.915") for i in range(2)]  # street B
    run_file(connection, write_csv(tmp_path / "r.csv", rows), layer="service_requests")


def _as(app: Flask, connection: sa.Connection, role: str, street: str | None = None) -> FlaskClient:
    return login(app.test_client(), add_user(connection, f"u-{role}-{street}", role, street))


def test_anonymous_gets_401_or_the_login_page(anonymous: FlaskClient) -> None:
    for url in ["/api/heat/service_requests", "/api/streets", "/api/layers/grids/geojson"]:
        response = anonymous.get(url)
        assert response.status_code == 401, url
        assert response.get_json()["error"] == "unauthorized"
    page = anonymous.get("/command/110102001")
    assert page.status_code == 302 and "/login?next=" in page.headers["Location"]
    assert anonymous.get("/healthz").status_code in (200, 503)  # public


def test_login_form_with_csrf_and_rate_limit(connection: sa.Connection) -> None:
    app = create_app({"TESTING": True, "DB_CONNECTION": connection})  # CSRF on
    add_user(connection, "chief", "district")
    client = app.test_client()
    no_token = client.post("/login", data={"name": "chief", "password": "secret-password"})
    assert no_token.status_code == 400  # the form's CSRF token is missing
    form = client.get("/login").get_data(as_text=True)
    token = form.split('name="csrf_token" value="')[1].split('"')[0]
    wrong = client.post("/login", data={"name": "chief", "password": "x", "csrf_token": token})
    assert "用户名或密码错误" in wrong.get_data(as_text=True)
    ok = client.post(
        "/login", data={"name": "chief", "password": "secret-password", "csrf_token": token}
    )
    assert ok.status_code == 302
    with client.session_transaction() as sess:
        assert sess["sid"]
    # 10 failed logins of one address a minute (the wrong one above is one): the 11th is 429,
    # the right password included.
    limited = app.test_client()
    form = limited.get("/login").get_data(as_text=True)
    token = form.split('name="csrf_token" value="')[1].split('"')[0]
    statuses = [
        limited.post(
            "/login", data={"name": "chief", "password": "bad", "csrf_token": token}
        ).status_code
        for _ in range(11)
    ]
    assert statuses == [200] * 9 + [429] * 2
    refused = limited.post(
        "/login", data={"name": "chief", "password": "secret-password", "csrf_token": token}
    )
    assert refused.status_code == 429 and refused.mimetype == "text/html"  # the form's page
    assert "登录失败次数过多" in refused.get_data(as_text=True)


def test_bearer_tokens_and_the_audit_log(
    app: Flask, anonymous: FlaskClient, connection: sa.Connection
) -> None:
    uid = add_user(connection, "analyst-1", "analyst")
    value, digest = new_token()
    connection.execute(sa.insert(api_tokens).values(user_id=uid, token_sha256=digest))
    ok = anonymous.get("/api/streets", headers={"Authorization": f"Bearer {value}"})
    assert ok.status_code == 200 and "streets" in ok.get_json()
    entry = connection.execute(
        sa.text("select user_name, action, path from audit_log order by id desc limit 1")
    ).one()
    assert tuple(entry) == ("analyst-1", "token_use", "/api/streets")
    logged = connection.execute(sa.text("select count(*) from audit_log")).scalar_one()
    bad = anonymous.get("/api/streets", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    connection.execute(sa.update(api_tokens).values(revoked_at=sa.func.now()))
    revoked = anonymous.get("/api/streets", headers={"Authorization": f"Bearer {value}"})
    assert revoked.status_code == 401
    # Neither a wrong nor a revoked token is logged as a use.
    assert connection.execute(sa.text("select count(*) from audit_log")).scalar_one() == logged


def test_token_use_is_stamped_once_a_minute_and_never_waits(engine: sa.Engine) -> None:
    """Concurrent requests with one token must not queue on the token's row lock."""
    from app.auth import _from_token

    value, digest = new_token()
    with engine.begin() as conn:
        uid = add_user(conn, "stamp-analyst", "analyst")
        tid = conn.execute(
            sa.insert(api_tokens)
            .values(user_id=uid, token_sha256=digest)
            .returning(api_tokens.c.id)
        ).scalar_one()
    try:
        with engine.connect() as first, engine.connect() as second:
            first.begin()
            _from_token(first, value)  # stamps, and holds the row lock until it commits
            stamped = first.execute(
                sa.select(api_tokens.c.last_used_at).where(api_tokens.c.id == tid)
            ).scalar_one()
            assert stamped is not None
            second.begin()
            second.exec_driver_sql("set local lock_timeout = '1s'")
            assert _from_token(second, value).name == "stamp-analyst"  # no wait, no error
            second.rollback()
            first.commit()
            second.begin()
            _from_token(second, value)  # within the minute: no new stamp
            again = second.execute(
                sa.select(api_tokens.c.last_used_at).where(api_tokens.c.id == tid)
            ).scalar_one()
            assert again == stamped
            second.rollback()
    finally:
        with engine.begin() as conn:
            conn.execute(sa.delete(api_tokens).where(api_tokens.c.id == tid))
            conn.execute(sa.text("delete from users where name = 'stamp-analyst'"))


@pytest.mark.usefixtures("loaded")
def test_a_commander_sees_their_street_and_nothing_else(
    app: Flask, connection: sa.Connection
) -> None:
    client = _as(app, connection, "commander", A)
    since = "since=2026-11-01T00:00:00%2B08:00"
    own = client.get(f"/api/command/{A}/latest?{since}").get_json()
    assert sorted(f["properties"]["source_id"] for f in own["features"]) == ["A0", "A1", "A2"]
    other = client.get(f"/api/command/{B}/latest?{since}")
    assert other.status_code == 404 or other.get_json()["features"] == []
    summary = client.get(f"/api/command/{B}/summary")
    assert summary.status_code == 404 or summary.get_json()["open"] == 0
    grids = client.get("/api/layers/grids/geojson").get_json()
    assert {f["properties"]["street_code"] for f in grids["features"]} == {A}
    heat = client.get("/api/heat/service_requests?level=grid&since=2026-11-01&until=2026-11-30")
    assert heat.get_json()["total"] == 3
    assert client.get(f"/command/{B}").status_code == 404
    # The commander's zone (and role) never outlive their request on the same connection:
    # the owner sees every row again right after it.
    assert connection.execute(sa.text("select current_user")).scalar_one() != "blockdata_reader"
    assert connection.execute(sa.text("select count(*) from service_requests")).scalar_one() == 5
    # The district sees both streets through the same endpoints.
    chief = _as(app, connection, "district")
    all_heat = chief.get("/api/heat/service_requests?level=grid&since=2026-11-01&until=2026-11-30")
    assert all_heat.get_json()["total"] == 5


@pytest.mark.usefixtures("loaded")
def test_planners_read_only_their_layers(app: Flask, connection: sa.Connection) -> None:
    planner = _as(app, connection, "planner")
    assert planner.get("/api/planner").status_code == 200
    assert planner.get("/api/layers/renovation_projects/geojson").status_code == 200
    for url in [
        "/api/heat/service_requests",
        "/api/streets",
        "/api/layers/service_requests/geojson",
    ]:
        response = planner.get(url)
        assert response.status_code == 403, url
        assert response.get_json()["error"] == "forbidden"


def test_every_street_table_has_row_level_security(connection: sa.Connection) -> None:
    rows = connection.exec_driver_sql(
        """select c.relname, c.relrowsecurity from pg_class c
           join pg_attribute a on a.attrelid = c.oid and a.attname = 'street_code'
           join pg_namespace n on n.oid = c.relnamespace
           where n.nspname = 'public' and c.relkind = 'r'
             and has_table_privilege('blockdata_reader', c.oid, 'SELECT')"""
    ).all()  # (a table the reader may not read at all, such as tile_changes, needs no policy)
    # the scorecard; accounts are private; unit names are not secret (migration 0015); the
    # gazetteer is the district's geography as its signs print it, read whole so that a
    # commander's geocoder can tell an address lies in another street (migration 0024)
    gazetteer = {"gazetteer_names", "gazetteer_roads", "gazetteer_addresses", "gazetteer_places"}
    public = {"request_street_daily", "users", "units"} | gazetteer
    missing = sorted(name for name, rls in rows if not rls and name not in public)
    assert missing == []
