"""Load: COPY the prepared rows to a staging table, then upsert on (source, source_id).

New rows are inserted, changed rows updated, identical rows left alone — so re-running
the same file changes nothing. A layer with a `progress` order (status) never moves a
row backwards: an older extract loaded after a newer one leaves the newer state.
All of it runs on the caller's connection, inside the caller's transaction.

A bulk load (a source's first, large batch) rebuilds the table's keys and indexes around
the COPY. It needs the table's ACCESS EXCLUSIVE lock, which every reader waits for: it
takes that lock, and those of the tables derived from it, with `etl.locks.acquire` — a
short wait at a time, retried, so readers never queue behind it for long and never
deadlock with it — and holds them for the load only. The foreign keys stay in place: their
per-row checks are switched off for the COPY, the rows the batch refers to are checked and
locked once (as the checks would), so the referenced tables (streets, grids, …) are never
locked against readers.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pgpq
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from etl import locks
from layers import Layer, etl_rejects
from layers.queries.types import copy_arrow_type

COPY_CHUNK = 8 << 20
BOOKKEEPING = {"etl_run_id", "updated_at", "id"}
# A batch at least this large, and larger than the table, is loaded in bulk mode: secondary
# indexes and foreign keys are dropped and rebuilt around it (PostgreSQL manual, 14.4
# "Populating a Database"): building them once is many times faster than row by row.
BULK_MIN_ROWS = 50_000


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _columns(layer: Layer, rows: pa.Table) -> list[str]:
    table_columns = set(layer.table.c.keys())
    return [
        c for c in rows.column_names if c in table_columns and c not in BOOKKEEPING and c != "geom"
    ]


def _geometry(rows: pa.Table) -> tuple[list[str], list[str], str]:
    """Staging columns for the geometry, their types, and the SQL that builds it."""
    if "geom_x" in rows.column_names:
        return (
            ["geom_x", "geom_y"],
            ["float8", "float8"],
            "ST_SetSRID(ST_MakePoint(geom_x, geom_y), 4326)",
        )
    return ["geom"], ["bytea"], "ST_GeomFromEWKB(geom)"


def point_ewkb(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> pa.Array:
    """EWKB of SRID-4326 points, built in NumPy: what PostGIS reads in a binary COPY."""
    n = len(x)
    raw = np.empty((n, 25), dtype=np.uint8)
    raw[:, 0] = 1  # little endian
    raw[:, 1:5] = np.frombuffer(struct.pack("<I", 0x20000001), dtype=np.uint8)  # point + SRID
    raw[:, 5:9] = np.frombuffer(struct.pack("<I", 4326), dtype=np.uint8)
    raw[:, 9:17] = np.ascontiguousarray(x, dtype="<f8").view(np.uint8).reshape(n, 8)
    raw[:, 17:25] = np.ascontiguousarray(y, dtype="<f8").view(np.uint8).reshape(n, 8)
    offsets = np.arange(0, 25 * n + 1, 25, dtype=np.int32)
    return pa.BinaryArray.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(raw.tobytes())]
    )


def write_copy(conn: sa.Connection, table: str, data: pa.Table, *, freeze: bool = False) -> None:
    """COPY an Arrow table into `table` in PostgreSQL's binary format (pgpq encodes it).

    Binary COPY skips the server's text parsing (timestamps above all) and Arrow's text
    formatting: about four times faster than CSV for a million requests. `freeze` (for a
    table created or truncated in the current subtransaction) writes the rows frozen and
    all-visible, so that nothing rewrites them later and index-only scans work at once.
    """
    encoder = pgpq.ArrowToPostgresBinaryEncoder(data.schema)
    cols = ", ".join(_quote(c) for c in data.column_names)
    options = "format binary, freeze" if freeze else "format binary"
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(f"copy {table} ({cols}) from stdin ({options})") as copy:
        copy.write(encoder.write_header())
        for batch in data.to_batches(max_chunksize=65536):
            copy.write(encoder.write_batch(batch))
        copy.write(encoder.finish())


def _typed(layer: Layer, rows: pa.Table, columns: list[str]) -> list[pa.ChunkedArray]:
    """The rows' columns cast to the table's column types."""
    arrays = []
    for c in columns:
        arr = rows.column(c)
        want = copy_arrow_type(layer.table.c[c])
        if pa.types.is_integer(want) and pa.types.is_floating(arr.type):
            arr = pc.round(arr)
        if arr.type != want:
            arr = arr.cast(want, safe=not pa.types.is_integer(want))
        arrays.append(arr)
    return arrays


def _stage(conn: sa.Connection, layer: Layer, rows: pa.Table, columns: list[str]) -> str:
    """Create a temporary staging table and COPY the rows into it."""
    stage = f"stage_{layer.name}"
    geo_cols, geo_types, _ = _geometry(rows)
    defs = [f"{_quote(c)} {layer.table.c[c].type.compile(dialect=conn.dialect)}" for c in columns]
    defs += [f"{c} {t}" for c, t in zip(geo_cols, geo_types, strict=True)]
    conn.exec_driver_sql(f"drop table if exists {stage}")
    conn.exec_driver_sql(f"create temp table {stage} ({', '.join(defs)}) on commit drop")
    arrays = _typed(layer, rows, columns) + [rows.column(c) for c in geo_cols]
    write_copy(conn, stage, pa.table(arrays, names=[*columns, *geo_cols]))
    return stage


def _constraints(layer: Layer, foreign: bool) -> list[sa.Constraint]:
    """Keys a fresh bulk load rebuilds: primary key, unique keys, and (`foreign`) foreign keys."""
    keys = [c for c in layer.table.constraints if isinstance(c, sa.UniqueConstraint)]
    primary = [layer.table.primary_key] if layer.table.primary_key is not None else []
    return [*primary, *keys, *(layer.table.foreign_key_constraints if foreign else ())]


def _checks_switchable(conn: sa.Connection, layer: Layer) -> bool:
    """Whether the foreign keys' per-row checks can be switched off for a COPY (superusers
    only) and checked once instead (single-column keys). Otherwise the keys are dropped and
    re-added, which locks the referenced tables against readers for the whole load."""
    single = all(len(fk.column_keys) == 1 for fk in layer.table.foreign_key_constraints)
    superuser = conn.execute(
        sa.text("select rolsuper from pg_roles where rolname = current_user")
    ).scalar_one()
    return single and bool(superuser)


def _hold_references(conn: sa.Connection, layer: Layer, rows: pa.Table, run_id: int) -> None:
    """Check that every row the batch refers to exists, and lock it FOR KEY SHARE until the
    end of the transaction — what the per-row foreign-key checks would do, once per value."""
    for fk in layer.table.foreign_key_constraints:
        (column,) = fk.column_keys
        target = fk.elements[0].column
        if column == "etl_run_id":
            values: list[Any] = [run_id]
        elif column in rows.column_names:
            values = pc.unique(rows.column(column)).drop_null().to_pylist()
        else:
            continue
        if not values:
            continue
        found = conn.execute(
            sa.text(
                f"select {_quote(target.name)} from {_quote(target.table.name)} "
                f"where {_quote(target.name)} = any(:values) for key share"
            ),
            {"values": values},
        ).scalars()
        missing = sorted(set(values) - set(found), key=str)
        if missing:
            raise ValueError(
                f"{column} 引用了不存在的 {target.table.name} refers to no {target.table.name} "
                f"row: {', '.join(map(str, missing[:5]))}"
            )


def _isolation(conn: sa.Connection) -> str:
    return str(conn.execute(sa.select(sa.func.current_setting("transaction_isolation"))).scalar())


def _bulk(conn: sa.Connection, layer: Layer, batch: int) -> bool:
    if batch < BULK_MIN_ROWS:
        return False
    existing = conn.exec_driver_sql(
        "select reltuples::bigint from pg_class where oid = %(t)s::regclass", {"t": layer.name}
    ).scalar_one()
    # Rebuilding costs about as much as indexing a quarter of the table's rows one by one.
    return batch * 4 > max(existing, 0)


def _fresh(conn: sa.Connection, layer: Layer, rows: pa.Table) -> bool:
    """Nothing of the rows' source is loaded yet."""
    return not conn.execute(
        sa.text(f"select exists (select 1 from {_quote(layer.name)} where source = :source)"),
        {"source": rows.column("source")[0].as_py()},
    ).scalar_one()


