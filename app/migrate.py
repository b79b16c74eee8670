"""Alembic driven from Python: the CLI and the tests use the same entry points."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from app.config import PROJECT_ROOT, WEB_ROLE, Settings, sqlalchemy_url, web_role_password

POSTGIS_SCHEMAS = {"tiger", "tiger_data", "topology"}
POSTGIS_TABLES = {"spatial_ref_sys"}


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Autogenerate filter: leave PostGIS's own tables alone."""
    from geoalchemy2 import alembic_helpers

    if type_ == "table" and (name in POSTGIS_TABLES or obj.schema in POSTGIS_SCHEMAS):
        return False
    return bool(alembic_helpers.include_object(obj, name, type_, reflected, compare_to))


def alembic_config(url: str | None = None, connection: sa.Connection | None = None) -> Config:
    """An Alembic config for `url`, or bound to an open `connection`."""
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


# Migrations create roles, which belong to the whole cluster (0004, 0009): two upgrades of
# two databases of one server at once (two `blockdata db upgrade`, parallel test workers)
# could both see a role missing and both create it. They take turns, holding this advisory
# lock in the server's maintenance database `postgres` (advisory locks are per database).
CLUSTER_LOCK = 0x626C6B6D  # "blkm"


@contextlib.contextmanager
def _cluster_turn(cfg: Config) -> Iterator[None]:
    """The cluster-wide migration lock for the URL of `cfg`; nothing when the config is
    bound to a connection (its caller holds the transaction) or `postgres` is out of reach."""
    import psycopg

    url = cfg.get_main_option("sqlalchemy.url")
    if not url or "connection" in cfg.attributes:
        yield
        return
    target = make_url(url.replace("%%", "%"))
    maintenance = target.set(drivername="postgresql", database="postgres")
    try:
        conn = psycopg.connect(
            maintenance.render_as_string(hide_password=False), autocommit=True, connect_timeout=10
        )
    except psycopg.Error:
        yield
        return
    with conn:
        conn.execute("select pg_advisory_lock(%s)", (CLUSTER_LOCK,))
        yield  # the session's end releases the lock


def upgrade(cfg: Config, revision: str = "head") -> None:
    with _cluster_turn(cfg):
        command.upgrade(cfg, revision)


def downgrade(cfg: Config, revision: str) -> None:
    command.downgrade(cfg, revision)


def current(connection: sa.Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


class WebRoleError(RuntimeError):
    """The web role cannot be made safe; the message says why."""


def ensure_web_role(url: str, settings: Settings) -> str | None:
    """Give the web role (`blockdata_web`, made by migration 0009) LOGIN and the password
    kept in var/web_role.json (generated on first use), as the owner at `url`: what
    `blockdata db upgrade` does after migrating (a password is not DDL: no revision has it).

    Sent as a SCRAM verifier made here (libpq's PQencryptPasswordConn), so the password is
    never in a statement the server could log. Then checks that the role is no superuser,
    cannot create roles or databases, bypass row-level security or replicate, and is no
    member of the owner (it could `set role` to it). Returns None, changing nothing, when
    BLOCKDATA_WEB_DATABASE_URL is set (the role is the DBA's) or the owner may not manage
    roles; else the role's name.
    """
    import psycopg
    from psycopg import sql

    if settings.web_database_url:
        return None
    with psycopg.connect(url, autocommit=True) as conn:
        may = conn.execute(
            "select rolsuper or rolcreaterole from pg_roles where rolname = current_user"
        ).fetchone()
        exists = conn.execute("select 1 from pg_roles where rolname = %s", (WEB_ROLE,)).fetchone()
        if not (may and may[0]) or exists is None:
            return None
        password = web_role_password(settings, create=True)
        assert password is not None
        verifier = conn.pgconn.encrypt_password(
            password.encode(), WEB_ROLE.encode(), b"scram-sha-256"
        )
        conn.execute(
            sql.SQL("alter role {} with login inherit nocreatedb nocreaterole password {}").format(
                sql.Identifier(WEB_ROLE), sql.Literal(verifier.decode())
            )
        )
        row = conn.execute(
            "select rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication,"
            " pg_has_role(%s, current_user, 'MEMBER') from pg_roles where rolname = %s",
            (WEB_ROLE, WEB_ROLE),
        ).fetchone()
    assert row is not None
    flags = ("SUPERUSER", "CREATEROLE", "CREATEDB", "BYPASSRLS", "REPLICATION", "owner member")
    wrong = [flag for flag, value in zip(flags, row, strict=True) if value]
    if wrong:
        raise WebRoleError(
            f"Web 角色权限过大 the role {WEB_ROLE} has {', '.join(wrong)}: "
            "take them away (ALTER ROLE … NOSUPERUSER …, REVOKE owner FROM it)"
        )
    return WEB_ROLE
