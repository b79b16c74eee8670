"""Search and the area card in a real browser (Debian's Chromium via Playwright) against a live
server on a demo district.

Typed as a user would: a community's name on the overview, a grid's label and a case number
on a commander's view; the map flies there and the area card (#bd-area) shows the figures,
which must equal counts made here with SQL over service_requests (the server's clock frozen,
the window its last 30 local days). A click on the map's background at grid zoom opens the
card of the grid under the click (found here with ST_Contains). Every page runs with no
console error, no CSP violation and no request to another host; the phone width keeps the
box on screen.
"""

from __future__ import annotations

import datetime as dt
import os
import re
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
from tests.helpers import add_user
from tests.plugins.ogc import demo_database, serve

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
END = dt.date(2026, 11, 18)
NOW = dt.datetime(2026, 11, 18, 15, 0, tzinfo=BEIJING)
CSP_LISTENER = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) =>
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


@dataclass
class Live:
    url: str
    engine: sa.Engine
    street: str  # the commander's


@pytest.fixture(scope="module")
def live(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    name = f"blockdata_test_search_browser_{os.getpid()}"
    sizes = {"requests": 3000, "cases": 150, "targets": 10, "projects": 10, "end": END}
    with demo_database(server_url, name, tmp_path_factory.mktemp("demo"), **sizes) as url:
        engine = make_engine(url)
        with engine.begin() as conn:
            street = conn.exec_driver_sql(
                "select r.street_code from service_requests r join cases c "
                "on c.service_request_id = r.id group by 1 order by count(*) desc, 1 limit 1"
            ).scalar_one()
            add_user(conn, "search-district", "district")
            add_user(conn, "search-commander", "commander", street)
            add_user(conn, "search-planner", "planner")
        app = create_app({"DATABASE_URL": url}, settings=from_env().with_(clock=FrozenClock(NOW)))
        try:
            with serve(app) as base:
                yield Live(base, engine, street)
        finally:
            engine.dispose()


@dataclass
class Watch:
    errors: list[str]
    outside: list[str]


def _open(browser: Any, live: Live, path: str, user: str, width: int = 1400) -> tuple[Any, Watch]:
    watch = Watch([], [])
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.add_init_script(CSP_LISTENER)
    host = urlsplit(live.url).netloc

    def route(r: Any) -> Any:
        if urlsplit(r.request.url).netloc != host and not r.request.url.startswith("data:"):
            watch.outside.append(r.request.url)
            return r.abort()
        return r.continue_()

    page.route("**/*", route)
    page.goto(live.url + "/login?next=" + path)
    page.fill("input[name=name]", user)
    page.fill("input[name=password]", "secret-password")
    page.click("button[type=submit]")
    page.on("console", lambda m: m.type == "error" and watch.errors.append(m.text))
    page.on("pageerror", lambda e: watch.errors.append(str(e)))
    page.wait_for_url(live.url + path)
    page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=30_000)
    return page, watch


def _clean(page: Any, watch: Watch) -> None:
    assert watch.errors == []
    assert watch.outside == []
    assert page.evaluate("window.__csp") == []


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def _one(live: Live, sql: str, **params: Any) -> Any:
    with live.engine.connect() as conn:
        return conn.execute(sa.text(sql), params).one()


def _counts(live: Live, column: str, code: str) -> tuple[int, int, int]:
    """Requests of the last 30 local days, of them open now and overdue now, from the rows."""
    lo, hi = day_start(END - dt.timedelta(days=29)), day_start(END + dt.timedelta(days=1))
    row = _one(
        live,
        "select count(*), count(*) filter (where status is distinct from '已办结'), "
        "count(*) filter (where status is distinct from '已办结' and due_at < :now) "
        f"from service_requests where {column} = :c and received_at >= :lo and received_at < :hi",
        c=code,
        lo=lo,
        hi=hi,
        now=NOW,
    )
    return int(row[0]), int(row[1]), int(row[2])


def _card(page: Any) -> tuple[str, tuple[int, int, int]]:
    page.wait_for_selector("#bd-area[data-loaded='true']", timeout=15_000)
    figures = tuple(
        int(re.sub(r"[^\d]", "", page.text_content(f"#bd-area-{k}")))
        for k in ("requests", "open", "overdue")
    )
    return str(page.text_content("#bd-area-title")), figures  # type: ignore[return-value]


def _search(page: Any, text: str) -> None:
    page.fill("#bd-search-q", text)
    page.press("#bd-search-q", "Enter")


def _centre_in(page: Any, live: Live, table: str, code: str) -> bool:
    lng, lat = page.evaluate("(() => { const c = BD.map.getCenter(); return [c.lng, c.lat]; })()")
    row = _one(
        live,
        f"select ST_DWithin(geom, ST_SetSRID(ST_Point(:x, :y), 4326), 0.0005) from {table} "
        "where code = :c",
        x=lng,
        y=lat,
        c=code,
    )
    return bool(row[0])


