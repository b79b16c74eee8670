"""The ETL's runs and their rejected rows, as the imports pages show them to the clerk."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from layers import LAYERS, etl_rejects, etl_runs

RUN_COLUMNS = (
    "id",
    "layer",
    "source",
    "file_name",
    "status",
    "started_at",
    "finished_at",
    "read",
    "inserted",
    "updated",
    "unchanged",
    "rejected",
    "error",
)
# What a run loaded, in Chinese: the layers' titles, and the runs that load no layer.
OTHER_TITLES = {"units": "承办单位"}


def run_titles() -> dict[str, str]:
    """etl_runs.layer → its Chinese title."""
    return {**{layer.name: layer.title for layer in LAYERS}, **OTHER_TITLES}


def _select() -> sa.Select[Any]:
    return sa.select(*(etl_runs.c[c] for c in RUN_COLUMNS))


def latest_runs(conn: sa.Connection, limit: int) -> list[Any]:
    """The newest `limit` runs, newest first."""
    return list(conn.execute(_select().order_by(etl_runs.c.id.desc()).limit(limit)).all())


def run(conn: sa.Connection, run_id: int) -> Any | None:
    """The run `run_id`, None when there is none."""
    return conn.execute(_select().where(etl_runs.c.id == run_id)).first()


def rejects(conn: sa.Connection, run_id: int, limit: int) -> list[Any]:
    """The first `limit` rows run `run_id` rejected, in file order, each with its reason."""
    return list(
        conn.execute(
            sa.select(etl_rejects)
            .where(etl_rejects.c.run_id == run_id)
            .order_by(etl_rejects.c.row_number)
            .limit(limit)
        ).all()
    )
