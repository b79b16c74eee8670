"""Import admin units (streets, communities, grids, lanes, service halls, landmarks).

read → map columns → reproject to EPSG:4326 → validate → upsert by code. Validation
reports every problem with a location and fixes nothing: a file with any problem writes
nothing (`AdminImportError`). Checks that need the other levels (parents, the district)
read them from the database, so levels load top down: streets, communities, grids, then
lanes, service halls and landmarks. Nesting, gaps and overlaps are judged on the state
the import would leave: the database's units of the level with the file's laid over them.

Areas and distances are measured in the UTM zone of the data (EPSG:32650 in Beijing).
Library functions take a Connection and never commit: the caller owns the transaction.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyogrio
import shapely
import sqlalchemy as sa
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from shapely.errors import GEOSException
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects.postgresql import insert as pg_insert

from etl import coords
from etl.aggregates import refresh_request_aggregates
from etl.assign import GridIndex
from etl.place import DEFAULT_BUDGET_MB, PlacementError, fill_in, placer_for
from layers import get_layer, landmarks
from layers.registry import LANDMARK_LEVEL, admin_levels, level_layer


def _parent(level: str) -> tuple[str, str] | None:
    """The level a polygon level nests in, and the column that names its unit."""
    if level == LANDMARK_LEVEL:
        return None
    parent = level_layer(level).parent
    return (parent, f"{parent}_code") if parent else None


AREA_TOLERANCE_M2 = 1.0
LANE_TOLERANCE_M = 5.0
POINT_TOLERANCE_M = 0.5
MAX_LISTED = 10

PROBLEM_KINDS: dict[str, str] = {
    "missing_column": "缺少列",
    "missing_field": "缺少必填项",
    "bad_value": "取值错误",
    "code_format": "编码格式错误",
    "duplicate_code": "编码重复",
    "empty_geometry": "空几何",
    "invalid_geometry": "几何无效",
    "wrong_geometry_type": "几何类型错误",
    "missing_parent": "上级不存在",
    "parent_mismatch": "上级不一致",
    "outside_parent": "超出上级范围",
    "outside_district": "超出辖区",
    "gap": "缝隙",
    "overlap": "重叠",
    "placement": "定位索引无法建立",
}

_BASE_TYPES = {
    "POLYGON": "Polygon",
    "MULTIPOLYGON": "Polygon",
    "LINESTRING": "LineString",
    "POINT": "Point",
}

MAPPING_KEYS = frozenset({"columns", "crs", "defaults", "code_pattern", "encoding", "layer"})
# Keys of a column given as a mapping: `code: {column: XZQDM, slice: [0, 9]}`.
SOURCE_KEYS = frozenset({"column", "regex", "group", "slice", "prefix"})
# Official boundary files carry the 12-digit statistical division codes (统计用区划代码):
# 6 digits of county, 3 of township (街道), 3 of village-level unit (社区/村), 000 for the
# township itself. Streets are stored with 9 digits, communities with 12.
STAT_CODE = re.compile(r"\d{12}")

GeomArray = npt.NDArray[np.object_]


class AdminFileError(ValueError):
    """The file or mapping cannot be used at all (unreadable, no CRS, unknown column)."""


@dataclass
class Problem:
    """One thing wrong in the file, located at a point inside the problem area."""

    kind: str
    code: str | None
    message: str
    lng: float | None
    lat: float | None


@dataclass
class AdminReport:
    level: str
    read: int
    inserted: int
    updated: int
    unchanged: int
    problems: list[Problem]
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False
    filled: dict[str, int] = field(default_factory=dict)  # events given finer codes, by layer
    placement: str | None = None  # the placement index built after a polygon level

    def ok(self) -> bool:
        return not self.problems


class AdminImportError(Exception):
    """Validation found problems; nothing was written. `report` lists them."""

    def __init__(self, report: AdminReport) -> None:
        self.report = report
        kinds = sorted({p.kind for p in report.problems})
        super().__init__(
            f"{len(report.problems)} 个问题, 未写入 {len(report.problems)} problem(s), "
            f"nothing written ({report.level}): {', '.join(kinds)}"
        )


@dataclass(frozen=True)
class _Spec:
    """What the registry says of a level's table."""

    level: str
    table: sa.Table
    title: str
    geometry_type: str
    columns: tuple[sa.Column[Any], ...]
    labels: dict[str, str]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def polygonal(self) -> bool:
        return self.geometry_type.endswith("POLYGON")

    def label(self, name: str) -> str:
        return f"{name} ({self.labels[name]})" if name in self.labels else name


def _spec(level: str) -> _Spec:
    levels = admin_levels()
    try:
        table_name = levels[level]
    except KeyError:
        raise AdminFileError(
            f"未知层级 unknown level: {level!r} (expected one of {', '.join(levels)})"
        ) from None
    if table_name == landmarks.name:
        columns = tuple(c for c in landmarks.columns if c.name != "geom")
        geometry_type = str(landmarks.c.geom.type.geometry_type)  # type: ignore[attr-defined]
        return _Spec(level, landmarks, "地标", geometry_type, columns, {})
    layer = get_layer(table_name)
    columns = tuple(f.column for f in layer.fields)
    return _Spec(level, layer.table, layer.title, layer.geometry_type, columns, layer.labels)


@dataclass(frozen=True)
class _Source:
    """Where a field's value comes from: a column, then regex → slice → prefix, in order."""

    column: str
    regex: re.Pattern[str] | None = None
    group: int | str = 0
    slice: tuple[int | None, int | None] | None = None
    prefix: str | None = None

    @property
    def transforms(self) -> bool:
        return self.regex is not None or self.slice is not None or self.prefix is not None

    def apply(self, value: str | None) -> tuple[str | None, str | None]:
        """(the value transformed, None) or (None, why it cannot be)."""
        if value is None:
            return None, None
        if self.regex is not None:
            match = self.regex.fullmatch(value)
            if match is None:
                return None, (
                    f"{value!r} 不符合正则 {self.regex.pattern!r} "
                    f"does not match the mapping's regex {self.regex.pattern!r}"
                )
            value = match.group(self.group)
            if value is None:
                return None, None
        if self.slice is not None:
            value = value[self.slice[0] : self.slice[1]]
        if self.prefix is not None:
            value = self.prefix + value
        return (value.strip() or None), None


