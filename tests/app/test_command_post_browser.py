"""The command post's loop in a real browser (Debian's Chromium via Playwright, live server):
a clerk dispatches a case from the queue page, time passes beyond its due time (the server's
injected clock), the commander's command page shows the 超期 badge in the queue and on the
map, a department user accepts and resolves it from its own queue page, the clerk enters the
callback, and the commander — without reloading — sees the 超期 badge disappear and the whole
timeline in the case drawer. Every page runs under the server's CSP, with no console error,
failed request or outside request. Expected values come from the database rows."""

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
from layers import whistles as w
from layers.cases import Actor, create_case
from tests.clock import BEIJING, FrozenClock
from tests.helpers import add_user, drop_database, new_database
from tests.plugins.browser import free_port

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
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


def test_dispatch_accept_resolve_callback_and_the_overdue_badge(
    browser: object, live: Live
) -> None:
    CLOCK.instant = START
    clerk, clerk_seen = _login(browser, live, "post-clerk", "/queue")
    row = clerk.locator(_row(live))  # type: ignore[attr-defined]
    assert row.get_attribute("data-state") == "received"
    # The clerk dispatches to the street's 城管 unit.
    _act(clerk, live, "dispatch", {"select[name=main_unit]": live.unit})
    case = _state(live)
    assert (case["state"], case["main_unit"], case["version"]) == ("dispatched", live.unit, 1)
    assert clerk.locator("#bd-drawer").get_attribute("data-state") == "dispatched"  # type: ignore[attr-defined]
    # A stale form: another dispatch of version 0 is refused with the API's Chinese message.
    assert clerk.locator("#bd-drawer-actions button[data-action='dispatch']").count() == 0  # type: ignore[attr-defined]

    # Time passes beyond the due time: the commander's queue and map show 超期.
    CLOCK.instant = case["due_at"] + dt.timedelta(hours=1)
    commander, commander_seen = _login(browser, live, "post-commander", f"/command/{live.street}")
    badge = commander.locator(f"{_row(live)} .bd-badge-overdue")  # type: ignore[attr-defined]
    assert badge.text_content() == "超期"
    commander.wait_for_selector(".bd-map-badge.bd-badge-overdue")  # type: ignore[attr-defined]
    load = commander.locator(f"#bd-load tr[data-unit='{live.unit}'] td")  # type: ignore[attr-defined]
    assert load.nth(3).text_content() == "1"  # one overdue case for the unit
    _shot(commander, "command-post-overdue")
    # The district overview: 超期 per street and per unit, as the database holds them.
    overview, overview_seen = _open_page(browser, live, "post-district", "/")
    overview.wait_for_function("() => document.body.dataset.overdueReady === '1'")  # type: ignore[attr-defined]
    want_streets, want_units = _overdue(live, CLOCK.instant)
    cells = overview.locator("#bd-overdue-streets tbody tr")  # type: ignore[attr-defined]
    shown = {
        cells.nth(i).get_attribute("data-code"): int(
            cells.nth(i).locator("td").nth(3).text_content()
        )
        for i in range(cells.count())
    }
    assert shown == want_streets and shown[live.street] >= 1
    cells = overview.locator("#bd-overdue-units tbody tr")  # type: ignore[attr-defined]
    shown = {
        cells.nth(i).get_attribute("data-code"): int(
            cells.nth(i).locator("td").nth(3).text_content()
        )
        for i in range(cells.count())
    }
    assert shown == {u: n for u, n in want_units.items() if n}
    _shot(overview, "overview-overdue")
    _clean(overview, overview_seen)
    overview.close()  # type: ignore[attr-defined]
    # The analyst opens the overview too, but works no case: no panel, no refused call.
    analyst, analyst_seen = _open_page(browser, live, "post-analyst", "/")
    analyst.wait_for_function("() => document.body.dataset.ready === '1'")  # type: ignore[attr-defined]
    assert analyst.locator("#bd-overdue-streets").count() == 0  # type: ignore[attr-defined]
    _clean(analyst, analyst_seen)
    analyst.close()  # type: ignore[attr-defined]

    # The department accepts and resolves from its own queue.
    department, department_seen = _login(browser, live, "post-department", "/queue")
    _act(department, live, "accept")
    _act(department, live, "resolve", {"textarea[name=result]": "已协调施工方停工，噪声消除"})
    assert _state(live)["state"] == "resolved"
    # The clerk enters the callback (the drawer shows what the API allows now).
    clerk.click("#bd-drawer-close")  # type: ignore[attr-defined]
    _act(clerk, live, "callback", {"select[name=rating]": "满意"})
    case = _state(live)
    assert (case["state"], case["rating"], case["version"]) == ("called_back", "满意", 4)

    # Without a reload, the commander's badge goes (resolved late: 超期办结) ...
    commander.wait_for_selector(  # type: ignore[attr-defined]
        f"{_row(live)}[data-state='called_back']", timeout=15_000
    )
    assert commander.locator(f"{_row(live)} .bd-badge-overdue").count() == 0  # type: ignore[attr-defined]
    assert commander.locator(f"{_row(live)}").get_attribute("data-due") == "resolved_late"  # type: ignore[attr-defined]
    # ... and the drawer shows the whole timeline, oldest first, as the history holds it.
    commander.click(_row(live))  # type: ignore[attr-defined]
    commander.wait_for_selector(f"#bd-drawer[data-id='{live.case_id}']")  # type: ignore[attr-defined]
    with live.engine.connect() as conn:
        history = conn.execute(
            sa.text("select action, user_name from case_history where case_id = :i order by id"),
            {"i": live.case_id},
        ).all()
    assert [h.action for h in history] == ["dispatch", "accept", "resolve", "callback"]
    items = commander.locator("#bd-timeline li")  # type: ignore[attr-defined]
    assert [items.nth(i).get_attribute("data-action") for i in range(items.count())] == [
        h.action for h in history
    ]
    text = commander.locator("#bd-timeline").text_content()  # type: ignore[attr-defined]
    assert all(h.user_name in text for h in history)
    assert "已协调施工方停工" in text
    # Data is text, never markup.
    assert commander.locator("#bd-drawer b:has-text('扰民')").count() == 0  # type: ignore[attr-defined]
    assert "<b>扰民</b>" in commander.locator("#bd-drawer-facts").text_content()  # type: ignore[attr-defined]
    # The commander's drawer offers what a commander may do after the callback (the API's).
    buttons = commander.locator("#bd-drawer-actions button")  # type: ignore[attr-defined]
    offered = [buttons.nth(i).get_attribute("data-action") for i in range(buttons.count())]
    assert offered == ["supervise", "close"]
    _shot(commander, "command-post-timeline")
    _shot(department, "queue-department")
    for page, seen in (
        (clerk, clerk_seen),
        (commander, commander_seen),
        (department, department_seen),
    ):
        _clean(page, seen)
        page.close()  # type: ignore[attr-defined]