def is_empty(conn: sa.Connection, layer: Layer) -> bool:
    return not conn.exec_driver_sql(
        f"select exists (select 1 from {_quote(layer.name)})"
    ).scalar_one()


def is_bulk(conn: sa.Connection, layer: Layer, rows: pa.Table) -> bool:
    """Whether `upsert` will load `rows` in bulk mode (as things stand now)."""
    return rows.num_rows > 0 and _fresh(conn, layer, rows) and _bulk(conn, layer, rows.num_rows)


def _rank(expr: str, order: Sequence[str]) -> str:
    literal = "array[" + ", ".join("'" + v.replace("'", "''") + "'" for v in order) + "]::text[]"
    return f"coalesce(array_position({literal}, {expr}), 0)"


def _insert_new(
    conn: sa.Connection,
    layer: Layer,
    rows: pa.Table,
    columns: list[str],
    stage: str,
    run_id: int | None,
) -> int:
    """Insert the staged rows whose (source, source_id) the table does not hold yet."""
    target = _quote(layer.name)
    cols = ", ".join(_quote(c) for c in columns)
    result = conn.exec_driver_sql(
        f"""
        insert into {target} ({cols}, geom, etl_run_id)
        select {cols}, {_geometry(rows)[2]}, %(run_id)s::integer from {stage} s
         where not exists (
            select 1 from {target} t where t.source = s.source and t.source_id = s.source_id)
        """,
        {"run_id": run_id},
    )
    return int(result.rowcount)


