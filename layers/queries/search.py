"""Search: a street, community or grid by name or code (a grid by its label, "百万庄社区
第4网格", too), a lane, a landmark, a case number or a work-order (source) number.

Each result is a place to fly to: `{"kind", "label", "code", "street_code", "lng", "lat",
"bbox"}` (WGS84; `bbox` [minx, miny, maxx, maxy] for a shape, None for a point). The caller
adds the geocoder's addresses (etl.geocoder) when the query is an address.

Who sees what: the caller reads through row-level security (migration 0004), so a
commander's search finds its own street's places and records only. Records are searched only
for a caller who may read them (`Reach`): work-order numbers for the readers of
service_requests, case numbers for the roles that work cases.

Speed: the place tables are small (a district has a few hundred communities, a few thousand
grids and lanes): a substring match (LIKE) reads each in a millisecond or two. Work-order and
case numbers are matched on a prefix through their text_pattern_ops indexes (migration 0026,
as a range of leakproof operators: see `_prefixed`); the fuzzy match (rapidfuzz over the
caller's place names) is the caller's last resort.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from rapidfuzz import fuzz, process

from layers import get_layer
from layers.cases.tables import cases
from layers.queries.labels import GRID_SERIAL_DIGITS, grid_label_sql
from layers.registry import landmarks

KINDS = ("address", "street", "community", "grid", "lane", "landmark", "case", "request")
MAX_QUERY = 100
COORDINATE_DECIMALS = 6
FUZZY_CUTOFF = 70.0  # rapidfuzz WRatio, 0..100: below it a name is no match
# Prefixes a caller may write before a place's name: the city and the district.
PREFIXES = ("北京市", "北京", "西城区")
# The official names of communities end in 社区居委会 or 居委会; the layers hold "…社区".
SUFFIXES = ("社区居委会", "居委会", "社区")
GRID_LABEL = re.compile(r"^(?P<community>.*?)\s*第\s*(?P<serial>[0-9]{1,3})\s*网格$")
GRID_CODE_LABEL = re.compile(r"^网格\s*(?P<code>[0-9]{15})$")
DIGITS = re.compile(r"[0-9]+")
CASE_ID = re.compile(r"^(?:#|案件\s*#?)\s*(?P<id>[0-9]{1,12})$")
# A work-order or case number: letters then digits (GD20261118000123, ZF2026-000123).
RECORD_NUMBER = re.compile(r"^[A-Za-z]{1,6}[0-9][0-9A-Za-z-]{2,40}$")
MAX_CASE_ID = 2**63 - 1
NAMED = {"street": "streets", "community": "communities", "lane": "lanes"}  # and landmarks
# A house number (11号, 二十六号, 甲12号): the query is an address for the geocoder.
HOUSE_NUMBER = re.compile(r"[0-9一二三四五六七八九十百零〇两]+\s*号")


@dataclass(frozen=True)
class Reach:
    """Which records the caller may find: requests (reads service_requests), cases (works
    cases)."""

    requests: bool = False
    cases: bool = False


def normalise(text: str) -> str:
    """Full-width to half-width (NFKC), spaces collapsed, the city's and district's prefix
    dropped: "北京市西城区 百万庄社区" → "百万庄社区"."""
    out = " ".join(unicodedata.normalize("NFKC", text).split())
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if out.startswith(prefix) and len(out) > len(prefix):
                out = out[len(prefix) :].lstrip()
                changed = True
    return out


def _stem(name: str) -> str:
    """A community's name without 社区居委会 / 居委会 / 社区: what its short form is."""
    for suffix in SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _like(text: str) -> str:
    """`text` as a LIKE pattern's literal part (its wildcards and escapes escaped)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), COORDINATE_DECIMALS)


def _place(row: Any, kind: str) -> dict[str, Any]:
    m = row._mapping
    bbox = None
    if "xmin" in m and m["xmin"] is not None:
        bbox = [_round(m["xmin"]), _round(m["ymin"]), _round(m["xmax"]), _round(m["ymax"])]
    out = {
        "kind": kind,
        "label": m["label"],
        "code": m["code"],
        "street_code": m["street_code"],
        "lng": _round(m["lng"]),
        "lat": _round(m["lat"]),
        "bbox": bbox,
    }
    if "case_id" in m:
        out["case_id"] = m["case_id"]
    return out


def _place_columns(geom: Any, point: Any) -> list[sa.Label[Any]]:
    """`point` (where to fly) and the bounding box of `geom`."""
    box = sa.func.Box2D(geom)
    return [
        sa.func.ST_X(point).label("lng"),
        sa.func.ST_Y(point).label("lat"),
        sa.func.ST_XMin(box).label("xmin"),
        sa.func.ST_YMin(box).label("ymin"),
        sa.func.ST_XMax(box).label("xmax"),
        sa.func.ST_YMax(box).label("ymax"),
    ]


def _shape_columns(geom: Any) -> list[sa.Label[Any]]:
    """A point inside the shape and the shape's bounding box."""
    return _place_columns(geom, sa.func.ST_PointOnSurface(geom))


