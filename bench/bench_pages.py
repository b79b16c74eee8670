"""Benchmark: the pages in a real browser over 1,000,000 service requests.

    python bench/bench_pages.py [--rows 1000000] [--out docs/benchmarks.md]

Builds a database `blockdata_bench_pages` (the demo district's boundaries, cases, targets and
projects, plus N synthetic requests loaded by the ETL), serves it with waitress, and opens each
page in headless Chromium (Playwright, Debian's /usr/bin/chromium) five times, measuring the
time until the page says it is ready (all its data drawn) and the bytes transferred. Beside
it, the obvious alternative: a folium page that embeds the street's raw request points in a
HeatMap. Then /api/heat latency under repeated requests. Results replace the `bench_pages`
section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import folium
import folium.plugins
import psycopg
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_etl import load_district, machine, write_requests, write_section  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app import create_app, migrate  # noqa: E402
from app.config import from_env, resolve_database_url  # noqa: E402
from app.db import make_engine  # noqa: E402
from app.offline import localize  # noqa: E402
from etl.demo.load import generate  # noqa: E402
from etl.jobs import run_file  # noqa: E402
from tests.plugins.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (the tests' browser)

DB = "blockdata_bench_pages"
RUNS = 5


def build(server: str, rows: int, work: Path) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"drop database if exists {DB} with (force)")
        conn.execute(f"create database {DB}")
    url = make_url(server).set(database=DB).render_as_string(hide_password=False)
    migrate.upgrade(migrate.alembic_config(url))
    engine = make_engine(url)
    grids = load_district(engine, work)
    demo = work / "demo"
    generate(demo, requests=0, cases=3000, targets=120, projects=200, end=dt.date.today())
    csv = work / "requests.csv"
    write_requests(grids, rows, csv, end=dt.date.today())
    with engine.connect() as conn:
        for name, layer in [
            ("enforcement_cases.csv", "enforcement_cases"),
            ("relocation_targets.xlsx", "relocation_targets"),
            ("renovation_projects.geojson", "renovation_projects"),
        ]:
            run_file(conn, demo / name, layer=layer)
        run_file(conn, csv, layer="service_requests")
        conn.commit()
    engine.dispose()
    return url


def raw_points_page(engine: sa.Engine, street: str, path: Path) -> None:
    """The obvious alternative: every request of the street embedded in a folium HeatMap."""
    with engine.connect() as conn:
        points = conn.execute(
            sa.text(
                "select ST_Y(geom), ST_X(geom) from service_requests where street_code = :s "
                "and received_at >= now() - interval '30 days'"
            ),
            {"s": street},
        ).all()
    localize("/static/vendor")
    fmap = folium.Map(location=(39.912, 116.366), zoom_start=14, tiles=None)
    folium.plugins.HeatMap([list(p) for p in points], radius=12).add_to(fmap)
    fmap.save(str(path))


def measure(browser, url: str, ready: str | None) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    received = 0

    def count(response):  # type: ignore[no-untyped-def]
        nonlocal received
        with contextlib.suppress(Exception):  # redirects have no body
            received += len(response.body())

    page.on("response", count)
    start = time.perf_counter()
    page.goto(url)
    if ready:
        page.wait_for_function(ready, timeout=60_000)
    else:
        page.wait_for_load_state("load")
    seconds = time.perf_counter() - start
    page.close()
    return seconds, received


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright
    from waitress.server import create_server

    server = resolve_database_url(from_env())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        url = build(server, args.rows, work)
        engine = make_engine(url)
        with engine.connect() as conn:
            street = conn.exec_driver_sql(
                "select street_code from service_requests group by 1 order by count(*) desc limit 1"
            ).scalar_one()
            total = conn.exec_driver_sql("select count(*) from service_requests").scalar_one()
        app = create_app({"DATABASE_URL": url})
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        httpd = create_server(app, host="127.0.0.1", port=port, threads=8)
        threading.Thread(target=httpd.run, daemon=True).start()
        base = f"http://127.0.0.1:{port}"
        static_page = ROOT / "static" / "bench-raw-points.html"
        raw_points_page(engine, street, static_page)
        rows: list[tuple[str, float, float, int]] = []
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                targets = [
                    ("/ 区级指挥中心", base + "/", "document.body.dataset.ready === '1'"),
                    (
                        f"/command/{street} 战区司令",
                        base + f"/command/{street}",
                        "document.body.dataset.ready === '1'",
                    ),
                    (
                        "/planner 整治与疏解",
                        base + "/planner",
                        "document.body.dataset.ready === '1'",
                    ),
                    (
                        "obvious: folium HeatMap of the street's raw points (30 days)",
                        base + "/static/bench-raw-points.html",
                        None,
                    ),
                ]
                for label, target, ready in targets:
                    measure(browser, target, ready)  # warm up
                    samples = [measure(browser, target, ready) for _ in range(RUNS)]
                    times = [s for s, _ in samples]
                    rows.append((label, statistics.median(times), max(times), samples[-1][1]))
                browser.close()
            heat = []
            for days in (1, 7, 30, 365):
                since = (dt.date.today() - dt.timedelta(days=days - 1)).isoformat()
                for level in ("street", "grid", "cell"):
                    q = f"{base}/api/heat/service_requests?level={level}&since={since}"
                    urllib.request.urlopen(q).read()
                    lat = []
                    for _ in range(20):
                        t = time.perf_counter()
                        urllib.request.urlopen(q).read()
                        lat.append((time.perf_counter() - t) * 1000)
                    lat.sort()
                    heat.append((days, level, lat[len(lat) // 2], lat[int(len(lat) * 0.95) - 1]))
        finally:
            httpd.close()
            static_page.unlink(missing_ok=True)
            app.extensions["blockdata.engine"].dispose()
            engine.dispose()
    lines = [
        "<!-- bench_pages:start -->",
        "## Pages in a real browser",
        "",
        f"`python bench/bench_pages.py --rows {args.rows}` on {machine()}; {total:,} requests in "
        f"the database; headless Chromium via Playwright; median of {RUNS} loads after a "
        f"warm-up; {time.strftime('%Y-%m-%d')}.",
        "",
        "| page | median s | worst s | bytes transferred |",
        "|---|---:|---:|---:|",
        *[f"| {label} | {med:.2f} | {worst:.2f} | {size:,} |" for label, med, worst, size in rows],
        "",
        "`/api/heat/service_requests` over the same data (20 requests each, one client):",
        "",
        "| window (days) | level | p50 ms | p95 ms |",
        "|---:|---|---:|---:|",
        *[f"| {d} | {lv} | {p50:.1f} | {p95:.1f} |" for d, lv, p50, p95 in heat],
        "<!-- bench_pages:end -->",
    ]
    section = "\n".join(lines)
    print(section, flush=True)
    write_section(args.out, "bench_pages", section)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"drop database if exists {DB} with (force)")


if __name__ == "__main__":
    main()
