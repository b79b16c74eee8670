"""网格员上报 in a real browser at phone size (390×844): Debian's Chromium through Playwright
against a live server on a committed database with the tiny district.

A grid officer logs in through the form, lands on the report page, picks a point on the
map, attaches a photo and submits; the page shows the case number, and the database holds
the case (in 受理, in the grid and street PostGIS finds for the picked point) with the
photo, whose file is on disk. The device's position is used when the browser grants it, and
a clear message is shown when it refuses. No console error, no failed or outside request,
no CSP violation; nothing wider than the phone.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from PIL import Image

from app import create_app
from app.config import from_env
from app.db import make_engine
from tests.etl.committed import committed_database
from tests.helpers import add_user, grid_of
from tests.plugins.ogc import serve

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PHONE = {"width": 390, "height": 844}
STREET = "110102001"  # the tiny district's street A: 116.30–116.32, 39.90–39.92
OFFICER = "go-browser"
PASSWORD = "secret-password"
CSP_LISTENER = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) =>
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


@dataclass
class Live:
    url: str
    engine: sa.Engine
    photos: Path


@pytest.fixture(scope="module")
def live(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    photos = tmp_path_factory.mktemp("photos")
    with committed_database(server_url, "blockdata_test_report") as url:
        engine = make_engine(url)
        with engine.begin() as conn:
            add_user(conn, OFFICER, "grid_officer", STREET)
        app = create_app({"DATABASE_URL": url}, settings=from_env().with_(photo_dir=photos))
        try:
            with serve(app) as base:
                yield Live(base, engine, photos)
        finally:
            app.extensions["blockdata.engine"].dispose()
            engine.dispose()


@dataclass
class Watch:
    errors: list[str]
    failed: list[str]
    outside: list[str]


def _phone(browser: object, live: Live, **context: object) -> tuple[object, object, Watch]:
    """A phone-sized page of a new context, logged in as the grid officer on the report page."""
    ctx = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, **context)  # type: ignore[attr-defined]
    page = ctx.new_page()
    watch = Watch([], [], [])
    host = urlsplit(live.url).netloc

    def route(r):  # type: ignore[no-untyped-def]
        if urlsplit(r.request.url).netloc != host and not r.request.url.startswith("data:"):
            watch.outside.append(r.request.url)
            return r.abort()
        return r.continue_()

    page.route("**/*", route)
    page.add_init_script(CSP_LISTENER)
    page.on("console", lambda m: m.type == "error" and watch.errors.append(m.text))
    page.on("pageerror", lambda e: watch.errors.append(str(e)))
    page.on("requestfailed", lambda r: watch.failed.append(f"{r.url} {r.failure}"))
    page.goto(live.url + "/login")
    page.fill("input[name=name]", OFFICER)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(live.url + "/report")
    page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=30_000)
    return ctx, page, watch


def _clean(page: object, watch: Watch) -> None:
    assert watch.outside == []
    assert watch.failed == []
    assert watch.errors == []
    assert page.evaluate("window.__csp") == []  # type: ignore[attr-defined]
    # Nothing wider than the phone: no sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # type: ignore[attr-defined]


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 40, 40)).save(out, format="PNG")
    return out.getvalue()


def test_a_grid_officer_reports_from_a_phone(browser: object, live: Live) -> None:
    ctx, page, watch = _phone(browser, live)
    try:
        assert page.inner_text("h1") == "网格员上报"  # type: ignore[attr-defined]
        assert page.inner_text("#bd-me-role") == "网格员"  # type: ignore[attr-defined]
        # The map shows the officer's street: its outline is drawn and fitted.
        assert (
            page.locator(".bd-report-map path.leaflet-interactive, .bd-report-map path").count() > 0
        )  # type: ignore[attr-defined]
        # Submitting without a point says what is missing.
        page.select_option("#bd-category", "环境卫生")  # type: ignore[attr-defined]
        page.fill("#bd-description", "小区门口垃圾桶满溢<b>x</b>")  # type: ignore[attr-defined]
        page.click("#bd-submit")  # type: ignore[attr-defined]
        assert "请在地图上点选位置" in page.inner_text("#bd-report-error")  # type: ignore[attr-defined]
        # Pick a point a little up and left of the map's centre (the street's centre, where
        # four grids meet): inside street A.
        box = page.locator("#bd-report-map").bounding_box()  # type: ignore[attr-defined]
        page.mouse.click(box["x"] + box["width"] / 2 - 23, box["y"] + box["height"] / 2 - 17)  # type: ignore[attr-defined]
        page.wait_for_function("() => document.body.dataset.point === '1'")  # type: ignore[attr-defined]
        lng = float(page.input_value("#bd-long"))  # type: ignore[attr-defined]
        lat = float(page.input_value("#bd-lat"))  # type: ignore[attr-defined]
        assert 116.30 < lng < 116.32 and 39.90 < lat < 39.92, (lng, lat)
        assert "地图选点" in page.inner_text("#bd-point")  # type: ignore[attr-defined]
        picture = _png()
        page.set_input_files(  # type: ignore[attr-defined]
            "#bd-photos", files=[{"name": "现场.png", "mimeType": "image/png", "buffer": picture}]
        )
        assert "现场.png" in page.inner_text("#bd-photo-list")  # type: ignore[attr-defined]
        page.click("#bd-submit")  # type: ignore[attr-defined]
        page.wait_for_function(  # type: ignore[attr-defined]
            "() => document.getElementById('bd-report-result').dataset.case", timeout=30_000
        )
        shown = page.inner_text("#bd-report-result")  # type: ignore[attr-defined]
        case_id = int(re.search(r"案件编号 (\d+)", shown)[1])  # type: ignore[index]
        assert "照片 1 张" in shown
        # "My reports" lists it, escaped (the description is text).
        page.wait_for_selector(f"#bd-mine li[data-case='{case_id}']")  # type: ignore[attr-defined]
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report-phone.png"), full_page=True)  # type: ignore[attr-defined]
        with live.engine.connect() as conn:
            case = conn.execute(
                sa.text(
                    "select c.state, c.street_code, c.reported_by, c.category, r.description,"
                    " r.grid_code, r.community_code, ST_X(r.geom) as x, ST_Y(r.geom) as y"
                    " from cases c join service_requests r on r.id = c.service_request_id"
                    " where c.id = :id"
                ),
                {"id": case_id},
            ).one()
            placed = grid_of(conn, lng, lat)
            photos = conn.execute(
                sa.text(
                    "select file_name, content_type, sha256, uploaded_by from case_photos"
                    " where case_id = :id"
                ),
                {"id": case_id},
            ).all()
        assert (case.state, case.reported_by, case.category) == ("received", OFFICER, "环境卫生")
        assert case.description == "小区门口垃圾桶满溢<b>x</b>"
        assert (case.grid_code, case.community_code, case.street_code) == tuple(placed)
        assert case.street_code == STREET
        assert abs(case.x - lng) < 1e-6 and abs(case.y - lat) < 1e-6
        digest = hashlib.sha256(picture).hexdigest()
        assert [(p.content_type, p.sha256, p.uploaded_by) for p in photos] == [
            ("image/png", digest, OFFICER)
        ]
        assert (live.photos / photos[0].file_name).read_bytes() == picture
        _clean(page, watch)
    finally:
        ctx.close()  # type: ignore[attr-defined]


def test_the_devices_position_or_a_clear_refusal(browser: object, live: Live) -> None:
    granted = {"latitude": 39.9125, "longitude": 116.3075, "accuracy": 12}
    ctx, page, watch = _phone(browser, live, geolocation=granted, permissions=["geolocation"])
    try:
        page.click("#bd-locate")  # type: ignore[attr-defined]
        page.wait_for_function("() => document.body.dataset.point === '1'")  # type: ignore[attr-defined]
        assert page.input_value("#bd-lat") == "39.912500"  # type: ignore[attr-defined]
        assert page.input_value("#bd-long") == "116.307500"  # type: ignore[attr-defined]
        assert "当前位置" in page.inner_text("#bd-point")  # type: ignore[attr-defined]
        assert "精度约 12 米" in page.inner_text("#bd-locate-message")  # type: ignore[attr-defined]
        _clean(page, watch)
    finally:
        ctx.close()  # type: ignore[attr-defined]
    ctx, page, watch = _phone(browser, live, permissions=[])
    try:
        page.click("#bd-locate")  # type: ignore[attr-defined]
        page.wait_for_function(  # type: ignore[attr-defined]
            "() => /请在地图上点选位置/"
            ".test(document.getElementById('bd-locate-message').textContent)",
            timeout=20_000,
        )
        assert "拒绝了定位权限" in page.inner_text("#bd-locate-message")  # type: ignore[attr-defined]
        assert page.input_value("#bd-lat") == ""  # type: ignore[attr-defined]
        _clean(page, watch)
    finally:
        ctx.close()  # type: ignore[attr-defined]