def insert(conn: sa.Connection, layer: Layer, rows: pa.Table, run_id: int | None = None) -> int:
    """Insert the rows that are new, leave the others alone; the number inserted.

    The intake of single records (etl.intake) writes through this: plain INSERT statements
    only — no COPY into the table, no UPDATE — which is what a role confined by row-level
    security may do.
    """
    if rows.num_rows == 0:
        return 0
    columns = _columns(layer, rows)
    stage = _stage(conn, layer, rows, columns)
    inserted = _insert_new(conn, layer, rows, columns, stage, run_id)
    conn.exec_driver_sql(f"drop table {stage}")
    return inserted


def _merge(
    conn: sa.Connection,
    layer: Layer,
    rows: pa.Table,
    columns: list[str],
    run_id: int,
    progress: Sequence[str],
) -> dict[str, int]:
    """Stage; insert the new rows; update the changed ones (never backwards); leave the rest.

    Two set-based statements (an anti-join insert and a join update) rather than
    INSERT … ON CONFLICT, which locks — and so writes — every conflicting row even when
    nothing changes. Callers serialise loads of one source (an advisory lock in the job).
    """
    stage = _stage(conn, layer, rows, columns)
    build_geom = _geometry(rows)[2]
    target = _quote(layer.name)
    compared = [c for c in columns if c not in ("source", "source_id")]
    old = ", ".join([*(f"t.{_quote(c)}" for c in compared), "t.geom"])
    new = ", ".join([*(f"s.{_quote(c)}" for c in compared), "s.g"])
    sets = ", ".join(f"{_quote(c)} = s.{_quote(c)}" for c in compared)
    inserted = _insert_new(conn, layer, rows, columns, stage, run_id)
    newer = ""
    stale = 0
    if progress and "status" in columns:
        rank_new, rank_old = _rank("s.status", progress), _rank("t.status", progress)
        newer = f" and {rank_new} >= {rank_old}"
        stale = conn.exec_driver_sql(
            f"select count(*) from {stage} s join {target} t using (source, source_id) "
            f"where {rank_new} < {rank_old}"
        ).scalar_one()
    updated = conn.exec_driver_sql(
        f"""
        update {target} t
           set {sets}, geom = s.g, etl_run_id = %(run_id)s, updated_at = now()
          from (select *, {build_geom} as g from {stage}) s
         where t.source = s.source and t.source_id = s.source_id
           and ({old}) is distinct from ({new}){newer}
        """,
        {"run_id": run_id},
    ).rowcount
    conn.exec_driver_sql(f"drop table {stage}")
    unchanged = rows.num_rows - inserted - updated
    return {"inserted": inserted, "updated": updated, "unchanged": unchanged, "stale": stale}


