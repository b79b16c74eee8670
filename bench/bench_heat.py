"""Benchmark: /api/heat over N service requests, beside the direct aggregation.

    python bench/bench_heat.py [--rows 1000000] [--repeat 25] [--keep]

Runs in a throwaway database `blockdata_bench_heat` on the configured server (the managed
cluster or DATABASE_URL): migrates it, imports the demo district's boundaries, writes N
synthetic requests over the last 365 days with SQL (ST_GeneratePoints in each grid, grids
weighted log-normally so that some are hot), then
  1. times `refresh_request_aggregates`: the first (full) build, then an incremental one
     after a day's worth of changes (new requests, closed ones, corrected categories);
  2. for each level and a 1, 7, 30 and 365-day window up to today (and a few filtered
     cases), times GET /api/heat through the Flask app (JSON included) and the direct
     GROUP BY over service_requests with the same filters, p50 and p95 of --repeat runs;
  3. checks that every answer equals the direct count, unit by unit;
  4. times the other /api reads of the aggregates: the district's scorecards (/api/streets),
     the commander's panel of the busiest street and the planner, p50 and p95.
Prints a markdown table; it writes nothing else.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import psycopg
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_etl import fresh_database, machine  # noqa: E402

from app import create_app  # noqa: E402
from app.config import DEFAULT_TZ as ZONE  # noqa: E402
from app.config import from_env, resolve_database_url  # noqa: E402
from app.db import make_engine  # noqa: E402
from etl.admin import import_admin  # noqa: E402
from etl.aggregates import day_bounds, refresh_request_aggregates  # noqa: E402
from etl.demo.geography import generate_geography, write_geography  # noqa: E402
from layers import get_layer  # noqa: E402
from layers.aggregates import AGGREGATE_TABLES, cell_x, cell_y  # noqa: E402
from layers.queries.window import previous_month  # noqa: E402

BENCH_DB = "blockdata_bench_heat"
# Category shares (per cent), roughly those of a Beijing district's hotline.
SHARES = {
    "环境卫生": 16,
    "占道经营": 10,
    "噪声扰民": 9,
    "停车管理": 9,
    "违法建设": 8,
    "物业管理": 8,
    "市容市貌": 7,
    "供暖": 6,
    "施工扰民": 6,
    "咨询": 5,
    "道路维修": 4,
    "养犬": 3,
    "开墙打洞": 3,
    "群租房": 3,
    "园林绿化": 3,
}

GENERATE = """
insert into service_requests (
    source, source_id, channel, received_at, category, department, status, dispatched_at,
    responded_at, resolved_at, due_at, callback_valid, callback_contacted, callback_solved,
    satisfaction, street_code, community_code, grid_code, geom, address)
select 'bench', 'B' || lpad((row_number() over (order by received))::text, 10, '0'),
       '12345热线', received, category, '城市管理部',
       case when is_open then '处理中' else '已办结' end,
       received + interval '30 minutes', received + interval '2 hours',
       case when is_open then null else received + interval '1 day' * r1 * 5 end,
       received + interval '7 days',
       not is_open and r2 < 0.8, not is_open and r2 < 0.76, not is_open and r2 < 0.64,
       case when is_open or r2 >= 0.8 then null when r3 < 0.75 then '满意'
            when r3 < 0.9 then '基本满意' else '不满意' end,
       street_code, community_code, code, geom, '北京市西城区某某胡同'
  from (
    select *, (received > now() - interval '10 days' and r1 < 0.5) or r1 < 0.005 as is_open
      from (
        select g.code, g.community_code, g.street_code, p.geom,
               now() - random() * interval '365 days' as received,
               random() as r1, random() as r2, random() as r3,
               (:categories)[1 + floor(random() * cardinality(:categories))::int] as category
          from (select *, greatest(1, round(:n * w / sum(w) over ()))::int as k,
                       row_number() over (order by code) as i
                  from (select code, community_code, street_code, geom,
                               exp(random() * 3) as w
                          from grids order by code) weighted) g
         cross join lateral (
            select (ST_Dump(ST_GeneratePoints(g.geom, g.k, (:seed + g.i)::int))).geom) p
      ) drawn
  ) t
 order by received
