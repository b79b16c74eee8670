"""Validate, type, locate and enrich extracted rows; reject each bad row with its reason.

Pure steps on Arrow and NumPy columns (no database, no Flask). Columns stay in Arrow,
whose compute kernels work without a Python object per value — a million rows pass in
seconds. Output: the rows to load (typed, in WGS84, placed in grid, community and
street) and the rejected rows with their raw content, reason code, Chinese/English
message, and whether they can be retried later (e.g. once the geocoder lands).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeAlias, cast
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from etl import coords, crs_check
from etl.extract import GEOMETRY, ROW, BadRow, Extract, ExtractError
from etl.geocode import FINE_LEVELS, PLACED, BatchGeocoder, geocode_addresses
from etl.mapping import Mapping
from etl.place import Placer
from etl.rules import Routing, TimeLimits

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
Column: TypeAlias = pa.Array | npt.NDArray[Any]

DATETIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y%m%d%H%M%S",
    "%Y年%m月%d日 %H:%M:%S",
    "%Y年%m月%d日 %H:%M",
    "%Y年%m月%d日%H时%M分",
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%Y年%m月%d日",
)
TRUE_WORDS = ["是", "有", "有效", "y", "yes", "true", "t", "1", "已联系", "已解决", "√"]
FALSE_WORDS = ["否", "无", "无效", "n", "no", "false", "f", "0", "未联系", "未解决", "×"]
# Full-width digits and letters (１１６．３５, ＧＤ２０２６) turn up in numbers, codes, dates and
# addresses: those are folded with NFKC. Chinese words (categories, statuses) are only trimmed.
FOLDED_TYPES = (sa.DateTime, sa.Date, sa.Float, sa.Integer, sa.Boolean)
FOLDED_FIELDS = {"source_id", "address", "lng", "lat", "crs", "due_days", "case_no", "lane_code"}
LIST_SPLIT = re.compile(r"[、,，;；/|]+")
NUMBER = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
GROUPED_NUMBER = r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$"
# A unit after the number (NFKC has made ㎡ "m2" and ％ "%").
NUMBER_UNIT = r"\s*(%|平方米|m2|m²|个|户|天)$"
THREADS = min(4, os.cpu_count() or 1)
SWAP_MARGIN = 0.2  # degrees around the district in which a swapped pair is recognised
UTC = pa.timestamp("us", tz="UTC")
# A time this far past `now` is in the future (clocks of source systems drift a little).
FUTURE_SKEW = dt.timedelta(minutes=5)
# An end time this much before its start is out of order (sources that keep one time to
# the minute and the other to the second).
ORDER_SLACK = dt.timedelta(minutes=1)
# Fields a source may date ahead: the time limit.
MAY_BE_FUTURE = {"due_at"}
# Times that end what the layer's time field starts: never earlier than it.
END_TIMES = {"resolved_at", "closed_at"}


class ColumnsError(ExtractError):
    """The file's columns do not match the mapping; nothing can be loaded."""


@dataclass
class Prepared:
    table: pa.Table
    rejects: list[dict[str, Any]]
    warnings: Counter[str] = field(default_factory=Counter)
    read: int = 0
    geocoded: Counter[str] = field(default_factory=Counter)  # rows placed, by match level


def _np(mask: pa.Array | pa.ChunkedArray) -> BoolArray:
    """An Arrow boolean array as NumPy, null as False."""
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def _value(values: Column, i: int) -> object:
    return values[i].as_py() if isinstance(values, pa.Array) else values[i]


def _fmt(template: str, values: Column, **names: str) -> Callable[[int], str]:
    """A message for row i: the template with the row's value as {v}."""

    def message(i: int) -> str:
        return template.format(v=_value(values, i), **names)

    return message


class _Rejector:
    """Collects the first reason each row is rejected for."""

    def __init__(self, n: int) -> None:
        self.reason = np.full(n, None, dtype=object)
        self.message = np.full(n, None, dtype=object)
        self.retryable = np.zeros(n, dtype=bool)
        self.ok = np.ones(n, dtype=bool)

    def reject(
        self,
        mask: BoolArray,
        code: str,
        message: Callable[[int], str],
        retryable: bool | BoolArray = False,
    ) -> None:
        rows = np.flatnonzero(mask & self.ok)
        for i in rows:
            self.reason[i] = code
            self.message[i] = message(int(i))
        retry = np.broadcast_to(np.asarray(retryable, dtype=bool), mask.shape)
        self.retryable[rows] = retry[rows]
        self.ok[rows] = False


def _folded(mapping: Mapping, target: str) -> bool:
    if target in FOLDED_FIELDS:
        return True
    column = mapping.layer_obj.table.c.get(target)
    return column is not None and isinstance(column.type, FOLDED_TYPES)


