"""The pages in a real browser: Debian's Chromium driven by Playwright, against a live server.

A small demo district is loaded into a database of its own (committed, as the server reads
it through its own connections); the server runs in a thread. Every page must load with no
console error and no failed or outside request, show the figures the database holds, and
the command view must show a newly loaded record without a reload. Every page runs under the
server's Content-Security-Policy: a violation (a console error, or a `securitypolicyviolation`
event) fails the test. Each role logs in through the form, lands on a page it may open, finds
only such pages in its navigation, gets the Chinese error page with a way back for a page it
may not open, and logs out. Screenshots go to test-artifacts/.

The server's clock is frozen (`CLOCK`, moved by each date-sensitive test) and so is the
browser's (Playwright's `page.clock`); those tests run at several hours — 07:30 and 23:30
Beijing time among them — with the process and the browser in other time zones, and compute
what the page must show from the frozen instant and the rows, never from a clock of theirs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from app import create_app, migrate
from app.config import from_env
from app.db import make_engine
from etl.demo.load import generate, load
from etl.jobs import run_file
from tests.clock import BEIJING, FrozenClock, day_start, process_tz
from tests.district import REQUEST_COLUMNS
from tests.helpers import add_user, drop_database, new_database
from tests.plugins.browser import free_port

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
END = dt.date(2026, 11, 18)  # the demo district's last day
CLOCK = FrozenClock(dt.datetime(2026, 11, 18, 15, 0, tzinfo=BEIJING))  # the live server's
# (the instant, the server process's TZ, the browser's time zone)
MOMENTS = {
    "0730-beijing/utc-server/beijing-browser": (
        dt.datetime(2026, 11, 18, 7, 30, tzinfo=BEIJING),
        "UTC",
        "Asia/Shanghai",
    ),
    "2330-beijing/utc-server/new-york-browser": (
        dt.datetime(2026, 11, 18, 23, 30, tzinfo=BEIJING),
        "UTC",
        "America/New_York",
    ),
    "noon-beijing/new-york-server/utc-browser": (
        dt.datetime(2026, 11, 18, 12, 0, tzinfo=BEIJING),
        "America/New_York",
        "UTC",
    ),
    "0010-next-day/beijing-server/beijing-browser": (
        dt.datetime(2026, 11, 19, 0, 10, tzinfo=BEIJING),
        "Asia/Shanghai",
        "Asia/Shanghai",
    ),
}


@dataclass(frozen=True)
class Moment:
    instant: dt.datetime
    browser_tz: str

    @property
    def today(self) -> dt.date:
        return self.instant.astimezone(BEIJING).date()


@pytest.fixture(params=list(MOMENTS))
def moment(request: pytest.FixtureRequest) -> Iterator[Moment]:
    """The server's clock at the instant, its process in the TZ; the browser's time zone."""
    instant, server_tz, browser_tz = MOMENTS[request.param]
    CLOCK.instant = instant
    with process_tz(server_tz):
        yield Moment(instant, browser_tz)


@dataclass
class Live:
    url: str
    engine: sa.Engine
    demo: Path


@pytest.fixture(scope="module")
def live(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    from waitress.server import create_server

    name = f"blockdata_test_live_{os.getpid()}"
    url = new_database(server_url, name)
    migrate.upgrade(migrate.alembic_config(url))
    demo = tmp_path_factory.mktemp("demo")
    generate(demo, requests=4_000, cases=200, targets=40, projects=60, end=END)
    engine = make_engine(url)
    with engine.connect() as conn:
        load(conn, demo)
        add_user(conn, "district-chief", "district")
        street = conn.exec_driver_sql("select min(code) from streets").scalar_one()
        for role in ROLES:
            add_user(conn, f"{role}-1", role, street if role in ("commander", "clerk") else None)
        conn.commit()
    # The live layers ask every 2 s instead of 15: the new-record tests wait less.
    app = create_app(
        {"DATABASE_URL": url, "LIVE_SECONDS": 2}, settings=from_env().with_(clock=CLOCK)
    )
    port = free_port()
    server = create_server(app, host="127.0.0.1", port=port, threads=6)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield Live(url=f"http://127.0.0.1:{port}", engine=engine, demo=demo)
    finally:
        server.close()
        engine.dispose()
        app.extensions["blockdata.engine"].dispose()
        drop_database(server_url, name)


ROLES = ("district", "commander", "analyst", "planner", "clerk")
# Every CSP violation of a document, kept in the page (an init script runs before the page's
# own scripts and is not subject to its CSP).
CSP_LISTENER = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) =>
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""


@dataclass
class Watch:
    """What a page did: console errors, failed requests, requests to other hosts, CSP
    violations (of every document it showed)."""

    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    csp: list[str] = field(default_factory=list)
    bytes: int = 0


def _new_page(browser: object, live: Live, moment: Moment | None = None) -> tuple[object, Watch]:
    """A page that blocks and records requests to other hosts and records CSP violations; at
    `moment`: the browser's clock frozen at its instant and the browser in its time zone."""
    watch = Watch()
    zone = {"timezone_id": moment.browser_tz} if moment else {}
    page = browser.new_page(viewport={"width": 1400, "height": 900}, **zone)  # type: ignore[attr-defined]
    if moment is not None:
        page.clock.set_fixed_time(moment.instant)  # type: ignore[attr-defined]
    host = urlsplit(live.url).netloc
    page.add_init_script(CSP_LISTENER)  # type: ignore[attr-defined]

    def route(r):  # type: ignore[no-untyped-def]
        if urlsplit(r.request.url).netloc != host and not r.request.url.startswith("data:"):
            watch.outside.append(r.request.url)
            return r.abort()
        return r.continue_()

    page.route("**/*", route)
    return page, watch


