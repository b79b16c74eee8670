"""The export button in Chromium: a click downloads the page's current filters as GeoJSON, CSV
or GeoPackage through /api/layers/<layer>/features; the file holds the rows an independent
SQL count gives and the export is in the audit log. Hidden for a role that may not export.

The server's clock is frozen (23:30 Beijing: the browser, in New York, is still on the day
before), so the window's days come from the server's "today", never the browser's clock."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pyogrio
import pytest
import sqlalchemy as sa

from tests.assets_fixtures import Site, logged_in, shot, site
from tests.clock import BEIJING, day_start

pytestmark = pytest.mark.browser
__all__ = ["site"]  # the module-scoped fixture, used by name

LATE = dt.datetime(2026, 11, 18, 23, 30, tzinfo=BEIJING)
NEW_YORK = "America/New_York"


def _ready(page: Any) -> None:
    page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=30_000)


def _download(page: Any, fmt: str, folder: Path) -> Path:
    """Open the menu, click the format's link; the file saved under the name it came with."""
    page.click("#bd-export-button")
    with page.expect_download() as info:
        page.click(f"#bd-export-{fmt}")
    name = info.value.suggested_filename
    assert name.endswith(f".{fmt}"), name
    path = folder / name
    info.value.save_as(path)
    return path


def _audited(site: Site, user: str) -> list[Any]:
    with site.engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "select filters, rows from audit_log where action = 'export'"
                    " and user_name = :u order by id"
                ),
                {"u": user},
            )
        )


def _count(site: Site, sql: str, **params: Any) -> int:
    with site.engine.connect() as conn:
        return int(conn.execute(sa.text(sql), params).scalar_one())


def test_command_csv_is_the_window_and_category_shown(
    browser: Any, site: Site, tmp_path: Path
) -> None:
    site.clock.instant = LATE
    context, page = logged_in(browser, site, "commander", timezone=NEW_YORK)
    try:
        page.clock.set_fixed_time(LATE)
        page.goto(f"{site.url}/command/{site.street}")
        _ready(page)
        today = LATE.date()  # Beijing's
        since = today - dt.timedelta(days=29)
        window = {"lo": day_start(since), "hi": day_start(today + dt.timedelta(days=1))}
        with site.engine.connect() as conn:  # the street's commonest category of the window
            category = conn.execute(
                sa.text(
                    "select category from service_requests where street_code = :s"
                    " and received_at >= :lo and received_at < :hi"
                    " group by 1 order by count(*) desc, 1 limit 1"
                ),
                {"s": site.street, **window},
            ).scalar_one()
        page.select_option("#bd-window", "30")
        page.wait_for_function("() => document.querySelector('#bd-category').options.length > 1")
        page.select_option("#bd-category", category)
        path = _download(page, "csv", tmp_path)
        shot(page, "assets-export-command")
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
        expected = _count(
            site,
            "select count(*) from service_requests where street_code = :s and category = :c"
            " and received_at >= :lo and received_at < :hi",
            s=site.street,
            c=category,
            **window,
        )
        assert expected > 0
        assert len(rows) == expected
        entry = _audited(site, site.user("commander"))[-1]
        assert entry.rows == expected
        assert entry.filters["format"] == "csv"
        assert entry.filters["filters"] == {
            "street": site.street,
            "since": since.isoformat(),
            "until": today.isoformat(),
            "category": category,
        }
        note = page.inner_text("#bd-export-filters")
        assert since.isoformat() in note and category in note
    finally:
        context.close()


def test_overview_geojson_is_the_month_shown(browser: Any, site: Site, tmp_path: Path) -> None:
    site.clock.instant = LATE
    context, page = logged_in(browser, site, "analyst", timezone=NEW_YORK)
    try:
        page.clock.set_fixed_time(LATE)
        page.goto(site.url + "/")
        _ready(page)
        page.fill("#bd-month", "2026-10")
        page.dispatch_event("#bd-month", "change")
        before = len(_audited(site, site.user("analyst")))
        path = _download(page, "geojson", tmp_path)
        features = json.loads(path.read_text(encoding="utf-8"))["features"]
        expected = _count(
            site,
            "select count(*) from service_requests where received_at >= :lo and received_at < :hi",
            lo=day_start(dt.date(2026, 10, 1)),
            hi=day_start(dt.date(2026, 11, 1)),
        )
        assert expected > 0
        assert len(features) == expected
        audited = _audited(site, site.user("analyst"))
        assert len(audited) == before + 1
        assert audited[-1].filters["filters"] == {"since": "2026-10-01", "until": "2026-10-31"}
        assert audited[-1].filters["format"] == "geojson"
    finally:
        context.close()


def test_planner_geopackage_is_the_street_chosen(browser: Any, site: Site, tmp_path: Path) -> None:
    context, page = logged_in(browser, site, "planner")
    try:
        page.goto(site.url + "/planner")
        _ready(page)
        page.select_option("#bd-street-filter", site.street)
        path = _download(page, "gpkg", tmp_path)
        frame = pyogrio.read_dataframe(path, columns=["id"], read_geometry=False)
        expected = _count(
            site,
            "select count(*) from renovation_projects where street_code = :s",
            s=site.street,
        )
        assert expected > 0
        assert len(frame) == expected
        entry = _audited(site, site.user("planner"))[-1]
        assert entry.rows == expected
        assert entry.filters["layer"] == "renovation_projects"
        assert entry.filters["format"] == "gpkg"
        assert entry.filters["filters"] == {"street": site.street}
    finally:
        context.close()


@pytest.mark.parametrize(
    ("role", "path", "shown"),
    [
        ("district", "/", True),
        ("analyst", "/planner", True),
        ("commander", "/command/{street}", True),
        ("planner", "/planner", True),
        ("assessor", "/", False),
    ],
)
def test_the_button_shows_for_exporters_only(
    browser: Any, site: Site, role: str, path: str, shown: bool
) -> None:
    context, page = logged_in(browser, site, role)
    try:
        page.goto(site.url + path.format(street=site.street))
        _ready(page)
        assert page.locator("#bd-export").count() == (1 if shown else 0)
        if shown:
            page.click("#bd-export-button")
            for fmt in ("geojson", "csv", "gpkg"):
                link = page.locator(f"#bd-export-{fmt}")
                assert link.is_visible()
                assert f"f={fmt}" in (link.get_attribute("href") or "")
    finally:
        context.close()
