"""The request aggregates of one batch, computed in NumPy from the rows a load holds in memory.

A source's first load into an empty table (`etl.load`, bulk mode) writes rows whose
aggregates are exactly those of the batch. Grouping the batch here — an integer code per key
column, one sort per table — takes about a second for a million requests and runs beside the
load's own COPY; PostgreSQL then only writes the rows, in the order of each table's unique
key, so that the key index builds from presorted input.

The expressions are those of `layers.aggregates` and `etl.aggregates`, whose SQL is the
reference: the local day of `received_at`, the cell of the point, the 0/1 measures.
`tests/etl/test_aggregates.py` compares both with a GROUP BY over the stored rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from etl.aggregates import BASIC_SATISFIED, RESOLVED, SATISFIED
from layers.aggregates import (
    CATEGORY_SPANS,
    CELL_DLAT,
    CELL_DLNG,
    CELL_ORIGIN,
    SPANS,
    request_cells_daily,
    request_cells_periods,
    request_daily,
    request_periods,
    request_street_daily,
)

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
DAY_US = 86_400_000_000
MAX_KEY = 1 << 62


class NotComputable(ValueError):
    """The batch lacks what this path needs (a time and a point on every row): use SQL."""


@dataclass(frozen=True)
class _Text:
    """A text key column as integer codes, ordered as PostgreSQL's C collation orders the
    values (bytewise), NULL last as a btree index puts it."""

    codes: Ints
    values: pa.Array

    @property
    def null(self) -> int:
        return len(self.values)

    def take(self, codes: Ints) -> pa.Array:
        null = codes == self.null
        return self.values.take(pa.array(np.where(null, 0, codes), mask=null))


def _text(column: pa.ChunkedArray) -> _Text:
    array = column.combine_chunks()
    values = pc.unique(array).drop_null()
    values = values.take(pc.array_sort_indices(values))
    codes = pc.index_in(array, value_set=values).fill_null(len(values))
    return _Text(np.asarray(codes.to_numpy(), dtype=np.int64), values)


def _group(keys: Sequence[Ints], weights: Sequence[Ints] = ()) -> tuple[list[Ints], list[Ints]]:
    """Group rows by the key columns, the first the most significant: each group's keys and
    [row count, *sums of `weights`], the groups in ascending key order."""
    lows = [int(k.min()) if len(k) else 0 for k in keys]
    sizes = [int(k.max()) - low + 1 if len(k) else 1 for k, low in zip(keys, lows, strict=True)]
    if np.prod(np.array(sizes, dtype=float)) >= MAX_KEY:
        raise NotComputable("the keys do not fit one 64-bit integer")
    combined = np.zeros(len(keys[0]), dtype=np.int64)
    for column, low, size in zip(keys, lows, sizes, strict=True):
        combined *= size
        combined += column - low
    # A sort and the run boundaries (np.unique is several times slower on 2M keys).
    order = np.argsort(combined) if weights else None
    ordered = combined[order] if order is not None else np.sort(combined)
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    unique = ordered[starts]
    counts = np.diff(np.append(starts, len(ordered)))
    sums = [np.add.reduceat(w[order], starts) if len(starts) else w[:0] for w in weights]
    out = []
    for low, size in zip(reversed(lows), reversed(sizes), strict=True):
        out.append(unique % size + low)
        unique = unique // size
    return out[::-1], [counts.astype(np.int64), *sums]


def _local_days(received: pa.ChunkedArray, zone: str) -> Ints:
    """Day numbers (since 1970-01-01) of the local date of each UTC time (`local_day`)."""
    local = pc.local_timestamp(received.cast(pa.timestamp("us", tz=zone)))
    micros = np.asarray(local.cast(pa.int64()).to_numpy(), dtype=np.int64)
    return np.floor_divide(micros, DAY_US)


def period_start(span: str, days: Ints) -> Ints:
    """`layers.aggregates.period_start` for day numbers."""
    months = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    if span == "quarter":
        months = months - months % 3
    first = months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    if span in ("month", "quarter"):
        return first
    return first + np.minimum((days - first) // 10, 2) * 10


def _date(days: Ints) -> pa.Array:
    return pa.array(days.astype(np.int32)).cast(pa.date32())


def _int32(values: Ints) -> pa.Array:
    return pa.array(values.astype(np.int32))


def _units(units: Sequence[tuple[str, _Text | Ints]], codes: Sequence[Ints]) -> dict[str, pa.Array]:
    return {
        name: key.take(code) if isinstance(key, _Text) else _int32(code)
        for (name, key), code in zip(units, codes, strict=True)
    }


def _codes(key: _Text | Ints) -> Ints:
    return key.codes if isinstance(key, _Text) else key


def _heat(
    day: Ints, units: Sequence[tuple[str, _Text | Ints]], category: _Text, names: list[str]
) -> tuple[pa.Table, list[Ints], Ints]:
    """The daily heat rows — per category (of the requests that have one) and the total
    (category NULL) — ordered like the unique key (category, day, units…); and the grouped
    keys and counts, for the periods."""
    has = category.codes != category.null
    keys = [
        np.concatenate([category.codes[has], np.full(len(day), category.null)]),
        np.concatenate([day[has], day]),
        *(np.concatenate([_codes(key)[has], _codes(key)]) for _, key in units),
    ]
    (cat, days, *unit_codes), (counts,) = _group(keys)
    columns = {
        "day": _date(days),
        "category": category.take(cat),
        "received": _int32(counts),
        **_units(units, unit_codes),
    }
    return pa.table({name: columns[name] for name in names}), [cat, days, *unit_codes], counts


def _periods(
    grouped: list[Ints],
    counts: Ints,
    units: Sequence[tuple[str, _Text | Ints]],
    category: _Text,
    names: list[str],
) -> pa.Table:
    """The period rows summed from the daily ones, ordered like the unique key (category,
    span, first_day, units…): totals per dekad, month and quarter, per month each category."""
    cat, days, *unit_codes = grouped
    parts: list[list[Ints]] = []
    for index, span in enumerate(SPANS):
        rows = np.ones(len(days), dtype=bool) if span in CATEGORY_SPANS else cat == category.null
        parts.append(
            [
                cat[rows],
                np.full(int(rows.sum()), index),
                period_start(span, days[rows]),
                *(codes[rows] for codes in unit_codes),
                counts[rows],
            ]
        )
    *keys, weights = (np.concatenate(column) for column in zip(*parts, strict=True))
    (pcat, spans, first, *punits), (_, sums) = _group(keys, [weights])
    columns = {
        "span": pa.array(np.array(SPANS, dtype=object)[spans], pa.string()),
        "first_day": _date(first),
        "category": category.take(pcat),
        "received": _int32(sums),
        **_units(units, punits),
    }
    return pa.table({name: columns[name] for name in names})


def _column(rows: pa.Table, name: str, kind: pa.DataType) -> pa.ChunkedArray:
    if name in rows.column_names:
        return rows.column(name)
    return pa.chunked_array([pa.nulls(rows.num_rows, kind)])


def _true(array: pa.ChunkedArray) -> Bools:
    return np.asarray(array.fill_null(False).to_numpy(zero_copy_only=False), dtype=np.bool_)


def _is(array: pa.ChunkedArray, value: str) -> Bools:
    return _true(pc.equal(array, pa.scalar(value)))


def batch_aggregates(
    rows: pa.Table, zone: str, ready: Callable[[str, pa.Table], None] | None = None
) -> dict[str, pa.Table]:
    """The rows of the four heat tables and of `request_street_daily` (without `updated_at`:
    the load's transaction time) for the requests in `rows`, each ordered like its key.

    `ready(name, table)` is called as each table is done (the heat tables in the order
    request_daily, request_periods, request_cells_daily, request_cells_periods): a consumer
    writes the first while the others are grouped."""
    done = ready or (lambda name, table: None)
    for name in ("received_at", "geom_x", "geom_y"):
        if name not in rows.column_names or rows.column(name).null_count:
            raise NotComputable(f"rows without {name}")
    text = {
        name: _text(_column(rows, name, pa.string()))
        for name in ("category", "street_code", "community_code", "grid_code")
    }
    day = _local_days(rows.column("received_at"), zone)
    x = np.asarray(rows.column("geom_x").to_numpy(), dtype=np.float64)
    y = np.asarray(rows.column("geom_y").to_numpy(), dtype=np.float64)
    cell_x = np.floor((x - CELL_ORIGIN[0]) / CELL_DLNG).astype(np.int64)
    cell_y = np.floor((y - CELL_ORIGIN[1]) / CELL_DLAT).astype(np.int64)
    street = text["street_code"]
    grid_units: list[tuple[str, _Text | Ints]] = [
        ("street_code", street),
        ("community_code", text["community_code"]),
        ("grid_code", text["grid_code"]),
    ]
    cell_units: list[tuple[str, _Text | Ints]] = [
        ("street_code", street),
        ("cell_x", cell_x),
        ("cell_y", cell_y),
    ]
    out: dict[str, pa.Table] = {}
    for daily, periods, units in (
        (request_daily, request_periods, grid_units),
        (request_cells_daily, request_cells_periods, cell_units),
    ):
        table, grouped, counts = _heat(day, units, text["category"], [c.name for c in daily.c])
        out[daily.name] = table
        done(daily.name, table)
        out[periods.name] = _periods(
            grouped, counts, units, text["category"], [c.name for c in periods.c]
        )
        done(periods.name, out[periods.name])

    valid = _true(_column(rows, "callback_valid", pa.bool_()))
    satisfaction = _column(rows, "satisfaction", pa.string())
    measures = [
        _is(_column(rows, "status", pa.string()), RESOLVED),
        valid,
        valid & _true(_column(rows, "callback_contacted", pa.bool_())),
        valid & _true(_column(rows, "callback_solved", pa.bool_())),
        valid & _is(satisfaction, SATISFIED),
        valid & _is(satisfaction, BASIC_SATISFIED),
    ]
    (days, streets), sums = _group([day, street.codes], [m.astype(np.int64) for m in measures])
    names = [c.name for c in request_street_daily.c if c.name != "updated_at"]
    columns = {
        "day": _date(days),
        "street_code": street.take(streets),
        **{name: _int32(values) for name, values in zip(names[2:], sums, strict=True)},
    }
    out[request_street_daily.name] = pa.table({name: columns[name] for name in names})
    done(request_street_daily.name, out[request_street_daily.name])
    return out
