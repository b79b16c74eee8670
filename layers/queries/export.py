"""Exports: any filtered slice of a layer as GeoJSON, CSV, GeoPackage or GeoParquet.

PostGIS serialises and the rows stream out of `COPY (SELECT …) TO STDOUT`, so memory stays
flat however large the slice. The HTTP API (`app.api`, which spools the chunks to a file:
`app.export`) and `blockdata export` share this module; it takes a `Connection`, a Slice
(layers.queries.slices) and the caller's clock, and knows no web framework.

Every export carries its provenance — layer, filter, time, row count, who — in the file
(GeoJSON member, Parquet key-value metadata, GeoPackage metadata) or, for CSV over HTTP, in
response headers. The count is taken before the rows are read, in the same REPEATABLE READ
transaction (the CLI's, and the request's: a view declared `@reads(..., snapshot=True)`), so
the two agree even while a load runs.

Times carry their UTC offset in the district's time zone (BLOCKDATA_TZ, the zone of the
slice): GeoJSON and CSV as ISO 8601 (2026-11-20T09:30:00+08:00), GeoParquet as timestamps
with the zone's name, GeoPackage as local wall-clock times with the offset the zone had at
export time (GDAL and QGIS show 2026/11/20 09:30:00+08) — never naive UTC. Coordinates have
COORDINATE_DECIMALS decimals (layers.queries.features), as in the OGC API.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from layers import Layer
from layers.queries.features import COORDINATE_DECIMALS, layer_feature
from layers.queries.params import ParamError
from layers.queries.slices import CRS84, Slice, count
from layers.queries.types import GEOMETRY_NAMES, export_arrow_type

FORMATS = ("geojson", "csv", "gpkg", "parquet")
CHUNK_BYTES = 256 * 1024
BOM = b"\xef\xbb\xbf"
GEOMETRY = "geometry"

Progress = Callable[[int], None]


def provenance(s: Slice, rows: int, user: str | None, fmt: str, now: dt.datetime) -> dict[str, Any]:
    """Where an export came from: enough to reproduce it or to judge how fresh it is.
    `now`: the caller's clock, shown in the slice's zone."""
    now = now.astimezone(s.zone)
    return {
        "source": "Blockdata 区块数据中心",
        "layer": s.layer.name,
        "title": s.layer.title,
        "format": fmt,
        "filters": s.filters,
        "rows": rows,
        "crs": CRS84,
        "generated_at": now.isoformat(timespec="seconds"),
        "generated_by": user,
    }


# --- COPY out --------------------------------------------------------------------------------


def copy_out(conn: sa.Connection, query: sa.Select[Any], options: str = "") -> Iterator[bytes]:
    """The rows of `query` as `COPY … TO STDOUT` sends them, one row per item.

    Runs on the connection's own session, so its transaction, role and zone apply. The
    parameters are bound by psycopg (COPY takes none from the server).
    """
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    raw = conn.connection.driver_connection
    with raw.cursor() as cursor:  # type: ignore[union-attr]
        statement = f"COPY ({compiled}) TO STDOUT {options}"
        with cursor.copy(statement, compiled.params) as copy:
            for row in copy:
                yield bytes(row)


def _local_times(conn: sa.Connection, s: Slice) -> None:
    """PostgreSQL writes times in the session's time zone: the slice's, for the rest of the
    transaction (the server's sessions have it already; an export of another zone would not)."""
    conn.execute(sa.select(sa.func.set_config("TimeZone", str(s.zone), True)))


# --- GeoJSON ---------------------------------------------------------------------------------


def _const(text: str) -> sa.ColumnElement[str]:
    return sa.literal(text, sa.Text)


def geojson_chunks(
    conn: sa.Connection,
    s: Slice,
    prov: dict[str, Any],
    progress: Progress | None = None,
    digits: int | None = COORDINATE_DECIMALS,
) -> Iterator[bytes]:
    """A FeatureCollection in pieces of about CHUNK_BYTES, one feature per line (the OGC API's
    features: layers.queries.features)."""
    _local_times(conn, s)
    head = {"type": "FeatureCollection", "name": s.layer.name, "provenance": prov}
    yield json.dumps(head, ensure_ascii=False)[:-1].encode() + b',"features":[\n'
    out = bytearray()
    sep = b""
    rows = 0
    feature = layer_feature(s.layer, digits)
    for row in copy_out(conn, s.select(feature.column).select_from(feature.source)):
        out += sep
        out += row[:-1]  # COPY ends each row with a newline
        sep = b",\n"
        rows += 1
        if len(out) >= CHUNK_BYTES:
            yield _unescape(out)
            out.clear()
            if progress is not None:
                progress(rows)
                rows = 0
    out += b"\n]}\n"
    yield _unescape(out)
    if progress is not None and rows:
        progress(rows)


def _unescape(data: bytearray) -> bytes:
    """COPY's text format doubles each backslash; JSON text has no other character it escapes
    (PostgreSQL's JSON escapes control characters itself)."""
    return bytes(data).replace(b"\\\\", b"\\")


# --- CSV ---------------------------------------------------------------------------------------


def _csv_value(column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    if isinstance(column.type, pg.ARRAY):
        return sa.func.array_to_string(column, ";")
    if isinstance(column.type, sa.Boolean):
        return sa.cast(column, sa.Text)  # true / false, not t / f
    return column


def _iso_time(column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    """A timestamptz as ISO 8601 with its offset in the session's (the district's) time zone,
    2026-11-20T09:30:00+08:00, as in the GeoJSON — not PostgreSQL's 2026-11-20 09:30:00+08."""
    # The JSON text without its quotes (cheaper than the #>> operator, which parses it).
    return sa.func.btrim(sa.cast(sa.func.to_json(column), sa.Text), sa.literal('"', sa.Text))


# What makes a spreadsheet read a cell as a formula (OWASP, "CSV injection"): = + - @ at the
# start, and tab or carriage return, which some spreadsheets skip before looking.
FORMULA_START = "=+-@\t\r"


def _csv_cell(column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    """A column as a CSV cell. Text that a spreadsheet would take for a formula gets a `'`
    in front, which Excel and LibreOffice show as text and do not display; numbers, dates
    and booleans are never touched (a negative number stays a number). The first character
    is compared as its code (`ascii`): a regular expression cost 40 % more on a whole CSV
    export, this about nothing (docs/benchmarks.md)."""
    value = _csv_value(column)
    if not isinstance(column.type, sa.String | pg.ARRAY):
        return value
    quoted = sa.func.concat(_const("'"), value)
    starts = sa.func.ascii(value).in_(sorted(ord(c) for c in FORMULA_START))
    return sa.case((starts, quoted), else_=value)


def csv_columns(layer: Layer, header: str = "name") -> list[sa.ColumnElement[Any]]:
    """The published fields (text that looks like a formula neutralised: `_csv_cell`), then
    lon and lat (points) or WKT (other geometries)."""
    t = layer.table
    labels = header == "label"
    out: list[sa.ColumnElement[Any]] = [
        (
            _iso_time(t.c[f.name])
            if isinstance(f.column.type, sa.DateTime)
            else _csv_cell(t.c[f.name])
        ).label(f.label if labels else f.name)
        for f in layer.published
    ]
    if layer.geometry_type == "POINT":
        out.append(
            sa.func.round(sa.cast(sa.func.ST_X(t.c.geom), sa.Numeric), COORDINATE_DECIMALS).label(
                "lon"
            )
        )
        out.append(
            sa.func.round(sa.cast(sa.func.ST_Y(t.c.geom), sa.Numeric), COORDINATE_DECIMALS).label(
                "lat"
            )
        )
    else:
        out.append(sa.func.ST_AsText(t.c.geom, COORDINATE_DECIMALS).label("wkt"))
    return out


def csv_chunks(
    conn: sa.Connection,
    s: Slice,
    header: str = "name",
    bom: bool = True,
    progress: Progress | None = None,
) -> Iterator[bytes]:
    """CSV with a header line, UTF-8 with a byte-order mark so that Excel reads Chinese."""
    _local_times(conn, s)
    out = bytearray(BOM if bom else b"")
    rows = -1  # the header line
    query = s.select(*csv_columns(s.layer, header))
    for row in copy_out(conn, query, "WITH (FORMAT csv, HEADER true)"):
        out += row
        rows += 1
        if len(out) >= CHUNK_BYTES:
            yield bytes(out)
            out.clear()
            if progress is not None and rows > 0:
                progress(rows)
                rows = 0
    yield bytes(out)
    if progress is not None and rows > 0:
        progress(rows)


# --- Arrow: GeoPackage and GeoParquet --------------------------------------------------------


ARROW_CHUNK_BYTES = 4 << 20  # whole rows of CSV per Arrow batch: about 9,000 requests


def arrow_batches(
    conn: sa.Connection, s: Slice, progress: Progress | None = None, tz: str | None = None
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The slice as Arrow record batches: published fields plus WKB `geometry`; times in
    time zone `tz` (an IANA name or a fixed offset such as +08:00; default the slice's).

    PostgreSQL writes CSV and pyarrow parses it in C++ with the registry's types, one chunk
    of whole rows at a time (COPY hands over whole rows), so memory stays bounded; the
    geometry travels as hex WKB and becomes binary here.
    """
    import pyarrow.csv as pacsv

    t = s.layer.table
    fields = list(s.layer.published)
    columns = [_csv_value(t.c[f.name]).label(f.name) for f in fields]
    columns.append(sa.func.encode(sa.func.ST_AsBinary(t.c.geom), "hex").label(GEOMETRY))
    zone = tz or str(s.zone)
    types = {f.name: export_arrow_type(f.column, zone) for f in fields}
    types[GEOMETRY] = pa.string()
    names = [*types]
    schema = pa.schema([*(pa.field(n, types[n]) for n in names[:-1]), (GEOMETRY, pa.binary())])
    read = pacsv.ReadOptions(column_names=names, use_threads=False)
    parse = pacsv.ParseOptions(newlines_in_values=True)
    convert = pacsv.ConvertOptions(
        column_types=types,
        true_values=["true"],
        false_values=["false"],
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )

    def parsed(chunk: bytearray) -> Iterator[pa.RecordBatch]:
        table = pacsv.read_csv(pa.py_buffer(chunk), read, parse, convert)
        hexes = table.column(GEOMETRY).to_pylist()
        wkb = pa.array([bytes.fromhex(h) for h in hexes], pa.binary())
        batch = pa.RecordBatch.from_arrays(
            [*(c.combine_chunks() for c in table.columns[:-1]), wkb], schema=schema
        )
        if progress is not None:
            progress(batch.num_rows)
        yield batch

    def batches() -> Iterator[pa.RecordBatch]:
        _local_times(conn, s)
        chunk = bytearray()
        for row in copy_out(conn, s.select(*columns), "WITH (FORMAT csv)"):
            chunk += row
            if len(chunk) >= ARROW_CHUNK_BYTES:
                yield from parsed(chunk)
                chunk = bytearray()
        if chunk:
            yield from parsed(chunk)

    return schema, batches()


def gpkg_offset(s: Slice, prov: dict[str, Any]) -> str:
    """The UTC offset the GeoPackage's times are written in: the district zone's at export
    time (`generated_at`), as ±HH:MM. GDAL writes a zone's name as naive UTC, an offset as
    local time with it; one offset serves the whole file (a zone with daylight saving shows
    the other season's times in this offset, the same instants)."""
    generated = dt.datetime.fromisoformat(prov["generated_at"]).astimezone(s.zone)
    offset = generated.utcoffset() or dt.timedelta()
    minutes = round(offset.total_seconds() / 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def write_gpkg(
    conn: sa.Connection, s: Slice, path: Path, prov: dict[str, Any], progress: Progress | None
) -> None:
    """A GeoPackage with one layer named after ours; the provenance in its metadata."""
    import pyogrio

    schema, batches = arrow_batches(conn, s, progress, gpkg_offset(s, prov))
    geometry_type = GEOMETRY_NAMES.get(s.layer.geometry_type, "Unknown")
    pyogrio.write_arrow(
        pa.RecordBatchReader.from_batches(schema, batches),
        str(path),
        layer=s.layer.name,
        driver="GPKG",
        geometry_name=GEOMETRY,
        geometry_type=geometry_type,
        crs="EPSG:4326",
        layer_metadata={"DESCRIPTION": s.layer.title, "PROVENANCE": _dumps(prov)},
        dataset_metadata={"PROVENANCE": _dumps(prov)},
        layer_options={"SPATIAL_INDEX": "YES"},
    )


def write_parquet(
    conn: sa.Connection, s: Slice, path: Path, prov: dict[str, Any], progress: Progress | None
) -> None:
    """GeoParquet 1.1: WKB geometry in CRS84, provenance as key-value metadata."""
    import pyarrow.parquet as pq

    schema, batches = arrow_batches(conn, s, progress)
    known = GEOMETRY_NAMES.get(s.layer.geometry_type)
    types = [known] if known else []  # [] : any type
    geo = {
        "version": "1.1.0",
        "primary_column": GEOMETRY,
        "columns": {GEOMETRY: {"encoding": "WKB", "geometry_types": types}},
    }
    schema = schema.with_metadata({"geo": json.dumps(geo), "blockdata:provenance": _dumps(prov)})
    with pq.ParquetWriter(str(path), schema, compression="zstd") as writer:
        for batch in batches:
            writer.write_batch(batch.replace_schema_metadata(schema.metadata))


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def write_file(
    conn: sa.Connection,
    s: Slice,
    fmt: str,
    path: Path,
    prov: dict[str, Any],
    progress: Progress | None = None,
) -> None:
    """Write the slice to `path` in `fmt` (one of FORMATS)."""
    if fmt == "gpkg":
        write_gpkg(conn, s, path, prov, progress)
    elif fmt == "parquet":
        write_parquet(conn, s, path, prov, progress)
    else:
        chunks = (
            geojson_chunks(conn, s, prov, progress)
            if fmt == "geojson"
            else csv_chunks(conn, s, progress=progress)
        )
        with path.open("wb") as out:
            for chunk in chunks:
                out.write(chunk)
    if fmt == "csv":
        path.with_name(path.name + ".provenance.json").write_text(
            json.dumps(prov, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )


PARALLEL_FROM_ROWS = 200_000


def prepare(conn: sa.Connection, rows: int) -> None:
    """Let a large export use parallel workers (the server's connections turn them off:
    they slow small queries); the setting ends with the transaction."""
    if rows >= PARALLEL_FROM_ROWS:
        conn.exec_driver_sql("set local max_parallel_workers_per_gather = 2")


def suffix_format(path: Path) -> str | None:
    """The format a file name implies, if any."""
    suffix = path.suffix.lower().lstrip(".")
    aliases = {"json": "geojson", "geoparquet": "parquet"}
    fmt = aliases.get(suffix, suffix)
    return fmt if fmt in FORMATS else None


def export_file(
    conn: sa.Connection,
    s: Slice,
    fmt: str,
    path: Path,
    user: str | None,
    now: dt.datetime,
    progress: Callable[[int], Progress] | None = None,
) -> dict[str, Any]:
    """Count, then write the slice to `path` (all or nothing: a temporary file renamed at the
    end); returns the provenance. `now` is the caller's clock; `progress(total)` makes the
    per-batch callback."""
    if fmt not in FORMATS:
        raise ParamError(f"格式无效 format must be one of {', '.join(FORMATS)}: {fmt!r}", "f")
    rows = count(conn, s)
    prov = provenance(s, rows, user, fmt, now)
    prepare(conn, rows)
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    partial.unlink(missing_ok=True)
    try:
        write_file(conn, s, fmt, partial, prov, progress(rows) if progress else None)
        partial.replace(path)
        side = partial.with_name(partial.name + ".provenance.json")
        if side.exists():
            side.replace(path.with_name(path.name + ".provenance.json"))
    finally:
        partial.unlink(missing_ok=True)
        partial.with_name(partial.name + ".provenance.json").unlink(missing_ok=True)
    return prov
