"""Benchmark: the command post — the street queue's first page and the command page with it.

    python bench/bench_command_post.py [--cases 1000000] [--out docs/benchmarks.md]

Builds a database `blockdata_bench_post`: the demo district's boundaries and units, and N
service requests each with a case (bulk SQL, states spread over the lifecycle, due times
around now so that some are 临期 and some 超期). Then, served by waitress:

- `GET /api/cases?street=…&limit=50` — the street queue's first page with its counts by
  state and by unit — as that street's commander (bearer token, row-level security), p50 /
  p95 of 30 requests; the same for `/api/cases/load?street=…` (the unit load board). Beside
  it, the obvious alternative: every case of the street fetched, sorted and counted in Python.
- The command page in headless Chromium (Playwright, the tests' Chromium) until it says its
  queue is drawn, median of 5 loads after a warm-up, logged in as the commander; beside it,
  the same page without the command post (an analyst, who works no case: the page as it was).

Targets (issue 12): the queue's first page < 100 ms; the command page with its queue < 1.5 s.
Results replace the `bench_command_post` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import psycopg
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_etl import load_district, machine, write_section  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app import create_app, migrate  # noqa: E402
from app.auth import new_token  # noqa: E402
from app.config import from_env, resolve_database_url  # noqa: E402
from app.db import make_engine  # noqa: E402
from etl.units import build_units  # noqa: E402
from layers.accounts import api_tokens  # noqa: E402
from tests.helpers import add_user  # noqa: E402
from tests.plugins.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (the tests' browser)

DB = "blockdata_bench_post"
RUNS = 5
REQUESTS = 30
PASSWORD = "secret-password"  # tests.helpers.add_user's

# N requests over the grids, each with a case; the state by id (received, dispatched ×3,
# accepted ×2, contacted, resolved, called back, closed); dispatched an hour after receipt,
# due three days later; received over the last ten days, so that some are 临期, some 超期.
FILL = """
with g as (
    select code, street_code, ST_PointOnSurface(geom) as p,
           row_number() over (order by code) as rn, count(*) over () as n
    from grids where street_code is not null
)
insert into service_requests (source, source_id, received_at, channel, category, street_code,
                              grid_code, geom)
select 'bench-post', 'P' || i, now() - (i % 14400) * interval '1 minute',
       (array['12345热线', '网格员上报', '街巷长'])[1 + i % 3],
       (array['噪声扰民', '环境卫生', '燃气', '供暖', '违法建设'])[1 + i % 5],
       g.street_code, g.code, g.p
from generate_series(1, :n) as i join g on g.rn = 1 + i % g.n
"""
CASES = """
with u as (
    select street_code, array_agg(code order by code) as codes from units
    where street_code is not null group by street_code
), r as (
    select sr.id, sr.street_code, sr.category, sr.received_at, u.codes, sr.id % 10 as k
    from service_requests sr join u using (street_code) where sr.source = 'bench-post'
)
insert into cases (kind, service_request_id, street_code, category, state, version, main_unit,
                   received_at, dispatched_at, due_at, accepted_at, resolved_at, updated_at)
select 'service_request', id, street_code, category,
       (array['received', 'dispatched', 'dispatched', 'dispatched', 'accepted', 'accepted',
              'contacted', 'resolved', 'called_back', 'closed'])[1 + k],
       k, case when k > 0 then codes[1 + id % array_length(codes, 1)] end,
       received_at,
       case when k > 0 then received_at + interval '1 hour' end,
       case when k > 0 then received_at + interval '1 hour' + interval '3 days' end,
       case when k >= 4 then received_at + interval '2 hours' end,
       case when k >= 7 then received_at + interval '1 day' end,
       received_at + k * interval '1 hour'