def _copy_new(
    conn: sa.Connection,
    layer: Layer,
    rows: pa.Table,
    columns: list[str],
    run_id: int,
    freeze: bool = False,
) -> dict[str, int]:
    """Nothing of this source is loaded yet (and the file is deduplicated): COPY straight in."""
    if "geom_x" in rows.column_names:
        x = rows.column("geom_x").to_numpy()
        y = rows.column("geom_y").to_numpy()
        geom = point_ewkb(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    else:
        geom = rows.column("geom").combine_chunks()
    run = pa.array(np.full(rows.num_rows, run_id, dtype=np.int32))
    data = pa.table(
        [*_typed(layer, rows, columns), geom, run],
        names=[*columns, "geom", "etl_run_id"],
    )
    write_copy(conn, _quote(layer.name), data, freeze=freeze)
    return {"inserted": rows.num_rows, "updated": 0, "unchanged": 0, "stale": 0}


def upsert(
    conn: sa.Connection,
    layer: Layer,
    rows: pa.Table,
    run_id: int,
    progress: Sequence[str] = (),
    timings: dict[str, float] | None = None,
    *,
    also_lock: Sequence[str] = (),
    advisory: Sequence[str] = (),
    policy: locks.LockPolicy | None = None,
    index_workers: int = 2,
) -> dict[str, int]:
    """Upsert `rows` into the layer's table; counts of inserted, updated, unchanged, stale,
    and `bulk` (the table's keys and indexes were rebuilt) and `replaced` (a bulk load into
    an empty table: it now holds exactly `rows`).

    `index_workers`: the parallel workers of a bulk load's index builds (0 when other work
    has the second core: then they only add to the CPU time).

    A bulk load takes, with the table's lock, ACCESS EXCLUSIVE locks on the tables of
    `also_lock` (what derives from the table and is rebuilt after it) and the advisory
    locks of `advisory`, all together (see `etl.locks`); `LockBusy` when they stay busy."""
    timings = timings if timings is not None else {}
    mark = time.monotonic()
    if rows.num_rows == 0:
        return {"inserted": 0, "updated": 0, "unchanged": 0, "stale": 0, "bulk": 0, "replaced": 0}
    columns = _columns(layer, rows)
    target = _quote(layer.name)
    fresh = _fresh(conn, layer, rows)
    bulk = fresh and _bulk(conn, layer, rows.num_rows)
    empty = False
    if bulk:
        switchable = _checks_switchable(conn, layer)
        referenced: list[str] = []
        if switchable:
            _hold_references(conn, layer, rows, run_id)
        else:
            referenced = sorted(
                {fk.referred_table.name for fk in layer.table.foreign_key_constraints}
                - {layer.name}
            )
        tables = [layer.name, *also_lock, *referenced]
        locks.acquire(
            conn,
            [(t, locks.ACCESS_EXCLUSIVE) for t in tables],
            advisory=advisory,
            policy=policy,
        )
        timings["locks"] = time.monotonic() - mark
        indexes = list(layer.table.indexes)
        constraints = _constraints(layer, foreign=not switchable)
        empty = not conn.exec_driver_sql(f"select exists (select 1 from {target})").scalar_one()
        if empty:
            # Emptied in this transaction: with wal_level=minimal (the managed cluster),
            # PostgreSQL then writes the table and its index builds without WAL.
            conn.exec_driver_sql(f"truncate {target}")
        for constraint in reversed(constraints):
            conn.execute(sa.schema.DropConstraint(constraint))
        for index in indexes:
            conn.execute(sa.schema.DropIndex(index))
        # Row-change triggers (the aggregates' and the tiles' change marks) are skipped too:
        # a bulk load's caller rebuilds what derives from the table in full (counts["bulk"]);
        # with them, the foreign keys' checks (`_hold_references` did their work).
        which = "all" if switchable else "user"
        conn.exec_driver_sql(f"alter table {target} disable trigger {which}")
    if fresh:
        freeze = empty and _isolation(conn) == "read committed"
        counts = _copy_new(conn, layer, rows, columns, run_id, freeze=freeze)
    else:
        counts = _merge(conn, layer, rows, columns, run_id, progress)
    timings["write"] = time.monotonic() - mark - timings.get("locks", 0.0)
    counts["bulk"] = int(bulk)
    counts["replaced"] = int(empty)
    if bulk:
        conn.exec_driver_sql(f"alter table {target} enable trigger {which}")
        # The tile cache's change marks (migration 0008) were skipped with them: every tile
        # of the layer changes, under a new epoch.
        conn.execute(sa.text("select tile_changes_renew(:layer)"), {"layer": layer.name})
        mark = time.monotonic()
        conn.exec_driver_sql("set local maintenance_work_mem = '1GB'")
        conn.execute(
            sa.select(
                sa.func.set_config("max_parallel_maintenance_workers", str(index_workers), True)
            )
        )
        ddls: list[sa.schema.ExecutableDDLElement] = [
            *map(sa.schema.AddConstraint, constraints),
            *map(sa.schema.CreateIndex, indexes),
        ]
        for ddl in ddls:
            step = time.monotonic()
            conn.execute(ddl)
            name = getattr(getattr(ddl, "element", None), "name", "")
            timings[f"  {name}"] = time.monotonic() - step
        conn.exec_driver_sql(f"analyze {target}")
        timings["rebuild indexes"] = time.monotonic() - mark
    return counts


def save_rejects(conn: sa.Connection, run_id: int, rejects: list[dict[str, Any]]) -> None:
    """Keep every rejected row, raw content included, with its reason."""
    if not rejects:
        return
    raw = conn.connection.driver_connection
    assert raw is not None
    columns = ["run_id", "row_number", "source_id", "reason", "message", "retryable", "raw"]
    table = etl_rejects.name
    with raw.cursor() as cur, cur.copy(f"copy {table} ({', '.join(columns)}) from stdin") as copy:
        for r in rejects:
            copy.write_row(
                (
                    run_id,
                    r["row_number"],
                    r["source_id"],
                    r["reason"],
                    r["message"],
                    r["retryable"],
                    json.dumps(r["raw"], ensure_ascii=False, default=str),
                )
            )
