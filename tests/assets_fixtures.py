"""Helpers of the asset and export-button tests: a committed demo district served live with
a frozen clock and one user per role, logging in through the form, and Chrome's own count of
the bytes a page load transferred (CDP `Network.loadingFinished`, cache disabled)."""

from __future__ import annotations

import datetime as dt
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app import create_app
from app.config import from_env
from app.db import make_engine
from tests.clock import BEIJING, FrozenClock
from tests.helpers import add_unit, add_user
from tests.plugins.ogc import demo_database, serve

END = dt.date(2026, 11, 18)  # the demo district's last day
PASSWORD = "secret-password"  # tests.helpers.add_user's
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
# The roles that open a map page, and the street roles among them.
MAP_ROLES = ("district", "commander", "analyst", "planner", "assessor")
STREET_ROLES = ("commander", "clerk")


@dataclass
class Site:
    url: str
    engine: sa.Engine
    street: str
    clock: FrozenClock

    def user(self, role: str) -> str:
        return f"assets-{role}"


@pytest.fixture(scope="module")
def site(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The demo district (1,500 requests up to END) in its own committed database, served by
    waitress with a frozen clock; a user `assets-<role>` per role (street roles: the first
    street)."""
    name = f"blockdata_test_assets_{os.getpid()}"
    workdir = tmp_path_factory.mktemp("assets-demo")
    clock = FrozenClock(dt.datetime(2026, 11, 18, 15, 0, tzinfo=BEIJING))
    with demo_database(
        server_url, name, workdir, requests=1500, cases=60, targets=20, projects=30, end=END
    ) as url:
        engine = make_engine(url)
        with engine.begin() as conn:
            street = str(conn.exec_driver_sql("select min(code) from streets").scalar_one())
            unit = add_unit(conn)  # an assessor's (a district department)
            for role in (*MAP_ROLES, "clerk"):
                add_user(
                    conn,
                    f"assets-{role}",
                    role,
                    street if role in STREET_ROLES else None,
                    unit if role == "assessor" else None,
                )
        app = create_app(
            {"DATABASE_URL": url, "LIVE_SECONDS": 60}, settings=from_env().with_(clock=clock)
        )
        try:
            with serve(app) as base:
                yield Site(url=base, engine=engine, street=street, clock=clock)
        finally:
            engine.dispose()


def logged_in(
    browser: Any, site: Site, role: str | None, timezone: str | None = None
) -> tuple[Any, Any]:
    """A browser context logged in through the form as the role's user (None: anonymous),
    and a page of it; downloads accepted."""
    zone = {"timezone_id": timezone} if timezone else {}
    context = browser.new_context(
        viewport={"width": 1400, "height": 900}, accept_downloads=True, **zone
    )
    page = context.new_page()
    if role is not None:
        page.goto(site.url + "/login")
        page.fill("input[name=name]", site.user(role))
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
    return context, page


@dataclass
class Load:
    """What one page load did: bytes on the wire by resource type, console errors, failed
    requests."""

    sizes: dict[str, int]
    errors: list[str]
    failed: list[str]

    @property
    def total(self) -> int:
        return sum(self.sizes.values())


def first_load(context: Any, page: Any, url: str, ready: bool) -> Load:
    """Open `url` in `page` with the cache disabled, summing Chrome's `encodedDataLength`
    (headers and body as they came over the wire, compressed or not) per resource type,
    until the page is ready (`document.body.dataset.ready`) and the network idle."""
    cdp = context.new_cdp_session(page)
    kinds: dict[str, str] = {}
    sizes: dict[str, int] = defaultdict(int)
    errors: list[str] = []
    failed: list[str] = []
    cdp.on("Network.responseReceived", lambda e: kinds.__setitem__(e["requestId"], e["type"]))

    def finished(event: dict[str, Any]) -> None:
        sizes[kinds.get(event["requestId"], "Other")] += int(event["encodedDataLength"])

    cdp.on("Network.loadingFinished", finished)
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: failed.append(f"{r.url} {r.failure}"))
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    page.goto(url)
    if ready:
        page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=30_000)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(300)  # the last loadingFinished events
    return Load(dict(sizes), errors, failed)


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
