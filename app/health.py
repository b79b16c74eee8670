"""`/healthz`: the database state and the PostGIS version; 503 when the database is down or
blocked.

Blocked means readers are held up by locks: the probe takes ACCESS SHARE locks on the event
tables under a short `lock_timeout` and `statement_timeout` (a reader's locks: what a page
or an export needs), and fails when it cannot have them in time; and any session that has
waited for a table or row lock longer than `HEALTH_LOCK_WAIT` seconds (default 5) counts
too. The answer names the tables and how long the longest wait has lasted, not the
sessions' queries.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify

from app import db
from app.capabilities import public

bp = Blueprint("health", __name__)

PROBE_TABLES = ("service_requests", "request_daily", "request_street_daily")
PROBE_LOCK_TIMEOUT = "1s"
PROBE_STATEMENT_TIMEOUT = "3s"
LOCK_WAIT = 5.0
# lock_not_available, query_canceled (statement_timeout)
TIMEOUTS = {"55P03", "57014"}


class Blocked(Exception):
    """Readers are held up by locks; `details` says where and for how long."""

    def __init__(self, details: dict[str, Any]) -> None:
        super().__init__("blocked")
        self.details = details


@bp.get("/healthz")
@public
def healthz() -> tuple[Response, int]:
    engine = db.get_engine()
    if engine is None and current_app.config.get("DB_CONNECTION") is None:
        return jsonify(
            status="error",
            database="unconfigured",
            message=current_app.config.get("DB_ERROR", "no database configured"),
        ), 503
    limit = float(current_app.config.get("HEALTH_LOCK_WAIT", LOCK_WAIT))
    try:
        # A connection of its own, closed here: a dead one must not outlive the answer (the
        # request's connection would be committed at teardown and fail there, after it).
        shared = current_app.config.get("DB_CONNECTION")
        if shared is not None:
            with shared.begin_nested() as savepoint:
                server, postgis, revision = _check(shared, limit)
                savepoint.rollback()
        else:
            server, postgis, revision = _fresh_check(engine, limit)  # type: ignore[arg-type]
    except Blocked as exc:
        current_app.logger.warning("health check: database blocked: %s", exc.details)
        return jsonify(
            status="error",
            database="blocked",
            message="数据库被锁阻塞，读取在排队 database blocked: readers wait for locks",
            **exc.details,
        ), 503
    except Exception as exc:  # any failure to talk to the database means "down"
        current_app.logger.warning("health check failed: %s", exc)
        return jsonify(
            status="error",
            database="down",
            message="数据库无法连接 database unreachable: " + type(exc).__name__,
        ), 503
    body = {
        "status": "ok" if postgis and revision else "error",
        "database": "up",
        "postgresql": server,
        "postgis": postgis,
        "schema_revision": revision,
    }
    if not postgis or not revision:
        body["message"] = "数据库未迁移 schema not migrated: run `blockdata db upgrade head`"
        return jsonify(body), 503
    return jsonify(body), 200


def _check(conn: sa.Connection, limit: float) -> tuple[str, str | None, str | None]:
    server, postgis, revision = _versions(conn)
    if revision:
        _probe(conn, limit)
    return server, postgis, revision


def _versions(conn: sa.Connection) -> tuple[str, str | None, str | None]:
    server = conn.exec_driver_sql("show server_version").scalar_one()
    has_postgis = conn.exec_driver_sql(
        "select 1 from pg_extension where extname = 'postgis'"
    ).scalar()
    postgis = (
        conn.exec_driver_sql("select postgis_lib_version()").scalar_one() if has_postgis else None
    )
    has_alembic = conn.exec_driver_sql("select to_regclass('alembic_version')").scalar()
    revision = (
        conn.exec_driver_sql("select version_num from alembic_version").scalar()
        if has_alembic
        else None
    )
    return server, postgis, revision


def _waits(conn: sa.Connection, limit: float) -> dict[str, Any]:
    """Sessions waiting for a table or row lock for longer than `limit` seconds."""
    count, longest, tables = conn.execute(
        sa.text(
            """
            select count(*), extract(epoch from now() - min(waitstart)),
                   array_agg(distinct relation::regclass::text)
                       filter (where relation is not null)
              from pg_locks
             where not granted and pid <> pg_backend_pid()
               and locktype in ('relation', 'tuple', 'transactionid')
               and pid in (select pid from pg_stat_activity where datname = current_database())
               and waitstart < now() - make_interval(secs => :limit)
            """
        ),
        {"limit": limit},
    ).one()
    return {
        "waiting_sessions": int(count),
        "longest_wait_s": round(float(longest or 0), 1),
        "tables": sorted(tables or []),
    }


def _probe(conn: sa.Connection, limit: float) -> None:
    """Raise Blocked when a reader's locks on the event tables are not to be had at once,
    or when sessions have waited for locks longer than `limit` seconds."""
    conn.execute(sa.select(sa.func.set_config("lock_timeout", PROBE_LOCK_TIMEOUT, True)))
    conn.execute(sa.select(sa.func.set_config("statement_timeout", PROBE_STATEMENT_TIMEOUT, True)))
    tables = [t for t in PROBE_TABLES if conn.execute(sa.select(sa.func.to_regclass(t))).scalar()]
    probe = conn.begin_nested()
    try:
        if tables:
            conn.exec_driver_sql(f"lock table {', '.join(tables)} in access share mode")
    except sa.exc.DBAPIError as exc:
        probe.rollback()
        if getattr(exc.orig, "sqlstate", None) not in TIMEOUTS:
            raise
        details = _waits(conn, 0.0)
        details["probe"] = f"lock {', '.join(tables)}: timed out after {PROBE_LOCK_TIMEOUT}"
        raise Blocked(details) from exc
    probe.rollback()
    waits = _waits(conn, limit)
    if waits["waiting_sessions"]:
        raise Blocked(waits)


def _fresh_check(engine: sa.Engine, limit: float) -> tuple[str, str | None, str | None]:
    """The check on a pooled connection; once more on a new one when that connection
    turns out dead (the database restarted: SQLAlchemy then discards the pool)."""
    try:
        with engine.connect() as conn:
            return _check(conn, limit)
    except sa.exc.DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    with engine.connect() as conn:
        return _check(conn, limit)
