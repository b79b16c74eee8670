"""The readable maps' browser tests (tests/app/test_maps_browser.py): a small demo district in
a database of its own, served twice from threads — as configured by default (no tile
basemap: the built-in one draws) and with a tile basemap configured — and pages that log in,
record console errors, failed and outside requests, at a frozen clock and a browser zone."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from app import create_app, migrate
from app.config import from_env
from app.db import make_engine
from etl.demo.load import generate, load
from tests.clock import BEIJING, FrozenClock
from tests.helpers import add_user, drop_database, new_database
from tests.plugins.browser import free_port

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
END = dt.date(2026, 11, 18)  # the demo district's last day
CLOCK = FrozenClock(dt.datetime(2026, 11, 18, 15, 0, tzinfo=BEIJING))
PASSWORD = "secret-password"


@dataclass
class Live:
    url: str  # no tile basemap configured
    tiles_url: str  # a tile basemap configured (this server's own path: no outside host)
    engine: sa.Engine
    street: str  # the commander's street, the one with the most requests


@dataclass
class Watch:
    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)


def _serve(app: Any, port: int) -> tuple[Any, str]:
    from waitress.server import create_server

    server = create_server(app, host="127.0.0.1", port=port, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    return server, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def live(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    name = f"blockdata_test_maps_{os.getpid()}"
    url = new_database(server_url, name)
    migrate.upgrade(migrate.alembic_config(url))
    demo = tmp_path_factory.mktemp("demo")
    generate(demo, requests=4_000, cases=200, targets=40, projects=60, end=END)
    engine = make_engine(url)
    with engine.connect() as conn:
        load(conn, demo)
        street = str(
            conn.exec_driver_sql(
                "select street_code from service_requests group by 1 "
                "order by count(*) desc, 1 limit 1"
            ).scalar_one()
        )
        add_user(conn, "district-chief", "district")
        add_user(conn, "commander-1", "commander", street)
        add_user(conn, "planner-1", "planner")
        conn.commit()
    settings = from_env().with_(clock=CLOCK)
    plain = create_app({"DATABASE_URL": url, "LIVE_SECONDS": 60}, settings=settings)
    server, plain_url = _serve(plain, free_port())
    # Tiles from the server itself (an image every tile URL answers): no outside host.
    port = free_port()
    tile = f"http://127.0.0.1:{port}/static/vendor/leaflet/images/layers.png?tile={{z}}/{{x}}/{{y}}"
    tiles = create_app(
        {"DATABASE_URL": url, "LIVE_SECONDS": 60}, settings=settings.with_(basemap_url=tile)
    )
    tiles_server, tiles_url = _serve(tiles, port)
    try:
        yield Live(url=plain_url, tiles_url=tiles_url, engine=engine, street=street)
    finally:
        server.close()
        tiles_server.close()
        engine.dispose()
        for app in (plain, tiles):
            app.extensions["blockdata.engine"].dispose()
        drop_database(server_url, name)


def open_page(
    browser: Any,
    base: str,
    path: str,
    user: str = "district-chief",
    *,
    width: int = 1400,
    height: int = 900,
    timezone: str | None = None,
    instant: dt.datetime | None = None,
) -> tuple[Any, Watch]:
    """The page at `base + path`, logged in as `user`, ready (document.body.dataset.ready)."""
    watch = Watch()
    zone = {"timezone_id": timezone} if timezone else {}
    page = browser.new_page(viewport={"width": width, "height": height}, **zone)
    if instant is not None:
        page.clock.set_fixed_time(instant)
    host = urlsplit(base).netloc

    def route(r: Any) -> Any:
        if urlsplit(r.request.url).netloc != host and not r.request.url.startswith("data:"):
            watch.outside.append(r.request.url)
            return r.abort()
        return r.continue_()

    page.route("**/*", route)
    page.goto(base + "/login?next=" + path)
    page.fill("input[name=name]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.on("console", lambda m: m.type == "error" and watch.errors.append(m.text))
    page.on("pageerror", lambda e: watch.errors.append(str(e)))
    page.on("requestfailed", lambda r: watch.failed.append(f"{r.url} {r.failure}"))
    page.wait_for_url(base + path)
    page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=30_000)
    return page, watch


def clean(watch: Watch) -> None:
    assert watch.outside == []
    assert watch.failed == []
    assert watch.errors == []


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with contextlib.suppress(Exception):
        page.screenshot(path=str(ARTIFACTS / f"maps-{name}.png"), full_page=False)
