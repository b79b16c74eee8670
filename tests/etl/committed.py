"""A committed database with the tiny district, for tests that need real concurrent sessions
(loads against readers, killed processes): rolled-back test transactions cannot show those."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from app import migrate
from app.db import make_engine
from etl.jobs import RunReport, run_file
from layers import AGGREGATE_TABLES
from tests.etl.conftest import STREETS, grid_cells

EVENT_TABLES = ("service_requests", "etl_rejects", "etl_runs")


@contextmanager
def committed_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new database, migrated, with the tiny district committed; dropped afterwards."""
    name = f"{prefix}_{os.getpid()}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}"')
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(migrate.alembic_config(url))
        engine = make_engine(url)
        with engine.begin() as conn:
            insert_district(conn)
        engine.dispose()
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


def insert_district(conn: sa.Connection) -> None:
    cells = grid_cells()
    for street, (x0, x1) in STREETS.items():
        conn.execute(
            sa.text(
                "insert into streets (code, name, geom) values (:code, :name, "
                "ST_Multi(ST_MakeEnvelope(:x0, 39.90, :x1, 39.92, 4326)))"
            ),
            {"code": street, "name": f"测试{street[-3:]}街道", "x0": x0, "x1": x1},
        )
    for community, street in sorted({(c[1], c[2]) for c in cells}):
        boxes = [c[3] for c in cells if c[1] == community]
        conn.execute(
            sa.text(
                "insert into communities (code, name, street_code, geom) values (:code, :name, "
                ":street, ST_Multi(ST_MakeEnvelope(:x0, 39.90, :x1, 39.92, 4326)))"
            ),
            {
                "code": community,
                "name": f"测试{community[-3:]}社区",
                "street": street,
                "x0": min(b[0] for b in boxes),
                "x1": max(b[2] for b in boxes),
            },
        )
    for code, community, street, (x0, y0, x1, y1) in cells:
        conn.execute(
            sa.text(
                "insert into grids (code, community_code, street_code, geom) values "
                "(:code, :community, :street, ST_Multi(ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)))"
            ),
            {"code": code, "community": community, "street": street, "x0": x0, "y0": y0}
            | {"x1": x1, "y1": y1},
        )


def reset(engine: sa.Engine) -> None:
    """No requests, runs or aggregates: as after the district's import."""
    tables = [*EVENT_TABLES, *(t.name for t in AGGREGATE_TABLES), "request_dirty_days"]
    with engine.begin() as conn:
        conn.execute(sa.text(f"truncate {', '.join(tables)} restart identity cascade"))
        conn.execute(sa.text("truncate request_dirty_days"))


def load(engine: sa.Engine, path: Path, **kw: object) -> RunReport:
    """`blockdata etl run` as the CLI does it: one connection, committed at the end."""
    with engine.connect() as conn:
        report = run_file(conn, path, layer="service_requests", **kw)  # type: ignore[arg-type]
        conn.commit()
    return report


def snapshot(engine: sa.Engine) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the requests and of the aggregates, in a stable order."""
    out = {}
    with engine.connect() as conn:
        for table in ("service_requests", *(t.name for t in AGGREGATE_TABLES)):
            rows = conn.execute(sa.text(f"select * from {table}")).all()
            out[table] = sorted((tuple(r) for r in rows), key=repr)
    return out
