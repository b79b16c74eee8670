"""The address geocoder: a Chinese address, as a call-taker writes it, to a place and a level.

`Geocoder.load(conn)` reads the gazetteer (layers/gazetteer.py) and the admin units (the
view `gazetteer_units`: the same in every zone, so that a commander's geocoder knows another
street's address is not its own) into memory once. Every house number of every road side is
placed in advance: the i-th of a side's n numbers at fraction (i + 0.5) / n of the piece's
length in metres (the district's lane numbering, and the demo's), SIDE_OFFSET_M beside the
line on its side (left of the line's direction for the left range); each placed point,
address point and landmark is located in its grid. A lookup is then the parser
(etl/address.py) and a few dictionary lookups on normalised names; no query per address.

Match levels, most precise first (`LEVELS`):
- address_point: the plate (门牌) is in the gazetteer;
- interpolated: the road's side holds the number: placed along the piece;
- road: the road is known, the number not given or out of its ranges: the piece's middle
  (and no point at all when the road runs through two streets and nothing says which:
  ambiguous, its candidates the streets);
- landmark: a landmark, POI or compound by its name or an alias;
- community / street: only an admin unit is named: a point inside it;
- failed: nothing known; the message says why.

A result carries codes only as far as its level allows: the grid only for a point that
stands on its place (address point, interpolated, landmark), the community only when the
point or the name gives it. Fuzzy name matching (rapidfuzz) runs only when no name matched
exactly, and its score stays below an exact match's.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from rapidfuzz import fuzz, process

from etl.address import PREFIXES, SHORT_FORMS, Address, normalize, parse_address
from layers.queries.labels import grid_label

LEVELS = ("address_point", "interpolated", "road", "landmark", "community", "street", "failed")
_RANK = {level: i for i, level in enumerate(LEVELS)}
_PLACED = ("address_point", "interpolated", "road", "landmark")

EXACT = 1.0
LOOSE_PREFIX = 0.9  # the road's name ends the text, what is before it is no known place
FUZZY = 0.8  # a fuzzy name's score is FUZZY x its similarity: always below an exact one
FUZZY_CUTOFF = 80.0  # rapidfuzz ratio (0..100) a fuzzy name must reach
NO_NUMBER = 0.9  # a road named without a number
OUT_OF_RANGE = 0.6  # the road is known, the number is on none of its sides
AMBIGUOUS = 0.5
CONFLICT = 0.8  # the plate lies in another street than the one the text names
MIN_NAME = 2  # shorter names would match inside unrelated text
SIDE_OFFSET_M = 10.0  # an interpolated plate stands this far beside the line, on its side
M_PER_DEGREE = 111_320.0  # metres in a degree of latitude
AREA_SUFFIXES = ("社区居委会", "居委会", "社区", "街道办事处", "街道")


def name_key(text: str) -> str:
    """A name as the geocoder compares it: normalised (full-width folded, counted numerals
    as digits, no spaces) and without the city and district prefixes."""
    return _strip(normalize(text))


_PREFIXES = re.compile("^(?:" + "|".join(sorted(PREFIXES, key=len, reverse=True)) + ")+")


def _strip(text: str) -> str:
    """A normalised text without the city and district prefixes (a text that is nothing but
    prefixes keeps its last: 北京市西城区 → 西城区)."""
    m = _PREFIXES.match(text)
    if m is None:
        return text
    if m.end() < len(text):
        return text[m.end() :]
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if text.startswith(prefix) and len(text) > len(prefix):
                text, changed = text[len(prefix) :], True
    return text


@dataclass(frozen=True)
class Match:
    query: str  # the text as given
    level: str  # one of LEVELS
    score: float  # 0..1; 1.0 = exact name and number; fuzzy < exact always
    lng: float | None  # WGS84; None for "failed" (and for an ambiguous road/street)
    lat: float | None
    street_code: str | None  # as far as the level allows
    community_code: str | None
    grid_code: str | None  # only for address_point / interpolated / landmark
    matched: str  # what was found, readable: "砖塔胡同23号", "府右街南社区"
    ambiguous: bool = False  # e.g. a road through two streets and no number
    candidates: tuple[str, ...] = ()  # street codes when ambiguous
    qualifiers: tuple[str, ...] = ()  # 附近, 对面 … from the parser
    message: str = ""  # Chinese, why failed / ambiguous

    def as_dict(self) -> dict[str, Any]:
        """The match as JSON-ready values (tuples as lists)."""
        return {
            "query": self.query,
            "level": self.level,
            "score": round(self.score, 4),
            "lng": self.lng,
            "lat": self.lat,
            "street_code": self.street_code,
            "community_code": self.community_code,
            "grid_code": self.grid_code,
            "matched": self.matched,
            "ambiguous": self.ambiguous,
            "candidates": list(self.candidates),
            "qualifiers": list(self.qualifiers),
            "message": self.message,
        }


@dataclass(frozen=True)
class _Point:
    """A placed point and the admin units it lies in (None outside every grid)."""

    lng: float
    lat: float
    grid: str | None
    community: str | None
    street: str | None


@dataclass(frozen=True)
class _Piece:
    name: str
    street: str | None
    length: float
    mid: tuple[float, float]


@dataclass(frozen=True)
class _Area:
    level: str  # street | community
    code: str
    street: str
    name: str  # the name a result shows (the official short form: 府右街南社区)
    point: tuple[float, float]


@dataclass(frozen=True)
class _Place:
    name: str
    point: _Point


@dataclass
class _Context:
    """What the text says besides the road: the street and community named, qualifiers."""

    streets: set[str] = field(default_factory=set)
    community: _Area | None = None
    street_area: _Area | None = None


class Geocoder:
    """The gazetteer in memory (see the module doc); build it with `Geocoder.load(conn)`."""

    def __init__(
        self,
        *,
        areas: dict[str, list[_Area]],
        pieces: list[_Piece],
        roads: dict[str, list[int]],
        numbers: dict[tuple[str, int], list[tuple[int, _Point]]],
        plates: dict[tuple[str, int, str | None, int | None], _Point],
        places: dict[str, list[_Place]],
    ) -> None:
        self.areas = areas
        self.pieces = pieces
        self.roads = roads
        self.numbers = numbers
        self.plates = plates
        self.places = places
        self._road_keys = list(roads)
        self._place_keys = list(places)
        self._longest_area = max((len(k) for k in areas), default=0)
        self._street_names = {
            a.code: a.name for bucket in areas.values() for a in bucket if a.level == "street"
        }

    # --- loading ---------------------------------------------------------------------

    @classmethod
    def load(cls, conn: sa.Connection) -> Geocoder:
        """Read the gazetteer and the admin layers through `conn` (any reader role)."""
        locator = _Locator(conn)
        areas = _load_areas(conn)
        pieces, roads, numbers = _load_roads(conn, locator)
        plates = _load_plates(conn, locator)
        places = _load_places(conn, locator)
        return cls(
            areas=areas, pieces=pieces, roads=roads, numbers=numbers, plates=plates, places=places
        )

    # --- the public interface ----------------------------------------------------------

    def geocode(self, text: str, limit: int = 5) -> list[Match]:
        """The best matches of `text`, best first (level, then score); never empty: a text
        nothing matches gives one "failed" match saying why."""
        found = self._ranked(text)
        seen: set[tuple[Any, ...]] = set()
        out = []
        for m in found:
            key = (m.level, m.matched, m.street_code, m.lng, m.lat)
            if key not in seen:
                seen.add(key)
                out.append(m)
        if not out:
            out = [self._failed(text, "未能识别地址：无已知的道路、门牌、地标或社区名称")]
        return out[: max(1, limit)]

    def best_many(self, texts: Sequence[str]) -> list[Match]:
        """The best match of each text; equal texts are computed once."""
        memo: dict[str, Match] = {}
        out = []
        for text in texts:
            m = memo.get(text)
            if m is None:
                found = self._ranked(text)
                m = memo[text] = found[0] if found else self.geocode(text, limit=1)[0]
            out.append(m)
        return out

    def _ranked(self, text: str) -> list[Match]:
        """Every match found, best first: a whole admin unit name, then by level and score."""
        if not isinstance(text, str) or not text.strip():
            return [self._failed(str(text or ""), "地址为空")]
        addr = parse_address(text)
        whole = self._whole_area(text, addr)
        found = self._candidates(text, addr, fuzzy=not whole)
        found.sort(key=lambda m: (_RANK[m.level], -m.score))
        return whole + found

    # --- matching ----------------------------------------------------------------------

    def _failed(self, text: str, message: str, qualifiers: tuple[str, ...] = ()) -> Match:
        return Match(
            text, "failed", 0.0, None, None, None, None, None, "", False, (), qualifiers, message
        )

    def _whole_area(self, text: str, addr: Address) -> list[Match]:
        """The admin units whose name (long or short) the whole text is: 府右街南社区居委会,
        府右街南社区, 府右街南. Read as the unit first, before a road or place of the same
        name (西交民巷 the community, then the lane): how people name their community."""
        out: list[Match] = []
        bucket = self.areas.get(_strip(addr.text), ())
        if not bucket:
            return out
        communities = [a for a in bucket if a.level == "community"]
        streets = sorted({a.street for a in communities})
        if len(streets) > 1:  # one name, communities of several streets
            out.append(
                Match(text, "community", EXACT * AMBIGUOUS, None, None, None, None, None,
                      communities[0].name, ambiguous=True, candidates=tuple(streets),
                      message=f"{len(streets)}个街道都有名为{communities[0].name}的社区，"
                      "请写明街道")
            )  # fmt: skip
            bucket = [a for a in bucket if a.level != "community"]
        out += [
            Match(text, a.level, EXACT, a.point[0], a.point[1], a.street,
                  a.code if a.level == "community" else None, None, a.name)
            for a in bucket
        ]  # fmt: skip
        return out

    def _candidates(self, text: str, addr: Address, fuzzy: bool = True) -> list[Match]:
        ctx = _Context()
        if addr.street:
            self._note_area(ctx, name_key(addr.street))
        if addr.community:
            self._note_area(ctx, addr.community)
        out: list[Match] = []
        rest = addr.road or ""
        # street / community names the parser does not know, in front (什刹海, 府右街南社区)
        splits = self._splits(rest) if rest else []
        if addr.number is not None and rest:
            # a place before the number (西单商场3号门): its exact name bars fuzzy roads
            before_number = [
                m
                for key in dict.fromkeys(r for _, r in splits)
                for m in self._place_matches(text, key, addr.qualifiers, EXACT * NO_NUMBER)
            ]
            out += self._roads_with_number(text, addr, splits, ctx, fuzzy and not before_number)
            # a compound or place written with its number (永安二条62号院)
            out += self._place_matches(text, self._body(addr), addr.qualifiers, EXACT)
            if not out:
                out += before_number
        elif rest:
            out += self._names_without_number(text, addr, splits, ctx, fuzzy)
        placed = any(m.level in _PLACED for m in out)
        if not placed:
            self._note_leading(ctx, splits)
        out += self._area_matches(text, addr, ctx)
        return out

    def _note_leading(self, ctx: _Context, splits: list[tuple[list[str], str]]) -> None:
        """The admin names in front of the text; when unknown text follows them, only the
        names of 3 characters or more (a 2-character community stem 前海 may well be the
        start of a road's name 前海西街)."""
        if not splits:
            return
        whole = splits[-1][1] == "" or splits[-1][1] in self.areas
        for (_, before), (keys, after) in itertools.pairwise(splits):
            if whole or len(before) - len(after) > MIN_NAME:
                self._note_area(ctx, keys[-1])
        if splits[-1][1] in self.areas:
            self._note_area(ctx, splits[-1][1])

    def _body(self, addr: Address) -> str:
        """The normalised text without prefixes and qualifiers."""
        body = _strip(addr.text)
        for q in reversed(addr.qualifiers):
            body = body.removesuffix(q)
        return body

    def _note_area(self, ctx: _Context, key: str) -> None:
        """Note the units named `key`: those in the streets already named, if any; a
        community name of several streets, none of them named, is left out (ambiguous)."""
        bucket = self.areas.get(key, ())
        if ctx.streets:
            bucket = [a for a in bucket if a.street in ctx.streets] or bucket
        if len({a.street for a in bucket if a.level == "community"}) > 1:
            bucket = [a for a in bucket if a.level != "community"]
        for area in bucket:
            self._note(ctx, area)

    def _note(self, ctx: _Context, area: _Area) -> None:
        ctx.streets.add(area.street)
        if area.level == "community":
            ctx.community = area
        else:
            ctx.street_area = area

    def _splits(self, text: str) -> list[tuple[list[str], str]]:
        """`text` and, one by one, the admin unit names at its start taken off (longest
        name first): [([], 什刹海前海西街), ([什刹海], 前海西街), ([什刹海, 前海], 西街)]."""
        out: list[tuple[list[str], str]] = [([], text)]
        found: list[str] = []
        while len(text) > MIN_NAME:
            for k in range(min(self._longest_area, len(text) - 1), MIN_NAME - 1, -1):
                if text[:k] in self.areas:
                    found = [*found, text[:k]]
                    text = text[k:]
                    out.append((found, text))
                    break
            else:
                break
        return out

    def _road_names(
        self, splits: list[tuple[list[str], str]], fuzzy: bool = True
    ) -> list[tuple[str, float, list[str]]]:
        """The road names the text may mean: (name, score, the admin names before it)."""
        for before, rest in splits:
            if rest in self.roads:
                return [(rest, EXACT, before)]
        rest = splits[0][1]
        for k in range(1, len(rest) - MIN_NAME + 1):
            tail = rest[k:]
            if tail in self.roads:
                known = self._splits(rest[:k] + "\0")[-1]
                exact = known[1] == "\0"
                return [(tail, EXACT if exact else LOOSE_PREFIX, known[0])]
        return self._fuzzy(splits, self._road_keys) if fuzzy else []

    def _fuzzy(
        self, splits: list[tuple[list[str], str]], keys: list[str]
    ) -> list[tuple[str, float, list[str]]]:
        """The name of `keys` nearest any split's rest (of 3 characters or more), if near."""
        best: tuple[str, float, list[str]] | None = None
        for before, rest in splits:
            if len(rest) <= MIN_NAME:
                continue
            got = process.extractOne(rest, keys, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF)
            if got is not None and (best is None or got[1] / 100.0 * FUZZY > best[1]):
                best = (got[0], FUZZY * got[1] / 100.0, before)
        return [] if best is None else [best]

    def _pieces(self, name: str, ctx: _Context, before: list[str]) -> tuple[list[int], bool]:
        """The pieces of road `name`, narrowed to the streets the text names when it names
        one the road runs through; (pieces, narrowed)."""
        pieces = self.roads[name]
        streets = ctx.streets
        if before:
            streets = streets | {a.street for key in before for a in self.areas[key]}
        if streets:
            inside = [i for i in pieces if self.pieces[i].street in streets]
            if inside:
                return inside, True
        return pieces, False

    def _roads_with_number(
        self,
        text: str,
        addr: Address,
        splits: list[tuple[list[str], str]],
        ctx: _Context,
        fuzzy: bool,
    ) -> list[Match]:
        assert addr.number is not None
        out = []
        house = addr.house_number or f"{addr.number}号"
        for name, score, before in self._road_names(splits, fuzzy):
            pieces, _ = self._pieces(name, ctx, before)
            named = ctx.streets | {a.street for key in before for a in self.areas[key]}
            plate = self.plates.get((name, addr.number, addr.prefix, addr.sub))
            numbered = self.numbers.get((name, addr.number), [])
            hits = [p for i, p in numbered if i in pieces] or [p for _, p in numbered]
            if plate is not None or hits:
                level, point = ("address_point", plate) if plate else ("interpolated", hits[0])
                found = self._point_match(
                    text, level, score, point, f"{name}{house}", addr.qualifiers
                )
                if named and point.street not in named:  # the text says another street
                    said = "、".join(sorted(self._street_names.get(c, c) for c in named))
                    where = self._street_names.get(point.street or "", "区外")
                    found = replace(
                        found,
                        score=found.score * CONFLICT,
                        message=f"{name}{house}在{where}，与地址所写的{said}不符",
                    )
                out.append(found)
                continue
            road = self._road_match(text, name, score * OUT_OF_RANGE, pieces, addr.qualifiers)
            out.append(replace(road, message=f"门牌号{house}不在{name}的门牌范围内，定位到道路"))
        return out

    def _point_match(
        self,
        text: str,
        level: str,
        score: float,
        p: _Point,
        matched: str,
        qualifiers: tuple[str, ...],
    ) -> Match:
        return Match(
            text,
            level,
            score,
            p.lng,
            p.lat,
            p.street,
            p.community,
            p.grid,
            matched,
            qualifiers=qualifiers,
        )

    def _road_match(
        self, text: str, name: str, score: float, pieces: list[int], qualifiers: tuple[str, ...]
    ) -> Match:
        streets = sorted({s for i in pieces if (s := self.pieces[i].street) is not None})
        if len(streets) > 1:
            return Match(
                text,
                "road",
                score * AMBIGUOUS,
                None,
                None,
                None,
                None,
                None,
                name,
                ambiguous=True,
                candidates=tuple(streets),
                qualifiers=qualifiers,
                message=f"{name}跨{len(streets)}个街道，未给门牌号或街道，无法确定位置",
            )
        longest = max(pieces, key=lambda i: self.pieces[i].length)
        lng, lat = self.pieces[longest].mid
        return Match(
            text,
            "road",
            score,
            lng,
            lat,
            streets[0] if streets else None,
            None,
            None,
            name,
            qualifiers=qualifiers,
        )

    def _names_without_number(
        self,
        text: str,
        addr: Address,
        splits: list[tuple[list[str], str]],
        ctx: _Context,
        fuzzy: bool,
    ) -> list[Match]:
        out: list[Match] = []
        q = addr.qualifiers
        for before, rest in splits:  # a road, exactly, after the admin names
            if rest in self.roads:
                pieces, _ = self._pieces(rest, ctx, before)
                out.append(self._road_match(text, rest, EXACT * NO_NUMBER, pieces, q))
                break
        for key in dict.fromkeys([self._body(addr), *(rest for _, rest in splits)]):
            out += self._place_matches(text, key, q, EXACT)
        if out or not fuzzy or splits[-1][1] in self.areas or len(splits[-1][1]) < MIN_NAME:
            return out  # an exact name, or only admin names: the area levels answer those
        # fuzzy: places and roads, only when no name matched exactly
        for name, score, _ in self._fuzzy(splits, self._place_keys):
            out += self._place_matches(text, name, q, score)
        for name, score, before in self._fuzzy(splits, self._road_keys):
            pieces, _ = self._pieces(name, ctx, before)
            out.append(self._road_match(text, name, score * NO_NUMBER, pieces, q))
        return out

    def _place_matches(
        self, text: str, key: str, qualifiers: tuple[str, ...], score: float
    ) -> list[Match]:
        return [
            self._point_match(text, "landmark", score, place.point, place.name, qualifiers)
            for place in self.places.get(key, ())
        ]

    def _area_matches(self, text: str, addr: Address, ctx: _Context) -> list[Match]:
        rest = addr.road or ""
        out = []
        if rest:
            self._note_area(ctx, rest)
        if ctx.community is not None:
            a = ctx.community
            out.append(
                Match(
                    text,
                    "community",
                    EXACT,
                    a.point[0],
                    a.point[1],
                    a.street,
                    a.code,
                    None,
                    a.name,
                    qualifiers=addr.qualifiers,
                )
            )
        if ctx.street_area is not None:
            a = ctx.street_area
            out.append(
                Match(
                    text,
                    "street",
                    EXACT,
                    a.point[0],
                    a.point[1],
                    a.street,
                    None,
                    None,
                    a.name,
                    qualifiers=addr.qualifiers,
                )
            )
        return out


# --- loading helpers ------------------------------------------------------------------


class _Locator:
    """Which grid (and so community and street) holds a point: the grids in an STRtree."""

    def __init__(self, conn: sa.Connection) -> None:
        rows = conn.execute(
            sa.text(
                "select code, community_code, street_code, ST_AsBinary(geom) "
                "from gazetteer_units where level = 'grid' order by code"
            )
        ).all()
        self.codes = [r[0] for r in rows]
        self.community = [r[1] for r in rows]
        self.street = [r[2] for r in rows]
        geoms = shapely.from_wkb([bytes(r[3]) for r in rows]) if rows else np.array([])
        self.tree = shapely.STRtree(geoms)

    def points(self, lng: np.ndarray, lat: np.ndarray) -> list[_Point]:
        n = len(lng)
        grid = np.full(n, -1, dtype=np.int64)
        if n and len(self.codes):
            pi, gi = self.tree.query(shapely.points(lng, lat), predicate="intersects")
            grid[pi[::-1]] = gi[::-1]  # the first grid of a point on a shared edge
        out = []
        for x, y, g in zip(lng.tolist(), lat.tolist(), grid.tolist(), strict=True):
            if g < 0:
                out.append(_Point(x, y, None, None, None))
            else:
                out.append(_Point(x, y, self.codes[g], self.community[g], self.street[g]))
        return out


def area_names(level: str, name: str) -> list[str]:
    """The names an admin unit goes by: a street 展览路街道 → 展览路街道, 展览路,
    展览路街道办事处; a community 府右街南社区居委会 / 府右街南社区 / 府右街南 → all three
    (and 府右街南居委会); the first is the name a result shows."""
    name = name_key(name)
    stem = name
    for suffix in AREA_SUFFIXES:
        if stem.endswith(suffix) and len(stem) - len(suffix) >= MIN_NAME:
            stem = stem[: -len(suffix)]
            break
    if level == "street":
        shown = f"{stem}街道" if name.endswith("街道") or name.endswith("街道办事处") else name
        stems = [stem] + [
            short + stem[len(full) :]
            for short, full in SHORT_FORMS.items()
            if stem.startswith(full)
        ]  # 广安门内 → 广内
        return list(
            dict.fromkeys([shown, *(v for s in stems for v in (s, f"{s}街道", f"{s}街道办事处"))])
        )
    shown = name.removesuffix("居委会") if name.endswith("社区居委会") else name
    return list(dict.fromkeys([shown, stem, f"{stem}社区", f"{stem}社区居委会", f"{stem}居委会"]))


def _load_areas(conn: sa.Connection) -> dict[str, list[_Area]]:
    """Street and community names → their units (the gazetteer's names and the layers')."""
    out: dict[str, list[_Area]] = {}
    rows = conn.execute(
        sa.text(
            "select level, code, street_code as street, name, ST_X(point) as x, "
            "ST_Y(point) as y from gazetteer_units where level <> 'grid' order by level, code"
        )
    ).all()
    units = {(r.level, r.code): r for r in rows}
    extra = conn.execute(
        sa.text("select level, code, name from gazetteer_names order by official desc, name")
    ).all()
    names: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        names.setdefault((r.level, r.code), []).extend(area_names(r.level, r.name))
    for level, code, name in extra:
        if (level, code) in units:
            names[(level, code)].extend(area_names(level, name))
    for (level, code), keys in names.items():
        r = units[(level, code)]
        area = _Area(level, code, r.street, keys[0], (float(r.x), float(r.y)))
        for key in dict.fromkeys(keys):
            if len(key) >= MIN_NAME:
                bucket = out.setdefault(key, [])
                if all(a.code != code for a in bucket):
                    bucket.append(area)
    # a name two units share (a community named like a street) stays with the finer one
    for bucket in out.values():
        bucket.sort(key=lambda a: 0 if a.level == "community" else 1)
    return out


def _side_numbers(lo: int | None, hi: int | None, parity: str | None) -> np.ndarray:
    if lo is None or hi is None or hi < lo or lo <= 0:
        return np.empty(0, dtype=np.int64)
    step = 1 if parity == "all" else 2
    return np.arange(lo, hi + 1, step, dtype=np.int64)


def _load_roads(
    conn: sa.Connection, locator: _Locator
) -> tuple[list[_Piece], dict[str, list[int]], dict[tuple[str, int], list[tuple[int, _Point]]]]:
    rows = conn.execute(
        sa.text(
            "select name, street_code, left_from, left_to, left_parity, right_from, right_to, "
            "right_parity, ST_AsBinary(geom) as wkb, ST_Length(geom::geography) as metres "
            "from gazetteer_roads order by id"
        )
    ).all()
    pieces: list[_Piece] = []
    roads: dict[str, list[int]] = {}
    lines = shapely.from_wkb([bytes(r.wkb) for r in rows]) if rows else np.array([])
    which: list[int] = []
    numbers: list[int] = []
    fractions: list[float] = []
    sides: list[float] = []  # +1 left of the line's direction, -1 right
    mids = shapely.get_coordinates(shapely.line_interpolate_point(lines, 0.5, normalized=True))
    for i, r in enumerate(rows):
        key = name_key(r.name)
        pieces.append(_Piece(key, r.street_code, float(r.metres), (mids[i, 0], mids[i, 1])))
        roads.setdefault(key, []).append(i)
        for lo, hi, parity, sign in (
            (r.left_from, r.left_to, r.left_parity, 1.0),
            (r.right_from, r.right_to, r.right_parity, -1.0),
        ):
            side = _side_numbers(lo, hi, parity)
            n = len(side)
            which.extend([i] * n)
            numbers.extend(side.tolist())
            fractions.extend(((np.arange(n) + 0.5) / max(n, 1)).tolist())
            sides.extend([sign] * n)
    table: dict[tuple[str, int], list[tuple[int, _Point]]] = {}
    if which:
        xy = _along(lines[np.asarray(which)], np.asarray(fractions), np.asarray(sides))
        placed = locator.points(xy[:, 0], xy[:, 1])
        for piece, number, point in zip(which, numbers, placed, strict=True):
            table.setdefault((pieces[piece].name, number), []).append((piece, point))
    return pieces, roads, table


def _along(lines: np.ndarray, fractions: np.ndarray, sides: np.ndarray) -> np.ndarray:
    """The points at `fractions` of the lines' lengths in metres (a local equirectangular
    frame: a degree of longitude is cos(latitude) of a degree of latitude), moved
    SIDE_OFFSET_M to their side (+1 left, -1 right) of the line: lng, lat rows."""
    if len(lines) == 0:
        return np.empty((0, 2))
    lat0 = float(np.mean(shapely.get_coordinates(lines)[:, 1]))
    kx = math.cos(math.radians(lat0))
    flat = shapely.transform(lines, lambda c: c * np.array([kx, 1.0]))
    length = shapely.length(flat)
    s = fractions * length
    at = shapely.get_coordinates(shapely.line_interpolate_point(flat, s))
    step = np.minimum(1e-5, length / 4)
    a = shapely.get_coordinates(shapely.line_interpolate_point(flat, np.maximum(s - step, 0)))
    b = shapely.get_coordinates(shapely.line_interpolate_point(flat, np.minimum(s + step, length)))
    d = b - a
    norm = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-12)
    offset = SIDE_OFFSET_M / M_PER_DEGREE * sides / norm
    at[:, 0] -= d[:, 1] * offset
    at[:, 1] += d[:, 0] * offset
    at[:, 0] /= kx
    return at


