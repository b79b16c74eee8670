"""Benchmark: the departments rated by the streets and the data-quality guards (考评) for a
month and for a year, beside the obvious alternatives.

    python bench/bench_guards.py [--requests 1000000] [--runs 5] [--out docs/benchmarks.md]

Builds a database `blockdata_bench_guards`: the demo district's boundaries and units, and N
service requests over 2026 (the demo's category shares, points spread over the grids) each
with a case and its history (bulk SQL): dispatched to a unit of its street or a district
department, most resolved, called back and closed, some resolved within minutes, some closed
without a valid callback, one in 25 returned once and redispatched, one in 200 returned three
times; and about 100 whistles a street a month, each summoning three units, with arrivals,
completions and ratings. Then, as the district's reader (row-level security on), the median
of --runs:

- `department_ratings` for November 2026 (also without migration 0023's indexes, dropped in
  a rolled-back transaction) and for the whole year (N requests);
- beside it, a loop over the units (each unit's cases and whistles by one statement each);
- `guard_counts` for November and for the year, and a commander's (one street);
- `guard_records("repeat")`'s first page;
- `repeat` alone: the lattice join as `guard_counts` runs it (a hash join) and as the planner
  would choose it (a merge join); through the geometry's GiST index (`&&` a box of 50 m, then
  the distance on the geography); and the naive self-join (the distance on the geography for
  every pair of the same category in 30 days, no index) — these two stopped after
  --naive-timeout seconds;
- the guards per street in a loop (15 statements of each, as 15 commanders).

Results replace the `bench_guards` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_etl import (  # noqa: E402
    CATEGORIES,
    SHARES,
    fresh_database,
    load_district,
    machine,
    write_section,
)
from sqlalchemy.engine import make_url  # noqa: E402

from app.config import from_env, resolve_database_url  # noqa: E402
from app.db import make_engine  # noqa: E402
from etl.units import build_units  # noqa: E402
from layers import whistles as w  # noqa: E402
from layers.queries import access  # noqa: E402
from layers.queries import guards as g  # noqa: E402
from layers.queries.departments import department_ratings, window_instants  # noqa: E402

DB = "blockdata_bench_guards"
ZONE = "Asia/Shanghai"
MONTH = (dt.date(2026, 11, 1), dt.date(2026, 11, 30))
YEAR = (dt.date(2026, 1, 1), dt.date(2026, 12, 31))
NOW = dt.datetime(2027, 1, 5, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))

REQUESTS = """
with g as materialized (
    select code, community_code, street_code, ST_XMin(geom) as x0, ST_YMin(geom) as y0,
           ST_XMax(geom) - ST_XMin(geom) as dx, ST_YMax(geom) - ST_YMin(geom) as dy,
           row_number() over (order by code) as rn, count(*) over () as n
      from grids where street_code is not null
)
insert into service_requests (source, source_id, received_at, channel, category, street_code,
                              community_code, grid_code, callback_valid, callback_contacted,
                              callback_solved, satisfaction, geom)
select 'bench-guards', 'G' || i,
       timestamptz '2026-01-01 00:00+08' + (i::float8 / :n) * interval '365 days',
       '12345热线', (cast(:cats as text[]))[1 + floor(random() * 100)::int],
       g.street_code, g.community_code, g.code,
       i % 10 <> 0, i % 7 <> 0, i % 3 <> 0,
       (array['满意', '满意', '基本满意', '不满意'])[1 + i % 4],
       ST_SetSRID(ST_MakePoint(g.x0 + random() * g.dx, g.y0 + random() * g.dy), 4326)
  from generate_series(1, :n) as i join g on g.rn = 1 + (i::bigint * 7919) % g.n
"""
# Each request's case. k = id % 20: 0–1 dispatched, 2 accepted, 3 resolved within 5 minutes,
# 4–5 resolved, 6–8 called back, 9 closed without a valid callback, 10–19 closed.
CASES = """
with u as (
    select street_code, array_agg(code order by code) as codes from units
     where street_code is not null and kind <> 'centre' group by street_code
), d as (
    select array_agg(code order by code) as codes from units where kind = 'district_department'
)
insert into cases (kind, service_request_id, street_code, category, state, version, main_unit,
                   received_at, dispatched_at, due_at, accepted_at, resolved_at, called_back_at,
                   closed_at, callback_valid, rating, updated_at)