def _line_columns(geom: Any) -> list[sa.Label[Any]]:
    """A lane's middle and its bounding box."""
    first = sa.func.ST_GeometryN(sa.func.ST_Multi(geom), 1)
    return _place_columns(geom, sa.func.ST_LineInterpolatePoint(first, 0.5))


def _point_columns(geom: Any) -> list[sa.Label[Any]]:
    return [sa.func.ST_X(geom).label("lng"), sa.func.ST_Y(geom).label("lat")]


def _rank(name: sa.ColumnElement[str], text: str) -> sa.ColumnElement[int]:
    """0 for the exact name, 1 for a prefix, 2 for a substring."""
    return sa.case((name == text, 0), (name.startswith(text, autoescape=True), 1), else_=2)


# --- the kinds of place ---------------------------------------------------------------------


def _table(kind: str) -> sa.Table:
    return landmarks if kind == "landmark" else get_layer(NAMED[kind]).table


def _named(
    conn: sa.Connection, kind: str, where: Any, order: Any, limit: int
) -> list[dict[str, Any]]:
    """Streets, communities, lanes or landmarks (`kind`) where `where(table)`, in
    `order(table)` then code order, at most `limit`."""
    t = _table(kind)
    street = t.c.code if kind == "street" else t.c.street_code
    columns = {"lane": _line_columns, "landmark": _point_columns}.get(kind, _shape_columns)
    query = (
        sa.select(t.c.name.label("label"), t.c.code, street.label("street_code"))
        .add_columns(*columns(t.c.geom))
        .where(where(t))
        .order_by(*order(t), t.c.code)
        .limit(limit)
    )
    return [_place(row, kind) for row in conn.execute(query)]


def _grids(conn: sa.Connection, where: Any, limit: int) -> list[dict[str, Any]]:
    g = get_layer("grids").table
    c = get_layer("communities").table
    query = (
        sa.select(
            grid_label_sql(c.c.name, g.c.code).label("label"),
            g.c.code,
            g.c.street_code,
            *_shape_columns(g.c.geom),
        )
        .select_from(g.outerjoin(c, c.c.code == g.c.community_code))
        .where(where(g, c))
        .order_by(g.c.code)
        .limit(limit)
    )
    return [_place(row, "grid") for row in conn.execute(query)]


def _by_name(conn: sa.Connection, text: str, limit: int) -> list[dict[str, Any]]:
    """Streets, communities (by their name or its short form), lanes and landmarks whose name
    holds `text`: exact names first, then prefixes, then the rest, shortest first."""
    stem = _stem(text)

    def named(t: sa.Table) -> Any:
        return t.c.name.contains(stem, autoescape=True)

    def order(t: sa.Table) -> list[Any]:
        return [_rank(t.c.name, text), _rank(t.c.name, stem), sa.func.length(t.c.name)]

    def holds(t: sa.Table) -> Any:
        return t.c.name.contains(text, autoescape=True)

    def ranked(t: sa.Table) -> list[Any]:
        return [_rank(t.c.name, text), sa.func.length(t.c.name)]

    out = _named(conn, "street", named, order, limit)
    out += _named(conn, "community", named, order, limit)
    out += _named(conn, "lane", holds, ranked, limit)
    out += _named(conn, "landmark", holds, ranked, limit)

    def closeness(place: dict[str, Any]) -> tuple[int, int]:
        name = place["label"]
        exact = name in (text, stem) or _stem(name) == stem
        prefix = name.startswith(text) or name.startswith(stem)
        return (0 if exact else 1 if prefix else 2, len(name))

    return sorted(out, key=closeness)


