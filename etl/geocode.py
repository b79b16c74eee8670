"""Address geocoding: the ETL's use of the gazetteer geocoder, and the intake's one address.

`geocode_addresses` places a run's address-only rows: the gazetteer is read once a run
(`RunGeocoder`: `etl.geocoder.Geocoder.load` on first use), the distinct addresses are
matched in one batch (`best_many`), and the results are spread back over the rows with
Arrow's `index_in` — no Python work per row, none per repeated address. A match keeps the
codes its level allows (`FINE_LEVELS` a grid, `COMMUNITY_LEVELS` a community, every placed
level a street); a failed or ambiguous match is not placed and says why (Chinese, from
the geocoder).

`geocode` below is the intake's (app/open311.py) geocoder of one address at a time:

Lanes carry a house-number range per side (`left_from`–`left_to`, `right_from`–`right_to`,
each stepping by 2). The i-th number of a side's n stands at fraction (i + 0.5) / n of the
lane's length, measured from its start — the numbering of the district's lane data (the demo
generator places its addresses the same way, `etl.demo.geography.house_number_point`).
An address with no house number on a known lane is looked up in the landmarks gazetteer
by name. PostGIS interpolates; the address enters SQL only as a bound parameter.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from etl.address import normalize

# The match levels (etl.geocoder.LEVELS) whose point is a house or a place: placed in
# their grid by the point, like a row with coordinates.
FINE_LEVELS = ("address_point", "interpolated", "landmark")
# The levels that know the community (a road only when the geocoder found it in one).
COMMUNITY_LEVELS = (*FINE_LEVELS, "road", "community")
# The levels whose point stands in for an area (a road's middle, a point in the community
# or street): never given a grid later (etl.place.fill_in).
COARSE_LEVELS = ("road", "community", "street")
PLACED = ("street_code", "community_code", "grid_code")


class _Match(Protocol):
    """What the ETL reads of an `etl.geocoder.Match`."""

    @property
    def level(self) -> str: ...
    @property
    def lng(self) -> float | None: ...
    @property
    def lat(self) -> float | None: ...
    @property
    def street_code(self) -> str | None: ...
    @property
    def community_code(self) -> str | None: ...
    @property
    def grid_code(self) -> str | None: ...
    @property
    def ambiguous(self) -> bool: ...
    @property
    def candidates(self) -> tuple[str, ...]: ...
    @property
    def message(self) -> str: ...


class BatchGeocoder(Protocol):
    def best_many(self, texts: Sequence[str]) -> Sequence[_Match]: ...


class RunGeocoder:
    """A run's geocoder: the gazetteer read once, on the first batch (a run without
    address-only rows never reads it); `seconds` the time spent loading and matching."""

    def __init__(self, conn: sa.Connection, load: Callable[[sa.Connection], Any] | None = None):
        self._conn = conn
        self._load = load
        self._geocoder: BatchGeocoder | None = None
        self.seconds = 0.0

    def best_many(self, texts: Sequence[str]) -> Sequence[_Match]:
        mark = time.monotonic()
        if self._geocoder is None:
            if self._load is None:
                from etl.geocoder import Geocoder

                self._geocoder = Geocoder.load(self._conn)
            else:
                self._geocoder = self._load(self._conn)
        try:
            return self._geocoder.best_many(texts)
        finally:
            self.seconds += time.monotonic() - mark


@dataclass(frozen=True)
class AddressPlacement:
    """Per row (NaN / None where a row was not geocoded or not placed)."""

    lng: npt.NDArray[np.float64]
    lat: npt.NDArray[np.float64]
    level: npt.NDArray[np.object_]  # the match level; None where not placed
    codes: dict[str, npt.NDArray[np.object_]]  # PLACED, as far as the level allows
    failed: npt.NDArray[np.bool_]
    ambiguous: npt.NDArray[np.bool_]
    message: npt.NDArray[np.object_]  # the geocoder's message for failed / ambiguous rows
    distinct: int  # distinct addresses matched


def geocode_addresses(
    geocoder: BatchGeocoder, addresses: pa.Array, rows: npt.NDArray[np.bool_]
) -> AddressPlacement:
    """Geocode the addresses of the `rows` (a mask), each distinct text once."""
    n = len(addresses)
    idx = np.flatnonzero(rows)
    some = addresses.take(pa.array(idx, pa.int64()))
    distinct = pc.unique(some)
    matches = list(geocoder.best_many(distinct.to_pylist())) if len(distinct) else []
    k = len(matches)
    level = np.array([m.level for m in matches], dtype=object)
    ambiguous = np.fromiter((m.ambiguous for m in matches), dtype=bool, count=k)
    placed = (level != "failed") & ~ambiguous if k else np.zeros(0, dtype=bool)
    lng = np.array([np.nan if m.lng is None else m.lng for m in matches], dtype=float)
    lat = np.array([np.nan if m.lat is None else m.lat for m in matches], dtype=float)
    placed &= ~np.isnan(lng) & ~np.isnan(lat)
    allowed = {
        "street_code": placed,
        "community_code": placed & np.isin(level, COMMUNITY_LEVELS),
        "grid_code": placed & np.isin(level, FINE_LEVELS),
    }
    codes = {name: _only(allowed[name], [getattr(m, name) for m in matches]) for name in PLACED}
    message = np.array([_message(m) for m in matches], dtype=object)
    # Each row's distinct address, then every per-address array taken by it.
    which = np.asarray(pc.index_in(some, value_set=distinct).to_numpy(zero_copy_only=False))

    def spread(values: npt.NDArray[Any], empty: Any, dtype: Any) -> npt.NDArray[Any]:
        out = np.full(n, empty, dtype=dtype)
        if k:
            out[idx] = values[which]
        return out

    return AddressPlacement(
        lng=spread(np.where(placed, lng, np.nan), np.nan, float),
        lat=spread(np.where(placed, lat, np.nan), np.nan, float),
        level=spread(_only(placed, list(level)), None, object),
        codes={name: spread(values, None, object) for name, values in codes.items()},
        failed=spread(~placed & ~ambiguous, False, bool),
        ambiguous=spread(ambiguous, False, bool),
        message=spread(message, None, object),
        distinct=k,
    )


def _only(keep: npt.NDArray[np.bool_], values: list[Any]) -> npt.NDArray[np.object_]:
    """The values where `keep`, None elsewhere."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    out[~keep] = None
    return out


