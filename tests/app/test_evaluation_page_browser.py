"""/evaluation in a real browser (Debian's Chromium via Playwright) against a live server.

The demo district (15 streets) is loaded into a database of its own; the server runs in a
thread with a frozen clock. The evaluation API's answers (docs/evaluation.md's Result, what-if,
versions, publish) come from tests/evalpage_fixtures.py through route interception — the
page is checked against the published JSON shapes; the drill-down (/api/evaluation/drill)
is the server's own, its figures compared with counts made here in SQL. No request may leave
the server's host, no console error, no CSP violation.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from app import create_app
from app.config import from_env
from app.db import make_engine
from tests.clock import BEIJING, FrozenClock, day_start
from tests.command_post import CSP_LISTENER
from tests.evalpage_fixtures import PARTS, commander_view, ranked, result, stub
from tests.helpers import add_user
from tests.plugins.ogc import demo_database, serve

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
END = dt.date(2026, 11, 18)
CLOCK = FrozenClock(dt.datetime(2026, 11, 18, 15, 0, tzinfo=BEIJING))
SINCE, UNTIL = "2026-11-01", "2026-11-30"


@dataclass
class Live:
    url: str
    engine: sa.Engine
    streets: list[tuple[str, str]]


@pytest.fixture(scope="module")
def live(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    name = f"blockdata_test_evalpage_{os.getpid()}"
    sizes = {"requests": 3000, "cases": 20, "targets": 10, "projects": 10, "end": END}
    with demo_database(server_url, name, tmp_path_factory.mktemp("demo"), **sizes) as url:
        engine = make_engine(url)
        with engine.begin() as conn:
            streets = [
                tuple(r)
                for r in conn.execute(sa.text("select code, name from streets order by code"))
            ]
            add_user(conn, "ev-district", "district")
            add_user(conn, "ev-commander", "commander", streets[0][0])
            add_user(conn, "ev-planner", "planner")
        app = create_app({"DATABASE_URL": url}, settings=from_env().with_(clock=CLOCK))
        with serve(app) as base:
            yield Live(base, engine, streets)  # type: ignore[arg-type]
        engine.dispose()


@dataclass
class Watch:
    errors: list[str]
    outside: list[str]
    failed: list[str]


def _open(
    browser: Any, live: Live, user: str, answer: dict[str, Any] | None, **kw: Any
) -> tuple[Any, Watch, Any]:
    watch = Watch([], [], [])
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, timezone_id="Asia/Shanghai")
    page.add_init_script(CSP_LISTENER)
    host = urlsplit(live.url).netloc

    def outside(route: Any) -> None:
        if urlsplit(route.request.url).netloc != host and not route.request.url.startswith("data:"):
            watch.outside.append(route.request.url)
            route.abort()
            return
        route.continue_()

    page.route("**/*", outside)
    api = stub(page, answer, **kw)  # registered last: answers first
    page.on("console", lambda m: m.type == "error" and watch.errors.append(m.text))
    page.on("pageerror", lambda e: watch.errors.append(str(e)))
    page.on("requestfailed", lambda r: watch.failed.append(f"{r.url} {r.failure}"))
    page.goto(live.url + "/login?next=/evaluation")
    page.fill("input[name=name]", user)
    page.fill("input[name=password]", "secret-password")
    page.click("button[type=submit]")
    page.wait_for_url(live.url + "/evaluation")
    return page, watch, api


def _ready(page: Any) -> None:
    page.wait_for_selector("#ev-main[data-ready=true]", timeout=30_000)


def _clean(page: Any, watch: Watch) -> None:
    assert watch.outside == []
    assert watch.failed == []
    assert watch.errors == []
    assert page.evaluate("window.__csp") == []


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _codes(page: Any, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "rows => rows.map(r => r.dataset.code)")


def _canvas_drawn(page: Any, container: str) -> bool:
    """Whether the chart's canvas has pixels of more than one colour."""
    return page.evaluate(
        """(sel) => {
          const c = document.querySelector(sel + ' canvas');
          if (!c || !c.width || !c.height) return false;
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          const seen = new Set();
          for (let i = 0; i < d.length; i += 4 * 97) {
            seen.add([d[i], d[i + 1], d[i + 2], d[i + 3]].join());
          }
          return seen.size > 2;
        }""",
        container,
    )


