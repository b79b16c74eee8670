"""Maps load nothing from another host: folium points at static/vendor/, which is complete."""

from __future__ import annotations

import re
from pathlib import Path

import folium
import pytest
from folium.plugins import Fullscreen, HeatMap, MarkerCluster, Realtime

from app import offline
from app.offline import OfflineError, assert_offline, check_vendor, css_urls, localize

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "static" / "vendor"
STATIC_URL = "/static/vendor"

SQUARE = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "properties": {"name": "什刹海街道"},
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [[116.37, 39.93], [116.40, 39.93], [116.40, 39.95], [116.37, 39.95]]
                ],
            },
        }
    ],
}


def _render_full_map() -> str:
    m = folium.Map(location=[39.94, 116.38], zoom_start=14, tiles=None)
    folium.TileLayer("/tiles/{z}/{x}/{y}.png", attr="Blockdata", name="底图").add_to(m)
    folium.GeoJson(SQUARE, name="街道", tooltip=folium.GeoJsonTooltip(["name"])).add_to(m)
    HeatMap([[39.94, 116.38, 3.0], [39.941, 116.381, 1.0]], name="诉求热力").add_to(m)
    Realtime("/api/requests/live.geojson", interval=30000).add_to(m)
    folium.CircleMarker([39.942, 116.385], radius=6, tooltip="案件").add_to(m)
    Fullscreen().add_to(m)
    folium.LayerControl().add_to(m)
    return m.get_root().render()


def _local_refs(html: str) -> set[str]:
    return set(re.findall(r'\b(?:src|href)="(/static/vendor/[^"]+)"', html))


@pytest.fixture
def html() -> str:
    localize(STATIC_URL)
    return _render_full_map()


def test_vendor_dir_is_static_vendor() -> None:
    assert offline.VENDOR_DIR == VENDOR


def test_rendered_map_is_offline(html: str) -> None:
    assert_offline(html)
    assert "cdn" not in html.lower()


def test_every_linked_asset_is_vendored(html: str) -> None:
    refs = _local_refs(html)
    expected = {f"{STATIC_URL}/{path}" for path in offline.VENDOR_FILES.values()}
    assert refs == expected
    for ref in refs:
        assert (VENDOR / ref.removeprefix(f"{STATIC_URL}/")).is_file(), ref


def test_vendored_css_urls_resolve() -> None:
    sheets = sorted(VENDOR.rglob("*.css"))
    assert len(sheets) >= 2
    checked = 0
    for css in sheets:
        for ref in css_urls(css.read_text(encoding="utf-8")):
            assert not re.match(r"([a-z]+:)?//", ref, re.IGNORECASE), f"{css}: {ref}"
            target = css.parent / ref.split("#")[0].split("?")[0]
            assert target.resolve().is_file(), f"{css}: url({ref})"
            assert VENDOR in target.resolve().parents, f"{css}: url({ref}) leaves static/vendor"
            checked += 1
    assert checked >= 4
    check_vendor(VENDOR)


def test_check_vendor_rejects_external_and_missing_css_urls(tmp_path: Path) -> None:
    for path in offline.VENDOR_FILES.values():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("", encoding="utf-8")
    check_vendor(tmp_path)
    sheet = tmp_path / "x" / "x.css"
    sheet.parent.mkdir()
    sheet.write_text("/* url(https://ok.in/comment) */ a{b:url('//fonts.example.com/f.woff2')}")
    with pytest.raises(OfflineError, match=re.escape("fonts.example.com")):
        check_vendor(tmp_path)
    sheet.write_text("a{background:url(img/missing.png)}")
    with pytest.raises(FileNotFoundError, match=re.escape("missing.png")):
        check_vendor(tmp_path)


def test_css_urls_skips_data_fragments_and_comments() -> None:
    css = (
        "/* see http://www.sitepoint.com/x */ .a{behavior:url(#default#VML)}"
        ".b{background:url(\"data:image/svg+xml,%3csvg xmlns='http://www.w3.org/2000/svg'\")}"
        ".c{src:url( '../f.woff2?v=1' ) format('woff2'),url(../f.woff#x)}"
    )
    assert css_urls(css) == ["../f.woff2?v=1", "../f.woff#x"]


@pytest.mark.parametrize(
    "snippet",
    [
        '<script src="https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js"></script>',
        "<link rel='stylesheet' href='https://cdnjs.cloudflare.com/ajax/libs/x.css'/>",
        '<script src="//code.jquery.com/jquery-3.7.1.min.js"></script>',
        "<style>.x{background:url(https://example.com/a.png)}</style>",
        '<style>@import "https://fonts.googleapis.com/css?family=Noto";</style>',
        '<img srcset="HTTPS://EXAMPLE.COM/a.png 2x">',
        'L.tileLayer(\n  "https://tile.openstreetmap.org/{z}/{x}/{y}.png", {})',
        'L.realtime({"url": "https://api.example.com/live.geojson", "type": "json"}, {})',
        '{"attribution": "\\u003ca href=\\"https://www.openstreetmap.org/copyright\\"\\u003e"}',
    ],
)
def test_assert_offline_catches_external_urls(snippet: str) -> None:
    with pytest.raises(ValueError, match="page loads from another host"):
        assert_offline(f"<html><head></head><body>{snippet}</body></html>")