@dataclass(frozen=True)
class _Mapping:
    columns: dict[str, _Source]
    crs: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    code_pattern: str | None = None
    encoding: str | None = None
    layer: str | None = None


def _parse_mapping(mapping: Mapping[str, Any] | None, spec: _Spec) -> _Mapping:
    """Check a mapping against the level's registry fields; name every bad entry."""
    if not mapping:
        return _Mapping(columns={})
    unknown = sorted(set(mapping) - MAPPING_KEYS)
    if unknown:
        raise AdminFileError(
            f"映射有未知的键 mapping has unknown key(s) {unknown}; known: {sorted(MAPPING_KEYS)}"
        )
    columns = {
        str(k): _parse_source(str(k), v) for k, v in dict(mapping.get("columns") or {}).items()
    }
    defaults = {str(k): v for k, v in dict(mapping.get("defaults") or {}).items()}
    for what, keys in (("columns", columns), ("defaults", defaults)):
        bad = sorted(set(keys) - set(spec.names))
        if bad:
            raise AdminFileError(
                f"映射 {what} 中有{spec.title}没有的字段 mapping {what} names field(s) {bad} "
                f"that {spec.table.name} does not have; fields: {spec.names}"
            )
    pattern = mapping.get("code_pattern")
    if pattern is not None:
        try:
            re.compile(str(pattern))
        except re.error as exc:
            raise AdminFileError(
                f"编码正则无效 code_pattern is not a valid regex: {pattern!r} ({exc})"
            ) from None

    def text(key: str) -> str | None:
        value = mapping.get(key)
        return None if value is None else str(value)

    return _Mapping(
        columns=columns,
        crs=text("crs"),
        defaults=defaults,
        code_pattern=text("code_pattern"),
        encoding=text("encoding"),
        layer=text("layer"),
    )


def _parse_source(field_name: str, value: Any) -> _Source:
    """A column name, or {column, regex, group, slice, prefix}; every bad entry named."""
    where = f"映射 columns.{field_name}"
    if not isinstance(value, dict):
        if value is None or isinstance(value, (list, bool)):
            raise AdminFileError(
                f"{where} 应为列名或字典 mapping columns.{field_name} must be a column name "
                f"or {{column: ..., regex/slice/prefix: ...}}, not {value!r}"
            )
        return _Source(str(value))
    unknown = sorted(set(map(str, value)) - SOURCE_KEYS)
    if unknown:
        raise AdminFileError(
            f"{where} 有未知的键 mapping columns.{field_name} has unknown key(s) {unknown}; "
            f"known: {sorted(SOURCE_KEYS)}"
        )
    column = value.get("column")
    if column is None or isinstance(column, (dict, list)):
        raise AdminFileError(
            f"{where} 缺少 column mapping columns.{field_name} needs `column:` (the file's column)"
        )
    regex = None
    group: int | str = 0
    if value.get("regex") is not None:
        try:
            regex = re.compile(str(value["regex"]))
        except re.error as exc:
            raise AdminFileError(
                f"{where}.regex 无效 mapping columns.{field_name}.regex is not a valid "
                f"regular expression: {value['regex']!r} ({exc})"
            ) from None
        group = value.get("group", 1 if regex.groups else 0)
        valid = (
            isinstance(group, int) and not isinstance(group, bool) and 0 <= group <= regex.groups
        ) or (isinstance(group, str) and group in regex.groupindex)
        if not valid:
            raise AdminFileError(
                f"{where}.group 无效 mapping columns.{field_name}.group {group!r} is not a "
                f"group of {regex.pattern!r} (0..{regex.groups} or a group name)"
            )
    elif "group" in value:
        raise AdminFileError(
            f"{where}.group 需要 regex mapping columns.{field_name}.group needs `regex:`"
        )
    cut = value.get("slice")
    bounds: tuple[int | None, int | None] | None = None
    if cut is not None:
        ok = (
            isinstance(cut, list)
            and 1 <= len(cut) <= 2
            and all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in cut)
        )
        if not ok:
            raise AdminFileError(
                f"{where}.slice 应为 [起, 止] mapping columns.{field_name}.slice must be "
                f"[start, end] (characters, from 0; end excluded, may be null), not {cut!r}"
            )
        bounds = (cut[0], cut[1] if len(cut) == 2 else None)
    prefix = value.get("prefix")
    if isinstance(prefix, (dict, list, bool)):
        raise AdminFileError(
            f"{where}.prefix 应为文字 mapping columns.{field_name}.prefix must be text, "
            f"not {prefix!r}"
        )
    return _Source(
        str(column),
        regex=regex,
        group=group,
        slice=bounds,
        prefix=None if prefix is None else str(prefix),
    )


def _pick_layer(path: Path, spec: _Spec) -> str | None:
    """The one layer of the file, or the one named like the level; else an error."""
    try:
        layers = [str(name) for name in pyogrio.list_layers(path)[:, 0]]
    except pyogrio.errors.DataSourceError as exc:
        raise AdminFileError(f"无法读取文件 cannot read {str(path)!r}: {exc}") from None
    if len(layers) <= 1:
        return None
    for name in (spec.table.name, spec.level):
        if name in layers:
            return name
    raise AdminFileError(
        f"文件有多个图层 {str(path)!r} has several layers {layers}; "
        "name one with --layer or the mapping's `layer`"
    )


def _check_encoding(path: Path, gdf: pd.DataFrame) -> None:
    """Refuse a Shapefile without .cpg whose text was decoded as Latin-1 but is not."""
    if path.suffix.lower() != ".shp" or path.with_suffix(".cpg").exists():
        return
    for column in gdf.columns:
        if isinstance(gdf[column].dtype, geopandas.array.GeometryDtype):
            continue
        for value in gdf[column].dropna().head(200):
            if not isinstance(value, str) or not re.search(r"[\x80-\xff]", value):
                continue
            try:
                raw = value.encode("latin-1")
            except UnicodeEncodeError:
                continue
            for guess in ("utf-8", "gbk"):
                try:
                    decoded = raw.decode(guess)
                except UnicodeDecodeError:
                    continue
                raise AdminFileError(
                    f"Shapefile 没有 .cpg, 列 {column} 的文字疑似 {guess.upper()} 编码 "
                    f"{str(path)!r} has no .cpg file and column {column!r} reads as "
                    f"{value!r}, which as {guess.upper()} is {decoded!r}: "
                    f"pass --encoding {guess.upper()} (or `encoding:` in the mapping)"
                )