def _clean(arr: pa.Array | pa.ChunkedArray, fold: bool) -> pa.Array:
    """Trim whitespace, fold full-width forms (NFKC) where asked, '' → null."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if fold:
        arr = pc.utf8_normalize(arr, form="NFKC")
    arr = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)


def _normal_text(arr: pa.Array) -> pa.Array:
    """Text of a date-time as written, folded to compare with a formatted one."""
    arr = pc.utf8_lower(arr)
    arr = pc.replace_substring_regex(arr, r"\s+", " ")
    return pc.replace_substring_regex(arr, r"(^|[^0-9])0+([0-9])", r"\1\2")


def _impossible(text: pa.Array, parsed: pa.Array, fmt: str, take: BoolArray) -> BoolArray:
    """Rows whose date does not exist (2025-02-30) though strptime took it.

    Arrow's strptime accepts any day up to 31 and a 60th second and carries the excess
    into the next month or minute. Such a value comes out on day 1–3 of a month (or
    from a text with ':60'), so only those rows are formatted back with the same format
    and compared with what the source wrote.
    """
    day = np.asarray(pc.fill_null(pc.day(parsed), 99).to_numpy(zero_copy_only=False))
    suspect = take & (day <= 3)
    if "%S" in fmt:
        second = np.asarray(pc.fill_null(pc.second(parsed), 99).to_numpy(zero_copy_only=False))
        suspect |= take & (second <= 1)
    idx = np.flatnonzero(suspect)
    bad = np.zeros(len(take), dtype=bool)
    if len(idx) == 0:
        return bad
    some = text.take(pa.array(idx))
    overflow = pc.or_(
        pc.and_(
            pc.less_equal(pc.day(parsed.take(pa.array(idx))), 3),
            pc.match_substring_regex(some, "29|30|31"),
        ),
        pc.match_substring_regex(some, ":6[01]"),
    )
    idx = idx[_np(overflow)]
    if len(idx) == 0:
        return bad
    rows = pa.array(idx)
    back = pc.strftime(pc.cast(parsed.take(rows), pa.timestamp("s")), format=fmt)
    differs = _np(pc.not_equal(_normal_text(back), _normal_text(text.take(rows))))
    bad[idx[differs]] = True
    return bad


_ISO_OFFSET = re.compile(
    r"^(?P<wall>\d{4}[-/]\d{1,2}[-/]\d{1,2}[T ]\d{1,2}:\d{2}(?::\d{2})?)"
    r"(?P<fraction>\.\d{1,9})?(?P<offset>[Zz]|[+-]\d{2}(?::?\d{2})?)?$"
)


def _parse_wall(arr: pa.Array, formats: tuple[str, ...]) -> tuple[pa.Array, pa.Array, BoolArray]:
    """Wall-clock times (naive), UTC offsets in µs (null when the text has none), bad mask.

    The mapping's formats and the common spellings first; then ISO 8601 with fractional
    seconds or an offset (2026-11-05T08:30:00.250+08:00, …Z); then Excel serial numbers.
    A date that does not exist is bad, never moved to the next month.
    """
    n = len(arr)
    result = pa.nulls(n, pa.timestamp("us"))
    offset = pa.nulls(n, pa.int64())
    todo = _np(pc.is_valid(arr))
    bad = np.zeros(n, dtype=bool)
    for fmt in (*formats, *DATETIME_FORMATS):
        if not todo.any():
            break
        parsed = pc.strptime(arr, format=fmt, unit="us", error_is_null=True)
        take = todo & _np(pc.is_valid(parsed))
        impossible = _impossible(arr, parsed, fmt, take)
        take &= ~impossible
        bad |= impossible
        todo &= ~take & ~impossible
        if take.any():
            result = pc.if_else(pa.array(take), parsed, result)
    if todo.any():
        idx = np.flatnonzero(todo)
        parts = pc.extract_regex(arr.take(pa.array(idx)), _ISO_OFFSET.pattern)
        wall = pc.struct_field(parts, "wall")
        extra = pc.or_(
            pc.not_equal(pc.struct_field(parts, "fraction"), ""),
            pc.not_equal(pc.struct_field(parts, "offset"), ""),
        )
        iso = _np(extra)
        if iso.any():
            sub = idx[iso]
            stamps, _, wall_bad = _parse_wall(pc.filter(wall, pa.array(iso)), ())
            fraction = pc.filter(pc.struct_field(parts, "fraction"), pa.array(iso)).to_pylist()
            micros = np.array(
                [round(float(f) * 1_000_000) if f else 0 for f in fraction], dtype=np.int64
            )
            marks = pc.filter(pc.struct_field(parts, "offset"), pa.array(iso)).to_pylist()
            shift = [_offset_us(m) for m in marks]
            wall_us = np.asarray(
                pc.cast(stamps, pa.int64()).to_numpy(zero_copy_only=False), dtype=float
            )
            ok = ~wall_bad & ~np.isnan(wall_us)
            values = result.to_numpy(zero_copy_only=False).astype("datetime64[us]")
            values[sub[ok]] = (wall_us[ok].astype(np.int64) + micros[ok]).astype("datetime64[us]")
            result = pa.array(values, pa.timestamp("us"))
            offsets = offset.to_pylist()
            for i, row in enumerate(sub):
                if ok[i]:
                    offsets[row] = shift[i]
            offset = pa.array(offsets, pa.int64())
            todo[sub[ok]] = False
            bad[sub[wall_bad]] = True
            todo[sub[wall_bad]] = False
    if todo.any():
        # Excel serial numbers (days since 1899-12-30) from sources that lost the cell type.
        idx = np.flatnonzero(todo)
        serial = pd.to_numeric(pd.Series(arr.take(idx).to_pylist(), dtype=object), errors="coerce")
        ok = serial.between(20000, 80000).to_numpy()
        if ok.any():
            stamps = pd.Timestamp("1899-12-30") + pd.to_timedelta(serial[ok], unit="D")
            filled = result.to_numpy(zero_copy_only=False).astype("datetime64[us]")
            filled[idx[ok]] = stamps.to_numpy().astype("datetime64[us]")
            result = pa.array(filled, pa.timestamp("us"))
            todo[idx[ok]] = False
    return result, offset, bad | todo


def _offset_us(mark: str | None) -> int | None:
    """'+08:00', '+0800', '+08', 'Z' → the offset east of UTC in µs; None when absent."""
    if not mark:
        return None
    if mark in ("Z", "z"):
        return 0
    digits = mark[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + (int(digits[2:4]) if len(digits) > 2 else 0)
    return (1 if mark[0] == "+" else -1) * minutes * 60_000_000


def parse_datetime(
    arr: pa.Array, formats: tuple[str, ...], zone: str
) -> tuple[pa.Array, BoolArray]:
    """Date-times in many spellings as UTC instants; bad mask.

    A time without an offset is the district's local time (`zone`); one with an offset
    (ISO 8601: +08:00, Z) is converted by its own offset.
    """
    wall, offset, bad = _parse_wall(arr, formats)
    utc = to_utc(wall, zone)
    if pc.any(pc.is_valid(offset)).as_py():
        shifted = pc.cast(
            pc.subtract(pc.cast(wall, pa.int64()), pc.fill_null(offset, 0)),
            pa.timestamp("us", tz="UTC"),
        )
        utc = pc.if_else(pc.is_valid(offset), shifted, utc)
    return utc, bad


def to_utc(local: pa.Array, zone: str) -> pa.Array:
    """Naive local wall times in `zone` as UTC instants.

    One subtraction when the zone keeps one offset over the data's days (Beijing has had
    no daylight saving since 1991); Arrow's time-zone kernel otherwise.
    """
    offset = _fixed_offset(local, zone)
    if offset is not None:
        return pc.cast(pc.subtract(local, pa.scalar(offset, pa.duration("us"))), UTC)
    aware = pc.assume_timezone(local, timezone=zone, ambiguous="earliest", nonexistent="earliest")
    return pc.cast(aware, UTC)


def _fixed_offset(local: pa.Array, zone: str) -> int | None:
    """The zone's one UTC offset (µs) over the days the values span, or None."""
    low, high = pc.min_max(local).values()
    if not low.is_valid:
        return 0
    first, last = low.as_py().date(), high.as_py().date()
    if (last - first).days > 20_000:
        return None
    info = ZoneInfo(zone)
    offsets = {
        dt.datetime.combine(first + dt.timedelta(days=d), dt.time(12), info).utcoffset()
        for d in range((last - first).days + 1)
    }
    if len(offsets) != 1:
        return None
    (delta,) = offsets
    return None if delta is None else int(delta.total_seconds() * 1_000_000)