def test_assert_offline_names_the_first_external_url() -> None:
    page = (
        '<link href="/static/vendor/leaflet/leaflet.css">'
        '<script src="https://first.example.com/a.js"></script>'
        "<style>.x{background:url(https://second.example.com/b.png)}</style>"
    )
    with pytest.raises(OfflineError, match=r"https://first\.example\.com/a\.js$"):
        assert_offline(page)


def test_assert_offline_allows_local_and_non_fetched_urls() -> None:
    assert_offline(
        '<script src="/static/vendor/leaflet/leaflet.js"></script>'
        '<script src="http://localhost:5000/static/x.js"></script>'
        "<link href='http://127.0.0.1/x.css'>"
        '<svg xmlns="http://www.w3.org/2000/svg"></svg>'
        "<style>.b{background:url(\"data:image/svg+xml,%3csvg xmlns='http://www.w3.org/2000/svg'\")}"
        "</style>"
        '<p>see https://example.com in plain text</p>L.tileLayer("/tiles/{z}/{x}/{y}.png")'
    )


def test_assert_offline_allows_listed_hosts() -> None:
    page = 'L.tileLayer("http://10.1.2.3:8080/tiles/{z}/{x}/{y}.png", {})'
    with pytest.raises(OfflineError, match=re.escape("http://10.1.2.3:8080/tiles/")):
        assert_offline(page)
    assert_offline(page, allowed_hosts=["10.1.2.3"])
    with pytest.raises(OfflineError, match=re.escape("tile.openstreetmap.org")):
        assert_offline(
            page + 'L.tileLayer("https://tile.openstreetmap.org/{z}/{x}/{y}.png")',
            allowed_hosts=["10.1.2.3"],
        )


def test_unlocalized_map_is_caught() -> None:
    page = "".join(f'<script src="{url}"></script>' for url in offline.VENDOR_FILES)
    with pytest.raises(OfflineError, match=re.escape("cdn.jsdelivr.net/npm/leaflet@1.9.3")):
        assert_offline(page)


def test_localize_is_idempotent_and_follows_static_url() -> None:
    localize()
    first = [list(folium.Map.default_js), list(folium.Map.default_css), list(HeatMap.default_js)]
    localize()
    assert [
        list(folium.Map.default_js),
        list(folium.Map.default_css),
        list(HeatMap.default_js),
    ] == (first)
    try:
        localize("https://127.0.0.1:8443/assets/")
        assert folium.Map.default_js[0] == (
            "leaflet",
            "https://127.0.0.1:8443/assets/leaflet/leaflet.js",
        )
        assert folium.folium._default_css is folium.Map.default_css
    finally:
        localize()
    assert list(folium.Map.default_js) == first[0]


def test_the_header_leaves_out_what_no_page_uses(html: str) -> None:
    """folium's jQuery, Bootstrap, Font Awesome, glyphicons and awesome-markers are dropped:
    not linked, locally or from a CDN, and no longer vendored."""
    assert len(offline.NOT_LOADED) == 8
    for url in offline.NOT_LOADED:
        assert url not in html
    links = re.findall(r'\b(?:src|href)="([^"]+)"', html)
    assert not [link for link in links if re.search(r"jquery|bootstrap|awesome|glyph", link)]
    names = {name for name, _ in folium.Map.default_js + folium.Map.default_css}
    assert names == {"leaflet", "leaflet_css"}
    for gone in (
        "jquery",
        "bootstrap",
        "fontawesome-free",
        "glyphicons",
        "leaflet.awesome-markers",
    ):
        assert not (VENDOR / gone).exists(), gone


def test_a_plugin_we_do_not_vendor_keeps_its_cdn_links_and_is_refused() -> None:
    localize(STATIC_URL)
    m = folium.Map(location=[39.94, 116.38], tiles=None)
    MarkerCluster().add_to(m)
    with pytest.raises(OfflineError, match=re.escape("leaflet.markercluster")):
        assert_offline(m.get_root().render())


def test_localize_refuses_an_unknown_cdn_url(monkeypatch: pytest.MonkeyPatch) -> None:
    localize()
    unknown = "https://cdn.jsdelivr.net/npm/leaflet.fullscreen@4.0.0/Control.FullScreen.js"
    monkeypatch.setattr(Fullscreen, "default_js", [("Control.Fullscreen.js", unknown)])
    heat_before = list(HeatMap.default_js)
    with pytest.raises(OfflineError, match=re.escape(unknown)):
        localize("/elsewhere")
    assert HeatMap.default_js == heat_before


def test_vendor_md_lists_every_vendored_file() -> None:
    doc = (ROOT / "static" / "VENDOR.md").read_text(encoding="utf-8")
    table = [line for line in doc.splitlines() if line.startswith("|")]
    assert table[1].startswith("|---"), "VENDOR.md has no table"
    rows = table[2:]
    listed = set()
    for line in rows:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert len(cells) == 5, line
        name, version, licence, files, _source = cells
        assert name and version and licence, line
        listed |= set(re.findall(r"`([^`]+)`", files))
    assert len(rows) >= 5
    for path in listed:
        assert (VENDOR / path).is_file(), path
    on_disk = {p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*") if p.is_file()}
    assert listed == on_disk
    assert set(offline.VENDOR_FILES.values()) <= listed
    assert "scripts/vendor-assets.sh" in doc
