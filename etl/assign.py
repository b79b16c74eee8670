"""Assign points to admin grids: a raster lookup with an exact fallback.

`GridIndex` rasterises the grid polygons onto a regular lattice of square cells (`cell_m`
metres on a side). A cell that no polygon edge touches lies wholly inside one grid (or
outside them all) and stores that grid; a cell that an edge touches stores a sentinel, and
only points falling in such cells are tested exactly, with the GEOS point-in-polygon test
that `geopandas.sjoin(predicate="intersects")` also uses. So the answer equals sjoin's:

- a point inside grid A, or on A's boundary only, goes to A; a point outside every grid,
  or with a NaN coordinate, to -1;
- a point that intersects several grids (on a shared edge or vertex, or where bad data
  overlaps) goes to the one with the smallest ``code`` (equal codes: the earlier row).

``near_boundary`` is True when the point's distance to the boundary of its grid (shared
edges and the district's outer edge alike) is less than `near_m` metres. Distances are
measured in a local equirectangular frame (`LocalFrame`): x = (lng - lon0) * kx,
y = (lat - lat0) * ky, with (lon0, lat0) the centre of the grids' bounding box,
ky = R * pi / 180, kx = ky * cos(lat0) and R = 6,371,008.8 m. Cells record whether all,
none or some of their points are near; points in undecided cells get a real distance to
the few edges that can matter, with shapely deciding the rare ties at the threshold.

Exactness does not rest on floating-point luck: a cell counts as touched when an edge
passes within a millionth of a cell of it, far more than the rounding of any coordinate
here, and every cell-wide decision carries a margin of the same kind.

Memory. `build_index` fits the index to a budget: it takes the finest lattice (from
`cell_m` up) whose build — lattice, per-cell lists and their temporaries, and the grids'
own geometries — the model below puts within the budget. Large areas get coarser cells
(a 16,000 km² city: tens of metres instead of 4 m), which sends more points to the exact
tests but gives the same answers. When even the coarsest lattice does not fit (grids
with millions of vertices), it falls back to `TreeIndex`, an STRtree over the grids that
tests every point exactly: the same answers again, at a fraction of the speed. When the
grids' geometries alone exceed the budget, `IndexBudgetError` says by how much.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import geopandas
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely

EARTH_RADIUS_M = 6_371_008.8
M_PER_DEG = EARTH_RADIUS_M * math.pi / 180.0
CODE_COLUMNS = ("code", "community_code", "street_code")

# Cell classes, the two low bits of a raster value; the bits above hold grid + 1.
_FAR = 0  # every point is >= near_m from its grid's boundary, or outside every grid
_NEAR = 1  # every point is < near_m from its grid's boundary
_CHECK = 2  # one grid; nearness needs a real distance
_STRADDLE = 3  # an edge touches the cell: point-in-polygon needs the real test
# A straddling cell whose inside points are all near stores this instead.
_STRADDLE_NEAR = (1 << 2) | _STRADDLE

_EPS = 1e-6  # margin around each cell, in cells
_SLACK = 1e-4  # margin on cell-wide distance decisions, in cells
_TIE_M = 1e-6  # a distance this close to near_m is left to shapely
_CHUNK = 1 << 16  # points per pass of `assign`: keeps temporaries in cache
_STRIP_BATCH = 1 << 15  # cell strips per pass when listing the cells near each edge

# The build's peak memory, measured with tracemalloc over the demo district and Voronoi
# tilings at 4-32 m cells (bench/bench_assign.py --memory), rounded up: per lattice cell
# (plus the raster's own item size), per (cell, edge) pair within reach of an edge, and the
# batches of `_cells_near_segments`. GEOS geometries (not seen by tracemalloc) are counted
# per vertex and per grid, for about four copies (the caller's, the private prepared one,
# the boundaries in metres, the tree).
_BYTES_PER_CELL = 8
_BYTES_PER_EDGE_CELL = 40
_BUILD_FIXED_BYTES = 24_000_000
_GEOS_BYTES_PER_VERTEX = 128
_GEOS_BYTES_PER_GEOMETRY = 2048
_CELL_STEP = 2 ** (1 / 8)  # coarsening step when the lattice does not fit: +9 % a step
_MIN_CELLS = 4096  # a coarser lattice than this does not help any more
INDEX_FORMAT = 1  # version of `to_arrays`' layout

IntArray = npt.NDArray[np.signedinteger]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
GeomArray = npt.NDArray[np.object_]


@dataclass(frozen=True)
class Assignment:
    """Where each point fell and whether it is near its grid's boundary.

    grid_index is the row position (iloc) in the grids frame, -1 outside every grid;
    near_boundary is False for points outside.
    """

    grid_index: npt.NDArray[np.int32]
    near_boundary: BoolArray


@dataclass(frozen=True)
class LocalFrame:
    """An equirectangular frame in metres around (lon0, lat0)."""

    lon0: float
    lat0: float

    @property
    def kx(self) -> float:
        return M_PER_DEG * math.cos(math.radians(self.lat0))

    @property
    def ky(self) -> float:
        return M_PER_DEG

    def to_metres(self, lng: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Project degrees to local metres."""
        return (lng - self.lon0) * self.kx, (lat - self.lat0) * self.ky

    def to_degrees(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Local metres back to degrees."""
        return x / self.kx + self.lon0, y / self.ky + self.lat0

    def geometries(self, geoms: GeomArray) -> GeomArray:
        """Geometries projected to local metres."""
        origin = np.array([self.lon0, self.lat0])
        scale = np.array([self.kx, self.ky])
        return shapely.transform(geoms, lambda xy: (xy - origin) * scale)


class IndexBudgetError(ValueError):
    """Not even the fallback index fits the memory budget; the message says what would."""


class _Coded:
    """The grids' codes and the tie rule (smallest code), shared by both indexes."""

    near_m: float
    frame: LocalFrame
    _codes: dict[str, npt.NDArray[np.object_]]
    _rank: npt.NDArray[np.int32]
    _by_rank: npt.NDArray[np.int32]

    def _set_codes(self, codes: dict[str, npt.NDArray[np.object_]]) -> None:
        self._codes = codes
        try:
            order = np.argsort(codes["code"], kind="stable")
        except TypeError as exc:
            raise ValueError(f"grid codes must be comparable with each other: {exc}") from None
        self._by_rank = order.astype(np.int32)
        self._rank = np.empty(len(order), dtype=np.int32)
        self._rank[order] = np.arange(len(order), dtype=np.int32)

    def codes(self, a: Assignment) -> pd.DataFrame:
        """grid_code, community_code and street_code of each point; None where outside."""
        inside = a.grid_index >= 0
        columns = {}
        for name, source in zip(
            ("grid_code", "community_code", "street_code"), CODE_COLUMNS, strict=True
        ):
            out = np.full(len(a.grid_index), None, dtype=object)
            out[inside] = self._codes[source][a.grid_index[inside]]
            columns[name] = out
        return pd.DataFrame(columns, dtype=object)  # object keeps None: pandas 3 would say NaN

    def _min_code(self, n: int, point: IntArray, poly: IntArray) -> npt.NDArray[np.int32]:
        """Per point, the hit grid with the smallest code; -1 when none."""
        best = np.full(n, len(self._rank), dtype=np.int32)
        np.minimum.at(best, point, self._rank[poly])
        found = best < len(self._rank)
        out = np.full(n, -1, dtype=np.int32)
        out[found] = self._by_rank[best[found]]
        return out

    def _code_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The codes as fixed-width text ('' for None): no pickled objects in a cache."""
        return {
            f"code.{c}": np.array(["" if v is None else str(v) for v in self._codes[c]], dtype=str)
            for c in CODE_COLUMNS
        }

    @staticmethod
    def _codes_from(arrays: Mapping[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[np.object_]]:
        out = {}
        for c in CODE_COLUMNS:
            values = np.asarray(arrays[f"code.{c}"]).astype(object)
            values[values == ""] = None
            out[c] = values
        return out

    def _share(self, geoms: GeomArray) -> None:
        """Private prepared copies of the geometries, their tree and boundaries in metres."""
        # Copies: preparing a geometry changes the object, and those are the caller's.
        self._geoms = shapely.from_wkb(shapely.to_wkb(geoms))
        shapely.prepare(self._geoms)
        self._tree = shapely.STRtree(self._geoms)
        self._boundaries_m = self.frame.geometries(shapely.boundary(self._geoms))


class GridIndex(_Coded):
    """Answers 'which grid is this point in' for millions of points at a time.

    `cell_m` is the lattice step in metres: smaller cells send fewer points to the exact
    tests but cost memory (capped by `max_raster_mb`) and build time. With cells whose
    diagonal is under `near_m`, points on touched cells need no distance at all.
    """

    def __init__(
        self,
        grids: geopandas.GeoDataFrame,
        cell_m: float = 4.0,
        near_m: float = 3.0,
        max_raster_mb: float = 100.0,
    ) -> None:
        if not cell_m > 0:
            raise ValueError(f"cell_m must be positive, got {cell_m!r}")
        if not near_m >= 0:
            raise ValueError(f"near_m must be >= 0, got {near_m!r}")
        geoms = _validated_geometries(grids)
        self.cell_m = float(cell_m)
        self.near_m = float(near_m)
        self._set_codes({c: grids[c].to_numpy(dtype=object) for c in CODE_COLUMNS})

        minx, miny, maxx, maxy = shapely.total_bounds(geoms)
        self.frame = LocalFrame(lon0=(minx + maxx) / 2, lat0=(miny + maxy) / 2)
        self._dx = self.cell_m / self.frame.kx
        self._dy = self.cell_m / self.frame.ky
        pad = 2  # cells of pure outside around the bounds; clamped points land there
        self._x0 = minx - pad * self._dx
        self._y0 = miny - pad * self._dy
        self._nx = math.ceil((maxx - minx) / self._dx) + 2 * pad + 1
        self._ny = math.ceil((maxy - miny) / self._dy) + 2 * pad + 1
        small = (len(geoms) + 1) * 4 + 3 <= np.iinfo(np.int16).max
        dtype = np.dtype(np.int16 if small else np.int32)
        nbytes = self._nx * self._ny * dtype.itemsize
        if nbytes > max_raster_mb * 1e6 or self._nx * self._ny >= 2**31:
            raise ValueError(
                f"a {cell_m} m lattice over these grids needs {nbytes / 1e6:.0f} MB "
                f"({self._nx} x {self._ny} cells), over max_raster_mb={max_raster_mb}; "
                "use a larger cell_m"
            )

        self._share(geoms)
        self._build(dtype)

    @classmethod
    def build(
        cls,
        grids: geopandas.GeoDataFrame,
        cell_m: float = 4.0,
        near_m: float = 3.0,
        max_raster_mb: float = 100.0,
    ) -> GridIndex:
        """Build an index; same as the constructor."""
        return cls(grids, cell_m=cell_m, near_m=near_m, max_raster_mb=max_raster_mb)

    @property
    def raster_nbytes(self) -> int:
        """Memory held by the lattice."""
        return int(self._raster.nbytes)

    @property
    def nbytes(self) -> int:
        """Memory held by the lattice and the per-cell lists of the exact tests."""
        parts = (
            self._raster,
            self._slot_words,
            self._slot_base,
            self._cand_start,
            self._cand_poly,
            self._seg_start,
            self._seg_ids,
            self._seg_m,
            self._seg_poly,
        )
        return int(sum(a.nbytes for a in parts))

    @property
    def shape(self) -> tuple[int, int]:
        """Lattice rows and columns."""
        return self._ny, self._nx

    @property
    def lattice(self) -> tuple[float, float, float, float]:
        """Origin and step in degrees (x0, y0, dx, dy): cell (i, j) starts at x0 + i * dx."""
        return self._x0, self._y0, self._dx, self._dy

    def assign(self, lng: npt.ArrayLike, lat: npt.ArrayLike) -> Assignment:
        """Place each (lng, lat) point, EPSG:4326 degrees, in its grid."""
        x = np.ascontiguousarray(lng, dtype=np.float64)
        y = np.ascontiguousarray(lat, dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape:
            raise ValueError(f"lng and lat must be 1-D of one length, got {x.shape}, {y.shape}")
        grid = np.empty(len(x), dtype=np.int32)
        near = np.empty(len(x), dtype=bool)
        for start in range(0, len(x), _CHUNK):
            end = start + _CHUNK
            self._assign_chunk(x[start:end], y[start:end], grid[start:end], near[start:end])
        return Assignment(grid_index=grid, near_boundary=near)

    def exact_fractions(self, lng: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[float, float]:
        """Share of points that `assign` tests exactly: (point-in-polygon, distance at most)."""
        x = np.ascontiguousarray(lng, dtype=np.float64)
        y = np.ascontiguousarray(lat, dtype=np.float64)
        if len(x) == 0:
            return 0.0, 0.0
        values = self._raster.take(self._flat(x, y))
        straddle = (values & 3) == _STRADDLE
        check = (values & 3) == _CHECK
        if self.near_m > 0:
            check |= straddle & (values != _STRADDLE_NEAR)
        return float(straddle.mean()), float(check.mean())

    _ARRAYS = (
        "_raster",
        "_slot_words",
        "_slot_base",
        "_cand_start",
        "_cand_poly",
        "_seg_start",
        "_seg_ids",
        "_seg_m",
        "_seg_poly",
    )

    def to_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Everything `from_arrays` needs, as plain NumPy arrays (no Python objects)."""
        out: dict[str, npt.NDArray[Any]] = {
            "kind": np.array("lattice"),
            "format": np.array(INDEX_FORMAT),
            "scalars": np.array(
                [
                    self.cell_m,
                    self.near_m,
                    self.frame.lon0,
                    self.frame.lat0,
                    self._x0,
                    self._y0,
                    self._dx,
                    self._dy,
                    self._nx,
                    self._ny,
                ],
                dtype=np.float64,
            ),
            **_wkb_arrays(self._geoms),
            **self._code_arrays(),
        }
        out.update({f"lattice.{name}": getattr(self, name) for name in self._ARRAYS})
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.NDArray[Any]]) -> GridIndex:
        """The index `to_arrays` described; ValueError when the arrays do not fit together."""
        self = cls.__new__(cls)
        cell_m, near_m, lon0, lat0, x0, y0, dx, dy, nx, ny = (
            float(v) for v in np.asarray(arrays["scalars"], dtype=np.float64)
        )
        self.cell_m, self.near_m = cell_m, near_m
        self.frame = LocalFrame(lon0=lon0, lat0=lat0)
        self._x0, self._y0, self._dx, self._dy = x0, y0, dx, dy
        self._nx, self._ny = int(nx), int(ny)
        self._set_codes(self._codes_from(arrays))
        for name in self._ARRAYS:
            setattr(self, name, np.asarray(arrays[f"lattice.{name}"]))
        geoms = _geoms_from(arrays)
        n = len(geoms)
        if (
            self._raster.shape != (self._nx * self._ny,)
            or len(self._rank) != n
            or (len(self._seg_poly) and int(self._seg_poly.max()) >= n)
            or (len(self._cand_poly) and int(self._cand_poly.max()) >= n)
            or int((self._raster.astype(np.int64) >> 2).max(initial=0)) > n
        ):
            raise ValueError("the lattice's arrays do not fit together")
        self._share(geoms)
        return self

    def _flat(self, x: FloatArray, y: FloatArray) -> npt.NDArray[np.signedinteger]:
        """Cell under each point; NaN and far-away points land in the outside pad."""
        u = x - self._x0
        u *= 1.0 / self._dx
        np.fmax(u, 0.0, out=u)  # fmax turns NaN into 0
        np.fmin(u, self._nx - 0.5, out=u)
        v = y - self._y0
        v *= 1.0 / self._dy
        np.fmax(v, 0.0, out=v)
        np.fmin(v, self._ny - 0.5, out=v)
        flat = v.astype(np.int32)
        flat *= self._nx
        flat += u.astype(np.int32)
        return flat

    def _slot(self, flat: npt.NDArray[np.signedinteger]) -> IntArray:
        """Position of each listed cell among all listed cells (rank over a bitmap)."""
        word = flat >> 6
        below = (np.uint64(1) << (flat & 63).astype(np.uint64)) - np.uint64(1)
        return self._slot_base[word] + np.bitwise_count(self._slot_words[word] & below)

    def _assign_chunk(
        self, x: FloatArray, y: FloatArray, grid: npt.NDArray[np.int32], near: BoolArray
    ) -> None:
        flat = self._flat(x, y)
        values = self._raster.take(flat)
        cls = values & 3
        np.right_shift(values, 2, out=grid, casting="unsafe")
        grid -= 1
        np.equal(cls, _NEAR, out=near)
        listed = np.flatnonzero(cls >= _CHECK)
        if len(listed) == 0:
            return
        slot = self._slot(flat[listed])
        value = values[listed]
        straddle = (value & 3) == _STRADDLE
        s = listed[straddle]
        if len(s):
            found = self._exact_grid(x[s], y[s], slot[straddle])
            grid[s] = found
            near[s] = (found >= 0) & (value[straddle] == _STRADDLE_NEAR)
        if self.near_m <= 0:
            return
        need = ~straddle | ((value != _STRADDLE_NEAR) & (grid[listed] >= 0))
        d = listed[need]
        if len(d):
            near[d] = self._exact_near(x[d], y[d], grid[d], slot[need])

    def _exact_grid(self, x: FloatArray, y: FloatArray, slot: IntArray) -> npt.NDArray[np.int32]:
        """Grid of each point by GEOS 'intersects' against its cell's candidates."""
        start = self._cand_start[slot]
        point, k = _spread(self._cand_start[slot + 1] - start)
        poly = self._cand_poly[start[point] + k]
        hit = shapely.intersects_xy(self._geoms[poly], x[point], y[point])
        return self._min_code(len(x), point[hit], poly[hit])

    def _exact_near(
        self, x: FloatArray, y: FloatArray, grid: npt.NDArray[np.int32], slot: IntArray
    ) -> BoolArray:
        """Distance to the grid's boundary < near_m, from the edges listed for the cell."""
        start = self._seg_start[slot]
        point, k = _spread(self._seg_start[slot + 1] - start)
        seg = self._seg_ids[start[point] + k]
        mine = self._seg_poly[seg] == grid[point]
        point, seg = point[mine], seg[mine]
        px, py = self.frame.to_metres(x, y)
        ends = self._seg_m[seg]
        d2 = _dist2(px[point], py[point], ends[:, 0], ends[:, 1], ends[:, 2], ends[:, 3])
        best = np.full(len(x), np.inf)
        np.minimum.at(best, point, d2)
        limit = self.near_m * self.near_m
        near = best < limit
        tie = np.flatnonzero(np.abs(best - limit) <= 2 * self.near_m * _TIE_M)
        if len(tie):
            pts = shapely.points(px[tie], py[tie])
            near[tie] = shapely.distance(self._boundaries_m[grid[tie]], pts) < self.near_m
        return near

    def _query_centres(self, cells: IntArray) -> tuple[IntArray, IntArray]:
        """(cell position, grid) for every grid that a cell centre intersects."""
        row, col = np.divmod(cells, self._nx)
        cx = self._x0 + (col + 0.5) * self._dx
        cy = self._y0 + (row + 0.5) * self._dy
        hit, poly = self._tree.query(shapely.points(cx, cy), predicate="intersects")
        return hit, poly

    def _build(self, dtype: np.dtype) -> None:
        """Fill the lattice and the per-cell lists that the exact tests read."""
        ny, nx, n_poly = self._ny, self._nx, len(self._rank)
        seg_xy, seg_poly = _segments(self._geoms)
        self._seg_poly = seg_poly.astype(np.int32)
        seg_u = (seg_xy - [self._x0, self._y0] * 2) / ([self._dx, self._dy] * 2)
        self._seg_m = (seg_xy - [self.frame.lon0, self.frame.lat0] * 2) * (
            [self.frame.kx, self.frame.ky] * 2
        )

        touched, touched_seg = _supercover(seg_u, nx)
        straddle = np.zeros(ny * nx, dtype=bool)
        straddle[touched] = True
        label = self._label_clean_cells(straddle)

        # Cells whose centre lies within reach of an edge: the only ones that may be near.
        half_diag = math.sqrt(0.5)
        reach = self.near_m / self.cell_m + half_diag + _SLACK
        cell, seg, dist = _cells_near_segments(seg_u, reach, nx, ny)
        classes = np.zeros(ny * nx, dtype=np.int8)
        own = (label[cell] == seg_poly[seg]) & ~straddle[cell]
        if self.near_m > 0 and own.any():
            own_cell, own_dist = _min_per_cell(cell[own], dist[own])
            d_m = own_dist * self.cell_m
            slack_m = (half_diag + _SLACK) * self.cell_m
            classes[own_cell] = np.where(
                d_m + slack_m < self.near_m,
                _NEAR,
                np.where(d_m - slack_m >= self.near_m, _FAR, _CHECK),
            )
        raster = label  # reused in place: (grid + 1) << 2 | class
        raster += 1
        raster <<= 2
        raster |= classes
        del label, classes

        # Touched cells: candidate grids are those whose boundary touches the cell, plus
        # any that contains the centre (a cell inside a grid touched by another's edge,
        # which only overlapping data can give).
        straddle_cells = np.flatnonzero(straddle)
        edge_keys = _sorted_unique(touched.astype(np.int64) * n_poly + seg_poly[touched_seg])
        hit, poly = self._query_centres(straddle_cells)
        centre_keys = straddle_cells[hit].astype(np.int64) * n_poly + poly
        inside_only = ~_contains(edge_keys, centre_keys)
        cand_keys = _sorted_unique(np.concatenate([edge_keys, centre_keys[inside_only]]))
        del touched, touched_seg, straddle
        shortcut = math.sqrt(2.0) * (1 + 4 * _EPS) + _SLACK < self.near_m / self.cell_m
        sentinel = np.full(len(straddle_cells), _STRADDLE_NEAR if shortcut else _STRADDLE)
        sentinel[hit[inside_only]] = _STRADDLE
        raster[straddle_cells] = sentinel
        self._raster = raster.astype(dtype)
        value = raster[cell]
        del raster

        # Per-cell lists, numbered by the rank of the cell among listed cells.
        is_listed = (self._raster & 3) >= _CHECK
        listed = np.flatnonzero(is_listed)
        self._slot_words, self._slot_base = _rank_bitmap(is_listed)
        cand_cell, self._cand_poly = np.divmod(cand_keys, n_poly)
        self._cand_poly = self._cand_poly.astype(np.int32)
        self._cand_start = np.searchsorted(cand_cell, np.append(listed, ny * nx)).astype(np.int32)
        keep = ((value & 3) == _CHECK) & ((value >> 2) - 1 == seg_poly[seg])
        keep |= (value == _STRADDLE) & (self.near_m > 0)
        order = np.argsort(cell[keep], kind="stable")
        self._seg_ids = seg[keep][order].astype(np.int32)
        ends = np.append(listed, ny * nx)
        self._seg_start = np.searchsorted(cell[keep][order], ends).astype(np.int32)

    def _label_clean_cells(self, straddle: BoolArray) -> npt.NDArray[np.int32]:
        """Grid of each untouched cell (-1 outside), found once per run of cells in a row.

        No edge comes near a run of adjacent untouched cells, so one centre decides it.
        """
        clean = ~straddle
        start = clean.copy()
        start[1:] &= straddle[:-1]
        start.reshape(self._ny, self._nx)[:, 0] = clean.reshape(self._ny, self._nx)[:, 0]
        first = np.flatnonzero(start)
        hit, poly = self._query_centres(first)
        run_grid = self._min_code(len(first), hit, poly)
        del clean, start
        # A run's grid repeats up to the next run's start, over touched cells too: the
        # caller overwrites those.
        return np.repeat(run_grid, np.diff(np.append(first, len(straddle))))


