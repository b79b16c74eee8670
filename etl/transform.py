"""Validate, type, locate and enrich extracted rows; reject each bad row with its reason.

Pure steps on Arrow/NumPy columns: no database, no Flask. Output: the rows to load (typed,
in WGS84, placed in grid, community and street) and the rejected rows with their raw
content, reason code, Chinese/English message and whether they can be retried later.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
from etl.rules import LOCAL_OFFSET, Routing, TimeLimits
from layers import Layer

ObjArray = npt.NDArray[np.object_]
BoolArray = npt.NDArray[np.bool_]

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
TRUE_WORDS = {"是", "有", "有效", "y", "yes", "true", "t", "1", "已联系", "已解决", "√"}
FALSE_WORDS = {"否", "无", "无效", "n", "no", "false", "f", "0", "未联系", "未解决", "×"}
FREE_TEXT = {"description", "name"}  # kept as written (only trimmed)
LIST_SPLIT = re.compile(r"[、,，;；/|]+")
SWAP_MARGIN = 0.2  # degrees around the district in which a swapped pair is recognised


class ColumnsError(ExtractError):
    """The file's columns do not match the mapping; nothing can be loaded."""


@dataclass
class Prepared:
    table: pa.Table
    rejects: list[dict[str, Any]]
    warnings: Counter[str] = field(default_factory=Counter)
    read: int = 0


def _null(values: ObjArray) -> BoolArray:
    return np.asarray(pd.isna(values), dtype=bool)


def _fmt(template: str, values: ObjArray, **names: str) -> Callable[[int], str]:
    """A message for row i: the template with the row's value as {v}."""

    def message(i: int) -> str:
        return template.format(v=values[i], **names)

    return message


class _Rejector:
    """Collects the first reason each row is rejected for."""

    def __init__(self, n: int) -> None:
        self.reason: ObjArray = np.full(n, None, dtype=object)
        self.message: ObjArray = np.full(n, None, dtype=object)
        self.retryable = np.zeros(n, dtype=bool)

    @property
    def ok(self) -> BoolArray:
        return _null(self.reason)

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


def _clean(arr: pa.ChunkedArray | pa.Array, free_text: bool) -> pa.Array:
    """Trim whitespace, fold full-width forms (NFKC) outside free text, '' → null."""
    arr = pc.utf8_trim_whitespace(arr)
    if not free_text:
        non_ascii = pc.invert(pc.fill_null(pc.string_is_ascii(arr), True))
        if pc.any(non_ascii).as_py():
            values = arr.to_numpy(zero_copy_only=False)
            mask = non_ascii.to_numpy(zero_copy_only=False)
            values = values.copy()
            values[mask] = [
                unicodedata.normalize("NFKC", v).strip() if v is not None else None
                for v in values[mask]
            ]
            arr = pa.array(values, pa.string())
    arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr


def parse_datetime(arr: pa.Array, formats: tuple[str, ...]) -> tuple[pd.Series, BoolArray]:
    """Local (Beijing) date-times in many spellings → UTC; also the unparseable mask."""
    result = pa.nulls(len(arr), pa.timestamp("us"))
    todo = pc.is_valid(arr)
    for fmt in (*formats, *DATETIME_FORMATS):
        if not pc.any(todo).as_py():
            break
        parsed = pc.strptime(arr, format=fmt, unit="us", error_is_null=True)
        take = pc.and_(todo, pc.is_valid(parsed))
        result = pc.if_else(take, parsed, result)
        todo = pc.and_(todo, pc.invert(take))
    # Excel serial numbers (days since 1899-12-30) from sources that lost the cell type.
    if pc.any(todo).as_py():
        values = arr.to_numpy(zero_copy_only=False)
        mask = todo.to_numpy(zero_copy_only=False)
        serial = pd.to_numeric(pd.Series(values[mask], dtype=object), errors="coerce")
        ok = serial.between(20000, 80000).to_numpy()
        if ok.any():
            stamps = pd.Timestamp("1899-12-30") + pd.to_timedelta(serial[ok], unit="D")
            filled = result.to_numpy(zero_copy_only=False).astype("datetime64[us]")
            idx = np.flatnonzero(mask)[ok]
            filled[idx] = stamps.to_numpy().astype("datetime64[us]")
            result = pa.array(filled, pa.timestamp("us"))
            todo_np = mask.copy()
            todo_np[idx] = False
            todo = pa.array(todo_np)
    bad = todo.to_numpy(zero_copy_only=False)
    local = pd.Series(result.to_numpy(zero_copy_only=False)).astype("datetime64[us]")
    utc = (local - LOCAL_OFFSET).dt.tz_localize("UTC")
    return utc, np.asarray(bad, dtype=bool)


