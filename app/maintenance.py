"""Nightly upkeep: rewrite the point layers in spatial order (`blockdata db maintain`).

Requests arrive in time order, which is random in space: the rows of one 200 m box lie on
as many heap pages as there are rows, and a map box, a tile or a bbox page reads one page
per point. `CLUSTER … USING ix_<layer>_geom` rewrites the table in the order of its GiST
index (PostGIS builds it along a space-filling curve), so the points of a box share pages:
on 1M requests a small-bbox OGC page and a raw tile read about a twentieth of the pages.

CLUSTER takes an ACCESS EXCLUSIVE lock for as long as it runs (about 10 s per million rows
on the 2-core machine): readers and writers of that table wait, then go on. It is meant for
the night; `lock_timeout` keeps it from queueing behind a long transaction (that table is
then skipped and reported, nothing else changes). Rows loaded after it go to the end of the
table, so run it again after large loads or nightly (docs/architecture.md, "Upkeep").

It also prunes what is kept only for a while (`prune`): audit rows older than the retention
(BLOCKDATA_AUDIT_RETENTION_DAYS, 180 by default: China's Cybersecurity Law asks for at least
six months of logs), sessions that ended or went idle as long ago, login attempts of more
than a day ago.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa

from layers import LAYERS, Layer
from layers.accounts import audit_log, login_attempts, sessions

LOCK_TIMEOUT = "5s"


@dataclass(frozen=True)
class Clustered:
    layer: str
    rows: int
    seconds: float
    error: str | None = None


@dataclass(frozen=True)
class Pruned:
    audit_rows: int
    sessions: int
    login_attempts: int


def prune(conn: sa.Connection, retention_days: int) -> Pruned:
    """Delete audit rows older than `retention_days`, sessions that ended (or were last
    seen) that long ago, and login attempts older than a day."""
    if retention_days < 1:
        raise ValueError(f"retention_days must be at least 1: {retention_days}")
    cutoff = sa.func.now() - sa.text(f"interval '{int(retention_days)} days'")
    audit_rows = conn.execute(sa.delete(audit_log).where(audit_log.c.at < cutoff)).rowcount
    gone = conn.execute(
        sa.delete(sessions).where(
            sa.func.coalesce(sessions.c.ended_at, sessions.c.last_seen_at) < cutoff
        )
    ).rowcount
    attempts = conn.execute(
        sa.delete(login_attempts).where(
            login_attempts.c.at < sa.func.now() - sa.text("interval '1 day'")
        )
    ).rowcount
    return Pruned(int(audit_rows), int(gone), int(attempts))


def point_layers() -> list[Layer]:
    return [layer for layer in LAYERS if layer.geometry_type == "POINT"]


def is_clustered(conn: sa.Connection, layer: Layer) -> bool:
    """Whether the layer's table was last clustered on its geometry index."""
    return bool(
        conn.execute(
            sa.text(
                "select coalesce(bool_or(i.indisclustered), false) from pg_index i"
                " where i.indrelid = to_regclass(:t) and i.indexrelid = to_regclass(:ix)"
            ),
            {"t": layer.name, "ix": f"ix_{layer.name}_geom"},
        ).scalar()
    )


def cluster(engine: sa.Engine, layers: list[Layer] | None = None) -> list[Clustered]:
    """CLUSTER each layer's table on its geometry index, then ANALYZE it; one transaction
    per table (a table that fails, e.g. on the lock timeout, is rolled back and reported)."""
    done = []
    for layer in point_layers() if layers is None else layers:
        started = time.perf_counter()
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"set local lock_timeout = '{LOCK_TIMEOUT}'")
                conn.exec_driver_sql(f'cluster "{layer.name}" using "ix_{layer.name}_geom"')
                conn.exec_driver_sql(f'analyze "{layer.name}"')
                rows = conn.execute(sa.text(f'select count(*) from "{layer.name}"')).scalar_one()
        except sa.exc.DBAPIError as failed:
            reason = str(failed.orig).strip().splitlines()[0] if failed.orig else str(failed)
            done.append(Clustered(layer.name, 0, time.perf_counter() - started, reason))
            continue
        done.append(Clustered(layer.name, int(rows), time.perf_counter() - started))
    return done