def local_dates(utc: pa.Array, zone: str) -> pa.Array:
    """The district-local calendar day of each instant."""
    offset = _fixed_offset(pc.cast(utc, pa.timestamp("us")), zone)
    if offset is not None:
        local = pc.add(pc.cast(utc, pa.timestamp("us")), pa.scalar(offset, pa.duration("us")))
    else:
        local = pc.local_timestamp(pc.cast(utc, pa.timestamp("us", tz=zone)))
    return pc.cast(local, pa.date32())


def parse_number(
    arr: pa.Array, *, grouping: bool = True, units: bool = True
) -> tuple[FloatArray, BoolArray]:
    """Numbers; NaN where empty; bad mask.

    Only what cannot change the value is removed: one unit at the end (`units`: 120平方米,
    85%, 7天) and thousands separators in their right places (`grouping`: 1,234.5). Any
    other comma or space is an error, never dropped: '116,38' is not 11638, and no
    coordinate has a thousands separator.
    """
    text = pc.replace_substring_regex(arr, NUMBER_UNIT, "") if units else arr
    good = pc.match_substring_regex(text, NUMBER)
    if grouping:
        grouped = pc.match_substring_regex(text, GROUPED_NUMBER)
        text = pc.if_else(grouped, pc.replace_substring(text, ",", ""), text)
        good = pc.or_(good, grouped)
    numbers = pc.cast(pc.if_else(good, text, pa.scalar(None, pa.string())), pa.float64())
    values = np.asarray(pc.fill_null(numbers, np.nan).to_numpy(zero_copy_only=False), dtype=float)
    bad = _np(pc.is_valid(arr)) & ~_np(good)
    return values, bad


def parse_bool(arr: pa.Array) -> tuple[pa.Array, BoolArray]:
    lowered = pc.utf8_lower(arr)
    is_true = pc.is_in(lowered, value_set=pa.array(TRUE_WORDS))
    is_false = pc.is_in(lowered, value_set=pa.array(FALSE_WORDS))
    out = pc.if_else(is_true, True, pc.if_else(is_false, False, pa.scalar(None, pa.bool_())))
    bad = _np(pc.is_valid(arr)) & ~_np(is_true) & ~_np(is_false)
    return out, bad


def map_values(arr: pa.Array, table: dict[str, str]) -> tuple[pa.Array, BoolArray]:
    """Canonical values through the mapping's value table; mask of unknown non-empty ones."""
    keys = pa.array(list(table.keys()), pa.string())
    canonical = pa.array(list(table.values()), pa.string())
    idx = pc.index_in(arr, value_set=keys)
    mapped = pc.take(canonical, idx)
    unknown = _np(pc.is_valid(arr)) & ~_np(pc.is_valid(idx))
    return mapped, unknown


def _split_list(arr: pa.Array) -> pa.Array:
    """'城管执法队、市场监管所' → ['城管执法队', '市场监管所'] (a text[] column)."""
    return pa.array(
        [
            [p.strip() for p in LIST_SPLIT.split(text) if p.strip()] if text is not None else None
            for text in arr.to_pylist()
        ],
        pa.list_(pa.string()),
    )