def parse_number(values: ObjArray) -> tuple[npt.NDArray[np.float64], BoolArray]:
    series = pd.Series(values, dtype=object)
    present = series.notna().to_numpy()
    if present.any():
        stripped = series.str.replace(r"[%,，\s]|平方米|㎡|个|户", "", regex=True)
    else:
        stripped = series
    numbers = pd.to_numeric(stripped, errors="coerce").to_numpy(dtype=float)
    bad = present & np.isnan(numbers)
    return numbers, bad


def parse_bool(values: ObjArray) -> tuple[ObjArray, BoolArray]:
    series = pd.Series(values, dtype=object)
    lowered = series.str.lower()
    out = np.full(len(values), None, dtype=object)
    is_true = lowered.isin(TRUE_WORDS).to_numpy()
    is_false = lowered.isin(FALSE_WORDS).to_numpy()
    out[is_true] = True
    out[is_false] = False
    bad = series.notna().to_numpy() & ~is_true & ~is_false
    return out, bad


def _pg_array(values: ObjArray) -> ObjArray:
    def literal(text: str) -> str:
        parts = [p.strip() for p in LIST_SPLIT.split(text) if p.strip()]
        return (
            "{"
            + ",".join('"' + p.replace("\\", "\\\\").replace('"', '\\"') + '"' for p in parts)
            + "}"
        )

    return np.array([literal(v) if v is not None else None for v in values], dtype=object)


def _label(layer: Layer, name: str, mapping: Mapping) -> str:
    column = mapping.columns.get(name, name)
    try:
        label = layer.field(name).label
    except KeyError:
        return column
    return label if label == column else f"{label}({column})"


