"""The tiny test district: 2 streets, 4 communities, 8 square grids near Xicheng.

Its boundaries are written as GeoJSON and loaded with `etl.admin.import_admin`, as
`blockdata admin import` does: the units, their placement index and whatever else the
import does are what the tests see. Also the request rows the tests load into it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from etl.admin import import_admin
from etl.demo.extracts import REQUEST_COLUMNS as DEMO_REQUEST_COLUMNS
from layers.registry import level_layer

# The 12345 platform's export columns, as the demo generator writes them.
REQUEST_COLUMNS = list(DEMO_REQUEST_COLUMNS)

# Street A spans 116.30–116.32, street B 116.32–116.34; latitudes 39.90–39.92.
STREETS = {"110102001": (116.30, 116.32), "110102003": (116.32, 116.34)}
SOUTH, NORTH = 39.90, 39.92

Cell = tuple[str, str, str, tuple[float, float, float, float]]

# The levels in the order `blockdata admin import` needs them (parents first).
LEVELS = ("street", "community", "grid")


def grid_cells() -> list[Cell]:
    """(grid code, community code, street code, (x0, y0, x1, y1)) for the 8 grids."""
    cells = []
    for street, (x0, x1) in STREETS.items():
        xm = (x0 + x1) / 2
        for c, (cx0, cx1) in enumerate([(x0, xm), (xm, x1)], start=1):
            community = f"{street}{c:03d}"
            for g, (gy0, gy1) in enumerate([(39.90, 39.91), (39.91, 39.92)], start=1):
                cells.append((f"{community}{g:03d}", community, street, (cx0, gy0, cx1, gy1)))
    return cells


def _box(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    """A box ring in ST_MakeEnvelope's vertex order (the district's geometry has always been
    PostGIS envelopes: the same bytes, so the same placement fingerprint)."""
    ring = [[x0, y0], [x0, y1], [x1, y1], [x1, y0], [x0, y0]]
    return {"type": "MultiPolygon", "coordinates": [[ring]]}


def _features(level: str) -> list[dict[str, Any]]:
    cells = grid_cells()
    if level == "street":
        return [
            {"code": code, "name": f"测试{code[-3:]}街道", "geometry": _box(x0, SOUTH, x1, NORTH)}
            for code, (x0, x1) in STREETS.items()
        ]
    if level == "community":
        out = []
        for community, street in sorted({(c[1], c[2]) for c in cells}):
            boxes = [c[3] for c in cells if c[1] == community]
            x0, x1 = min(b[0] for b in boxes), max(b[2] for b in boxes)
            props = {"code": community, "name": f"测试{community[-3:]}社区", "street_code": street}
            out.append(props | {"geometry": _box(x0, SOUTH, x1, NORTH)})
        return out
    return [
        {"code": code, "community_code": community, "street_code": street}
        | {"geometry": _box(*bounds)}
        for code, community, street, bounds in cells
    ]


def write_district(directory: Path) -> dict[str, Path]:
    """The district's boundaries as one GeoJSON file per level (coordinates exact:
    Python's float repr round-trips), as a city's GIS office would hand them over."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for level in LEVELS:
        features = [
            {"type": "Feature", "properties": props, "geometry": geometry}
            for f in _features(level)
            for geometry in [f["geometry"]]
            for props in [{k: v for k, v in f.items() if k != "geometry"}]
        ]
        path = directory / f"{level}.geojson"
        doc = {"type": "FeatureCollection", "features": features}
        path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        paths[level] = path
    return paths


def load_district(conn: sa.Connection, files: dict[str, Path]) -> list[Cell]:
    """Import the district's files on `conn` with the production import; its cells."""
    for level in LEVELS:
        import_admin(conn, files[level], level)
    return grid_cells()


def unit_tables() -> list[sa.Table]:
    """The tables the district's levels go to, parents first (as the import sees them)."""
    return [level_layer(level).table for level in LEVELS]


Rows = list[tuple[sa.Table, list[dict[str, Any]]]]


def read_units(conn: sa.Connection) -> Rows:
    """Every row of the unit tables, as `conn` sees them, in a stable order."""
    return [
        (table, [dict(r) for r in conn.execute(sa.select(table).order_by(table.c.code)).mappings()])
        for table in unit_tables()
    ]


def write_units(conn: sa.Connection, rows: Rows) -> None:
    """Insert rows read by `read_units` (the import's output) on `conn`."""
    for table, values in rows:
        if values:
            conn.execute(sa.insert(table), values)


def request_row(source_id: str, **values: str) -> dict[str, str]:
    """A clean request row at the centre of grid 110102001001001, overridable by column."""
    row = {c: "" for c in REQUEST_COLUMNS}
    row.update(
        {
            "工单编号": source_id,
            "受理时间": "2026-11-02 09:00:00",
            "来源渠道": "12345热线",
            "诉求类别": "环境卫生",
            "诉求内容": "垃圾堆放，无人清理。",
            "地址": "北京市西城区测试胡同1号",
            "经度": "116.305",
            "纬度": "39.905",
            "坐标系": "WGS84",
            "状态": "已派单",
            "派单时间": "2026-11-02 09:30:00",
        }
    )
    row.update(values)
    return row


def write_csv(path: Path, rows: list[dict[str, str]], encoding: str = "utf-8-sig") -> Path:
    with path.open("w", encoding=encoding, newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=REQUEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path