"""

DAILY_CHANGES = [
    # A day's extract: new requests, requests closed with their callback, categories fixed.
    """insert into service_requests (source, source_id, received_at, category, status,
           street_code, community_code, grid_code, geom, due_at)
       select 'bench', 'D' || g, now() - random() * interval '20 hours', s.category, '已派单',
              s.street_code, s.community_code, s.grid_code, s.geom, now() + interval '7 days'
         from generate_series(1, :new) g
         join service_requests s on s.id = 1 + mod(g * 7919, :n)""",
    """update service_requests set status = '已办结', resolved_at = now(),
           callback_valid = true, callback_contacted = true, callback_solved = true,
           satisfaction = '满意', updated_at = now()
     where id in (select id from service_requests where status <> '已办结'
                     and received_at > now() - interval '30 days' limit :closed)""",
    """update service_requests set category = '噪声扰民', updated_at = now()
     where id in (select id from service_requests
                   where received_at > now() - interval '30 days' limit :fixed)""",
]


def load_district(engine: sa.Engine, workdir: Path) -> None:
    files = write_geography(generate_geography(42), workdir)
    with engine.begin() as conn:
        for level, layer in [
            ("street", "streets"),
            ("community", "communities"),
            ("grid", "grids"),
            ("service_hall", "service_halls"),
        ]:
            import_admin(conn, files[layer], level)


def load_requests(engine: sa.Engine, n: int, seed: float = 0.42) -> int:
    """N synthetic requests in one INSERT … SELECT, indexes and keys rebuilt after."""
    table = get_layer("service_requests").table
    indexes = list(table.indexes)
    keys = list(table.foreign_key_constraints)
    categories = [c for c, share in SHARES.items() for _ in range(share)]
    with engine.begin() as conn:
        conn.exec_driver_sql("set local work_mem = '256MB'")
        conn.exec_driver_sql("set local maintenance_work_mem = '1GB'")
        for key in keys:
            conn.execute(sa.schema.DropConstraint(key))
        for index in indexes:
            conn.execute(sa.schema.DropIndex(index))
        conn.execute(sa.select(sa.func.setseed(seed)))
        conn.execute(
            sa.text(GENERATE).bindparams(
                sa.bindparam("categories", type_=sa.ARRAY(sa.Text)),
            ),
            {"n": n, "seed": 42, "categories": categories},
        )
        for index in indexes:
            conn.execute(sa.schema.CreateIndex(index))
        for key in keys:
            conn.execute(sa.schema.AddConstraint(key))
        conn.exec_driver_sql("analyze service_requests")
        return int(conn.exec_driver_sql("select count(*) from service_requests").scalar_one())


def vacuum(url: str) -> None:
    """What autovacuum does within a minute of a refresh: the visibility map, the stats."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("vacuum analyze " + ", ".join(t.name for t in AGGREGATE_TABLES))


def refresh(engine: sa.Engine, prepare: Callable[[sa.Connection], None] | None = None) -> Any:
    with engine.begin() as conn:
        if prepare is not None:
            prepare(conn)
        started = time.perf_counter()
        report = refresh_request_aggregates(conn)
        report.seconds = time.perf_counter() - started
        return report


UNIT = {
    "street": lambda t: t.c.street_code,
    "community": lambda t: t.c.community_code,
    "grid": lambda t: t.c.grid_code,
}


def direct_query(
    level: str, since: dt.date, until: dt.date, category: str | None, street: str | None
) -> sa.Select[Any]:
    """GROUP BY the unit over service_requests, with the same filters as the heat."""
    t = get_layer("service_requests").table
    keys = [cell_x(t.c.geom), cell_y(t.c.geom)] if level == "cell" else [UNIT[level](t)]
    query = sa.select(*keys, sa.func.count()).where(
        t.c.received_at >= day_bounds(since, ZONE)[0],
        t.c.received_at < day_bounds(until, ZONE)[1],
    )
    if category is not None:
        query = query.where(t.c.category == category)
    if street is not None:
        query = query.where(t.c.street_code == street)
    return query.group_by(*keys)


