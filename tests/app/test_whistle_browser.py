"""吹哨报到 from the command post in a real browser (Debian's Chromium via Playwright, live
server, demo database, injected clock): the commander blows a whistle on a case from its
drawer, summoning two units; a department user of one of them reports arrival and completion
from its /queue page; the commander rates it 基本满意 with a comment from the whistles panel.
The database holds what the pages did (checked by SQL here); the street centre's clerk is
offered the whistle too, an analyst is not. No console error, no outside request."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from tests.clock import BEIJING
from tests.command_post import (  # the live server and its logins
    CLOCK,
    START,
    Live,
    _clean,
    _login,
    _open_page,
    _row,
    _shot,
    live,
)

pytestmark = pytest.mark.browser
__all__ = ["live"]  # the module-scoped fixture, used by name

OTHER = "district-fire"  # a district department, summoned with the street's 城管
MEET = dt.datetime(2026, 11, 18, 9, 30, tzinfo=BEIJING)
REASON = "夜间施工 <i>联合</i> 整治"


def _whistle(page: object, whistle: int, unit: str) -> str:
    return f"#bd-whistles li[data-id='{whistle}'] li[data-unit='{unit}']"


def test_blow_report_and_rate_from_the_pages(browser: object, live: Live) -> None:
    CLOCK.instant = START
    with live.engine.connect() as conn:
        address = conn.execute(
            sa.text(
                "select coalesce(r.address, '') from cases c "
                "join service_requests r on r.id = c.service_request_id where c.id = :i"
            ),
            {"i": live.case_id},
        ).scalar_one()
        assert conn.execute(sa.text("select 1 from units where code = :u"), {"u": OTHER}).first()
    commander, commander_seen = _login(browser, live, "post-commander", f"/command/{live.street}")
    commander.click(_row(live))  # type: ignore[attr-defined]
    commander.wait_for_selector(f"#bd-drawer[data-id='{live.case_id}']")  # type: ignore[attr-defined]
    commander.click("#bd-drawer-whistle button[data-action='whistle']")  # type: ignore[attr-defined]
    commander.wait_for_selector("#bd-action-form[data-action='whistle']")  # type: ignore[attr-defined]
    form = "#bd-action-form"
    # The meeting point starts as the case's address; the street's centre is not offered.
    assert commander.input_value(f"{form} input[name=meeting_point]") == address  # type: ignore[attr-defined]
    offered = commander.locator(f"{form} select[name=units] option")  # type: ignore[attr-defined]
    codes = {offered.nth(i).get_attribute("value") for i in range(offered.count())}
    assert {live.unit, OTHER} <= codes and f"{live.street}-centre" not in codes
    # No unit chosen: the page says so and posts nothing.
    commander.fill(f"{form} input[name=meeting_point]", "工地东门")  # type: ignore[attr-defined]
    commander.fill(f"{form} input[name=meet_at]", "2026-11-18T09:30")  # type: ignore[attr-defined]
    commander.fill(f"{form} textarea[name=reason]", REASON)  # type: ignore[attr-defined]
    commander.click(f"{form} button[type=submit]")  # type: ignore[attr-defined]
    assert commander.text_content("#bd-drawer-error") == "请至少选择一个召集单位"  # type: ignore[attr-defined]
    commander.select_option(f"{form} select[name=units]", [live.unit, OTHER])  # type: ignore[attr-defined]
    commander.click(f"{form} button[type=submit]")  # type: ignore[attr-defined]
    commander.wait_for_selector(form, state="hidden")  # type: ignore[attr-defined]

    with live.engine.connect() as conn:
        blown = (
            conn.execute(sa.text("select * from whistles where case_id = :i"), {"i": live.case_id})
            .mappings()
            .one()
        )
        summoned = conn.execute(
            sa.text("select unit_code from whistle_units where whistle_id = :w order by 1"),
            {"w": blown["id"]},
        ).scalars()
        assert sorted(summoned) == sorted([live.unit, OTHER])
    assert (blown["street_code"], blown["target_kind"], blown["meet_at"]) == (
        live.street,
        "case",
        MEET,
    )
    assert (blown["meeting_point"], blown["reason"], blown["blown_by"]) == (
        "工地东门",
        REASON,
        "post-commander",
    )
    whistle = int(blown["id"])
    # The panel shows it at once, as text.
    commander.wait_for_selector(_whistle(commander, whistle, OTHER))  # type: ignore[attr-defined]
    panel = commander.locator(f"#bd-whistles li[data-id='{whistle}']")  # type: ignore[attr-defined]
    assert REASON in panel.text_content() and "未报到" in panel.text_content()
    assert commander.locator("#bd-whistles i").count() == 0  # type: ignore[attr-defined]
    commander.click("#bd-drawer-close")  # type: ignore[attr-defined]  (it covers the panel)

    # The department of the street's 城管 reports from its queue: 15 minutes late, then done.
    department, department_seen = _open_page(browser, live, "post-department", "/queue")
    department.wait_for_function("() => document.body.dataset.postReady === '1'")  # type: ignore[attr-defined]
    mine = _whistle(department, whistle, live.unit)
    department.wait_for_selector(mine)  # type: ignore[attr-defined]
    assert department.locator(f"{_whistle(department, whistle, OTHER)} button").count() == 0  # type: ignore[attr-defined]
    assert department.locator("#bd-whistles form").count() == 0  # type: ignore[attr-defined]
    CLOCK.instant = MEET + dt.timedelta(minutes=15)
    department.click(f"{mine} button")  # type: ignore[attr-defined]
    department.wait_for_selector(f"{mine}:has-text('已报到')")  # type: ignore[attr-defined]
    assert "迟到 15 分钟" in department.locator(mine).text_content()  # type: ignore[attr-defined]
    arrived = CLOCK.instant
    CLOCK.instant = MEET + dt.timedelta(hours=1)
    department.click(f"{mine} button")  # type: ignore[attr-defined]
    # Its part done, the whistle leaves the department's panel (it rates nothing).
    department.wait_for_function(  # type: ignore[attr-defined]
        f"() => !document.querySelector(\"#bd-whistles li[data-id='{whistle}']\")"
    )
    completed = CLOCK.instant

    # The commander, without a reload, is offered to rate the unit that completed only.
    CLOCK.instant = MEET + dt.timedelta(hours=2)
    rate = f"{_whistle(commander, whistle, live.unit)} form.bd-whistle-rate"
    commander.wait_for_selector(rate, timeout=15_000)  # type: ignore[attr-defined]
    assert commander.locator(f"{_whistle(commander, whistle, OTHER)} form").count() == 0  # type: ignore[attr-defined]
    commander.select_option(f"{rate} select[name=rating]", "基本满意")  # type: ignore[attr-defined]
    commander.fill(f"{rate} input[name=comment]", "到场稍迟，<b>处置到位</b>")  # type: ignore[attr-defined]
    commander.click(f"{rate} button[type=submit]")  # type: ignore[attr-defined]
    rated = f"{_whistle(commander, whistle, live.unit)}[data-rating='基本满意']"
    commander.wait_for_selector(rated)  # type: ignore[attr-defined]
    shown = commander.locator(rated).text_content()  # type: ignore[attr-defined]
    assert "评价：基本满意（到场稍迟，<b>处置到位</b>）" in shown
    assert commander.locator("#bd-whistles b b").count() == 0  # type: ignore[attr-defined]
    assert commander.locator(f"{rated} form").count() == 0  # type: ignore[attr-defined]
    _shot(commander, "command-post-whistle-rated")

    with live.engine.connect() as conn:
        rows = {
            r.unit_code: r
            for r in conn.execute(
                sa.text("select * from whistle_units where whistle_id = :w"), {"w": whistle}
            )
        }
    unit = rows[live.unit]
    assert (unit.arrived_at, unit.arrived_by) == (arrived, "post-department")
    assert (unit.completed_at, unit.completed_by) == (completed, "post-department")
    assert (unit.rating, unit.rating_comment, unit.rated_by, unit.rated_at) == (
        "基本满意",
        "到场稍迟，<b>处置到位</b>",
        "post-commander",
        CLOCK.instant,
    )
    other = rows[OTHER]
    assert (other.arrived_at, other.completed_at, other.rating) == (None, None, None)
    for page, seen in ((commander, commander_seen), (department, department_seen)):
        _clean(page, seen)
        page.close()  # type: ignore[attr-defined]


def test_who_is_offered_the_whistle(browser: object, live: Live) -> None:
    """The street centre's clerk is offered 吹哨报到 in the drawer; an analyst, who works no
    case, has no command post and no whistle button on the command page."""
    clerk, clerk_seen = _login(browser, live, "post-clerk", "/queue")
    clerk.click(_row(live))  # type: ignore[attr-defined]
    clerk.wait_for_selector(f"#bd-drawer[data-id='{live.case_id}']")  # type: ignore[attr-defined]
    assert clerk.locator("#bd-drawer-whistle button[data-action='whistle']").count() == 1  # type: ignore[attr-defined]
    # A meeting time the API refuses: its Chinese message is shown, nothing is stored.
    with live.engine.connect() as conn:
        before = conn.execute(sa.text("select count(*) from whistles")).scalar_one()
    clerk.click("#bd-drawer-whistle button[data-action='whistle']")  # type: ignore[attr-defined]
    form = "#bd-action-form[data-action='whistle']"
    clerk.wait_for_selector(form)  # type: ignore[attr-defined]
    clerk.select_option(f"{form} select[name=units]", [OTHER])  # type: ignore[attr-defined]
    clerk.fill(f"{form} input[name=meeting_point]", "工地东门")  # type: ignore[attr-defined]
    clerk.fill(f"{form} input[name=meet_at]", "1999-12-31T09:00")  # type: ignore[attr-defined]
    clerk.click(f"{form} button[type=submit]")  # type: ignore[attr-defined]
    clerk.wait_for_function(  # type: ignore[attr-defined]
        "() => document.getElementById('bd-drawer-error').textContent.length > 0"
    )
    assert "时间超出范围" in clerk.text_content("#bd-drawer-error")  # type: ignore[attr-defined]
    assert clerk.is_visible(form)  # type: ignore[attr-defined]
    with live.engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from whistles")).scalar_one() == before
    clerk_seen.errors = [e for e in clerk_seen.errors if "400" not in e]  # the expected one
    _clean(clerk, clerk_seen)
    clerk.close()  # type: ignore[attr-defined]
    analyst, analyst_seen = _open_page(browser, live, "post-analyst", f"/command/{live.street}")
    analyst.wait_for_function("() => document.body.dataset.ready === '1'")  # type: ignore[attr-defined]
    assert analyst.locator("#bd-post").count() == 0  # type: ignore[attr-defined]
    assert analyst.locator("button[data-action='whistle']").count() == 0  # type: ignore[attr-defined]
    assert analyst.locator("#bd-whistles").count() == 0  # type: ignore[attr-defined]
    _clean(analyst, analyst_seen)
    analyst.close()  # type: ignore[attr-defined]
