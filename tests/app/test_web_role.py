"""The map server's database role, the shared login throttle, and input refused before the
database sees it."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import make_url
from werkzeug.security import check_password_hash, generate_password_hash

from app import create_app
from app.auth import new_token, password_digest
from app.config import WEB_ROLE, from_env
from layers.accounts import api_tokens, users
from tests.helpers import add_user

PASSWORD = "secret-password"


@pytest.fixture
def web_app(web_url: str) -> Iterator[Flask]:
    """The server as it runs: its own engine, logged in as `blockdata_web`."""
    app = create_app({"DATABASE_URL": web_url, "TESTING": True, "WTF_CSRF_ENABLED": False})
    yield app
    app.extensions["blockdata.engine"].dispose()


def _refused(conn: sa.Connection, statement: str) -> bool:
    """Whether `statement` fails for lack of privilege (in a savepoint, so the connection
    goes on)."""
    try:
        with conn.begin_nested():
            conn.exec_driver_sql(statement)
    except sa.exc.DBAPIError as exc:
        return getattr(exc.orig, "sqlstate", None) == "42501"
    return False


def test_the_server_connects_as_a_role_with_the_readers_rights_only(
    web_app: Flask, database_url: str
) -> None:
    owner = make_url(database_url).username
    engine = web_app.extensions["blockdata.engine"]
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "select current_user, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls"
                " from pg_roles where rolname = current_user"
            )
        ).one()
        assert tuple(row) == (WEB_ROLE, False, False, False, False)
        assert (
            conn.execute(
                sa.text("select pg_has_role(current_user, :owner, 'MEMBER')"), {"owner": owner}
            ).scalar_one()
            is False
        )
        conn.exec_driver_sql("select set_config('role', 'blockdata_reader', true)")
        conn.exec_driver_sql("reset role")
        for statement in [
            "select * from users",
            "select password_hash from users",
            "select * from api_tokens",
            "select * from sessions",
            "select * from login_attempts",
            "select * from login_decoy",
            "insert into streets (code, name) values ('x', 'x')",
            "delete from service_requests",
            "update audit_log set path = ''",
            "delete from audit_log",
            "create table mine (x int)",
            "select tile_changes_renew('streets')",
            f'set role "{owner}"',
            # The aggregates it may rewrite row by row (an intake's refresh), never reshape.
            "truncate request_daily",
            "drop table request_daily",
            "alter table request_open disable row level security",
            "drop index ix_request_daily_day_street_code",
            "create index mine on request_daily (day)",
            "create table etl_build.mine (x int)",
        ]:
            assert _refused(conn, statement), statement
        # No way round through the reader either.
        conn.exec_driver_sql("set role blockdata_reader")
        assert _refused(conn, "select password_hash from users")
        assert _refused(conn, f'set role "{owner}"')
        conn.rollback()


def test_the_app_builds_its_engine_from_the_web_url(tmp_path: Path) -> None:
    """No DATABASE_URL in the app's config: the settings' web URL, never the owner's."""
    settings = from_env({"BLOCKDATA_VAR": str(tmp_path)})  # no web login made here
    unconfigured = create_app(settings=settings)
    assert unconfigured.extensions["blockdata.engine"] is None
    assert "blockdata db upgrade" in unconfigured.config["DB_ERROR"]
    derived = from_env(
        {
            "BLOCKDATA_VAR": str(tmp_path),
            "DATABASE_URL": "postgresql://owner:pw@db.example:5433/city",
            "BLOCKDATA_WEB_DATABASE_URL": "postgresql://web:pw2@db.example:5433/city",
        }
    )
    engine = create_app(settings=derived).extensions["blockdata.engine"]
    assert (engine.url.username, engine.url.database) == ("web", "city")
    engine.dispose()


def test_the_web_password_is_kept_private_and_reused(tmp_path: Path, database_url: str) -> None:
    from app.config import WEB_ROLE_FILE, resolve_web_database_url

    settings = from_env({"BLOCKDATA_VAR": str(tmp_path), "DATABASE_URL": database_url})
    from app.config import web_role_password

    made = web_role_password(settings, create=True)
    path = tmp_path / WEB_ROLE_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert web_role_password(settings) == made
    url = make_url(resolve_web_database_url(settings))
    owner = make_url(database_url)
    assert (url.username, url.password) == (WEB_ROLE, made)
    assert (url.host, url.port, url.database) == (owner.host, owner.port, owner.database)


# --- the login throttle, shared through the database ------------------------------------


@pytest.fixture
def committed_user(engine: sa.Engine) -> Iterator[str]:
    name = f"throttled-{os.getpid()}"
    with engine.begin() as conn:
        uid = conn.execute(
            sa.insert(users)
            .values(name=name, role="analyst", password_hash=generate_password_hash(PASSWORD))
            .returning(users.c.id)
        ).scalar_one()
    yield name
    with engine.begin() as conn:
        conn.execute(sa.delete(users).where(users.c.id == uid))
        conn.execute(
            sa.text("delete from login_attempts where name = :n or remote like '192.0.2.%'"),
            {"n": name},
        )


def _post(app: Flask, name: str, password: str, remote: str) -> int:
    client = app.test_client()
    data = {"name": name, "password": password}
    return client.post("/login", data=data, environ_base={"REMOTE_ADDR": remote}).status_code


