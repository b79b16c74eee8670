"""The database engine and the per-request connection.

The request owns the transaction (house style: the edges own transactions): the first
call to `connection()` in a request begins one; `after_request` commits it (a failed commit
is still a JSON 503), the teardown rolls it back when the request failed and closes.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, current_app, g, has_request_context, request
from flask.sansio.app import App

from app import capabilities
from app.config import DEFAULT_TZ, WEB_ROLE, check_tz, sqlalchemy_url
from layers.queries import access

ENGINE_KEY = "blockdata.engine"
log = logging.getLogger(__name__)
SCOPE_EXTRAS_KEY = "blockdata.scope_extras"
# A pooled connection idle for longer than this (seconds) is pinged before it is handed out:
# under load every connection is back in use within milliseconds, and goes unpinged.
PING_AFTER_IDLE = 1.0
# Small API queries: JIT compilation and parallel workers cost more than they save.
SESSION_OPTIONS = "-c jit=off -c max_parallel_workers_per_gather=0"


def make_engine(url: str, *, pool_size: int = 8, tz: str = DEFAULT_TZ, **kw: Any) -> sa.Engine:
    """An engine for a libpq URL, with SESSION_OPTIONS on every connection and the session
    time zone `tz` (the district's, BLOCKDATA_TZ): PostgreSQL writes times with its offset
    in JSON, CSV and text, and casts instants to local dates in it.

    A connection is pinged at checkout only after PING_AFTER_IDLE seconds in the pool
    (pool_pre_ping would cost a round trip on every request). A connection the server
    dropped meanwhile fails its request once; SQLAlchemy then replaces the whole pool.
    """
    if "poolclass" not in kw:
        kw.update(pool_size=pool_size, max_overflow=8)
    engine = sa.create_engine(
        sqlalchemy_url(url),
        connect_args={
            "connect_timeout": 3,
            "options": f"{SESSION_OPTIONS} -c timezone={check_tz(tz)}",
            "application_name": "blockdata",
        },
        **kw,
    )

    @sa.event.listens_for(engine, "checkin")
    def _checkin(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DisconnectionError(str(exc)) from exc
        if not alive:  # the pool drops it and hands out another
            raise sa.exc.DisconnectionError("the server closed the idle connection")

    return engine


def init_app(app: Flask, engine: sa.Engine | None) -> None:
    app.extensions[ENGINE_KEY] = engine
    app.after_request(_commit)
    app.teardown_appcontext(_close)


def _commit(response: Response) -> Response:
    """Commit while the answer can still change: a commit that fails (the database went
    away) becomes a JSON 503 instead of an error after the answer was made."""
    tx = g.get("db_tx")
    if tx is None or not tx.is_active:
        return response
    try:
        tx.commit()
    except sa.exc.SQLAlchemyError as exc:
        # A dropped connection (DBAPIError), or one SQLAlchemy already knows to be dropped
        # (PendingRollbackError): nothing was committed; the teardown only closes.
        log.warning("commit failed: %s", exc.__class__.__name__)
        g.pop("db_tx", None)
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            tx.rollback()
        from app.errors import ServiceUnavailable

        body = ServiceUnavailable("数据库暂不可用，请稍后重试 database unavailable: retry").body()
        failed: Response = current_app.json.response(body)  # type: ignore[assignment]
        failed.status_code = 503
        failed.headers["Retry-After"] = "1"
        return failed
    return response


def get_engine() -> sa.Engine | None:
    engine: sa.Engine | None = current_app.extensions.get(ENGINE_KEY)
    return engine


def connection() -> sa.Connection:
    """The request's connection, inside the request's transaction."""
    if "db_conn" not in g:
        shared: sa.Connection | None = current_app.config.get("DB_CONNECTION")
        if shared is not None:
            # Tests hand in one connection (the owner's) whose outer transaction they roll
            # back; the request runs as the web role, as the server does (`_finish` resets).
            g.db_conn = shared
            g.db_tx = shared.begin_nested()
            role = current_app.config.get("DB_SHARED_ROLE", WEB_ROLE)
            if role:
                shared.exec_driver_sql(f'set role "{role}"')
                g.db_base_role = role
        else:
            engine = get_engine()
            if engine is None:
                from app.errors import ServiceUnavailable

                raise ServiceUnavailable(
                    "数据库未配置 no database configured: "
                    + current_app.config.get("DB_ERROR", "set DATABASE_URL")
                )
            g.db_conn = engine.connect()
            if has_request_context() and _snapshot(request.endpoint):
                g.db_conn.execution_options(isolation_level="REPEATABLE READ")
            g.db_tx = g.db_conn.begin()
    conn: sa.Connection = g.db_conn
    return conn


def _snapshot(endpoint: str | None) -> bool:
    """Whether the view declares that it reads one snapshot (`@reads(..., snapshot=True)`):
    an export's row count and its rows must agree."""
    need = capabilities.access(endpoint) if endpoint is not None else None
    return need is not None and need.snapshot


READER_ROLE = access.READER_ROLE


def unscope() -> None:
    """Back from the reader to the server's own role (the login role: `blockdata_web`)
    until the transaction or savepoint ends: its bookkeeping reads and writes that no caller
    may (migration 0009 says which)."""
    role = g.get("db_base_role")
    connection().exec_driver_sql(f'set local role "{role}"' if role else "set local role none")


def scope(zone: str, extra: tuple[str, dict[str, Any]] | None = None, unit: str = "") -> None:
    """Read the rest of the request as `blockdata_reader`, confined to `zone` ('*': all)
    and, for a department user, to its `unit` (`blockdata.unit`, migration 0018).

    Row-level security policies (migration 0004) compare each row's street with the
    `blockdata.zone` setting; both last only until the request's transaction ends.
    One statement sets both. An endpoint may add columns to it (`scope_extra`), or a caller
    outside a request (the tile seeder) give them as `extra`: they are read in the same
    round trip, with the privileges of the server's own role, `blockdata_web` (the switch to
    the reader applies from the next statement on), and kept in `g.db_scope_extra`.
    """
    more = extra
    if more is None:
        extras = current_app.extensions.get(SCOPE_EXTRAS_KEY, {})
        hook = extras.get(request.endpoint) if extras and has_request_context() else None
        more = hook() if hook is not None else None
    g.db_scope_extra = access.scope(connection(), zone, more, unit)
    g.db_zone = zone
    g.db_scoped = True


ScopeExtra = Callable[[], tuple[str, dict[str, Any]] | None]


def scope_extra(app: App, endpoint: str, extra: ScopeExtra) -> None:
    """Have `scope()` read `extra()`'s (SQL columns, bound parameters) in `endpoint`'s requests.

    The columns are planned and checked as the server's own role (`blockdata_web`, whose
    grants migration 0009 lists), not the reader: they
    must only read what any caller may know (versions, counters), never rows. `extra()`
    runs in the request, before the view; it returns None to add nothing.
    """
    app.extensions.setdefault(SCOPE_EXTRAS_KEY, {})[endpoint] = extra


def _close(exc: BaseException | None) -> None:
    conn: sa.Connection | None = g.pop("db_conn", None)
    tx = g.pop("db_tx", None)
    scoped = g.pop("db_scoped", False)
    g.pop("db_base_role", None)
    if conn is not None:
        _finish(conn, tx, current_app.config.get("DB_CONNECTION") is None, scoped, exc)


def _finish(
    conn: sa.Connection, tx: Any, owned: bool, scoped: bool, exc: BaseException | None
) -> None:
    """Commit (or, after an error, roll back) and give the connection back. A rollback on a
    connection the database has dropped has nothing left to undo: it is only logged."""
    try:
        if tx is not None and tx.is_active:
            if exc is None:
                tx.commit()
            else:
                try:
                    tx.rollback()
                except sa.exc.DBAPIError as failed:
                    if not failed.connection_invalidated:
                        raise
                    log.warning("rollback on a dropped connection: %s", failed.orig)
    finally:
        if owned:
            conn.close()
        else:
            # A shared (test) connection outlives the request: give its role back.
            conn.exec_driver_sql("reset role")
            if scoped:
                conn.exec_driver_sql(
                    "select set_config('blockdata.zone', '', true),"
                    " set_config('blockdata.unit', '', true)"
                )


def engine_from_env(**kw: Any) -> sa.Engine:
    """An engine for the configured database as its owner (DATABASE_URL or the managed
    cluster): for the CLI, never for the map server."""
    from app.config import from_env, resolve_database_url

    settings = from_env()
    return make_engine(resolve_database_url(settings), tz=settings.tz, **kw)
