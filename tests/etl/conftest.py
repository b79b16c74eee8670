"""A tiny hand-made district: 2 streets, 4 communities, 8 square grids near Xicheng."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import sqlalchemy as sa

from etl.demo.extracts import REQUEST_COLUMNS as DEMO_REQUEST_COLUMNS

# The 12345 platform's export columns, as the demo generator writes them.
REQUEST_COLUMNS = list(DEMO_REQUEST_COLUMNS)

# Street A spans 116.30–116.32, street B 116.32–116.34; latitudes 39.90–39.92.
STREETS = {"110102001": (116.30, 116.32), "110102003": (116.32, 116.34)}


def grid_cells() -> list[tuple[str, str, str, tuple[float, float, float, float]]]:
    """(grid code, community code, street code, (x0, y0, x1, y1)) for the 8 grids."""
    cells = []
    for street, (x0, x1) in STREETS.items():
        xm = (x0 + x1) / 2
        for c, (cx0, cx1) in enumerate([(x0, xm), (xm, x1)], start=1):
            community = f"{street}{c:03d}"
            for g, (gy0, gy1) in enumerate([(39.90, 39.91), (39.91, 39.92)], start=1):
                cells.append((f"{community}{g:03d}", community, street, (cx0, gy0, cx1, gy1)))
    return cells


@pytest.fixture
def district(connection: sa.Connection) -> list[tuple[str, str, str, tuple[float, ...]]]:
    """Insert the tiny district into the test transaction."""
    return insert_district(connection)


def insert_district(connection: sa.Connection) -> list[tuple[str, str, str, tuple[float, ...]]]:
    """The tiny district's streets, communities and grids, on `connection`."""
    cells = grid_cells()
    for street, (x0, x1) in STREETS.items():
        connection.execute(
            sa.text(
                "insert into streets (code, name, geom) values (:code, :name, "
                "ST_Multi(ST_MakeEnvelope(:x0, 39.90, :x1, 39.92, 4326)))"
            ),
            {"code": street, "name": f"测试{street[-3:]}街道", "x0": x0, "x1": x1},
        )
    communities = {(c[1], c[2]) for c in cells}
    for community, street in sorted(communities):
        boxes = [c[3] for c in cells if c[1] == community]
        x0 = min(b[0] for b in boxes)
        x1 = max(b[2] for b in boxes)
        connection.execute(
            sa.text(
                "insert into communities (code, name, street_code, geom) values (:code, :name, "
                ":street, ST_Multi(ST_MakeEnvelope(:x0, 39.90, :x1, 39.92, 4326)))"
            ),
            {
                "code": community,
                "name": f"测试{community[-3:]}社区",
                "street": street,
                "x0": x0,
                "x1": x1,
            },
        )
    for code, community, street, (x0, y0, x1, y1) in cells:
        connection.execute(
            sa.text(
                "insert into grids (code, community_code, street_code, geom) values "
                "(:code, :community, :street, ST_Multi(ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)))"
            ),
            {
                "code": code,
                "community": community,
                "street": street,
                "x0": x0,
                "y0": y0,
                "x1": x1,
                "y1": y1,
            },
        )
    return cells


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