def _by_label(conn: sa.Connection, text: str, limit: int) -> list[dict[str, Any]]:
    """A grid by its label: "百万庄社区 第4网格", "百万庄 第4网格", "网格 110102001004003"."""
    coded = GRID_CODE_LABEL.match(text)
    if coded:
        return _grids(conn, lambda g, c: g.c.code == coded["code"], limit)
    m = GRID_LABEL.match(text)
    if not m:
        return []
    community = _stem(m["community"].strip())
    serial = int(m["serial"])

    def where(g: sa.Table, c: sa.Table) -> Any:
        number = sa.cast(sa.func.right(g.c.code, GRID_SERIAL_DIGITS), sa.Integer)
        condition = number == serial
        if community:
            condition = condition & c.c.name.contains(community, autoescape=True)
        return condition

    return _grids(conn, where, limit)


def _by_code(conn: sa.Connection, digits: str, limit: int) -> list[dict[str, Any]]:
    """Streets, communities and grids whose code starts with `digits` (a whole code first)."""

    def coded(t: sa.Table) -> Any:
        return t.c.code.startswith(digits, autoescape=True)

    def order(t: sa.Table) -> list[Any]:
        return [sa.func.length(t.c.code)]

    out: list[dict[str, Any]] = []
    if len(digits) <= 9:
        out += _named(conn, "street", coded, order, limit)
    if len(digits) <= 12:
        out += _named(conn, "community", coded, order, limit)
    out += _grids(conn, lambda g, c: g.c.code.startswith(digits, autoescape=True), limit)
    return out


def _case_by_id(conn: sa.Connection, case_id: int) -> list[dict[str, Any]]:
    """A work case by its number (#123), placed where its request or enforcement case is."""
    if case_id > MAX_CASE_ID:
        return []
    r = get_layer("service_requests").table
    e = get_layer("enforcement_cases").table
    geom = sa.func.coalesce(r.c.geom, e.c.geom)
    query = (
        sa.select(
            (
                "案件 #"
                + sa.cast(cases.c.id, sa.Text)
                + " "
                + sa.func.coalesce(cases.c.category, "")
            ).label("label"),
            sa.cast(cases.c.id, sa.Text).label("code"),
            cases.c.street_code,
            cases.c.id.label("case_id"),
            *_point_columns(geom),
        )
        .select_from(
            cases.outerjoin(r, r.c.id == cases.c.service_request_id).outerjoin(
                e, e.c.id == cases.c.enforcement_case_id
            )
        )
        .where(cases.c.id == case_id)
    )
    return [_place(row, "case") for row in conn.execute(query)]


def _prefixed(column: sa.ColumnElement[str], prefix: str) -> sa.ColumnElement[bool]:
    """`column` starts with `prefix`, as a range of the text_pattern_ops index (migration
    0026): its operators are leakproof, so row-level security keeps the index (LIKE's are
    not, and a LIKE under a policy reads every row). The numbers are ASCII: every value
    that starts with `prefix` sorts below `prefix` + U+FFFF byte by byte."""
    above = column.op("~>=~", is_comparison=True)(prefix)
    return above & column.op("~<~", is_comparison=True)(prefix + "\uffff")


def _records(conn: sa.Connection, number: str, limit: int, reach: Reach) -> list[dict[str, Any]]:
    """Requests by work-order number, enforcement cases by case number: exact or prefix."""
    if not reach.requests:
        return []
    upper = number.upper()
    r = get_layer("service_requests").table
    e = get_layer("enforcement_cases").table
    return [
        *_numbered(
            conn,
            "request",
            r.c.source_id,
            r.c.category,
            cases.c.service_request_id,
            upper,
            limit,
            reach,
        ),
        *_numbered(
            conn,
            "case",
            e.c.case_no,
            e.c.case_type,
            cases.c.enforcement_case_id,
            upper,
            limit,
            reach,
        ),
    ]


