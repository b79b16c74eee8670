"""/evaluation/score in a real browser (Debian's Chromium via Playwright, live server on a
committed database, injected clock): an assessor lands on it, edits a cell and saves it, a
reload shows the stored value; uploading a bad file shows every rejected row with its
reason and writes nothing; a street's name with markup is shown as text. No outside
request, no CSP violation."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from app import create_app
from app.config import from_env
from app.db import make_engine
from tests.clock import BEIJING, FrozenClock
from tests.command_post import Live, _open_page
from tests.evalinputs_fixtures import OWNER, PERIOD, add_scheme, workbook
from tests.helpers import add_user
from tests.plugins.browser import free_port

pytestmark = pytest.mark.browser

A, B = "110102001", "110102003"
NAME_A = "甲<b>街道</b>"
TITLE = "背街<i>小巷</i>整治"
CLOCK = FrozenClock(dt.datetime(2026, 11, 20, 10, 0, tzinfo=BEIJING))


@pytest.fixture(scope="module")
def site(committed_url: str) -> Iterator[Live]:
    """The committed database of two streets (tests/plugins/ogc.py), the first renamed with
    markup, the scheme and an assessor; the server on the injected clock."""
    from waitress.server import create_server

    engine = make_engine(committed_url)
    with engine.begin() as conn:
        conn.execute(sa.text("update streets set name = :n where code = :a"), {"n": NAME_A, "a": A})
        add_scheme(conn)
        add_user(conn, "web-owner", "assessor", unit=OWNER)
    app = create_app({"DATABASE_URL": committed_url}, settings=from_env().with_(clock=CLOCK))
    server = create_server(app, host="127.0.0.1", port=free_port(), threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    try:
        yield Live(f"http://127.0.0.1:{server.effective_port}", engine, A, OWNER, 0)
    finally:
        server.close()
        engine.dispose()
        app.extensions["blockdata.engine"].dispose()


def _stored(site: Live) -> list[tuple[str, str, float, str]]:
    with site.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select item_code, street_code, points::float, evidence from evaluation_scores"
                " order by 1, 2"
            )
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]


def test_an_assessor_scores_a_cell_and_sees_a_bad_upload_refused(
    browser: object, site: Live, tmp_path: object
) -> None:
    page, seen = _open_page(browser, site, "web-owner", "/evaluation/score")
    cell = f"#bd-scores td[data-item='law_a'][data-street='{A}']"
    page.wait_for_selector(f"{cell} .bd-points")  # type: ignore[attr-defined]
    assert page.input_value("#bd-period") == PERIOD  # type: ignore[attr-defined]
    # The street's name is text, not markup.
    first = page.locator(f"#bd-scores tbody tr[data-street='{A}'] td").first  # type: ignore[attr-defined]
    assert first.text_content() == NAME_A
    assert page.locator("#bd-scores b").count() == 0  # type: ignore[attr-defined]

    page.fill(f"{cell} .bd-points", "8.5")  # type: ignore[attr-defined]
    page.fill(f"{cell} .bd-evidence", "执法台账齐全")  # type: ignore[attr-defined]
    page.click(f"{cell} .bd-save")  # type: ignore[attr-defined]
    page.wait_for_function(  # type: ignore[attr-defined]
        "() => document.getElementById('bd-message').textContent.startsWith('已保存 1')"
    )
    assert _stored(site) == [("law_a", A, 8.5, "执法台账齐全")]
    page.reload()  # type: ignore[attr-defined]
    page.wait_for_selector(f"{cell} .bd-points")  # type: ignore[attr-defined]
    assert page.input_value(f"{cell} .bd-points") == "8.5"  # type: ignore[attr-defined]
    assert page.input_value(f"{cell} .bd-evidence") == "执法台账齐全"  # type: ignore[attr-defined]

    bad = workbook(
        [
            ["街道编码", "街道", "考核项编码", "考核项", "满分", "得分", "依据说明"],
            [B, "", "law_a", "", 10, 3, "好"],
            [B, "", "party_build", "", 15, 99, "好"],
            [A, "", "law_b", "", 15, 5, "好"],
        ],
        title="评分",
    )
    page.set_input_files(  # type: ignore[attr-defined]
        "#bd-import-file",
        files=[{"name": "bad.xlsx", "mimeType": "application/octet-stream", "buffer": bad}],
    )
    page.click("#bd-import-form button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_selector("#bd-rejected li")  # type: ignore[attr-defined]
    reasons = page.locator("#bd-rejected li").all_text_contents()  # type: ignore[attr-defined]
    assert len(reasons) == 2
    assert reasons[0].startswith("第 3 行 · 得分：") and "超出范围" in reasons[0]
    assert reasons[1].startswith("第 4 行 · 考核项编码：无权评分")
    assert "未写入任何数据" in page.text_content("#bd-message")  # type: ignore[attr-defined]
    assert _stored(site) == [("law_a", A, 8.5, "执法台账齐全")]
    # A task for street A, shown as text, then marked done at the server's clock.
    page.fill("#bd-task-title", TITLE)  # type: ignore[attr-defined]
    page.select_option("#bd-task-streets", [A])  # type: ignore[attr-defined]
    page.fill("#bd-task-item", "city_tasks")  # type: ignore[attr-defined]
    page.fill("#bd-task-deadline", "2026-11-25T18:00")  # type: ignore[attr-defined]
    page.click("#bd-task-form button[type=submit]")  # type: ignore[attr-defined]
    row = page.locator("#bd-tasks tbody tr").first  # type: ignore[attr-defined]
    row.locator("button").wait_for()
    cells = row.locator("td").all_text_contents()
    assert cells[:4] == ["市里下达", TITLE, A, "city_tasks"] and cells[6] == "未完成"
    row.locator("button").click()
    page.wait_for_function(  # type: ignore[attr-defined]
        "() => document.querySelector('#bd-tasks tbody tr td:nth-child(7)').textContent"
        " === '按时完成'"
    )
    with site.engine.connect() as conn:
        done = conn.execute(sa.text("select done_at, deadline from evaluation_tasks")).one()
    assert done == (CLOCK.instant, dt.datetime(2026, 11, 25, 18, 0, tzinfo=BEIJING))
    # The refused upload is the only console error (its 400); nothing from outside, no CSP.
    assert all("400" in e for e in seen.errors), seen.errors
    assert seen.outside == []
    assert page.evaluate("window.__csp || []") == []  # type: ignore[attr-defined]