def prepare(
    extract: Extract,
    mapping: Mapping,
    placer: Placer,
    routing: Routing,
    limits: TimeLimits,
    crs: str | None = None,
) -> Prepared:
    """Turn an extract into rows ready to load, and rejects with reasons."""
    layer = mapping.layer_obj
    table = extract.table
    n = table.num_rows
    warnings: Counter[str] = Counter()

    present = set(extract.columns)
    needed = {t: c for t, c in mapping.columns.items() if t in mapping.required}
    absent_required = sorted({c for c in needed.values() if c not in present})
    if absent_required:
        raise ColumnsError(
            f"缺少必需的列 missing required column(s) {absent_required}; "
            f"the file has {extract.columns}"
        )
    for target, column in mapping.columns.items():
        if column not in present and target != "geometry":
            warnings[f"missing_column:{column}"] += 1
    mapped = set(mapping.columns.values())
    for column in extract.columns:
        if column not in mapped:
            warnings[f"ignored_column:{column}"] += 1

    rej = _Rejector(n)
    raw: dict[str, ObjArray] = {}
    clean: dict[str, ObjArray] = {}
    for target, column in mapping.columns.items():
        if column not in present:
            clean[target] = np.full(n, None, dtype=object)
            continue
        if column not in raw:
            raw[column] = table.column(column).to_numpy(zero_copy_only=False)
        arr = _clean(table.column(column), free_text=target in FREE_TEXT)
        clean[target] = arr.to_numpy(zero_copy_only=False)

    for target in mapping.required:
        missing = _null(clean[target])
        label = _label(layer, target, mapping)
        rej.reject(
            missing, "missing_required", _fmt("缺少必填字段 {label}", clean[target], label=label)
        )

    out: dict[str, Any] = {}
    columns = layer.table.c
    for target, values in clean.items():
        if target in ("lng", "lat", "crs", "geometry"):
            continue
        if target == "due_days":
            days, bad = parse_number(values)
            rej.reject(bad, "bad_number", _fmt("办理期限不是数字 not a number: {v!r}", values))
            out["_due_days"] = days
            continue
        ctype = columns[target].type
        label = _label(layer, target, mapping)
        if isinstance(ctype, sa.DateTime):
            parsed, bad = parse_datetime(pa.array(values, pa.string()), mapping.datetime_formats)
            rej.reject(
                bad,
                "bad_date",
                _fmt("日期无法解析 unparseable date {label}: {v!r}", values, label=label),
            )
            out[target] = parsed
        elif isinstance(ctype, sa.Date):
            parsed, bad = parse_datetime(pa.array(values, pa.string()), mapping.datetime_formats)
            rej.reject(
                bad,
                "bad_date",
                _fmt("日期无法解析 unparseable date {label}: {v!r}", values, label=label),
            )
            local = (parsed + LOCAL_OFFSET).dt.tz_localize(None)
            out[target] = pd.Series(local.to_numpy().astype("datetime64[D]"))
        elif isinstance(ctype, sa.Boolean):
            parsed_b, bad = parse_bool(values)
            rej.reject(
                bad,
                "bad_value",
                _fmt("不是是/否 not a yes/no value {label}: {v!r}", values, label=label),
            )
            out[target] = parsed_b
        elif isinstance(ctype, (sa.Float, sa.Integer)):
            numbers, bad = parse_number(values)
            rej.reject(
                bad,
                "bad_number",
                _fmt("不是数字 not a number {label}: {v!r}", values, label=label),
            )
            out[target] = numbers
        elif isinstance(ctype, pg.ARRAY):
            out[target] = _pg_array(values)
        else:
            table_values = mapping.values.get(target)
            if table_values:
                mapped_values = pd.Series(values, dtype=object).map(table_values).to_numpy()
                unknown = _null(mapped_values)
                allowed = "/".join(sorted(set(table_values.values())))
                rej.reject(
                    ~_null(values) & unknown,
                    "bad_value",
                    _fmt(
                        "取值无效 invalid value {label}: {v!r} (allowed: {allowed})",
                        values,
                        label=label,
                        allowed=allowed,
                    ),
                )
                values = mapped_values.astype(object)
                values[unknown] = None
            out[target] = values

    geom, placement_point = _locate(extract, mapping, layer, placer, clean, rej, warnings, crs)
    place = placer.place(placement_point[0], placement_point[1])
    has_point = ~np.isnan(placement_point[0])
    outside = has_point & ~place.inside
    address = clean.get("address", np.full(n, None, dtype=object))
    has_address = ~_null(address)
    rej.reject(
        outside,
        "outside_district",
        lambda i: (
            f"坐标不在辖区内 point outside the district: "
            f"({placement_point[0][i]:.6f}, {placement_point[1][i]:.6f})"
        ),
        retryable=has_address,
    )
    out["street_code"] = place.street_code
    out["community_code"] = place.community_code
    out["grid_code"] = place.grid_code
    out["near_boundary"] = place.near_boundary
    out["geocode_quality"] = clean.pop("_quality")
    near = int((place.near_boundary & rej.ok).sum())
    if near:
        warnings["near_boundary"] += near

    _dedupe(out, raw, rej, table.column(ROW).to_numpy())
    _enrich(layer, out, routing, limits)

    ok = rej.ok
    rejects = _rejects(extract, raw, clean, rej)
    keep = np.flatnonzero(ok)
    result: dict[str, Any] = {"source": np.full(len(keep), mapping.source, dtype=object)}
    for name, values in out.items():
        if name.startswith("_"):
            continue
        if isinstance(values, pd.Series):
            result[name] = values.iloc[keep].reset_index(drop=True)
        else:
            result[name] = np.asarray(values)[keep]
    result["geom"] = geom[keep]
    result[ROW] = table.column(ROW).to_numpy()[keep]
    return Prepared(
        table=_to_arrow(result),
        rejects=rejects,
        warnings=warnings,
        read=extract.rows,
    )