def test_a_stale_action_shows_the_chinese_409(browser: object, live: Live) -> None:
    """Two drawers on one case: the second to act gets the API's 409 message in Chinese."""
    CLOCK.instant = START + dt.timedelta(days=3)
    first, seen_first = _login(browser, live, "post-clerk", "/queue")
    second, seen_second = _login(browser, live, "post-commander", f"/command/{live.street}")
    case = _state(live)
    if case["state"] != "called_back":
        pytest.fail("runs after the loop test (module order)")
    for page in (first, second):
        page.click(_row(live))  # type: ignore[attr-defined]
        page.wait_for_selector(f"#bd-drawer[data-id='{live.case_id}']")  # type: ignore[attr-defined]
        page.click("#bd-drawer-actions button[data-action='close']")  # type: ignore[attr-defined]
    first.click("#bd-action-form button[type=submit]")  # type: ignore[attr-defined]
    first.wait_for_selector("#bd-drawer[data-state='closed']")  # type: ignore[attr-defined]
    second.click("#bd-action-form button[type=submit]")  # type: ignore[attr-defined]
    second.wait_for_function(  # type: ignore[attr-defined]
        "() => document.getElementById('bd-drawer-error').textContent.length > 0"
    )
    message = second.locator("#bd-drawer-error").text_content()  # type: ignore[attr-defined]
    assert "已被他人修改" in message or "状态下不能" in message
    assert _state(live)["version"] == case["version"] + 1
    for page, seen in ((first, seen_first), (second, seen_second)):
        # The 409 answer is a failed fetch the console reports: it is the expected one.
        seen.errors = [e for e in seen.errors if "409" not in e]
        _clean(page, seen)
        page.close()  # type: ignore[attr-defined]


