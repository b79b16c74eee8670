"""Place points in their grid, community and street, using the admin units in the database.

The units placed into are every grid, the communities that have no grids yet and the
streets that have no communities yet. Admin import keeps them from overlapping (nesting,
gaps and overlaps are checked), so one index answers for all: a point in a grid gets all
three codes, a point in a community without grids its community and street, a point in a
street without communities only its street. Events therefore load as soon as the streets
are in; `fill_in` gives the events already loaded their finer codes when the finer levels
arrive (admin import calls it).

The index (etl.assign) is fitted to a memory budget (`DEFAULT_BUDGET_MB`, or
BLOCKDATA_PLACEMENT_MB). A built placer is kept in memory per process and, with a cache
directory, on disk as NumPy arrays (`.npz`, read with allow_pickle=False: a cache file
cannot run code), named and checked by the units' fingerprint. The disk cache is an
optimisation: a file that cannot be read is rebuilt, a directory that cannot be written is
skipped, each with a warning (logged, and handed to the caller for its report).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas
import numpy as np
import numpy.typing as npt
import shapely
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from etl.assign import Index, IndexBudgetError, build_index, index_from_arrays
from etl.geocode import COARSE_LEVELS
from layers import LAYERS, get_layer

log = logging.getLogger(__name__)

DEFAULT_BUDGET_MB = 256.0
CACHE_FORMAT = 1
STALE_PARTIAL_S = 600.0  # a .partial file older than this is a killed writer's: removed
FILL_BATCH = 100_000

_CACHE: dict[tuple[str, float], Placer] = {}
_TRIED: set[tuple[Path, str, float]] = set()  # (directory, fingerprint, budget) written

# Grids; communities without grids; streets without communities. `unit` is the index's code.
UNITS_SQL = """
select 'grid' as level, code as unit, code as grid_code, community_code, street_code, geom
  from grids
union all
select 'community', c.code, null, c.code, c.street_code, c.geom
  from communities c
 where not exists (select 1 from grids g where g.community_code = c.code)
union all
select 'street', s.code, null, null, s.code, s.geom
  from streets s
 where not exists (select 1 from communities c where c.street_code = s.code)
