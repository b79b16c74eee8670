"""Demo event extracts, written exactly as the source systems export them, plus the truth.

Service requests (诉求) come out of four files: the 12345 hotline's CSV (UTF-8 with BOM,
GCJ-02), the grid system's older CSV (GBK, WGS84, dates 'YYYY/M/D H:MM'), the apps' XLSX
(GCJ-02 or BD-09, real date cells) and a later extract taken after the others, which
repeats the work orders whose status moved on and adds the new ones received since. Then the
enforcement cases (CSV), the relocation ledger (XLSX) and the renovation projects
(GeoJSON), a truth file naming every written row's true WGS84 point, grid and defects, and a
manifest.

The main extracts are taken at midnight starting `end` and hold the year before; the later
extract is taken at the next midnight, or at `now` when that comes first (a demo generated
for today holds nothing after the moment it was made). Every true point lies at least
MARGIN_M metres inside its grid, so rounding and coordinate conversion can never move it into
another. Messiness comes in exact shares (`Messiness`): each file gets round(share x rows)
rows of each defect (the later extract taken before midnight: about that share).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import chinese_calendar
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import shapely
import xlsxwriter
from tqdm import tqdm

from etl import coords
from etl.assign import LocalFrame
from etl.demo import vocab
from etl.rules import load_routing, load_time_limits

if TYPE_CHECKING:
    from etl.demo.geography import Geography

Arr = npt.NDArray[Any]

DEFAULT_END = dt.date(2026, 11, 25)
DEMO_ZONE = "Asia/Shanghai"  # the demo district's time zone: what its wall-clock times mean
DEMO_UTC_OFFSET_H = 8  # its offset from UTC, all year (no daylight saving since 1991)
OVERDUE_SHARE = 0.05  # requests resolved past their due time (超期办结)
MARGIN_M = 2.0  # every true point keeps this distance from its grid's edges
HOUSE_DEPTH_M = (4.0, 20.0)  # how far back from its lane a house stands (its door's plate)
HOUSE_JITTER_M = 1.0  # a house-numbered request stands this close to its house
WINDOW_DAYS = 365

REQUEST_COLUMNS = (
    "工单编号",
    "受理时间",
    "来源渠道",
    "诉求类别",
    "诉求内容",
    "地址",
    "经度",
    "纬度",
    "坐标系",
    "状态",
    "承办单位",
    "派单时间",
    "签收时间",
    "响应时间",
    "联系时间",
    "办结时间",
    "回访时间",
    "归档时间",
    "是否有效回访",
    "是否联系",
    "是否解决",
    "满意度",
)
CASE_COLUMNS = (
    "案件编号",
    "立案时间",
    "案件类型",
    "执法部门",
    "是否联合执法",
    "案情描述",
    "地址",
    "经度",
    "纬度",
    "坐标系",
    "状态",
    "结案时间",
    "办理期限",
)
TARGET_COLUMNS = (
    "项目编号",
    "名称",
    "类型",
    "地址",
    "经度",
    "纬度",
    "坐标系",
    "建筑面积(平方米)",
    "商户数",
    "状态",
    "进度(%)",
    "计划开始",
    "计划完成",
    "实际开始",
    "实际完成",
)
TRUTH_COLUMNS = (
    "file",
    "row",
    "source_id",
    "kind",
    "true_lng",
    "true_lat",
    "grid_code",
    "community_code",
    "street_code",
    "defects",
)
DEFECTS = (
    "address_only",
    "swapped",
    "outside",
    "zero",
    "duplicate",
    "later_version",
    "bad_date",
    "missing_required",
    "whitespace",
    "fullwidth",
)

HOTLINE = "requests_hotline.csv"
GRID = "requests_grid_gbk.csv"
APP = "requests_app.xlsx"
UPDATE = "requests_update.csv"
CASES = "enforcement_cases.csv"
TARGETS = "relocation_targets.xlsx"
PROJECTS = "renovation_projects.geojson"
TRUTH = "truth.csv"
MANIFEST = "manifest.json"
REQUEST_FILES = (HOTLINE, GRID, APP, UPDATE)

# File of each channel in the main extract, and each file's date style.
CHANNEL_FILE = {
    "12345热线": HOTLINE,
    "12345网络": HOTLINE,
    "网格员上报": GRID,
    "街道自采": GRID,
    "北京通APP": APP,
    "微信小程序": APP,
}
DATE_STYLE = {HOTLINE: "iso", GRID: "slash", APP: "excel", UPDATE: "iso"}
ENCODING = {HOTLINE: "utf-8-sig", GRID: "gbk", UPDATE: "utf-8", CASES: "utf-8"}
CRS_DEFAULT = {HOTLINE: "GCJ-02", UPDATE: "GCJ-02"}  # what an empty 坐标系 means
CHANNEL_CRS = {
    "12345热线": coords.GCJ02,
    "12345网络": coords.GCJ02,
    "网格员上报": coords.WGS84,
    "街道自采": coords.WGS84,
    "北京通APP": coords.GCJ02,
    "微信小程序": coords.BD09,
}
PATROL = frozenset(("网格员上报", "街道自采"))  # no caller, hence no callback (回访)
STATUSES = ("待派单", "已派单", "处理中", "已办结")

# Hourly profiles (0-23 h): citizens call 9-11 h and 14-17 h; patrols work office hours.
CITIZEN_HOURS = np.array(
    (
        (0.25, 0.15, 0.1, 0.08, 0.08, 0.15, 0.45, 1.3, 2.6, 4.0, 4.3, 3.6),
        (2.3, 2.5, 3.8, 4.1, 3.9, 3.2, 2.2, 1.8, 1.6, 1.3, 0.9, 0.5),
    )
).ravel()
PATROL_HOURS = np.array(
    (
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.3, 2.5, 4.5, 4.5, 3.5),
        (1.0, 1.5, 4.0, 4.5, 4.0, 2.0, 0.5, 0.2, 0.0, 0.0, 0.0, 0.0),
    )
).ravel()
CITIZEN_REST = 0.6  # weekends and holidays, relative to a working day
PATROL_REST = 0.25

# Boxes in neighbouring districts (WGS84) where a wrongly geocoded point may land.
OUTSIDE_BOXES = (
    (116.405, 39.880, 116.430, 39.950),  # 东城
    (116.280, 39.925, 116.305, 39.975),  # 海淀
    (116.340, 39.975, 116.380, 39.995),  # 海淀 / 朝阳, north of 德胜
    (116.330, 39.840, 116.385, 39.858),  # 丰台
)

_FULLWIDTH = str.maketrans({c: chr(ord(c) + 0xFEE0) for c in "0123456789.-"})
_PADS = (" ", "  ", "\t", "\u3000")
_WS_FIELDS = (
    "工单编号",
    "来源渠道",
    "诉求类别",
    "诉求内容",
    "地址",
    "经度",
    "纬度",
    "坐标系",
    "状态",
)
_TIME_FIELDS = ("受理时间", "派单时间", "响应时间", "办结时间")
_REQUIRED = ("工单编号", "受理时间", "诉求类别")

# Where requests come from away from the hotspots: a density over the grids (documented in
# `_Places.grid_weight`) and the busy roads. Residential compounds and workplaces raise it
# (amplitude, reach in metres: a Gaussian around each); parks and water lower it.
LIVE_WORK: dict[str, tuple[float, float]] = {
    "compound": (2.5, 250.0),
    "office": (1.0, 200.0),
    "market": (0.8, 150.0),
    "station": (0.8, 200.0),
    "school": (0.5, 150.0),
    "hospital": (0.5, 150.0),
}
PARK_RADIUS_M: dict[str, float] = {  # the large parks and lakes; other parks are small
    "北海公园": 450.0,
    "什刹海": 400.0,
    "北京动物园": 450.0,
    "陶然亭公园": 400.0,
    "先农坛": 250.0,
    "大观园": 180.0,
    "月坛公园": 150.0,
    "人定湖公园": 150.0,
    "万寿公园": 120.0,
    "德胜公园": 100.0,
    "宣武艺园": 100.0,
}
SMALL_PARK_M = 50.0
PARK_DAMP = 0.9  # the share of the density a park or lake takes away at its heart
BUSY_ROADS = frozenset(("大街", "路"))
ROAD_SHARE = 0.3  # of the background: along busy roads (shops, traffic, parking)

_HOT_KINDS = (*vocab.HOTSPOT_PULL, "hutong", "background")
_HUTONG = len(vocab.HOTSPOT_PULL)
_BACKGROUND = _HUTONG + 1


@dataclass(frozen=True)
class Messiness:
    """Shares of the request rows that carry each defect (per file, exact counts)."""

    address_only: float = 0.06
    swapped: float = 0.01
    outside: float = 0.005
    zero: float = 0.003
    duplicate: float = 0.01
    later_version: float = 0.005
    bad_date: float = 0.002
    missing_required: float = 0.002
    whitespace: float = 0.02
    fullwidth: float = 0.01

    @classmethod
    def clean(cls) -> Messiness:
        """No defects at all."""
        return cls(**{f: 0.0 for f in cls.__dataclass_fields__})

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not 0.0 <= value < 0.5:
                raise ValueError(f"share {name}={value!r} must lie in [0, 0.5)")
        coord = self.address_only + self.swapped + self.outside + self.zero
        line = self.bad_date + self.missing_required + self.whitespace + self.fullwidth
        if coord > 0.5 or line > 0.5 or self.duplicate + self.later_version > 0.5:
            raise ValueError(f"defect shares too large to be exclusive: {self}")


# --- geometry --------------------------------------------------------------------------


class _Places:
    """The geography prepared for sampling: grid interiors, lanes and landmarks in metres."""

    def __init__(self, geo: Geography) -> None:
        grids = geo.grids
        geoms = np.asarray(grids.geometry.to_numpy(), dtype=object)
        if len(geoms) == 0:
            raise ValueError("the geography has no grids")
        minx, miny, maxx, maxy = shapely.total_bounds(geoms)
        self.frame = LocalFrame((minx + maxx) / 2, (miny + maxy) / 2)
        self.grid_code = grids["code"].astype(str).to_numpy(dtype=object)
        self.grid_community = grids["community_code"].astype(str).to_numpy(dtype=object)
        self.grid_street = grids["street_code"].astype(str).to_numpy(dtype=object)
        metric = self.frame.geometries(geoms)
        self.inner = shapely.buffer(metric, -MARGIN_M, quad_segs=8)
        self.tree = shapely.STRtree(self.inner)
        self.bounds = shapely.total_bounds(metric)
        self.grid_bounds = shapely.bounds(metric)
        self.grid_xy = shapely.get_coordinates(shapely.centroid(metric))
        self.grid_area = shapely.area(metric)

        self.street_codes = geo.streets["code"].astype(str).tolist()
        self.street_names = dict(
            zip(self.street_codes, geo.streets["name"].astype(str), strict=True)
        )
        names = geo.district["name"].astype(str).tolist() if "name" in geo.district else []
        self.district_name = names[0] if names else "西城区"
        self.district = shapely.union_all(np.asarray(geo.district.geometry.to_numpy()))

        lanes = geo.lanes
        self.lane_geom = np.asarray(lanes.geometry.to_numpy(), dtype=object)
        self.lane_m = self.frame.geometries(self.lane_geom)
        self.lane_tree = shapely.STRtree(self.lane_m)
        # nearest-lane queries run on single segments: long lanes have loose envelopes
        xy, owner = shapely.get_coordinates(self.lane_m, return_index=True)
        same = owner[:-1] == owner[1:]
        segments = shapely.linestrings(np.stack([xy[:-1][same], xy[1:][same]], axis=1))
        self.segment_tree = shapely.STRtree(segments)
        self.segment_lane = owner[:-1][same]
        self.lane_code = lanes["code"].astype(str).to_numpy(dtype=object)
        self.lane_name = lanes["name"].astype(str).to_numpy(dtype=object)
        self.lane_kind = lanes["kind"].astype(str).to_numpy(dtype=object)
        self.lane_street = lanes["street_code"].astype(str).to_numpy(dtype=object)
        self.lane_status = (
            lanes["rectification_status"].astype(str).to_numpy(dtype=object)
            if "rectification_status" in lanes
            else np.full(len(lanes), "未整治", dtype=object)
        )
        self.ranges = {
            c: lanes[c].to_numpy(dtype=np.int64)
            for c in ("left_from", "left_to", "right_from", "right_to")
        }

        marks = geo.landmarks
        mxy = shapely.get_coordinates(np.asarray(marks.geometry.to_numpy(), dtype=object))
        self.mark_lnglat = mxy
        self.mark_x, self.mark_y = self.frame.to_metres(mxy[:, 0], mxy[:, 1])
        self.mark_name = marks["name"].astype(str).to_numpy(dtype=object)
        self.mark_kind = marks["kind"].astype(str).to_numpy(dtype=object)
        self.mark_street = marks["street_code"].astype(str).to_numpy(dtype=object)
        self.mark_address = marks["address"].astype(str).to_numpy(dtype=object)
        self.roads = np.flatnonzero(np.isin(self.lane_kind, list(BUSY_ROADS)))
        self.grid_weight = self._grid_weight()

    def _grid_weight(self) -> Arr:
        """How many background requests each grid draws: its area x the local density.

        The density is 1, plus LIVE_WORK's Gaussian bump around each compound, office,
        market, station, school and hospital (people live and work there), times
        `open_space`: 1 - PARK_DAMP x exp(-(d / r)^4) for each park (r from PARK_RADIUS_M,
        small parks SMALL_PARK_M): nearly empty inside a large park or lake, unchanged
        outside it. Evaluated at the grid's centroid; lanes likewise (`lane_weight`).
        """
        gx, gy = self.grid_xy[:, 0:1], self.grid_xy[:, 1:2]
        d2 = (gx - self.mark_x[None, :]) ** 2 + (gy - self.mark_y[None, :]) ** 2
        amp = np.array([LIVE_WORK.get(k, (0.0, 1.0))[0] for k in self.mark_kind])
        reach = np.array([LIVE_WORK.get(k, (0.0, 1.0))[1] for k in self.mark_kind])
        density = 1.0 + (amp[None, :] * np.exp(-d2 / (2.0 * reach[None, :] ** 2))).sum(axis=1)
        return self.grid_area * density * self.open_space(self.grid_xy[:, 0], self.grid_xy[:, 1])

    def open_space(self, x: Arr, y: Arr) -> Arr:
        """The share of the density parks and lakes leave at metric points (1 = none)."""
        park = np.flatnonzero(self.mark_kind == "park")
        out = np.ones(len(x))
        if park.size:
            r = np.array([PARK_RADIUS_M.get(n, SMALL_PARK_M) for n in self.mark_name[park]])
            d = np.hypot(x[:, None] - self.mark_x[park][None, :], y[:, None] - self.mark_y[park])
            out = np.prod(1.0 - PARK_DAMP * np.exp(-((d / r[None, :]) ** 4)), axis=1)
        return out

    def lane_weight(self, lanes: Arr) -> Arr:
        """How many requests lanes draw: their length, less where they cross a park or lake."""
        mid = shapely.get_coordinates(
            shapely.line_interpolate_point(self.lane_m[lanes], 0.5, normalized=True)
        )
        return shapely.length(self.lane_m[lanes]) * self.open_space(mid[:, 0], mid[:, 1])

    def locate(self, x: Arr, y: Arr) -> Arr:
        """The grid whose interior (MARGIN_M inside its edges) holds each point, else -1."""
        out = np.full(len(x), -1, dtype=np.int64)
        if len(x):
            point, grid = self.tree.query(shapely.points(x, y), predicate="within")
            out[point] = grid
        return out

    def settle(self, x: Arr, y: Arr) -> tuple[Arr, Arr, Arr]:
        """Move points that are near an edge (or outside) onto the nearest grid interior."""
        grid = self.locate(x, y)
        bad = np.flatnonzero(grid < 0)
        if bad.size:
            pts = shapely.points(x[bad], y[bad])
            near = self.tree.query_nearest(pts, all_matches=False)
            target = np.empty(bad.size, dtype=np.int64)
            target[near[0]] = near[1]
            # the point on the interior nearest to p, pulled a little further in
            inside = shapely.buffer(self.inner[target], -0.5, quad_segs=8)
            inside = np.where(shapely.is_empty(inside), self.inner[target], inside)
            snapped = shapely.get_coordinates(
                shapely.get_point(shapely.shortest_line(inside, pts), 0)
            )
            x, y = x.copy(), y.copy()
            x[bad], y[bad] = snapped[:, 0], snapped[:, 1]
            grid = self.locate(x, y)
            if (grid < 0).any():
                raise RuntimeError("could not settle points inside their grids")
        return x, y, grid

    def lnglat(self, x: Arr, y: Arr) -> tuple[Arr, Arr]:
        """Degrees of metric points, rounded to the 8 decimals the truth file keeps."""
        lng, lat = self.frame.to_degrees(x, y)
        return np.round(lng, 8), np.round(lat, 8)


@dataclass
class _Located:
    """Sampled true points: metres, grid, hotspot kind, and the landmark or lane they follow."""

    x: Arr
    y: Arr
    grid: Arr
    hot: Arr
    landmark: Arr
    lane: Arr


def _sample_locations(
    places: _Places, rng: np.random.Generator, n: int, shares: tuple[float, float, float]
) -> _Located:
    """Points around landmarks, along hutongs, and in the background; all in a grid.

    The background is clustered where people live and work: ROAD_SHARE of it along the busy
    roads (大街, 路), the rest in grids drawn by `_Places.grid_weight` (uniform inside one).
    Deterministic for a given generator state.
    """
    comp = rng.choice(3, size=n, p=np.asarray(shares) / sum(shares))
    pull = np.array([vocab.HOTSPOT_PULL.get(k, (0.0, 0.0))[0] for k in places.mark_kind])
    spread = np.array([vocab.HOTSPOT_PULL.get(k, (0.0, 80.0))[1] for k in places.mark_kind])
    hutongs = np.flatnonzero(places.lane_kind == "胡同")
    if pull.sum() <= 0:
        comp[comp == 0] = 2
    if hutongs.size == 0:
        comp[comp == 1] = 2
    landmark = np.full(n, -1, dtype=np.int64)
    lane = np.full(n, -1, dtype=np.int64)
    hot = np.full(n, _BACKGROUND, dtype=np.int64)
    pick = comp == 0
    landmark[pick] = rng.choice(len(pull), size=int(pick.sum()), p=pull / max(pull.sum(), 1e-9))
    kind_index = {k: i for i, k in enumerate(_HOT_KINDS)}
    hot[pick] = [kind_index.get(k, _BACKGROUND) for k in places.mark_kind[landmark[pick]]]
    pick = comp == 1
    if pick.any():
        w = places.lane_weight(hutongs)
        lane[pick] = rng.choice(hutongs, size=int(pick.sum()), p=w / w.sum())
        hot[pick] = _HUTONG

    # The background: along a busy road, or in a grid drawn by its density.
    cell = np.full(n, -1, dtype=np.int64)
    pick = np.flatnonzero(comp == 2)
    road = pick[rng.random(pick.size) < ROAD_SHARE] if places.roads.size else pick[:0]
    if road.size:
        w = places.lane_weight(places.roads)
        lane[road] = rng.choice(places.roads, size=road.size, p=w / w.sum())
    weight = places.grid_weight / places.grid_weight.sum()
    rest = np.setdiff1d(pick, road)
    cell[rest] = rng.choice(len(weight), size=rest.size, p=weight)

    x = np.zeros(n)
    y = np.zeros(n)
    grid = np.full(n, -1, dtype=np.int64)
    todo = np.arange(n)
    for attempt in range(60):
        cx, cy = _candidates(places, rng, landmark[todo], lane[todo], spread, cell[todo])
        g = places.locate(cx, cy)
        ok = g >= 0
        x[todo[ok]], y[todo[ok]], grid[todo[ok]] = cx[ok], cy[ok], g[ok]
        todo = todo[~ok]
        if todo.size == 0:
            break
        if attempt == 15:  # a hotspot at the district's edge: give up on it
            landmark[todo] = -1
            lane[todo] = -1
            hot[todo] = _BACKGROUND
            cell[todo] = rng.choice(len(weight), size=todo.size, p=weight)
    else:
        raise RuntimeError("could not place points inside the grids")
    return _Located(x, y, grid, hot, landmark, lane)


def _candidates(
    places: _Places,
    rng: np.random.Generator,
    landmark: Arr,
    lane: Arr,
    spread: Arr,
    cell: Arr,
) -> tuple[Arr, Arr]:
    """One candidate point per row: near its landmark, beside its lane, in its grid's box."""
    box = places.grid_bounds[np.maximum(cell, 0)]
    box = np.where((cell >= 0)[:, None], box, places.bounds[None, :])
    x = rng.uniform(box[:, 0], box[:, 2])
    y = rng.uniform(box[:, 1], box[:, 3])
    near = np.flatnonzero(landmark >= 0)
    if near.size:
        sigma = spread[landmark[near]]
        x[near] = places.mark_x[landmark[near]] + rng.normal(0.0, 1.0, near.size) * sigma
        y[near] = places.mark_y[landmark[near]] + rng.normal(0.0, 1.0, near.size) * sigma
    along = np.flatnonzero(lane >= 0)
    if along.size:
        lines = places.lane_m[lane[along]]
        length = shapely.length(lines)
        s = rng.random(along.size) * length
        p = shapely.get_coordinates(shapely.line_interpolate_point(lines, s))
        a = shapely.get_coordinates(shapely.line_interpolate_point(lines, np.maximum(s - 1, 0)))
        b = shapely.get_coordinates(
            shapely.line_interpolate_point(lines, np.minimum(s + 1, length))
        )
        d = b - a
        d /= np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)[:, None]
        off = rng.normal(0.0, 10.0, along.size)
        x[along] = p[:, 0] - d[:, 1] * off
        y[along] = p[:, 1] + d[:, 0] * off
    return x, y


