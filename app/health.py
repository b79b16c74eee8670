"""`/healthz`: the database state and the PostGIS version, 503 when the database is down."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify

from app import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    engine = db.get_engine()
    if engine is None and current_app.config.get("DB_CONNECTION") is None:
        return jsonify(
            status="error",
            database="unconfigured",
            message=current_app.config.get("DB_ERROR", "no database configured"),
        ), 503
    try:
        # A connection of its own, closed here: a dead one must not outlive the answer (the
        # request's connection would be committed at teardown and fail there, after it).
        shared = current_app.config.get("DB_CONNECTION")
        if shared is not None:
            server, postgis, revision = _versions(shared)
        else:
            server, postgis, revision = _fresh_versions(engine)  # type: ignore[arg-type]
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


def _fresh_versions(engine: sa.Engine) -> tuple[str, str | None, str | None]:
    """The versions on a pooled connection; once more on a new one when that connection
    turns out dead (the database restarted: SQLAlchemy then discards the pool)."""
    try:
        with engine.connect() as conn:
            return _versions(conn)
    except sa.exc.DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    with engine.connect() as conn:
        return _versions(conn)