def _violations(page: object, watch: Watch) -> list[str]:
    """The CSP violations of the document shown now, added to the watch's."""
    watch.csp += page.evaluate("window.__csp || []")  # type: ignore[attr-defined]
    return watch.csp


def _open(
    browser: object,
    live: Live,
    path: str,
    moment: Moment | None = None,
    user: str = "district-chief",
) -> tuple[object, Watch]:
    """The page, logged in as `user` (at `moment`, see `_new_page`)."""
    page, watch = _new_page(browser, live, moment)
    # Log in through the form (the session cookie then carries every page and API call).
    page.goto(live.url + "/login?next=" + path)  # type: ignore[attr-defined]
    page.fill("input[name=name]", user)  # type: ignore[attr-defined]
    page.fill("input[name=password]", "secret-password")  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    page.on("console", lambda m: m.type == "error" and watch.errors.append(m.text))
    page.on("pageerror", lambda e: watch.errors.append(str(e)))
    page.on("requestfailed", lambda r: watch.failed.append(f"{r.url} {r.failure}"))

    def count(response):  # type: ignore[no-untyped-def]
        with contextlib.suppress(Exception):  # redirects and aborted responses have no body
            watch.bytes += len(response.body())

    page.on("response", count)
    page.wait_for_url(live.url + path)
    page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=30_000)
    return page, watch


def _clean(watch: Watch, page: object | None = None) -> None:
    if page is not None:
        _violations(page, watch)
    assert watch.outside == []
    assert watch.failed == []
    assert watch.errors == []
    assert watch.csp == []


def _shot(page: object, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)  # type: ignore[attr-defined]


def _int(text: str) -> int:
    return int(re.sub(r"[^\d]", "", text))


def _month_bounds(today: dt.date) -> tuple[dt.datetime, dt.datetime]:
    first = today.replace(day=1)
    return day_start(first), day_start((first + dt.timedelta(days=32)).replace(day=1))


def _requests_between(live: Live, lo: dt.date, hi: dt.date, street: str | None = None) -> int:
    """Requests received on the Beijing days lo … hi (both included), from the rows."""
    with live.engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "select count(*) from service_requests where received_at >= :lo "
                    "and received_at < :hi and (street_code = :s or cast(:s as text) is null)"
                ),
                {"lo": day_start(lo), "hi": day_start(hi + dt.timedelta(days=1)), "s": street},
            ).scalar_one()
        )