def _label(mapping: Mapping, name: str) -> str:
    column = mapping.columns.get(name, name)
    try:
        label = mapping.layer_obj.field(name).label
    except KeyError:
        return column
    return label if label == column else f"{label}({column})"


def required_columns(mapping: Mapping) -> list[str]:
    """The source columns a file must have for the mapping."""
    return sorted({c for t, c in mapping.columns.items() if t in mapping.required})


def _check_columns(extract: Extract, mapping: Mapping, warnings: Counter[str]) -> None:
    present = set(extract.columns)
    absent = [c for c in required_columns(mapping) if c not in present]
    if absent:
        where = f"sheet {extract.sheet!r} " if extract.sheet is not None else "the file "
        raise ColumnsError(
            f"缺少必需的列 missing required column(s) {absent}; {where}has {extract.columns}"
        )
    if extract.sheet is not None:
        warnings[f"read_sheet:{extract.sheet}"] = extract.rows
    for name, rows in extract.ignored_sheets.items():
        warnings[f"ignored_sheet:{name}"] = rows
    for target, column in mapping.columns.items():
        if column not in present and target != "geometry":
            warnings[f"missing_column:{column}"] += 1
    mapped = set(mapping.columns.values())
    for column in extract.columns:
        if column not in mapped:
            warnings[f"ignored_column:{column}"] += 1


def prepare(
    extract: Extract,
    mapping: Mapping,
    placer: Placer,
    routing: Routing,
    limits: TimeLimits,
    crs: str | None = None,
    *,
    check_crs: bool = True,
    now: dt.datetime | None = None,
    zone: str,
    geocoder: BatchGeocoder | None = None,
) -> Prepared:
    """Turn an extract into rows ready to load, and rejects with reasons.

    `zone` is the district's time zone (an IANA name): times without an offset are
    wall-clock times there; `now` (timezone-aware, default the clock) decides what is in
    the future. With `check_crs`, a file whose points fit another coordinate system far
    better than the declared one raises CrsMismatch; without it the mismatch is only
    noted in the warnings. With a `geocoder`, rows with an address and no coordinates
    are placed by their address (their match level in `geocode_quality`); without one
    they are rejected as `needs_geocoding`.
    """
    layer = mapping.layer_obj
    table = extract.table
    n = table.num_rows
    warnings: Counter[str] = Counter()
    _check_columns(extract, mapping, warnings)
    now = dt.datetime.now(dt.UTC) if now is None else now
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got {now!r}")

    rej = _Rejector(n)
    _reject_nul(extract, rej)
    empty = pa.nulls(n, pa.string())

    def cleaned(item: tuple[str, str]) -> pa.Array:
        target, column = item
        if column not in extract.columns:
            return empty
        return _clean(table.column(column), fold=_folded(mapping, target))

    # Arrow's kernels release the GIL: the columns are cleaned on both cores.
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        clean = dict(zip(mapping.columns, pool.map(cleaned, mapping.columns.items()), strict=True))
    for target in mapping.required:
        rej.reject(
            _np(pc.is_null(clean[target])),
            "missing_required",
            _fmt("缺少必填字段 {label}", clean[target], label=_label(mapping, target)),
        )

    out: dict[str, Column] = {}
    times: dict[str, pa.Array] = {}
    columns = layer.table.c
    # The time columns are parsed on both cores too (Arrow's strptime releases the GIL).
    timed = [
        target
        for target in clean
        if target in columns and isinstance(columns[target].type, (sa.DateTime, sa.Date))
    ]
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        parsed = dict(
            zip(
                timed,
                pool.map(
                    lambda target: parse_datetime(clean[target], mapping.datetime_formats, zone),
                    timed,
                ),
                strict=True,
            )
        )
    for target, values in clean.items():
        if target in ("lng", "lat", "crs", "geometry"):
            continue
        label = _label(mapping, target)
        if target == "due_days":
            out["_due_days"], bad = parse_number(values)
            rej.reject(bad, "bad_number", _fmt("办理期限不是数字 not a number: {v!r}", values))
            continue
        ctype = columns[target].type
        if isinstance(ctype, (sa.DateTime, sa.Date)):
            utc, bad = parsed[target]
            rej.reject(
                bad,
                "bad_date",
                _fmt(
                    "日期无法解析或不存在 unparseable or impossible date {label}: {v!r}",
                    values,
                    label=label,
                ),
            )
            if isinstance(ctype, sa.DateTime):
                out[target] = times[target] = utc
            else:
                out[target] = local_dates(utc, zone)
        elif isinstance(ctype, sa.Boolean):
            out[target], bad = parse_bool(values)
            rej.reject(
                bad,
                "bad_value",
                _fmt("不是是/否 not a yes/no value {label}: {v!r}", values, label=label),
            )
        elif isinstance(ctype, (sa.Float, sa.Integer)):
            out[target], bad = parse_number(values)
            rej.reject(
                bad, "bad_number", _fmt("不是数字 not a number {label}: {v!r}", values, label=label)
            )
        elif isinstance(ctype, pg.ARRAY):
            out[target] = _split_list(values)
        elif target in mapping.values:
            out[target], unknown = map_values(values, mapping.values[target])
            allowed = "/".join(sorted(set(mapping.values[target].values())))
            rej.reject(
                unknown,
                "bad_value",
                _fmt(
                    "取值无效 invalid value {label}: {v!r} (allowed: {allowed})",
                    values,
                    label=label,
                    allowed=allowed,
                ),
            )
        else:
            out[target] = values

    _check_times(mapping, times, clean, rej, now, zone)

    located = _locate(extract, mapping, placer, clean, rej, warnings, crs, check_crs, geocoder)
    x, y = located.point
    place = placer.place(x, y)
    codes = {name: getattr(place, name) for name in PLACED}
    near_boundary = place.near_boundary
    geocoded: Counter[str] = Counter()
    if located.geocoded is not None:
        # A house or a place is placed by its point, like coordinates; a road, community
        # or street keeps only the codes its match found (never a grid it does not know).
        coarse = located.geocoded & ~np.isin(located.quality, FINE_LEVELS)
        codes = {k: np.where(coarse, located.codes[k], v) for k, v in codes.items()}
        near_boundary = near_boundary & ~coarse
    outside = ~np.isnan(x) & ~place.inside
    rej.reject(
        outside,
        "outside_district",
        lambda i: f"坐标不在辖区内 point outside the district: ({x[i]:.6f}, {y[i]:.6f})",
        retryable=located.has_address,
    )
    out.update(
        **codes,
        near_boundary=near_boundary,
        geocode_quality=located.quality,
        **located.columns,
    )
    if "coord_system" in columns:
        out["coord_system"] = located.crs
    near = int((near_boundary & rej.ok).sum())
    if near:
        warnings["near_boundary"] += near

    rows = table.column(ROW).to_numpy()
    _dedupe(extract, mapping, clean["source_id"], rej, rows)
    _enrich(layer.name, out, routing, limits, zone, warnings)
    if located.geocoded is not None:
        levels = located.quality[located.geocoded & rej.ok]
        geocoded.update(str(level) for level in levels)

    result: dict[str, pa.Array] = {"source": pa.array(np.full(n, mapping.source))}
    for name, values in out.items():
        if not name.startswith("_"):
            result[name] = (
                values if isinstance(values, pa.Array) else pa.array(values, from_pandas=True)
            )
    result[ROW] = pa.array(rows)
    keep = _drop_rows(pa.table(result), ~rej.ok)
    return Prepared(
        table=keep,
        rejects=_rejects(extract, clean, rej, rows),
        warnings=warnings,
        read=extract.rows,
        geocoded=Counter({str(k): int(v) for k, v in geocoded.items()}),
    )


