"""Sessions that end, tokens that expire, cookies that cannot be forged or leak."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from flask.testing import FlaskClient

from app import create_app
from app.auth import new_token
from app.cli import main
from app.config import Settings, from_env
from layers.accounts import api_tokens, sessions, users
from tests.helpers import add_user, login

PASSWORD = "secret-password"  # add_user's
T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


def _copy(cookie_from: FlaskClient, to: FlaskClient) -> FlaskClient:
    """`to` with the session cookie of `cookie_from` (what a thief would copy)."""
    cookie = cookie_from.get_cookie("session")
    assert cookie is not None
    to.set_cookie("session", cookie.value)
    return to


def _form_login(client: FlaskClient, name: str, password: str = PASSWORD) -> Any:
    return client.post("/login", data={"name": name, "password": password})


# --- the key that signs the cookies ------------------------------------------------------


def _forged(secret: str, payload: dict[str, object]) -> str:
    """A session cookie signed the way Flask signs it, with `secret`."""
    forger = Flask("forger")
    forger.secret_key = secret
    signer = SecureCookieSessionInterface().get_signing_serializer(forger)
    assert signer is not None
    return str(signer.dumps(payload))


def test_a_cookie_signed_with_the_old_development_key_is_refused(
    connection: sa.Connection, tmp_path: Path
) -> None:
    """No BLOCKDATA_SECRET_KEY: the key is made once for this installation (var/secret_key,
    0600), never the old public constant, and reused by every later app."""
    settings = from_env({"BLOCKDATA_VAR": str(tmp_path)})
    app = create_app({"TESTING": True, "DB_CONNECTION": connection}, settings=settings)
    uid = add_user(connection, "forged-district")
    client = app.test_client()
    for payload in ({"uid": uid}, {"uid": uid, "sid": "x"}):
        client.set_cookie("session", _forged("dev-only-secret", payload))
        assert client.get("/api/streets").status_code == 401
    key_file = tmp_path / "secret_key"
    key = key_file.read_text().strip()
    assert len(key) >= 48 and key != "dev-only-secret"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = create_app({"TESTING": True, "DB_CONNECTION": connection}, settings=settings)
    assert again.secret_key == app.secret_key == key
    # A cookie signed with the installation's key is still only as good as its session.
    client.set_cookie("session", _forged(key, {"uid": uid}))
    assert client.get("/api/streets").status_code == 401


def test_the_secret_key_setting_wins_and_another_installation_gets_another_key(
    tmp_path: Path,
) -> None:
    chosen = from_env({"BLOCKDATA_VAR": str(tmp_path / "a"), "BLOCKDATA_SECRET_KEY": "k" * 40})
    assert create_app(settings=chosen).secret_key == "k" * 40
    assert not (tmp_path / "a" / "secret_key").exists()
    one = create_app(settings=Settings(var_dir=tmp_path / "one")).secret_key
    two = create_app(settings=Settings(var_dir=tmp_path / "two")).secret_key
    assert one != two


# --- sessions ------------------------------------------------------------------------------


@pytest.fixture
def clocked(connection: sa.Connection) -> Iterator[tuple[Flask, list[dt.datetime]]]:
    """An app whose session clock the test moves (no sleeping)."""
    clock = [T0]
    app = create_app(
        {
            "TESTING": True,
            "DB_CONNECTION": connection,
            "WTF_CSRF_ENABLED": False,
            "AUTH_CLOCK": lambda: clock[0],
        }
    )
    yield app, clock


def test_a_copied_cookie_is_refused_after_logout(app: Flask, connection: sa.Connection) -> None:
    add_user(connection, "leaver")
    browser = app.test_client()
    assert _form_login(browser, "leaver").status_code == 302
    thief = _copy(browser, app.test_client())
    assert thief.get("/api/streets").status_code == 200
    assert browser.post("/logout").status_code == 302
    assert thief.get("/api/streets").status_code == 401
    assert browser.get("/api/streets").status_code == 401
    ended = connection.execute(sa.select(sessions.c.ended_at)).scalars().all()
    assert len(ended) == 1 and ended[0] is not None


def test_idle_and_absolute_expiry(clocked: tuple[Flask, list[dt.datetime]]) -> None:
    """Defaults: 12 hours without a request, 7 days after the login."""
    app, clock = clocked
    connection = app.config["DB_CONNECTION"]
    uid = add_user(connection, "sleeper")
    idle = login(app.test_client(), uid)
    clock[0] = T0 + dt.timedelta(hours=11, minutes=59)
    assert idle.get("/api/streets").status_code == 200  # seen: the idle time starts again
    clock[0] += dt.timedelta(hours=12, minutes=1)
    assert idle.get("/api/streets").status_code == 401

    clock[0] = T0
    busy = login(app.test_client(), uid)
    seen = []
    while clock[0] < T0 + dt.timedelta(days=7) - dt.timedelta(hours=11):
        clock[0] += dt.timedelta(hours=11)
        seen.append(busy.get("/api/streets").status_code)
    assert set(seen) == {200} and len(seen) == 15
    clock[0] = T0 + dt.timedelta(days=7, minutes=1)  # last seen 10 hours ago, but 7 days old
    assert busy.get("/api/streets").status_code == 401


def test_the_session_lifetimes_are_settings(connection: sa.Connection, tmp_path: Path) -> None:
    settings = from_env(
        {
            "BLOCKDATA_VAR": str(tmp_path),
            "BLOCKDATA_SESSION_IDLE_MINUTES": "30",
            "BLOCKDATA_SESSION_LIFETIME_HOURS": "2",
        }
    )
    assert settings.session_idle == dt.timedelta(minutes=30)
    assert settings.session_lifetime == dt.timedelta(hours=2)
    clock = [T0]
    app = create_app(
        {"TESTING": True, "DB_CONNECTION": connection, "AUTH_CLOCK": lambda: clock[0]},
        settings=settings,
    )
    client = login(app.test_client(), add_user(connection, "brief"))
    clock[0] += dt.timedelta(minutes=29)
    assert client.get("/api/streets").status_code == 200
    clock[0] += dt.timedelta(minutes=31)
    assert client.get("/api/streets").status_code == 401


@pytest.mark.parametrize(
    "value", ["0", "-5", "twelve", "1.5"], ids=["zero", "negative", "word", "fraction"]
)
def test_bad_session_settings_are_named(value: str) -> None:
    from app.config import ConfigError

    with pytest.raises(ConfigError, match="BLOCKDATA_SESSION_IDLE_MINUTES"):
        from_env({"BLOCKDATA_SESSION_IDLE_MINUTES": value})


def test_cookie_flags(app: Flask, connection: sa.Connection, tmp_path: Path) -> None:
    add_user(connection, "flags")
    plain = _form_login(app.test_client(), "flags").headers["Set-Cookie"]
    assert "HttpOnly" in plain and "SameSite=Lax" in plain and "Secure" not in plain
    https = app.test_client().post(
        "/login", data={"name": "flags", "password": PASSWORD}, base_url="https://localhost"
    )
    assert "Secure" in https.headers["Set-Cookie"]
    forced = create_app(
        {"TESTING": True, "DB_CONNECTION": connection, "WTF_CSRF_ENABLED": False},
        settings=from_env({"BLOCKDATA_VAR": str(tmp_path), "BLOCKDATA_SECURE_COOKIES": "1"}),
    )
    assert "Secure" in _form_login(forced.test_client(), "flags").headers["Set-Cookie"]


def test_each_login_gets_a_new_session_id(app: Flask, connection: sa.Connection) -> None:
    """A session id planted before the login (fixation) is not the one after it."""
    add_user(connection, "fixed")
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["sid"] = "planted"
    _form_login(client, "fixed")
    with client.session_transaction() as sess:
        sid = sess["sid"]
    assert sid != "planted"
    stored = connection.execute(sa.select(sessions.c.sid_sha256)).scalars().all()
    assert stored == [hashlib.sha256(sid.encode()).hexdigest()]  # only the digest is kept


# --- tokens --------------------------------------------------------------------------------


def test_an_expired_and_a_revoked_token_get_401(
    anonymous: FlaskClient, connection: sa.Connection
) -> None:
    uid = add_user(connection, "token-holder", "analyst")
    live, expired, revoked = new_token(), new_token(), new_token()
    for values in (
        {"token_sha256": live[1]},
        {"token_sha256": expired[1], "expires_at": sa.func.now() - dt.timedelta(seconds=1)},
        {"token_sha256": revoked[1], "revoked_at": sa.func.now()},
    ):
        connection.execute(sa.insert(api_tokens).values(user_id=uid, **values))

    def status(value: str) -> int:
        headers = {"Authorization": f"Bearer {value}"}
        return anonymous.get("/api/streets", headers=headers).status_code

    assert status(live[0]) == 200
    assert status(expired[0]) == 401
    assert status(revoked[0]) == 401
    # By default a token lives 90 days.
    made, expires = connection.execute(
        sa.select(api_tokens.c.created_at, api_tokens.c.expires_at).where(
            api_tokens.c.token_sha256 == live[1]
        )
    ).one()
    assert expires - made == dt.timedelta(days=90)


# --- the CLI ends sessions and manages tokens (committed: the CLI has its own connection) ---


@pytest.fixture
def committed_user(engine: sa.Engine) -> Iterator[tuple[str, int]]:
    from app.auth import hash_password

    name = f"cli-user-{os.getpid()}"
    with engine.begin() as conn:
        uid = conn.execute(
            sa.insert(users)
            .values(name=name, role="analyst", password_hash=hash_password(PASSWORD))
            .returning(users.c.id)
        ).scalar_one()
    yield name, uid
    with engine.begin() as conn:
        conn.execute(sa.delete(users).where(users.c.id == uid))  # sessions, tokens cascade
        conn.execute(sa.text("delete from login_attempts where name = :n"), {"n": name})


@pytest.fixture
def web_app(web_url: str) -> Iterator[Flask]:
    """The server as it runs: its own engine, logged in as `blockdata_web`."""
    app = create_app({"DATABASE_URL": web_url, "TESTING": True, "WTF_CSRF_ENABLED": False})
    yield app
    app.extensions["blockdata.engine"].dispose()


def _cli(database_url: str, *args: str) -> Any:
    result = CliRunner().invoke(main, list(args), env={"DATABASE_URL": database_url})
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize("command", ["passwd", "disable"])
def test_a_password_change_or_disabling_ends_every_session(
    web_app: Flask, committed_user: tuple[str, int], database_url: str, command: str
) -> None:
    name, _ = committed_user
    first, second = web_app.test_client(), web_app.test_client()
    for client in (first, second):
        assert _form_login(client, name).status_code == 302
    copies = [_copy(c, web_app.test_client()) for c in (first, second)]
    assert all(c.get("/api/streets").status_code == 200 for c in copies)
    args = ["users", command, name] + (
        ["--password", "another-password"] if command == "passwd" else []
    )
    out = _cli(database_url, *args).output
    if command == "passwd":
        assert "2 session(s) ended" in out
    assert [c.get("/api/streets").status_code for c in (first, second, *copies)] == [401] * 4
    if command == "passwd":
        again = web_app.test_client()
        assert _form_login(again, name, "another-password").status_code == 302
        assert again.get("/api/streets").status_code == 200


def test_token_cli_expiry_listing_and_revocation(
    web_app: Flask, committed_user: tuple[str, int], database_url: str
) -> None:
    name, _ = committed_user
    client = web_app.test_client()
    made = _cli(database_url, "users", "token", name, "--days", "5").output.splitlines()
    value = made[-1]
    assert value.startswith("bd_")
    tid = int(made[0].split()[2])
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=5)
    assert f"expires {expires.astimezone(dt.timezone(dt.timedelta(hours=8))):%Y-%m-%d}" in made[0]
    other = _cli(database_url, "users", "token", name).output.splitlines()[-1]
    bearer = {"Authorization": f"Bearer {value}"}
    assert client.get("/api/streets", headers=bearer).status_code == 200

    listing = _cli(database_url, "users", "tokens", name).output
    assert value not in listing and other not in listing
    rows = [line.split() for line in listing.splitlines()[1:]]
    assert len(rows) == 2 and tid in [int(r[0]) for r in rows]
    assert rows[0][-1] == "-"  # not revoked
    listed = _cli(database_url, "users", "tokens", name, "--json").output
    assert value not in listed and "token_sha256" not in listed

    _cli(database_url, "users", "token", "--revoke", str(tid))
    assert client.get("/api/streets", headers=bearer).status_code == 401
    other_bearer = {"Authorization": f"Bearer {other}"}
    assert client.get("/api/streets", headers=other_bearer).status_code == 200
    assert "1 token(s)" in _cli(database_url, "users", "token", "--revoke-all", name).output
    assert client.get("/api/streets", headers=other_bearer).status_code == 401
    revoked = _cli(database_url, "users", "tokens", name).output.splitlines()[1:]
    assert all(line.split()[-1] != "-" for line in revoked)


def test_token_cli_refuses_ambiguous_or_unknown_requests(database_url: str) -> None:
    runner = CliRunner()
    env = {"DATABASE_URL": database_url}
    assert runner.invoke(main, ["users", "token"], env=env).exit_code == 2
    both = runner.invoke(main, ["users", "token", "x", "--revoke", "1"], env=env)
    assert both.exit_code == 2
    missing = runner.invoke(main, ["users", "token", "--revoke", "999999"], env=env)
    assert missing.exit_code == 1 and "999999" in missing.output
    too_long = runner.invoke(main, ["users", "token", "x", "--days", "0"], env=env)
    assert too_long.exit_code == 2
