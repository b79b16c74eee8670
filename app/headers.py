"""Security headers on every response.

A Content-Security-Policy that lets a page run only this server's scripts and the inline
blocks it marks with the response's nonce (folium writes the map's script inline), no plugin
objects, no <base>, no framing, forms posted only here; images, fonts and fetches from this
server (and the configured basemap's host); plus nosniff, X-Frame-Options and a same-origin
Referrer-Policy. Pages take the nonce from `csp_nonce()` (a Jinja global too).
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import urlsplit

from flask import Flask, Response, g

from app.config import ConfigError

NONCE_KEY = "csp_nonce"


def csp_nonce() -> str:
    """This response's nonce, made on first use."""
    nonce: str | None = g.get(NONCE_KEY)
    if nonce is None:
        nonce = secrets.token_urlsafe(18)
        setattr(g, NONCE_KEY, nonce)
    return nonce


def basemap_source(url: str | None) -> str | None:
    """The CSP source of a tile URL template: scheme://host[:port]; `{s}.` becomes `*.`."""
    if not url:
        return None
    parts = urlsplit(url)
    host = re.sub(r"^\{[a-z]\}\.", "*.", parts.netloc.rpartition("@")[2])
    if parts.scheme not in ("http", "https") or not re.fullmatch(r"[\w*.-]+(:[0-9]+)?", host):
        raise ConfigError(
            f"BLOCKDATA_BASEMAP_URL 应为 http(s)://主机/…{{z}}/{{x}}/{{y}} "
            f"(an http(s) URL template with a plain host): {url!r}"
        )
    return f"{parts.scheme}://{host}"


def policy(nonce: str | None, basemap: str | None = None) -> str:
    """The Content-Security-Policy header's value."""
    inline = f"'self' 'nonce-{nonce}'" if nonce else "'self'"
    outside = f"'self' {basemap}" if basemap else "'self'"
    directives = {
        "default-src": "'self'",
        "script-src": inline,
        "style-src": inline,
        "img-src": outside,
        "connect-src": outside,
        "font-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'none'",
        "frame-ancestors": "'none'",
        "form-action": "'self'",
    }
    return "; ".join(f"{k} {v}" for k, v in directives.items())


def init_app(app: Flask, basemap_url: str | None) -> None:
    """Add the headers to every response (register before other after_request hooks: Flask
    runs them in reverse, and this one must see the final response)."""
    basemap = basemap_source(basemap_url)

    @app.after_request
    def _security_headers(response: Response) -> Response:
        headers = response.headers
        headers["Content-Security-Policy"] = policy(g.get(NONCE_KEY), basemap)
        headers["X-Content-Type-Options"] = "nosniff"
        headers["X-Frame-Options"] = "DENY"
        headers["Referrer-Policy"] = "same-origin"
        return response

    app.jinja_env.globals["csp_nonce"] = csp_nonce
