"""Place points in their grid, community and street, using the grids in the database."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import geopandas
import numpy as np
import numpy.typing as npt
import sqlalchemy as sa

from etl.assign import GridIndex

_CACHE: dict[str, Placer] = {}


@dataclass(frozen=True)
class Placement:
    grid_code: npt.NDArray[np.object_]
    community_code: npt.NDArray[np.object_]
    street_code: npt.NDArray[np.object_]
    near_boundary: npt.NDArray[np.bool_]
    inside: npt.NDArray[np.bool_]


class Placer:
    """A GridIndex over the district's grids, with the district's bounds."""

    def __init__(self, grids: geopandas.GeoDataFrame) -> None:
        if grids.empty:
            raise ValueError("没有网格 no grids loaded: run `blockdata admin import` first")
        self.index = GridIndex(grids)
        self.bounds = tuple(float(v) for v in grids.total_bounds)
        self._codes = {c: grids[c].to_numpy(dtype=object) for c in GRID_COLUMNS}

    def place(self, lng: npt.NDArray[np.float64], lat: npt.NDArray[np.float64]) -> Placement:
        a = self.index.assign(lng, lat)
        inside = a.grid_index >= 0
        idx = np.where(inside, a.grid_index, 0)

        def pick(column: str) -> npt.NDArray[np.object_]:
            values: npt.NDArray[np.object_] = self._codes[column][idx]
            values[~inside] = None
            return values

        return Placement(
            grid_code=pick("code"),
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


GRID_COLUMNS = ("code", "community_code", "street_code")


def grids_fingerprint(conn: sa.Connection) -> str:
    """Changes whenever any grid's code, parents or geometry changes."""
    value = conn.exec_driver_sql(
        "select md5(coalesce(string_agg(code || community_code || street_code"
        " || md5(ST_AsBinary(geom)), ',' order by code), '')) from grids"
    ).scalar_one()
    return str(value)


def placer_for(conn: sa.Connection, cache_dir: Path | None = None) -> Placer:
    """The Placer of the grids now in the database, built once per process and version.

    With `cache_dir`, a built Placer is also kept on disk (keyed by the grids' fingerprint),
    so that each `blockdata etl run` process does not rebuild the lattice.
    """
    key = grids_fingerprint(conn)
    placer = _CACHE.get(key)
    if placer is not None:
        return placer
    path = cache_dir / f"placer-{key}.pickle" if cache_dir else None
    if path is not None and path.exists():
        placer = pickle.loads(path.read_bytes())
    else:
        grids = geopandas.read_postgis(
            sa.text("select code, community_code, street_code, geom from grids order by code"),
            conn,
            geom_col="geom",
        )
        placer = Placer(grids)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            for old in path.parent.glob("placer-*.pickle"):
                old.unlink(missing_ok=True)
            partial = path.with_suffix(".partial")
            partial.write_bytes(pickle.dumps(placer, protocol=5))
            partial.replace(path)
    _CACHE.clear()
    _CACHE[key] = placer
    return placer
