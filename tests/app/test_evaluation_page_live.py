"""/evaluation in a real browser against the real evaluation API (app/evaluation.py).

The demo district (15 streets, 3,000 requests up to 18 November 2026) with the demo scheme
stored and a survey for November per street (made here); no score, task or event (manual
items count 0, on-time items their max). The page must show the API's ranking in its order,
draw its chart, re-rank under other weights in the order computed here from the API's part
scores, publish; a commander then sees the published ranking with its own street's detail
only; an unrelated role is refused. No request leaves the server's host.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from app import create_app
from app.config import from_env
from app.db import make_engine
from etl.aggregates import CONFIG_DIR
from layers.evaluation.scheme import parse_scheme, read_scheme_file
from layers.evaluation.tables import evaluation_schemes, survey_results
from tests.clock import BEIJING, FrozenClock
from tests.command_post import CSP_LISTENER
from tests.helpers import add_user
from tests.plugins.ogc import demo_database, serve

pytestmark = pytest.mark.browser

END = dt.date(2026, 11, 18)
CLOCK = FrozenClock(dt.datetime(2026, 11, 18, 15, 0, tzinfo=BEIJING))
LABEL = "2026-11"
PARTS = ("internal", "survey", "hotline")


@dataclass
class Live:
    url: str
    engine: sa.Engine
    streets: list[str]


def _survey(code: str, i: int) -> list[dict[str, Any]]:
    """Three questions, answers that differ street by street."""
    n = 200 + 10 * i
    happy = 60 + (i * 7) % 35
    basic = (n - happy) // 2
    five = {"1": 5 + i % 4, "2": 10, "3": 20 + (i * 3) % 11, "4": 50, "5": 40 + (i * 13) % 50}
    rows = [
        ("overall", "three", {"满意": happy, "基本满意": basic, "不满意": n - happy - basic}),
        ("environment", "five", five),
        ("service", "five", {k: five[str(6 - int(k))] for k in five}),
    ]
    return [
        {
            "period": LABEL,
            "street_code": code,
            "question": q,
            "scale": scale,
            "sample_size": sum(counts.values()),
            "counts": counts,
            "source": "测试",
            "imported_by": "test",
            "imported_at": dt.datetime(2026, 11, 18, 9, 0, tzinfo=BEIJING),
        }
        for q, scale, counts in rows
    ]


@pytest.fixture(scope="module")
def live(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    name = f"blockdata_test_evalpage_live_{os.getpid()}"
    sizes = {"requests": 3000, "cases": 20, "targets": 10, "projects": 10, "end": END}
    with demo_database(server_url, name, tmp_path_factory.mktemp("demo"), **sizes) as url:
        engine = make_engine(url)
        scheme = parse_scheme(read_scheme_file(CONFIG_DIR / "evaluation" / "xicheng.yaml"))
        with engine.begin() as conn:
            streets = list(conn.execute(sa.text("select code from streets order by 1")).scalars())
            conn.execute(
                sa.insert(evaluation_schemes).values(
                    code=scheme.code, version=1, name=scheme.name, body=scheme.body
                )
            )
            conn.execute(
                sa.insert(survey_results),
                [row for i, code in enumerate(streets) for row in _survey(code, i)],
            )
            add_user(conn, "live-district", "district")
            add_user(conn, "live-commander", "commander", streets[0])
            add_user(conn, "live-planner", "planner")
        app = create_app({"DATABASE_URL": url}, settings=from_env().with_(clock=CLOCK))
        with serve(app) as base:
            yield Live(base, engine, streets)
        engine.dispose()


def _open(browser: Any, live: Live, user: str) -> tuple[Any, list[str]]:
    """The page as `user` (logged in through the form); the problems it met, kept in a list:
    console errors, failed requests, requests to another host."""
    problems: list[str] = []
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, timezone_id="Asia/Shanghai")
    page.add_init_script(CSP_LISTENER)
    host = urlsplit(live.url).netloc

    def outside(route: Any) -> None:
        if urlsplit(route.request.url).netloc != host and not route.request.url.startswith("data:"):
            problems.append("outside " + route.request.url)
            route.abort()
            return
        route.continue_()

    page.route("**/*", outside)
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("requestfailed", lambda r: problems.append(f"{r.url} {r.failure}"))
    page.goto(live.url + "/login?next=/evaluation")
    page.fill("input[name=name]", user)
    page.fill("input[name=password]", "secret-password")
    with page.expect_navigation():
        page.click("button[type=submit]")
    return page, problems


def _api(page: Any, path: str) -> Any:
    response = page.request.get(page.url.split("/evaluation")[0] + path)
    assert response.ok, (path, response.status, response.text())
    return response.json()


def _codes(page: Any, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "rows => rows.map(r => r.dataset.code)")


def _drawn(page: Any, container: str) -> bool:
    return page.evaluate(
        """(sel) => {
          const c = document.querySelector(sel + ' canvas');
          if (!c || !c.width) return false;
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          const seen = new Set();
          for (let i = 0; i < d.length; i += 4 * 97) seen.add([d[i], d[i + 1], d[i + 2]].join());
          return seen.size > 2;
        }""",
        container,
    )


def _order(streets: list[dict[str, Any]], weights: dict[str, float]) -> list[str]:
    """The streets by composite under `weights` (2 decimals, descending; none last), then
    hotline volume descending, then code — from the API's part scores."""

    def key(s: dict[str, Any]) -> tuple[bool, float, int, str]:
        values = [s[p] for p in PARTS]
        composite = (
            None
            if any(v is None for v in values)
            else round(sum(weights[p] * s[p] for p in PARTS) / 100, 2)
        )
        return (composite is None, -(composite or 0.0), -s["rates"]["requests"], s["code"])

    return [s["code"] for s in sorted(streets, key=key)]