def _message(match: _Match) -> str:
    text = match.message
    if match.ambiguous and match.candidates:
        text = f"{text} (候选街道 candidate streets: {'、'.join(match.candidates)})"
    return text


HOUSE_NUMBER = re.compile(r"([0-9]{1,5})号")
MIN_LANDMARK_NAME = 2  # shorter names would match inside unrelated addresses

# The lane whose name ends the text before the house number (the longest such name), on
# the side and piece whose range holds the number.
_LANE = sa.text(
    """
    with sides as (
        select code, name, geom, left_from as lo, left_to as hi from lanes
         where right(:before, char_length(name)) = name
        union all
        select code, name, geom, right_from, right_to from lanes
         where right(:before, char_length(name)) = name
    ), best as (
        select name,
               ST_LineInterpolatePoint(
                   geom, (((:n - lo) / 2) + 0.5)::float8 / ((hi - lo) / 2 + 1)) as point
          from sides
         where :n between lo and hi and (:n - lo) % 2 = 0
         order by char_length(name) desc, code
         limit 1
    )
    select name, ST_X(point) as lng, ST_Y(point) as lat from best
    """
)
_LANDMARK = sa.text(
    """
    select name, ST_X(geom) as lng, ST_Y(geom) as lat from landmarks
     where char_length(name) >= :shortest and strpos(:text, name) > 0
     order by char_length(name) desc, code
     limit 1
    """
)


@dataclass(frozen=True)
class Geocoded:
    lng: float
    lat: float
    quality: str  # geocode_quality: "address" (a house number) or "landmark"
    matched: str  # what was found: 砖塔胡同23号, or the landmark's name


def geocode(conn: sa.Connection, address: str) -> Geocoded | None:
    """The WGS84 point of an address, or None when neither a lane nor a landmark matches."""
    text = normalize(address)  # full-width folded, 二十六号 → 26号 (etl/address.py)
    for match in reversed(list(HOUSE_NUMBER.finditer(text))):
        number = int(match[1])
        row = conn.execute(_LANE, {"before": text[: match.start()], "n": number}).first()
        if row is not None:
            return Geocoded(float(row.lng), float(row.lat), "address", f"{row.name}{number}号")
    row = conn.execute(_LANDMARK, {"text": text, "shortest": MIN_LANDMARK_NAME}).first()
    if row is not None:
        return Geocoded(float(row.lng), float(row.lat), "landmark", str(row.name))
    return None
