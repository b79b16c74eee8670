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

from etl import coords
from etl.extract import GEOMETRY, ROW, BadRow, Extract, ExtractError
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
NUMBER_NOISE = r"[%,，\s]|平方米|㎡|个|户|天"
THREADS = min(4, os.cpu_count() or 1)
SWAP_MARGIN = 0.2  # degrees around the district in which a swapped pair is recognised


class ColumnsError(ExtractError):
    """The file's columns do not match the mapping; nothing can be loaded."""


@dataclass
class Prepared:
    table: pa.Table
    rejects: list[dict[str, Any]]
    warnings: Counter[str] = field(default_factory=Counter)
    read: int = 0


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


def parse_datetime(arr: pa.Array, formats: tuple[str, ...]) -> tuple[pa.Array, BoolArray]:
    """Local (Beijing) date-times in many spellings, as naive local timestamps; bad mask."""
    result = pa.nulls(len(arr), pa.timestamp("us"))
    todo = pc.is_valid(arr)
    for fmt in (*formats, *DATETIME_FORMATS):
        if not pc.any(todo).as_py():
            break
        parsed = pc.strptime(arr, format=fmt, unit="us", error_is_null=True)
        take = pc.and_(todo, pc.is_valid(parsed))
        result = pc.if_else(take, parsed, result)
        todo = pc.and_(todo, pc.invert(take))
    bad = _np(todo)
    if bad.any():
        # Excel serial numbers (days since 1899-12-30) from sources that lost the cell type.
        idx = np.flatnonzero(bad)
        serial = pd.to_numeric(pd.Series(arr.take(idx).to_pylist(), dtype=object), errors="coerce")
        ok = serial.between(20000, 80000).to_numpy()
        if ok.any():
            stamps = pd.Timestamp("1899-12-30") + pd.to_timedelta(serial[ok], unit="D")
            filled = result.to_numpy(zero_copy_only=False).astype("datetime64[us]")
            filled[idx[ok]] = stamps.to_numpy().astype("datetime64[us]")
            result = pa.array(filled, pa.timestamp("us"))
            bad[idx[ok]] = False
    return result, bad


def to_utc(local: pa.Array, zone: str) -> pa.Array:
    """Naive wall-clock times in `zone` (the district's time zone) as UTC instants. A time
    that occurs twice (the end of daylight saving) is taken as the first, one skipped by the
    clock (its start) as the instant the clock jumped at."""
    offset = _fixed_offset(local, zone)
    if offset is not None:  # one offset over the whole span (Beijing since 1991): a shift
        shift = pa.scalar(int(offset.total_seconds() * 1_000_000), pa.duration("us"))
        return pc.cast(pc.subtract(local, shift), pa.timestamp("us", tz="UTC"))
    aware = pc.assume_timezone(local, timezone=zone, ambiguous="earliest", nonexistent="earliest")
    return pc.cast(aware, pa.timestamp("us", tz="UTC"))


def _fixed_offset(local: pa.Array, zone: str) -> dt.timedelta | None:
    """The zone's UTC offset if it is one and the same on every day the times span (checked
    day by day, a day either side), else None."""
    span = pc.min_max(local).as_py()
    if span["min"] is None:
        return dt.timedelta()
    tz = ZoneInfo(zone)
    try:
        first, last = span["min"].date() - dt.timedelta(days=1), span["max"].date()
        offsets = {
            dt.datetime.combine(first + dt.timedelta(days=i), dt.time(12), tz).utcoffset()
            for i in range((last - first).days + 2)
        }
    except OverflowError:  # the first or last representable day
        return None
    return offsets.pop() if len(offsets) == 1 else None


def parse_number(arr: pa.Array) -> tuple[FloatArray, BoolArray]:
    """Numbers with stray units and separators removed; NaN where empty; bad mask."""
    stripped = pc.replace_substring_regex(arr, NUMBER_NOISE, "")
    good = pc.match_substring_regex(stripped, NUMBER)
    numbers = pc.cast(pc.if_else(good, stripped, pa.scalar(None, pa.string())), pa.float64())
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


