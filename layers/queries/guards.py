"""Data-quality guards (考评): the records that would inflate a street's three rates, counted
per street beside the rate they inflate, and listed one by one.

Over the service requests received in a window of local days of the district's time zone
(the window the three rates are counted over), per street:

- `quick_close` (秒办结, inflates resolution_rate): a request's case resolved within
  `minutes` (default 10) of its (last) dispatch — the case row's dispatch and resolution
  times, which are its history's (layers/cases/store.py writes both from one `now`);
- `no_callback` (无有效回访归档, inflates satisfaction_rate): a case closed (已归档) without a
  valid callback — its own callback (回访) was not valid or had no answer, and, where the
  case has no answer, the request's extract has no valid callback either;
- `repeat` (重复诉求, inflates resolution_rate): a request with an earlier request of the same
  category within 50 m (on the spheroid) and 30 days before it — "solved" once, asked
  again; the earlier one may lie before the window;
- `bounced` (反复退单改派, inflates response_rate): a case that left a unit more than twice —
  each 退单 (return) and each 改派 (redispatch) of a case not yet accepted counts once (a
  redispatch after a return is the same move).

Row-level security applies as is: the caller's scoped connection (a commander: its street)
decides which requests and cases count; a repeat of a request the caller cannot see is not
found.

`repeat` is found by an equi-join on a lattice of cells at least 50 m wide (the requests of the
window and the 30 days before, each probing its own and the 8 neighbouring cells for the same
category), then the exact distance on the geography: one hash join, where a join on the
geometry's GiST index probes every request of any category and time within the box
(bench/bench_guards.py measures both).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from etl.aggregates import RatesConfig, three_rates
from layers.queries.departments import window_instants
from layers.queries.params import ParamError
from layers.queries.scorecards import street_counts
from layers.queries.types import json_value

QUICK_CLOSE_MINUTES = 10
REPEAT_METRES = 50
REPEAT_DAYS = 30
BOUNCES = 2  # bounced: more than this many moves away from a unit
# Cells of the repeat lattice, in degrees: at least 50 m on each side up to 60° latitude (a
# degree of latitude is ≥ 110,574 m; of longitude ≥ 111,319 m × cos φ), so that two requests
# within 50 m lie in the same or neighbouring cells.
METRES_LAT = 110_574.0  # the fewest metres a degree of latitude spans (at the equator)
METRES_LNG = 111_319.0  # … of longitude, times cos φ (on the equator's circle)
CELL_LAT = REPEAT_METRES / METRES_LAT
CELL_LNG = REPEAT_METRES / (METRES_LNG * 0.5)

GUARDS = {
    "quick_close": {"name": "秒办结", "inflates": "resolution_rate"},
    "no_callback": {"name": "无有效回访归档", "inflates": "satisfaction_rate"},
    "repeat": {"name": "重复诉求", "inflates": "resolution_rate"},
    "bounced": {"name": "反复退单改派", "inflates": "response_rate"},
}
MAX_OFFSET = 1_000_000
MAX_LIMIT = 500
RATE_DECIMALS = 4

# The requests received in the window (alias r: by its time's index) with their cases (c).
_CASES = """
    from service_requests r
    join cases c on c.service_request_id = r.id
   where r.received_at >= :lo and r.received_at < :hi and c.kind = 'service_request'
"""
# A case's moves away from a unit; the condition is ix_case_history_moves' predicate
# (migration 0023), so that the count reads that small index.
_MOVES = """
    (select count(*) from case_history h
      where h.case_id = c.id
        and (h.action = 'return' or (h.action = 'redispatch' and h.from_state = 'dispatched')))
