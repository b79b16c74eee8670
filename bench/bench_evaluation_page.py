"""Benchmark: /evaluation in a real browser, and its drill-down, over 1,000,000 requests.

    python bench/bench_evaluation_page.py [--rows 1000000] [--reuse] [--out docs/benchmarks.md]

Builds (or with --reuse keeps) a database `blockdata_bench_evaluation_page`: the demo
district's boundaries and N clustered requests over the year before 2026-11-25, loaded by the
ETL and put in spatial order as `db maintain` leaves them. Serves it with waitress and opens
/evaluation as a district user in headless Chromium (Playwright, Debian's /usr/bin/chromium)
five times after a warm-up: the time from navigation to the ranking table and the chart drawn
(`#ev-main[data-ready=true]`), the evaluation API (app/evaluation.py) computing the period live
under the demo scheme, with a survey per street stored for it (made here); and the same page
with the evaluation API's answers from the tests' stand-ins (tests/evalpage_fixtures.py): the
page's own share of the time.

Then the drill-down (/api/evaluation/drill, a month) at each level for the street with the most
requests, 20 calls each, in three variants: the plain indexes of service_requests (street,
received_at, as the schema has them); with a covering index (street_code, received_at) INCLUDE
(community_code, grid_code, the callback columns), made and dropped by the bench (not in the
schema: see layers/queries/drill.py); and the district level computed from the requests instead
of the street aggregate (the obvious alternative). Results replace the
`bench_evaluation_page` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_etl import loaded_database, machine, write_section  # noqa: E402

from app import create_app  # noqa: E402
from app.config import from_env, resolve_database_url  # noqa: E402
from app.db import make_engine  # noqa: E402
from etl.aggregates import CONFIG_DIR  # noqa: E402
from layers.evaluation.scheme import parse_scheme, read_scheme_file  # noqa: E402
from layers.evaluation.tables import evaluation_schemes, survey_results  # noqa: E402
from tests.clock import BEIJING, FrozenClock  # noqa: E402
from tests.evalpage_fixtures import result, stub  # noqa: E402
from tests.helpers import add_user  # noqa: E402
from tests.plugins.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.plugins.ogc import serve  # noqa: E402

DB = "blockdata_bench_evaluation_page"
RUNS = 5
CALLS = 20
SINCE, UNTIL, LABEL = "2026-10-01", "2026-10-31", "2026-10"
CLOCK = FrozenClock(dt.datetime(2026, 11, 24, 15, 0, tzinfo=BEIJING))
INDEX = "ix_service_requests_street_received"
COVERING = (
    f"create index {INDEX} on service_requests (street_code, received_at) include "
    "(community_code, grid_code, callback_valid, callback_contacted, callback_solved, satisfaction)"
)
USER = "bench-evaluation-district"


def _login(base: str) -> urllib.request.OpenerDirector:
    """An opener holding a district user's session cookie (the login form, its CSRF token)."""
    import re

    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = opener.open(base + "/login").read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    data = {"name": USER, "password": "secret-password"} | (
        {"csrf_token": token[1]} if token else {}
    )
    opener.open(base + "/login", urlencode(data).encode()).read()
    return opener