def _load_plates(
    conn: sa.Connection, locator: _Locator
) -> dict[tuple[str, int, str | None, int | None], _Point]:
    rows = conn.execute(
        sa.text(
            "select road, number, prefix, sub, ST_X(geom) as x, ST_Y(geom) as y "
            "from gazetteer_addresses order by id"
        )
    ).all()
    if not rows:
        return {}
    placed = locator.points(
        np.array([float(r.x) for r in rows]), np.array([float(r.y) for r in rows])
    )
    return {
        (name_key(r.road), int(r.number), r.prefix, r.sub): p
        for r, p in zip(rows, placed, strict=True)
    }


def _load_places(conn: sa.Connection, locator: _Locator) -> dict[str, list[_Place]]:
    rows = conn.execute(
        sa.text(
            "select name, aliases, ST_X(geom) as x, ST_Y(geom) as y "
            "from gazetteer_places order by source = 'build' desc, code"
        )
    ).all()
    out: dict[str, list[_Place]] = {}
    if not rows:
        return out
    placed = locator.points(
        np.array([float(r.x) for r in rows]), np.array([float(r.y) for r in rows])
    )
    for r, p in zip(rows, placed, strict=True):
        place = _Place(str(r.name), p)
        for key in dict.fromkeys(_place_keys(r.name, r.aliases or ())):
            if len(key) >= MIN_NAME:
                bucket = out.setdefault(key, [])
                if not any(_same_place(b, place) for b in bucket):
                    bucket.append(place)
    return out