def _reject_nul(extract: Extract, rej: _Rejector) -> None:
    """A NUL byte cannot be stored in PostgreSQL text: reject its row, naming the column."""
    where = np.full(extract.table.num_rows, None, dtype=object)
    for column in extract.columns:
        values = extract.table.column(column)
        if not pa.types.is_string(values.type) or not _holds_zero_byte(values):
            continue
        hit = _np(pc.match_substring(values, "\x00"))
        fresh = hit & pd.isna(where)
        where[fresh] = column
    found = ~pd.isna(where)
    rej.reject(
        found,
        "nul_byte",
        lambda i: f"含 NUL 字符 the value of {where[i]!r} holds a NUL byte (a damaged file?)",
    )


def _holds_zero_byte(values: pa.ChunkedArray) -> bool:
    """A quick look at the column's character buffers: is there a zero byte at all?"""
    for chunk in values.chunks:
        data = chunk.buffers()[2]
        if data is not None and not np.frombuffer(data, dtype=np.uint8).all():
            return True
    return False


def _check_times(
    mapping: Mapping,
    times: dict[str, pa.Array],
    clean: dict[str, pa.Array],
    rej: _Rejector,
    now: dt.datetime,
    tz: str,
) -> None:
    """Reject rows with a time in the future, or an end before the start (the time field).

    Rule: a time later than `now` + FUTURE_SKEW is rejected as `future_time`; an end time
    (resolved_at, closed_at) earlier than the layer's time field (received_at, opened_at)
    by more than ORDER_SLACK is rejected as `time_order`. Either means one of the row's times is
    wrong, and loading it would put the row on the wrong day or make it look resolved
    before it arrived; the rejected row keeps its raw values for the source to fix.
    """
    if not times:
        return
    zone = ZoneInfo(tz)
    limit = np.datetime64((now.astimezone(dt.UTC) + FUTURE_SKEW).replace(tzinfo=None), "us")
    shown = now.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    stamps = {
        t: np.asarray(a.cast(pa.timestamp("us")).to_numpy(zero_copy_only=False), "datetime64[us]")
        for t, a in times.items()
    }
    for target, values in stamps.items():
        if target in MAY_BE_FUTURE:
            continue
        rej.reject(
            values > limit,
            "future_time",
            _fmt(
                "时间在未来 {label} is in the future: {v!r} (now {now})",
                clean[target],
                label=_label(mapping, target),
                now=shown,
            ),
        )
    start = mapping.layer_obj.time_field
    if start not in stamps:
        return
    earliest = stamps[start] - np.timedelta64(int(ORDER_SLACK.total_seconds()), "s")
    for target, values in stamps.items():
        if target not in END_TIMES:
            continue
        rej.reject(values < earliest, "time_order", _order_message(mapping, clean, start, target))


def _order_message(
    mapping: Mapping, clean: dict[str, pa.Array], start: str, end: str
) -> Callable[[int], str]:
    def message(i: int) -> str:
        return (
            f"时间早于{_label(mapping, start)} {_label(mapping, end)} is earlier than "
            f"{start}: {_value(clean[end], i)!r} < {_value(clean[start], i)!r}"
        )

    return message