def test_a_community_by_name_flies_and_shows_its_figures(browser: Any, live: Live) -> None:
    code, name = _one(
        live,
        "select c.code, c.name from communities c join service_requests r "
        "on r.community_code = c.code where r.received_at >= :lo "
        "and (select count(*) from communities o where o.name like '%' || c.name || '%') = 1 "
        "group by 1, 2 order by count(*) desc, 1 limit 1",
        lo=day_start(END - dt.timedelta(days=29)),
    )
    page, watch = _open(browser, live, "/", "search-district")
    _search(page, name)
    title, figures = _card(page)
    assert title == name
    assert figures == _counts(live, "community_code", code)
    assert figures[0] > 0
    assert _centre_in(page, live, "communities", code)
    # the result list (folded once a result is opened) named it first, with its kind
    first = "#bd-search-results li:first-child"
    assert page.text_content(f"{first} span:first-child") == name
    assert page.text_content(f"{first} .bd-search-kind") == "社区"
    _shot(page, "search-community")
    _clean(page, watch)
    page.close()


def test_the_planner_finds_a_community_and_gets_no_figures_card(browser: Any, live: Live) -> None:
    """The planner reads no requests: a place is outlined, no card of figures (it read
    '无法显示该区域' and the API's refusal before), and no console error."""
    code, name = _one(
        live,
        "select c.code, c.name from communities c "
        "where (select count(*) from communities o where o.name like '%' || c.name || '%') = 1 "
        "order by 1 limit 1",
    )
    page, watch = _open(browser, live, "/planner", "search-planner")
    _search(page, name)
    # the list folds once the first result is opened
    page.wait_for_selector("#bd-search-results li", state="attached", timeout=15_000)
    page.wait_for_timeout(1500)
    assert _centre_in(page, live, "communities", code)
    assert page.is_hidden("#bd-area")
    _shot(page, "search-planner")
    _clean(page, watch)
    page.close()


def test_a_grid_label_and_a_case_number_on_the_command_view(browser: Any, live: Live) -> None:
    grid, community = _one(
        live,
        "select g.code, c.name from grids g join communities c on c.code = g.community_code "
        "join service_requests r on r.grid_code = g.code where g.street_code = :s "
        "and r.received_at >= :lo group by 1, 2 order by count(*) desc, 1 limit 1",
        s=live.street,
        lo=day_start(END - dt.timedelta(days=29)),
    )
    label = f"{community} 第{int(grid[-3:])}网格"
    page, watch = _open(browser, live, f"/command/{live.street}", "search-commander")
    _search(page, label)
    title, figures = _card(page)
    assert title == label
    assert figures == _counts(live, "grid_code", grid)
    assert _centre_in(page, live, "grids", grid)
    _shot(page, "search-grid")
    # a case by its number opens the command post's drawer
    (case_id,) = _one(
        live,
        "select id from cases where street_code = :s order by id limit 1",
        s=live.street,
    )
    _search(page, f"#{case_id}")
    page.wait_for_selector("#bd-drawer:not([hidden])", timeout=15_000)
    page.wait_for_function(f"() => document.getElementById('bd-drawer').dataset.id === '{case_id}'")
    assert f"#{case_id}" in page.text_content("#bd-drawer-title")
    _clean(page, watch)
    page.close()


def test_a_click_at_grid_zoom_opens_the_grid_under_it(browser: Any, live: Live) -> None:
    # a grid's inner point far from every point the page draws (a click there is on no point)
    lng, lat = _one(
        live,
        "select ST_X(p), ST_Y(p) from (select ST_PointOnSurface(geom) p from grids "
        "where street_code = :s) g order by ("
        "select min(ST_Distance(p, x.geom)) from (select geom from enforcement_cases "
        "union all select geom from relocation_targets union all select geom from "
        "service_halls union all select r.geom from service_requests r join cases c "
        "on c.service_request_id = r.id) x) desc nulls last limit 1",
        s=live.street,
    )
    page, watch = _open(browser, live, f"/command/{live.street}", "search-commander")
    page.evaluate(f"() => {{ BD.map.setView([{lat}, {lng}], 17, {{animate: false}}); }}")
    page.wait_for_timeout(300)
    box = page.locator(".bd-map .folium-map").bounding_box()
    at = page.evaluate(
        f"(() => {{ const p = BD.map.latLngToContainerPoint([{lat}, {lng}]);"
        " return [p.x, p.y]; })()"
    )
    page.mouse.click(box["x"] + at[0], box["y"] + at[1])
    title, figures = _card(page)
    _shot(page, "search-click")
    clicked = page.evaluate(
        f"(() => {{ const c = BD.map.containerPointToLatLng([{at[0]}, {at[1]}]);"
        " return [c.lng, c.lat]; })()"
    )
    grid, community = _one(
        live,
        "select g.code, c.name from grids g join communities c on c.code = g.community_code "
        "where ST_Contains(g.geom, ST_SetSRID(ST_Point(:x, :y), 4326))",
        x=clicked[0],
        y=clicked[1],
    )
    assert title == f"{community} 第{int(grid[-3:])}网格"
    assert figures == _counts(live, "grid_code", grid)
    assert page.get_attribute("#bd-area", "data-code") == grid
    _clean(page, watch)
    page.close()


def test_phone_width_keeps_the_box_on_screen(browser: Any, live: Live) -> None:
    page, watch = _open(browser, live, "/", "search-district", width=390)
    box = page.locator("#bd-search").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    page.fill("#bd-search-q", "社区")  # typed: the list shows as one types
    page.wait_for_selector("#bd-search-results li")
    results = page.locator("#bd-search-results").bounding_box()
    assert results["x"] + results["width"] <= 390
    _shot(page, "search-phone")
    _clean(page, watch)
    page.close()