"""
PLACED = ("grid_code", "community_code", "street_code")


class PlacementError(RuntimeError):
    """No placer can be built: no admin units, or over the memory budget. Names the cause."""


@dataclass(frozen=True)
class Placement:
    grid_code: npt.NDArray[np.object_]
    community_code: npt.NDArray[np.object_]
    street_code: npt.NDArray[np.object_]
    near_boundary: npt.NDArray[np.bool_]
    inside: npt.NDArray[np.bool_]


class Placer:
    """An index over the district's finest admin units, with the district's bounds."""

    def __init__(self, units: geopandas.GeoDataFrame, budget_mb: float = DEFAULT_BUDGET_MB):
        if units.empty:
            raise PlacementError(
                "没有行政区划 no admin units loaded: run "
                "`blockdata admin import FILE --level street` first"
            )
        frame = units.rename(columns={"unit": "code"})
        try:
            index = build_index(frame, budget_mb)
        except IndexBudgetError as exc:
            raise PlacementError(str(exc)) from None
        except MemoryError:
            raise PlacementError(
                f"内存不足, 无法建立定位索引 out of memory building the placement index of "
                f"{len(units)} units (budget {budget_mb:g} MB): lower BLOCKDATA_PLACEMENT_MB "
                "or free memory"
            ) from None
        self._setup(
            index,
            tuple(float(v) for v in units.total_bounds),
            {c: units[c].to_numpy(dtype=object) for c in PLACED},
            budget_mb,
        )

    def _setup(
        self,
        index: Index,
        bounds: tuple[float, ...],
        codes: dict[str, npt.NDArray[np.object_]],
        budget_mb: float,
    ) -> None:
        self.index = index
        self.bounds = bounds
        self.budget_mb = budget_mb
        self._codes = codes

    @property
    def levels(self) -> set[str]:
        """The finest levels present: 'grid', 'community', 'street'."""
        grid, community = self._codes["grid_code"], self._codes["community_code"]
        out = set()
        if any(g is not None for g in grid):
            out.add("grid")
        if any(g is None and c is not None for g, c in zip(grid, community, strict=True)):
            out.add("community")
        if any(c is None for c in community):
            out.add("street")
        return out

    def place(self, lng: npt.NDArray[np.float64], lat: npt.NDArray[np.float64]) -> Placement:
        a = self.index.assign(lng, lat)
        inside = a.grid_index >= 0
        idx = np.where(inside, a.grid_index, 0)

        def pick(column: str) -> npt.NDArray[np.object_]:
            values: npt.NDArray[np.object_] = self._codes[column][idx]
            values[~inside] = None
            return values

        return Placement(
            grid_code=pick("grid_code"),
            community_code=pick("community_code"),
            street_code=pick("street_code"),
            near_boundary=a.near_boundary & inside,
            inside=inside,
        )

    def in_extent(
        self, lng: npt.NDArray[np.float64], lat: npt.NDArray[np.float64], margin: float
    ) -> npt.NDArray[np.bool_]:
        minx, miny, maxx, maxy = self.bounds
        return (
            (lng >= minx - margin)
            & (lng <= maxx + margin)
            & (lat >= miny - margin)
            & (lat <= maxy + margin)
        )

    def to_arrays(self, fingerprint: str) -> dict[str, npt.NDArray[Any]]:
        """The placer as plain arrays for an .npz file (no pickled objects)."""
        arrays = {f"index.{k}": v for k, v in self.index.to_arrays().items()}
        for c in PLACED:
            arrays[f"placer.{c}"] = np.array(
                ["" if v is None else str(v) for v in self._codes[c]], dtype=str
            )
        arrays["placer.bounds"] = np.array(self.bounds, dtype=np.float64)
        arrays["placer.meta"] = np.array([str(CACHE_FORMAT), fingerprint, repr(self.budget_mb)])
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.NDArray[Any]], fingerprint: str) -> Placer:
        """The placer `to_arrays` wrote for these units; ValueError for anything else."""
        meta = [str(v) for v in np.asarray(arrays["placer.meta"])]
        if meta[:2] != [str(CACHE_FORMAT), fingerprint]:
            raise ValueError(f"written for other units or format ({meta[:2]})")
        index = index_from_arrays(
            {k[len("index.") :]: v for k, v in arrays.items() if k.startswith("index.")}
        )
        codes = {}
        for c in PLACED:
            values = np.asarray(arrays[f"placer.{c}"]).astype(object)
            values[values == ""] = None
            codes[c] = values
        bounds = tuple(float(v) for v in np.asarray(arrays["placer.bounds"], dtype=np.float64))
        if len(bounds) != 4 or any(len(v) != len(index._rank) for v in codes.values()):
            raise ValueError("the placer's arrays do not fit together")
        self = cls.__new__(cls)
        self._setup(index, bounds, codes, float(meta[2]))
        return self


def units_fingerprint(conn: sa.Connection) -> str:
    """Changes whenever any unit placed into changes its level, codes or geometry."""
    value = conn.exec_driver_sql(
        "select md5(coalesce(string_agg(level || ':' || unit || ':' || coalesce(community_code, '')"
        " || ':' || coalesce(street_code, '') || ':' || md5(ST_AsBinary(geom)), ','"
        f" order by unit), '')) from ({UNITS_SQL}) u"
    ).scalar_one()
    return str(value)


def build_placer(conn: sa.Connection, budget_mb: float = DEFAULT_BUDGET_MB) -> Placer:
    """A Placer of the units now in the database (as `conn` sees them). PlacementError."""
    units = geopandas.read_postgis(
        sa.text(f"select * from ({UNITS_SQL}) u order by unit"), conn, geom_col="geom"
    )
    return Placer(units, budget_mb)


def placer_for(
    conn: sa.Connection,
    cache_dir: Path | None = None,
    *,
    budget_mb: float = DEFAULT_BUDGET_MB,
    warnings: list[str] | None = None,
) -> Placer:
    """The Placer of the units now in the database, built once per process and version.

    With `cache_dir`, a built Placer is also kept on disk (named by the units' fingerprint),
    so that each `blockdata etl run` process does not rebuild the index. A cache that cannot
    be read or written only costs time: the reason goes to the log and to `warnings`.
    """
    key = units_fingerprint(conn)
    placer = _CACHE.get((key, budget_mb))
    path = cache_dir / f"placer-{key}.npz" if cache_dir is not None else None
    built = False
    if placer is None and path is not None:
        placer = _read_cache(path, key, budget_mb, warnings)
    if placer is None:
        placer, built = build_placer(conn, budget_mb), True
    # One try per process: an unwritable cache is not retried (and re-warned) on every call.
    if path is not None and (path.parent, key, budget_mb) not in _TRIED:
        _TRIED.add((path.parent, key, budget_mb))
        if built or not path.is_file():
            _write_cache(path, key, placer, warnings)
    _CACHE.clear()
    _CACHE[(key, budget_mb)] = placer
    return placer


def _warn(warnings: list[str] | None, message: str) -> None:
    log.warning("%s", message)
    if warnings is not None:
        warnings.append(message)


def _read_cache(
    path: Path, key: str, budget_mb: float, warnings: list[str] | None
) -> Placer | None:
    """The cached placer, or None (absent, unreadable, corrupt, other budget: rebuilt)."""
    try:
        if not path.is_file():
            return None
        # Our own handle: np.load leaks the one it opens when the file is not a zip.
        with path.open("rb") as fh, np.load(fh, allow_pickle=False) as npz:
            placer = Placer.from_arrays({name: npz[name] for name in npz.files}, key)
        _self_check(placer)
    except Exception as exc:  # whatever is wrong with the file, the placer is rebuilt
        _warn(
            warnings,
            f"定位缓存无法读取, 已重建 placement cache {str(path)!r} unreadable, rebuilt: "
            f"{type(exc).__name__}: {exc}"[:500],
        )
        _discard(path)
        return None
    if placer.budget_mb != budget_mb:
        return None
    return placer


def _self_check(placer: Placer) -> None:
    """A point inside each of a sample of units is placed in that unit."""
    index = placer.index
    geoms = index._geoms
    step = max(1, len(geoms) // 64)
    sample = np.arange(0, len(geoms), step)
    points = shapely.point_on_surface(geoms[sample])
    got = index.assign(shapely.get_x(points), shapely.get_y(points)).grid_index
    if not np.array_equal(got, sample):
        raise ValueError("the cached index places its own units elsewhere")


def _write_cache(path: Path, key: str, placer: Placer, warnings: list[str] | None) -> None:
    """Write atomically (a unique .partial renamed into place); on failure leave nothing."""
    partial: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f"placer-{key}.", suffix=".partial")
        partial = Path(name)
        arrays: dict[str, Any] = placer.to_arrays(key)
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, allow_pickle=False, **arrays)
        os.replace(partial, path)
        partial = None
    except (OSError, ValueError, zipfile.LargeZipFile) as exc:
        _warn(
            warnings,
            f"定位缓存无法写入, 未缓存 placement cache not written to {str(path.parent)!r} "
            f"(the work goes on without it): {type(exc).__name__}: {exc}"[:500],
        )
        return
    finally:
        if partial is not None:
            _discard(partial)
    _sweep(path)


def _sweep(keep: Path) -> None:
    """Remove other placers (and pickles of old versions) and killed writers' .partial files."""
    now = time.time()
    for old in keep.parent.glob("placer-*"):
        if old == keep:
            continue
        try:
            if old.suffix == ".partial" and now - old.stat().st_mtime < STALE_PARTIAL_S:
                continue  # another process may be writing it
            old.unlink()
        except OSError:
            pass


def _discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


# --- events placed before their finer levels were imported ------------------------------


def event_layers() -> list[str]:
    """Layers whose rows carry street, community and grid codes."""
    return [
        layer.name
        for layer in LAYERS
        if layer.kind == "event" and all(c in layer.table.c for c in PLACED)
    ]


def representative_points(
    geoms: npt.NDArray[np.object_],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The point an event is placed by, as the ETL takes it: a line's midpoint, else a
    point on the surface."""
    lines = np.isin(
        shapely.get_type_id(geoms),
        [shapely.GeometryType.LINESTRING, shapely.GeometryType.MULTILINESTRING],
    )
    rep = np.empty(len(geoms), dtype=object)
    rep[lines] = shapely.line_interpolate_point(
        shapely.line_merge(geoms[lines]), 0.5, normalized=True
    )
    rep[~lines] = shapely.point_on_surface(geoms[~lines])
    return np.asarray(shapely.get_x(rep), dtype=float), np.asarray(shapely.get_y(rep), dtype=float)


def fill_in(conn: sa.Connection, placer: Placer) -> dict[str, int]:
    """Give events without a grid the finer codes the placer now knows; rows per layer.

    Only fills in: an event keeps its street (and its community when it has one), and one
    whose point the placer puts elsewhere or nowhere is left as it is, as is one placed by
    an address that named only a road, community or street (etl.geocode.COARSE_LEVELS: its
    point stands in for the area, its grid is unknown). `near_boundary` is
    judged again against the finer unit. The caller refreshes the aggregates.
    """
    filled: dict[str, int] = {}
    if placer.levels == {"street"}:
        return filled
    for name in event_layers():
        layer = get_layer(name)
        t = layer.table
        if layer.geometry_type == "POINT":
            where = [sa.func.ST_X(t.c.geom), sa.func.ST_Y(t.c.geom)]
        else:
            where = [sa.func.ST_AsBinary(t.c.geom, type_=sa.LargeBinary)]
        query = (
            sa.select(t.c.id, t.c.street_code, t.c.community_code, *where)
            .where(
                t.c.grid_code.is_(None),
                t.c.street_code.is_not(None),
                # placed by an address that named no house or place: its point is a stand-in
                sa.func.coalesce(t.c.geocode_quality, "").not_in(COARSE_LEVELS),
            )
            .order_by(t.c.id)
        )
        total = 0
        result = conn.execute(query).yield_per(FILL_BATCH)
        for rows in result.partitions():
            total += _fill_batch(conn, t, placer, rows, point=layer.geometry_type == "POINT")
        if total:
            filled[name] = total
    return filled


def _fill_batch(conn: sa.Connection, t: sa.Table, placer: Placer, rows: Any, *, point: bool) -> int:
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    street = np.array([r[1] for r in rows], dtype=object)
    community = np.array([r[2] for r in rows], dtype=object)
    if point:
        x = np.array([r[3] for r in rows], dtype=float)
        y = np.array([r[4] for r in rows], dtype=float)
    else:
        x, y = representative_points(shapely.from_wkb([r[3] for r in rows]))
    p = placer.place(x, y)
    had_community = np.array([c is not None for c in community], dtype=bool)
    finer = np.array([g is not None for g in p.grid_code], dtype=bool) | (
        ~had_community & np.array([c is not None for c in p.community_code], dtype=bool)
    )
    keep = (
        p.inside
        & (p.street_code == street)
        & (~had_community | (p.community_code == community))
        & finer
    )
    if not keep.any():
        return 0
    u = (
        sa.func.unnest(
            sa.bindparam("ids", ids[keep].tolist(), type_=pg.ARRAY(sa.BigInteger)),
            sa.bindparam("communities", p.community_code[keep].tolist(), type_=pg.ARRAY(sa.Text)),
            sa.bindparam("grids", p.grid_code[keep].tolist(), type_=pg.ARRAY(sa.Text)),
            sa.bindparam("near", p.near_boundary[keep].tolist(), type_=pg.ARRAY(sa.Boolean)),
        )
        .table_valued("id", "community_code", "grid_code", "near_boundary")
        .render_derived()
    )
    conn.execute(
        sa.update(t)
        .where(t.c.id == u.c.id)
        .values(
            community_code=u.c.community_code,
            grid_code=u.c.grid_code,
            near_boundary=u.c.near_boundary,
        )
    )
    return int(keep.sum())