select 'service_request', r.id, r.street_code, r.category, s.state, 1, s.unit,
       r.received_at, r.received_at + interval '30 minutes',
       r.received_at + interval '30 minutes' + interval '7 days',
       case when s.k >= 2 then r.received_at + interval '1 hour' end,
       case when s.k = 3 then r.received_at + interval '35 minutes'
            when s.k >= 4 then r.received_at + (1 + r.id % 300) * interval '1 hour' end,
       case when s.k >= 6 then r.received_at + (1 + r.id % 300) * interval '1 hour'
                               + interval '1 day' end,
       case when s.k >= 9 then r.received_at + (1 + r.id % 300) * interval '1 hour'
                               + interval '2 days' end,
       case when s.k >= 6 then s.k <> 9 end,
       case when s.k >= 6 then (array['满意', '基本满意', '不满意'])[1 + r.id % 3] end,
       r.received_at
  from service_requests r join u using (street_code) cross join d
 cross join lateral (
       select r.id % 20 as k,
              case when r.id % 5 = 0 then d.codes[1 + r.id % array_length(d.codes, 1)]
                   else u.codes[1 + r.id % array_length(u.codes, 1)] end as unit,
              (array['dispatched', 'dispatched', 'accepted', 'resolved', 'resolved',
                     'resolved', 'called_back', 'called_back', 'called_back', 'closed',
                     'closed', 'closed', 'closed', 'closed', 'closed', 'closed', 'closed',
                     'closed', 'closed', 'closed'])[1 + r.id % 20] as state
 ) s
 where r.source = 'bench-guards'
"""
# The history: returns first (one in 25 once, one in 200 three times, by another unit), then
# the dispatch that stands, and the steps the case's state shows.
HISTORY = """
insert into case_history (case_id, action, from_state, to_state, role, unit_code, at)
select c.id, v.action, v.from_state, v.to_state, v.role, v.unit, v.at
  from cases c
 cross join lateral (
       select n from (values (case when c.id % 200 = 0 then 3
                                   when c.id % 25 = 0 then 1 else 0 end)) as t(n)
 ) b
 cross join lateral (
       select 'dispatch', 'received', 'dispatched', 'clerk', null::varchar,
              c.received_at + interval '1 minute'
        where b.n > 0
       union all
       select a.action, a.f, a.t, a.role, case when a.role = 'department' then c.main_unit end,
              c.received_at + interval '1 minute' + (s * 3 + a.o) * interval '2 minutes'
         from generate_series(0, b.n - 1) as s
        cross join (values ('return', 'dispatched', 'returned', 'department', 1),
                           ('redispatch', 'returned', 'dispatched', 'clerk', 2))
                    as a(action, f, t, role, o)
       union all
       select 'dispatch', 'received', 'dispatched', 'clerk', null, c.dispatched_at where b.n = 0
       union all
       select 'accept', 'dispatched', 'accepted', 'department', c.main_unit, c.accepted_at
        where c.accepted_at is not null
       union all
       select 'resolve', 'accepted', 'resolved', 'department', c.main_unit, c.resolved_at
        where c.resolved_at is not null
       union all
       select 'callback', 'resolved', 'called_back', 'clerk', null, c.called_back_at
        where c.called_back_at is not null
       union all
       select 'close', 'called_back', 'closed', 'clerk', null, c.closed_at
        where c.closed_at is not null
 ) as v(action, from_state, to_state, role, unit, at)
