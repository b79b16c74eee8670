"""Benchmark: the bytes a first (cold-cache) load of each page transfers, in a real browser.

    python bench/bench_first_load.py [--requests 4000] [--out docs/benchmarks.md]

Builds a database `blockdata_bench_first_load` with the demo district (N requests), serves it
with waitress in this process, logs in through the form in headless Chromium (Playwright,
Debian's /usr/bin/chromium, as tests/plugins/browser.py launches it) and opens each page with
the browser's cache disabled, summing Chrome's own count of the bytes that came over the wire
(CDP `Network.loadingFinished`'s `encodedDataLength`: headers and the body as sent, compressed
or not) until the page says it is ready (or the network is idle), per page and per asset type.

Variants, in the same run and the same process: `uncompressed` (COMPRESS_REGISTER off) and
`compressed` (as served). The target: every page ≤ 300 KB compressed. `--shots DIR` saves a
screenshot of each page and variant (to compare with an older checkout's). Results replace
the `bench_first_load` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_etl import machine, write_section  # noqa: E402

from app import create_app, migrate  # noqa: E402
from app.config import from_env, resolve_database_url  # noqa: E402
from app.db import make_engine  # noqa: E402
from etl.demo.load import generate, load  # noqa: E402
from tests.helpers import add_user  # noqa: E402
from tests.plugins.browser import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402

DB = "blockdata_bench_first_load"
END = dt.date(2026, 11, 18)
TARGET = 300 * 1024
PASSWORD = "secret-password"  # tests.helpers.add_user's
VARIANTS = {"uncompressed": False, "compressed": True}
TYPES = ("Document", "Script", "Stylesheet", "Font", "Image", "Fetch", "XHR", "Other")


def build(server: str, requests: int, work: Path) -> tuple[str, str]:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{DB}" with (force)')
        conn.execute(f'create database "{DB}"')
    url = make_url(server).set(database=DB).render_as_string(hide_password=False)
    migrate.upgrade(migrate.alembic_config(url))
    generate(work, requests=requests, cases=200, targets=40, projects=60, end=END)
    engine = make_engine(url)
    with engine.connect() as conn:
        load(conn, work)
        street = str(conn.exec_driver_sql("select min(code) from streets").scalar_one())
        add_user(conn, "bench-district", "district")
        add_user(conn, "bench-clerk", "clerk", street)
        conn.commit()
    engine.dispose()
    return url, street


def pages_to_load(street: str) -> list[tuple[str, str | None]]:
    """(path, user): every page of the issue, as a user who may open it (None: anonymous)."""
    return [
        ("/", "bench-district"),
        (f"/command/{street}", "bench-district"),
        ("/planner", "bench-district"),
        ("/queue", "bench-clerk"),
        ("/evaluation", "bench-district"),
        ("/login", None),
    ]


def first_load(
    browser: Any, base: str, path: str, user: str | None, shot: Path | None = None
) -> dict[str, int]:
    """Bytes over the wire per resource type for one cold-cache load of `path`."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        if user is not None:
            login = context.new_page()
            login.goto(base + "/login")
            login.fill("input[name=name]", user)
            login.fill("input[name=password]", PASSWORD)
            login.click("button[type=submit]")
            login.wait_for_load_state("networkidle")
            login.close()
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        kinds: dict[str, str] = {}
        sizes: dict[str, int] = defaultdict(int)
        cdp.on("Network.responseReceived", lambda e: kinds.__setitem__(e["requestId"], e["type"]))

        def finished(event: dict[str, Any]) -> None:
            kind = kinds.get(event["requestId"], "Other")
            sizes[kind if kind in TYPES else "Other"] += int(event["encodedDataLength"])

        cdp.on("Network.loadingFinished", finished)
        cdp.send("Network.enable")
        cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
        page.goto(base + path)
        if path.startswith(("/command", "/planner")) or path == "/":
            page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=60_000)
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(300)  # the last loadingFinished events
        if shot is not None:
            page.screenshot(path=str(shot))
        return dict(sizes)
    finally:
        context.close()


def run_variant(
    browser: Any, url: str, street: str, name: str, compressed: bool, shots: Path | None
) -> dict[str, dict[str, int]]:
    from waitress.server import create_server

    app = create_app({"DATABASE_URL": url, "COMPRESS_REGISTER": compressed})
    port = free_port()
    server = create_server(app, host="127.0.0.1", port=port, threads=6)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        return {
            path: first_load(browser, base, path, user, shot(shots, name, path))
            for path, user in pages_to_load(street)
        }
    finally:
        server.close()
        app.extensions["blockdata.engine"].dispose()


def shot(shots: Path | None, variant: str, path: str) -> Path | None:
    if shots is None:
        return None
    shots.mkdir(parents=True, exist_ok=True)
    slug = path.strip("/").split("/")[0] or "overview"
    return shots / f"{slug}-{variant}.png"


def kb(n: int) -> str:
    return f"{n / 1024:,.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4_000)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--shots", type=Path, default=None, help="save screenshots here")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    server = resolve_database_url(from_env())
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        url, street = build(server, args.requests, Path(tmp))
    results: dict[str, dict[str, dict[str, int]]] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for name, compressed in VARIANTS.items():
                results[name] = run_variant(browser, url, street, name, compressed, args.shots)
            browser.close()
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{DB}" with (force)')
    load_end = os.getloadavg()[0]

    paths = [path for path, _ in pages_to_load(street)]
    total = {v: {p: sum(results[v][p].values()) for p in paths} for v in VARIANTS}
    lines = [
        "<!-- bench_first_load:start -->",
        "## First page load: bytes transferred",
        "",
        f"`python bench/bench_first_load.py --requests {args.requests}` (run by `make bench`) on "
        f"{machine()}; the demo district with {args.requests:,} requests; headless Chromium via "
        "Playwright, cache disabled, one load per page and variant after logging in; bytes as "
        "Chrome counts them on the wire (CDP `encodedDataLength`: headers + body as sent), until "
        f"the page is ready and the network idle; {time.strftime('%Y-%m-%d')}; load average "
        f"{load_start:.1f} → {load_end:.1f}. Same run, same process: `uncompressed` "
        "(COMPRESS_REGISTER off) and `compressed` (as served: Flask-Compress, br or gzip). "
        "Target: ≤ 300 KB per page. KB = 1,024 bytes.",
        "",
        "| page | " + " | ".join(f"{v} KB" for v in VARIANTS) + " | ≤ 300 KB |",
        "|---|" + "---:|" * len(VARIANTS) + ":---:|",
        *[
            f"| `{p}` | "
            + " | ".join(kb(total[v][p]) for v in VARIANTS)
            + f" | {'yes' if total['compressed'][p] <= TARGET else 'NO'} |"
            for p in paths
        ],
        "",
        "By asset type, uncompressed → compressed (KB):",
        "",
        "| page | " + " | ".join(TYPES) + " |",
        "|---|" + "---:|" * len(TYPES),
        *[
            f"| `{p}` | "
            + " | ".join(
                f"{kb(results['uncompressed'][p].get(t, 0))} → "
                f"{kb(results['compressed'][p].get(t, 0))}"
                for t in TYPES
            )
            + " |"
            for p in paths
        ],
        "<!-- bench_first_load:end -->",
    ]
    section = "\n".join(lines)
    print(section)
    write_section(args.out, "bench_first_load", section)


if __name__ == "__main__":
    main()
