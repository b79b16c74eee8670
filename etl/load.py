"""Load: COPY the prepared rows to a staging table, then upsert on (source, source_id).

New rows are inserted, changed rows updated, identical rows left alone — so re-running
the same file changes nothing. A layer with a `progress` order (status) never moves a
row backwards: an older extract loaded after a newer one leaves the newer state.
All of it runs on the caller's connection, inside the caller's transaction.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa

from layers import Layer, etl_rejects

COPY_CHUNK = 8 << 20
BOOKKEEPING = {"etl_run_id", "updated_at", "id"}


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
    return ["geom"], ["text"], "ST_SetSRID(geom::geometry, 4326)"


def _stage(conn: sa.Connection, layer: Layer, rows: pa.Table, columns: list[str]) -> str:
    """Create a temporary staging table and COPY the rows into it."""
    stage = f"stage_{layer.name}"
    geo_cols, geo_types, _ = _geometry(rows)
    defs = [f"{_quote(c)} {layer.table.c[c].type.compile(dialect=conn.dialect)}" for c in columns]
    defs += [f"{c} {t}" for c, t in zip(geo_cols, geo_types, strict=True)]
    conn.exec_driver_sql(f"drop table if exists {stage}")
    conn.exec_driver_sql(f"create temp table {stage} ({', '.join(defs)}) on commit drop")
    arrays = []
    for c in columns:
        arr = rows.column(c)
        if isinstance(layer.table.c[c].type, sa.Integer) and pa.types.is_floating(arr.type):
            arr = pc.cast(pc.round(arr), pa.int64(), safe=False)
        arrays.append(arr)
    arrays += [rows.column(c) for c in geo_cols]
    columns = [*columns, *geo_cols]
    out = pa.table(arrays, names=columns)
    buffer = io.BytesIO()
    pacsv.write_csv(out, buffer, write_options=pacsv.WriteOptions(include_header=False))
    data = buffer.getbuffer()
    cols = ", ".join(_quote(c) for c in columns)
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(f"copy {stage} ({cols}) from stdin (format csv)") as copy:
        for start in range(0, len(data), COPY_CHUNK):
            copy.write(data[start : start + COPY_CHUNK])
    return stage


def _rank(expr: str, order: Sequence[str]) -> str:
    literal = "array[" + ", ".join("'" + v.replace("'", "''") + "'" for v in order) + "]::text[]"
    return f"coalesce(array_position({literal}, {expr}), 0)"


def upsert(
    conn: sa.Connection,
    layer: Layer,
    rows: pa.Table,
    run_id: int,
    progress: Sequence[str] = (),
) -> dict[str, int]:
    """Upsert `rows` into the layer's table; counts of inserted, updated, unchanged, stale."""
    if rows.num_rows == 0:
        return {"inserted": 0, "updated": 0, "unchanged": 0, "stale": 0}
    columns = _columns(layer, rows)
    stage = _stage(conn, layer, rows, columns)
    build_geom = _geometry(rows)[2]
    target = _quote(layer.name)
    cols = ", ".join(_quote(c) for c in columns)
    compared = [c for c in columns if c not in ("source", "source_id")]
    sets = ", ".join(f"{_quote(c)} = excluded.{_quote(c)}" for c in compared)
    left = ", ".join([*(f"t.{_quote(c)}" for c in compared), "t.geom"])
    right = ", ".join([*(f"excluded.{_quote(c)}" for c in compared), "excluded.geom"])
    guard = ""
    stale = 0
    if progress and "status" in columns:
        guard = f" and {_rank('excluded.status', progress)} >= {_rank('t.status', progress)}"
        exists = conn.execute(
            sa.text(f"select exists (select 1 from {target} where source = :source)"),
            {"source": rows.column("source")[0].as_py()},
        ).scalar_one()
        if exists:
            stale = conn.exec_driver_sql(
                f"select count(*) from {stage} s join {target} t using (source, source_id) "
                f"where {_rank('s.status', progress)} < {_rank('t.status', progress)}"
            ).scalar_one()
    sql = f"""
        with up as (
            insert into {target} as t ({cols}, geom, etl_run_id, updated_at)
            select {cols}, {build_geom}, %(run_id)s, now() from {stage}
            on conflict (source, source_id) do update
               set {sets}, geom = excluded.geom, etl_run_id = excluded.etl_run_id,
                   updated_at = now()
             where ({left}) is distinct from ({right}){guard}
            returning (xmax = 0) as inserted
        )
        select count(*) filter (where inserted), count(*) filter (where not inserted) from up
    """
    inserted, updated = conn.exec_driver_sql(sql, {"run_id": run_id}).one()
    conn.exec_driver_sql(f"drop table {stage}")
    unchanged = rows.num_rows - inserted - updated
    return {"inserted": inserted, "updated": updated, "unchanged": unchanged, "stale": stale}


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