"""
CONDITIONS = {
    "quick_close": "c.resolved_at is not null and c.dispatched_at is not null"
    " and c.resolved_at - c.dispatched_at <= make_interval(mins => :minutes)",
    "no_callback": "c.state = 'closed'"
    " and coalesce(c.callback_valid, r.callback_valid) is not true",
    "bounced": f"{_MOVES} > {BOUNCES}",
}

# Each request of the window with the latest earlier request it repeats (alias e), if any.
# The pairs of a cell and its neighbours are first compared on the plane, with the fewest
# metres a degree can span (a lower bound of the distance: only pairs surely farther than
# 50 m are dropped), then on the geography.
_REPEATS = f"""
    with later as materialized (
        select r.id, r.street_code, r.category, r.received_at,
               ST_X(r.geom) as x, ST_Y(r.geom) as y,
               floor(ST_X(r.geom) / {CELL_LNG})::int as cx,
               floor(ST_Y(r.geom) / {CELL_LAT})::int as cy
          from service_requests r
         where r.received_at >= :lo and r.received_at < :hi
           and r.category is not null and r.geom is not null
    ), pool as materialized (
        select e.id, e.category, e.received_at, ST_X(e.geom) as x, ST_Y(e.geom) as y,
               floor(ST_X(e.geom) / {CELL_LNG})::int as cx,
               floor(ST_Y(e.geom) / {CELL_LAT})::int as cy
          from service_requests e
         where e.received_at >= :lo - make_interval(days => {REPEAT_DAYS}) and e.received_at < :hi
           and e.category is not null and e.geom is not null
    ), near as (
        select l.id, l.street_code, e.id as earlier_id, e.received_at,
               ST_Distance(
                   ST_SetSRID(ST_MakePoint(l.x, l.y), 4326)::geography,
                   ST_SetSRID(ST_MakePoint(e.x, e.y), 4326)::geography
               ) as metres
          from pool e
         cross join (values (-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 0), (0, 1),
                            (1, -1), (1, 0), (1, 1)) as o(dx, dy)
          join later l
            on l.cx = e.cx + o.dx and l.cy = e.cy + o.dy and l.category = e.category
         where (e.received_at, e.id) < (l.received_at, l.id)
           and e.received_at >= l.received_at - make_interval(days => {REPEAT_DAYS})
           and power({METRES_LAT} * (l.y - e.y), 2)
               + power({METRES_LNG} * cos(radians(greatest(abs(l.y), abs(e.y)))) * (l.x - e.x), 2)
               <= {REPEAT_METRES**2}
    ), pairs as (
        select distinct on (id) id, street_code, earlier_id, metres
          from near
         where metres <= {REPEAT_METRES}
         order by id, received_at desc, earlier_id desc
    )
"""


def _hash_joined(conn: sa.Connection, sql: str, bound: dict[str, Any]) -> list[sa.RowMapping]:
    """The rows of a `_REPEATS` statement, planned without merge joins: the planner misjudges
    the cell join's hash (its keys are expressions over CTE rows) and would sort the pool's
    nine neighbours of every request instead (2 to 3 times slower at a million requests,
    bench/bench_guards.py). The setting is the transaction's and is put back after; a failed
    statement aborts the transaction, whose rollback puts it back too."""
    before = conn.execute(
        sa.text(
            "select current_setting('enable_mergejoin'),"
            " set_config('enable_mergejoin', 'off', true)"
        )
    ).scalar_one()
    rows = list(conn.execute(sa.text(sql), bound).mappings())
    conn.execute(sa.text("select set_config('enable_mergejoin', :v, true)"), {"v": before})
    return rows


def _window(since: dt.date, until: dt.date, zone_tz: str) -> dict[str, Any]:
    lo, hi = window_instants(since, until, zone_tz)
    return {"lo": lo, "hi": hi}


def guard_counts(
    conn: sa.Connection,
    since: dt.date,
    until: dt.date,
    zone_tz: str,
    *,
    minutes: int = QUICK_CLOSE_MINUTES,
) -> dict[str, dict[str, int]]:
    """Per street the caller may see (every one, zeros included): each guard's count over
    the requests received in the local days [since, until] of `zone_tz`."""
    bound = {**_window(since, until, zone_tz), "minutes": minutes}
    streets = conn.execute(sa.text("select code from streets order by code")).scalars()
    out = {code: dict.fromkeys(GUARDS, 0) for code in streets}
    cases = sa.text(
        f"""
        select c.street_code,
               count(*) filter (where {CONDITIONS["quick_close"]}) as quick_close,
               count(*) filter (where {CONDITIONS["no_callback"]}) as no_callback,
               count(*) filter (where {CONDITIONS["bounced"]}) as bounced
        {_CASES} and c.street_code is not null
         group by c.street_code
        """
    )
    for street, quick, uncalled, bounced in conn.execute(cases, bound):
        row = out.setdefault(street, dict.fromkeys(GUARDS, 0))
        row.update(quick_close=quick, no_callback=uncalled, bounced=bounced)
    repeats = (
        _REPEATS
        + """
        select street_code, count(*) as count from pairs
         where street_code is not null group by street_code
        """
    )
    for found in _hash_joined(conn, repeats, bound):
        out.setdefault(found["street_code"], dict.fromkeys(GUARDS, 0))["repeat"] = found["count"]
    return out


def street_rates(
    conn: sa.Connection, since: dt.date, until: dt.date, config: RatesConfig
) -> dict[str, dict[str, Any]]:
    """Per street, the rates the guards would inflate over the same days: requests, valid
    callbacks and the three rates (None for V = 0), from the public per-street aggregate."""
    out = {}
    for code, counts in street_counts(conn, since, until).items():
        rates = three_rates(counts, config)
        out[code] = {
            "requests": counts["received"],
            "callbacks": counts["callbacks"],
            **{k: None if v is None else round(v, RATE_DECIMALS) for k, v in rates.items()},
        }
    return out


def _check_guard(guard: str) -> None:
    if guard not in GUARDS:
        raise ParamError(
            f"未知的数据质量校验 unknown guard {guard!r}; 可用 one of {', '.join(GUARDS)}",
            "guard",
            status=404,
        )


_RECORD = """
    c.id as case_id, r.id as request_id, r.source_id, r.category,
    r.street_code, r.community_code, r.grid_code, r.received_at