def _same_place(a: _Place, b: _Place) -> bool:
    """Two rows of one place (a landmark and its POI, converted from another system)."""
    near = abs(a.point.lng - b.point.lng) + abs(a.point.lat - b.point.lat) < 1e-4
    return near and a.name == b.name


def _place_keys(name: str, aliases: Iterable[str]) -> list[str]:
    return [name_key(n) for n in (name, *aliases) if n]


# --- reverse geocoding ---------------------------------------------------------------

_REVERSE = sa.text(
    """
    with p as (select ST_SetSRID(ST_MakePoint(:lng, :lat), 4326) as g)
    select s.code as street_code, s.name as street_name,
           c.code as community_code, c.name as community_name,
           gr.code as grid_code, gr.grid_officer,
           l.code as lane_code, l.name as lane_name, l.lane_chief, l.metres
      from p
      join streets s on ST_Intersects(s.geom, p.g)
      left join lateral (
           select code, name from communities
            where ST_Intersects(geom, p.g) order by code limit 1) c on true
      left join lateral (
           select code, grid_officer from grids
            where ST_Intersects(geom, p.g) order by code limit 1) gr on true
      left join lateral (
           select code, name, lane_chief, ST_Distance(geom::geography, p.g::geography) as metres
             from lanes order by geom <-> p.g limit 1) l on true
     order by s.code
     limit 1
    """
)


def reverse(conn: sa.Connection, lng: float, lat: float) -> dict[str, Any] | None:
    """The street, community, grid and nearest lane (with its chief) of a WGS84 point; None
    outside the district's streets."""
    row = conn.execute(_REVERSE, {"lng": float(lng), "lat": float(lat)}).first()
    if row is None:
        return None
    return {
        "street": {"code": row.street_code, "name": row.street_name},
        "community": None
        if row.community_code is None
        else {"code": row.community_code, "name": row.community_name},
        "grid": None
        if row.grid_code is None
        else {
            "code": row.grid_code,
            "label": grid_label(row.community_name, row.grid_code),
            "grid_officer": row.grid_officer,
        },
        "lane": None
        if row.lane_code is None
        else {
            "code": row.lane_code,
            "name": row.lane_name,
            "lane_chief": row.lane_chief,
            "distance_m": round(float(row.metres), 1),
        },
    }