def _latency(opener: urllib.request.OpenerDirector, url: str) -> tuple[float, float]:
    opener.open(url).read()
    lat = []
    for _ in range(CALLS):
        t = time.perf_counter()
        opener.open(url).read()
        lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    return lat[len(lat) // 2], lat[int(len(lat) * 0.95) - 1]


def _page_load(browser: Any, base: str, answer: dict[str, Any] | None) -> float:
    """Median seconds from navigation to the table and chart drawn; `answer`: the stand-in's
    Result (None: the real evaluation API)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    if answer is not None:
        stub(page, answer)
    page.goto(base + "/login?next=/evaluation")
    page.fill("input[name=name]", USER)
    page.fill("input[name=password]", "secret-password")
    page.click("button[type=submit]")
    page.wait_for_selector("#ev-main[data-ready=true]", timeout=60_000)
    times = []
    for _ in range(RUNS + 1):
        start = time.perf_counter()
        page.goto(base + f"/evaluation?period={LABEL}")
        page.wait_for_selector("#ev-main[data-ready=true]", timeout=60_000)
        times.append(time.perf_counter() - start)
        # What the page still asks after it is drawn (the departments) ends before the next.
        page.wait_for_selector("#ev-departments-section:not([data-ready=false])", timeout=60_000)
    context.close()
    return statistics.median(times[1:])  # the first is the warm-up


def _inputs(conn: sa.Connection, streets: list[str]) -> None:
    """The demo scheme (unless one is stored) and a survey per street for LABEL."""
    if conn.execute(sa.select(sa.func.count()).select_from(evaluation_schemes)).scalar_one() == 0:
        scheme = parse_scheme(read_scheme_file(CONFIG_DIR / "evaluation" / "xicheng.yaml"))
        conn.execute(
            sa.insert(evaluation_schemes).values(
                code=scheme.code, version=1, name=scheme.name, body=scheme.body
            )
        )
    conn.execute(sa.delete(survey_results).where(survey_results.c.period == LABEL))
    rows = []
    for i, code in enumerate(streets):
        three = {"满意": 300 + 7 * i, "基本满意": 60 + i, "不满意": 40 - i}
        five = {"1": 10, "2": 15, "3": 40 + i, "4": 120, "5": 200 - 3 * i}
        for question, scale, counts in [
            ("overall", "three", three),
            ("environment", "five", five),
            ("service", "five", five),
        ]:
            rows.append(
                {
                    "period": LABEL,
                    "street_code": code,
                    "question": question,
                    "scale": scale,
                    "sample_size": sum(counts.values()),
                    "counts": counts,
                    "source": "bench",
                    "imported_at": CLOCK.instant,
                }
            )
    conn.execute(sa.insert(survey_results), rows)


def _district_from_requests(engine: sa.Engine) -> float:
    """The obvious alternative for the district level: every street's counts from the rows."""
    sql = sa.text(
        "select street_code, count(*), count(*) filter (where callback_valid), "
        "count(*) filter (where callback_valid and callback_contacted), "
        "count(*) filter (where callback_valid and callback_solved), "
        "count(*) filter (where callback_valid and satisfaction = '满意'), "
        "count(*) filter (where callback_valid and satisfaction = '基本满意') "
        "from service_requests where received_at >= :lo and received_at < :hi group by 1"
    )
    lo = f"{SINCE} 00:00+08"
    hi = "2026-11-01 00:00+08"
    with engine.connect() as conn:
        conn.execute(sql, {"lo": lo, "hi": hi}).all()
        lat = []
        for _ in range(CALLS):
            t = time.perf_counter()
            conn.execute(sql, {"lo": lo, "hi": hi}).all()
            lat.append((time.perf_counter() - t) * 1000)
    return statistics.median(lat)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep a database that has the rows")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    url = loaded_database(resolve_database_url(from_env()), DB, args.rows, args.reuse)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("delete from users where name = :n"), {"n": USER})
        add_user(conn, USER, "district")
        streets = [
            tuple(r) for r in conn.execute(sa.text("select code, name from streets order by 1"))
        ]
        _inputs(conn, [code for code, _ in streets])
        total = conn.execute(sa.text("select count(*) from service_requests")).scalar_one()
        street = conn.execute(
            sa.text(
                "select street_code from service_requests where received_at >= :lo "
                "and received_at < :hi group by 1 order by count(*) desc limit 1"
            ),
            {"lo": f"{SINCE} 00:00+08", "hi": "2026-11-01 00:00+08"},
        ).scalar_one()
        community = conn.execute(
            sa.text(
                "select community_code from service_requests where street_code = :s "
                "group by 1 order by count(*) desc limit 1"
            ),
            {"s": street},
        ).scalar_one()
        grid = conn.execute(
            sa.text(
                "select grid_code from service_requests where community_code = :c "
                "and street_code = :s group by 1 order by count(*) desc limit 1"
            ),
            {"c": community, "s": street},
        ).scalar_one()
        month = conn.execute(
            sa.text(
                "select count(*) from service_requests where street_code = :s "
                "and received_at >= :lo and received_at < :hi"
            ),
            {"s": street, "lo": f"{SINCE} 00:00+08", "hi": "2026-11-01 00:00+08"},
        ).scalar_one()
    answer = result(streets, SINCE, UNTIL, LABEL)  # type: ignore[arg-type]
    app = create_app({"DATABASE_URL": url}, settings=from_env().with_(clock=CLOCK))
    drill: dict[str, dict[str, tuple[float, float]]] = {}
    levels = [("district", "*"), ("street", street), ("community", community), ("grid", grid)]
    with serve(app) as base:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page_seconds = _page_load(browser, base, None)
            stand_in_seconds = _page_load(browser, base, answer)
            browser.close()
        opener = _login(base)
        for variant in ("covering index (bench only)", "plain indexes"):
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                have = conn.execute(sa.text("select to_regclass(:i)"), {"i": INDEX}).scalar()
                if variant.startswith("covering") and have is None:
                    conn.execute(sa.text(COVERING))
                    conn.execute(sa.text("vacuum analyze service_requests"))
                if variant.startswith("plain") and have is not None:
                    conn.execute(sa.text(f"drop index {INDEX}"))
            drill[variant] = {}
            for level, code in levels:
                q = urlencode({"level": level, "code": code, "since": SINCE, "until": UNTIL})
                drill[variant][level] = _latency(opener, f"{base}/api/evaluation/drill?{q}")
    alternative = _district_from_requests(engine)
    engine.dispose()
    lines = [
        "<!-- bench_evaluation_page:start -->",
        "## The evaluation page and its drill-down",
        "",
        f"`python bench/bench_evaluation_page.py --rows {args.rows}` on {machine()}; "
        f"{total:,} requests; headless Chromium via Playwright; {time.strftime('%Y-%m-%d')}.",
        "",
        f"/evaluation?period={LABEL} as a district user, navigation to the ranking table and the "
        f"chart drawn, median of {RUNS} loads after a warm-up: **{page_seconds:.2f} s** with the "
        f"evaluation API computing the period live (target < 1.5 s); {stand_in_seconds:.2f} s "
        "with the API's answers from the tests' stand-in (the page alone).",
        "",
        f"/api/evaluation/drill for October 2026, the busiest street ({street}, {month:,} "
        f"requests that month), {CALLS} calls each, ms (median / p95):",
        "",
        "| level | " + " | ".join(drill) + " |",
        "|---|" + "---:|" * len(drill),
        *[
            f"| {level} | "
            + " | ".join(f"{drill[v][level][0]:.1f} / {drill[v][level][1]:.1f}" for v in drill)
            + " |"
            for level, _ in levels
        ],
        "",
        f"The district level from the street aggregate, against the obvious alternative — every "
        f"street's counts from the month's requests: median {alternative:.1f} ms (SQL alone).",
        "<!-- bench_evaluation_page:end -->",
    ]
    section = "\n".join(lines)
    print(section)
    write_section(args.out, "bench_evaluation_page", section)


if __name__ == "__main__":
    main()