def _counts(live: Live, column: str, parent: str, code: str) -> dict[str, tuple[int, int]]:
    """Per child unit (`column`) of the unit `code` (`parent` column) the window's requests and
    valid callbacks, from the rows."""
    lo = day_start(dt.date.fromisoformat(SINCE))
    hi = day_start(dt.date.fromisoformat(UNTIL) + dt.timedelta(days=1))
    with live.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                f"select {column}, count(*), count(*) filter (where callback_valid) "
                f"from service_requests where {parent} = :code "
                "and received_at >= :lo and received_at < :hi group by 1"
            ),
            {"code": code, "lo": lo, "hi": hi},
        ).all()
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


def test_district_sees_ranking_chart_what_if_drill_and_publishes(browser: Any, live: Live) -> None:
    answer = result(live.streets, SINCE, UNTIL, "2026-11")
    page, watch, api = _open(browser, live, "ev-district", answer)
    _ready(page)
    # The ranking: one row per street, in the order of the API's ranks.
    assert _codes(page, "#ev-ranking tbody tr") == [s["code"] for s in answer["streets"]]
    first = answer["streets"][0]
    row = page.locator(f"#ev-ranking tbody tr[data-code='{first['code']}']")
    assert row.locator(".ev-composite").inner_text() == f"{first['composite']:.2f}"
    assert (
        row.locator(".ev-survey").inner_text()
        == f"{first['survey']:.2f} ± {first['survey_margin']:.2f}"
    )
    last = page.locator("#ev-ranking tbody tr").last
    assert last.locator(".ev-composite").inner_text() == "—"  # no survey: no composite
    assert page.inner_text("#ev-published") == "未发布"
    # The charts are drawn on their canvases.
    assert _canvas_drawn(page, "#ev-chart-composite")
    assert _canvas_drawn(page, "#ev-chart-aspects")
    assert page.inner_text("#ev-aspects-street") == first["name"]

    # What if: the current order, then the survey's weight raised.
    page.wait_for_selector("#ev-whatif[data-ready=true]")
    current = [
        r["code"]
        for r in ranked([{**s, "volume": s["rates"]["requests"]} for s in answer["streets"]])
    ]
    assert _codes(page, "#ev-current tbody tr") == current
    weights = {"internal": 10, "survey": 80, "hotline": 10}
    for part, value in weights.items():
        page.fill(f"#ev-w-{part}", str(value))
    page.wait_for_selector("#ev-whatif[data-weights='10,80,10']")
    expected = _order(answer, weights)
    assert expected != current  # the weights do move the ranking
    assert _codes(page, "#ev-what-if tbody tr") == expected
    moved = page.eval_on_selector_all(
        "#ev-what-if tbody tr.ev-moved", "rows => rows.map(r => r.dataset.code)"
    )
    assert moved and set(moved) == {c for i, c in enumerate(expected) if current.index(c) != i}
    assert any("what-if?" in a and "survey=80" in a for a in api.asked)

    # Drill: a street's response rate → its communities → a community's grids → cases.
    street = first["code"]
    row.locator("[data-rate=response_rate] button").click()
    page.wait_for_selector("#ev-drill[data-ready=true][data-level=street]")
    got = {
        r["code"]: (int(r["requests"]), int(r["callbacks"]))
        for r in page.eval_on_selector_all(
            "#ev-drill-table tbody tr",
            """rows => rows.map(r => ({
                code: r.dataset.code,
                requests: r.querySelector('.ev-requests').textContent,
                callbacks: r.querySelector('.ev-callbacks').textContent,
            }))""",
        )
    }
    counts = _counts(live, "community_code", "street_code", street)
    assert got and {c: v for c, v in got.items() if v != (0, 0)} == counts
    community = max(counts, key=lambda c: counts[c][0])
    page.click(f"#ev-drill-table tbody tr[data-code='{community}'] button")
    page.wait_for_selector("#ev-drill[data-ready=true][data-level=community]")
    grids = _codes(page, "#ev-drill-table tbody tr")
    grid_counts = _counts(live, "grid_code", "community_code", community)
    assert set(grid_counts) <= set(grids)
    some_grid = max(grid_counts, key=lambda g: grid_counts[g][0])
    link = page.get_attribute(f"#ev-drill-table tbody tr[data-code='{some_grid}'] a", "href")
    assert link == f"/api/cases?street={street}&grid={some_grid}"

    # Up to the district: every street's three rates (the scorecards' aggregate).
    page.click("#ev-drill-path button >> nth=0")
    page.wait_for_selector("#ev-drill[data-ready=true][data-level=district]")
    assert _codes(page, "#ev-drill-table tbody tr") == sorted(c for c, _ in live.streets)

    # Publish: the badge says which version.
    page.click("#ev-publish")
    page.wait_for_function(
        "() => document.getElementById('ev-published').textContent === '已发布 v1'"
    )
    _ready(page)
    assert any(a.startswith("POST /api/evaluation/periods/2026-11/publish") for a in api.asked)
    assert page.locator("#ev-version option[value='1']").count() == 1
    _shot(page, "evaluation-district")
    _clean(page, watch)
    page.close()


