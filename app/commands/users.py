"""`blockdata users` and `blockdata audit`: accounts, API tokens, the audit log."""

from __future__ import annotations

import datetime as dt
import json
import re

import click
import sqlalchemy as sa

from layers.accounts import ROLES, UNIT_ROLES, api_tokens, audit_log, sessions, users
from layers.queries.access import STREET_ROLES  # bound to one street (migration 0019)
from layers.units import units

TOKEN_DAYS = 90  # a token's default lifetime
# What must not reach a terminal as it is: C0 and C1 controls, DEL, and the bidirectional
# formatting characters (they reorder what a line shows: "Trojan Source").
UNSAFE = re.compile(r"[\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
UNSAFE_JSON = re.compile(r"[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with every control or bidi character (and the backslash) escaped visibly."""

    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        if code == 0x5C:
            return "\\\\"
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return UNSAFE.sub(escape, text)


def printable_json(value: object) -> str:
    """One JSON line whose control and bidi characters are all \\u escapes."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return UNSAFE_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _end_sessions(conn: sa.Connection, uid: int) -> int:
    """End every live session of user `uid`; how many."""
    result = conn.execute(
        sa.update(sessions)
        .where(sessions.c.user_id == uid, sessions.c.ended_at.is_(None))
        .values(ended_at=sa.func.now())
    )
    return int(result.rowcount)


def _engine() -> sa.Engine:
    from app.db import engine_from_env

    return engine_from_env(poolclass=sa.pool.NullPool)  # one command: no pool to leave open


def _user_id(conn: sa.Connection, name: str) -> int:
    uid = conn.execute(sa.select(users.c.id).where(users.c.name == name)).scalar()
    if uid is None:
        raise click.ClickException(f"没有这个用户 no such user: {name!r}")
    return int(uid)


@click.group("users")
def users_group() -> None:
    """Accounts: district, commander (one street), analyst, planner, clerk (one street's
    centre), department (承办单位: one unit), grid_officer (网格员: one street), assessor
    (考核部门: one district department)."""


def _check_street(conn: sa.Connection, street: str) -> None:
    known = conn.exec_driver_sql("select 1 from streets where code = %(c)s", {"c": street}).first()
    if known is None:
        raise click.BadParameter(f"没有这个街道 no such street: {street!r}", param_hint="--street")


@users_group.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--street", help="The street code (9 digits) of a commander, clerk or grid officer.")
@click.option(
    "--unit",
    help="The unit code of a department (承办单位) or an assessor (a district department's, "
    "考核部门), `blockdata units list`.",
)
@click.option("--password", help="Asked for when not given.")
def add(name: str, role: str, street: str | None, unit: str | None, password: str | None) -> None:
    """Create user NAME."""
    from app.auth import hash_password

    if (role in STREET_ROLES) != (street is not None):
        raise click.UsageError(
            "--street 须且仅须给出于 commander、clerk、grid_officer "
            "(--street is required for a commander, a clerk or a grid officer, and only for them)"
        )
    if (role in UNIT_ROLES) != (unit is not None):
        raise click.UsageError(
            "--unit 须且仅须给出于 department、assessor "
            "(--unit is required for a department or an assessor, and only for them)"
        )
    if password is None:
        password = click.prompt("密码 password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise click.BadParameter("at least 8 characters", param_hint="--password")
    with _engine().begin() as conn:
        if street is not None:
            _check_street(conn, street)
        if unit is not None:
            found = conn.execute(
                sa.select(units.c.active, units.c.kind).where(units.c.code == unit)
            ).first()
            active = None if found is None else found.active
            if active is None:
                raise click.BadParameter(
                    f"没有这个单位 no such unit: {unit!r}", param_hint="--unit"
                )
            if not active:
                raise click.BadParameter(f"单位已停用 inactive unit: {unit!r}", param_hint="--unit")
            if role == "assessor" and found is not None and found.kind != "district_department":
                raise click.BadParameter(
                    f"考核部门须为区级部门 an assessor's unit must be a district department: "
                    f"{unit!r}",
                    param_hint="--unit",
                )
        if conn.execute(sa.select(users.c.id).where(users.c.name == name)).first():
            raise click.ClickException(f"用户已存在 user exists: {name!r}")
        conn.execute(
            sa.insert(users).values(
                name=name,
                role=role,
                street_code=street,
                unit_code=unit,
                password_hash=hash_password(password),
            )
        )
    where = street or unit
    click.echo(f"已创建 created {name} ({role}{' ' + where if where else ''})")


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
                    users.c.unit_code,
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
        click.echo(
            f"{r['name']:<24} {r['role']:<12} {r['street_code'] or '-':<10} "
            f"{r['unit_code'] or '-':<12} {state}"
        )


@users_group.command("bind")
@click.argument("name")
@click.option("--street", required=True, help="The street code (9 digits).")
def bind(name: str, street: str) -> None:
    """Bind NAME (a clerk, commander or grid officer) to another street; its sessions end.
    A clerk made before migration 0019 has no street and is refused until bound."""
    with _engine().begin() as conn:
        uid = _user_id(conn, name)
        role = conn.execute(sa.select(users.c.role).where(users.c.id == uid)).scalar_one()
        if role not in STREET_ROLES:
            raise click.UsageError(f"角色 {role} 不绑定街道 (role {role!r} has no street)")
        _check_street(conn, street)
        conn.execute(sa.update(users).where(users.c.id == uid).values(street_code=street))
        ended = _end_sessions(conn, uid)
    click.echo(f"已绑定 {name} → {street}; {ended} session(s) ended")


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
        ended = _end_sessions(conn, uid)
    click.echo(f"已修改 password changed for {name}; {ended} session(s) ended")


def _when(value: dt.datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M}"


@users_group.command("token")
@click.argument("name", required=False)
@click.option(
    "--days",
    default=TOKEN_DAYS,
    show_default=True,
    type=click.IntRange(1, 3650),
    help="Days until the new token expires.",
)
@click.option("--revoke", "revoke_id", type=int, help="Revoke the token of this id.")
@click.option("--revoke-all", "revoke_all", metavar="NAME", help="Revoke all of NAME's tokens.")
def token(name: str | None, days: int, revoke_id: int | None, revoke_all: str | None) -> None:
    """Create an API token for NAME, expiring after --days; it is printed once, alone on the
    last line. Or revoke one token (--revoke ID, see `users tokens`) or all of a user's."""
    from app.auth import new_token

    if sum(x is not None for x in (name, revoke_id, revoke_all)) != 1:
        raise click.UsageError("give NAME, --revoke TOKEN_ID or --revoke-all NAME (one of them)")
    live = api_tokens.c.revoked_at.is_(None)
    if revoke_id is not None:
        with _engine().begin() as conn:
            found = conn.execute(
                sa.update(api_tokens)
                .where(api_tokens.c.id == revoke_id, live)
                .values(revoked_at=sa.func.now())
            ).rowcount
        if not found:
            raise click.ClickException(f"没有这个有效令牌 no live token with id {revoke_id}")
        click.echo(f"已撤销 token {revoke_id} revoked")
        return
    if revoke_all is not None:
        with _engine().begin() as conn:
            uid = _user_id(conn, revoke_all)
            count = conn.execute(
                sa.update(api_tokens)
                .where(api_tokens.c.user_id == uid, live)
                .values(revoked_at=sa.func.now())
            ).rowcount
        click.echo(f"已撤销 {count} token(s) of {revoke_all} revoked")
        return
    assert name is not None
    value, digest = new_token()
    with _engine().begin() as conn:
        uid = _user_id(conn, name)
        tid, expires = conn.execute(
            sa.insert(api_tokens)
            .values(
                user_id=uid,
                token_sha256=digest,
                expires_at=sa.func.now() + dt.timedelta(days=days),
            )
            .returning(api_tokens.c.id, api_tokens.c.expires_at)
        ).one()
    click.echo(
        f"API token {tid} for {name}, expires {_when(expires)} "
        "(Authorization: Bearer …), shown only now:"
    )
    click.echo(value)


@users_group.command("tokens")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def tokens(name: str, as_json: bool) -> None:
    """List NAME's tokens: id, created, expires, last used, revoked (never the token)."""
    columns = (
        api_tokens.c.id,
        api_tokens.c.created_at,
        api_tokens.c.expires_at,
        api_tokens.c.last_used_at,
        api_tokens.c.revoked_at,
    )
    with _engine().connect() as conn:
        uid = _user_id(conn, name)
        rows = [
            dict(r._mapping)
            for r in conn.execute(
                sa.select(*columns).where(api_tokens.c.user_id == uid).order_by(api_tokens.c.id)
            )
        ]
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
        return
    click.echo(f"{'id':>6}  {'created':<16}  {'expires':<16}  {'last used':<16}  revoked")
    for r in rows:
        click.echo(
            f"{r['id']:>6}  {_when(r['created_at']):<16}  {_when(r['expires_at']):<16}  "
            f"{_when(r['last_used_at']):<16}  {_when(r['revoked_at'])}"
        )


@users_group.command("disable")
@click.argument("name")
def disable(name: str) -> None:
    """Disable NAME: their sessions end and their tokens are revoked at once."""
    with _engine().begin() as conn:
        uid = _user_id(conn, name)
        conn.execute(sa.update(users).where(users.c.id == uid).values(disabled=True))
        conn.execute(
            sa.update(api_tokens)
            .where(api_tokens.c.user_id == uid, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=sa.func.now())
        )
        _end_sessions(conn, uid)
    click.echo(f"已停用 disabled {name}")


@click.group("audit", invoke_without_command=True)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--user", "user_name", help="Only this user's entries.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def audit_cmd(ctx: click.Context, limit: int, user_name: str | None, as_json: bool) -> None:
    """Show the audit log: exports and token uses (who, when, what filter, how many rows).

    Control and bidi characters of stored values are shown escaped (\\x1b, \\u202e)."""
    if ctx.invoked_subcommand is not None:
        return
    query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if user_name:
        query = query.where(audit_log.c.user_name == user_name)
    with _engine().connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for r in rows:
        if as_json:
            click.echo(printable_json(r))
        else:
            filters = json.dumps(r["filters"], ensure_ascii=False) if r["filters"] else ""
            rows_n = "" if r["rows"] is None else f" rows={r['rows']}"
            user = printable(r["user_name"] or "-")
            click.echo(
                f"{r['at']:%Y-%m-%d %H:%M:%S} {user:<16} {printable(r['action']):<12} "
                f"{printable(r['path'] or '')} {printable(filters)}{rows_n}"
            )


@audit_cmd.command("prune")
@click.option(
    "--days",
    type=click.IntRange(1, None),
    help="Keep this many days (default: BLOCKDATA_AUDIT_RETENTION_DAYS, 180).",
)
def audit_prune(days: int | None) -> None:
    """Delete audit rows (and ended sessions, old login attempts) older than the retention."""
    from app.config import ConfigError, from_env
    from app.maintenance import prune

    try:
        keep = days or from_env().audit_retention_days
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    with _engine().begin() as conn:
        pruned = prune(conn, keep)
    click.echo(
        f"已清理 pruned {pruned.audit_rows} audit row(s), {pruned.sessions} session(s), "
        f"{pruned.login_attempts} login attempt(s) older than {keep} days"
    )