def _to_wgs84(
    lng: FloatArray, lat: FloatArray, crs: npt.NDArray[np.object_]
) -> tuple[FloatArray, FloatArray]:
    """coords.to_wgs84 in halves on two threads (NumPy releases the GIL in its loops)."""
    if len(lng) < 200_000:
        return coords.to_wgs84(lng, lat, crs)
    parts = np.array_split(np.arange(len(lng)), THREADS)
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        done = list(pool.map(lambda i: coords.to_wgs84(lng[i], lat[i], crs[i]), parts))
    return np.concatenate([d[0] for d in done]), np.concatenate([d[1] for d in done])


def _drop_rows(table: pa.Table, drop: BoolArray) -> pa.Table:
    """The table without the dropped rows: zero-copy slices between them (few are dropped)."""
    gone = np.flatnonzero(drop)
    if len(gone) == 0:
        return table
    if len(gone) > len(drop) // 10:
        return table.filter(pa.array(~drop))
    starts = np.concatenate([[0], gone + 1])
    ends = np.concatenate([gone, [len(drop)]])
    pieces = [table.slice(a, b - a) for a, b in zip(starts, ends, strict=True) if b > a]
    return pa.concat_tables(pieces) if pieces else table.slice(0, 0)


@dataclass
class _Located:
    columns: dict[str, Column]  # geom_x/geom_y for points, geom (EWKB hex) for shapes
    point: tuple[FloatArray, FloatArray]  # where each row is placed; NaN when unknown
    quality: npt.NDArray[np.object_]
    has_address: BoolArray
    crs: npt.NDArray[np.object_]  # each row's source coordinate system
    # Rows placed by their address: the codes their match level allows (etl.geocode).
    geocoded: BoolArray | None = None
    codes: dict[str, npt.NDArray[np.object_]] = field(default_factory=dict)


def _locate(
    extract: Extract,
    mapping: Mapping,
    placer: Placer,
    clean: dict[str, pa.Array],
    rej: _Rejector,
    warnings: Counter[str],
    crs_override: str | None,
    check_crs: bool,
    geocoder: BatchGeocoder | None = None,
) -> _Located:
    """WGS84 locations, and the point each row is placed by.

    A row's own coordinate system (the mapped `crs` column) wins; `crs_override` (the
    run's --crs) replaces the mapping's default for rows that do not say. Before the
    points are converted, crs_check compares the declared systems with the others.
    A row with an address and no coordinates (or 0, 0) is placed by the `geocoder`
    (`_geocode`); without one it is kept as `needs_geocoding`.
    """
    n = extract.table.num_rows
    default = coords.normalize_crs(crs_override or mapping.crs or "wgs84")
    if "crs" not in clean:
        row_crs = np.full(n, default, dtype=object)
    else:
        raw_crs = clean["crs"]
        labels = pc.unique(raw_crs).to_pylist()
        codes = dict(zip(labels, coords.normalize_crs_array(labels, default=default), strict=True))
        lookup = pa.array([codes[v] for v in labels], pa.string())
        idx = pc.index_in(raw_crs, pa.array(labels, pa.string()))
        row_crs = np.asarray(pc.take(lookup, idx).to_numpy(zero_copy_only=False), dtype=object)
        unknown = pd.isna(row_crs)
        rej.reject(
            unknown,
            "unknown_crs",
            _fmt("未知坐标系 unknown coordinate system: {v!r}", raw_crs),
        )
        row_crs[unknown] = default
    address = clean.get("address", pa.nulls(n, pa.string()))
    has_address = _np(pc.is_valid(address))

    if GEOMETRY in extract.table.column_names:
        return _locate_geometry(
            extract, mapping, placer, row_crs, rej, has_address, warnings, check_crs
        )

    # A coordinate has no unit and no thousands separator: '116,38' is a bad number.
    lng, bad_lng = parse_number(
        clean.get("lng", pa.nulls(n, pa.string())), grouping=False, units=False
    )
    lat, bad_lat = parse_number(
        clean.get("lat", pa.nulls(n, pa.string())), grouping=False, units=False
    )
    rej.reject(
        bad_lng | bad_lat,
        "bad_number",
        lambda i: (
            f"坐标不是数字 coordinates are not numbers: "
            f"({_value(clean['lng'], i)!r}, {_value(clean['lat'], i)!r})"
        ),
    )
    zero = (lng == 0) & (lat == 0)
    missing = np.isnan(lng) | np.isnan(lat) | zero
    if geocoder is None:
        rej.reject(
            missing & has_address,
            "needs_geocoding",
            _fmt("无坐标, 待地址解析 no coordinates, needs geocoding: {v!r}", address),
            retryable=True,
        )
    rej.reject(
        missing & ~has_address,
        "no_location",
        lambda i: (
            "既无坐标也无地址 neither coordinates nor address" + (" (0, 0)" if zero[i] else "")
        ),
    )
    lng = np.where(missing, np.nan, lng)
    lat = np.where(missing, np.nan, lat)
    swapped = (
        ~missing
        & ~placer.in_extent(lng, lat, SWAP_MARGIN)
        & placer.in_extent(lat, lng, SWAP_MARGIN)
    )
    if (swapped & rej.ok).any():
        warnings["swapped_lnglat"] += int((swapped & rej.ok).sum())
    lng, lat = np.where(swapped, lat, lng), np.where(swapped, lng, lat)
    _crs_check(lng, lat, row_crs, rej.ok & ~missing, placer, warnings, check_crs)
    wlng, wlat = _to_wgs84(lng, lat, row_crs)
    quality = np.where(swapped, "coordinates_swapped", "coordinates").astype(object)
    located = _Located(
        columns={"geom_x": wlng, "geom_y": wlat},
        point=(wlng, wlat),
        quality=quality,
        has_address=has_address,
        crs=row_crs,
    )
    if geocoder is not None:
        _geocode(geocoder, address, missing & has_address & rej.ok, rej, located)
    return located