def direct_counts(rows: list[Any], level: str) -> dict[str, int]:
    if level == "cell":
        return {f"{x}_{y}": int(n) for x, y, n in rows}
    return {code: int(n) for code, n in rows if code is not None}


def quantiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    cuts = statistics.quantiles(samples, n=20, method="inclusive")
    return statistics.median(samples) * 1000, cuts[18] * 1000


def district_client(app: Any, engine: sa.Engine) -> Any:
    """A test client logged in as a district-wide user, as the pages are: a session row and
    its cookie."""
    from app.auth import SESSION_KEY, hash_password, new_session_id
    from layers.accounts import sessions, users

    now = dt.datetime.now(dt.UTC)
    sid, digest = new_session_id()
    with engine.begin() as conn:
        uid = conn.execute(
            sa.insert(users)
            .values(name="bench", role="district", password_hash=hash_password("bench"))
            .returning(users.c.id)
        ).scalar_one()
        conn.execute(
            sa.insert(sessions).values(
                sid_sha256=digest, user_id=uid, created_at=now, last_seen_at=now
            )
        )
    client = app.test_client()
    with client.session_transaction() as session:
        session[SESSION_KEY] = sid
    return client


Case = tuple[str, int, str | None, str | None]  # level, days, category, street


@dataclass
class Result:
    case: Case
    api: tuple[float, float]
    direct: tuple[float, float]
    units: int
    total: int
    exact: bool


def measure(client: Any, conn: sa.Connection, today: dt.date, case: Case, repeat: int) -> Result:
    """p50/p95 of the API and of the direct GROUP BY; the answer checked against the latter."""
    level, days, category, street = case
    since = today - dt.timedelta(days=days - 1)
    params = {"level": level, "since": str(since), "until": str(today)}
    if category:
        params["category"] = category
    if street:
        params["street"] = street
    path = "/api/heat/service_requests?" + urlencode(params)
    direct = direct_query(level, since, today, category, street)
    api_times, direct_times = [], []
    body: dict[str, Any] = {}
    rows: list[Any] = []
    for i in range(repeat + 3):
        t0 = time.perf_counter()
        response = client.get(path)
        t1 = time.perf_counter()
        rows = list(conn.execute(direct))
        t2 = time.perf_counter()
        assert response.status_code == 200, response.get_data(as_text=True)
        if i >= 3:
            api_times.append(t1 - t0)
            direct_times.append(t2 - t1)
        body = response.get_json()
    items = {item["code"]: item["n"] for item in body["items"]}
    exact = items == direct_counts(rows, level) and body["total"] == sum(r[-1] for r in rows)
    return Result(
        case, quantiles(api_times), quantiles(direct_times), len(items), body["total"], exact
    )


def timed_get(client: Any, path: str, repeat: int) -> tuple[float, float]:
    """p50/p95 of GET `path` (200 expected) over `repeat` runs after 3 warm-ups."""
    times = []
    for i in range(repeat + 3):
        t0 = time.perf_counter()
        response = client.get(path)
        elapsed = time.perf_counter() - t0
        assert response.status_code == 200, response.get_data(as_text=True)
        if i >= 3:
            times.append(elapsed)
    return quantiles(times)


