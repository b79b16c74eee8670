"""A first load of each page in Chromium, cache disabled: at most 300 KB over the wire (a size
Chrome counts, not a time), no console error, no failed request, and everything the page
showed before its unused assets were dropped still there and visible (the map, its zoom,
full-screen, scale and layer controls, the legend, the panel's figures). Screenshots go to
test-artifacts/assets-*.png."""

from __future__ import annotations

from typing import Any

import pytest

from tests.assets_fixtures import Site, first_load, logged_in, shot, site

pytestmark = pytest.mark.browser
__all__ = ["site"]  # the module-scoped fixture, used by name

LIMIT = 300 * 1024
MAP = [
    ".leaflet-container",
    ".leaflet-control-zoom-in",
    ".leaflet-control-zoom-fullscreen",
    ".leaflet-control-scale",
    ".leaflet-control-layers",
    ".bd-legend",
    "#bd-panel h1",
]
# (name, path, role, ready flag, what must be visible, how many of a selector)
PAGES: list[tuple[str, str, str | None, bool, list[str], dict[str, int]]] = [
    ("overview", "/", "district", True, [*MAP, "#bd-ranking tbody tr"], {".bd-street-label": 15}),
    (
        "command",
        "/command/{street}",
        "district",
        True,
        [*MAP, ".bd-scale", "#bd-open", "#bd-hot-grids li", "#bd-window"],
        {},
    ),
    ("planner", "/planner", "district", True, [*MAP, "#bd-projects tbody tr"], {}),
    ("queue", "/queue", "clerk", True, ["#bd-panel h1", "#bd-nav a"], {}),
    ("evaluation", "/evaluation", "district", False, ["#ev-main h1", "#ev-period"], {}),
    ("login", "/login", None, False, ["input[name=name]", "input[name=password]"], {}),
]


@pytest.mark.parametrize(
    ("name", "path", "role", "ready", "visible", "counts"), PAGES, ids=[p[0] for p in PAGES]
)
def test_first_load_is_small_and_shows_everything(
    browser: Any,
    site: Site,
    name: str,
    path: str,
    role: str | None,
    ready: bool,
    visible: list[str],
    counts: dict[str, int],
) -> None:
    context, page = logged_in(browser, site, role)
    try:
        load = first_load(context, page, site.url + path.format(street=site.street), ready)
        for selector in visible:
            page.wait_for_selector(selector, state="visible", timeout=10_000)
        for selector, n in counts.items():
            assert page.locator(selector).count() == n, selector
        shot(page, f"assets-{name}")
        assert load.errors == []
        assert load.failed == []
        assert load.sizes.get("Document", 0) > 0
        assert 0 < load.total <= LIMIT, load.sizes
    finally:
        context.close()