from r
"""


def build(server: str, cases: int, work: Path) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"drop database if exists {DB} with (force)")
        conn.execute(f"create database {DB}")
    url = make_url(server).set(database=DB).render_as_string(hide_password=False)
    migrate.upgrade(migrate.alembic_config(url))
    engine = make_engine(url)
    load_district(engine, work)
    with engine.begin() as conn:
        build_units(conn)
        conn.execute(sa.text(FILL), {"n": cases})
        conn.execute(sa.text(CASES))
        conn.exec_driver_sql("analyze service_requests")
        conn.exec_driver_sql("analyze cases")
    engine.dispose()
    return url


def latency(url: str, token: str) -> tuple[float, float]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    urllib.request.urlopen(request).read()  # warm-up
    samples = []
    for _ in range(REQUESTS):
        t = time.perf_counter()
        urllib.request.urlopen(request).read()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return samples[len(samples) // 2], samples[int(len(samples) * 0.95) - 1]


def python_queue(engine: sa.Engine, street: str) -> tuple[float, float]:
    """The obvious alternative: every case of the street, sorted and counted in Python."""
    samples = []
    for _ in range(5):
        t = time.perf_counter()
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("select * from cases where street_code = :s"), {"s": street}
            ).mappings()
            rows = sorted(rows, key=lambda r: (r["due_at"] is None, r["due_at"] or 0, r["id"]))
            Counter(r["state"] for r in rows)
            Counter(r["main_unit"] for r in rows if r["main_unit"])
            rows[:50]
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return samples[len(samples) // 2], samples[-1]


def page_times(browser, base: str, user: str, path: str, ready: str) -> list[float]:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(base + "/login?next=" + path)
    page.fill("input[name=name]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + path)
    page.wait_for_function(ready, timeout=60_000)  # the warm-up
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        page.goto(base + path)
        page.wait_for_function(ready, timeout=60_000)
        times.append(time.perf_counter() - start)
    context.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright
    from waitress.server import create_server

    server = resolve_database_url(from_env())
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        url = build(server, args.cases, Path(tmp))
        built = time.perf_counter() - started
        engine = make_engine(url)
        token, digest = new_token()
        with engine.begin() as conn:
            street, in_street = conn.exec_driver_sql(
                "select street_code, count(*) from cases group by 1 order by 2 desc limit 1"
            ).one()
            total = conn.exec_driver_sql("select count(*) from cases").scalar_one()
            commander = add_user(conn, "bench-commander", "commander", street)
            add_user(conn, "bench-analyst", "analyst")
            conn.execute(sa.insert(api_tokens).values(user_id=commander, token_sha256=digest))
        app = create_app({"DATABASE_URL": url})
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        httpd = create_server(app, host="127.0.0.1", port=port, threads=8)
        threading.Thread(target=httpd.run, daemon=True).start()
        base = f"http://127.0.0.1:{port}"
        try:
            api = [
                (
                    "`GET /api/cases?street=…&limit=50` (first page + counts by state and unit)",
                    latency(f"{base}/api/cases?street={street}&limit=50", token),
                ),
                (
                    "`GET /api/cases?street=…&due_state=overdue&limit=50`",
                    latency(f"{base}/api/cases?street={street}&due_state=overdue&limit=50", token),
                ),
                (
                    "`GET /api/cases/load?street=…` (unit load board)",
                    latency(f"{base}/api/cases/load?street={street}", token),
                ),
                (
                    "obvious: every case of the street, sorted and counted in Python",
                    python_queue(engine, street),
                ),
            ]
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                path = f"/command/{street}"
                with_post = page_times(
                    browser,
                    base,
                    "bench-commander",
                    path,
                    "() => document.body.dataset.ready === '1' && "
                    "document.body.dataset.postReady === '1'",
                )
                without = page_times(
                    browser,
                    base,
                    "bench-analyst",
                    path,
                    "() => document.body.dataset.ready === '1'",
                )
                browser.close()
        finally:
            httpd.close()
            app.extensions["blockdata.engine"].dispose()
            engine.dispose()
    pages = [
        ("command page with its queue (commander)", with_post),
        ("command page without the command post (analyst: the page as it was)", without),
    ]
    lines = [
        "<!-- bench_command_post:start -->",
        "## The command post: the street queue and the command page",
        "",
        f"`python bench/bench_command_post.py --cases {args.cases}` on {machine()}; "
        f"{total:,} cases ({in_street:,} in the busiest street, the one measured); built in "
        f"{built:.0f} s; {time.strftime('%Y-%m-%d')}. Targets: first page < 100 ms, command "
        "page with its queue < 1.5 s.",
        "",
        f"API over HTTP as the street's commander ({REQUESTS} requests after a warm-up):",
        "",
        "| request | p50 ms | p95 ms (worst of 5 for Python) |",
        "|---|---:|---:|",
        *[f"| {label} | {p50:.1f} | {p95:.1f} |" for label, (p50, p95) in api],
        "",
        f"In headless Chromium, until the page says it is drawn (median of {RUNS} after a "
        "warm-up, logged in):",
        "",
        "| page | median s | worst s |",
        "|---|---:|---:|",
        *[f"| {label} | {statistics.median(t):.2f} | {max(t):.2f} |" for label, t in pages],
        "<!-- bench_command_post:end -->",
    ]
    section = "\n".join(lines)
    print(section, flush=True)
    write_section(args.out, "bench_command_post", section)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"drop database if exists {DB} with (force)")


if __name__ == "__main__":
    main()