def row(result: Result) -> str:
    level, days, category, street = result.case
    what = f"category={category}" if category else (f"street={street}" if street else "")
    (a50, a95), (d50, d95) = result.api, result.direct
    return (
        f"| {level} | {days} d | {what} | {a50:.1f} | {a95:.1f} | {d50:.1f} | {d95:.1f} "
        f"| {result.units:,} | {result.total:,} | {'✓' if result.exact else '✗'} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=25)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    server = resolve_database_url(from_env())
    url = fresh_database(server, BENCH_DB)
    engine = make_engine(url)
    with tempfile.TemporaryDirectory() as tmp:
        load_district(engine, Path(tmp))
    started = time.perf_counter()
    rows = load_requests(engine, args.rows)
    generated = time.perf_counter() - started
    full = refresh(engine)
    vacuum(url)

    def day_of_changes(conn: sa.Connection) -> None:
        for sql in DAILY_CHANGES:
            conn.execute(sa.text(sql), {"n": rows, "new": 2700, "closed": 2000, "fixed": 300})

    incremental = refresh(engine, day_of_changes)

    app = create_app({"DATABASE_URL": url})
    client = district_client(app, engine)
    today = dt.datetime.now(ZoneInfo(ZONE)).date()
    with engine.connect() as conn:
        busiest = conn.exec_driver_sql(
            "select street_code from service_requests group by 1 order by count(*) desc limit 1"
        ).scalar_one()
        # Straight after the refresh, before autovacuum has been by.
        unvacuumed = [
            measure(client, conn, today, case, args.repeat)
            for case in (("grid", 30, None, None), ("cell", 365, None, None))
        ]
    vacuum(url)
    cases: list[Case] = [
        (level, days, None, None)
        for level in ("street", "community", "grid", "cell")
        for days in (1, 7, 30, 365)
    ]
    cases += [
        ("grid", 365, "噪声扰民", None),
        ("cell", 365, "噪声扰民", None),
        ("cell", 30, None, busiest),
        ("cell", 365, None, busiest),
    ]
    load_before = os.getloadavg()[0]
    with engine.connect() as conn:
        results = [measure(client, conn, today, case, args.repeat) for case in cases]
    reads = {
        "/api/streets (this month)": "/api/streets",
        "/api/streets (last month)": f"/api/streets?month={previous_month(today):%Y-%m}",
        "/api/command/<busiest>/summary": f"/api/command/{busiest}/summary",
        "/api/planner": "/api/planner",
    }
    read_times = {what: timed_get(client, path, args.repeat) for what, path in reads.items()}
    load_after = os.getloadavg()[0]
    header = [
        "| level | window | filter | API p50 ms | API p95 ms | direct p50 ms | direct p95 ms "
        "| units | requests | exact |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    lines = [
        "## Heat: /api/heat over service requests",
        "",
        f"`python bench/bench_heat.py --rows {args.rows}` on {machine()}, load average "
        f"{load_before:.1f} → {load_after:.1f} during the runs;",
        f"{rows:,} requests over the last 365 days (generated in {generated:.0f} s); "
        f"{args.repeat} runs per case after 3 warm-ups; {time.strftime('%Y-%m-%d')}.",
        "API: GET through the Flask app as a logged-in district user (test client: session, "
        "row-level security, validation, SQL, JSON), after VACUUM of the aggregates (what "
        "autovacuum does soon after a refresh).",
        "Direct: `SELECT unit, count(*) FROM service_requests WHERE <same filters> GROUP BY "
        "unit` (no points, no JSON).",
        "",
        *header,
        *(row(result) for result in results),
    ]
    exact_all = all(result.exact for result in results + unvacuumed)
    aggregate_rows = sum(full.rows.values())
    lines += [
        "",
        "The other /api reads (same client, same data):",
        "",
        "| read | p50 ms | p95 ms |",
        "|---|---:|---:|",
        *(f"| {what} | {p50:.1f} | {p95:.1f} |" for what, (p50, p95) in read_times.items()),
        "",
        f"Every answer equal to the direct count: {'yes' if exact_all else 'NO'}.",
        "",
        "| refresh_request_aggregates | seconds | note |",
        "|---|---:|---|",
        f"| first build (full) | {full.seconds:.1f} | {rows:,} requests → "
        f"{aggregate_rows:,} aggregate rows |",
        f"| after a day's changes (incremental) | {incremental.seconds:.2f} | 2,700 new; 2,000 "
        f"of the last 30 days' closed; 300 re-categorised: {incremental.days} days recomputed, "
        f"{incremental.place_days} of them for the heat |",
        "",
        "Straight after that refresh, before autovacuum (index-only scans fetch the changed "
        "pages from the heap):",
        "",
        *header,
        *(row(result) for result in unvacuumed),
    ]
    print("\n".join(lines))
    engine.dispose()
    if not args.keep:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f"drop database if exists {BENCH_DB} with (force)")


if __name__ == "__main__":
    main()