class TreeIndex(_Coded):
    """The fallback of `build_index`: an STRtree of the grids, every point tested exactly.

    Same answers as `GridIndex` (and sjoin): ties to the smallest code, `near_boundary`
    from the distance to the grid's boundary in the same local frame.
    """

    def __init__(self, grids: geopandas.GeoDataFrame, near_m: float = 3.0) -> None:
        if not near_m >= 0:
            raise ValueError(f"near_m must be >= 0, got {near_m!r}")
        geoms = _validated_geometries(grids)
        self.near_m = float(near_m)
        self._set_codes({c: grids[c].to_numpy(dtype=object) for c in CODE_COLUMNS})
        minx, miny, maxx, maxy = shapely.total_bounds(geoms)
        self.frame = LocalFrame(lon0=(minx + maxx) / 2, lat0=(miny + maxy) / 2)
        self._share(geoms)

    @property
    def nbytes(self) -> int:
        """Memory held besides the geometries (none: the tree lives in GEOS)."""
        return 0

    def assign(self, lng: npt.ArrayLike, lat: npt.ArrayLike) -> Assignment:
        """Place each (lng, lat) point, EPSG:4326 degrees, in its grid."""
        x = np.ascontiguousarray(lng, dtype=np.float64)
        y = np.ascontiguousarray(lat, dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape:
            raise ValueError(f"lng and lat must be 1-D of one length, got {x.shape}, {y.shape}")
        grid = np.full(len(x), -1, dtype=np.int32)
        near = np.zeros(len(x), dtype=bool)
        for start in range(0, len(x), _CHUNK):
            cx, cy = x[start : start + _CHUNK], y[start : start + _CHUNK]
            ok = np.flatnonzero(np.isfinite(cx) & np.isfinite(cy))
            point, poly = self._tree.query(shapely.points(cx[ok], cy[ok]), predicate="intersects")
            found = self._min_code(len(ok), point, poly)
            grid[start + ok] = found
            if self.near_m <= 0:
                continue
            hit = np.flatnonzero(found >= 0)
            px, py = self.frame.to_metres(cx[ok[hit]], cy[ok[hit]])
            d = shapely.distance(self._boundaries_m[found[hit]], shapely.points(px, py))
            near[start + ok[hit]] = d < self.near_m
        return Assignment(grid_index=grid, near_boundary=near)

    def to_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Everything `from_arrays` needs, as plain NumPy arrays (no Python objects)."""
        return {
            "kind": np.array("tree"),
            "format": np.array(INDEX_FORMAT),
            "scalars": np.array([self.near_m, self.frame.lon0, self.frame.lat0]),
            **_wkb_arrays(self._geoms),
            **self._code_arrays(),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.NDArray[Any]]) -> TreeIndex:
        self = cls.__new__(cls)
        near_m, lon0, lat0 = (float(v) for v in np.asarray(arrays["scalars"], dtype=np.float64))
        self.near_m = near_m
        self.frame = LocalFrame(lon0=lon0, lat0=lat0)
        self._set_codes(self._codes_from(arrays))
        geoms = _geoms_from(arrays)
        if len(geoms) != len(self._rank):
            raise ValueError("the tree's arrays do not fit together")
        self._share(geoms)
        return self


Index = GridIndex | TreeIndex


@dataclass(frozen=True)
class IndexPlan:
    """What `build_index` builds: a lattice of `cell_m` metres, or the tree (cell_m None)."""

    cell_m: float | None
    estimate_bytes: int
    budget_bytes: int


def plan_index(
    grids: geopandas.GeoDataFrame, budget_mb: float, cell_m: float = 4.0, near_m: float = 3.0
) -> IndexPlan:
    """The finest lattice from `cell_m` up whose build fits `budget_mb`, else the tree.

    Raises IndexBudgetError when the grids' geometries alone do not fit.
    """
    if not budget_mb > 0:
        raise ValueError(f"budget_mb must be positive, got {budget_mb!r}")
    if not cell_m > 0:
        raise ValueError(f"cell_m must be positive, got {cell_m!r}")
    geoms = _validated_geometries(grids)
    budget = int(budget_mb * 1e6)
    geos = _geos_bytes(geoms)
    if geos > budget:
        raise IndexBudgetError(
            f"网格几何本身需要约 {math.ceil(geos / 1e6)} MB, 超出内存预算 {budget_mb:g} MB; "
            f"the grids' geometries alone need about {math.ceil(geos / 1e6)} MB, over the "
            f"budget of {budget_mb:g} MB: raise the budget (BLOCKDATA_PLACEMENT_MB)"
        )
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    frame = LocalFrame(lon0=(minx + maxx) / 2, lat0=(miny + maxy) / 2)
    width_m, height_m = (maxx - minx) * frame.kx, (maxy - miny) * frame.ky
    seg, _ = _segments(geoms)
    seg_m = np.hypot((seg[:, 2] - seg[:, 0]) * frame.kx, (seg[:, 3] - seg[:, 1]) * frame.ky)
    units = (len(geoms) + 1) * 4 + 3
    itemsize = 2 if units <= np.iinfo(np.int16).max else 4

    def cells(c: float) -> int:
        return (math.ceil(width_m / c) + 5) * (math.ceil(height_m / c) + 5)

    def estimate(c: float) -> int:
        reach = near_m / c + math.sqrt(0.5) + _SLACK
        pairs = float(((seg_m / c + 2 * reach + 2) * (2 * reach + 2)).sum())
        return int(
            cells(c) * (_BYTES_PER_CELL + itemsize)
            + pairs * _BYTES_PER_EDGE_CELL
            + _BUILD_FIXED_BYTES
            + geos
        )

    c = float(cell_m)
    while cells(c) >= 2**31 or estimate(c) > budget:
        if cells(c) <= _MIN_CELLS:
            return IndexPlan(None, geos, budget)
        c *= _CELL_STEP
    return IndexPlan(c, estimate(c), budget)


def build_index(
    grids: geopandas.GeoDataFrame, budget_mb: float, cell_m: float = 4.0, near_m: float = 3.0
) -> Index:
    """A GridIndex with the finest lattice that fits `budget_mb`, else a TreeIndex."""
    plan = plan_index(grids, budget_mb, cell_m=cell_m, near_m=near_m)
    if plan.cell_m is None:
        return TreeIndex(grids, near_m=near_m)
    return GridIndex(grids, cell_m=plan.cell_m, near_m=near_m, max_raster_mb=budget_mb)


def index_from_arrays(arrays: Mapping[str, npt.NDArray[Any]]) -> Index:
    """The index that `to_arrays` wrote; ValueError for anything else."""
    if int(np.asarray(arrays["format"])) != INDEX_FORMAT:
        raise ValueError(f"index format {arrays['format']!r} is not {INDEX_FORMAT}")
    kind = str(np.asarray(arrays["kind"]))
    if kind == "lattice":
        return GridIndex.from_arrays(arrays)
    if kind == "tree":
        return TreeIndex.from_arrays(arrays)
    raise ValueError(f"unknown index kind {kind!r}")


def _geos_bytes(geoms: GeomArray) -> int:
    vertices = int(shapely.get_num_coordinates(geoms).sum())
    return vertices * _GEOS_BYTES_PER_VERTEX + len(geoms) * _GEOS_BYTES_PER_GEOMETRY


def _wkb_arrays(geoms: GeomArray) -> dict[str, npt.NDArray[Any]]:
    """Geometries as one byte array of WKB and the offsets of each."""
    wkb = shapely.to_wkb(geoms)
    sizes = np.fromiter((len(b) for b in wkb), dtype=np.int64, count=len(wkb))
    return {
        "wkb": np.frombuffer(b"".join(wkb), dtype=np.uint8),
        "wkb_offsets": np.concatenate([[0], np.cumsum(sizes)]),
    }


def _geoms_from(arrays: Mapping[str, npt.NDArray[Any]]) -> GeomArray:
    data = np.asarray(arrays["wkb"], dtype=np.uint8).tobytes()
    offsets = np.asarray(arrays["wkb_offsets"], dtype=np.int64)
    if len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(data):
        raise ValueError("the geometries' offsets do not fit their bytes")
    if np.any(np.diff(offsets) <= 0):
        raise ValueError("the geometries' offsets are not increasing")
    parts = [data[a:b] for a, b in itertools.pairwise(offsets.tolist())]
    geoms: GeomArray = shapely.from_wkb(parts)  # raises GEOSException on bad bytes
    polygonal = np.isin(shapely.get_type_id(geoms), [3, 6])
    if not polygonal.all():
        raise ValueError("a cached geometry is not a polygon")
    return geoms


def _validated_geometries(grids: geopandas.GeoDataFrame) -> GeomArray:
    """The grids' polygons after checking type, CRS, columns and geometries."""
    if not isinstance(grids, geopandas.GeoDataFrame):
        raise ValueError(f"grids must be a GeoDataFrame, got {type(grids).__name__}")
    if grids.crs is None:
        raise ValueError("grids has no CRS; expected EPSG:4326")
    if grids.crs != "EPSG:4326":
        raise ValueError(f"grids CRS is {grids.crs.to_string()}; expected EPSG:4326")
    missing = [c for c in CODE_COLUMNS if c not in grids.columns]
    if missing:
        raise ValueError(f"grids lacks columns {missing}")
    if len(grids) == 0:
        raise ValueError("grids is empty")
    if grids["code"].isna().any():
        raise ValueError(f"grids has {int(grids['code'].isna().sum())} rows without a code")
    geoms = np.asarray(grids.geometry.array, dtype=object)
    polygonal = np.isin(shapely.get_type_id(geoms), [3, 6]) & ~shapely.is_empty(geoms)
    if not polygonal.all():
        bad = int(np.flatnonzero(~polygonal)[0])
        raise ValueError(
            f"grids row {grids.index[bad]!r} (code {grids['code'].iloc[bad]!r}) is not a "
            f"non-empty Polygon or MultiPolygon: {_describe(geoms[bad])}"
        )
    return geoms


def _describe(geom: shapely.Geometry | None) -> str:
    if geom is None:
        return "missing"
    return f"empty {geom.geom_type}" if geom.is_empty else geom.geom_type


def _segments(geoms: GeomArray) -> tuple[FloatArray, IntArray]:
    """Every ring edge as (x0, y0, x1, y1), with the grid it belongs to."""
    parts, part_poly = shapely.get_parts(geoms, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, coord_ring = shapely.get_coordinates(rings, return_index=True)
    same = coord_ring[1:] == coord_ring[:-1]
    poly = part_poly[ring_part[coord_ring[:-1][same]]]
    return np.column_stack([coords[:-1][same], coords[1:][same]]), poly


def _spread(counts: IntArray) -> tuple[IntArray, IntArray]:
    """For items repeated counts[i] times: the item of each copy and its 0-based rank."""
    item = np.repeat(np.arange(len(counts)), counts)
    rank = np.arange(len(item)) - np.repeat(np.cumsum(counts) - counts, counts)
    return item, rank


def _major_minor(
    seg: FloatArray,
) -> tuple[BoolArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per segment: steep flag, major-axis range, minor start and slope (|slope| <= 1)."""
    ua, va, ub, vb = seg.T
    steep = np.abs(vb - va) > np.abs(ub - ua)
    ma, mb = np.where(steep, va, ua), np.where(steep, vb, ub)
    wa, wb = np.where(steep, ua, va), np.where(steep, ub, vb)
    dm = mb - ma
    slope = np.divide(wb - wa, dm, out=np.zeros_like(dm), where=dm != 0)
    return steep, np.minimum(ma, mb), np.maximum(ma, mb), ma, wa, slope


def _supercover(seg_u: FloatArray, nx: int) -> tuple[IntArray, IntArray]:
    """Flat index of every cell each segment passes within _EPS of, and that segment.

    Walk the segment's major axis one cell strip at a time; within a strip its minor
    coordinate spans the interval between the strip's clipped ends, well conditioned
    because the slope is at most 1.
    """
    steep, lo, hi, ma, wa, slope = _major_minor(seg_u)
    k0 = np.floor(lo - 2 * _EPS).astype(np.int64)
    k1 = np.floor(hi + 2 * _EPS).astype(np.int64)
    seg, step = _spread(k1 - k0 + 1)
    k = k0[seg] + step
    w1 = wa[seg] + (np.maximum(lo[seg], k - _EPS) - ma[seg]) * slope[seg]
    w2 = wa[seg] + (np.minimum(hi[seg], k + 1 + _EPS) - ma[seg]) * slope[seg]
    j0 = np.floor(np.minimum(w1, w2) - 2 * _EPS).astype(np.int64)
    j1 = np.floor(np.maximum(w1, w2) + 2 * _EPS).astype(np.int64)
    strip, step = _spread(j1 - j0 + 1)
    j = j0[strip] + step
    k, seg = k[strip], seg[strip]
    col = np.where(steep[seg], j, k)
    row = np.where(steep[seg], k, j)
    return row * nx + col, seg


def _cells_near_segments(
    seg_u: FloatArray, reach: float, nx: int, ny: int
) -> tuple[IntArray, IntArray, FloatArray]:
    """(cell, segment, distance in cells) for each cell centre within `reach` of a segment."""
    out: list[tuple[IntArray, IntArray, FloatArray]] = []
    strips = np.ceil(np.abs(seg_u[:, 2:] - seg_u[:, :2]).max(axis=1) + 2 * reach + 2)
    # Batches of about _STRIP_BATCH strips keep the temporaries small.
    marks = np.arange(_STRIP_BATCH, strips.sum(), _STRIP_BATCH)
    cuts = np.unique(np.searchsorted(np.cumsum(strips), marks) + 1).tolist()
    for first, last in itertools.pairwise([0, *[c for c in cuts if c < len(seg_u)], len(seg_u)]):
        batch = seg_u[first:last]
        steep, lo, hi, ma, wa, slope = _major_minor(batch)
        k0 = np.floor(lo - reach - 0.5).astype(np.int64)
        k1 = np.ceil(hi + reach - 0.5).astype(np.int64)
        seg, step = _spread(k1 - k0 + 1)
        k = k0[seg] + step
        w1 = wa[seg] + (np.clip(k + 0.5 - reach, lo[seg], hi[seg]) - ma[seg]) * slope[seg]
        w2 = wa[seg] + (np.clip(k + 0.5 + reach, lo[seg], hi[seg]) - ma[seg]) * slope[seg]
        j0 = np.floor(np.minimum(w1, w2) - reach - 0.5).astype(np.int64)
        j1 = np.ceil(np.maximum(w1, w2) + reach - 0.5).astype(np.int64)
        strip, step = _spread(j1 - j0 + 1)
        j = j0[strip] + step
        k, seg = k[strip], seg[strip]
        col = np.where(steep[seg], j, k)
        row = np.where(steep[seg], k, j)
        ua, va, ub, vb = batch[seg].T
        dist = np.sqrt(_dist2(col + 0.5, row + 0.5, ua, va, ub, vb))
        ok = (dist <= reach) & (col >= 0) & (col < nx) & (row >= 0) & (row < ny)
        flat = (row[ok] * nx + col[ok]).astype(np.int32)
        out.append((flat, (seg[ok] + first).astype(np.int32), dist[ok]))
    return tuple(np.concatenate(parts) for parts in zip(*out, strict=True))  # type: ignore[return-value]


def _dist2(
    px: FloatArray, py: FloatArray, ax: FloatArray, ay: FloatArray, bx: FloatArray, by: FloatArray
) -> FloatArray:
    """Squared distance from each point to its segment."""
    dx, dy = bx - ax, by - ay
    len2 = dx * dx + dy * dy
    t = np.divide((px - ax) * dx + (py - ay) * dy, len2, out=np.zeros_like(len2), where=len2 > 0)
    np.clip(t, 0.0, 1.0, out=t)
    ex, ey = ax + t * dx - px, ay + t * dy - py
    return ex * ex + ey * ey


def _min_per_cell(cell: IntArray, value: FloatArray) -> tuple[IntArray, FloatArray]:
    """Distinct cells and the smallest value of each."""
    order = np.argsort(cell, kind="stable")
    cell, value = cell[order], value[order]
    first = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
    return cell[first], np.minimum.reduceat(value, first)


def _sorted_unique(keys: IntArray) -> IntArray:
    keys = np.sort(keys)
    return keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys


def _contains(sorted_keys: IntArray, keys: IntArray) -> BoolArray:
    """Whether each key is in the sorted array."""
    pos = np.minimum(np.searchsorted(sorted_keys, keys), max(len(sorted_keys) - 1, 0))
    return sorted_keys[pos] == keys if len(sorted_keys) else np.zeros(len(keys), dtype=bool)


def _rank_bitmap(mask: BoolArray) -> tuple[npt.NDArray[np.uint64], IntArray]:
    """Bit words of a mask and the count of set bits before each word, for `_slot`."""
    if sys.byteorder != "little":
        raise RuntimeError("the slot bitmap assumes a little-endian machine")
    padded = np.zeros(-(-len(mask) // 64) * 64, dtype=bool)
    padded[: len(mask)] = mask
    words = np.packbits(padded, bitorder="little").view(np.uint64)
    counts = np.bitwise_count(words).astype(np.int32)
    return words, np.cumsum(counts, dtype=np.int32) - counts