def test_district_ranks_re_weights_and_publishes(browser: Any, live: Live) -> None:
    page, problems = _open(browser, live, "live-district")
    page.wait_for_selector("#ev-main[data-ready=true]", timeout=60_000)
    result = _api(page, f"/api/evaluation/periods/{LABEL}")
    streets = result["streets"]
    assert len(streets) == len(live.streets)
    assert all(s["survey"] is not None for s in streets)
    by_rank = [s["code"] for s in sorted(streets, key=lambda s: (s["rank"], s["code"]))]
    assert _codes(page, "#ev-ranking tbody tr") == by_rank
    for s in streets[:3]:
        row = page.locator(f"#ev-ranking tbody tr[data-code='{s['code']}']")
        assert row.locator(".ev-rank").inner_text() == str(s["rank"])
        assert row.locator(".ev-composite").inner_text() == f"{s['composite']:.2f}"
    assert _drawn(page, "#ev-chart-composite") and _drawn(page, "#ev-chart-aspects")
    assert page.inner_text("#ev-published") == "未发布"

    page.wait_for_selector("#ev-whatif[data-ready=true]")
    parts = result["parts"]
    assert _codes(page, "#ev-current tbody tr") == _order(streets, parts)
    weights = {"internal": 10, "survey": 80, "hotline": 10}
    for part, value in weights.items():
        page.fill(f"#ev-w-{part}", str(value))
    page.wait_for_selector("#ev-whatif[data-weights='10,80,10']")
    expected = _order(streets, weights)
    assert expected != _order(streets, parts)  # the survey's weight changes who leads
    assert _codes(page, "#ev-what-if tbody tr") == expected

    # Beside the ranking: the data-quality guards and the departments, over the period.
    window = f"since={result['period']['since']}&until={result['period']['until']}"
    page.click("#ev-guards-load")  # on demand: the guards read every request of the window
    page.wait_for_selector("#ev-guards-section[data-ready=true]")
    guards = _api(page, f"/api/evaluation/guards?{window}")
    assert _codes(page, "#ev-guards tbody tr") == [s["code"] for s in guards["streets"]]
    hits = [(s["code"], g, n) for s in guards["streets"] for g, n in s["counts"].items() if n]
    for code, guard, n in hits[:3]:
        cell = page.locator(f"#ev-guards tbody tr[data-code='{code}'] [data-guard={guard}] a")
        assert cell.inner_text() == str(n)
        assert cell.get_attribute("href").startswith(f"/api/evaluation/guards/{guard}?")
    page.wait_for_selector("#ev-departments-section[data-ready=true]")
    departments = _api(page, f"/api/evaluation/departments?{window}")["departments"]
    assert _codes(page, "#ev-departments tbody tr") == [d["code"] for d in departments]

    page.click("#ev-publish")
    page.wait_for_function(
        "() => document.getElementById('ev-published').textContent === '已发布 v1'"
        " || document.getElementById('ev-error').textContent !== ''"
    )
    assert page.inner_text("#ev-error") == ""
    assert page.inner_text("#ev-published") == "已发布 v1"
    versions = _api(page, f"/api/evaluation/periods/{LABEL}/versions")["versions"]
    assert [v["version"] for v in versions] == [1]
    assert page.evaluate("window.__csp") == []
    assert problems == []
    page.close()