def test_overview_ranks_the_streets(browser: object, live: Live) -> None:
    CLOCK.instant = dt.datetime(2026, 11, 18, 7, 30, tzinfo=BEIJING)
    page, watch = _open(browser, live, "/")
    page.wait_for_selector("#bd-ranking tbody tr")  # type: ignore[attr-defined]
    rows = page.locator("#bd-ranking tbody tr")  # type: ignore[attr-defined]
    assert rows.count() == 15
    first, nxt = _month_bounds(CLOCK.today())
    assert page.input_value("#bd-month") == f"{CLOCK.today():%Y-%m}"  # type: ignore[attr-defined]
    with live.engine.connect() as conn:
        month_total = conn.execute(
            sa.text(
                "select count(*) from service_requests where received_at >= :first "
                "and received_at < :nxt"
            ),
            {"first": first, "nxt": nxt},
        ).scalar_one()
        open_total = conn.execute(
            sa.text("select count(*) from service_requests where status <> '已办结'")
        ).scalar_one()
    assert _int(page.inner_text("#bd-total-requests")) == month_total  # type: ignore[attr-defined]
    assert _int(page.inner_text("#bd-total-open")) == open_total  # type: ignore[attr-defined]
    ranks = [_int(rows.nth(i).locator("td").first.inner_text()) for i in range(15)]
    assert ranks == sorted(ranks) and ranks[0] == 1
    # The choropleth draws the 15 streets; a click opens the street's command view.
    assert page.evaluate("Number(document.body.dataset.streets)") == 15  # type: ignore[attr-defined]
    labels = page.locator(".bd-street-label").all_inner_texts()  # type: ignore[attr-defined]
    assert len(labels) == 15 and all(re.search(r"\d", t) for t in labels)
    assert page.locator(".leaflet-control-scale").count() == 1  # type: ignore[attr-defined]
    assert page.locator(".bd-legend").count() >= 1  # type: ignore[attr-defined]
    _shot(page, "overview")
    _clean(watch, page)
    page.close()  # type: ignore[attr-defined]


def _street_with_most(live: Live) -> str:
    with live.engine.connect() as conn:
        return str(
            conn.exec_driver_sql(
                "select street_code from service_requests group by 1 order by count(*) desc limit 1"
            ).scalar_one()
        )


def _heat_window(page: object, option: str, since: dt.date, until: dt.date) -> int:
    """Choose a window of the heat layer; the days the page asked for; its total (read with
    the days in one go: a live refresh may redraw between two reads)."""
    page.select_option("#bd-window", option)  # type: ignore[attr-defined]
    handle = page.wait_for_function(  # type: ignore[attr-defined]
        "([s, u]) => { const d = document.body.dataset;"
        " return d.heatSince === s && d.heatUntil === u && d.heatTotal; }",
        arg=[str(since), str(until)],
    )
    return int(handle.json_value())