@dataclass
class _Addressed:
    """Where a point is said to be: the address, the place named in texts, the lane used."""

    address: Arr
    place: Arr
    lane: Arr
    numbered: Arr  # the address is a house number (not a landmark)
    left: Arr  # the point lies left of its lane's direction (the left range's side)
    number: Arr  # the house number on that side (meaningful where numbered)


def _addresses(
    places: _Places, rng: np.random.Generator, loc: _Located, landmark_share: float = 0.5
) -> _Addressed:
    """The house number on the nearest lane (odd numbers on the left), or the landmark near by."""
    n = len(loc.x)
    lane = loc.lane.copy()
    need = np.flatnonzero(lane < 0)
    if need.size:
        pts = shapely.points(loc.x[need], loc.y[need])
        pairs = places.segment_tree.query_nearest(pts, all_matches=False)
        nearest = np.empty(need.size, dtype=np.int64)
        nearest[pairs[0]] = places.segment_lane[pairs[1]]
        lane[need] = nearest
    lines_m = places.lane_m[lane]
    pts_m = shapely.points(loc.x, loc.y)
    s = shapely.line_locate_point(lines_m, pts_m)
    length = shapely.length(lines_m)
    a = shapely.get_coordinates(shapely.line_interpolate_point(lines_m, np.maximum(s - 1, 0)))
    b = shapely.get_coordinates(shapely.line_interpolate_point(lines_m, np.minimum(s + 1, length)))
    cross = (b[:, 0] - a[:, 0]) * (loc.y - a[:, 1]) - (b[:, 1] - a[:, 1]) * (loc.x - a[:, 0])
    odd = cross >= 0
    t = s / np.maximum(length, 1e-9)
    r = places.ranges
    lo = np.where(odd, r["left_from"][lane], r["right_from"][lane])
    hi = np.where(odd, r["left_to"][lane], r["right_to"][lane])
    count = np.maximum((hi - lo) // 2 + 1, 1)
    number = lo + 2 * np.clip(np.floor(t * count).astype(np.int64), 0, count - 1)

    lane_names = places.lane_name[lane].tolist()
    numbers = number.tolist()
    streets = [places.street_names.get(c, "") for c in places.grid_street[loc.grid]]
    district = places.district_name
    variant = rng.random(n).tolist()
    place = [f"{ln}{k}号" for ln, k in zip(lane_names, numbers, strict=True)]
    address = [
        f"北京市{district}{p}"
        if u < 0.5
        else f"{district}{p}"
        if u < 0.8
        else f"{st}{p}"
        if u < 0.9 and st
        else f"{district}{p}院"
        for p, u, st in zip(place, variant, streets, strict=True)
    ]
    numbered = np.ones(n, dtype=bool)
    near = np.flatnonzero(loc.landmark >= 0)
    if near.size:
        k = loc.landmark[near]
        dist = np.hypot(loc.x[near] - places.mark_x[k], loc.y[near] - places.mark_y[k])
        u = rng.random(near.size)
        use = (dist < 150.0) & (u < landmark_share)
        numbered[near[use]] = False
        for i, mark, v in zip(near[use].tolist(), k[use].tolist(), u[use].tolist(), strict=True):
            name = str(places.mark_name[mark])
            place[i] = name
            form = v / landmark_share
            full = name if name.startswith("北京") else f"{district}{name}"
            address[i] = (
                f"{full}附近"
                if form < 0.5
                else full
                if name.startswith("北京")
                else f"北京市{full}"
                if form < 0.75
                else f"{name}门口"
            )
    return _Addressed(
        np.array(address, dtype=object),
        np.array(place, dtype=object),
        lane,
        numbered,
        odd,
        number,
    )


def _mix(key: Arr) -> Arr:
    """splitmix64 of each key, as floats in [0, 1): the same house draws the same, wherever
    it is placed (the requests, the cases, the demo's 门牌 file)."""
    z = key.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def house_points(places: _Places, lane: Arr, left: Arr, number: Arr) -> tuple[Arr, Arr]:
    """Where each house stands (metres): the i-th of its side's n numbers about (i + 0.5) / n
    along its lane (within ±0.3 of a plate's share: houses are not evenly spaced) and
    HOUSE_DEPTH_M back from the lane on its side. Deterministic per lane, side and number."""
    r = places.ranges
    lo = np.where(left, r["left_from"][lane], r["right_from"][lane])
    hi = np.where(left, r["left_to"][lane], r["right_to"][lane])
    count = np.maximum((hi - lo) // 2 + 1, 1)
    i = np.clip((number - lo) // 2, 0, count - 1)
    key = (lane.astype(np.uint64) << np.uint64(24)) ^ (number.astype(np.uint64) << np.uint64(1))
    key = key ^ left.astype(np.uint64)
    along = (i + 0.5 + 0.6 * (_mix(2 * key) - 0.5)) / count
    near, far = HOUSE_DEPTH_M
    depth = near + (far - near) * _mix(2 * key + np.uint64(1))
    lines = places.lane_m[lane]
    length = shapely.length(lines)
    s = along * length
    a = shapely.get_coordinates(shapely.line_interpolate_point(lines, np.maximum(s - 1, 0)))
    b = shapely.get_coordinates(shapely.line_interpolate_point(lines, np.minimum(s + 1, length)))
    at = shapely.get_coordinates(shapely.line_interpolate_point(lines, s))
    d = b - a
    d = d / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)[:, None]
    side = np.where(left, 1.0, -1.0) * depth
    return at[:, 0] - d[:, 1] * side, at[:, 1] + d[:, 0] * side


def _at_houses(
    places: _Places, rng: np.random.Generator, loc: _Located, landmark_share: float = 0.5
) -> tuple[_Located, _Addressed]:
    """Requests said by a house number stand at that house (`house_points`).

    A caller gives the plate of the house the problem is at: a sampled point is said by the
    plate of the nearest lane's side and place along it, and then stands at that plate's
    house (within HOUSE_JITTER_M of it, settled inside a grid). The addresses are said again
    of the moved points with the same draws (the generator's state is copied first). Points
    said by a landmark stay where they were sampled (the landmark is the place).
    """
    again = np.random.Generator(type(rng.bit_generator)())
    again.bit_generator.state = rng.bit_generator.state
    said = _addresses(places, rng, loc, landmark_share)
    move = np.flatnonzero(said.numbered)
    if move.size == 0:
        return loc, said
    hx, hy = house_points(places, said.lane[move], said.left[move], said.number[move])
    angle = rng.uniform(0.0, 2 * math.pi, move.size)
    radius = HOUSE_JITTER_M * np.sqrt(rng.random(move.size))
    x, y = loc.x.copy(), loc.y.copy()
    x[move] = hx + radius * np.cos(angle)
    y[move] = hy + radius * np.sin(angle)
    x, y, grid = places.settle(x, y)
    moved = _Located(x, y, grid, loc.hot, loc.landmark, said.lane)
    return moved, _addresses(places, again, moved, landmark_share)


# --- time ----------------------------------------------------------------------------


def _rest_days(days: Arr) -> Arr:
    """Weekends and public holidays (with make-up workdays) where the calendar knows them."""
    out = np.empty(len(days), dtype=bool)
    for i, day in enumerate(days.astype("datetime64[D]").astype(object).tolist()):
        try:
            out[i] = bool(chinese_calendar.is_holiday(day))
        except NotImplementedError:
            out[i] = day.weekday() >= 5
    return out


def _day_weights(days: Arr, start: np.datetime64, rest: float) -> Arr:
    """Relative volume of each day: rest days, a summer high and a slow upward trend."""
    off = (days - start).astype(np.int64)
    doy = (days - days.astype("datetime64[Y]")).astype(np.int64)
    season = 1.0 + 0.12 * np.cos(2 * math.pi * (doy - 196) / 365.25)
    trend = 0.92 + 0.16 * off / WINDOW_DAYS
    return np.where(_rest_days(days), rest, 1.0) * season * trend


def _sample_times(
    rng: np.random.Generator, n: int, first: np.datetime64, days: int, hours: Arr, rest: float
) -> Arr:
    """Received times over `days` days from `first`, by day weight and hourly profile."""
    day = first + np.arange(days)
    start = first if days > 1 else first - WINDOW_DAYS
    w = _day_weights(day, start, rest)
    d = rng.choice(days, size=n, p=w / w.sum())
    h = rng.choice(24, size=n, p=hours / hours.sum())
    sec = h * 3600 + rng.integers(0, 3600, size=n)
    return day[d].astype("datetime64[s]") + sec.astype("timedelta64[s]")


def _format_times(values: Arr, style: str) -> list[Any]:
    """Date-times as a file writes them: 'iso', 'slash' (YYYY/M/D H:MM) or 'excel' (datetime)."""
    values = values.astype("datetime64[s]")
    if style == "excel":
        return values.astype(object).tolist()
    secs = values.astype(np.int64)
    days, inverse = np.unique(secs // 86400, return_inverse=True)
    dates = days.astype("datetime64[D]").astype(object).tolist()
    if style == "iso":
        prefix = [d.isoformat() for d in dates]
    else:
        prefix = [f"{d.year}/{d.month}/{d.day}" for d in dates]
    clock = _clock(style)
    tod = (secs % 86400).tolist()
    return [prefix[i] + clock[t] for i, t in zip(inverse.tolist(), tod, strict=True)]


@cache
def _clock(style: str) -> list[str]:
    """The time-of-day part for every second of a day, as the style writes it."""
    if style == "iso":
        return [f" {s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400)]
    return [f" {s // 3600}:{s // 60 % 60:02d}" for s in range(86400)]


def _midnight(day: dt.date) -> np.datetime64:
    return np.datetime64(dt.date(day.year, day.month, day.day), "s")


def _update_time(end: dt.date, now: dt.datetime | None, zone: str) -> np.datetime64:
    """When the later extract is taken: the midnight after day `end`, or `now` if earlier.

    `now` naive is a wall-clock time of the district; aware, it is converted to `zone`.
    Times are whole seconds, as the files write them (a fraction of a second is dropped).
    """
    later = _midnight(end) + np.timedelta64(1, "D")
    if now is None:
        return later
    if now.tzinfo is not None:
        now = now.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
    local = np.datetime64(now.replace(microsecond=0), "s")
    if local < _midnight(end):
        raise ValueError(
            f"now {now.isoformat(sep=' ')} is before the extracts' midnight {end.isoformat()}: "
            "the main extracts would hold times in the future"
        )
    return min(later, local)


# --- service requests ------------------------------------------------------------------


@dataclass
class _Requests:
    """Every request sampled, one entry each, in received order: the main extract's, then
    those of day `end` (the ones received after the later extract was taken are never written).
    """

    n_main: int
    sid: Arr
    received: Arr
    events: Arr  # (n, 3): dispatched, responded, resolved
    channel: Arr
    category: Arr
    lng: Arr
    lat: Arr
    grid: Arr
    crs_label: Arr
    out_lng: Arr  # as written, in the channel's system; NaN when only the address is given
    out_lat: Arr
    coord_defect: Arr  # "" or one of address_only, swapped, outside, zero
    address: Arr
    content: Arr
    valid: Arr
    contacted: Arr
    solved: Arr
    rating: Arr  # 0 满意, 1 基本满意, 2 不满意
    state_main: Arr
    state_update: Arr
    updated: Arr  # main requests repeated in the later extract
    new: Arr  # requests of day `end` received by the time the later extract is taken
    life: _Lifecycle | None = None  # the steps besides the three events (etl/replay.py)


@dataclass
class _Lifecycle:
    """What the extracts show of each request's case (全响应), besides the three events:
    the unit dispatched to (承办单位: the street's department the category is routed to),
    签收 between 派单 and the response (联系 = 响应), and for a resolved citizen's request the
    callback (回访) and, unless the caller was unsatisfied, the filing (归档) — both shown
    only once they happened by the extract's time (`taken` or `update`)."""

    unit: Arr  # 承办单位 per request (a department's name)
    accept_share: Arr  # 签收 = 派单 + share x (响应 - 派单)
    callback_s: Arr  # 回访 after 办结, seconds
    close_s: Arr  # 归档 after 回访, seconds
    squeeze: Arr  # a step due after the extract is taken falls this share of the way to it
    taken: np.datetime64  # the main extracts' time
    update: np.datetime64  # the later extract's time


def _state(events: Arr, at: np.datetime64) -> Arr:
    return (events <= at).sum(axis=1).astype(np.int64)


def _categories(rng: np.random.Generator, hot: Arr, month: Arr, channel: Arr, patrol: Arr) -> Arr:
    """Category per request from hotspot kind x month x channel group."""
    cats = list(vocab.CATEGORIES)
    base = np.array(list(vocab.CATEGORIES.values()))
    table = np.empty((len(_HOT_KINDS), 12, 2, len(cats)))
    for h, kind in enumerate(_HOT_KINDS):
        boost = vocab.HOTSPOT_BOOST.get(kind, {})
        for m in range(12):
            for g in range(2):
                w = base.copy()
                for c, cat in enumerate(cats):
                    w[c] *= boost.get(cat, 1.0) * vocab.SEASON.get(cat, (1.0,) * 12)[m]
                    if g:
                        w[c] *= vocab.PATROL_BIAS.get(cat, 1.0)
                table[h, m, g] = np.cumsum(w) / w.sum()
    key = (hot * 12 + month) * 2 + patrol[channel].astype(np.int64)
    out = np.empty(len(key), dtype=np.int64)
    u = rng.random(len(key))
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    for rows in np.split(order, bounds):
        if rows.size:
            cum = table.reshape(-1, len(cats))[key[rows[0]]]
            out[rows] = np.minimum(np.searchsorted(cum, u[rows], side="right"), len(cats) - 1)
    return out


def _lognormal_seconds(rng: np.random.Generator, median_h: Arr, sigma: Arr) -> Arr:
    return np.maximum(
        np.rint(median_h * 3600.0 * np.exp(sigma * rng.standard_normal(len(median_h)))), 60
    ).astype(np.int64)


def _exact_choice(rng: np.random.Generator, pool: Arr, share: float, base: int) -> Arr:
    """round(share * base) members of pool (fewer if the pool is smaller), without replacement."""
    k = min(round(share * base), len(pool))
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    return np.sort(rng.choice(pool, size=k, replace=False))


def _due_local(categories: Arr, dispatched: Arr) -> Arr:
    """The due time (办理时限, etl/config/time_limits.yaml) of requests dispatched at these
    wall-clock times of the demo district, as its wall-clock times."""
    offset = np.timedelta64(DEMO_UTC_OFFSET_H, "h")
    start = pa.array((dispatched - offset).astype("datetime64[us]"), pa.timestamp("us", tz="UTC"))
    due = load_time_limits().due_at(pa.array(categories.tolist(), pa.string()), start, DEMO_ZONE)
    micros = np.asarray(due.cast(pa.int64()).to_numpy(zero_copy_only=False))
    return (micros.astype("datetime64[us]") + offset).astype("datetime64[s]")


def _overdue(
    rng: np.random.Generator, events: Arr, due: Arr, share: float, taken: np.datetime64
) -> Arr:
    """Resolution times (办结) of which about `share` fall past the due time (超期办结):
    resolutions drawn late beyond that share are brought inside the limit (between the
    response and the due time), or, when too few are late, some are pushed a few hours to
    days past it. Requests still open when the extract is `taken` stay as drawn (the
    difficult ones that drag on, some of them overdue)."""
    respond, resolve = events[:, 1], events[:, 2].copy()
    late = resolve > due
    target = round(share * len(resolve))
    if late.sum() > target:
        room = (due - respond).astype(np.int64)
        movable = np.flatnonzero(late & (room > 600) & (resolve <= taken))
        fix = rng.choice(movable, size=min(len(movable), int(late.sum()) - target), replace=False)
        took = (room[fix] * rng.uniform(0.3, 0.95, fix.size)).astype("timedelta64[s]")
        resolve[fix] = respond[fix] + took
    elif late.sum() < target:
        free = np.flatnonzero(~late & (resolve <= taken) & (due < taken))
        push = rng.choice(free, size=min(len(free), target - int(late.sum())), replace=False)
        past = _lognormal_seconds(rng, np.full(push.size, 20.0), np.full(push.size, 1.0))
        pushed = np.maximum(due[push], respond[push]) + past.astype("timedelta64[s]")
        resolve[push] = np.minimum(pushed, taken - np.timedelta64(1, "s"))
    return resolve


def _build_requests(
    places: _Places,
    n: int,
    seed: int,
    end: dt.date,
    mess: Messiness,
    progressed: float,
    update: np.datetime64 | None = None,
) -> _Requests:
    """Sample every request once: place, time, category, processing, callback, texts.

    `update`: when the later extract is taken (`_update_time`; default the midnight after
    day `end`). The whole day `end` is simulated whatever `update` is — its new requests, and
    about `progressed` x n main requests moving on — and the later extract shows it as seen
    at `update`: the requests received by then, the steps taken by then. So the same seed
    gives the same main extracts whatever `update` is, and a later `update` only adds.
    """
    rng = np.random.default_rng([seed, 1])
    extract = _midnight(end)
    first = (extract - np.timedelta64(WINDOW_DAYS, "D")).astype("datetime64[D]")
    chan_names = [c for c, _ in vocab.CHANNELS]
    chan_p = np.array([p for _, p in vocab.CHANNELS])
    patrol = np.array([c in PATROL for c in chan_names])

    w_main = _day_weights(first + np.arange(WINDOW_DAYS), first, CITIZEN_REST)
    w_next = _day_weights(np.array([extract.astype("datetime64[D]")]), first, CITIZEN_REST)
    n_new = round(n * float(w_next[0]) / float(w_main.sum())) if n else 0
    total = n + n_new
    channel = rng.choice(len(chan_names), size=total, p=chan_p / chan_p.sum())
    received = np.empty(total, dtype="datetime64[s]")
    for is_patrol, hours, rest in (
        (False, CITIZEN_HOURS, CITIZEN_REST),
        (True, PATROL_HOURS, PATROL_REST),
    ):
        for rows, start, days in (
            (np.arange(n), first, WINDOW_DAYS),
            (np.arange(n, total), extract.astype("datetime64[D]"), 1),
        ):
            rows = rows[patrol[channel[rows]] == is_patrol]
            received[rows] = _sample_times(rng, rows.size, start, days, hours, rest)

    loc = _sample_locations(places, rng, total, (0.30, 0.22, 0.48))
    month = (received.astype("datetime64[M]").astype(np.int64) % 12).astype(np.int64)
    category = _categories(rng, loc.hot, month, channel, patrol)

    order = np.argsort(received, kind="stable")
    received, channel, category, month = (
        received[order],
        channel[order],
        category[order],
        month[order],
    )
    loc = _Located(*(getattr(loc, f)[order] for f in ("x", "y", "grid", "hot", "landmark", "lane")))
    # the addresses' own stream: the points move to the houses they are said to be at
    loc, addressed = _at_houses(places, np.random.default_rng([seed, 12]), loc)
    is_new = order >= n
    n_main = n  # the new ones all come after the extract, hence last

    day = received.astype("datetime64[D]")
    day_int = day.astype(np.int64)
    _, first_of_day, inverse = np.unique(day_int, return_index=True, return_inverse=True)
    serial = (np.arange(total) - first_of_day[inverse] + 1).tolist()
    stamps = [s.replace("-", "") for s in np.datetime_as_string(day).tolist()]
    sid = np.array([f"GD{d}{k:06d}" for d, k in zip(stamps, serial, strict=True)], dtype=object)

    cats = list(vocab.CATEGORIES)
    median = np.array([vocab.RESOLUTION_HOURS.get(c, vocab.DEFAULT_RESOLUTION)[0] for c in cats])
    sigma = np.array([vocab.RESOLUTION_HOURS.get(c, vocab.DEFAULT_RESOLUTION)[1] for c in cats])
    urgent = np.array([c in vocab.URGENT for c in cats])
    self_found = patrol[channel]
    dispatch = _lognormal_seconds(rng, np.where(self_found, 0.15, 0.6), np.full(total, 1.0))
    respond = _lognormal_seconds(rng, np.where(urgent[category], 0.75, 2.0), np.full(total, 1.0))
    stuck = np.where(rng.random(total) < 0.08, 8.0, 1.0)  # 难点诉求 that drag on
    resolve = _lognormal_seconds(rng, median[category] * stuck, sigma[category])
    steps = np.column_stack([dispatch, respond, resolve]).cumsum(axis=1)
    events = received[:, None] + steps.astype("timedelta64[s]")
    # the lifecycle's own draws come from a stream of their own: the rest stays as it was
    life_rng = np.random.default_rng([seed, 9])
    cat_names = np.array(cats, dtype=object)[category]
    due = _due_local(cat_names, events[:, 0])
    events[:, 2] = _overdue(life_rng, events, due, OVERDUE_SHARE, extract)

    later = extract + np.timedelta64(1, "D")
    main = ~is_new
    state_main = _state(events, extract)
    natural = main & (state_main < 3) & (_state(events, later) > state_main)
    target = round(progressed * n)
    pool = np.flatnonzero(main & (state_main < 3) & ~natural)
    forced = _exact_choice(rng, pool, 1.0, max(target - int(natural.sum()), 0))
    if forced.size:
        # the next pending step happens during the day after the extract; later steps follow
        step = state_main[forced]
        when = extract + (rng.uniform(0.02, 0.98, forced.size) * 86400).astype("timedelta64[s]")
        shift = when - events[forced, step]
        for k in range(3):
            moved = step <= k
            events[forced[moved], k] += shift[moved]
    # the whole day is simulated (so nothing else depends on `update`), then seen at `update`
    update = later if update is None else min(update, later)
    state_update = _state(events, update)
    updated = main & (state_update > state_main)
    new = is_new & (received <= update)

    valid = rng.random(total) < 0.85
    contacted = rng.random(total) < 0.95
    street_index = {c: i for i, c in enumerate(places.street_codes)}
    street = np.array(
        [street_index.get(c, 0) for c in places.grid_street[loc.grid]], dtype=np.int64
    )
    s_eff = rng.normal(0.0, 0.4, max(len(street_index), 1))
    m_eff = rng.normal(0.0, 0.2, 12)
    sm_eff = rng.normal(0.0, 0.25, (max(len(street_index), 1), 12))
    shift_c = np.array([vocab.SOLVED_SHIFT.get(c, 0.0) for c in cats])
    mood = s_eff[street] + m_eff[month] + sm_eff[street, month]
    p_solved = 1.0 / (1.0 + np.exp(-(1.55 + mood + shift_c[category])))
    solved = rng.random(total) < p_solved
    u = np.clip(rng.random(total), 1e-12, 1 - 1e-12)
    latent = 2.5 * solved + mood + np.log(u / (1 - u))
    rating = np.where(latent < -0.65, 2, np.where(latent < 0.75, 1, 0))

    lng, lat = places.lnglat(loc.x, loc.y)
    chan_crs = np.array([CHANNEL_CRS[c] for c in chan_names], dtype=object)[channel]
    out_lng, out_lat = _to_source_crs(lng, lat, chan_crs)
    labels = np.empty(total, dtype=object)
    for c, name in enumerate(chan_names):
        rows = np.flatnonzero(channel == c)
        spellings = vocab.CRS_LABELS[name]
        p = np.array([s for _, s in spellings])
        labels[rows] = np.array([s for s, _ in spellings], dtype=object)[
            rng.choice(len(spellings), size=rows.size, p=p / p.sum())
        ]

    coord_defect = np.full(total, "", dtype=object)
    chan_file = np.array([CHANNEL_FILE[c] for c in chan_names], dtype=object)[channel]
    groups = [np.flatnonzero(main & (chan_file == f)) for f in (HOTLINE, GRID, APP)]
    groups.append(np.flatnonzero(is_new))
    for rows in groups:
        free = rows
        for name in ("address_only", "swapped", "outside", "zero"):
            chosen = _exact_choice(rng, free, getattr(mess, name), rows.size)
            coord_defect[chosen] = name
            free = np.setdiff1d(free, chosen, assume_unique=True)
    out_lng, out_lat = out_lng.copy(), out_lat.copy()
    rows = np.flatnonzero(coord_defect == "address_only")
    out_lng[rows] = np.nan
    out_lat[rows] = np.nan
    rows = np.flatnonzero(coord_defect == "swapped")
    out_lng[rows], out_lat[rows] = out_lat[rows].copy(), out_lng[rows].copy()
    rows = np.flatnonzero(coord_defect == "zero")
    out_lng[rows] = 0.0
    out_lat[rows] = 0.0
    rows = np.flatnonzero(coord_defect == "outside")
    if rows.size:
        box = np.asarray(OUTSIDE_BOXES)[rng.integers(0, len(OUTSIDE_BOXES), rows.size)]
        far_lng = rng.uniform(box[:, 0], box[:, 2])
        far_lat = rng.uniform(box[:, 1], box[:, 3])
        out_lng[rows], out_lat[rows] = _to_source_crs(far_lng, far_lat, chan_crs[rows])

    content = _texts(rng, category, addressed.place, vocab.TEMPLATES, cats)
    life = _Lifecycle(
        unit=np.array(
            load_routing().route(pa.array(cat_names.tolist(), pa.string())).to_pylist(),
            dtype=object,
        ),
        accept_share=life_rng.uniform(0.15, 0.85, total),
        callback_s=_lognormal_seconds(life_rng, np.full(total, 20.0), np.full(total, 0.8)),
        close_s=_lognormal_seconds(life_rng, np.full(total, 0.5), np.full(total, 0.7)),
        squeeze=life_rng.uniform(0.2, 0.9, total),
        taken=extract,
        update=update,
    )
    return _Requests(
        n_main=n_main,
        sid=sid,
        received=received,
        events=events,
        channel=np.array(chan_names, dtype=object)[channel],
        category=np.array(cats, dtype=object)[category],
        lng=lng,
        lat=lat,
        grid=loc.grid,
        crs_label=labels,
        out_lng=out_lng,
        out_lat=out_lat,
        coord_defect=coord_defect,
        address=addressed.address,
        content=content,
        valid=valid,
        contacted=contacted,
        solved=solved,
        rating=rating,
        state_main=state_main,
        state_update=state_update,
        updated=updated,
        new=new,
        life=life,
    )


def _to_source_crs(lng: Arr, lat: Arr, crs: Arr) -> tuple[Arr, Arr]:
    """WGS84 points to each row's coordinate system ('wgs84', 'gcj02' or 'bd09')."""
    out_lng, out_lat = lng.astype(float).copy(), lat.astype(float).copy()
    for code, convert in (
        (coords.GCJ02, coords.wgs84_to_gcj02),
        (coords.BD09, coords.wgs84_to_bd09),
    ):
        rows = np.flatnonzero(crs == code)
        if rows.size:
            out_lng[rows], out_lat[rows] = convert(lng[rows], lat[rows])
    return out_lng, out_lat


def _texts(
    rng: np.random.Generator,
    kind: Arr,
    place: Arr,
    templates: dict[str, tuple[str, ...]],
    kinds: Sequence[str],
) -> Arr:
    """A short text per row from its kind's templates, naming its place."""
    counts = np.array([len(templates[k]) for k in kinds])
    pick = np.floor(rng.random(len(kind)) * counts[kind]).astype(np.int64).tolist()
    period = rng.integers(0, len(vocab.PERIODS), len(kind)).tolist()
    temp = rng.integers(10, 17, len(kind)).tolist()
    out = [
        templates[kinds[k]][t].format(place=p, period=vocab.PERIODS[q], temp=c)
        for k, t, p, q, c in zip(kind.tolist(), pick, place.tolist(), period, temp, strict=True)
    ]
    return np.array(out, dtype=object)


def _coord_value(v: float, numeric: bool) -> Any:
    if v != v:
        return ""
    return round(v, 6) if numeric else f"{v:.6f}"


def _lifecycle_columns(
    cols: dict[str, list[Any]],
    R: _Requests,
    req: Arr,
    state: Arr,
    style: str,
    closed: Arr,
    valid: Arr,
    taken: np.datetime64,
) -> None:
    """承办单位 签收 联系 回访 归档 of request lines (see `_Lifecycle`); `taken`: the time of the
    lines' extract, which no callback or filing shown may pass."""
    life = R.life
    assert life is not None
    d, responded, resolved = (R.events[req, k] for k in range(3))
    accepted = d + ((responded - d).astype(np.int64) * life.accept_share[req]).astype(
        "timedelta64[s]"
    )
    squeeze = life.squeeze[req]

    def by_then(start: Arr, delay: Arr) -> Arr:
        at = start + delay.astype("timedelta64[s]")
        room = np.maximum((taken - start).astype(np.int64), 0)
        squeezed = start + (room * squeeze).astype("timedelta64[s]")
        return np.where(at <= taken, at, squeezed)

    called_back = by_then(resolved, life.callback_s[req])
    filed = by_then(called_back, life.close_s[req])
    unsatisfied = valid & (R.rating[req] == 2)  # left to the centre to reopen (重办)
    shown = {
        "签收时间": (accepted, state >= 2),
        "联系时间": (responded, state >= 2),
        "回访时间": (called_back, closed),
        "归档时间": (filed, closed & ~unsatisfied),
    }
    for name, (values, show) in shown.items():
        text = _format_times(values, style)
        cols[name] = [v if s else "" for v, s in zip(text, show.tolist(), strict=True)]
    cols["承办单位"] = np.where(state >= 1, life.unit[req], "").tolist()


def _request_rows(
    R: _Requests, req: Arr, state: Arr, style: str, taken: np.datetime64 | None = None
) -> dict[str, list[Any]]:
    """The columns of request lines: each request shown as of its line's state, in an
    extract taken at `taken` (default: the main extracts' time)."""
    if taken is None:
        taken = R.life.taken if R.life is not None else np.datetime64("NaT")
    numeric = style == "excel"
    cols: dict[str, list[Any]] = {
        "工单编号": R.sid[req].tolist(),
        "受理时间": _format_times(R.received[req], style),
        "来源渠道": R.channel[req].tolist(),
        "诉求类别": R.category[req].tolist(),
        "诉求内容": R.content[req].tolist(),
        "地址": R.address[req].tolist(),
        "经度": [_coord_value(v, numeric) for v in R.out_lng[req].tolist()],
        "纬度": [_coord_value(v, numeric) for v in R.out_lat[req].tolist()],
        "坐标系": R.crs_label[req].tolist(),
        "状态": [STATUSES[s] for s in state.tolist()],
    }
    for k, name in enumerate(("派单时间", "响应时间", "办结时间")):
        shown = _format_times(R.events[req, k], style)
        cols[name] = [v if s > k else "" for v, s in zip(shown, state.tolist(), strict=True)]
    citizen = np.array([c not in PATROL for c in R.channel[req]], dtype=bool)
    closed = (state == 3) & citizen
    valid = closed & R.valid[req]
    yes_no = np.array(["否", "是"], dtype=object)
    ratings = np.array(["满意", "基本满意", "不满意"], dtype=object)
    if R.life is not None:
        _lifecycle_columns(cols, R, req, state, style, closed, valid, taken)
    cols["是否有效回访"] = np.where(closed, yes_no[R.valid[req].astype(int)], "").tolist()
    cols["是否联系"] = np.where(valid, yes_no[R.contacted[req].astype(int)], "").tolist()
    cols["是否解决"] = np.where(valid, yes_no[R.solved[req].astype(int)], "").tolist()
    cols["满意度"] = np.where(valid, ratings[R.rating[req]], "").tolist()
    return cols


def _text_of(value: Any) -> str:
    """A cell as text (an XLSX number or date becomes the string a clerk would type)."""
    if isinstance(value, float):
        return f"{value:.6f}"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _spoil(
    cols: dict[str, list[Any]], rows: Arr, defect: str, rng: np.random.Generator, style: str
) -> None:
    """Apply a line defect (bad_date, missing_required, whitespace, fullwidth) in place."""
    for i in rows.tolist():
        u = float(rng.random())
        if defect == "missing_required":
            cols[_REQUIRED[int(u * len(_REQUIRED))]][i] = ""
        elif defect == "bad_date":
            filled = [f for f in _TIME_FIELDS[1:] if cols[f][i] != ""]
            name = "受理时间" if u < 0.6 or not filled else filled[int(rng.integers(len(filled)))]
            bad = vocab.BAD_DATES[style]
            cols[name][i] = bad[int(rng.integers(len(bad)))]
        elif defect == "whitespace":
            names = [f for f in _WS_FIELDS if cols[f][i] != ""]
            for name in rng.choice(names, size=min(len(names), 1 + int(u < 0.3)), replace=False):
                pad = _PADS[int(rng.integers(len(_PADS)))]
                where = int(rng.integers(3))
                text = _text_of(cols[name][i])
                cols[name][i] = (pad if where != 1 else "") + text + (pad if where != 0 else "")
        elif defect == "fullwidth":
            has_xy = cols["经度"][i] != ""
            targets = ["经度", "纬度"] if has_xy else []
            if not has_xy or u < 0.4:
                targets.append("地址")
            for name in targets:
                cols[name][i] = _text_of(cols[name][i]).translate(_FULLWIDTH)
        else:
            raise ValueError(f"unknown line defect {defect!r}")


@dataclass
class _FileLines:
    """The lines of one file, in file order, with the request and defects of each."""

    cols: dict[str, list[Any]]
    req: Arr
    defects: list[str]


def _file_lines(
    R: _Requests,
    rng: np.random.Generator,
    req: Arr,
    state: Arr,
    style: str,
    mess: Messiness,
    may_repeat: Arr,
    taken: np.datetime64 | None = None,
) -> _FileLines:
    """Lines of one file: primary lines, exact duplicates, older/later versions, line defects."""
    n = len(req)
    pos = np.arange(n)
    later = _exact_choice(rng, pos[(state >= 1) & may_repeat], mess.later_version, n)
    is_later = np.zeros(n, dtype=bool)
    is_later[later] = True
    dup = _exact_choice(rng, pos[~is_later], mess.duplicate, n)
    is_dup = np.zeros(n, dtype=bool)
    is_dup[dup] = True
    line_defect = np.full(n, "", dtype=object)
    for name in ("missing_required", "bad_date", "whitespace", "fullwidth"):
        free = line_defect == ""
        if name in ("missing_required", "bad_date"):
            free &= ~is_later & ~is_dup
        line_defect[_exact_choice(rng, pos[free], getattr(mess, name), n)] = name

    first_state = state.copy()
    if later.size:
        first_state[later] = np.floor(rng.random(later.size) * state[later]).astype(np.int64)
    cols = _request_rows(
        R,
        np.concatenate([req, req[later]]),
        np.concatenate([first_state, state[later]]),
        style,
        taken,
    )
    for name in ("missing_required", "bad_date", "whitespace", "fullwidth"):
        _spoil(cols, np.flatnonzero(line_defect == name), name, rng, style)

    # a duplicate follows its line closely; a later version anywhere after the first
    dup_key = np.minimum(dup + rng.integers(0, 30, dup.size), n - 1) + 0.5
    lo = np.minimum(later + 1, n - 1)
    later_key = lo + np.floor(rng.random(later.size) * (n - lo)) + 0.25
    keys = np.concatenate([pos.astype(float), dup_key, later_key])
    source = np.concatenate([pos, dup, n + np.arange(later.size)])
    order = np.argsort(keys, kind="stable")
    rows = source[order]

    coord = R.coord_defect[req]
    base = [
        ";".join(d for d in (c, ld) if d)
        for c, ld in zip(coord.tolist(), line_defect.tolist(), strict=True)
    ]
    tags = base + [";".join(d for d in (c, "later_version") if d) for c in coord[later].tolist()]
    dup_tags = [_join_defects(base[p], "duplicate") for p in dup.tolist()]
    # which lines are duplicates, and of which primary line (same order as keys)
    dup_rank = np.concatenate([np.full(n, -1), np.arange(dup.size), np.full(later.size, -1)])
    dup_rank = dup_rank[order].tolist()
    defects = [
        dup_tags[r] if r >= 0 else tags[s] for s, r in zip(rows.tolist(), dup_rank, strict=True)
    ]
    out = {name: [values[i] for i in rows.tolist()] for name, values in cols.items()}
    all_req = np.concatenate([req, req[later]])
    return _FileLines(out, all_req[rows], [_ordered(d) for d in defects])


def _join_defects(a: str, b: str) -> str:
    return f"{a};{b}" if a else b


def _ordered(defects: str) -> str:
    """Defects in the canonical order of DEFECTS."""
    if ";" not in defects:
        return defects
    got = set(filter(None, defects.split(";")))
    return ";".join(d for d in DEFECTS if d in got)


def _truth_frame(
    file: str,
    kind: str,
    source_id: Iterable[str],
    lng: Arr,
    lat: Arr,
    grid: Arr,
    places: _Places,
    defects: Sequence[str],
) -> pd.DataFrame:
    n = len(lng)
    return pd.DataFrame(
        {
            "file": [file] * n,
            "row": np.arange(1, n + 1),
            "source_id": list(source_id),
            "kind": [kind] * n,
            "true_lng": np.round(lng, 8),
            "true_lat": np.round(lat, 8),
            "grid_code": places.grid_code[grid],
            "community_code": places.grid_community[grid],
            "street_code": places.grid_street[grid],
            "defects": list(defects),
        },
        columns=list(TRUTH_COLUMNS),
    )


def _requests_frame(
    places: _Places,
    n: int,
    seed: int,
    end: dt.date,
    mess: Messiness,
    progressed: float,
    update: np.datetime64 | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n!r}")
    R = _build_requests(places, n, seed, end, mess, progressed, update)
    rng = np.random.default_rng([seed, 2])
    main = np.arange(len(R.sid)) < R.n_main
    chan_file = np.array([CHANNEL_FILE[c] for c in R.channel], dtype=object)
    raws, truths = [], []
    for file in REQUEST_FILES:
        if file == UPDATE:
            req = np.flatnonzero(R.updated | R.new)
            state = R.state_update[req]
            may_repeat = ~main[req]  # an older line of a main request would move it back
        else:
            req = np.flatnonzero(main & (chan_file == file))
            state = R.state_main[req]
            may_repeat = np.ones(len(req), dtype=bool)
        taken = None
        if R.life is not None:
            taken = R.life.update if file == UPDATE else R.life.taken
        lines = _file_lines(R, rng, req, state, DATE_STYLE[file], mess, may_repeat, taken)
        raws.append(pd.DataFrame(lines.cols, columns=list(REQUEST_COLUMNS), dtype=object))
        truths.append(
            _truth_frame(
                file,
                "request",
                R.sid[lines.req].tolist(),
                R.lng[lines.req],
                R.lat[lines.req],
                R.grid[lines.req],
                places,
                lines.defects,
            )
        )
    raw = pd.concat(raws, ignore_index=True)
    truth = pd.concat(truths, ignore_index=True)
    return raw, truth


def requests_frame(
    geo: Geography,
    n: int,
    *,
    seed: int = 42,
    end: dt.date = DEFAULT_END,
    messy: bool = True,
    messiness: Messiness | None = None,
    progressed: float = 0.02,
    now: dt.datetime | None = None,
    zone: str = DEMO_ZONE,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The raw request rows of all four request files, and the truth row of each.

    `n` requests fall in the year before `end` and go to the hotline, grid and app files by
    channel; the later extract repeats about `progressed` x n of them with a status moved on,
    and adds the requests of day `end`. It is taken at the end of day `end`, or at `now`
    (naive: local; aware: converted to `zone`) when that is earlier: then it holds only what
    had happened by `now`. Both frames are in file order (truth's `file` and `row` say where
    each raw row goes). Raw values are what the file holds: text, except the XLSX file's
    numbers and datetimes; '' is an empty cell.
    """
    mess = (messiness or Messiness()) if messy else Messiness.clean()
    end = _as_date(end)
    update = _update_time(end, now, zone)
    return _requests_frame(_Places(geo), n, seed, end, mess, progressed, update)


def _as_date(end: dt.date) -> dt.date:
    return dt.date(end.year, end.month, end.day)


# --- enforcement cases -----------------------------------------------------------------


def _cases_frame(
    places: _Places,
    n: int,
    seed: int,
    end: dt.date,
    address_only: float = 0.01,
    bad_date: float = 0.003,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Enforcement cases (执法案件) over the year before `end`, with a little messiness."""
    rng = np.random.default_rng([seed, 3])
    extract = _midnight(end)
    first = (extract - np.timedelta64(WINDOW_DAYS, "D")).astype("datetime64[D]")
    opened = np.sort(_sample_times(rng, n, first, WINDOW_DAYS, PATROL_HOURS, PATROL_REST))
    loc = _sample_locations(places, rng, n, (0.40, 0.30, 0.30))
    types = list(vocab.CASE_TYPES)
    table = np.empty((len(_HOT_KINDS), len(types)))
    for h, hot_kind in enumerate(_HOT_KINDS):
        boost = vocab.CASE_BOOST.get(hot_kind, {})
        w = np.array([vocab.CASE_TYPES[t][0] * boost.get(t, 1.0) for t in types])
        table[h] = np.cumsum(w) / w.sum()
    u = rng.random(n)
    kind = np.minimum((u[:, None] >= table[loc.hot]).sum(axis=1), len(types) - 1)

    agencies: list[str] = []
    for t in kind.tolist():
        _, _, lead, extra = vocab.CASE_TYPES[types[t]]
        if extra and rng.random() < 0.25:
            k = 1 + int(len(extra) > 1 and rng.random() < 0.3)
            agencies.append("、".join([lead, *rng.choice(extra, size=k, replace=False).tolist()]))
        else:
            agencies.append(lead)
    limit = np.array([vocab.CASE_TYPES[types[t]][1] for t in kind.tolist()])
    took = (limit * rng.uniform(0.2, 1.2, n) * 86400).astype("timedelta64[s]")
    closed_at = opened + took
    elapsed = (extract - opened).astype(np.float64) / (limit * 86400.0)
    status = np.where(
        closed_at <= extract, 3, np.where(elapsed < 0.1, 0, np.where(elapsed < 0.5, 1, 2))
    )

    # serials run per year; the window's first year had cases before the window began
    years = (opened.astype("datetime64[Y]").astype(np.int64) + 1970).tolist()
    before = int((first - first.astype("datetime64[Y]")).astype(np.int64))
    counter = {
        int(first.astype("datetime64[Y]").astype(np.int64)) + 1970: round(n * before / WINDOW_DAYS)
    }
    case_no = []
    for y in years:
        counter[y] = counter.get(y, 0) + 1
        case_no.append(f"ZF{y}-{counter[y]:06d}")

    loc, addressed = _at_houses(places, rng, loc, landmark_share=0.3)
    text = _texts(rng, kind, addressed.place, vocab.CASE_TEMPLATES, types)
    lng, lat = places.lnglat(loc.x, loc.y)
    defects = np.full(n, "", dtype=object)
    pos = np.arange(n)
    no_xy = _exact_choice(rng, pos, address_only, n)
    defects[no_xy] = "address_only"
    bad = _exact_choice(rng, np.setdiff1d(pos, no_xy), bad_date, n)
    defects[bad] = "bad_date"
    opened_s = _format_times(opened, "iso")
    closed_s = [
        c if s == 3 else ""
        for c, s in zip(_format_times(closed_at, "iso"), status.tolist(), strict=True)
    ]
    bad_dates = vocab.BAD_DATES["iso"]
    for i in bad.tolist():
        text_bad = bad_dates[int(rng.integers(len(bad_dates)))]
        if closed_s[i] and rng.random() < 0.5:
            closed_s[i] = text_bad
        else:
            opened_s[i] = text_bad
    raw = pd.DataFrame(
        {
            "案件编号": case_no,
            "立案时间": opened_s,
            "案件类型": [types[t] for t in kind.tolist()],
            "执法部门": agencies,
            "是否联合执法": ["是" if "、" in a else "否" for a in agencies],
            "案情描述": text.tolist(),
            "地址": addressed.address.tolist(),
            "经度": [
                "" if d == "address_only" else f"{v:.6f}"
                for v, d in zip(lng.tolist(), defects.tolist(), strict=True)
            ],
            "纬度": [
                "" if d == "address_only" else f"{v:.6f}"
                for v, d in zip(lat.tolist(), defects.tolist(), strict=True)
            ],
            "坐标系": ["WGS84"] * n,
            "状态": [vocab.CASE_STATUSES[s] for s in status.tolist()],
            "结案时间": closed_s,
            "办理期限": [str(v) for v in limit.tolist()],
        },
        columns=list(CASE_COLUMNS),
        dtype=object,
    )
    truth = _truth_frame(CASES, "case", case_no, lng, lat, loc.grid, places, defects.tolist())
    return raw, truth


# --- relocation targets ----------------------------------------------------------------


def _days(day: dt.date, offset: float) -> dt.date:
    return day + dt.timedelta(days=round(offset))


def _target_dates(
    rng: np.random.Generator, status: str, end: dt.date, earliest: dt.date
) -> tuple[dt.date, dt.date, dt.date | None, dt.date | None, int]:
    """Planned start/end, actual start/end and progress (%) consistent with a status."""
    if status == "未启动":
        ps = _days(end, rng.uniform(-60, 240))
        return ps, _days(ps, rng.uniform(90, 540)), None, None, 0
    if status == "进行中":
        start = max(_days(end, -rng.uniform(30, 700)), earliest)
        ps = _days(start, -rng.uniform(-30, 60))
        pe = max(_days(ps, rng.uniform(180, 720)), _days(end, 30))
        share = (end - start).days / max((pe - start).days, 1)
        return ps, pe, start, None, int(np.clip(round(100 * share + rng.normal(0, 8)), 5, 95))
    lag = 30 if status == "已验收" else 1
    start = max(_days(end, -rng.uniform(200, 2500)), earliest)
    finish = min(_days(start, rng.uniform(60, 600)), _days(end, -lag))
    finish = max(finish, _days(start, 30))
    ps = _days(start, -rng.uniform(-20, 60))
    return ps, _days(ps, (finish - start).days + rng.uniform(-60, 90)), start, finish, 100


def _targets_frame(
    places: _Places, n: int, seed: int, end: dt.date
) -> tuple[list[list[Any]], pd.DataFrame]:
    """Relocation targets (疏解目标): the zoo wholesale markets first, then others."""
    rng = np.random.default_rng([seed, 4])
    zoo_names = set(vocab.ZOO_MARKETS)
    is_zoo = np.array(
        [
            name in zoo_names or (street == vocab.ZOO_STREET and name.endswith("服装批发市场"))
            for name, street in zip(places.mark_name, places.mark_street, strict=True)
        ],
        dtype=bool,
    )
    wholesale = np.array([name.endswith("批发市场") for name in places.mark_name], dtype=bool)
    marks = np.concatenate([np.flatnonzero(is_zoo), np.flatnonzero(wholesale & ~is_zoo)])
    names = places.mark_name[marks].tolist()
    addresses = places.mark_address[marks].tolist()
    x, y = places.mark_x[marks], places.mark_y[marks]
    zoo_flag = is_zoo[marks].tolist()
    if not is_zoo.any():  # a geography without the cluster: put it in 展览路 (or anywhere)
        streets = places.grid_street
        grids = np.flatnonzero(streets == vocab.ZOO_STREET)
        grids = grids if grids.size else np.arange(len(streets))
        pick = grids[rng.integers(0, grids.size, len(vocab.ZOO_MARKETS))]
        rep = shapely.get_coordinates(shapely.point_on_surface(places.inner[pick]))
        x = np.concatenate([rep[:, 0], x])
        y = np.concatenate([rep[:, 1], y])
        names = list(vocab.ZOO_MARKETS) + names
        addresses = [f"{places.district_name}{m}" for m in vocab.ZOO_MARKETS] + addresses
        zoo_flag = [True] * len(vocab.ZOO_MARKETS) + zoo_flag
    x, y, grid = places.settle(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    k = min(n, len(names))
    rows: list[dict[str, Any]] = []
    for i in range(k):
        zoo = zoo_flag[i]
        if zoo:
            ps = dt.date(2014, 1, 1) + dt.timedelta(days=int(rng.integers(0, 900)))
            start = _days(ps, rng.uniform(0, 60))
            finish = min(_days(start, rng.uniform(180, 1100)), dt.date(2018, 11, 30))
            finish = max(finish, _days(start, 90))
            status = "已验收" if rng.random() < 0.7 or finish.year < 2018 else "已完成"
        else:
            ps = dt.date(2016, 1, 1) + dt.timedelta(days=int(rng.integers(0, 700)))
            start = _days(ps, rng.uniform(0, 90))
            finish = min(_days(start, rng.uniform(180, 700)), _days(end, -30))
            status = "已验收" if rng.random() < 0.6 else "已完成"
        rows.append(
            {
                "名称": names[i],
                "类型": vocab.WHOLESALE,
                "地址": addresses[i],
                "area": rng.uniform(*vocab.WHOLESALE_AREA),
                "merchants": int(rng.integers(*vocab.WHOLESALE_MERCHANTS)),
                "状态": status,
                "dates": (
                    ps,
                    _days(ps, (finish - start).days + rng.uniform(-90, 120)),
                    start,
                    finish,
                    100,
                ),
            }
        )

    m = n - k
    loc = _sample_locations(places, rng, m, (0.0, 0.0, 1.0))
    loc, addressed = _at_houses(places, rng, loc, landmark_share=0.0)
    kinds = list(vocab.TARGET_KINDS)
    p = np.array([vocab.TARGET_KINDS[t][0] for t in kinds])
    kind_index = rng.choice(len(kinds), size=m, p=p / p.sum())
    status_p = np.array([0.15, 0.35, 0.30, 0.20])
    status_index = rng.choice(len(vocab.TARGET_STATUSES), size=m, p=status_p)
    used = {r["名称"] for r in rows}
    for i in range(m):
        t = kinds[kind_index[i]]
        place = str(addressed.place[i])
        if t == "低端业态":
            name = f"{place}{vocab.LOW_END[int(rng.integers(len(vocab.LOW_END)))]}"
        elif t == "物流仓储":
            name = f"{place}物流仓储点"
        else:
            name = f"{place}{t}"
        base, serial = name, 2
        while name in used:
            name, serial = f"{base}（{serial}）", serial + 1
        used.add(name)
        _, area, merchants = vocab.TARGET_KINDS[t]
        st = vocab.TARGET_STATUSES[status_index[i]]
        rows.append(
            {
                "名称": name,
                "类型": t,
                "地址": str(addressed.address[i]),
                "area": rng.uniform(*area),
                "merchants": int(rng.integers(merchants[0], merchants[1] + 1)),
                "状态": st,
                "dates": _target_dates(rng, st, end, dt.date(2017, 1, 1)),
            }
        )
    tx = np.concatenate([x[:k], loc.x])
    ty = np.concatenate([y[:k], loc.y])
    tgrid = np.concatenate([grid[:k], loc.grid])
    order = [*range(k), *sorted(range(k, n), key=lambda i: (rows[i]["dates"][0], i))]
    lng, lat = places.lnglat(tx[order], ty[order])
    glng, glat = coords.wgs84_to_gcj02(lng, lat)
    out: list[list[Any]] = []
    codes = []
    for j, i in enumerate(order):
        r = rows[i]
        ps, pe, start, finish, progress = r["dates"]
        code = f"SJ{j + 1:04d}"
        codes.append(code)
        out.append(
            [
                code,
                r["名称"],
                r["类型"],
                r["地址"],
                round(float(glng[j]), 6),
                round(float(glat[j]), 6),
                "GCJ-02",
                round(float(r["area"]), 1),
                r["merchants"],
                r["状态"],
                progress,
                ps,
                pe,
                start if start is not None else "",
                finish if finish is not None else "",
            ]
        )
    truth = _truth_frame(TARGETS, "target", codes, lng, lat, tgrid[order], places, [""] * n)
    return out, truth


# --- renovation projects ---------------------------------------------------------------


def _phase_dates(
    rng: np.random.Generator, phase: str, end: dt.date
) -> tuple[dt.date, dt.date, dt.date | None, dt.date | None, int]:
    """Planned and actual dates and progress (%) consistent with a phase."""
    if phase in ("规划", "设计"):
        ps = _days(end, rng.uniform(30, 365) if phase == "规划" else rng.uniform(-30, 180))
        lo, hi = (0, 5) if phase == "规划" else (5, 20)
        return ps, _days(ps, rng.uniform(120, 540)), None, None, int(rng.integers(lo, hi + 1))
    if phase == "施工":
        start = _days(end, -rng.uniform(10, 400))
        ps = _days(start, -rng.uniform(-20, 40))
        pe = max(_days(ps, rng.uniform(120, 600)), _days(end, 15))
        share = (end - start).days / max((pe - start).days, 1)
        return ps, pe, start, None, int(np.clip(round(20 + 70 * share), 20, 90))
    if phase == "验收":
        start = _days(end, -rng.uniform(150, 700))
        ps = _days(start, -rng.uniform(-20, 40))
        return ps, _days(start, rng.uniform(120, 140)), start, None, int(rng.integers(90, 100))
    start = _days(end, -rng.uniform(200, 1500))
    finish = min(_days(start, rng.uniform(60, 500)), _days(end, -1))
    ps = _days(start, -rng.uniform(-20, 40))
    return ps, _days(ps, (finish - start).days + rng.uniform(-30, 60)), start, finish, 100


def _projects_frame(
    places: _Places, communities: dict[str, str], n: int, seed: int, end: dt.date
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Renovation projects: back-lane works on lanes, and blocks inside one community."""
    rng = np.random.default_rng([seed, 5])
    kinds = list(vocab.PROJECT_KINDS)
    shares = np.array(list(vocab.PROJECT_KINDS.values()))
    kind = np.sort(rng.choice(len(kinds), size=n, p=shares / shares.sum()))
    back = np.flatnonzero(np.isin(places.lane_kind, ("胡同", "巷", "街")))
    n_lane = min(int((kind == 0).sum()), back.size)
    kind[:n_lane] = 0
    kind[n_lane:] = np.maximum(kind[n_lane:], 1)
    lanes = rng.choice(back, size=n_lane, replace=False) if n_lane else np.empty(0, dtype=np.int64)
    grids = rng.choice(
        len(places.grid_code), size=n - n_lane, replace=(n - n_lane) > len(places.grid_code)
    )
    compounds = np.flatnonzero(places.mark_kind == "compound")
    compound_grid = places.locate(places.mark_x[compounds], places.mark_y[compounds])
    old = np.flatnonzero(kind[n_lane:] == 1)
    usable = compounds[compound_grid >= 0]
    take = min(old.size, usable.size) // 2  # half of the estates are named after a compound
    chosen = rng.choice(usable, size=take, replace=False) if take else np.empty(0, dtype=np.int64)
    named: dict[int, str] = {}
    for j, c in zip(old[:take].tolist(), chosen.tolist(), strict=True):
        grids[j] = places.locate(places.mark_x[[c]], places.mark_y[[c]])[0]
        named[j] = str(places.mark_name[c])

    features: list[dict[str, Any]] = []
    px = np.empty(n)
    py = np.empty(n)
    used: set[str] = set()
    for i, lane in enumerate(lanes.tolist()):
        line = places.lane_m[lane]
        for t in (0.5, 0.45, 0.55, 0.4, 0.6, 0.35, 0.65, 0.3, 0.7, 0.25, 0.75, 0.2, 0.8):
            p = line.interpolate(t, normalized=True)
            if places.locate(np.array([p.x]), np.array([p.y]))[0] >= 0:
                break
        px[i], py[i] = p.x, p.y
        phases = vocab.LANE_PHASES.get(str(places.lane_status[lane]), vocab.PROJECT_PHASES)
        phase = phases[int(rng.integers(len(phases)))]
        name = f"{places.lane_name[lane]}背街小巷环境整治提升"
        features.append(
            _project(
                kinds[0], name, str(places.lane_code[lane]), phase, rng, end, places.lane_geom[lane]
            )
        )
    phase_p = np.array([0.1, 0.15, 0.3, 0.15, 0.3])
    for j, g in enumerate(grids.tolist()):
        i = n_lane + j
        k = kinds[kind[i]]
        shrink = rng.uniform(4.0, 12.0)
        block = shapely.buffer(places.inner[g], -shrink, quad_segs=4)
        if block.is_empty:
            block = places.inner[g]
        parts = shapely.get_parts(block)
        block = parts[np.argmax(shapely.area(parts))]
        rep = shapely.point_on_surface(block)
        px[i], py[i] = rep.x, rep.y
        lng, lat = places.frame.to_degrees(*shapely.get_coordinates(block).T)
        ring = shapely.polygons(np.round(np.column_stack([lng, lat]), 7))
        community = communities.get(str(places.grid_community[g]), str(places.grid_community[g]))
        if k == "老旧小区改造":
            name = f"{named[j]}老旧小区综合整治" if j in named else f"{community}老旧小区改造"
        elif k == "街区更新":
            name = f"{community}街区更新"
        else:
            near = places.lane_tree.query_nearest(rep, all_matches=False)
            name = f"{places.lane_name[int(near[0])]}沿街立面整治"
        base, serial = name, 2
        while name in used:
            name, serial = f"{base}（{_CN_ORDINALS[min(serial, 9)]}期）", serial + 1
        used.add(name)
        phase = vocab.PROJECT_PHASES[int(rng.choice(5, p=phase_p))]
        features.append(_project(k, name, None, phase, rng, end, ring))
    for f in features[:n_lane]:
        base, serial = f["properties"]["项目名称"], 2
        while f["properties"]["项目名称"] in used:
            f["properties"]["项目名称"] = f"{base}（{_CN_ORDINALS[min(serial, 9)]}期）"
            serial += 1
        used.add(f["properties"]["项目名称"])
    codes = [f"ZZ{i + 1:04d}" for i in range(n)]
    for code, f in zip(codes, features, strict=True):
        f["properties"] = {"项目编号": code, **f["properties"]}
    _, _, grid = places.settle(px, py)
    lng, lat = places.lnglat(px, py)
    truth = _truth_frame(PROJECTS, "project", codes, lng, lat, grid, places, [""] * n)
    return features, truth


_CN_ORDINALS = "零一二三四五六七八九"


def _project(
    kind: str,
    name: str,
    lane_code: str | None,
    phase: str,
    rng: np.random.Generator,
    end: dt.date,
    geom: Any,
) -> dict[str, Any]:
    ps, pe, start, finish, progress = _phase_dates(rng, phase, end)
    return {
        "type": "Feature",
        "properties": {
            "项目名称": name,
            "类型": kind,
            "街巷编码": lane_code,
            "阶段": phase,
            "进度(%)": progress,
            "计划开始": ps.isoformat(),
            "计划完成": pe.isoformat(),
            "实际开始": start.isoformat() if start else None,
            "实际完成": finish.isoformat() if finish else None,
        },
        "geometry": _geojson_geometry(geom),
    }


def _geojson_geometry(geom: Any) -> dict[str, Any]:
    """A LineString or Polygon as GeoJSON, coordinates to 7 decimals."""
    if geom.geom_type == "LineString":
        xy = np.round(shapely.get_coordinates(geom), 7).tolist()
        return {"type": "LineString", "coordinates": xy}
    rings = [geom.exterior, *geom.interiors]
    return {
        "type": "Polygon",
        "coordinates": [np.round(shapely.get_coordinates(r), 7).tolist() for r in rings],
    }


# --- writers ---------------------------------------------------------------------------


def _write_csv(
    path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]], encoding: str
) -> None:
    """CSV with CRLF line ends, as Windows exports write it; raises if a text cannot encode."""
    with path.open("w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(rows)


def _write_xlsx(
    path: Path, sheet: str, header: Sequence[str], rows: Sequence[Sequence[Any]], when: dt.datetime
) -> None:
    """One sheet, header frozen: text as text, numbers as numbers, dates as date cells.

    XlsxWriter in constant_memory mode streams the rows (text inline). Its files are
    byte-identical for identical input once the document's `created` time is set: that
    time also stamps every zip entry.
    """
    with xlsxwriter.Workbook(
        str(path),
        {"constant_memory": True, "strings_to_urls": False, "strings_to_formulas": False},
    ) as wb:
        wb.set_properties({"created": when, "author": sheet})
        wb.formats[0].set_font_name("宋体")
        stamp = wb.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        day = wb.add_format({"num_format": "yyyy-mm-dd"})
        ws = wb.add_worksheet(sheet)
        ws.freeze_panes(1, 0)
        ws.write_row(0, 0, header)
        for r, row in enumerate(rows, start=1):
            for c, value in enumerate(row):
                kind = type(value)
                if kind is str:
                    if value:
                        ws.write_string(r, c, value)
                elif kind is float or kind is int:
                    ws.write_number(r, c, value)
                elif kind is dt.datetime:
                    ws.write_datetime(r, c, value, stamp)
                elif kind is dt.date:
                    ws.write_datetime(r, c, value, day)
                elif value is not None:
                    raise TypeError(f"cannot write {value!r} ({kind.__name__}) to XLSX")


def _write_geojson(path: Path, features: Sequence[dict[str, Any]]) -> None:
    """A FeatureCollection, one feature per line."""
    lines = [json.dumps(f, ensure_ascii=False, separators=(",", ":")) for f in features]
    text = '{"type":"FeatureCollection","features":[\n' + ",\n".join(lines) + "\n]}\n"
    path.write_text(text, encoding="utf-8")


def _write_truth(path: Path, truth: pd.DataFrame) -> None:
    cols = [truth[c].tolist() for c in TRUTH_COLUMNS]
    cols[4] = [f"{v:.8f}" for v in cols[4]]
    cols[5] = [f"{v:.8f}" for v in cols[5]]
    _write_csv(path, TRUTH_COLUMNS, zip(*cols, strict=True), "utf-8")


def _rows(raw: pd.DataFrame, columns: Sequence[str]) -> list[tuple[Any, ...]]:
    return list(zip(*(raw[c].tolist() for c in columns), strict=True))


def _defect_counts(truth: pd.DataFrame) -> dict[str, int]:
    counts = dict.fromkeys(DEFECTS, 0)
    for tags in truth["defects"].tolist():
        for d in filter(None, tags.split(";")):
            counts[d] += 1
    return {d: c for d, c in counts.items() if c}


def generate_extracts(
    geo: Geography,
    out_dir: Path,
    *,
    seed: int = 42,
    requests: int = 200_000,
    cases: int = 3_000,
    targets: int = 120,
    projects: int = 200,
    end: dt.date = DEFAULT_END,
    messiness: Messiness | None = None,
    progress: bool = False,
    now: dt.datetime | None = None,
    zone: str = DEMO_ZONE,
) -> dict[str, Path]:
    """Write every demo extract, truth.csv and manifest.json into out_dir.

    Returns the paths by file stem (e.g. 'requests_hotline'). The same arguments give
    byte-identical files. `now`: the moment of generation, when `end` is today (naive: the
    district's wall-clock time; aware: converted to `zone`): the later extract is taken
    then instead of at the next midnight, so that no file holds a time after it.
    """
    end = _as_date(end)
    update = _update_time(end, now, zone)
    mess = messiness or Messiness()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    when = dt.datetime(end.year, end.month, end.day)
    paths: dict[str, Path] = {}
    truths: list[pd.DataFrame] = []
    bar = tqdm(total=6, desc="demo extracts", disable=not progress, leave=False)
    places = _Places(geo)

    def add(name: str) -> Path:
        paths[name.split(".")[0]] = out_dir / name
        return out_dir / name

    raw, truth = _requests_frame(places, requests, seed, end, mess, 0.02, update)
    bar.update()
    for file in REQUEST_FILES:
        part = raw.loc[(truth["file"] == file).to_numpy()]
        if file == APP:
            _write_xlsx(add(file), "工单", REQUEST_COLUMNS, _rows(part, REQUEST_COLUMNS), when)
        else:
            _write_csv(add(file), REQUEST_COLUMNS, _rows(part, REQUEST_COLUMNS), ENCODING[file])
    truths.append(truth)
    bar.update()
    case_raw, case_truth = _cases_frame(places, cases, seed, end)
    _write_csv(add(CASES), CASE_COLUMNS, _rows(case_raw, CASE_COLUMNS), ENCODING[CASES])
    truths.append(case_truth)
    bar.update()
    target_rows, target_truth = _targets_frame(places, targets, seed, end)
    _write_xlsx(add(TARGETS), "疏解台账", TARGET_COLUMNS, target_rows, when)
    truths.append(target_truth)
    bar.update()
    communities = dict(
        zip(geo.communities["code"].astype(str), geo.communities["name"].astype(str), strict=True)
    )
    features, project_truth = _projects_frame(places, communities, projects, seed, end)
    _write_geojson(add(PROJECTS), features)
    truths.append(project_truth)
    bar.update()
    all_truth = pd.concat(truths, ignore_index=True)
    _write_truth(add(TRUTH), all_truth)
    files = {}
    for file, group in all_truth.groupby("file", sort=False):
        files[str(file)] = {"rows": len(group), "defects": _defect_counts(group)}
    manifest = {
        "seed": seed,
        "end": end.isoformat(),
        "extract_time": when.isoformat(sep=" "),
        "update_time": np.datetime_as_string(update, unit="s").replace("T", " "),
        "requests": requests,
        "crs_default": CRS_DEFAULT,
        "messiness": asdict(mess),
        "files": files,
    }
    add(MANIFEST).write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    bar.update()
    bar.close()
    return paths