def _geocode(
    geocoder: BatchGeocoder,
    address: pa.Array,
    todo: BoolArray,
    rej: _Rejector,
    located: _Located,
) -> None:
    """Place the `todo` rows by their address (in `located`, in place); reject the ones
    the geocoder cannot place, or not unambiguously, as retryable (the gazetteer grows)."""
    if not todo.any():
        return
    found = geocode_addresses(geocoder, address, todo)

    def why(prefix: str) -> Callable[[int], str]:
        return lambda i: f"{prefix}: {_value(address, i)!r}: {found.message[i]}"

    rej.reject(found.failed, "geocode_failed", why("地址无法定位 geocoding failed"), True)
    rej.reject(found.ambiguous, "geocode_ambiguous", why("地址有歧义 ambiguous address"), True)
    placed = todo & ~found.failed & ~found.ambiguous
    wlng, wlat = located.point
    wlng[placed] = found.lng[placed]
    wlat[placed] = found.lat[placed]
    located.quality[placed] = found.level[placed]
    located.crs = located.crs.copy()
    located.crs[placed] = None  # no source coordinates: nothing was converted
    located.geocoded = placed
    located.codes = found.codes


def _crs_check(
    lng: FloatArray,
    lat: FloatArray,
    row_crs: npt.NDArray[np.object_],
    usable: BoolArray,
    placer: Placer,
    warnings: Counter[str],
    check_crs: bool,
) -> None:
    """Raise CrsMismatch when another system fits the points far better (or note it)."""
    findings = crs_check.check(
        lng[usable], lat[usable], row_crs[usable], lambda x, y: placer.place(x, y).inside
    )
    if not findings:
        return
    if check_crs:
        raise crs_check.CrsMismatch(findings)
    for finding in findings:
        warnings[f"crs_mismatch:{finding.declared}->{finding.likely}"] += finding.rows


def _locate_geometry(
    extract: Extract,
    mapping: Mapping,
    placer: Placer,
    row_crs: npt.NDArray[np.object_],
    rej: _Rejector,
    has_address: BoolArray,
    warnings: Counter[str],
    check_crs: bool,
) -> _Located:
    wkb = extract.table.column(GEOMETRY).to_numpy(zero_copy_only=False)
    geoms = shapely.from_wkb(wkb, on_invalid="ignore")
    source_crs = row_crs
    if extract.crs and not _is_geographic_wgs84(extract.crs):
        import pyproj

        transformer = pyproj.Transformer.from_crs(extract.crs, "EPSG:4326", always_xy=True)
        geoms = shapely.transform(
            geoms, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
        )
        source_crs = np.full(len(geoms), _crs_name(extract.crs), dtype=object)
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    probe = np.full(len(geoms), None, dtype=object)
    probe[present] = shapely.point_on_surface(geoms[present])
    _crs_check(
        np.asarray(shapely.get_x(probe), dtype=float),
        np.asarray(shapely.get_y(probe), dtype=float),
        row_crs,
        present & rej.ok,
        placer,
        warnings,
        check_crs,
    )
    for code in (coords.GCJ02, coords.BD09):
        sel = (row_crs == code) & ~shapely.is_missing(geoms)
        if sel.any():
            geoms[sel] = shapely.transform(
                geoms[sel],
                lambda xy, code=code: np.column_stack(coords.to_wgs84(xy[:, 0], xy[:, 1], code)),
            )
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    rej.reject(empty, "no_location", lambda i: "几何为空 empty or missing geometry")
    invalid = ~empty & ~shapely.is_valid(geoms)
    rej.reject(
        invalid,
        "bad_geometry",
        lambda i: f"几何无效 invalid geometry: {shapely.is_valid_reason(geoms[i])}",
    )
    want = mapping.layer_obj.geometry_type
    dims = _DIMENSIONS.get(want)
    if dims is not None:
        found = np.full(len(geoms), -1)
        present = ~empty & ~invalid
        found[present] = shapely.get_dimensions(geoms[present])
        wrong = present & ~np.isin(found, list(dims))
        rej.reject(
            wrong,
            "wrong_geometry_type",
            lambda i: (
                f"几何类型不符 wrong geometry type {geoms[i].geom_type}: "
                f"{mapping.layer_obj.name} takes {_DIMENSION_NAMES[want]}"
            ),
        )
    if want == "POINT":
        geoms[~empty] = shapely.point_on_surface(geoms[~empty])
    rep = np.full(len(geoms), None, dtype=object)
    lines = ~empty & np.isin(
        shapely.get_type_id(geoms),
        [shapely.GeometryType.LINESTRING, shapely.GeometryType.MULTILINESTRING],
    )
    rep[lines] = shapely.line_interpolate_point(
        shapely.line_merge(geoms[lines]), 0.5, normalized=True
    )
    others = ~empty & ~lines
    rep[others] = shapely.point_on_surface(geoms[others])
    x = np.asarray(shapely.get_x(rep), dtype=float)
    y = np.asarray(shapely.get_y(rep), dtype=float)
    geoms[empty] = shapely.Point(0, 0)
    geoms = shapely.set_srid(geoms, 4326)
    wkb = pa.array(shapely.to_wkb(geoms, include_srid=True), pa.binary())
    return _Located(
        columns={"geom": wkb},
        point=(x, y),
        quality=np.full(len(geoms), "geometry", dtype=object),
        has_address=has_address,
        crs=source_crs,
    )