def test_command_view_shows_the_zone_and_its_figures(
    browser: object, live: Live, moment: Moment
) -> None:
    street = _street_with_most(live)
    today = moment.today
    page, watch = _open(browser, live, f"/command/{street}", moment)
    assert page.evaluate("BD.today") == str(today)  # type: ignore[attr-defined]
    # "更新于 HH:MM:SS" on the district's clock, not the browser's own zone.
    shown = page.inner_text("#bd-status")  # type: ignore[attr-defined]
    assert f"{moment.instant.astimezone(BEIJING):%H:%M}" in shown, shown
    with live.engine.connect() as conn:
        name = conn.execute(
            sa.text("select name from streets where code = :c"), {"c": street}
        ).scalar_one()
        open_n = conn.execute(
            sa.text(
                "select count(*) from service_requests where street_code = :c "
                "and status <> '已办结'"
            ),
            {"c": street},
        ).scalar_one()
        overdue = conn.execute(
            sa.text(
                "select count(*) from service_requests where street_code = :c "
                "and status <> '已办结' and due_at < :now"
            ),
            {"c": street, "now": moment.instant},
        ).scalar_one()
    assert page.inner_text("#bd-street") == name  # type: ignore[attr-defined]
    assert _int(page.inner_text("#bd-open")) == open_n  # type: ignore[attr-defined]
    assert _int(page.inner_text("#bd-overdue")) == overdue  # type: ignore[attr-defined]
    assert _int(page.inner_text("#bd-new-today")) == _requests_between(live, today, today, street)  # type: ignore[attr-defined]
    # The heat windows: 近30天 (the default), 今日 (today so far), 近7天 — exact local days.
    month = _heat_window(page, "30", today - dt.timedelta(days=29), today)
    assert month == _requests_between(live, today - dt.timedelta(days=29), today, street)
    assert _heat_window(page, "1", today, today) == _requests_between(live, today, today, street)
    week = _heat_window(page, "7", today - dt.timedelta(days=6), today)
    assert week == _requests_between(live, today - dt.timedelta(days=6), today, street)
    assert page.locator("#bd-hot-grids li").count() > 0  # type: ignore[attr-defined]
    overlays = page.locator(".leaflet-control-layers-overlays label").all_inner_texts()  # type: ignore[attr-defined]
    for title in [
        "诉求热力",
        "网格",
        "街巷（街巷长）",
        "疏解目标",
        "整治提升项目",
        "最新诉求（实时）",
    ]:
        assert any(title in o for o in overlays), (title, overlays)
    _shot(page, f"command-{street}")
    _clean(watch, page)
    page.close()  # type: ignore[attr-defined]


def test_command_view_shows_a_newly_loaded_record_without_reload(
    browser: object, live: Live, tmp_path: Path, moment: Moment
) -> None:
    street = _street_with_most(live)
    page, watch = _open(browser, live, f"/command/{street}", moment)
    before = _int(page.inner_text("#bd-new-today"))  # type: ignore[attr-defined]
    assert before == _requests_between(live, moment.today, moment.today, street)
    with live.engine.connect() as conn:
        lng, lat = conn.execute(
            sa.text(
                "select ST_X(p), ST_Y(p) from (select ST_PointOnSurface(geom) p from grids "
                "where street_code = :c order by code limit 1) g"
            ),
            {"c": street},
        ).one()
    source_id = f"GDLIVE{moment.instant:%Y%m%d%H%M}"
    row = dict.fromkeys(REQUEST_COLUMNS, "")
    row.update(
        {
            "工单编号": source_id,
            "受理时间": f"{moment.instant.astimezone(BEIJING):%Y-%m-%d %H:%M:%S}",  # now
            "来源渠道": "12345热线",
            "诉求类别": "环境卫生",
            "诉求内容": "实时测试",
            "地址": "北京市西城区测试",
            "经度": f"{lng:.7f}",
            "纬度": f"{lat:.7f}",
            "坐标系": "WGS84",
            "状态": "待派单",
        }
    )
    path = tmp_path / "live.csv"
    path.write_text(
        ",".join(REQUEST_COLUMNS) + "\n" + ",".join(row[c] for c in REQUEST_COLUMNS) + "\n",
        encoding="utf-8",
    )
    with live.engine.connect() as conn:
        report = run_file(conn, path, layer="service_requests")
        conn.commit()
    assert report.inserted == 1
    started = time.monotonic()
    page.wait_for_function(  # type: ignore[attr-defined]
        "(n) => Number(document.getElementById('bd-new-today')"
        ".textContent.replace(/\\D/g, '')) === n",
        arg=before + 1,
        timeout=60_000,
    )
    page.wait_for_function(  # type: ignore[attr-defined]
        "(id) => Object.values(window[BD.realtime]._features || {})"
        ".some((f) => f.properties.source_id === id)",
        arg=source_id,
        timeout=60_000,
    )
    assert time.monotonic() - started < 60
    _shot(page, "command-live")
    _clean(watch, page)
    page.close()  # type: ignore[attr-defined]