"""
WHISTLES = """
with s as (select code, row_number() over (order by code) as rn from streets),
made as (
    insert into whistles (street_code, target_kind, target_ref, reason, meeting_point,
                          meet_at, blown_role, blown_at)
    select s.code, 'lane', 'L' || i, '联合整治', '胡同口',
           timestamptz '2026-01-01 09:00+08' + (i::float8 / :n) * interval '365 days',
           'commander', timestamptz '2026-01-01 06:00+08' + (i::float8 / :n) * interval '365 days'
      from generate_series(1, :n) as i join s on s.rn = 1 + i % 15
    returning id, street_code, meet_at
), u as (
    select street_code, array_agg(code order by code) as codes from units
     where street_code is not null group by street_code
), d as (
    select array_agg(code order by code) as codes from units where kind = 'district_department'
)
insert into whistle_units (whistle_id, unit_code, street_code, arrived_at, completed_at, rating)
select m.id, x.unit, m.street_code, x.arrived,
       case when x.arrived is not null then x.arrived + interval '2 hours' end,
       case when x.arrived is not null and m.id % 4 <> 0
            then (array['满意', '基本满意', '不满意'])[1 + (m.id + x.j) % 3] end
  from made m join u using (street_code) cross join d
 cross join lateral (
       select distinct on (unit) unit, j,
              case when (m.id + j) % 10 <> 0
                   then m.meet_at + ((m.id * 7 + j * 13) % 70 - 10) * interval '1 minute' end
                   as arrived
         from (values
                 (1, d.codes[1 + m.id % array_length(d.codes, 1)]),
                 (2, d.codes[1 + (m.id / 3) % array_length(d.codes, 1)]),
                 (3, u.codes[1 + m.id % array_length(u.codes, 1)])) as t(j, unit)
        order by unit, j
 ) x
"""
# The alternative: each request's earlier one through the geometry's GiST index (a box of
# 50 m at any latitude up to 60°, then the exact distance on the geography).
REPEAT_GIST = f"""
select r.street_code, count(*) from service_requests r
 where r.received_at >= :lo and r.received_at < :hi and r.category is not null
   and exists (
       select 1 from service_requests e
        where e.geom && ST_Expand(r.geom, {g.CELL_LNG})
          and e.category = r.category
          and (e.received_at, e.id) < (r.received_at, r.id)
          and e.received_at >= r.received_at - interval '{g.REPEAT_DAYS} days'
          and ST_DWithin(r.geom::geography, e.geom::geography, {g.REPEAT_METRES}))
 group by r.street_code
"""
# The naive self-join: every pair of the same category within 30 days, distance on the
# geography, no index.
REPEAT_NAIVE = f"""
select r.street_code, count(distinct r.id) from service_requests r
  join service_requests e
    on e.category = r.category and (e.received_at, e.id) < (r.received_at, r.id)
   and e.received_at >= r.received_at - interval '{g.REPEAT_DAYS} days'
   and ST_DWithin(r.geom::geography, e.geom::geography, {g.REPEAT_METRES})
 where r.received_at >= :lo and r.received_at < :hi
 group by r.street_code
"""
REPEAT_COUNT = g._REPEATS + "select count(*) from pairs"
UNIT_CASES = """
select count(*) filter (where main_unit = :u),
       count(*) filter (where main_unit = :u and resolved_at <= due_at),
       count(*) filter (where :u = any(assisting_units)),
       (select count(distinct case_id) from case_history
         where action = 'return' and unit_code = :u and at >= :lo and at < :hi)
  from cases where dispatched_at >= :lo and dispatched_at < :hi
   and (main_unit = :u or :u = any(assisting_units))