# Geometry dimensions a layer takes (0 points, 1 lines, 2 areas); point layers take any shape
# and keep a point on its surface.
_DIMENSIONS = {
    "LINESTRING": {1},
    "MULTILINESTRING": {1},
    "POLYGON": {2},
    "MULTIPOLYGON": {2},
    "GEOMETRY": {1, 2},  # renovation: lanes (lines) and blocks (areas)
}
_DIMENSION_NAMES = {
    "LINESTRING": "线 lines",
    "MULTILINESTRING": "线 lines",
    "POLYGON": "面 polygons",
    "MULTIPOLYGON": "面 polygons",
    "GEOMETRY": "线或面 lines or polygons",
}


def _crs_name(crs: str) -> str:
    """'EPSG:3857' for a projected file's CRS, else the text as the file gave it."""
    import pyproj

    try:
        epsg = pyproj.CRS.from_user_input(crs).to_epsg()
    except pyproj.exceptions.CRSError:
        return crs
    return f"EPSG:{epsg}" if epsg else crs


def _is_geographic_wgs84(crs: str) -> bool:
    import pyproj

    try:
        epsg = pyproj.CRS.from_user_input(crs).to_epsg()
    except pyproj.exceptions.CRSError:
        return False
    return epsg in (4326, 4490, None)


def _dedupe(
    extract: Extract,
    mapping: Mapping,
    ids: pa.Array,
    rej: _Rejector,
    rows: npt.NDArray[np.int32],
) -> None:
    """Within one file, the last row of a source_id wins; earlier ones are kept as rejects."""
    valid = pa.array(rej.ok)
    live = pc.filter(ids, valid)
    if pc.count_distinct(live).as_py() == len(live):
        return
    series = pd.Series(ids.to_numpy(zero_copy_only=False), dtype=object).where(rej.ok)
    dup = series.duplicated(keep="last").to_numpy() & series.notna().to_numpy()
    last = pd.Series(np.arange(len(series)))[rej.ok].groupby(series[rej.ok].to_numpy()).last()
    winners = last.reindex(series[dup].to_numpy()).to_numpy().astype(int)
    mapped = [c for c in dict.fromkeys(mapping.columns.values()) if c in extract.columns]
    subset = extract.table.select(mapped)
    losers = np.flatnonzero(dup)
    mine = subset.take(pa.array(losers)).to_pylist()
    theirs = subset.take(pa.array(winners)).to_pylist()
    for i, w, a, b in zip(losers, winners, mine, theirs, strict=True):
        if a == b:
            rej.reason[i] = "duplicate"
            rej.message[i] = f"重复行 exact duplicate of row {rows[w]} ({series[i]!r})"
        else:
            rej.reason[i] = "superseded"
            rej.message[i] = (
                f"被第 {rows[w]} 行的新版本取代 superseded by row {rows[w]} ({series[i]!r})"
            )
        rej.ok[i] = False


def _enrich(
    layer: str,
    out: dict[str, Column],
    routing: Routing,
    limits: TimeLimits,
    zone: str,
    warnings: Counter[str],
) -> None:
    """Derived fields: department and due time of requests, due time and joint of cases.
    Workday limits counted on the Mon–Fri fallback are warned `calendar_fallback:YEAR`."""
    if layer == "service_requests":
        category = cast(pa.Array, out["category"])
        out["department"] = routing.route(category)
        received = out["received_at"]
        dispatched = out.get("dispatched_at")
        start = pc.coalesce(dispatched, received) if dispatched is not None else received
        limit = limits.due(category, cast(pa.Array, start), zone)
        out["due_at"] = limit.at
        for year, count in limit.fallback.items():
            warnings[f"calendar_fallback:{year}"] += count
    elif layer == "enforcement_cases":
        days = out.get("_due_days")
        opened = out["opened_at"]
        if days is not None and isinstance(opened, pa.Array):
            due = opened.to_pandas() + pd.to_timedelta(pd.Series(days), unit="D")
            out["due_at"] = pa.Array.from_pandas(due)
        agencies = out.get("agencies")
        if isinstance(agencies, pa.Array) and "joint" not in out:
            out["joint"] = pc.greater(pc.list_value_length(agencies), 1)


def _rejects(
    extract: Extract, clean: dict[str, pa.Array], rej: _Rejector, rows: npt.NDArray[np.int32]
) -> list[dict[str, Any]]:
    bad = np.flatnonzero(~rej.ok)
    raw = extract.table.select(extract.columns).take(pa.array(bad)).to_pylist()
    ids = clean["source_id"].take(pa.array(bad)).to_pylist()
    result = [
        {
            "row_number": int(rows[i]),
            "source_id": _printable(source_id),
            "reason": rej.reason[i],
            "message": _printable(rej.message[i]),
            "retryable": bool(rej.retryable[i]),
            "raw": {k: _printable(v) for k, v in values.items()},
        }
        for i, source_id, values in zip(bad, ids, raw, strict=True)
    ]
    result.extend(_bad_row(b) for b in extract.bad_rows)
    return result


def _printable(value: Any) -> Any:
    """Text PostgreSQL can store: a NUL byte shown as ␀ (U+2400)."""
    return value.replace("\x00", "\u2400") if isinstance(value, str) else value


def _bad_row(bad: BadRow) -> dict[str, Any]:
    return {
        "row_number": bad.row,
        "source_id": None,
        "reason": bad.reason,
        "message": _printable(bad.message),
        "retryable": False,
        "raw": {"_text": _printable(bad.text)},
    }