def _planner_row(page: object, day: dt.date, source_id: str) -> list[str]:
    """The cells of a project's row in the planner's table as of `day`."""
    page.fill("#bd-asof", str(day))  # type: ignore[attr-defined]
    page.dispatch_event("#bd-asof", "change")  # type: ignore[attr-defined]
    page.wait_for_function(  # type: ignore[attr-defined]
        "(day) => document.getElementById('bd-status').textContent.includes(day)", arg=str(day)
    )
    row = page.locator(f'#bd-projects tbody tr[data-id="{source_id}"] td')  # type: ignore[attr-defined]
    return [text.strip() for text in row.all_inner_texts()]


def test_planner_as_of_date(browser: object, live: Live) -> None:
    CLOCK.instant = dt.datetime(2026, 11, 18, 7, 30, tzinfo=BEIJING)
    page, watch = _open(browser, live, "/planner")
    assert page.input_value("#bd-asof") == str(CLOCK.today())  # type: ignore[attr-defined]
    with live.engine.connect() as conn:
        projects = conn.exec_driver_sql("select count(*) from renovation_projects").scalar_one()
        targets = conn.exec_driver_sql("select count(*) from relocation_targets").scalar_one()
    assert _int(page.inner_text("#bd-project-count")) == projects  # type: ignore[attr-defined]
    assert _int(page.inner_text("#bd-target-count")) == targets  # type: ignore[attr-defined]
    done_today = page.locator("#bd-projects tbody tr", has_text="完成").count()  # type: ignore[attr-defined]
    page.fill("#bd-asof", "2015-01-01")  # type: ignore[attr-defined]
    page.dispatch_event("#bd-asof", "change")  # type: ignore[attr-defined]
    page.wait_for_function(
        "() => document.getElementById('bd-status').textContent.includes('2015-01-01')"
    )  # type: ignore[attr-defined]
    done_then = page.locator("#bd-projects tbody tr", has_text="完成").count()  # type: ignore[attr-defined]
    assert done_then < done_today
    # As of a day, a completion that came later is not shown; an early one is 提前 N 天.
    with live.engine.connect() as conn:
        sid, planned_end, actual_end = conn.execute(
            sa.text(
                "select source_id, planned_end, actual_end from renovation_projects "
                "where actual_end is not null and planned_end is not null "
                "and actual_end <> planned_end order by actual_end < planned_end desc, 1 limit 1"
            )
        ).one()
    eve = _planner_row(page, actual_end - dt.timedelta(days=1), sid)
    assert eve[1] != "已完成" and eve[4] == "—", eve
    done = _planner_row(page, actual_end, sid)
    late = (actual_end - planned_end).days
    schedule = f"延期 {late} 天" if late > 0 else f"提前 {-late} 天"
    assert (done[1], done[3], done[4], done[5]) == (
        "已完成",
        str(planned_end),
        str(actual_end),
        schedule,
    )
    _shot(page, "planner")
    _clean(watch, page)
    page.close()  # type: ignore[attr-defined]


# --- every page under the CSP, and every role ---------------------------------------------

MAP_DRAWN = """() => {
  let features = 0;
  BD.map.eachLayer((l) => { if (l.feature) features += 1; });
  const q = (s) => document.querySelectorAll(s).length;
  return {
    features: features,
    canvas: q('.leaflet-overlay-pane canvas'),
    overlays: q('.leaflet-control-layers-overlays label'),
    scale: q('.leaflet-control-scale'),
    fullscreen: q('.leaflet-control-zoom-fullscreen'),
    legend: q('.bd-legend'),
  };
}"""
OPEN_A_POPUP = """() => {
  let opened = null;
  BD.map.eachLayer((l) => { if (!opened && l.feature && l.getPopup && l.getPopup()) opened = l; });
  opened.openPopup();
  return document.querySelector('.leaflet-popup-content').textContent;
}"""


