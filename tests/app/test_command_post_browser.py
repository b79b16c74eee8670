"""The command post's loop in a real browser (Debian's Chromium via Playwright, live server):
a clerk dispatches a case from the queue page, time passes beyond its due time (the server's
injected clock), the commander's command page shows the 超期 badge in the queue and on the
map, a department user accepts and resolves it from its own queue page, the clerk enters the
callback, and the commander — without reloading — sees the 超期 badge disappear and the whole
timeline in the case drawer. Every page runs under the server's CSP, with no console error,
failed request or outside request. Expected values come from the database rows."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from layers import whistles as w
from layers.cases import Actor
from tests.command_post import (  # the live server, its clock and the page helpers
    CLOCK,
    START,
    Live,
    _act,
    _clean,
    _login,
    _open_page,
    _overdue,
    _row,
    _shot,
    _state,
    live,
)

pytestmark = pytest.mark.browser
__all__ = ["live"]  # the module-scoped fixture, used by name


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