def _order(answer: dict[str, Any], weights: dict[str, float]) -> list[str]:
    """The streets by composite under `weights` (2 decimals, desc), then volume, then code:
    computed from the API's part scores."""

    def composite(s: dict[str, Any]) -> float | None:
        if any(s[p] is None for p in PARTS):
            return None
        return round(sum(weights[p] * s[p] for p in PARTS) / 100, 2)

    return [
        s["code"]
        for s in sorted(
            answer["streets"],
            key=lambda s: (
                composite(s) is None,
                -(composite(s) or 0),
                -s["rates"]["requests"],
                s["code"],
            ),
        )
    ]


def test_commander_sees_the_public_ranking_and_its_own_street_only(
    browser: Any, live: Live
) -> None:
    own = live.streets[0][0]
    answer = commander_view(result(live.streets, SINCE, UNTIL, "2026-11"), own)
    page, watch, _ = _open(browser, live, "ev-commander", answer, allow_what_if=False)
    _ready(page)
    assert _codes(page, "#ev-ranking tbody tr") == [s["code"] for s in answer["streets"]]
    detail = page.eval_on_selector_all(
        "#ev-ranking tbody tr",
        "rows => rows.filter(r => r.dataset.detail === 'true').map(r => r.dataset.code)",
    )
    assert detail == [own]
    # Other streets: their public composite, no detail, no drill-down.
    others = [s for s in answer["streets"] if s["code"] != own]
    for s in others[:3]:
        row = page.locator(f"#ev-ranking tbody tr[data-code='{s['code']}']")
        composite = s["composite"]
        assert row.locator(".ev-composite").inner_text() == (
            "—" if composite is None else f"{composite:.2f}"
        )
        assert row.locator(".ev-internal").inner_text() == "—"
        assert row.locator("button.ev-drill").count() == 0
    assert page.locator(f"#ev-ranking tbody tr[data-code='{own}'] button.ev-drill").count() == 3
    assert page.locator("#ev-publish").count() == 0
    assert page.inner_text("#ev-published") == "已发布 v1"
    assert page.is_hidden("#ev-whatif")
    assert _canvas_drawn(page, "#ev-chart-composite")
    assert page.inner_text("#ev-aspects-street") == live.streets[0][1]
    # Its own street's communities, from the server (row-level security: its street).
    page.click(f"#ev-ranking tbody tr[data-code='{own}'] [data-rate=resolution_rate] button")
    page.wait_for_selector("#ev-drill[data-ready=true][data-level=street]")
    assert len(_codes(page, "#ev-drill-table tbody tr")) > 0
    _shot(page, "evaluation-commander")
    _clean(page, watch)
    page.close()


def test_commander_before_publication_sees_a_message(browser: Any, live: Live) -> None:
    page, watch, _ = _open(browser, live, "ev-commander", None, allow_what_if=False)
    page.wait_for_selector("#ev-main[data-ready=empty]")
    assert "尚未发布" in page.inner_text("#ev-error")
    assert page.locator("#ev-ranking tbody tr").count() == 0
    watch.errors = [
        e for e in watch.errors if "404" not in e
    ]  # the API's answer, logged by Chromium
    _clean(page, watch)
    page.close()


