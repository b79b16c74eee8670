"""A committed database with the tiny district, for tests that need real concurrent sessions
(loads against readers, killed processes): rolled-back test transactions cannot show those."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from app import migrate
from app.db import make_engine
from etl.jobs import RunReport, run_file
from layers import AGGREGATE_TABLES
from tests.district import load_district, write_district
from tests.helpers import drop_database, new_database

EVENT_TABLES = ("service_requests", "etl_rejects", "etl_runs")


@contextmanager
def committed_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new database, migrated, with the tiny district committed; dropped afterwards."""
    name = f"{prefix}_{os.getpid()}"
    url = new_database(server_url, name)
    try:
        migrate.upgrade(migrate.alembic_config(url))
        engine = make_engine(url)
        with tempfile.TemporaryDirectory() as tmp, engine.begin() as conn:
            load_district(conn, write_district(Path(tmp)))
        engine.dispose()
        yield url
    finally:
        drop_database(server_url, name)


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
