"""The ETL's geocoding tests' gazetteer in the tiny district (tests/district.py): lanes with
house numbers, a landmark, and the expected places computed here by shapely, independently
of the geocoder (`etl/geocoder.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyproj
import shapely
import sqlalchemy as sa

from tests.district import grid_cells

STREET_A, STREET_B = "110102001", "110102003"


@dataclass(frozen=True)
class Lane:
    code: str
    name: str
    street_code: str
    start: tuple[float, float]
    end: tuple[float, float]
    left: tuple[int, int]  # odd numbers
    right: tuple[int, int]  # even numbers

    @property
    def line(self) -> shapely.LineString:
        return shapely.LineString([self.start, self.end])

    def point(self, number: int) -> tuple[float, float]:
        """The district's lane numbering: the i-th of a side's n numbers at (i + 0.5) / n of
        the lane's length in metres from its start, SIDE_OFFSET_M beside it on its side (odd
        numbers left of the lane's direction). Computed in UTM zone 50N by pyproj and shapely
        (the geocoder works in a local equirectangular frame: within a few centimetres)."""
        lo, hi = self.left if number % 2 else self.right
        assert lo <= number <= hi and (number - lo) % 2 == 0
        fraction = ((number - lo) // 2 + 0.5) / ((hi - lo) // 2 + 1)
        metric = shapely.transform(self.line, lambda xy: np.column_stack(_TO_UTM(*xy.T)))
        side = shapely.offset_curve(metric, SIDE_OFFSET_M if number % 2 else -SIDE_OFFSET_M)
        # offset_curve keeps the direction for either side (GEOS ≥ 3.11)
        at = shapely.line_interpolate_point(side, fraction, normalized=True)
        x, y = _FROM_UTM(at.x, at.y)
        return (float(x), float(y))


_TO_UTM = pyproj.Transformer.from_crs(4326, 32650, always_xy=True).transform
_FROM_UTM = pyproj.Transformer.from_crs(32650, 4326, always_xy=True).transform
# Where the lanes' numbers stand beside them (the geocoder's parameter, not its computation).
SIDE_OFFSET_M = 10.0

# In grid 110102001001001 (street A, community 001, southern row).
TEST_LANE = Lane(
    "1101020010000001", "测试胡同", STREET_A, (116.301, 39.905), (116.309, 39.905), (1, 19), (2, 20)
)
# Added later (the retry tests): in grid 110102003002002 (street B).
NEW_LANE = Lane(
    "1101020030000002", "新建胡同", STREET_B, (116.331, 39.915), (116.339, 39.915), (1, 39), (2, 40)
)
# A road through both streets, a piece in each (numbers continue): without a number, which
# street is it?
CROSSING_LANE = Lane(
    "1101020010000003", "跨界街", STREET_A, (116.311, 39.912), (116.319, 39.912), (1, 9), (2, 10)
)
CROSSING_PIECE = Lane(
    "1101020030000004", "跨界街", STREET_B, (116.321, 39.912), (116.329, 39.912), (11, 19), (12, 20)
)
LANDMARK = ("L1", "测试小学", "school", STREET_B, (116.336, 39.916))


def insert_lane(conn: sa.Connection, lane: Lane) -> None:
    conn.execute(
        sa.text(
            "insert into lanes (code, name, kind, street_code, left_from, left_to, right_from,"
            " right_to, geom) values (:code, :name, 'hutong', :street, :lf, :lt, :rf, :rt,"
            " ST_SetSRID(ST_MakeLine(ST_MakePoint(:x0, :y0), ST_MakePoint(:x1, :y1)), 4326))"
        ),
        {
            "code": lane.code,
            "name": lane.name,
            "street": lane.street_code,
            "lf": lane.left[0],
            "lt": lane.left[1],
            "rf": lane.right[0],
            "rt": lane.right[1],
            "x0": lane.start[0],
            "y0": lane.start[1],
            "x1": lane.end[0],
            "y1": lane.end[1],
        },
    )


def insert_landmark(conn: sa.Connection) -> None:
    code, name, kind, street, (x, y) = LANDMARK
    conn.execute(
        sa.text(
            "insert into landmarks (code, name, kind, street_code, geom) values"
            " (:code, :name, :kind, :street, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"
        ),
        {"code": code, "name": name, "kind": kind, "street": street, "x": x, "y": y},
    )


def build_gazetteer(conn: sa.Connection) -> None:
    """`blockdata gazetteer build`: the gazetteer derived from the loaded layers."""
    from etl.gazetteer import build

    build(conn)


def gazetteer(conn: sa.Connection, *lanes: Lane) -> None:
    """The test lanes (default: the test lane and the crossing road), the landmark, built."""
    for lane in lanes or (TEST_LANE, CROSSING_LANE, CROSSING_PIECE):
        insert_lane(conn, lane)
    insert_landmark(conn)
    build_gazetteer(conn)


def codes_at(x: float, y: float) -> tuple[str, str, str]:
    """(street, community, grid) of the grid containing the point, by shapely."""
    found = [
        (street, community, grid)
        for grid, community, street, box in grid_cells()
        if shapely.box(*box).contains(shapely.Point(x, y))
    ]
    assert len(found) == 1, (x, y, found)
    return found[0]


def community_box(code: str) -> shapely.Polygon:
    boxes = [shapely.box(*box) for _, community, _, box in grid_cells() if community == code]
    return shapely.union_all(boxes).envelope


def stored(conn: sa.Connection, table: str = "service_requests") -> dict[str, dict[str, Any]]:
    rows = conn.execute(
        sa.text(
            "select source_id, street_code, community_code, grid_code, geocode_quality,"
            f" near_boundary, ST_X(geom) as x, ST_Y(geom) as y from {table}"
        )
    ).mappings()
    return {r["source_id"]: dict(r) for r in rows}