def _locate(
    extract: Extract,
    mapping: Mapping,
    layer: Layer,
    placer: Placer,
    clean: dict[str, ObjArray],
    rej: _Rejector,
    warnings: Counter[str],
    crs_override: str | None,
) -> tuple[ObjArray, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
    """WGS84 geometries (as EWKB hex) and the point each row is placed by."""
    n = extract.table.num_rows
    default = coords.normalize_crs(crs_override or mapping.crs or "wgs84")
    if crs_override:
        row_crs = np.full(n, default, dtype=object)
    else:
        raw_crs = clean.get("crs", np.full(n, None, dtype=object))
        row_crs = coords.normalize_crs_array(raw_crs, default=default)
        unknown = _null(row_crs) & ~_null(raw_crs)
        rej.reject(
            unknown, "unknown_crs", _fmt("未知坐标系 unknown coordinate system: {v!r}", raw_crs)
        )
        row_crs[_null(row_crs)] = default
    address = clean.get("address", np.full(n, None, dtype=object))
    has_address = ~_null(address)

    if GEOMETRY in extract.table.column_names:
        return _locate_geometry(extract, layer, row_crs, rej, clean)

    lng, bad_lng = parse_number(clean.get("lng", np.full(n, None, dtype=object)))
    lat, bad_lat = parse_number(clean.get("lat", np.full(n, None, dtype=object)))
    rej.reject(
        bad_lng | bad_lat,
        "bad_number",
        lambda i: (
            f"坐标不是数字 coordinates are not numbers: ({clean['lng'][i]!r}, {clean['lat'][i]!r})"
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
    near = placer.in_extent(lng, lat, SWAP_MARGIN)
    swapped = ~missing & ~near & placer.in_extent(lat, lng, SWAP_MARGIN)
    lng, lat = np.where(swapped, lat, lng), np.where(swapped, lng, lat)
    if (swapped & rej.ok).any():
        warnings["swapped_lnglat"] += int((swapped & rej.ok).sum())
    wlng, wlat = coords.to_wgs84(lng, lat, row_crs)
    clean["_quality"] = np.where(swapped, "coordinates_swapped", "coordinates").astype(object)
    points = shapely.points(np.where(missing, 0.0, wlng), np.where(missing, 0.0, wlat))
    geom = np.asarray(shapely.to_wkb(points, hex=True), dtype=object)
    return geom, (np.where(missing, np.nan, wlng), np.where(missing, np.nan, wlat))


def _locate_geometry(
    extract: Extract, layer: Layer, row_crs: ObjArray, rej: _Rejector, clean: dict[str, ObjArray]
) -> tuple[ObjArray, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
    wkb = extract.table.column(GEOMETRY).to_numpy(zero_copy_only=False)
    geoms = shapely.from_wkb(wkb, on_invalid="ignore")
    if extract.crs and not _is_geographic_wgs84(extract.crs):
        import pyproj

        transformer = pyproj.Transformer.from_crs(extract.crs, "EPSG:4326", always_xy=True)
        geoms = shapely.transform(
            geoms, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
        )
    for code in ("gcj02", "bd09"):
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
    want = layer.geometry_type
    if want == "POINT":
        geoms = np.where(empty, None, shapely.point_on_surface(geoms))
    elif want.startswith("MULTI"):
        geoms = np.where(empty, None, shapely.multipolygons(geoms)) if "POLYGON" in want else geoms
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
    x = np.where(empty, np.nan, shapely.get_x(rep))
    y = np.where(empty, np.nan, shapely.get_y(rep))
    hexes = np.asarray(shapely.to_wkb(np.where(empty, shapely.Point(0, 0), geoms), hex=True))
    clean["_quality"] = np.full(len(geoms), "geometry", dtype=object)
    return hexes.astype(object), (x.astype(float), y.astype(float))


def _is_geographic_wgs84(crs: str) -> bool:
    import pyproj

    try:
        epsg = pyproj.CRS.from_user_input(crs).to_epsg()
    except pyproj.exceptions.CRSError:
        return False
    return epsg in (4326, 4490, None)


def _dedupe(
    out: dict[str, Any], raw: dict[str, ObjArray], rej: _Rejector, rows: npt.NDArray[np.int32]
) -> None:
    """Within one file, the last row of a source_id wins; earlier ones are kept as rejects."""
    ids = pd.Series(out["source_id"], dtype=object)
    ok = rej.ok
    candidates = ids.where(ok)
    dup = candidates.duplicated(keep="last").to_numpy() & ok & candidates.notna().to_numpy()
    if not dup.any():
        return
    frame = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in raw.items()})
    row_hash = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    last_pos = pd.Series(np.arange(len(ids)))[ok].groupby(ids[ok].to_numpy()).last()
    winner = last_pos.reindex(ids.to_numpy()).to_numpy()
    for i in np.flatnonzero(dup):
        w = int(winner[i])
        if row_hash[i] == row_hash[w]:
            rej.reason[i] = "duplicate"
            rej.message[i] = f"重复行 exact duplicate of row {rows[w]} ({ids[i]!r})"
        else:
            rej.reason[i] = "superseded"
            rej.message[i] = (
                f"被第 {rows[w]} 行的新版本取代 superseded by row {rows[w]} ({ids[i]!r})"
            )


def _enrich(layer: Layer, out: dict[str, Any], routing: Routing, limits: TimeLimits) -> None:
    """Derived fields: department, due date, joint enforcement, placement quality."""
    if layer.name == "service_requests":
        out["department"] = routing.route(np.asarray(out["category"], dtype=object))
        start = out.get("dispatched_at")
        received = out["received_at"]
        begin = start.where(start.notna(), received) if start is not None else received
        out["due_at"] = limits.due_at(np.asarray(out["category"], dtype=object), begin)
    elif layer.name == "enforcement_cases":
        days = out.get("_due_days")
        if days is not None:
            opened = out["opened_at"]
            out["due_at"] = opened + pd.to_timedelta(pd.Series(days), unit="D")
        if "agencies" in out and "joint" not in out:
            out["joint"] = np.array(
                [v.count(",") >= 1 if v else None for v in out["agencies"]], dtype=object
            )


def _rejects(
    extract: Extract, raw: dict[str, ObjArray], clean: dict[str, ObjArray], rej: _Rejector
) -> list[dict[str, Any]]:
    rows = extract.table.column(ROW).to_numpy()
    source_ids = clean.get("source_id")
    all_raw = {c: extract.table.column(c).to_numpy(zero_copy_only=False) for c in extract.columns}
    result = []
    for i in np.flatnonzero(~rej.ok):
        result.append(
            {
                "row_number": int(rows[i]),
                "source_id": source_ids[i] if source_ids is not None else None,
                "reason": rej.reason[i],
                "message": rej.message[i],
                "retryable": bool(rej.retryable[i]),
                "raw": {c: all_raw[c][i] for c in extract.columns},
            }
        )
    for bad in extract.bad_rows:
        result.append(_bad_row(bad))
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


def _to_arrow(result: dict[str, Any]) -> pa.Table:
    arrays = {}
    for name, values in result.items():
        if isinstance(values, pd.Series):
            arrays[name] = pa.Array.from_pandas(values)
        else:
            arrays[name] = pa.array(values, from_pandas=True)
    return pa.table(arrays)
