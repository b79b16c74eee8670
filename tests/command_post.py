"""The command post's live server for the browser tests (tests/app/test_command_post_browser.py,
tests/app/test_whistle_browser.py): a committed demo database with a case of the first street,
the server on the injected clock `CLOCK`, its users, and the page helpers."""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from app import create_app, migrate
from app.config import from_env
from app.db import make_engine
from etl.demo.load import generate, load
from etl.units import build_units
from layers.cases import create_case
from tests.clock import BEIJING, FrozenClock
from tests.helpers import add_user, drop_database, new_database
from tests.plugins.browser import free_port

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
END = dt.date(2026, 11, 18)
START = dt.datetime(2026, 11, 18, 9, 0, tzinfo=BEIJING)
CLOCK = FrozenClock(START)  # the live server's clock, moved by the test
# A category of its own (the configured default limit, 7 working days): the queue filtered
# by it shows the test's case whatever else the demo holds.
CATEGORY = "测试·夜间施工"
CSP_LISTENER = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) =>
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""


@dataclass
class Live:
    url: str
    engine: sa.Engine
    street: str
    unit: str
    case_id: int


@pytest.fixture(scope="module")
def live(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    from waitress.server import create_server

    name = f"blockdata_test_post_{os.getpid()}"
    url = new_database(server_url, name)
    migrate.upgrade(migrate.alembic_config(url))
    demo = tmp_path_factory.mktemp("demo")
    generate(demo, requests=500, cases=30, targets=5, projects=5, end=END)
    engine = make_engine(url)
    with engine.connect() as conn:
        load(conn, demo)
        if not conn.exec_driver_sql("select count(*) from units").scalar_one():
            build_units(conn)
        street = conn.exec_driver_sql("select min(code) from streets").scalar_one()
        unit = f"{street}-city"
        assert conn.execute(sa.text("select 1 from units where code = :u"), {"u": unit}).first()
        add_user(conn, "post-clerk", "clerk", street)
        add_user(conn, "post-commander", "commander", street)
        add_user(conn, "post-department", "department", unit=unit)
        add_user(conn, "post-district", "district")
        add_user(conn, "post-analyst", "analyst")
        received = START - dt.timedelta(hours=1)
        source = conn.execute(
            sa.text(
                "insert into service_requests (source, source_id, received_at, channel, "
                "category, description, street_code, geom) select 'test-post', 'POST-1', :t, "
                "'12345热线', :category, '夜间施工噪声 <b>扰民</b>', code, "
                "ST_PointOnSurface(geom) from streets where code = :s returning id"
            ),
            {"t": received, "s": street, "category": CATEGORY},
        ).scalar_one()
        case = create_case(
            conn,
            kind="service_request",
            source_id=source,
            street_code=street,
            category=CATEGORY,
            received_at=received,
        )
        conn.commit()
    app = create_app(
        {"DATABASE_URL": url, "LIVE_SECONDS": 1}, settings=from_env().with_(clock=CLOCK)
    )
    port = free_port()
    server = create_server(app, host="127.0.0.1", port=port, threads=6)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield Live(f"http://127.0.0.1:{port}", engine, street, unit, int(case["id"]))
    finally:
        server.close()
        engine.dispose()
        app.extensions["blockdata.engine"].dispose()
        drop_database(server_url, name)


@dataclass
class Seen:
    errors: list[str]
    outside: list[str]


def _overdue(live: Live, now: dt.datetime) -> tuple[dict[str, int], dict[str, int]]:
    """Open cases past due at `now`, per street and per main unit, by SQL written here."""
    sql = (
        "select {key}, count(*) filter (where due_at < :now) from cases "
        "where state in ('received', 'dispatched', 'accepted', 'contacted', 'returned') "
        "and {key} is not null group by {key}"
    )
    with live.engine.connect() as conn:
        streets = conn.execute(sa.text(sql.format(key="street_code")), {"now": now}).all()
        units = conn.execute(sa.text(sql.format(key="main_unit")), {"now": now}).all()
    return dict(streets), dict(units)  # type: ignore[arg-type]


def _open_page(browser: object, live: Live, user: str, path: str) -> tuple[object, Seen]:
    """A page logged in as `user` through the form, landed on `path`."""
    seen = Seen([], [])
    page = browser.new_page(viewport={"width": 1400, "height": 900}, timezone_id="UTC")  # type: ignore[attr-defined]
    page.add_init_script(CSP_LISTENER)
    host = urlsplit(live.url).netloc

    def route(r):  # type: ignore[no-untyped-def]
        if urlsplit(r.request.url).netloc != host and not r.request.url.startswith("data:"):
            seen.outside.append(r.request.url)
            return r.abort()
        return r.continue_()

    page.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and seen.errors.append(m.text))
    page.on("pageerror", lambda e: seen.errors.append(str(e)))
    page.goto(live.url + "/login?next=" + path)
    page.fill("input[name=name]", user)
    page.fill("input[name=password]", "secret-password")
    page.click("button[type=submit]")
    page.wait_for_url(live.url + path)
    return page, seen


def _login(browser: object, live: Live, user: str, lands: str) -> tuple[object, Seen]:
    """A page logged in as `user` through the form, landed on `lands`, its queue drawn and
    filtered to the test's case."""
    page, seen = _open_page(browser, live, user, lands)
    page.wait_for_function("() => document.body.dataset.postReady === '1'", timeout=30_000)
    page.fill("#bd-queue-filters input[name=category]", CATEGORY)
    page.press("#bd-queue-filters input[name=category]", "Enter")
    page.wait_for_function("() => document.body.dataset.queueTotal === '1'")
    page.wait_for_selector(_row(live))
    return page, seen


def _clean(page: object, seen: Seen) -> None:
    csp = page.evaluate("window.__csp || []")  # type: ignore[attr-defined]
    assert (seen.errors, seen.outside, csp) == ([], [], [])


def _shot(page: object, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))  # type: ignore[attr-defined]


def _row(live: Live) -> str:
    return f"#bd-queue tbody tr[data-id='{live.case_id}']"


def _act(page: object, live: Live, action: str, fill: dict[str, str] | None = None) -> None:
    """Open the case's drawer from the queue, take `action` through its form."""
    page.click(_row(live))  # type: ignore[attr-defined]
    page.wait_for_selector(f"#bd-drawer[data-id='{live.case_id}']")  # type: ignore[attr-defined]
    page.click(f"#bd-drawer-actions button[data-action='{action}']")  # type: ignore[attr-defined]
    page.wait_for_selector(f"#bd-action-form[data-action='{action}']")  # type: ignore[attr-defined]
    for selector, value in (fill or {}).items():
        if selector.startswith("select"):
            page.select_option(f"#bd-action-form {selector}", value)  # type: ignore[attr-defined]
        else:
            page.fill(f"#bd-action-form {selector}", value)  # type: ignore[attr-defined]
    page.click("#bd-action-form button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_selector("#bd-action-form", state="hidden")  # type: ignore[attr-defined]


def _state(live: Live) -> sa.RowMapping:
    with live.engine.connect() as conn:
        return (
            conn.execute(sa.text("select * from cases where id = :i"), {"i": live.case_id})
            .mappings()
            .one()
        )
