"""Maps people can read (issue 14), in Debian's Chromium against a live server: the legend
lists every drawn layer with distinct colours; the heat is drawn from the 100 m cells (or
per street, community, grid) with a colour scale that matches counts made here from the rows;
popups speak Chinese (names, labels, local times, sources in words, no true/false); hot grids
are named by label; on a phone the layer switcher and the legend fold away behind a button;
with no tile basemap configured the district's own layers draw one, with place names.

Expected values come from SQL over the rows written here, never from the code under test.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import sqlalchemy as sa

from layers.aggregates import CELL_DLAT, CELL_DLNG, CELL_ORIGIN
from tests.clock import BEIJING, day_start, process_tz
from tests.maps_fixtures import CLOCK, Live, clean, live, open_page, shot

pytestmark = pytest.mark.browser
__all__ = ["live"]  # the fixture, used by name

PAGES = ["/", "/command/{street}", "/planner"]
YLORRD = ["#fed976", "#feb24c", "#fd8d3c", "#f03b20", "#bd0026"]  # ColorBrewer YlOrRd

LEGEND = """() => {
  const overlays = [...document.querySelectorAll('.leaflet-control-layers-overlays label')]
    .map((l) => l.textContent.trim());
  const groups = [...document.querySelectorAll('.bd-legend .bd-legend-layer')].map((g) => ({
    layer: g.dataset.layer,
    colours: [...g.querySelectorAll('i.bd-swatch')].map((i) => i.dataset.color),
    text: g.textContent,
  }));
  return { overlays, groups };
}"""


def _rgb(hex_colour: str) -> str:
    h = hex_colour.lstrip("#")
    return "rgb({}, {}, {})".format(*(int(h[i : i + 2], 16) for i in (0, 2, 4)))


@pytest.mark.parametrize("path", PAGES)
def test_the_legend_lists_every_drawn_layer_with_a_distinct_colour(
    browser: Any, live: Live, path: str
) -> None:
    CLOCK.instant = dt.datetime(2026, 11, 18, 15, 0, tzinfo=BEIJING)
    page, watch = open_page(browser, live.url, path.format(street=live.street))
    legend = page.evaluate(LEGEND)
    layers = [g["layer"] for g in legend["groups"]]
    # Every overlay of the layer switcher has its entry, and the legend lists no other.
    assert sorted(layers) == sorted(legend["overlays"]), legend
    assert len(layers) == len(set(layers))
    colours = [c for g in legend["groups"] for c in g["colours"]]
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in colours), colours
    assert len(colours) == len(set(colours)), legend  # one colour, one meaning
    # The swatches show the colours they declare.
    shown = page.eval_on_selector_all(
        ".bd-legend .bd-legend-layer i.bd-swatch", "(is) => is.map((i) => i.style.background)"
    )
    assert shown == [_rgb(c) for c in colours]
    shot(page, "legend" + path.replace("/", "-").replace("{street}", live.street))
    clean(watch)
    page.close()


def _cell_counts(live: Live, street: str, since: dt.date, until: dt.date) -> dict[str, int]:
    """Requests per 100 m cell (x_y) of the street received on the local days since … until."""
    with live.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select floor((ST_X(geom) - :x0) / :dx)::int as x, "
                "floor((ST_Y(geom) - :y0) / :dy)::int as y, count(*) from service_requests "
                "where street_code = :s and received_at >= :lo and received_at < :hi "
                "group by 1, 2"
            ),
            {
                "x0": CELL_ORIGIN[0],
                "y0": CELL_ORIGIN[1],
                "dx": CELL_DLNG,
                "dy": CELL_DLAT,
                "s": street,
                "lo": day_start(since),
                "hi": day_start(until + dt.timedelta(days=1)),
            },
        ).all()
    return {f"{x}_{y}": int(n) for x, y, n in rows}


def _grid_counts(live: Live, street: str, since: dt.date, until: dt.date) -> dict[str, int]:
    with live.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select grid_code, count(*) from service_requests where street_code = :s "
                "and grid_code is not null and received_at >= :lo and received_at < :hi "
                "group by 1"
            ),
            {
                "s": street,
                "lo": day_start(since),
                "hi": day_start(until + dt.timedelta(days=1)),
            },
        ).all()
    return {str(code): int(n) for code, n in rows}


def _classes(counts: list[int]) -> list[tuple[int, int, str]]:
    """(lo, hi, colour) of the scale: quintile breaks of the counts (a count some unit has),
    equal breaks merged, light to dark."""
    uppers = sorted(
        {int(v) for v in np.quantile(counts, [0.2, 0.4, 0.6, 0.8, 1.0], method="inverted_cdf")}
    )
    k = len(uppers)
    out = []
    for i, hi in enumerate(uppers):
        lo = min(min(counts), hi) if i == 0 else uppers[i - 1] + 1
        colour = YLORRD[-1] if k == 1 else YLORRD[round(i * 4 / (k - 1))]
        out.append((lo, hi, colour))
    return out


DRAWN = """() => ({
  level: document.body.dataset.heatLevel,
  drawn: BD.heatDrawn,
  scale: [...document.querySelectorAll('.bd-scale .bd-scale-class')].map((c) => [
    Number(c.dataset.lo), Number(c.dataset.hi), c.querySelector('i').dataset.color, c.textContent]),
  title: document.querySelector('.bd-scale .bd-legend-title').textContent,
})"""


@pytest.mark.parametrize("user", ["district-chief", "commander-1"])
def test_heat_cells_and_scale_match_a_count_of_the_rows(
    browser: Any, live: Live, user: str
) -> None:
    CLOCK.instant = dt.datetime(2026, 11, 18, 15, 0, tzinfo=BEIJING)
    today = CLOCK.today()
    page, watch = open_page(browser, live.url, f"/command/{live.street}", user)
    since = today - dt.timedelta(days=29)
    page.wait_for_function("() => document.body.dataset.heatLevel === 'cell'")
    heat = page.evaluate(DRAWN)
    expected = _cell_counts(live, live.street, since, today)
    assert {d["code"]: d["n"] for d in heat["drawn"]} == expected
    classes = _classes(list(expected.values()))
    assert [s[:3] for s in heat["scale"]] == [list(c) for c in classes]
    assert heat["title"] == "每100米格诉求数（近30天）"
    for d in heat["drawn"]:  # each cell in the colour of the class its count falls in
        assert d["color"] == next(c for lo, hi, c in classes if lo <= d["n"] <= hi), d
    # Labels say the range: "3–5" (or one number).
    lo, hi, _ = classes[-1]
    assert heat["scale"][-1][3].strip() == (f"{lo}" if lo == hi else f"{lo}–{hi}")
    # The cells are drawn as 100 m squares, not blobs: no heatmap canvas.
    assert page.locator("canvas.leaflet-heatmap-layer").count() == 0
    shot(page, f"heat-cells-{user}")
    # Per grid, over the last 7 days.
    page.select_option("#bd-heat-level", "grid")
    page.select_option("#bd-window", "7")
    week = today - dt.timedelta(days=6)
    page.wait_for_function(
        "(s) => document.body.dataset.heatLevel === 'grid'"
        " && document.body.dataset.heatSince === s",
        arg=str(week),
    )
    heat = page.evaluate(DRAWN)
    grids = _grid_counts(live, live.street, week, today)
    assert {d["code"]: d["n"] for d in heat["drawn"]} == grids
    assert [s[:3] for s in heat["scale"]] == [list(c) for c in _classes(list(grids.values()))]
    assert heat["title"] == "每网格诉求数（近7天）"
    shot(page, f"heat-grids-{user}")
    clean(watch)
    page.close()


def _grid_label(live: Live, grid: str) -> str:
    with live.engine.connect() as conn:
        community = conn.execute(
            sa.text(
                "select c.name from grids g join communities c on c.code = g.community_code "
                "where g.code = :g"
            ),
            {"g": grid},
        ).scalar_one()
    return f"{community} 第{int(grid[-3:])}网格"


def test_hot_grids_are_named_by_label(browser: Any, live: Live) -> None:
    CLOCK.instant = dt.datetime(2026, 11, 18, 15, 0, tzinfo=BEIJING)
    page, watch = open_page(browser, live.url, f"/command/{live.street}", "commander-1")
    page.wait_for_selector("#bd-hot-grids li a")
    links = page.eval_on_selector_all(
        "#bd-hot-grids li a", "(as) => as.map((a) => [a.dataset.code, a.textContent])"
    )
    assert links
    for code, text in links:
        assert re.fullmatch(r"\d{15}", code)
        assert text == _grid_label(live, code)
    clean(watch)
    page.close()


OPEN_CASE = """(id) => {
  let found = null;
  BD.map.eachLayer((l) => { if (l.feature && l.feature.properties.id === id
    && l.feature.properties.case_no !== undefined) found = l; });
  found.openPopup();
  return found.getPopup().getElement().querySelector('.leaflet-popup-content').textContent;
}"""


OPEN_PROJECT = """(id) => {
  BD.map.closePopup();
  let found = null;
  BD.map.eachLayer((l) => { if (l.feature && l.feature.properties.id === id
    && l.feature.properties.phase !== undefined) found = l; });
  found.openPopup();
  return found.getPopup().getElement().querySelector('.leaflet-popup-content').textContent;
}"""


@pytest.mark.parametrize(
    ("server_tz", "browser_tz"), [("UTC", "America/New_York"), ("America/New_York", "UTC")]
)
def test_a_popup_reads_in_chinese_with_local_times(
    browser: Any, live: Live, server_tz: str, browser_tz: str
) -> None:
    instant = dt.datetime(2026, 11, 18, 23, 30, tzinfo=BEIJING)
    CLOCK.instant = instant
    with live.engine.connect() as conn:
        case = (
            conn.execute(
                sa.text(
                    "select e.id, e.case_type, e.opened_at, e.due_at, e.source, e.grid_code, "
                    "e.street_code, e.joint, s.name as street_name, c.name as community_name "
                    "from enforcement_cases e join streets s on s.code = e.street_code "
                    "join communities c on c.code = e.community_code "
                    "where e.street_code = :s and e.status <> '已结案' and e.grid_code is not null "
                    "order by e.due_at < :now desc, e.id limit 1"
                ),
                {"s": live.street, "now": instant},
            )
            .mappings()
            .one()
        )
    with process_tz(server_tz):
        page, watch = open_page(
            browser,
            live.url,
            f"/command/{live.street}",
            "commander-1",
            timezone=browser_tz,
            instant=instant,
        )
        text = page.evaluate(OPEN_CASE, case["id"])
    local = ZoneInfo("Asia/Shanghai")
    assert f"{case['opened_at'].astimezone(local):%Y-%m-%d %H:%M}" in text, text
    if case["due_at"] is not None:
        assert f"{case['due_at'].astimezone(local):%Y-%m-%d %H:%M}" in text, text
    assert "城管综合执法系统" in text and case["source"] not in text
    assert _grid_label(live, case["grid_code"]) in text
    assert case["street_name"] in text and case["community_name"] in text
    overdue = case["due_at"] is not None and case["due_at"] < instant
    assert ("超期是" if overdue else "超期否") in text  # past its deadline or not, in words
    assert "联合执法" + ("是" if case["joint"] else "否") in text
    assert not re.search(r"\d{9,}", text), text  # no bare unit codes
    assert "true" not in text and "false" not in text and "T" not in re.sub(r"[^A-Z]", "", text)
    shot(page, f"popup-{browser_tz.replace('/', '-')}")
    # A renovation project names its lane, never the lane's code.
    with live.engine.connect() as conn:
        project = (
            conn.execute(
                sa.text(
                    "select p.id, l.name as lane, p.planned_end from renovation_projects p "
                    "join lanes l on l.code = p.lane_code where p.street_code = :s "
                    "order by p.id limit 1"
                ),
                {"s": live.street},
            )
            .mappings()
            .one()
        )
    text = page.evaluate(OPEN_PROJECT, project["id"])
    assert project["lane"] in text and not re.search(r"\d{9,}", text), text
    if project["planned_end"] is not None:
        assert f"计划完成{project['planned_end']:%Y-%m-%d}" in text, text
    clean(watch)
    page.close()


FOLDED = """() => {
  const seen = (s) => { const e = document.querySelector(s);
    return !!e && getComputedStyle(e).display !== 'none' && e.offsetHeight > 0; };
  return { layers: seen('.leaflet-control-layers'), legend: seen('.bd-legend'),
    button: seen('.bd-fold') };
}"""


@pytest.mark.parametrize("path", PAGES)
def test_on_a_phone_the_switcher_and_legend_fold_away(browser: Any, live: Live, path: str) -> None:
    CLOCK.instant = dt.datetime(2026, 11, 18, 15, 0, tzinfo=BEIJING)
    page, watch = open_page(
        browser, live.url, path.format(street=live.street), width=390, height=844
    )
    assert page.evaluate(FOLDED) == {"layers": False, "legend": False, "button": True}
    shot(page, "phone-folded" + path.replace("/", "-").replace("{street}", live.street))
    page.click(".bd-fold")
    assert page.evaluate(FOLDED) == {"layers": True, "legend": True, "button": True}
    shot(page, "phone-open" + path.replace("/", "-").replace("{street}", live.street))
    page.click(".bd-fold")
    assert page.evaluate(FOLDED)["legend"] is False
    # On a wide screen no button: both are shown.
    page.set_viewport_size({"width": 1400, "height": 900})
    assert page.evaluate(FOLDED) == {"layers": True, "legend": True, "button": False}
    clean(watch)
    page.close()


BASEMAP = """() => ({
  basemap: document.body.dataset.basemap || null,
  lanes: Number(document.body.dataset.basemapLanes || 0),
  streets: [...document.querySelectorAll('.bd-place-street')].map((e) => e.textContent),
  communities: [...document.querySelectorAll('.bd-place-community')].map((e) => e.textContent),
  near: [...document.querySelectorAll('.bd-place-lane, .bd-place-landmark, .bd-place-hall')]
    .map((e) => e.textContent),
  tiles: document.querySelectorAll('.leaflet-tile-pane img').length,
})"""


def test_without_a_tile_basemap_the_district_draws_its_own(browser: Any, live: Live) -> None:
    CLOCK.instant = dt.datetime(2026, 11, 18, 15, 0, tzinfo=BEIJING)
    with live.engine.connect() as conn:
        street_name = conn.execute(
            sa.text("select name from streets where code = :s"), {"s": live.street}
        ).scalar_one()
        lanes = (
            conn.execute(
                sa.text("select name from lanes where street_code = :s"), {"s": live.street}
            )
            .scalars()
            .all()
        )
        communities = set(
            conn.execute(
                sa.text("select name from communities where street_code = :s"),
                {"s": live.street},
            ).scalars()
        )
        all_streets = set(conn.execute(sa.text("select name from streets")).scalars())
    page, watch = open_page(browser, live.url, f"/command/{live.street}", "commander-1")
    page.wait_for_function("() => Number(document.body.dataset.basemapLanes) > 0")
    drawn = page.evaluate(BASEMAP)
    assert drawn["basemap"] == "own" and drawn["tiles"] == 0
    assert drawn["lanes"] == len(lanes)
    page.evaluate("() => { BD.map.setZoom(14); }")
    page.wait_for_function("() => document.querySelectorAll('.bd-place-community').length > 0")
    drawn = page.evaluate(BASEMAP)
    assert drawn["streets"] == [street_name]  # a commander's map names its street only
    assert set(drawn["communities"]) == communities
    shot(page, "basemap-z14")
    page.evaluate("() => { BD.map.setZoom(16); }")
    page.wait_for_function(  # (a removed label fades out for 200 ms)
        "() => document.querySelectorAll('.bd-place-lane').length > 0"
        " && document.querySelectorAll('.bd-place-street').length === 0"
    )
    drawn = page.evaluate(BASEMAP)
    assert set(lanes) <= set(drawn["near"]) and drawn["streets"] == []
    shot(page, "basemap-z16")
    clean(watch)
    page.close()
    # The planners' map names every street.
    page, watch = open_page(browser, live.url, "/planner", "planner-1")
    page.wait_for_function("() => document.body.dataset.basemap === 'own'")
    assert set(page.evaluate(BASEMAP)["streets"]) == all_streets
    clean(watch)
    page.close()


def test_a_configured_tile_basemap_stays(browser: Any, live: Live) -> None:
    CLOCK.instant = dt.datetime(2026, 11, 18, 15, 0, tzinfo=BEIJING)
    page, watch = open_page(browser, live.tiles_url, f"/command/{live.street}", "commander-1")
    page.wait_for_function("() => document.querySelectorAll('.leaflet-tile-pane img').length > 0")
    drawn = page.evaluate(BASEMAP)
    assert drawn["basemap"] is None and drawn["streets"] == [] and drawn["lanes"] == 0
    # Leaflet cancels the tiles of the first view when the map fits the street (and points
    # the cancelled images at a data: GIF): those are the tile layer's, not the page's.
    watch.failed = [f for f in watch.failed if "?tile=" not in f]
    watch.errors = [e for e in watch.errors if "data:image/gif" not in e]
    clean(watch)
    page.close()
