"""The gazetteer (layers/gazetteer.py): imported from a district's files, derived from its layers.

`build(conn)` derives what the loaded layers give: the streets' and communities' long and
short names, every lane as a road with its house-number ranges and parity per side, the
landmarks and service halls as places, and the address points their addresses name (a
landmark stands at its plate). It replaces what the previous build derived; imported rows
stay.

`import_file(conn, path, kind=..., mapping=...)` loads a district's own file — CSV, XLSX,
GeoJSON or GPKG — of roads (`road`), address points (门牌, `address`) or places
(`poi`: landmarks, POIs, compounds with aliases). A mapping (a dict or a YAML file) names the
file's columns and its coordinate system (WGS84, GCJ-02 or BD-09, converted by etl/coords.py):

    columns:            # field: the file's column
      address: 标准地址
      road: 街路巷
      number: 门牌号
      lng: X
      lat: Y
    crs: gcj02

Each import is a recorded ETL run (etl_runs): every row that cannot load is kept as a
reject with its reason (etl_rejects, `blockdata etl rejects RUN_ID`), the rest loads, all in
one savepoint: a file that fails as a whole leaves the gazetteer as it was. Importing the
same file name again replaces its rows.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
import sqlalchemy as sa
import yaml

from etl import coords
from etl.address import Address, parse_address
from etl.geocoder import area_names, name_key
from etl.jobs import RunReport, _start_run, fail_run, succeed_run
from etl.load import save_rejects
from etl.mapping import Mapping as SourceMapping
from layers.gazetteer import (
    BUILD_SOURCE,
    TABLES,
    gazetteer_addresses,
    gazetteer_names,
    gazetteer_places,
    gazetteer_roads,
)

KINDS = ("road", "address", "poi")
LAYER = {"road": "gazetteer_roads", "address": "gazetteer_addresses", "poi": "gazetteer_places"}
SOURCE = "gazetteer"
BBOX = (73.0, 3.0, 136.0, 54.0)  # China: a point outside is a mistake (swapped, zero …)

# The fields of each kind, and the column names a file may use for them (first wins).
FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "road": {
        "name": ("name", "名称", "道路名称", "街路巷", "街巷名称", "路名"),
        "kind": ("kind", "类型", "道路类型"),
        "left_from": ("left_from", "左侧起始门牌", "左起"),
        "left_to": ("left_to", "左侧终止门牌", "左止"),
        "left_parity": ("left_parity", "左侧单双", "左单双"),
        "right_from": ("right_from", "右侧起始门牌", "右起"),
        "right_to": ("right_to", "右侧终止门牌", "右止"),
        "right_parity": ("right_parity", "右侧单双", "右单双"),
    },
    "address": {
        "address": ("address", "标准地址", "地址", "门牌地址"),
        "road": ("road", "街路巷", "道路", "路名", "街巷"),
        "number": ("number", "门牌号", "门牌"),
        "lng": ("lng", "x", "经度", "X", "lon"),
        "lat": ("lat", "y", "纬度", "Y"),
    },
    "poi": {
        "code": ("code", "编码", "编号", "ID", "id"),
        "name": ("name", "名称", "地标名称", "POI名称"),
        "kind": ("kind", "类别", "类型", "分类"),
        "aliases": ("aliases", "别名", "简称"),
        "address": ("address", "地址"),
        "lng": ("lng", "x", "经度", "X", "lon"),
        "lat": ("lat", "y", "纬度", "Y"),
    },
}
REQUIRED = {"road": ("name",), "address": ("lng", "lat"), "poi": ("name", "lng", "lat")}
PARITY_WORDS = {
    "odd": "odd", "单": "odd", "单号": "odd", "奇": "odd", "1": "odd",
    "even": "even", "双": "even", "双号": "even", "偶": "even", "2": "even",
    "all": "all", "全": "all", "连续": "all", "0": "all",
}  # fmt: skip
ALIAS_SPLIT = re.compile(r"[;；,，、|/]")


class GazetteerFileError(ValueError):
    """The file or its mapping cannot be read as a whole (nothing is loaded)."""


@dataclass(frozen=True)
class Mapping_:
    columns: dict[str, str]
    crs: str


def read_mapping(mapping: Mapping[str, Any] | Path | str | None) -> dict[str, Any]:
    """A mapping as a dict: given as one, or a YAML file's path."""
    if mapping is None:
        return {}
    if isinstance(mapping, (str, Path)):
        try:
            loaded = yaml.safe_load(Path(mapping).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise GazetteerFileError(
                f"映射文件无法读取 cannot read mapping {mapping}: {exc}"
            ) from exc
        if not isinstance(loaded, dict):
            raise GazetteerFileError(
                f"映射文件须为键值表 mapping must be a YAML mapping: {mapping}"
            )
        return loaded
    return dict(mapping)


def _resolve(kind: str, frame: pd.DataFrame, mapping: dict[str, Any]) -> Mapping_:
    given = mapping.get("columns") or {}
    if not isinstance(given, dict):
        raise GazetteerFileError("映射的 columns 须为键值表 mapping 'columns' must be a mapping")
    unknown = sorted(set(given) - set(FIELDS[kind]))
    if unknown:
        raise GazetteerFileError(f"映射中有未知字段 unknown fields in mapping: {unknown}")
    columns: dict[str, str] = {}
    present = [str(c) for c in frame.columns]
    for name, spellings in FIELDS[kind].items():
        if name in given:
            col = str(given[name])
            if col not in present:
                raise GazetteerFileError(f"文件中没有列 {col!r} (字段 {name}) column missing")
            columns[name] = col
            continue
        found = next((c for c in spellings if c in present), None)
        if found is not None:
            columns[name] = found
    missing = [f for f in REQUIRED[kind] if f not in columns]
    if kind == "address" and "address" not in columns and not {"road", "number"} <= set(columns):
        missing.append("address 或 road+number")
    if missing:
        raise GazetteerFileError(f"缺少必需的列 required columns missing: {missing}")
    try:
        crs = coords.normalize_crs(mapping.get("crs") or coords.WGS84)
    except Exception as exc:
        raise GazetteerFileError(f"未知坐标系 unknown coordinate system: {exc}") from exc
    return Mapping_(columns, crs)


def _read(path: Path, sheet: str | None = None) -> pd.DataFrame:
    """The file's rows as text (and a `geometry` column of shapely geometries when it has
    one, in WGS84)."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".txt"):
            raw = path.read_bytes()
            for encoding in ("utf-8-sig", "gb18030"):
                try:
                    raw.decode(encoding)
                    break
                except UnicodeDecodeError:
                    continue
            else:
                raise GazetteerFileError(f"无法识别文件编码 unknown encoding: {path.name}")
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
        if suffix in (".xlsx", ".xls"):
            return pd.read_excel(
                path, dtype=str, keep_default_na=False, sheet_name=sheet or 0, engine="openpyxl"
            )
        if suffix in (".geojson", ".json", ".gpkg", ".shp"):
            import pyogrio

            gdf = pyogrio.read_dataframe(path)
            if gdf.crs is not None and not gdf.crs.equals("EPSG:4326"):
                gdf = gdf.to_crs("EPSG:4326")
            frame = pd.DataFrame(gdf.drop(columns="geometry")).astype(object)
            frame = frame.where(frame.notna(), "").astype(str)
            frame["geometry"] = list(gdf.geometry.to_numpy())
            return frame
    except GazetteerFileError:
        raise
    except Exception as exc:
        raise GazetteerFileError(f"文件无法读取 cannot read {path.name}: {exc}") from exc
    raise GazetteerFileError(f"不支持的文件类型 unsupported file type: {path.name}")


class _Bad(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _int(value: str, what: str) -> int | None:
    if value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise _Bad("bad_number", f"{what}不是数字 not a number: {value!r}") from None
    if number != int(number) or number < 0:
        raise _Bad("bad_number", f"{what}须为非负整数 must be a whole number: {value!r}")
    return int(number)


def _point(row: dict[str, str], m: Mapping_, geometry: Any) -> tuple[float, float]:
    """The row's point: its columns' (in the file's system) or its geometry's (WGS84)."""
    if "lng" in m.columns and "lat" in m.columns:
        sx, sy = row.get("lng", ""), row.get("lat", "")
        if sx == "" or sy == "":
            raise _Bad("missing_coordinates", "缺少坐标 coordinates missing")
        try:
            x, y = float(sx), float(sy)
        except ValueError:
            raise _Bad("bad_coordinates", f"坐标不是数字 not numbers: {sx!r}, {sy!r}") from None
        if not (BBOX[0] <= x <= BBOX[2] and BBOX[1] <= y <= BBOX[3]):
            raise _Bad("outside", f"坐标不在中国境内 point outside China: {x}, {y}")
        return x, y  # in the file's system: converted for all rows at once (_to_wgs84)
    if geometry is None or geometry.is_empty or geometry.geom_type != "Point":
        raise _Bad("bad_geometry", "缺少点坐标 no point geometry")
    return float(geometry.x), float(geometry.y)


def _address_row(row: dict[str, str], m: Mapping_, geometry: Any) -> dict[str, Any]:
    text = row.get("address", "")
    road, number_text = row.get("road", ""), row.get("number", "")
    plate: Address | None = None
    if road and number_text:
        plate = parse_address(f"{road}{number_text}" + ("" if "号" in number_text else "号"))
    elif text:
        plate = parse_address(text)
    if plate is None or plate.road is None or plate.number is None:
        raise _Bad("bad_address", f"无法识别道路和门牌号 no road and number in {text!r}")
    if plate.number <= 0:
        raise _Bad("bad_number", f"门牌号须大于0 number must be positive: {plate.number}")
    lng, lat = _point(row, m, geometry)
    return {
        "address": text or f"{plate.road}{plate.house_number}",
        "road": name_key(plate.road),
        "number": plate.number,
        "prefix": plate.prefix,
        "sub": plate.sub,
        "geom": (lng, lat),
    }


def _place_row(row: dict[str, str], m: Mapping_, geometry: Any, n: int) -> dict[str, Any]:
    name = row.get("name", "")
    if not name:
        raise _Bad("missing_name", "缺少名称 name missing")
    lng, lat = _point(row, m, geometry)
    aliases = [a.strip() for a in ALIAS_SPLIT.split(row.get("aliases", "")) if a.strip()]
    return {
        "code": row.get("code") or f"row{n}",
        "name": name,
        "kind": row.get("kind") or "poi",
        "aliases": list(dict.fromkeys(a for a in aliases if a != name)),
        "address": row.get("address") or None,
        "geom": (lng, lat),
    }


def _parity(value: str, lo: int | None) -> str | None:
    if lo is None:
        return None
    if value == "":
        return "odd" if lo % 2 else "even"
    got = PARITY_WORDS.get(value.lower())
    if got is None:
        raise _Bad("bad_parity", f"单双号须为 单/双/全 parity must be odd, even or all: {value!r}")
    if (got == "odd" and lo % 2 == 0) or (got == "even" and lo % 2 == 1):
        raise _Bad(
            "bad_parity", f"起始门牌{lo}与单双号{value}不符 first number and parity disagree"
        )
    return got


def _road_rows(row: dict[str, str], geometry: Any) -> list[dict[str, Any]]:
    name = row.get("name", "")
    if not name:
        raise _Bad("missing_name", "缺少道路名称 name missing")
    if geometry is None or geometry.is_empty:
        raise _Bad("bad_geometry", "缺少线几何 no line geometry")
    parts = shapely.get_parts(geometry) if geometry.geom_type == "MultiLineString" else [geometry]
    if any(p.geom_type != "LineString" for p in parts):
        raise _Bad("bad_geometry", f"道路须为线 a road must be a line, not {geometry.geom_type}")
    sides: dict[str, Any] = {}
    for side in ("left", "right"):
        lo = _int(row.get(f"{side}_from", ""), f"{side}_from")
        hi = _int(row.get(f"{side}_to", ""), f"{side}_to")
        if (lo is None) != (hi is None):
            raise _Bad("bad_range", f"{side} 侧门牌范围不完整 range needs both ends")
        if lo is not None and hi is not None and (lo <= 0 or lo > hi):
            raise _Bad("bad_range", f"{side} 侧门牌范围无效 bad range {lo}–{hi}")
        sides |= {
            f"{side}_from": lo,
            f"{side}_to": hi,
            f"{side}_parity": _parity(row.get(f"{side}_parity", ""), lo),
        }
    return [
        {"name": name_key(name), "kind": row.get("kind") or None, "lane_code": None, **sides,
         "geom": f"SRID=4326;{part.wkt}"}
        for part in parts
    ]  # fmt: skip


def _reject(n: int, raw: dict[str, Any], reason: str, message: str) -> dict[str, Any]:
    return {
        "row_number": n,
        "source_id": None,
        "reason": reason,
        "message": message,
        "retryable": False,
        "raw": {k: _text(v) for k, v in raw.items() if k != "geometry"},
    }


def _street_of(conn: sa.Connection, table: sa.Table, source: str) -> None:
    """Each new row's street: the street its point (a road: its middle) lies in."""
    conn.execute(
        sa.text(
            f"update {table.name} t set street_code = s.code from streets s "
            "where t.source = :source and ST_Intersects(s.geom, "
            "ST_LineInterpolatePoint(t.geom, 0.5))"
            if table is gazetteer_roads
            else f"update {table.name} t set street_code = s.code from streets s "
            "where t.source = :source and ST_Intersects(s.geom, t.geom)"
        ),
        {"source": source},
    )


def import_file(
    conn: sa.Connection,
    path: Path | str,
    kind: str = "address",
    mapping: Mapping[str, Any] | Path | str | None = None,
    *,
    sheet: str | None = None,
) -> RunReport:
    """Load a district's file of roads, address points or places (see the module doc) in
    the caller's transaction (the caller commits); EtlError when the file fails as a whole
    (nothing loaded, the run recorded failed)."""
    if kind not in KINDS:
        raise GazetteerFileError(f"未知类型 kind must be one of {KINDS}: {kind!r}")
    path = Path(path)
    started = time.monotonic()
    layer = LAYER[kind]
    spec = SourceMapping(name=layer, layer=layer, source=SOURCE, crs=None, columns={}, required=())
    options: dict[str, Any] = {"gazetteer": "import", "kind": kind}
    run_id = _start_run(conn, path, spec, options)
    report = RunReport(run_id=run_id, layer=layer, source=SOURCE, file_name=path.name)
    source = f"file:{path.name}"
    try:
        with conn.begin_nested():
            conn.execute(
                sa.text("select pg_advisory_xact_lock(hashtext(:key))"),
                {"key": f"etl:{layer}:{source}"},
            )
            frame = _read(path, sheet)
            m = _resolve(kind, frame, read_mapping(mapping))
            geometries = frame["geometry"].tolist() if "geometry" in frame else [None] * len(frame)
            entries: list[_Entry] = []
            rejects: list[dict[str, Any]] = []
            seen: dict[Any, int] = {}
            records = frame.to_dict("records")
            for n, (raw, geometry) in enumerate(zip(records, geometries, strict=True), start=2):
                fields = {f: _text(raw.get(col)) for f, col in m.columns.items()}
                try:
                    if kind == "address":
                        made = [_address_row(fields, m, geometry)]
                        key: Any = tuple(made[0][k] for k in ("road", "number", "prefix", "sub"))
                    elif kind == "poi":
                        made = [_place_row(fields, m, geometry, n)]
                        key = made[0]["code"]
                    else:
                        made = _road_rows(fields, geometry)
                        key = None
                    if key is not None and key in seen:
                        raise _Bad("duplicate", f"与第{seen[key]}行重复 same as row {seen[key]}")
                    if key is not None:
                        seen[key] = n
                except _Bad as bad:
                    rejects.append(_reject(n, raw, bad.reason, bad.message))
                    continue
                entries.append(_Entry(n, raw, key, [{**r, "source": source} for r in made]))
            if kind != "road":
                _to_wgs84([r for e in entries for r in e.rows], m, "lng" in m.columns)
            table = TABLE[kind]
            entries = _held_elsewhere(conn, kind, entries, rejects, source)
            counts = _compare(conn, kind, entries, source)
            conn.execute(sa.delete(table).where(table.c.source == source))
            rows = [r for e in entries for r in e.rows]
            for i in range(0, len(rows), 5000):
                conn.execute(sa.insert(table), rows[i : i + 5000])
            _street_of(conn, table, source)
            rejects.sort(key=lambda r: r["row_number"])
            save_rejects(conn, run_id, rejects)
            report.read = len(records)
            report.inserted = counts["inserted"]
            report.updated = counts["updated"]
            report.unchanged = counts["unchanged"]
            report.rejected = len(rejects)
            report.reasons = dict(Counter(r["reason"] for r in rejects))
            succeed_run(conn, run_id, report)
    except (Exception, KeyboardInterrupt) as exc:
        report.read = 0
        report.reasons = {}
        fail_run(conn, run_id, report, exc, started)
    report.seconds = time.monotonic() - started
    return report


def _to_wgs84(rows: list[dict[str, Any]], m: Mapping_, from_columns: bool) -> None:
    """The rows' points (`geom`: lng, lat) as WGS84 EWKT, converted all at once."""
    if not rows:
        return
    xy = np.array([r["geom"] for r in rows], dtype=float)
    if from_columns:
        lng, lat = coords.to_wgs84(xy[:, 0], xy[:, 1], m.crs)
    else:
        lng, lat = xy[:, 0], xy[:, 1]
    for r, x, y in zip(rows, lng.tolist(), lat.tolist(), strict=True):
        r["geom"] = _point_text(x, y)


@dataclass
class _Entry:
    """A file row that passed: its number, raw values, key, and the rows it inserts."""

    n: int
    raw: dict[str, Any]
    key: Any
    rows: list[dict[str, Any]]


TABLE = {"road": gazetteer_roads, "address": gazetteer_addresses, "poi": gazetteer_places}


def _held_elsewhere(
    conn: sa.Connection,
    kind: str,
    entries: list[_Entry],
    rejects: list[dict[str, Any]],
    source: str,
) -> list[_Entry]:
    """A plate or a place code another imported file holds stays that file's: the row is
    rejected; a plate the build derived (a landmark's address) gives way to the file's."""
    if kind == "road" or not entries:
        return entries
    t = TABLE[kind]
    if kind == "address":
        c = gazetteer_addresses.c
        held = {
            tuple(r)
            for r in conn.execute(
                sa.select(c.road, c.number, c.prefix, c.sub).where(
                    c.source.not_in([source, BUILD_SOURCE])
                )
            )
        }
        conn.execute(
            sa.text(
                "delete from gazetteer_addresses where source = :build and (road, number) in "
                "(select * from unnest(cast(:roads as text[]), cast(:numbers as integer[])))"
            ),
            {
                "build": BUILD_SOURCE,
                "roads": [e.key[0] for e in entries],
                "numbers": [e.key[1] for e in entries],
            },
        )
        what = "门牌已在地名库中 plate already in the gazetteer"
    else:
        held = set(conn.execute(sa.select(t.c.code).where(t.c.source != source)).scalars())
        what = "编码已由其他来源使用 code used by another source"
    kept = []
    for e in entries:
        if e.key in held:
            rejects.append(_reject(e.n, e.raw, "duplicate", f"{what}: {e.key}"))
        else:
            kept.append(e)
    return kept


def _point_text(x: float, y: float) -> str:
    return f"SRID=4326;POINT({x!r} {y!r})"


def _compare(conn: sa.Connection, kind: str, entries: list[_Entry], source: str) -> Counter[str]:
    """How many of the file's rows are new, changed or as the last import of the same file
    left them (a file imported twice changes nothing)."""
    counts: Counter[str] = Counter(inserted=0, updated=0, unchanged=0)
    if kind == "road":
        old = Counter(
            (r.name, r.kind, r.left_from, r.left_to, r.left_parity, r.right_from, r.right_to,
             r.right_parity, f"SRID=4326;{shapely.from_wkb(bytes(r.wkb)).wkt}")
            for r in conn.execute(
                sa.text(
                    "select name, kind, left_from, left_to, left_parity, right_from, right_to, "
                    "right_parity, ST_AsBinary(geom) as wkb from gazetteer_roads "
                    "where source = :source"
                ),
                {"source": source},
            )
        )  # fmt: skip
        for e in entries:
            pieces = Counter(
                (r["name"], r["kind"], r["left_from"], r["left_to"], r["left_parity"],
                 r["right_from"], r["right_to"], r["right_parity"], r["geom"])
                for r in e.rows
            )  # fmt: skip
            if all(old[k] >= v for k, v in pieces.items()):
                old -= pieces
                counts["unchanged"] += 1
            else:
                counts["inserted"] += 1
        return counts
    if kind == "address":
        query = (
            "select road, number, prefix, sub, address, ST_X(geom) as x, ST_Y(geom) as y "
            "from gazetteer_addresses where source = :source"
        )
        fields: tuple[str, ...] = ("address",)
    else:
        query = (
            "select code, name, kind, aliases, address, ST_X(geom) as x, ST_Y(geom) as y "
            "from gazetteer_places where source = :source"
        )
        fields = ("name", "kind", "aliases", "address")
    before: dict[Any, tuple[Any, ...]] = {}
    for r in conn.execute(sa.text(query), {"source": source}):
        key = (r.road, r.number, r.prefix, r.sub) if kind == "address" else r.code
        values = tuple(list(getattr(r, f)) if f == "aliases" else getattr(r, f) for f in fields)
        before[key] = (*values, _point_text(r.x, r.y))
    for e in entries:
        row = e.rows[0]
        now = (*(row[f] for f in fields), row["geom"])
        if e.key not in before:
            counts["inserted"] += 1
        elif before[e.key] == now:
            counts["unchanged"] += 1
        else:
            counts["updated"] += 1
    return counts


# --- build ------------------------------------------------------------------------------


@dataclass
class BuildReport:
    names: int = 0
    roads: int = 0
    addresses: int = 0
    places: int = 0

    def lines(self) -> list[str]:
        return [
            f"地名库已生成 gazetteer built: 名称 names {self.names}, 道路 roads {self.roads}, "
            f"门牌 address points {self.addresses}, 地标 places {self.places}"
        ]


def build(conn: sa.Connection) -> BuildReport:
    """Derive the gazetteer from the loaded layers (see the module doc), replacing the
    previous build's rows, in the caller's transaction (the caller commits)."""
    report = BuildReport()
    with conn.begin_nested():
        for table in TABLES:
            conn.execute(sa.delete(table).where(table.c.source == BUILD_SOURCE))
        names = []
        for level, source_table in (("street", "streets"), ("community", "communities")):
            street = "code" if level == "street" else "street_code"
            for code, name, street_code in conn.execute(
                sa.text(f"select code, name, {street} from {source_table} order by code")
            ):
                for i, variant in enumerate(area_names(level, name)):
                    names.append(
                        {"level": level, "code": code, "name": variant, "street_code": street_code,
                         "official": i == 0, "source": BUILD_SOURCE}
                    )  # fmt: skip
        if names:
            conn.execute(
                sa.dialects.postgresql.insert(gazetteer_names).on_conflict_do_nothing(), names
            )
        report.names = len(names)
        report.roads = conn.execute(
            sa.text(
                """
                insert into gazetteer_roads (name, kind, street_code, lane_code, left_from,
                       left_to, left_parity, right_from, right_to, right_parity, source, geom)
                select name, kind, street_code, code, left_from, left_to,
                       case when left_from is null then null
                            when left_from % 2 = 1 then 'odd' else 'even' end,
                       right_from, right_to,
                       case when right_from is null then null
                            when right_from % 2 = 1 then 'odd' else 'even' end,
                       :source, (ST_Dump(geom)).geom
                  from lanes
                 where left_from is null or left_from <= left_to
                 order by code
                """
            ),
            {"source": BUILD_SOURCE},
        ).rowcount
        places = conn.execute(
            sa.text(
                "select code, name, kind, street_code, address, ST_X(geom) as x, ST_Y(geom) as y "
                "from landmarks union all "
                "select code, name, 'service_hall', street_code, address, ST_X(geom), ST_Y(geom) "
                "from service_halls order by 1"
            )
        ).all()
        rows = [
            {
                "code": p.code,
                "name": p.name,
                "kind": p.kind,
                "aliases": _aliases(p.name),
                "street_code": p.street_code,
                "address": p.address,
                "source": BUILD_SOURCE,
                "geom": f"SRID=4326;POINT({p.x!r} {p.y!r})",
            }
            for p in places
        ]
        if rows:
            conn.execute(
                sa.dialects.postgresql.insert(gazetteer_places).on_conflict_do_nothing(), rows
            )
        report.places = len(rows)
        plates: dict[tuple[Any, ...], dict[str, Any]] = {}
        for p in places:
            parsed = parse_address(p.address or "")
            if parsed.road is None or parsed.number is None:
                continue
            key = (name_key(parsed.road), parsed.number, parsed.prefix, parsed.sub)
            plates.setdefault(
                key,
                {"address": p.address, "road": key[0], "number": key[1], "prefix": key[2],
                 "sub": key[3], "street_code": p.street_code, "source": BUILD_SOURCE,
                 "geom": f"SRID=4326;POINT({p.x!r} {p.y!r})"},
            )  # fmt: skip
        if plates:
            conn.execute(
                sa.dialects.postgresql.insert(gazetteer_addresses).on_conflict_do_nothing(),
                list(plates.values()),
            )
        report.addresses = len(plates)
    return report


_ALIAS_PREFIXES = ("北京市", "北京", "西城区")


def _aliases(name: str) -> list[str]:
    """Short forms of a place's name: without 北京市 / 北京 / 西城区 in front."""
    out = []
    for prefix in _ALIAS_PREFIXES:
        if name.startswith(prefix) and len(name) - len(prefix) >= 2:
            out.append(name[len(prefix) :])
    return out


def stats(conn: sa.Connection) -> dict[str, dict[str, int]]:
    """Rows per table and source."""
    out: dict[str, dict[str, int]] = {}
    for table in TABLES:
        counts = conn.execute(
            sa.select(table.c.source, sa.func.count()).group_by(table.c.source)
        ).all()
        out[table.name] = {str(s): int(n) for s, n in counts}
    return out


__all__ = ["KINDS", "BuildReport", "GazetteerFileError", "build", "import_file", "stats"]