"""


def build(server: str, n: int, work: Path) -> str:
    url = fresh_database(server, DB)
    engine = make_engine(url)
    load_district(engine, work)
    cats = [c for c, share in zip(CATEGORIES, SHARES, strict=True) for _ in range(int(share))]
    assert len(cats) == 100
    with engine.begin() as conn:
        build_units(conn)
        conn.exec_driver_sql("select setseed(0.42)")
        for label, sql, bound in (
            ("requests", REQUESTS, {"n": n, "cats": cats}),
            ("cases", CASES, {}),
            ("history", HISTORY, {}),
            ("whistles", WHISTLES, {"n": 15 * 12 * 100}),
        ):
            started = time.perf_counter()
            conn.execute(sa.text(sql), bound)
            print(f"  {label}: {time.perf_counter() - started:.0f} s", flush=True)
        for table in ("service_requests", "cases", "case_history", "whistles", "whistle_units"):
            conn.exec_driver_sql(f"analyze {table}")
    engine.dispose()
    return url


def timed(
    engine: sa.Engine, fn: Callable[[sa.Connection], Any], runs: int, zone: str = "*"
) -> float:
    """The median seconds of `runs` calls of `fn` on a connection scoped to `zone`, after a
    warm-up."""
    samples = []
    for i in range(runs + 1):
        with engine.connect() as conn:
            access.scope(conn, zone)
            started = time.perf_counter()
            fn(conn)
            if i:
                samples.append(time.perf_counter() - started)
            conn.rollback()
    return statistics.median(samples)


INDEXES = ("ix_cases_dispatched_at", "ix_case_history_returns")  # migration 0023's


def timed_without(
    engine: sa.Engine, indexes: tuple[str, ...], fn: Callable[[sa.Connection], Any], runs: int
) -> float:
    """`timed` with `indexes` dropped in a transaction that is rolled back (as before the
    migration that made them)."""
    samples = []
    with engine.connect() as conn:
        for name in indexes:
            conn.exec_driver_sql(f"drop index {name}")
        for i in range(runs + 1):
            access.scope(conn, "*")
            started = time.perf_counter()
            fn(conn)
            if i:
                samples.append(time.perf_counter() - started)
            conn.exec_driver_sql("reset role")
        conn.rollback()
    return statistics.median(samples)


def capped(engine: sa.Engine, sql: str, bound: dict[str, Any], timeout: float) -> str:
    """The seconds of one run of `sql`, or "> timeout" when PostgreSQL stopped it."""
    with engine.connect() as conn:
        access.scope(conn, "*")
        conn.exec_driver_sql(f"set local statement_timeout = {int(timeout * 1000)}")
        started = time.perf_counter()
        try:
            conn.execute(sa.text(sql), bound).all()
        except sa.exc.OperationalError:
            return f"> {timeout:.0f}"
        finally:
            conn.rollback()
        return f"{time.perf_counter() - started:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--naive-timeout", type=float, default=120.0)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="reuse the database if it exists")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    server = resolve_database_url(from_env())
    url = make_url(server).set(database=DB).render_as_string(hide_password=False)
    started = time.perf_counter()
    with psycopg.connect(server, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (DB,)).fetchone()
    if not (args.reuse and exists):
        with tempfile.TemporaryDirectory() as tmp:
            url = build(server, args.requests, Path(tmp))
    built = time.perf_counter() - started
    engine = make_engine(url)
    with engine.connect() as conn:
        total = conn.exec_driver_sql("select count(*) from service_requests").scalar_one()
        history = conn.exec_driver_sql("select count(*) from case_history").scalar_one()
        summoned = conn.exec_driver_sql("select count(*) from whistle_units").scalar_one()
        street, in_street = conn.exec_driver_sql(
            "select street_code, count(*) from service_requests group by 1 order by 2 desc limit 1"
        ).one()
        codes = list(conn.exec_driver_sql("select code from units order by code").scalars())
        streets = list(conn.exec_driver_sql("select code from streets order by code").scalars())
    lo, hi = window_instants(*MONTH, ZONE)
    month = {"lo": lo, "hi": hi}
    with engine.connect() as conn:
        access.scope(conn, "*")
        in_month = conn.execute(
            sa.text(
                "select count(*) from service_requests"
                " where received_at >= :lo and received_at < :hi"
            ),
            month,
        ).scalar_one()
        units_rated = len(department_ratings(conn, *MONTH, ZONE, now=NOW))
        counts = g.guard_counts(conn, *MONTH, ZONE)
        lattice = {s: c["repeat"] for s, c in counts.items() if c["repeat"]}
        conn.exec_driver_sql(f"set local statement_timeout = {int(args.naive_timeout * 1000)}")
        try:
            by_index = dict(conn.execute(sa.text(REPEAT_GIST), month).all())
            agree = "The lattice and the GiST index find the same repeats."
            assert lattice == by_index, ("the two repeat queries disagree", lattice, by_index)
        except sa.exc.OperationalError:
            agree = "(The GiST query did not finish in time to compare its repeats.)"
    found = {k: sum(c[k] for c in counts.values()) for k in g.GUARDS}

    def per_unit(conn: sa.Connection) -> None:
        for code in codes:
            conn.execute(sa.text(UNIT_CASES), {**month, "u": code}).one()
            w.unit_record(conn, lo, hi, [code])

    def per_street(conn: sa.Connection) -> None:
        for code in streets:
            access.scope(conn, code)
            g.guard_counts(conn, *MONTH, ZONE)

    runs = args.runs
    rows = [
        (
            "`department_ratings`, November (district)",
            timed(engine, lambda c: department_ratings(c, *MONTH, ZONE, now=NOW), runs),
        ),
        (
            "`department_ratings`, November, without migration 0023's two indexes",
            timed_without(
                engine, INDEXES, lambda c: department_ratings(c, *MONTH, ZONE, now=NOW), runs
            ),
        ),
        (
            "`department_ratings`, the year (all requests)",
            timed(engine, lambda c: department_ratings(c, *YEAR, ZONE, now=NOW), max(1, runs // 2)),
        ),
        (
            f"obvious: a loop over the {len(codes)} units, two statements each, November",
            timed(engine, per_unit, max(1, runs // 2)),
        ),
        (
            "`guard_counts`, November (district)",
            timed(engine, lambda c: g.guard_counts(c, *MONTH, ZONE), runs),
        ),
        (
            "`guard_counts`, November, the busiest street's commander",
            timed(engine, lambda c: g.guard_counts(c, *MONTH, ZONE), runs, zone=street),
        ),
        (
            "`guard_counts`, the year (all requests)",
            timed(engine, lambda c: g.guard_counts(c, *YEAR, ZONE), max(1, runs // 2)),
        ),
        (
            "`guard_records('repeat')`, November, first page of 50",
            timed(engine, lambda c: g.guard_records(c, "repeat", *MONTH, ZONE), runs),
        ),
        (
            "obvious: `guard_counts` street by street (15 commanders), November",
            timed(engine, per_street, max(1, runs // 2)),
        ),
        (
            "repeat alone: the lattice join (as `guard_counts`: hash join), November",
            timed(engine, lambda c: g._hash_joined(c, REPEAT_COUNT, month), runs),
        ),
        (
            "repeat alone: the lattice join as the planner chooses (merge join), November",
            timed(engine, lambda c: c.execute(sa.text(REPEAT_COUNT), month).all(), runs),
        ),
    ]
    gist = capped(engine, REPEAT_GIST, month, args.naive_timeout)
    naive = capped(engine, REPEAT_NAIVE, month, args.naive_timeout)
    engine.dispose()
    lines = [
        "<!-- bench_guards:start -->",
        "## 考评: the departments rated by the streets and the data-quality guards",
        "",
        f"`python bench/bench_guards.py --requests {args.requests}` on {machine()}; "
        f"{total:,} requests over 2026 ({in_month:,} received in November; {in_street:,} in "
        f"the busiest street over the year), {history:,} history rows, {summoned:,} summoned "
        f"units; built in {built:.0f} s; {time.strftime('%Y-%m-%d')}. As the district's "
        f"reader (row-level security on) unless said; median of {runs} after a warm-up. "
        f"November: {units_rated} units rated; guards found {found}. {agree}",
        "",
        "| query | seconds |",
        "|---|---:|",
        *[f"| {label} | {seconds:.3f} |" for label, seconds in rows],
        "| repeat alone: the geometry's GiST index (`&&` a box, then the geography), November,"
        f" one run | {gist} |",
        "| obvious: repeat by a self-join on the geography, no index, November, one run"
        f" | {naive} |",
        "<!-- bench_guards:end -->",
    ]
    section = "\n".join(lines)
    print(section, flush=True)
    write_section(args.out, "bench_guards", section)
    if not args.keep:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"drop database if exists {DB} with (force)")


if __name__ == "__main__":
    main()