"""


def guard_records(
    conn: sa.Connection,
    guard: str,
    since: dt.date,
    until: dt.date,
    zone_tz: str,
    street: str | None = None,
    limit: int = 50,
    offset: int = 0,
    *,
    minutes: int = QUICK_CLOSE_MINUTES,
) -> dict[str, Any]:
    """The records behind `guard` (404 for an unknown one) over the requests received in the
    local days [since, until] of `zone_tz`, of `street` or of every street the caller sees:
    {guard, name, inflates, since, until, street, total, limit, offset, records}, by
    receipt time then request id (a stable order for limit/offset paging)."""
    _check_guard(guard)
    if not 1 <= limit <= MAX_LIMIT or not 0 <= offset <= MAX_OFFSET:
        raise ParamError(f"分页参数超出范围 limit/offset out of range: {limit}, {offset}", "limit")
    bound: dict[str, Any] = {
        **_window(since, until, zone_tz),
        "minutes": minutes,
        "street": street,
        "limit": limit,
        "offset": offset,
    }
    sql = _records_sql(guard)

    def run(values: dict[str, Any]) -> list[dict[str, Any]]:
        if guard == "repeat":
            return [dict(r) for r in _hash_joined(conn, sql, values)]
        return [dict(r) for r in conn.execute(sa.text(sql), values).mappings()]

    rows = run(bound)
    if rows:
        total = int(rows[0]["total"])
    elif offset > 0:  # past the end: the page is empty, the total is still said
        first = run({**bound, "limit": 1, "offset": 0})
        total = int(first[0]["total"]) if first else 0
    else:
        total = 0
    records = []
    for row in rows:
        row.pop("total")
        if "minutes" in row and row["minutes"] is not None:
            row["minutes"] = round(float(row["minutes"]), 1)
        if "metres" in row and row["metres"] is not None:
            row["metres"] = round(float(row["metres"]), 1)
        records.append({k: json_value(v) for k, v in row.items()})
    return {
        "guard": guard,
        **GUARDS[guard],
        "since": since.isoformat(),
        "until": until.isoformat(),
        "street": street,
        "total": total,
        "limit": limit,
        "offset": offset,
        "records": records,
    }


def _records_sql(guard: str) -> str:
    """The SELECT of `guard`'s records, with the total over all pages (`total`)."""
    in_street = "(cast(:street as text) is null or r.street_code = :street)"
    page = "order by r.received_at, r.id limit :limit offset :offset"
    if guard == "repeat":
        return (
            _REPEATS
            + f"""
            select count(*) over () as total, {_RECORD}, e.id as earlier_request_id,
                   e.source_id as earlier_source_id, e.received_at as earlier_received_at,
                   ec.id as earlier_case_id, p.metres
              from pairs p
              join service_requests r on r.id = p.id
              join service_requests e on e.id = p.earlier_id
              left join cases c on c.service_request_id = r.id
              left join cases ec on ec.service_request_id = e.id
             where {in_street}
            {page}
            """
        )
    extra = {
        "quick_close": "c.main_unit, c.dispatched_at, c.resolved_at,"
        " extract(epoch from c.resolved_at - c.dispatched_at) / 60.0 as minutes",
        "no_callback": "c.main_unit, c.closed_at, c.called_back_at,"
        " c.callback_valid, r.callback_valid as request_callback_valid",
        "bounced": f"c.main_unit, c.state, {_MOVES} as moves",
    }[guard]
    return f"""
        select count(*) over () as total, {_RECORD}, {extra}
        {_CASES} and {CONDITIONS[guard]} and {in_street}
        {page}
        """