def test_a_summoned_unit_reports_from_its_queue(browser: object, live: Live) -> None:
    """A whistle summons the unit: the commander sees it in progress; the department reports
    arrival (late, its delay shown) and completion from its queue page."""
    CLOCK.instant = START + dt.timedelta(days=4)
    meet = CLOCK.instant - dt.timedelta(minutes=30)
    with live.engine.connect() as conn:
        whistle = w.blow(
            conn,
            street=live.street,
            target=w.Place("lane", ref="测试胡同"),
            unit_codes=[live.unit],
            reason="占道经营联合整治",
            meeting_point="胡同东口",
            meet_at=meet,
            actor=Actor("post-clerk", "clerk"),
            now=CLOCK.instant - dt.timedelta(hours=2),
        )
        conn.commit()
    commander, commander_seen = _open_page(
        browser, live, "post-commander", f"/command/{live.street}"
    )
    commander.wait_for_selector(f"#bd-whistles li[data-id='{whistle}']")  # type: ignore[attr-defined]
    text = commander.locator(f"#bd-whistles li[data-id='{whistle}']").text_content()  # type: ignore[attr-defined]
    assert "占道经营联合整治" in text and "未报到" in text
    assert commander.locator("#bd-whistles button").count() == 0  # type: ignore[attr-defined]
    department, department_seen = _open_page(browser, live, "post-department", "/queue")
    item = f"#bd-whistles li[data-id='{whistle}'] li[data-unit='{live.unit}']"
    department.wait_for_selector(item)  # type: ignore[attr-defined]
    department.click(f"{item} button")  # type: ignore[attr-defined]
    department.wait_for_selector(f"{item}:has-text('已报到')")  # type: ignore[attr-defined]
    assert "迟到 30 分钟" in department.locator(item).text_content()  # type: ignore[attr-defined]
    department.click(f"{item} button")  # type: ignore[attr-defined]
    with live.engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "select arrived_at, completed_at from whistle_units "
                "where whistle_id = :w and unit_code = :u"
            ),
            {"w": whistle, "u": live.unit},
        ).one()
    assert row.arrived_at == CLOCK.instant
    department.wait_for_function(  # type: ignore[attr-defined]
        f"() => !document.querySelector(\"#bd-whistles li[data-id='{whistle}']\")"
    )
    with live.engine.connect() as conn:
        done = conn.execute(
            sa.text("select completed_at from whistle_units where whistle_id = :w"),
            {"w": whistle},
        ).scalar_one()
    assert done == CLOCK.instant
    # The commander's list keeps it without a reload, now to rate (completed, not rated).
    commander.wait_for_selector(  # type: ignore[attr-defined]
        f"#bd-whistles li[data-id='{whistle}'] li[data-unit='{live.unit}'] form.bd-whistle-rate",
        timeout=15_000,
    )
    text = commander.locator(f"#bd-whistles li[data-id='{whistle}']").text_content()  # type: ignore[attr-defined]
    assert "待评价" in text and "已完成" in text
    for page, seen in ((commander, commander_seen), (department, department_seen)):
        _clean(page, seen)
        page.close()  # type: ignore[attr-defined]