def test_two_servers_share_the_throttle(web_url: str, committed_user: str) -> None:
    """Two apps with engines of their own (two processes' worth): 10 failures a minute for
    one address between them, not 10 each."""
    apps = [
        create_app({"DATABASE_URL": web_url, "TESTING": True, "WTF_CSRF_ENABLED": False})
        for _ in range(2)
    ]
    try:
        statuses = [_post(apps[i % 2], committed_user, "wrong", "192.0.2.1") for i in range(14)]
        assert statuses == [200] * 10 + [429] * 4
        assert _post(apps[0], committed_user, PASSWORD, "192.0.2.1") == 429
        # Another address may still log in (the name has 10 failures in 15 minutes: at its
        # limit too, so a new address is refused for this name as well).
        assert _post(apps[1], committed_user, PASSWORD, "192.0.2.2") == 429
    finally:
        for app in apps:
            app.extensions["blockdata.engine"].dispose()


def test_one_name_is_throttled_whatever_the_address(web_url: str, committed_user: str) -> None:
    app = create_app({"DATABASE_URL": web_url, "TESTING": True, "WTF_CSRF_ENABLED": False})
    try:
        statuses = [_post(app, committed_user, "wrong", f"192.0.2.{10 + i}") for i in range(12)]
        assert statuses == [200] * 10 + [429] * 2
        # The address limit is its own: an address with no failures may try another name.
        assert _post(app, "nobody-" + committed_user, "x", "192.0.2.99") == 200
    finally:
        app.extensions["blockdata.engine"].dispose()


def test_a_right_password_is_not_counted(web_url: str, committed_user: str) -> None:
    app = create_app({"DATABASE_URL": web_url, "TESTING": True, "WTF_CSRF_ENABLED": False})
    try:
        statuses = [_post(app, committed_user, PASSWORD, "192.0.2.50") for _ in range(12)]
        assert statuses == [302] * 12
    finally:
        app.extensions["blockdata.engine"].dispose()


# --- timing: an unknown name costs the same hashing --------------------------------------


def test_an_unknown_user_costs_the_same_password_hashing(
    app: Flask, connection: sa.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_user(connection, "known")
    calls: list[tuple[int, int, int]] = []
    real = hashlib.scrypt

    def counted(password: bytes, *, salt: bytes, n: int, r: int, p: int, **kw: Any) -> bytes:
        calls.append((n, r, p))
        return real(password, salt=salt, n=n, r=r, p=p, **kw)

    monkeypatch.setattr(hashlib, "scrypt", counted)
    client = app.test_client()
    for name in ("known", "unknown-user", "known"):
        calls.clear()
        response = client.post("/login", data={"name": name, "password": "wrong"})
        assert "用户名或密码错误" in response.get_data(as_text=True)
        assert calls == [(2**15, 8, 1)], name  # one scrypt of werkzeug's default cost


@pytest.mark.parametrize("method", ["scrypt", "pbkdf2:sha256:1000", "pbkdf2"])
def test_the_digest_is_werkzeugs(method: str) -> None:
    stored = generate_password_hash("correct horse", method=method)
    kind, salt, digest = stored.split("$")
    assert password_digest(kind, salt, "correct horse") == digest
    assert check_password_hash(stored, "correct horse")
    assert password_digest(kind, salt, "wrong horse") != digest


def test_a_disabled_user_cannot_log_in(app: Flask, connection: sa.Connection) -> None:
    uid = add_user(connection, "gone")
    connection.execute(sa.update(users).where(users.c.id == uid).values(disabled=True))
    response = app.test_client().post("/login", data={"name": "gone", "password": PASSWORD})
    assert response.status_code == 200 and "用户名或密码错误" in response.get_data(as_text=True)


# --- NUL characters and deep JSON: 400 before the database -------------------------------


@pytest.fixture
def bearer(connection: sa.Connection) -> dict[str, str]:
    uid = add_user(connection, "nul-district")
    value, digest = new_token()
    connection.execute(sa.insert(api_tokens).values(user_id=uid, token_sha256=digest))
    return {"Authorization": f"Bearer {value}"}


@pytest.mark.parametrize(
    "url",
    [
        "/api/layers/streets%00/geojson",
        "/api/streets?month=2026-11%00",
        "/api/streets?a%00=1",
        "/open311/v2/requests.json?status=open%00",
        "/nowhere%00",
    ],
)
def test_a_nul_in_the_path_or_query_is_400(
    anonymous: FlaskClient, bearer: dict[str, str], connection: sa.Connection, url: str
) -> None:
    logged = connection.execute(sa.text("select count(*) from audit_log")).scalar_one()
    response = anonymous.get(url, headers=bearer)
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    # APIs answer JSON; a page (no such URL here) the Chinese HTML error page: both name it.
    api = url.startswith(("/api/", "/open311/"))
    assert response.mimetype == ("application/json" if api else "text/html")
    assert "NUL" in response.get_data(as_text=True)
    assert connection.execute(sa.text("select count(*) from audit_log")).scalar_one() == logged


def test_a_nul_in_a_form_value_is_400(anonymous: FlaskClient, bearer: dict[str, str]) -> None:
    login = anonymous.post("/login", data={"name": "a\x00b", "password": "x"})
    assert login.status_code == 400 and login.mimetype == "text/html"  # a page's error page
    assert "NUL" in login.get_data(as_text=True)
    post = anonymous.post(
        "/open311/v2/requests.json",
        data={"service_code": "x", "description": "a\x00b"},
        headers=bearer,
    )
    assert post.status_code == 400


@pytest.mark.parametrize("with_header", [True, False], ids=["bearer", "api_key in body"])
def test_deeply_nested_json_to_open311_is_400(
    anonymous: FlaskClient, bearer: dict[str, str], with_header: bool
) -> None:
    depth = 100_000
    body = '{"api_key": "x", "a": ' + "[" * depth + "]" * depth + "}"
    response = anonymous.post(
        "/open311/v2/requests.json",
        data=body,
        content_type="application/json",
        headers=bearer if with_header else {},
    )
    assert response.status_code == 400
    assert "nested" in response.get_data(as_text=True)
