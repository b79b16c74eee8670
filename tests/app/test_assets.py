"""What the pages load and how it is sent: folium's header reduced to what the pages use,
and responses compressed (Flask-Compress: br or gzip as the client accepts; static files
too; never tiny bodies; exports stream as they are). Expected bodies are the files on disk
and the uncompressed answers, decompressed by the standard library and brotli."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import brotli
import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from app import compression

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "static"
DECODE = {"gzip": gzip.decompress, "br": brotli.decompress}
# What differs between two renderings of a page: its CSP nonce and folium's element ids.
VARYING = re.compile(r'nonce-[\w-]+|nonce="[\w-]+"|_[0-9a-f]{32}\b')
UNUSED = ("jquery", "bootstrap", "fontawesome", "glyphicon", "awesome")


@pytest.mark.parametrize("encoding", ["gzip", "br"])
@pytest.mark.parametrize(
    "path", ["js/blockdata.js", "css/blockdata.css", "vendor/leaflet/leaflet.js"]
)
def test_static_files_are_compressed(anonymous: FlaskClient, path: str, encoding: str) -> None:
    on_disk = (STATIC / path).read_bytes()
    plain = anonymous.get(f"/static/{path}", buffered=True)
    assert plain.status_code == 200
    assert "Content-Encoding" not in plain.headers
    assert plain.data == on_disk
    packed = anonymous.get(f"/static/{path}", headers={"Accept-Encoding": encoding})
    assert packed.status_code == 200
    assert packed.headers["Content-Encoding"] == encoding
    assert int(packed.headers["Content-Length"]) == len(packed.data) < len(on_disk) // 2
    assert DECODE[encoding](packed.data) == on_disk
    assert "Accept-Encoding" in packed.headers["Vary"]
    # Cached an hour as before; the security headers still there.
    assert packed.headers["Cache-Control"] == plain.headers["Cache-Control"]
    assert "max-age=3600" in packed.headers["Cache-Control"]
    assert "default-src 'self'" in packed.headers["Content-Security-Policy"]
    assert packed.headers["X-Content-Type-Options"] == "nosniff"
    # One ETag per representation; a revalidation of the compressed one answers 304.
    assert packed.headers["ETag"] != plain.headers["ETag"]
    again = anonymous.get(
        f"/static/{path}",
        headers={"Accept-Encoding": encoding, "If-None-Match": packed.headers["ETag"]},
    )
    assert again.status_code == 304
    assert again.data == b""
    # The second answer comes from the cache of compressed static files: the same bytes.
    assert anonymous.get(f"/static/{path}", headers={"Accept-Encoding": encoding}).data == (
        packed.data
    )


def test_brotli_is_preferred_when_both_are_accepted(anonymous: FlaskClient) -> None:
    r = anonymous.get("/static/js/blockdata.js", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert r.headers["Content-Encoding"] == "br"
    only_identity = anonymous.get(
        "/static/js/blockdata.js", headers={"Accept-Encoding": "zstd"}, buffered=True
    )
    assert "Content-Encoding" not in only_identity.headers


def test_tiny_responses_are_not_compressed(anonymous: FlaskClient) -> None:
    icon = (STATIC / "favicon.svg").read_bytes()
    assert len(icon) < compression.MIN_SIZE
    r = anonymous.get("/static/favicon.svg", headers={"Accept-Encoding": "gzip, br"}, buffered=True)
    assert r.status_code == 200
    assert "Content-Encoding" not in r.headers
    assert r.data == icon


def test_images_and_fonts_are_sent_as_they_are(anonymous: FlaskClient) -> None:
    png = (STATIC / "vendor/leaflet/images/layers-2x.png").read_bytes()
    assert len(png) > compression.MIN_SIZE
    r = anonymous.get(
        "/static/vendor/leaflet/images/layers-2x.png",
        headers={"Accept-Encoding": "gzip, br"},
        buffered=True,
    )
    assert "Content-Encoding" not in r.headers
    assert r.data == png


def _pair(client: FlaskClient, url: str, encoding: str) -> tuple[bytes, bytes, str]:
    plain = client.get(url)
    packed = client.get(url, headers={"Accept-Encoding": encoding})
    assert plain.status_code == packed.status_code == 200
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == encoding
    assert packed.mimetype == plain.mimetype
    return plain.data, DECODE[encoding](packed.data), packed.mimetype


@pytest.mark.parametrize("encoding", ["gzip", "br"])
def test_json_and_geojson_are_compressed(
    client: FlaskClient, district: object, encoding: str
) -> None:
    plain, unpacked, mimetype = _pair(client, "/api/layers/grids/geojson", encoding)
    assert len(plain) > compression.MIN_SIZE
    assert mimetype == "application/geo+json"
    assert unpacked == plain
    plain, unpacked, mimetype = _pair(client, "/api/layers", encoding)
    assert mimetype == "application/json"
    assert unpacked == plain


@pytest.mark.parametrize("encoding", ["gzip", "br"])
def test_pages_are_compressed_with_their_headers(
    client: FlaskClient, district: object, encoding: str
) -> None:
    plain = client.get("/planner")
    packed = client.get("/planner", headers={"Accept-Encoding": encoding})
    assert packed.headers["Content-Encoding"] == encoding
    # Each answer has its own CSP nonce and map ids; everything else is the same page.
    assert VARYING.sub("", DECODE[encoding](packed.data).decode()) == VARYING.sub(
        "", plain.get_data(as_text=True)
    )
    assert packed.headers["Cache-Control"] == "no-store"
    assert "script-src 'self' 'nonce-" in packed.headers["Content-Security-Policy"]


def test_exports_stream_uncompressed(client: FlaskClient, district: object) -> None:
    """An export is spooled and sent at the client's pace: left as it is, its length known."""
    r = client.get(
        "/api/layers/streets/features", headers={"Accept-Encoding": "gzip, br"}, buffered=True
    )
    assert r.status_code == 200
    assert "Content-Encoding" not in r.headers
    assert int(r.headers["Content-Length"]) == len(r.data)
    assert r.get_json()["type"] == "FeatureCollection"


def _vendor_links(html: str) -> set[str]:
    return set(re.findall(r'(?:src|href)="/static/vendor/([^"]+)"', html))


def test_map_pages_link_only_what_they_use(
    client: FlaskClient, connection: sa.Connection, district: object
) -> None:
    street = connection.exec_driver_sql("select min(code) from streets").scalar_one()
    common = {
        "leaflet/leaflet.js",
        "leaflet/leaflet.css",
        "leaflet.fullscreen/Control.FullScreen.js",
        "leaflet.fullscreen/Control.FullScreen.css",
    }
    # the heat is drawn from the cells by blockdata.js: no page loads Leaflet.heat any more
    plugins = {"leaflet-realtime/leaflet-realtime.min.js"}
    for url, expected in [
        ("/", common),
        ("/planner", common),
        (f"/command/{street}", common | plugins),
    ]:
        html = client.get(url).get_data(as_text=True)
        assert _vendor_links(html) == expected, url
        for word in UNUSED:
            assert word not in html.lower().replace("fullscreen", ""), (url, word)
        for path in expected:
            assert (STATIC / "vendor" / path).is_file()


def test_the_evaluation_page_links_the_common_echarts_build(client: FlaskClient) -> None:
    html = client.get("/evaluation").get_data(as_text=True)
    assert _vendor_links(html) == {"echarts/echarts.common.min.js"}
    assert not (STATIC / "vendor/echarts/echarts.min.js").exists()
