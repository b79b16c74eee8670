"""Address geocoding: a house number on a lane, else a landmark, to a WGS84 point.

Lanes carry a house-number range per side (`left_from`–`left_to`, `right_from`–`right_to`,
each stepping by 2). The i-th number of a side's n stands at fraction (i + 0.5) / n of the
lane's length, measured from its start — the numbering of the district's lane data (the demo
generator places its addresses the same way, `etl.demo.geography.house_number_point`).
An address with no house number on a known lane is looked up in the landmarks gazetteer
by name. PostGIS interpolates; the address enters SQL only as a bound parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa

from etl.address import normalize

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