def _check_columns(extract: Extract, mapping: Mapping, warnings: Counter[str]) -> None:
    present = set(extract.columns)
    absent = sorted(
        {c for t, c in mapping.columns.items() if t in mapping.required and c not in present}
    )
    if absent:
        raise ColumnsError(
            f"缺少必需的列 missing required column(s) {absent}; the file has {extract.columns}"
        )
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
    zone: str,
) -> Prepared:
    """Turn an extract into rows ready to load, and rejects with reasons. Times without an
    offset are wall-clock times in `zone`, the district's time zone (an IANA name)."""
    layer = mapping.layer_obj
    table = extract.table
    n = table.num_rows
    warnings: Counter[str] = Counter()
    _check_columns(extract, mapping, warnings)

    rej = _Rejector(n)
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
    columns = layer.table.c
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
            local, bad = parse_datetime(values, mapping.datetime_formats)
            rej.reject(
                bad,
                "bad_date",
                _fmt("日期无法解析 unparseable date {label}: {v!r}", values, label=label),
            )
            out[target] = (
                to_utc(local, zone) if isinstance(ctype, sa.DateTime) else local.cast(pa.date32())
            )
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

    located = _locate(extract, mapping, placer, clean, rej, warnings, crs)
    x, y = located.point
    place = placer.place(x, y)
    outside = ~np.isnan(x) & ~place.inside
    rej.reject(
        outside,
        "outside_district",
        lambda i: f"坐标不在辖区内 point outside the district: ({x[i]:.6f}, {y[i]:.6f})",
        retryable=located.has_address,
    )
    out.update(
        street_code=place.street_code,
        community_code=place.community_code,
        grid_code=place.grid_code,
        near_boundary=place.near_boundary,
        geocode_quality=located.quality,
        **located.columns,
    )
    near = int((place.near_boundary & rej.ok).sum())
    if near:
        warnings["near_boundary"] += near

    rows = table.column(ROW).to_numpy()
    _dedupe(extract, mapping, clean["source_id"], rej, rows)
    _enrich(layer.name, out, routing, limits, zone)

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
    )


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


def _locate(
    extract: Extract,
    mapping: Mapping,
    placer: Placer,
    clean: dict[str, pa.Array],
    rej: _Rejector,
    warnings: Counter[str],
    crs_override: str | None,
) -> _Located:
    """WGS84 locations, and the point each row is placed by.

    A row's own coordinate system (the mapped `crs` column) wins; `crs_override` (the
    run's --crs) replaces the mapping's default for rows that do not say.
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
        return _locate_geometry(extract, mapping, row_crs, rej, has_address)

    lng, bad_lng = parse_number(clean.get("lng", pa.nulls(n, pa.string())))
    lat, bad_lat = parse_number(clean.get("lat", pa.nulls(n, pa.string())))
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
    wlng, wlat = _to_wgs84(lng, lat, row_crs)
    quality = np.where(swapped, "coordinates_swapped", "coordinates").astype(object)
    return _Located(
        columns={"geom_x": wlng, "geom_y": wlat},
        point=(wlng, wlat),
        quality=quality,
        has_address=has_address,
    )


def _locate_geometry(
    extract: Extract,
    mapping: Mapping,
    row_crs: npt.NDArray[np.object_],
    rej: _Rejector,
    has_address: BoolArray,
) -> _Located:
    wkb = extract.table.column(GEOMETRY).to_numpy(zero_copy_only=False)
    geoms = shapely.from_wkb(wkb, on_invalid="ignore")
    if extract.crs and not _is_geographic_wgs84(extract.crs):
        import pyproj

        transformer = pyproj.Transformer.from_crs(extract.crs, "EPSG:4326", always_xy=True)
        geoms = shapely.transform(
            geoms, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
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
    layer: str, out: dict[str, Column], routing: Routing, limits: TimeLimits, zone: str
) -> None:
    """Derived fields: department and due time of requests, due time and joint of cases."""
    if layer == "service_requests":
        category = cast(pa.Array, out["category"])
        out["department"] = routing.route(category)
        received = out["received_at"]
        dispatched = out.get("dispatched_at")
        start = pc.coalesce(dispatched, received) if dispatched is not None else received
        out["due_at"] = limits.due_at(category, cast(pa.Array, start), zone)
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
            "source_id": source_id,
            "reason": rej.reason[i],
            "message": rej.message[i],
            "retryable": bool(rej.retryable[i]),
            "raw": values,
        }
        for i, source_id, values in zip(bad, ids, raw, strict=True)
    ]
    result.extend(_bad_row(b) for b in extract.bad_rows)
    return result


def _bad_row(bad: BadRow) -> dict[str, Any]:
    return {
        "row_number": bad.row,
        "source_id": None,
        "reason": bad.reason,
        "message": bad.message,
        "retryable": False,
        "raw": {"_text": bad.text},
    }