def _street_of(live: Live, user: str) -> tuple[str, str]:
    with live.engine.connect() as conn:
        code, name = conn.execute(
            sa.text(
                "select s.code, s.name from users u join streets s on s.code = u.street_code "
                "where u.name = :u"
            ),
            {"u": user},
        ).one()
    return str(code), str(name)


def _visit(page: object, watch: Watch, url: str) -> int:
    """Go to `url` (after collecting the CSP violations of the page shown so far)."""
    _violations(page, watch)
    response = page.goto(url)  # type: ignore[attr-defined]
    return int(response.status)


def _ready(page: object) -> None:
    page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=30_000)  # type: ignore[attr-defined]


def test_every_page_runs_under_the_csp_with_its_map_drawn(browser: object, live: Live) -> None:
    """The maps, their plugins (heat, realtime, fullscreen, layer control, scale) and the
    panels work with no inline script but the nonce'd ones: no violation on any page."""
    street = _street_with_most(live)
    page, watch = _open(browser, live, "/")
    for path in ["/", f"/command/{street}", "/planner"]:
        assert _visit(page, watch, live.url + path) == 200, path
        _ready(page)
        drawn = page.evaluate(MAP_DRAWN)  # type: ignore[attr-defined]
        assert drawn["features"] > 0 and drawn["canvas"] >= 1, (path, drawn)
        assert drawn["overlays"] >= 1 and drawn["scale"] == 1, (path, drawn)
        assert drawn["fullscreen"] == 1 and drawn["legend"] >= 1, (path, drawn)
        assert page.evaluate(OPEN_A_POPUP).strip(), path  # type: ignore[attr-defined]
        if path.startswith("/command"):
            # The heat: 100 m cells drawn from /api/heat (tests/app/test_maps_browser.py).
            assert page.evaluate("BD.heatDrawn.length") > 0  # type: ignore[attr-defined]
            assert page.evaluate("() => !!window[BD.realtime]._container")  # type: ignore[attr-defined]
        page.click(".leaflet-control-zoom-fullscreen")  # type: ignore[attr-defined]
        page.wait_for_function("() => document.querySelector('.leaflet-fullscreen-on') !== null")  # type: ignore[attr-defined]
        page.click(".leaflet-control-zoom-fullscreen")  # type: ignore[attr-defined]
        page.wait_for_function("() => document.querySelector('.leaflet-fullscreen-on') === null")  # type: ignore[attr-defined]
        _shot(page, "csp" + path.replace("/", "-"))
    with live.engine.connect() as conn:
        run = conn.exec_driver_sql("select max(run_id) from etl_rejects").scalar_one()
    for path, status in [("/imports", 200), (f"/imports/{run}", 200), ("/nowhere", 404)]:
        assert _visit(page, watch, live.url + path) == status, path
        assert page.locator("#bd-me-name").inner_text() == "district-chief"  # type: ignore[attr-defined]
        if path == f"/imports/{run}":
            assert page.locator("#bd-rejects tbody tr").count() > 0  # type: ignore[attr-defined]
        _shot(page, "csp" + path.replace("/", "-"))
    # The browser reports the 404 document it was sent as a console error: that one only.
    watch.errors = [e for e in watch.errors if "status of 404" not in e]
    _clean(watch, page)
    page.close()  # type: ignore[attr-defined]


ROLE_TITLES = {
    "district": "区级指挥中心",
    "commander": "战区司令",
    "analyst": "数据分析员",
    "planner": "规划人员",
    "clerk": "数据管理员",
}
# A page each role may not open (the district may open them all: it gets a missing one).
REFUSED = {
    "district": ("/nowhere", 404, "页面不存在"),
    "commander": ("/", 403, "无权访问"),
    "analyst": ("/imports", 403, "无权访问"),
    "planner": ("/", 403, "无权访问"),
    "clerk": ("/planner", 403, "无权访问"),
}


