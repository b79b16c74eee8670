"""The department role's account (承办单位, migration 0018): `users add --unit` and its
refusals, `users list`, the users table's checks, and the unit that the login, session and
token functions return and that scopes a request."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask

from app import auth
from app.cli import main
from app.db import make_engine
from layers.accounts import api_tokens
from tests.helpers import add_unit, add_user

ACTIVE, INACTIVE = "district-cli-active", "district-cli-inactive"
PASSWORD = "secret-password"


def _cli(database_url: str, *args: str) -> Any:
    return CliRunner().invoke(main, list(args), env={"DATABASE_URL": database_url})


def test_users_add_binds_a_department_to_an_active_unit(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.begin() as conn:
        add_unit(conn, ACTIVE)
        add_unit(conn, INACTIVE, active=False)
    try:
        made = _cli(database_url, "users", "add", "cli-dept", "--role", "department",
                    "--unit", ACTIVE, "--password", PASSWORD)  # fmt: skip
        assert made.exit_code == 0, made.output
        refusals = [
            (["--role", "department"], "--unit is required"),
            (["--role", "district", "--unit", ACTIVE], "--unit is required"),
            (["--role", "commander", "--street", "110102001", "--unit", ACTIVE], "--unit"),
            (["--role", "department", "--unit", "district-nosuch"], "no such unit"),
            (["--role", "department", "--unit", INACTIVE], "inactive unit"),
        ]
        for i, (args, message) in enumerate(refusals):
            result = _cli(database_url, "users", "add", f"cli-bad-{i}", *args,
                          "--password", PASSWORD)  # fmt: skip
            assert result.exit_code == 2, (args, result.output)
            assert message in result.output, (args, result.output)
        listed = _cli(database_url, "users", "list")
        line = next(x for x in listed.output.splitlines() if x.startswith("cli-dept "))
        assert line.split()[1:4] == ["department", "-", ACTIVE]
        rows = json.loads(_cli(database_url, "users", "list", "--json").output)
        assert [(r["name"], r["unit_code"]) for r in rows if r["name"].startswith("cli-")] == [
            ("cli-dept", ACTIVE)
        ]
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("delete from users where name like 'cli-%'"))
            conn.execute(
                sa.text("delete from units where code in (:a, :b)"),
                {"a": ACTIVE, "b": INACTIVE},
            )
        engine.dispose()


def test_the_users_table_binds_the_department_and_only_it_to_a_unit(
    connection: sa.Connection,
) -> None:
    unit = add_unit(connection)
    for name, role, street, with_unit in [
        ("no-unit", "department", None, None),
        ("district-unit", "district", None, unit),
        ("commander-unit", "commander", "110102001", unit),
    ]:
        connection.exec_driver_sql("savepoint u")
        with pytest.raises(sa.exc.IntegrityError):
            add_user(connection, name, role, street, with_unit)
        connection.exec_driver_sql("rollback to savepoint u")
    connection.exec_driver_sql("savepoint u")
    with pytest.raises(sa.exc.IntegrityError, match="fk_users_unit_code_units"):
        add_user(connection, "ghost", "department", unit="district-ghost")
    connection.exec_driver_sql("rollback to savepoint u")


def test_login_session_and_token_return_the_unit(connection: sa.Connection) -> None:
    unit = add_unit(connection)
    dept = add_user(connection, "fn-dept", "department", unit=unit)
    add_user(connection, "fn-district", "district")
    now = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    for name, expected in (("fn-dept", unit), ("fn-district", None)):
        challenge = connection.execute(
            sa.text("select * from auth_login_challenge(:n, '127.0.0.1')"), {"n": name}
        ).one()
        digest = auth.password_digest(challenge.method, challenge.salt, PASSWORD)
        _, sid_digest = auth.new_session_id()
        verified = connection.execute(
            sa.text(
                "select role, unit_code from auth_login_verify(:a, :n, :d, :s, :now, '127.0.0.1')"
            ),
            {"a": challenge.attempt_id, "n": name, "d": digest, "s": sid_digest, "now": now},
        ).one()
        assert verified.unit_code == expected, name
        found = connection.execute(
            sa.text(
                "select name, unit_code from auth_session(:s, :now, interval '1 hour',"
                " interval '1 day')"
            ),
            {"s": sid_digest, "now": now},
        ).one()
        assert tuple(found) == (name, expected)
    _, token_digest = auth.new_token()
    connection.execute(sa.insert(api_tokens).values(user_id=dept, token_sha256=token_digest))
    used = connection.execute(
        sa.text("select name, role, unit_code from auth_token_use(:d, '/x', '127.0.0.1')"),
        {"d": token_digest},
    ).one()
    assert tuple(used) == ("fn-dept", "department", unit)


def test_a_department_request_is_scoped_to_its_unit(app: Flask, connection: sa.Connection) -> None:
    unit = add_unit(connection)
    uid = add_user(connection, "req-dept", "department", unit=unit)
    token, digest = auth.new_token()
    connection.execute(sa.insert(api_tokens).values(user_id=uid, token_sha256=digest))
    with app.test_request_context(headers={"Authorization": f"Bearer {token}"}):
        principal = auth._identify()
        assert principal is not None
        assert (principal.role, principal.unit, principal.street_code) == (
            "department",
            unit,
            None,
        )
        assert principal.zone == "-"
        principal.scope()
        row = connection.execute(
            sa.text(
                "select current_user, current_setting('blockdata.zone'),"
                " current_setting('blockdata.unit')"
            )
        ).one()
        assert tuple(row) == ("blockdata_reader", "-", unit)
    # Back to the server's role, the settings emptied (a shared connection).
    row = connection.execute(
        sa.text("select current_setting('blockdata.zone'), current_setting('blockdata.unit')")
    ).one()
    assert tuple(row) == ("", "")
