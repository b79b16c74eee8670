"""Maps without internet: point folium at the assets vendored in `static/vendor/`.

folium links Leaflet, jQuery, Bootstrap, Font Awesome and its plugins from CDNs through the
`default_js` / `default_css` class attributes of its `JSCSSMixin` elements. `localize()` rewrites
those lists to local URLs through `VENDOR_FILES`, drops what no page uses (`NOT_LOADED`), and
refuses any CDN URL the tables do not know, so that an upgrade of folium cannot silently bring
a CDN back. `assert_offline()` checks rendered HTML as the last guard.
`scripts/vendor-assets.sh` fetches the files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Final
from urllib.parse import urlsplit

import folium
import folium.folium
from folium.plugins import Fullscreen, HeatMap, Realtime

VENDOR_DIR: Final = Path(__file__).resolve().parent.parent / "static" / "vendor"

_CDNJS: Final = "https://cdnjs.cloudflare.com/ajax/libs"
_JSDELIVR: Final = "https://cdn.jsdelivr.net"

# Every URL folium 0.20 links for the elements we use, and the file under static/vendor/ that
# replaces it. Versions differ where we took a newer patch release (see static/VENDOR.md).
VENDOR_FILES: Final[dict[str, str]] = {
    # folium.Map
    f"{_JSDELIVR}/npm/leaflet@1.9.3/dist/leaflet.js": "leaflet/leaflet.js",
    f"{_JSDELIVR}/npm/leaflet@1.9.3/dist/leaflet.css": "leaflet/leaflet.css",
    # folium.plugins.HeatMap
    f"{_JSDELIVR}/gh/python-visualization/folium@main/folium/templates/leaflet_heat.min.js": (
        "folium/leaflet_heat.min.js"
    ),
    # folium.plugins.Realtime
    f"{_CDNJS}/leaflet-realtime/2.2.0/leaflet-realtime.js": (
        "leaflet-realtime/leaflet-realtime.min.js"
    ),
    # folium.plugins.Fullscreen
    f"{_JSDELIVR}/npm/leaflet.fullscreen@3.0.0/Control.FullScreen.min.js": (
        "leaflet.fullscreen/Control.FullScreen.js"
    ),
    f"{_JSDELIVR}/npm/leaflet.fullscreen@3.0.0/Control.FullScreen.css": (
        "leaflet.fullscreen/Control.FullScreen.css"
    ),
}

# What folium.Map's default header links besides Leaflet, and why no page loads it (about
# 590 KB of a first load): folium needs these for its own Marker icons (folium.Icon:
# awesome-markers with glyphicons or Font Awesome, `angle` the rotate CSS), its popups and
# forms (Bootstrap, jQuery). Our maps draw circle markers, legends and popups of their own
# (static/js/blockdata.js) and no template uses a Bootstrap class. `localize()` drops these
# links: a page that starts using folium.Icon or a Bootstrap widget must vendor them again
# (scripts/vendor-assets.sh) and move them to VENDOR_FILES.
NOT_LOADED: Final[dict[str, str]] = {
    "https://code.jquery.com/jquery-3.7.1.min.js": "jQuery",
    f"{_JSDELIVR}/npm/bootstrap@5.2.2/dist/js/bootstrap.bundle.min.js": "Bootstrap 5 JS",
    f"{_JSDELIVR}/npm/bootstrap@5.2.2/dist/css/bootstrap.min.css": "Bootstrap 5 CSS",
    "https://netdna.bootstrapcdn.com/bootstrap/3.0.0/css/bootstrap-glyphicons.css": "glyphicons",
    f"{_JSDELIVR}/npm/@fortawesome/fontawesome-free@6.2.0/css/all.min.css": "Font Awesome",
    f"{_CDNJS}/Leaflet.awesome-markers/2.0.2/leaflet.awesome-markers.js": "awesome-markers JS",
    f"{_CDNJS}/Leaflet.awesome-markers/2.0.2/leaflet.awesome-markers.css": "awesome-markers CSS",
    f"{_JSDELIVR}/gh/python-visualization/folium/folium/templates/leaflet.awesome.rotate.min.css": (
        "awesome-rotate CSS"
    ),
}

# Where folium keeps its links: (owner, attribute). folium.Map's lists are the module's lists.
# GeoJson, Popup, Tooltip and LayerControl link nothing of their own. A plugin not listed here
# (MarkerCluster, say) keeps its CDN links, which `assert_offline` refuses on every page.
_LINK_LISTS: Final[tuple[tuple[type | ModuleType, str], ...]] = (
    (folium.folium, "_default_js"),
    (folium.folium, "_default_css"),
    (folium.Map, "default_js"),
    (folium.Map, "default_css"),
    (HeatMap, "default_js"),
    (HeatMap, "default_css"),
    (Realtime, "default_js"),
    (Realtime, "default_css"),
    (Fullscreen, "default_js"),
    (Fullscreen, "default_css"),
)

_Links = list[tuple[str, str]]

# The links each list had before the first localize(), by list identity; keeping the list in
# the value keeps its id valid.
_originals: dict[int, tuple[_Links, _Links]] = {}

_LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})

# Identifiers that look like URLs but are never fetched (XML namespaces in inline SVG).
_NOT_FETCHED: Final = ("http://www.w3.org/",)

_URL = r"((?:https?:)?//[^\s\"'\\)<>]+)"
_Q = r"\\?[\"']?\s*"
_EXTERNAL_PATTERNS: Final = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        rf"\b(?:src|href|srcset|poster)\s*=\s*{_Q}{_URL}",
        rf"\burl\(\s*{_Q}{_URL}",
        rf"@import\s+{_Q}{_URL}",
        # JavaScript that fetches: tile and image layers, Realtime sources, fetch and jQuery.
        r"\b(?:L\.tileLayer(?:\.wms)?|L\.imageOverlay|L\.videoOverlay|L\.realtime|fetch"
        rf"|\$\.(?:ajax|get|getJSON))\(\s*[\"']{_URL}",
        rf"\bL\.realtime\(\s*\{{[^}}]*?[\"']url[\"']\s*:\s*[\"']{_URL}",
    )
)

_CSS_URL: Final = re.compile(r"url\(\s*([\"']?)(.*?)\1\s*\)", re.IGNORECASE | re.DOTALL)
_CSS_COMMENT: Final = re.compile(r"/\*.*?\*/", re.DOTALL)


class OfflineError(ValueError):
    """A page, a folium element or a vendored file would load something from another host."""


def localize(static_url: str = "/static/vendor") -> None:
    """Point folium's default JS/CSS links at `static_url` and drop the NOT_LOADED ones;
    calling it again is harmless.

    Raises `OfflineError` naming the first link that neither `VENDOR_FILES` nor `NOT_LOADED`
    knows, before anything is changed.
    """
    base = static_url.rstrip("/")
    planned: list[tuple[_Links, _Links]] = []
    for owner, attr in _LINK_LISTS:
        links: _Links = getattr(owner, attr)
        original = _originals.get(id(links), (links, list(links)))[1]
        local = []
        for name, url in original:
            if url in NOT_LOADED:
                continue
            path = VENDOR_FILES.get(url)
            if path is None:
                owner_name = getattr(owner, "__qualname__", getattr(owner, "__name__", owner))
                raise OfflineError(
                    f"{owner_name}.{attr} links {url!r} ({name}), which app/offline.py does not "
                    "map to static/vendor/: vendor it (scripts/vendor-assets.sh) and add it "
                    "to VENDOR_FILES"
                )
            local.append((name, f"{base}/{path}"))
        planned.append((links, local))
    for links, local in planned:
        _originals.setdefault(id(links), (links, list(links)))
        links[:] = local


def external_urls(html: str, *, allowed_hosts: Iterable[str] = ()) -> list[str]:
    """Every URL in `html` that a browser would fetch from another host, in page order.

    Besides localhost, `allowed_hosts` (hostnames, e.g. an intranet tile server) are local.
    """
    allowed = _LOCAL_HOSTS | {host.lower() for host in allowed_hosts}
    found: list[tuple[int, str]] = []
    for pattern in _EXTERNAL_PATTERNS:
        for match in pattern.finditer(html):
            url = match.group(1)
            if _is_external(url, allowed):
                found.append((match.start(1), url))
    return [url for _, url in sorted(found)]


def assert_offline(html: str, *, allowed_hosts: Iterable[str] = ()) -> None:
    """Raise `OfflineError` (a ValueError) naming the first external URL in rendered HTML.

    Checked: `src=`, `href=`, `srcset=`, `poster=`, CSS `url(` and `@import`, and the URLs given
    to `L.tileLayer`, `L.tileLayer.wms`, `L.imageOverlay`, `L.videoOverlay`, `L.realtime`,
    `fetch` and jQuery's ajax calls. Hosts other than localhost are external unless listed in
    `allowed_hosts`.
    """
    urls = external_urls(html, allowed_hosts=allowed_hosts)
    if urls:
        raise OfflineError(f"page loads from another host: {urls[0]}")


def check_vendor(vendor_dir: Path = VENDOR_DIR) -> None:
    """Check that every file of `VENDOR_FILES` exists and every CSS url() stays local."""
    for path in sorted(set(VENDOR_FILES.values())):
        if not (vendor_dir / path).is_file():
            raise FileNotFoundError(f"{vendor_dir / path}: run scripts/vendor-assets.sh")
    for css in sorted(vendor_dir.rglob("*.css")):
        for ref in css_urls(css.read_text(encoding="utf-8")):
            if re.match(r"[a-z][a-z0-9+.-]*:|//", ref, re.IGNORECASE):  # any scheme or host
                raise OfflineError(f"{css}: url({ref}) is not a local file")
            target = (css.parent / ref.split("#")[0].split("?")[0]).resolve()
            if not target.is_file():
                raise FileNotFoundError(f"{css}: url({ref}) points at missing {target}")


def css_urls(css: str) -> list[str]:
    """The url() references of a stylesheet, less data: URIs and fragment-only references."""
    refs = (m.group(2).strip() for m in _CSS_URL.finditer(_CSS_COMMENT.sub("", css)))
    return [ref for ref in refs if ref and not ref.startswith(("data:", "#"))]


def _is_external(url: str, local_hosts: frozenset[str] | set[str]) -> bool:
    low = url.lower()
    if not low.startswith(("//", "http://", "https://")) or low.startswith(_NOT_FETCHED):
        return False
    try:
        host = urlsplit(url if "://" in url else f"http:{url}").hostname
    except ValueError:  # a malformed host is still not ours
        return True
    return host not in local_hosts