def test_an_unrelated_role_is_refused(browser: Any, live: Live) -> None:
    page = _open_refused(browser, live, "ev-planner")
    assert "无权" in page.inner_text("body")
    assert page.locator("#ev-main").count() == 0
    page.close()


def _open_refused(browser: Any, live: Live, user: str) -> Any:
    page = browser.new_page()
    page.goto(live.url + "/login")
    page.fill("input[name=name]", user)
    page.fill("input[name=password]", "secret-password")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    response = page.goto(live.url + "/evaluation")
    assert response.status == 403
    return page


PAYLOAD = '<img src=x onerror="window.__xss.push(1)"><script>window.__xss.push(2)</script>'


def test_html_in_the_data_is_shown_as_text_and_never_runs(browser: Any, live: Live) -> None:
    """Street names from the evaluation API and a community's name from the database carry
    markup; with the CSP bypassed (only escaping stands in the way) none of it runs or
    becomes an element, and it reads as text."""
    streets = [(code, f"{PAYLOAD}{name}") for code, name in live.streets]
    answer = result(streets, SINCE, UNTIL, "2026-11")
    answer["streets"][0]["missing"] = [PAYLOAD]
    answer["streets"][0]["class"] = PAYLOAD
    street = answer["streets"][0]["code"]
    with live.engine.begin() as conn:
        community = conn.execute(
            sa.text("select min(code) from communities where street_code = :s"), {"s": street}
        ).scalar_one()
        old = conn.execute(
            sa.text("update communities set name = :p || name where code = :c returning name"),
            {"p": PAYLOAD, "c": community},
        ).scalar_one()
    try:
        context = browser.new_context(bypass_csp=True, viewport={"width": 1400, "height": 1000})
        context.add_init_script("window.__xss = [];")
        page = context.new_page()
        stub(page, answer)
        page.goto(live.url + "/login?next=/evaluation")
        page.fill("input[name=name]", "ev-district")
        page.fill("input[name=password]", "secret-password")
        page.click("button[type=submit]")
        _ready(page)
        page.click(f"#ev-ranking tbody tr[data-code='{street}'] [data-rate=response_rate] button")
        page.wait_for_selector("#ev-drill[data-ready=true][data-level=street]")
        page.wait_for_selector("#ev-what-if tbody tr")
        assert page.evaluate("window.__xss") == []
        assert page.locator('img[src="x"]').count() == 0
        assert (
            page.evaluate("[...document.scripts].filter(s => s.text.includes('__xss')).length") == 0
        )
        text = page.inner_text("#ev-main")
        assert text.count(PAYLOAD) >= 3 + 2 * len(streets)  # ranking, what-if ×2, drill, …
        assert old in page.inner_text("#ev-drill-table")
        context.close()
    finally:
        with live.engine.begin() as conn:
            conn.execute(
                sa.text("update communities set name = substr(name, :n) where code = :c"),
                {"n": len(PAYLOAD) + 1, "c": community},
            )


def test_no_scheme_yet_says_so_and_asks_nothing_more(browser: Any, live: Live) -> None:
    page, watch, api = _open(
        browser, live, "ev-district", result(live.streets, SINCE, UNTIL, "2026-11")
    )
    _ready(page)
    page.wait_for_selector("#ev-departments-section[data-ready=true]")
    before = len(api.asked)
    page.route(
        "**/api/evaluation/schemes*",
        lambda route: route.fulfill(
            status=200, content_type="application/json", body='{"schemes": []}'
        ),
    )
    page.reload()
    page.wait_for_selector("#ev-main[data-ready=empty]")
    assert "尚未加载考评方案" in page.inner_text("#ev-error")
    assert page.evaluate("document.body.dataset.ready") == "1"
    assert page.is_hidden("#ev-whatif")
    assert api.asked[before:] == []  # no period, version or what-if asked
    _clean(page, watch)
    page.close()