@pytest.mark.parametrize("role", ROLES)
def test_each_role_lands_navigates_is_refused_with_a_way_back_and_logs_out(
    browser: object, live: Live, role: str
) -> None:
    user = f"{role}-1"
    page, watch = _new_page(browser, live)
    page.on("console", lambda m: m.type == "error" and watch.errors.append(m.text))  # type: ignore[attr-defined]
    # The server's root first, as a bookmark would: the login form, then the role's own page.
    page.goto(live.url + "/")  # type: ignore[attr-defined]
    assert "/login" in page.url  # type: ignore[attr-defined]
    page.fill("input[name=name]", user)  # type: ignore[attr-defined]
    page.fill("input[name=password]", "secret-password")  # type: ignore[attr-defined]
    with page.expect_navigation():  # type: ignore[attr-defined]
        page.click("button[type=submit]")  # type: ignore[attr-defined]
    # A commander and a clerk (the street centre's) show their street.
    street = _street_of(live, user) if role in ("commander", "clerk") else None
    home = {
        "district": "/",
        "analyst": "/",
        "commander": f"/command/{street[0] if street else ''}",
        "planner": "/planner",
        "clerk": "/imports",
    }[role]
    assert urlsplit(page.url).path == home  # type: ignore[attr-defined]
    # Who am I, on every page.
    assert page.locator("#bd-me-name").inner_text() == user  # type: ignore[attr-defined]
    assert page.locator("#bd-me-role").inner_text() == ROLE_TITLES[role]  # type: ignore[attr-defined]
    if street:
        assert page.locator("#bd-me-street").inner_text() == street[1]  # type: ignore[attr-defined]
    else:
        assert page.locator("#bd-me-street").count() == 0  # type: ignore[attr-defined]
    # Every navigation link opens (no 403), and it is the role's pages only.
    links = page.eval_on_selector_all("#bd-nav a", "(as) => as.map((a) => a.getAttribute('href'))")  # type: ignore[attr-defined]
    expected = {
        "district": {"/", "/planner", "/imports", "/evaluation", "/evaluation/score"},
        "analyst": {"/", "/planner", "/evaluation", "/evaluation/score"},
        "commander": {home, "/evaluation"},
        "planner": {"/planner"},
        "clerk": {"/imports", "/queue"},  # the street centre's queue: it dispatches
    }[role]
    assert set(links) == expected
    for link in links:
        assert _visit(page, watch, live.url + link) == 200, link
        if link != "/imports":
            _ready(page)
        assert page.locator("#bd-me-name").inner_text() == user  # type: ignore[attr-defined]
    _shot(page, f"role-{role}")
    # A page the role may not open: a Chinese error page, whose link leads back home.
    path, status, heading = REFUSED[role]
    assert _visit(page, watch, live.url + path) == status
    assert heading in page.locator("#bd-error-title").inner_text()  # type: ignore[attr-defined]
    assert page.evaluate("() => document.documentElement.lang") == "zh-CN"  # type: ignore[attr-defined]
    assert page.locator("#bd-me-name").inner_text() == user  # type: ignore[attr-defined]
    _shot(page, f"refused-{role}")
    _violations(page, watch)
    with page.expect_navigation():  # type: ignore[attr-defined]
        page.click("#bd-back")  # type: ignore[attr-defined]
    assert urlsplit(page.url).path == home  # type: ignore[attr-defined]
    # Logout ends the session: the login form, and home asks for it again.
    _violations(page, watch)
    with page.expect_navigation():  # type: ignore[attr-defined]
        page.click("#bd-logout")  # type: ignore[attr-defined]
    assert urlsplit(page.url).path == "/login"  # type: ignore[attr-defined]
    _visit(page, watch, live.url + home)
    assert urlsplit(page.url).path == "/login"  # type: ignore[attr-defined]
    # The browser reports the refused document as a console error: that one only.
    watch.errors = [e for e in watch.errors if f"status of {status}" not in e]
    _clean(watch, page)
    page.close()  # type: ignore[attr-defined]
