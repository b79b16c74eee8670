"""The database engine and the per-request connection.

The request owns the transaction (house style: the edges own transactions): the first
call to `connection()` in a request begins one; teardown commits it, or rolls it back
when the request failed.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app, g

from app.config import sqlalchemy_url

ENGINE_KEY = "blockdata.engine"


def make_engine(url: str, *, pool_size: int = 8, **kw: Any) -> sa.Engine:
    """An engine for a libpq URL. JIT and parallel plans are off: they slow small API queries."""
    if "poolclass" not in kw:
        kw.update(pool_size=pool_size, max_overflow=8)
    return sa.create_engine(
        sqlalchemy_url(url),
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": 3,
            "options": "-c jit=off -c max_parallel_workers_per_gather=0 -c timezone=Asia/Shanghai",
            "application_name": "blockdata",
        },
        **kw,
    )


def init_app(app: Flask, engine: sa.Engine | None) -> None:
    app.extensions[ENGINE_KEY] = engine
    app.teardown_appcontext(_close)


def get_engine() -> sa.Engine | None:
    engine: sa.Engine | None = current_app.extensions.get(ENGINE_KEY)
    return engine


def connection() -> sa.Connection:
    """The request's connection, inside the request's transaction."""
    if "db_conn" not in g:
        shared: sa.Connection | None = current_app.config.get("DB_CONNECTION")
        if shared is not None:
            # Tests hand in one connection whose outer transaction they roll back.
            g.db_conn = shared
            g.db_tx = shared.begin_nested()
        else:
            engine = get_engine()
            if engine is None:
                from app.errors import ServiceUnavailable

                raise ServiceUnavailable(
                    "数据库未配置 no database configured: "
                    + current_app.config.get("DB_ERROR", "set DATABASE_URL")
                )
            g.db_conn = engine.connect()
            g.db_tx = g.db_conn.begin()
    conn: sa.Connection = g.db_conn
    return conn


READER_ROLE = "blockdata_reader"


def scope(zone: str) -> None:
    """Read the rest of the request as `blockdata_reader`, confined to `zone` ('*': all).

    Row-level security policies (migration 0004) compare each row's street with the
    `blockdata.zone` setting; both last only until the request's transaction ends.
    """
    conn = connection()
    conn.exec_driver_sql(f"set local role {READER_ROLE}")
    conn.execute(sa.text("select set_config('blockdata.zone', :zone, true)"), {"zone": zone})
    g.db_scoped = True


def _close(exc: BaseException | None) -> None:
    conn: sa.Connection | None = g.pop("db_conn", None)
    tx = g.pop("db_tx", None)
    if conn is None:
        return
    try:
        if tx is not None and tx.is_active:
            if exc is None:
                tx.commit()
            else:
                tx.rollback()
    finally:
        if current_app.config.get("DB_CONNECTION") is None:
            conn.close()
        elif g.pop("db_scoped", False):
            # A shared (test) connection outlives the request: give its role back.
            conn.exec_driver_sql("reset role")
            conn.exec_driver_sql("select set_config('blockdata.zone', '', true)")


def engine_from_env(**kw: Any) -> sa.Engine:
    """An engine for the configured database (DATABASE_URL or the managed cluster)."""
    from app.config import from_env, resolve_database_url

    return make_engine(resolve_database_url(from_env()), **kw)