def read_admin_file(
    path: Path,
    level: str,
    mapping: dict[str, Any] | None = None,
    crs: str | None = None,
    *,
    encoding: str | None = None,
    layer: str | None = None,
) -> geopandas.GeoDataFrame:
    """Read a GeoJSON / GeoPackage / Shapefile as the level's registry fields in EPSG:4326.

    `crs` (else the mapping's `crs`) applies only when the file has none; `encoding` (else
    the mapping's) is the attribute encoding of a Shapefile without a .cpg file.
    Notes about the read (e.g. an ignored `crs`) are in ``gdf.attrs["admin_notes"]``.
    """
    spec = _spec(level)
    parsed = _parse_mapping(mapping, spec)
    path = Path(path)
    if not path.exists():
        raise AdminFileError(f"文件不存在 no such file: {str(path)!r}")
    encoding = encoding or parsed.encoding
    layer = layer or parsed.layer or _pick_layer(path, spec)
    try:
        raw = geopandas.read_file(path, engine="pyogrio", layer=layer, encoding=encoding)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise AdminFileError(f"无法读取文件 cannot read {str(path)!r}: {exc}") from None
    except LookupError as exc:
        raise AdminFileError(f"未知编码 unknown encoding {encoding!r}: {exc}") from None
    if encoding is None:
        _check_encoding(path, raw)
    return _prepare(raw, spec, parsed, crs or parsed.crs)


def _as_text(value: Any) -> str | None:
    """A text field's value as a stripped string; codes read as numbers lose their '.0'."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
    if isinstance(value, np.floating) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def _is_text(column: sa.Column[Any]) -> bool:
    return isinstance(column.type, sa.String)


def _prepare(
    raw: geopandas.GeoDataFrame, spec: _Spec, mapping: _Mapping, crs: str | None
) -> geopandas.GeoDataFrame:
    """Rename to registry fields, apply defaults, normalise text, reproject to EPSG:4326."""
    notes: list[str] = list(raw.attrs.get("admin_notes", []))
    missing = [s.column for s in mapping.columns.values() if s.column not in raw.columns]
    if missing:
        raise AdminFileError(
            f"映射的列在文件中不存在 mapped column(s) {missing} are not in the file; "
            f"file columns: {[c for c in raw.columns if c != raw.geometry.name]}"
        )
    data: dict[str, pd.Series] = {}
    # (row position, field, why): values the mapping's transforms or the code rules refuse.
    refused: list[tuple[int, str, str]] = []
    for column in spec.columns:
        name = column.name
        source = mapping.columns.get(name)
        if source is None and name in raw.columns:
            source = _Source(name)
        if source is not None and source.column != raw.geometry.name:
            data[name] = raw[source.column]
            if source.transforms:
                values = []
                for i, value in enumerate(data[name]):
                    out, why = source.apply(_as_text(value))
                    values.append(out)
                    if why is not None:
                        refused.append((i, name, why))
                data[name] = pd.Series(values, index=raw.index, dtype=object, name=name)
        if name in mapping.defaults:
            default = mapping.defaults[name]
            if name in data:
                data[name] = data[name].astype(object).where(data[name].notna(), default)
            else:
                data[name] = pd.Series([default] * len(raw), index=raw.index, dtype=object)
        if name in data and _is_text(column):
            data[name] = pd.Series(
                [_as_text(v) for v in data[name]], index=raw.index, dtype=object, name=name
            )
        kind = _code_kind(spec, column)
        if name in data and kind is not None:
            values = []
            for i, value in enumerate(data[name]):
                out, why = _normalise_code(kind, value)
                values.append(out)
                if why is not None:
                    refused.append((i, name, why))
            data[name] = pd.Series(values, index=raw.index, dtype=object, name=name)
    if "code" not in data:
        raise AdminFileError(
            f"文件中没有编码列 the file has no `code` column for {spec.table.name}; "
            f"file columns: {[c for c in raw.columns if c != raw.geometry.name]}; "
            "map one with --mapping (columns: {code: ...})"
        )
    geoms = geopandas.GeoSeries(raw.geometry.values, index=raw.index, crs=raw.crs)
    geoms = _to_wgs84(geoms, crs, notes)
    if shapely.has_z(geoms.values).any():
        geoms = geopandas.GeoSeries(shapely.force_2d(geoms.values), index=raw.index, crs=geoms.crs)
        notes.append("已去掉 Z 坐标 dropped the Z coordinates (the tables are 2-D)")
    out = geopandas.GeoDataFrame(pd.DataFrame(data, index=raw.index), geometry=geoms)
    out.attrs["admin_notes"] = notes
    out.attrs["admin_refused"] = refused
    return out


def _code_kind(spec: _Spec, column: sa.Column[Any]) -> str | None:
    """'street' or 'community' for a column holding such a code (its own or a reference)."""
    if column.name == "code" and spec.level in ("street", "community"):
        return spec.level
    for fk in column.foreign_keys:
        if fk.target_fullname == "streets.code":
            return "street"
        if fk.target_fullname == "communities.code":
            return "community"
    return None


def _normalise_code(kind: str, value: str | None) -> tuple[str | None, str | None]:
    """A street or community code as stored, from the file's form; or why it cannot be.

    A street's 12-digit statistical code (9 digits + 000) becomes its 9 digits; a 12-digit
    code that does not end in 000 is a community's, and one that does, given for a
    community, is its street's.
    """
    if value is None or not STAT_CODE.fullmatch(value):
        return value, None
    if kind == "street":
        if value.endswith("000"):
            return value[:9], None
        return None, (
            f"{value!r} 是社区(村)级的 12 位统计用区划代码, 不是街道代码 (街道为 9 位, 或 12 位"
            f"且末三位为 000) {value!r} is a community's 12-digit statistical code, not a "
            f"street's: a street has 9 digits, or 12 ending in 000 (here {value[9:]})"
        )
    if value.endswith("000"):
        return None, (
            f"{value!r} 末三位为 000, 是街道 {value[:9]} 本身的统计用区划代码, 不是社区代码 "
            f"{value!r} ends in 000: it is the statistical code of street {value[:9]} "
            "itself, not of a community"
        )
    return value, None


def _parse_crs(value: str) -> str | CRS:
    """'wgs84' / 'gcj02' / 'bd09' (any spelling etl.coords knows), else a pyproj CRS."""
    try:
        return coords.normalize_crs(value)
    except coords.UnknownCRS:
        pass
    try:
        return CRS.from_user_input(value)
    except CRSError:
        raise AdminFileError(
            f"未知坐标系 unknown coordinate system: {value!r} (use EPSG:xxxx, wgs84, gcj02 or bd09)"
        ) from None


def _is_wgs84(crs: CRS) -> bool:
    """EPSG:4326, OGC:CRS84 and CGCS2000 (EPSG:4490, equal at city scale)."""
    if crs.to_epsg() in (4326, 4490):
        return True
    return any(crs.equals(CRS.from_epsg(e), ignore_axis_order=True) for e in (4326, 4490))


def _same_crs(a: CRS, b: CRS) -> bool:
    return (_is_wgs84(a) and _is_wgs84(b)) or a.equals(b, ignore_axis_order=True)


def _shift(geoms: geopandas.GeoSeries, code: str) -> geopandas.GeoSeries:
    """Convert GCJ-02 / BD-09 vertices to WGS84 with etl.coords."""

    def convert(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        lng, lat = coords.to_wgs84(xy[:, 0], xy[:, 1], code)
        return np.column_stack([lng, lat])

    return geopandas.GeoSeries(
        shapely.transform(geoms.values, convert), index=geoms.index, crs="EPSG:4326"
    )


def _to_wgs84(geoms: geopandas.GeoSeries, crs: str | None, notes: list[str]) -> geopandas.GeoSeries:
    """The file's CRS wins; `crs` applies when there is none (or names a GCJ/BD shift)."""
    wanted = _parse_crs(crs) if crs else None
    if geoms.crs is None:
        if wanted is None:
            raise AdminFileError(
                "文件没有坐标系 the file declares no coordinate system: "
                "pass --crs (EPSG:xxxx, wgs84, gcj02 or bd09) or `crs:` in the mapping"
            )
        if isinstance(wanted, str):
            geoms = geoms.set_crs("EPSG:4326")
            return _shift(geoms, wanted) if wanted != coords.WGS84 else geoms
        geoms = geoms.set_crs(wanted)
    elif isinstance(wanted, str):
        if wanted != coords.WGS84 and _is_wgs84(geoms.crs):
            # A shifted file can only declare plain lng/lat: the shift is not a contradiction.
            return _shift(geoms.set_crs("EPSG:4326", allow_override=True), wanted)
        if not _is_wgs84(geoms.crs):
            notes.append(
                f"坐标系以文件为准 the file's CRS {geoms.crs.to_string()} wins over "
                f"--crs {crs!r}, which contradicts it"
            )
    elif wanted is not None and not _same_crs(wanted, geoms.crs):
        notes.append(
            f"坐标系以文件为准 the file's CRS {geoms.crs.to_string()} wins over "
            f"--crs {crs!r}, which contradicts it"
        )
    if _is_wgs84(geoms.crs):
        return geoms.set_crs("EPSG:4326", allow_override=True)
    return geoms.to_crs("EPSG:4326")