def test_commander_sees_the_published_ranking_and_its_own_street(browser: Any, live: Live) -> None:
    district, _ = _open(browser, live, "live-district")
    versions = _api(district, f"/api/evaluation/periods/{LABEL}/versions")["versions"]
    if not versions:  # run alone: publish first, as the district
        response = district.request.post(live.url + f"/api/evaluation/periods/{LABEL}/publish")
        assert response.status == 201, response.text()
    district.close()
    own = live.streets[0]
    page, problems = _open(browser, live, "live-commander")
    page.wait_for_selector("#ev-main[data-ready=true]", timeout=60_000)
    result = _api(page, f"/api/evaluation/periods/{LABEL}")
    assert result["published"] is not None
    by_rank = [s["code"] for s in sorted(result["streets"], key=lambda s: (s["rank"], s["code"]))]
    assert _codes(page, "#ev-ranking tbody tr") == by_rank
    detail = page.eval_on_selector_all(
        "#ev-ranking tbody tr",
        "rows => rows.filter(r => r.dataset.detail === 'true').map(r => r.dataset.code)",
    )
    assert detail == [own]
    other = next(s for s in result["streets"] if s["code"] != own)
    assert "internal" not in other  # the API hides it (row-level security)
    row = page.locator(f"#ev-ranking tbody tr[data-code='{other['code']}']")
    assert row.locator(".ev-internal").inner_text() == "—"
    assert row.locator("button.ev-drill").count() == 0
    assert page.locator("#ev-publish").count() == 0
    assert page.is_hidden("#ev-whatif")
    assert page.inner_text("#ev-published").startswith("已发布 v")
    assert _drawn(page, "#ev-chart-composite")
    page.click(f"#ev-ranking tbody tr[data-code='{own}'] [data-rate=response_rate] button")
    page.wait_for_selector("#ev-drill[data-ready=true][data-level=street]")
    assert page.evaluate("window.__csp") == []
    assert problems == []
    page.close()


def test_a_commander_opens_on_the_newest_published_period(browser: Any, live: Live) -> None:
    """In December, November published and December not: a commander (who reads published
    periods only) opens on November's ranking, not on an empty month and a what-if panel."""
    district, _ = _open(browser, live, "live-district")
    if not _api(district, f"/api/evaluation/periods/{LABEL}/versions")["versions"]:
        response = district.request.post(live.url + f"/api/evaluation/periods/{LABEL}/publish")
        assert response.status == 201, response.text()
    district.close()
    december = FrozenClock(dt.datetime(2026, 12, 3, 10, 0, tzinfo=BEIJING))
    url = live.engine.url.render_as_string(hide_password=False)
    app = create_app({"DATABASE_URL": url}, settings=from_env().with_(clock=december))
    with serve(app) as base:
        page, _ = _open(browser, Live(base, live.engine, live.streets), "live-commander")
        page.wait_for_selector("#ev-main[data-ready=true]", timeout=60_000)
        assert page.input_value("#ev-period") == LABEL
        assert page.eval_on_selector("#ev-period", "s => s.options[0].value") == "2026-12"
        assert page.locator("#ev-ranking tbody tr").count() == len(live.streets)
        assert page.inner_text("#ev-published").startswith("已发布 v")
        assert page.is_hidden("#ev-whatif")
        page.close()


def test_an_unrelated_role_is_refused(browser: Any, live: Live) -> None:
    page, _ = _open(browser, live, "live-planner")
    response = page.goto(live.url + "/evaluation")
    assert response.status == 403
    assert "无权" in page.inner_text("body")
    response = page.request.get(live.url + f"/api/evaluation/periods/{LABEL}")
    assert response.status == 403
    page.close()
