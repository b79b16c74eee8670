"""`blockdata users` and `blockdata audit`: accounts, API tokens, the audit log."""

from __future__ import annotations

import json

import click
import sqlalchemy as sa

from layers.accounts import ROLES, api_tokens, audit_log, users


def _engine() -> sa.Engine:
    from app.db import engine_from_env

    return engine_from_env()


def _user_id(conn: sa.Connection, name: str) -> int:
    uid = conn.execute(sa.select(users.c.id).where(users.c.name == name)).scalar()
    if uid is None:
        raise click.ClickException(f"没有这个用户 no such user: {name!r}")
    return int(uid)


@click.group("users")
def users_group() -> None:
    """Accounts: district, commander (one street), analyst, planner, clerk."""


@users_group.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--street", help="The commander's street code (9 digits).")
@click.option("--password", help="Asked for when not given.")
def add(name: str, role: str, street: str | None, password: str | None) -> None:
    """Create user NAME."""
    from app.auth import hash_password

    if (role == "commander") != (street is not None):
        raise click.UsageError("--street is required for a commander, and only for one")
    if password is None:
        password = click.prompt("密码 password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise click.BadParameter("at least 8 characters", param_hint="--password")
    with _engine().begin() as conn:
        if street is not None:
            known = conn.exec_driver_sql(
                "select 1 from streets where code = %(c)s", {"c": street}
            ).first()
            if known is None:
                raise click.BadParameter(f"no such street: {street!r}", param_hint="--street")
        if conn.execute(sa.select(users.c.id).where(users.c.name == name)).first():
            raise click.ClickException(f"用户已存在 user exists: {name!r}")
        conn.execute(
            sa.insert(users).values(
                name=name, role=role, street_code=street, password_hash=hash_password(password)
            )
        )
    click.echo(f"已创建 created {name} ({role}{' ' + street if street else ''})")


@users_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_(as_json: bool) -> None:
    """List the users."""
    with _engine().connect() as conn:
        rows = [
            dict(r._mapping)
            for r in conn.execute(
                sa.select(
                    users.c.name,
                    users.c.role,
                    users.c.street_code,
                    users.c.disabled,
                    users.c.created_at,
                ).order_by(users.c.name)
            )
        ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, default=str, indent=2))
        return
    for r in rows:
        state = "停用 disabled" if r["disabled"] else ""
        click.echo(f"{r['name']:<24} {r['role']:<10} {r['street_code'] or '-':<10} {state}")


@users_group.command("passwd")
@click.argument("name")
@click.option("--password", help="Asked for when not given.")
def passwd(name: str, password: str | None) -> None:
    """Set NAME's password."""
    from app.auth import hash_password

    if password is None:
        password = click.prompt("新密码 new password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise click.BadParameter("at least 8 characters", param_hint="--password")
    with _engine().begin() as conn:
        uid = _user_id(conn, name)
        conn.execute(
            sa.update(users).where(users.c.id == uid).values(password_hash=hash_password(password))
        )
    click.echo(f"已修改 password changed for {name}")


@users_group.command("token")
@click.argument("name")
def token(name: str) -> None:
    """Create an API token for NAME; it is printed once, alone on the last line."""
    from app.auth import new_token

    value, digest = new_token()
    with _engine().begin() as conn:
        uid = _user_id(conn, name)
        conn.execute(sa.insert(api_tokens).values(user_id=uid, token_sha256=digest))
    click.echo(f"API token for {name} (Authorization: Bearer …), shown only now:")
    click.echo(value)


@users_group.command("disable")
@click.argument("name")
def disable(name: str) -> None:
    """Disable NAME: their sessions and tokens stop working at once."""
    with _engine().begin() as conn:
        uid = _user_id(conn, name)
        conn.execute(sa.update(users).where(users.c.id == uid).values(disabled=True))
        conn.execute(
            sa.update(api_tokens)
            .where(api_tokens.c.user_id == uid, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=sa.func.now())
        )
    click.echo(f"已停用 disabled {name}")


@click.command("audit")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--user", "user_name", help="Only this user's entries.")
@click.option("--json", "as_json", is_flag=True)
def audit_cmd(limit: int, user_name: str | None, as_json: bool) -> None:
    """Show the audit log: exports and token uses (who, when, what filter, how many rows)."""
    query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if user_name:
        query = query.where(audit_log.c.user_name == user_name)
    with _engine().connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for r in rows:
        if as_json:
            click.echo(json.dumps(r, ensure_ascii=False, default=str))
        else:
            filters = json.dumps(r["filters"], ensure_ascii=False) if r["filters"] else ""
            rows_n = "" if r["rows"] is None else f" rows={r['rows']}"
            click.echo(
                f"{r['at']:%Y-%m-%d %H:%M:%S} {r['user_name'] or '-':<16} {r['action']:<12} "
                f"{r['path'] or ''} {filters}{rows_n}"
            )