class _Frame:
    """Measures lng/lat geometries in the UTM zone of the data (m², m).

    Overlays run in lng/lat, the storage CRS, where a vertex lying on a neighbour's edge
    stays on it; projecting first would bend long edges and open false slivers.
    """

    def __init__(self, lng: float, lat: float) -> None:
        zone = int((lng + 180.0) // 6.0) % 60 + 1
        self.crs = f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"
        self._fwd = Transformer.from_crs("EPSG:4326", self.crs, always_xy=True)
        self._inv = Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True)

    def metric(self, geoms: Any) -> Any:
        def fwd(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            return np.column_stack(self._fwd.transform(xy[:, 0], xy[:, 1]))

        return shapely.transform(geoms, fwd)

    def area(self, geoms: Any) -> Any:
        """Area in m² (an array for an array)."""
        return shapely.area(self.metric(geoms))

    def reach(
        self, part: shapely.Geometry, target: shapely.Geometry
    ) -> tuple[float, tuple[float, float]]:
        """How far (m) a geometry lying outside `target` gets from it, and where (lng/lat)."""
        xy = shapely.get_coordinates(shapely.segmentize(self.metric(part), 1.0))
        if not len(xy):
            return 0.0, (math.nan, math.nan)
        distance = shapely.distance(shapely.points(xy), self.metric(target))
        k = int(np.argmax(distance))
        lng, lat = self._inv.transform(xy[k, 0], xy[k, 1])
        return float(distance[k]), (float(lng), float(lat))


def _locate(geom: shapely.Geometry | None) -> tuple[float | None, float | None]:
    """A point inside the largest part of a lng/lat geometry."""
    if geom is None or geom.is_empty:
        return None, None
    point = shapely.point_on_surface(_largest_part(geom))
    return float(point.x), float(point.y)


def _largest_part(geom: shapely.Geometry) -> shapely.Geometry:
    parts = shapely.get_parts(geom)
    if len(parts) <= 1:
        return geom
    size = shapely.area(parts) + shapely.length(parts)
    return parts[int(np.argmax(size))]


_REASON_AT = re.compile(r"\[\s*([-+0-9.eE]+)[\s,]+([-+0-9.eE]+)")


def _where(geom: shapely.Geometry | None, reason: str = "") -> tuple[float | None, float | None]:
    """Where to point at a row's geometry: the spot GEOS names, else a point inside it."""
    match = _REASON_AT.search(reason)
    if match:
        return float(match.group(1)), float(match.group(2))
    try:
        return _locate(geom)
    except GEOSException:  # point_on_surface of an invalid geometry: its first vertex
        x, y = shapely.get_coordinates(geom)[0]
        return float(x), float(y)


def _safe(op: Callable[..., Any], a: GeomArray, b: GeomArray | shapely.Geometry) -> GeomArray:
    """A vectorised overlay, retried row by row on a 1 mm grid where GEOS gives up."""
    try:
        out: GeomArray = op(a, b)
        return out
    except GEOSException:
        bs = np.broadcast_to(np.asarray(b, dtype=object), a.shape)
        result = np.empty(a.shape, dtype=object)
        for i, (x, y) in enumerate(zip(a, bs, strict=True)):
            try:
                result[i] = op(x, y)
            except GEOSException:
                result[i] = op(x, y, grid_size=1e-3)
        return result


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """The polygons of a geometry (what make_valid left of a polygon may include lines)."""
    parts = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon"]
    return shapely.MultiPolygon(parts) if parts else shapely.Polygon()


def _plain(values: Iterable[Any]) -> list[str]:
    out = sorted({str(v) for v in values})
    return out[:MAX_LISTED] + ([f"… (+{len(out) - MAX_LISTED})"] if len(out) > MAX_LISTED else [])


@dataclass
class _Check:
    """The state one validation works on."""

    spec: _Spec
    gdf: geopandas.GeoDataFrame
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(
        self, kind: str, code: str | None, message: str, at: tuple[float | None, float | None]
    ) -> None:
        self.problems.append(Problem(kind, code, message, at[0], at[1]))


def _load(conn: sa.Connection, table: sa.Table, *columns: str) -> pd.DataFrame:
    """Rows of a table with their geometry as shapely objects (column `geom`)."""
    query = sa.select(
        *(table.c[c] for c in columns),
        sa.func.ST_AsBinary(table.c.geom, type_=sa.LargeBinary).label("geom"),
    )
    rows = conn.execute(query).all()
    df = pd.DataFrame(rows, columns=[*columns, "geom"])
    df["geom"] = shapely.from_wkb(df["geom"].to_numpy()) if len(df) else []
    return df


def _fits(column: sa.Column[Any], value: Any) -> bool:
    """Whether a non-null value can be stored in the column."""
    kind = column.type
    if isinstance(kind, sa.String):
        return kind.length is None or len(str(value)) <= kind.length
    if isinstance(kind, sa.Integer):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False
        return math.isfinite(number) and number.is_integer()
    if isinstance(kind, sa.Float):
        try:
            return math.isfinite(float(value))
        except (TypeError, ValueError):
            return False
    return True


def _is_null(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _derive_street_codes(check: _Check, street_of: dict[str, str]) -> None:
    """Grids: fill street_code from the community where the file leaves it blank."""
    gdf = check.gdf
    derived = [street_of.get(c) if c is not None else None for c in gdf["community_code"]]
    if "street_code" not in gdf:
        gdf["street_code"] = pd.Series(derived, index=gdf.index, dtype=object)
        return
    blank = gdf["street_code"].isna().to_numpy()
    if blank.any():
        gdf.loc[blank, "street_code"] = pd.Series(derived, index=gdf.index, dtype=object)[blank]


def _check_rows(check: _Check, pattern: str | None) -> npt.NDArray[np.bool_]:
    """Field, code and geometry checks row by row; returns which geometries are usable."""
    spec, gdf = check.spec, check.gdf
    geoms: GeomArray = np.asarray(gdf.geometry.values, dtype=object)
    codes = gdf["code"].tolist()
    points = [
        _where(g) if g is not None and not g.is_empty and g.is_valid else (None, None)
        for g in geoms
    ]

    refused = set()
    for i, name, why in gdf.attrs.get("admin_refused", []):
        refused.add((i, name))
        column = next(c for c in spec.columns if c.name == name)
        check.add(
            "code_format" if _code_kind(spec, column) else "bad_value",
            codes[i],
            f"第 {i + 1} 行 {spec.label(name)}: {why} (row {i + 1})",
            points[i],
        )

    required = [c for c in spec.columns if not c.nullable and c.server_default is None]
    if spec.level == "grid":
        # Derived from the community: a missing community is reported, not this.
        required = [c for c in required if c.name != "street_code"]
    for column in required:
        if column.name not in gdf:
            check.add(
                "missing_column",
                None,
                f"文件缺少必填列 the file has no column for required field "
                f"{spec.label(column.name)}",
                (None, None),
            )
            continue
        for i, value in enumerate(gdf[column.name]):
            if _is_null(value) and (i, column.name) not in refused:
                check.add(
                    "missing_field",
                    codes[i],
                    f"第 {i + 1} 行缺少 {spec.label(column.name)} row {i + 1} "
                    f"({codes[i]!r}) has no {column.name}",
                    points[i],
                )
    for column in spec.columns:
        if column.name not in gdf:
            continue
        for i, value in enumerate(gdf[column.name]):
            if not _is_null(value) and not _fits(column, value):
                limit = getattr(column.type, "length", None)
                kind = "code_format" if column.primary_key else "bad_value"
                check.add(
                    kind,
                    codes[i],
                    f"{spec.label(column.name)} 的值不合要求 value {value!r} of "
                    f"{column.name} does not fit {column.type}"
                    + (f" (at most {limit} characters)" if limit else ""),
                    points[i],
                )
    if pattern:
        regex = re.compile(pattern)
        for i, code in enumerate(codes):
            if code is not None and not regex.fullmatch(code):
                check.add(
                    "code_format",
                    code,
                    f"编码格式不符 code {code!r} does not match the pattern {pattern!r}",
                    points[i],
                )
    seen: dict[str, int] = {}
    for i, code in enumerate(codes):
        if code is None:
            continue
        if code in seen:
            check.add(
                "duplicate_code",
                code,
                f"编码重复 code {code!r} appears again in row {i + 1} "
                f"(first in row {seen[code] + 1})",
                points[i],
            )
        else:
            seen[code] = i

    usable = np.zeros(len(geoms), dtype=bool)
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    base = _BASE_TYPES[spec.geometry_type]
    many = spec.geometry_type.startswith("MULTI")
    for i, geom in enumerate(geoms):
        if empty[i]:
            check.add(
                "empty_geometry",
                codes[i],
                f"几何为空 row {i + 1} ({codes[i]!r}) has no geometry",
                (None, None),
            )
            continue
        kind = geom.geom_type
        parts = shapely.get_num_geometries(geom)
        if kind != base and not (kind == f"Multi{base}" and (many or parts == 1)):
            what = f"{kind} of {parts} parts" if kind.startswith("Multi") else kind
            check.add(
                "wrong_geometry_type",
                codes[i],
                f"几何类型错误 {codes[i]!r} is a {what}; {spec.table.name} takes "
                f"{spec.geometry_type.title()}",
                _where(geom),
            )
            continue
        reason = shapely.is_valid_reason(geom)
        if reason != "Valid Geometry":
            check.add(
                "invalid_geometry",
                codes[i],
                f"几何无效 geometry of {codes[i]!r} is invalid: {reason}",
                _where(geom, reason),
            )
            continue
        usable[i] = True
    return usable


def _check_parents(
    check: _Check, known: set[str], key: str, parent_spec: _Spec
) -> npt.NDArray[np.bool_]:
    """Every row's parent exists; returns which rows have one."""
    gdf = check.gdf
    has = np.zeros(len(gdf), dtype=bool)
    if key not in gdf:
        return has
    if not known:
        wanted = [p for p in gdf[key] if p is not None]
        if wanted:
            check.add(
                "missing_parent",
                None,
                f"尚未导入{parent_spec.title} no {parent_spec.table.name} are loaded yet: "
                f"import them first ({key} values: {_plain(wanted)})",
                (None, None),
            )
        return has
    geoms = gdf.geometry.values
    for i, (code, parent) in enumerate(zip(gdf["code"], gdf[key], strict=True)):
        if parent is None:
            continue
        if parent in known:
            has[i] = True
            continue
        at = _where(geoms[i]) if geoms[i] is not None and geoms[i].is_valid else (None, None)
        check.add(
            "missing_parent",
            code,
            f"上级{parent_spec.title}不存在 {key} {parent!r} of {code!r} is not in the database",
            at,
        )
    return has


def _check_polygons(
    conn: sa.Connection, check: _Check, usable: npt.NDArray[np.bool_], frame: _Frame
) -> None:
    """Nesting in the parent, gaps in each touched parent, overlaps between units."""
    spec, gdf = check.spec, check.gdf
    codes = np.asarray(gdf["code"].tolist(), dtype=object)
    geoms = np.asarray(gdf.geometry.values, dtype=object)
    parent_info = _parent(spec.level)
    key = parent_info[1] if parent_info else None

    existing = _load(conn, spec.table, "code", *([key] if key else []))
    file_codes = {c for c in codes if c is not None}
    kept = existing[~existing["code"].isin(file_codes)]

    # Rows that cannot be drawn are left out; invalid ones count as repaired so their
    # neighbours do not all report gaps too (the invalid geometry is already a problem).
    rows = np.flatnonzero(usable | (~shapely.is_valid(geoms) & ~shapely.is_missing(geoms)))
    rows = rows[[shapely.get_type_id(geoms[i]) in (3, 6) for i in rows]]
    mine = np.array(
        [geoms[i] if usable[i] else _polygonal(shapely.make_valid(geoms[i])) for i in rows],
        dtype=object,
    )
    state = np.concatenate([mine, kept["geom"].to_numpy(dtype=object)])
    state_code = np.concatenate([codes[rows], kept["code"].to_numpy(dtype=object)])
    n_mine = len(rows)

    if parent_info is not None and key is not None:
        parent_level, _ = parent_info
        parent_spec = _spec(parent_level)
        parents = _load(conn, parent_spec.table, "code")
        parent_geom = dict(zip(parents["code"], parents["geom"], strict=True))
        mine_parent = gdf[key].to_numpy(dtype=object)[rows] if key in gdf else np.full(n_mine, None)
        state_parent = np.concatenate([mine_parent, kept[key].to_numpy(dtype=object)])
        # Nesting: the part of each child outside its parent.
        idx = np.flatnonzero([p in parent_geom for p in mine_parent])
        if len(idx):
            outer = np.array([parent_geom[p] for p in mine_parent[idx]], dtype=object)
            shapely.prepare(outer)
            idx_out = idx[~shapely.covers(outer, mine[idx])]
            outer = np.array([parent_geom[p] for p in mine_parent[idx_out]], dtype=object)
            outside = _safe(shapely.difference, mine[idx_out], outer)
            for j, extra, area in zip(idx_out, outside, frame.area(outside), strict=True):
                if area > AREA_TOLERANCE_M2:
                    code, parent = codes[rows[j]], mine_parent[j]
                    check.add(
                        "outside_parent",
                        code,
                        f"{spec.title} {code!r} 有 {area:.1f} 平方米在所属{parent_spec.title} "
                        f"{parent!r} 之外 {area:.1f} m² of {code!r} lies outside its "
                        f"{parent_level} {parent!r}",
                        _locate(extra),
                    )
        # Gaps: each parent the file touches must be covered by its children.
        moved = existing[existing["code"].isin(file_codes)][key]
        touched = sorted({p for p in [*mine_parent, *moved] if p in parent_geom})
        for parent in touched:
            union = shapely.union_all(state[state_parent == parent])
            hole = _safe(shapely.difference, np.array([parent_geom[parent]], dtype=object), union)
            parts = shapely.get_parts(hole[0])
            for part, area in zip(parts, frame.area(parts), strict=True):
                if area > AREA_TOLERANCE_M2:
                    check.add(
                        "gap",
                        parent,
                        f"{parent_spec.title} {parent!r} 有 {area:.1f} 平方米不属于任何"
                        f"{spec.title} gap of {area:.1f} m² in {parent_level} {parent!r}: "
                        f"covered by none of its {spec.table.name}",
                        _locate(part),
                    )

    # Overlaps between any two units of the level, one of them from the file.
    tree = shapely.STRtree(state)
    left, right = tree.query(mine, predicate="intersects")
    keep = (left != right) & ((right >= n_mine) | (left < right))
    left, right = left[keep], right[keep]
    if len(left):
        common = _safe(shapely.intersection, state[left], state[right])
        area = frame.area(common)
        for a, b, shared, size in zip(left, right, common, area, strict=True):
            if size > AREA_TOLERANCE_M2:
                code_a, code_b = state_code[a], state_code[b]
                where = "" if b < n_mine else " (in the database)"
                check.add(
                    "overlap",
                    code_a,
                    f"{spec.title} {code_a!r} 与 {code_b!r} 重叠 {size:.1f} 平方米 "
                    f"{code_a!r} overlaps {code_b!r}{where} by {size:.1f} m²",
                    _locate(shared),
                )


def _check_placed(
    check: _Check,
    streets: pd.DataFrame,
    usable: npt.NDArray[np.bool_],
    has_parent: npt.NDArray[np.bool_],
    frame: _Frame,
) -> None:
    """Lanes and points lie in the district and in their street (lanes within 5 m)."""
    spec, gdf = check.spec, check.gdf
    if streets.empty:
        return
    street_geom = dict(zip(streets["code"], streets["geom"], strict=True))
    district = shapely.union_all(streets["geom"].to_numpy(dtype=object))
    shapely.prepare(district)
    shapely.prepare(list(street_geom.values()))
    is_lane = spec.geometry_type == "LINESTRING"
    tol = LANE_TOLERANCE_M if is_lane else POINT_TOLERANCE_M
    what = "sticks out" if is_lane else "lies"
    geoms = np.asarray(gdf.geometry.values, dtype=object)
    codes = gdf["code"].tolist()
    parents = gdf["street_code"].tolist() if "street_code" in gdf else [None] * len(gdf)
    rows = np.flatnonzero(usable)
    stray = rows[~shapely.covers(district, geoms[rows])]
    flagged: set[int] = set()
    for i in stray.tolist():
        extra = shapely.difference(geoms[i], district)
        far, at = frame.reach(extra, district)
        if far > tol:
            flagged.add(i)
            check.add(
                "outside_district",
                codes[i],
                f"{spec.title} {codes[i]!r} 超出辖区 {far:.1f} 米 {codes[i]!r} {what} "
                f"{far:.1f} m outside the district (tolerance {tol:g} m)",
                at,
            )
    for i in rows.tolist():
        if i in flagged or not has_parent[i]:
            continue
        street = street_geom[parents[i]]
        if shapely.covers(street, geoms[i]):
            continue
        extra = shapely.difference(geoms[i], street)
        far, at = frame.reach(extra, street)
        if far > tol:
            check.add(
                "outside_parent",
                codes[i],
                f"{spec.title} {codes[i]!r} 超出所属街道 {parents[i]!r} {far:.1f} 米 "
                f"{codes[i]!r} {what} {far:.1f} m outside its street {parents[i]!r} "
                f"(tolerance {tol:g} m)",
                at,
            )


def _validate(
    conn: sa.Connection, spec: _Spec, gdf: geopandas.GeoDataFrame, pattern: str | None
) -> _Check:
    gdf = gdf.copy()
    check = _Check(spec, gdf, notes=list(gdf.attrs.get("admin_notes", [])))
    street_of: dict[str, str] | None = None
    if spec.level == "grid" and "community_code" in gdf:
        table = get_layer("communities").table
        street_of = {c: s for c, s in conn.execute(sa.select(table.c.code, table.c.street_code))}
        _derive_street_codes(check, street_of)
    usable = _check_rows(check, pattern)
    geoms = np.asarray(gdf.geometry.values, dtype=object)
    drawn = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    if not len(drawn):
        return check
    # The median centre, so that a stray unit (say at 0,0) does not pick the zone.
    lng, lat = np.median(shapely.get_coordinates(shapely.centroid(drawn)), axis=0)
    frame = _Frame(float(lng), float(lat))
    if (parent_info := _parent(spec.level)) is not None:
        parent_level, key = parent_info
        parent_spec = _spec(parent_level)
        known = set(conn.execute(sa.select(parent_spec.table.c.code)).scalars())
        _check_parents(check, known, key, parent_spec)
        if street_of is not None and "street_code" in gdf:
            _check_grid_streets(check, street_of)
    elif not spec.polygonal:
        streets = _load(conn, get_layer("streets").table, "code")
        has_parent = _check_parents(check, set(streets["code"]), "street_code", _spec("street"))
        _check_placed(check, streets, usable, has_parent, frame)
    if spec.polygonal:
        _check_polygons(conn, check, usable, frame)
    return check


def _check_grid_streets(check: _Check, street_of: dict[str, str]) -> None:
    """A grid's own street_code must be its community's street."""
    gdf = check.gdf
    geoms = gdf.geometry.values
    for i, (code, community, street) in enumerate(
        zip(gdf["code"], gdf["community_code"], gdf["street_code"], strict=True)
    ):
        expected = street_of.get(community)
        if expected is not None and street is not None and street != expected:
            at = _where(geoms[i]) if geoms[i] is not None and geoms[i].is_valid else (None, None)
            check.add(
                "parent_mismatch",
                code,
                f"网格 {code!r} 的街道 {street!r} 与其社区 {community!r} 的街道 {expected!r} "
                f"不一致 grid {code!r} says street {street!r} but its community "
                f"{community!r} is in street {expected!r}",
                at,
            )


def validate_admin(
    conn: sa.Connection,
    level: str,
    gdf: geopandas.GeoDataFrame,
    *,
    code_pattern: str | None = None,
) -> list[Problem]:
    """Every problem of the units in `gdf` (registry fields; a CRS is required)."""
    spec = _spec(level)
    prepared = _prepare(gdf, spec, _Mapping(columns={}), None)
    return _validate(conn, spec, prepared, code_pattern).problems


def _conform(spec: _Spec, geoms: GeomArray) -> GeomArray:
    """Promote Polygon to MultiPolygon, or demote one-part multis, to the column's type."""
    out = geoms.copy()
    for i, geom in enumerate(geoms):
        if spec.geometry_type.startswith("MULTI"):
            if not geom.geom_type.startswith("Multi"):
                out[i] = shapely.multipolygons([geom])
        elif geom.geom_type.startswith("Multi"):
            out[i] = shapely.get_geometry(geom, 0)
    return out


def _python(column: sa.Column[Any], value: Any) -> Any:
    if _is_null(value):
        return None
    if isinstance(column.type, sa.Integer):
        return int(float(value))
    if isinstance(column.type, sa.Float):
        return float(value)
    if isinstance(column.type, sa.String):
        return str(value)
    return value.item() if isinstance(value, np.generic) else value


def _array_type(column: sa.Column[Any]) -> sa.types.TypeEngine[Any]:
    """The Postgres array type that carries a column's values into `unnest`."""
    if isinstance(column.type, sa.Integer):
        return pg.ARRAY(sa.BigInteger)
    if isinstance(column.type, sa.Float):
        return pg.ARRAY(sa.Float)
    return pg.ARRAY(sa.Text)


def _upsert(conn: sa.Connection, spec: _Spec, gdf: geopandas.GeoDataFrame) -> list[str]:
    """Insert new units, update changed ones; returns the codes written.

    One statement: each column travels as one bound array, unnested into rows.
    """
    if gdf.empty:
        return []
    table = spec.table
    present = [c for c in spec.columns if c.name in gdf]
    geoms = shapely.set_srid(_conform(spec, np.asarray(gdf.geometry.values, dtype=object)), 4326)
    arrays = [
        sa.bindparam(c.name, [_python(c, v) for v in gdf[c.name]], type_=_array_type(c))
        for c in present
    ]
    wkb = sa.bindparam(
        "geom", list(shapely.to_wkb(geoms, include_srid=True)), type_=pg.ARRAY(sa.LargeBinary)
    )
    names = [c.name for c in present]
    src = sa.func.unnest(*arrays, wkb).table_valued(*names, "geom").render_derived()
    rows = sa.select(*(src.c[n] for n in names), sa.func.ST_GeomFromEWKB(src.c.geom))
    stmt = pg_insert(table).from_select([*names, "geom"], rows)
    changing = [c.name for c in present if not c.primary_key] + ["geom"]
    changed = sa.tuple_(*(table.c[n] for n in changing)).is_distinct_from(
        sa.tuple_(*(stmt.excluded[n] for n in changing))
    )
    upsert = stmt.on_conflict_do_update(
        index_elements=[table.c.code],
        set_={n: stmt.excluded[n] for n in changing},
        where=changed,
    ).returning(table.c.code)
    return list(conn.execute(upsert).scalars())


def import_admin(
    conn: sa.Connection,
    path_or_gdf: Path | str | geopandas.GeoDataFrame,
    level: str,
    mapping: dict[str, Any] | None = None,
    crs: str | None = None,
    dry_run: bool = False,
    *,
    encoding: str | None = None,
    layer: str | None = None,
    placement_mb: float = DEFAULT_BUDGET_MB,
) -> AdminReport:
    """Read, validate and upsert one level; raises AdminImportError, writing nothing.

    Units in the database but not in the file are kept and listed in the report's notes.
    After streets, communities or grids, the placement index of the new units is built
    (within `placement_mb`) and the events already loaded get the finer codes it now knows
    (`etl.place.fill_in`); an index that cannot be built is a problem like any other.
    A dry run does the writes inside a savepoint and rolls them back, so its counts are exact.
    """
    spec = _spec(level)
    parsed = _parse_mapping(mapping, spec)
    if isinstance(path_or_gdf, geopandas.GeoDataFrame):
        gdf = _prepare(path_or_gdf, spec, parsed, crs or parsed.crs)
    else:
        gdf = read_admin_file(
            Path(path_or_gdf), level, mapping, crs, encoding=encoding, layer=layer
        )
    check = _validate(conn, spec, gdf, parsed.code_pattern)
    report = AdminReport(level, len(gdf), 0, 0, 0, check.problems, check.notes, dry_run)
    if check.problems:
        raise AdminImportError(report)

    if spec.level == "grid":
        geoms = np.asarray(check.gdf.geometry.values, dtype=object)
        parts = shapely.get_num_geometries(geoms)
        several = [c for c, n in zip(check.gdf["code"], parts, strict=True) if n > 1]
        if several:
            report.notes.append(
                f"{len(several)} 个网格由多个部分组成, 已整体保存 {len(several)} grid(s) in "
                f"several parts, each stored whole under its one code: {_plain(several)}"
            )
    table = spec.table
    before = set(conn.execute(sa.select(table.c.code)).scalars())
    codes = set(check.gdf["code"])
    absent = before - codes
    if absent:
        report.notes.append(
            f"数据库中有 {len(absent)} 个{spec.title}不在文件中, 已保留 {len(absent)} "
            f"{spec.table.name} in the database are not in the file (kept): {_plain(absent)}"
        )
    savepoint = conn.begin_nested()
    try:
        written = _upsert(conn, spec, check.gdf)
        if spec.polygonal:
            _place_events(conn, report, placement_mb)
    except BaseException:
        savepoint.rollback()
        raise
    if dry_run:
        savepoint.rollback()
    else:
        savepoint.commit()
    report.inserted = sum(1 for c in written if c not in before)
    report.updated = len(written) - report.inserted
    report.unchanged = report.read - len(written)
    return report


def _place_events(conn: sa.Connection, report: AdminReport, budget_mb: float) -> None:
    """Build the placement index of the units as they now are; fill in the events' codes.

    A failed build is the import's problem: AdminImportError, and the caller's savepoint
    takes the units back out.
    """
    try:
        placer = placer_for(conn, budget_mb=budget_mb)
    except PlacementError as exc:
        report.problems.append(Problem("placement", None, str(exc), None, None))
        raise AdminImportError(report) from None
    index = placer.index
    if isinstance(index, GridIndex):
        how = f"{index.cell_m:.3g} 米格网 m lattice"
    else:
        how = "STRtree 空间索引 spatial index (no lattice fits the budget)"
    report.placement = (
        f"{how}, 内存预算 budget {budget_mb:g} MB; 事件定位到 events placed down to: "
        + ", ".join(level for level in ("grid", "community", "street") if level in placer.levels)
    )
    filled = fill_in(conn, placer)
    if filled:
        if "service_requests" in filled:
            refresh_request_aggregates(conn)
        total = sum(filled.values())
        report.filled = filled
        report.notes.append(
            f"已为 {total} 条已导入的事件补全社区/网格编码 filled in the community/grid codes "
            f"of {total} event(s) already loaded: "
            + ", ".join(f"{k} {v}" for k, v in sorted(filled.items()))
        )