def _numbered(
    conn: sa.Connection,
    kind: str,
    number: sa.ColumnElement[str],
    what: sa.ColumnElement[str],
    case_link: sa.ColumnElement[int],
    prefix: str,
    limit: int,
    reach: Reach,
) -> list[dict[str, Any]]:
    """The records of `number`'s table whose number starts with `prefix`, each with its work
    case (for a caller who works cases)."""
    t = number.table
    case_id = (
        sa.select(cases.c.id).where(case_link == t.c.id).scalar_subquery()
        if reach.cases
        else sa.null()
    )
    title = "工单 " if kind == "request" else "执法案件 "
    query = (
        sa.select(
            (title + number + " " + sa.func.coalesce(what, "")).label("label"),
            number.label("code"),
            t.c.street_code,
            case_id.label("case_id"),
            *_point_columns(t.c.geom),
        )
        .where(_prefixed(number, prefix))
        .order_by(number)
        .limit(limit)
    )
    return [_place(row, kind) for row in conn.execute(query)]


def _names(conn: sa.Connection) -> list[tuple[str, str, str]]:
    """Every place name the caller may see: (name, kind, code)."""
    s = get_layer("streets").table
    c = get_layer("communities").table
    lane = get_layer("lanes").table
    query = sa.union_all(
        sa.select(s.c.name, sa.literal("street"), s.c.code),
        sa.select(c.c.name, sa.literal("community"), c.c.code),
        sa.select(lane.c.name, sa.literal("lane"), lane.c.code),
        sa.select(landmarks.c.name, sa.literal("landmark"), landmarks.c.code),
    )
    return [(str(n), str(k), str(code)) for n, k, code in conn.execute(query)]


def _by_codes(conn: sa.Connection, wanted: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The places named by (kind, code), in that order."""
    out: list[dict[str, Any]] = []
    for kind, code in wanted:

        def same(t: sa.Table, code: str = code) -> Any:
            return t.c.code == code

        out += _named(conn, kind, same, lambda t: [], 1)
    return out


def fuzzy(conn: sa.Connection, text: str, limit: int) -> list[dict[str, Any]]:
    """Places whose name is close to `text` (a typo, a missing character), best first; none
    for a number."""
    q = normalise(text)
    if not q or CASE_ID.match(q) or RECORD_NUMBER.match(q) or DIGITS.fullmatch(q):
        return []
    names = _names(conn)
    if not names:
        return []
    found = process.extract(
        q,
        [n for n, _, _ in names],
        scorer=fuzz.WRatio,
        limit=limit,
        score_cutoff=FUZZY_CUTOFF,
    )
    return _by_codes(conn, [(names[i][1], names[i][2]) for _, _, i in found])


def _unique(results: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    seen: set[tuple[str, str]] = set()
    out = []
    for r in results:
        key = (r["kind"], r["code"])
        if key in seen:
            continue
        seen.add(key)
        out.append(r)
    return out[:limit]


def search(conn: sa.Connection, text: str, limit: int, reach: Reach) -> list[dict[str, Any]]:
    """The places and records matching `text`, best first, at most `limit`: a case number
    (#123) or a work-order number first, then grids by label, codes, names. (The caller asks
    the geocoder next, and `fuzzy` when nothing matched at all.)"""
    q = normalise(text)
    if not q:
        return []
    out: list[dict[str, Any]] = []
    case = CASE_ID.match(q)
    if case and reach.cases:
        out += _case_by_id(conn, int(case["id"]))
    if RECORD_NUMBER.match(q):
        out += _records(conn, q, limit, reach)
    out += _by_label(conn, q, limit)
    if DIGITS.fullmatch(q):
        if reach.cases and len(q) <= 12:
            out += _case_by_id(conn, int(q))
        out += _by_code(conn, q, limit)
    elif not case:
        out += _by_name(conn, q, limit)
    return _unique(out, limit)


def looks_like_address(text: str, results: list[dict[str, Any]]) -> bool:
    """Whether the geocoder should be asked too: `text` is no number, and nothing else
    matched or it names a house number."""
    q = normalise(text)
    if CASE_ID.match(q) or RECORD_NUMBER.match(q) or DIGITS.fullmatch(q):
        return False  # a number: a case, a work order or a code, never an address
    return not results or bool(HOUSE_NUMBER.search(q))
