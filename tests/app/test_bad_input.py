"""Bad input everywhere: every documented GET parameter given hostile values, bad tokens, bodies.

Each answer must be a 4xx JSON error (or a normal answer when the value is merely odd), never a
5xx, never a stack trace, and never another street's data to a commander.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import add_user, login

HOSTILE = [
    "' or '1'='1",
    "1; drop table service_requests; --",
    "'); select pg_sleep(5); --",
    "\x00",
    "NaN",
    "-99999999999999999999999",
    "1e309",
    "<script>alert(1)</script>",
    "中" * 600,
    ",,,",
    "2026-13-45T25:61:00",
]


def _operations(client: FlaskClient) -> list[tuple[str, list[str]]]:
    doc = client.get("/api/openapi.json").get_json()
    values = {"street_code": "110102001", "z": "14", "x": "13486", "y": "6203"}
    out = []
    for path, ops in doc["paths"].items():
        op = ops.get("get")
        if op is None or op["tags"][0] == "pages":
            continue
        for p in op["parameters"]:
            if p["in"] == "path" and p["name"] not in values:
                values[p["name"]] = (p["schema"].get("enum") or ["1"])[0]
        url = re.sub(r"{(\w+)}", lambda m: values[m[1]], path)
        out.append((url, [p["name"] for p in op["parameters"] if p["in"] == "query"]))
    return out


def _check(response: Any, what: str) -> None:
    text = response.get_data(as_text=True)
    assert response.status_code < 500, f"{what}: {response.status_code} {text[:300]}"
    assert "Traceback" not in text and "psycopg" not in text and "sqlalchemy" not in text, what
    if response.status_code >= 400:
        assert response.is_json, f"{what}: {response.status_code} is not JSON"
        body = response.get_json()
        if isinstance(body, list):  # Open311 answers GeoReport's error list
            assert body[0]["code"] == response.status_code and body[0]["description"], what
        else:
            assert body["message"], what


def test_hostile_values_in_every_documented_parameter(
    client: FlaskClient,
    connection: sa.Connection,
    loaded: int,
) -> None:
    checked = 0
    for url, params in _operations(client):
        for name in params:
            for value in HOSTILE:
                query = urllib.parse.urlencode({name: value})
                response = client.get(f"{url}?{query}")
                response.close()
                _check(response, f"GET {url}?{query}")
                checked += 1
    assert checked > 1500
    assert connection.execute(sa.text("select count(*) from service_requests")).scalar() == loaded


def test_hostile_path_segments(client: FlaskClient, loaded: int) -> None:
    for url in (
        "/api/heat/' or 1=1 --",
        "/api/command/110102001' or '1'='1/summary",
        "/api/layers/%00/features",
        "/api/layers/service_requests;drop/features",
        "/ogc/collections/service_requests/items/1 or 1=1",
        "/ogc/collections/service_requests/items/99999999999999999999999",
        "/tiles/service_requests/99/1/1.pbf",
        "/tiles/service_requests/14/-1/6203.pbf",
        "/tiles/service_requests/14/1e3/6203.pbf",
        "/tiles/../../etc/passwd.json",
    ):
        response = client.get(url)
        _check(response, url)
        assert 400 <= response.status_code < 500, (url, response.status_code)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer nonsense",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "bearer' or '1'='1",
        "Bearer " + "x" * 5000,
    ],
)
def test_wrong_tokens_are_401(app: Flask, loaded: int, header: str) -> None:
    anonymous = app.test_client()
    for url in ("/api/layers", "/api/layers/service_requests/features", "/ogc/collections"):
        response = anonymous.get(url, headers={"Authorization": header})
        _check(response, f"{url} with {header[:20]}")
        assert response.status_code == 401


def test_oversized_bodies_are_413_json(client: FlaskClient) -> None:
    body = b"x" * (17 * 1024 * 1024)
    for url in ("/open311/v2/requests.json", "/api/layers"):
        response = client.post(url, data=body, content_type="application/x-www-form-urlencoded")
        _check(response, f"POST {url}")
        assert response.status_code in (405, 413), (url, response.status_code)
    # The login form is a page: its error is a page in Chinese.
    page = client.post("/login", data=body, content_type="application/x-www-form-urlencoded")
    assert page.status_code == 413 and page.mimetype == "text/html"
    assert "请求内容过大" in page.get_data(as_text=True)
    response = client.post("/open311/v2/requests.json", data=body, content_type="text/plain")
    assert response.status_code == 413 and response.is_json


def test_a_commander_gets_nothing_of_another_street_through_any_parameter(
    app: Flask,
    connection: sa.Connection,
    loaded: int,
) -> None:
    """Every documented GET, with the other street named wherever a street can be named."""
    commander = login(app.test_client(), add_user(connection, "c-bad", "commander", "110102001"))
    other_ids = {
        int(i)
        for i in connection.execute(
            sa.text("select id from service_requests where street_code = '110102003'")
        ).scalars()
    }
    assert other_ids
    for url, params in _operations(commander):
        url = url.replace("/command/110102001", "/command/110102003")
        query = {p: "110102003" for p in params if p in ("street", "street_code")}
        response = commander.get(f"{url}?{urllib.parse.urlencode(query)}")
        data = response.get_data(as_text=True)
        _check(response, url)
        if response.is_json and response.status_code == 200:
            body = response.get_json()
            features = body.get("features", []) if isinstance(body, dict) else []
            leaked = {f.get("id") for f in features} & other_ids
            assert not leaked, f"{url}: {sorted(leaked)[:5]}"
        assert "110102003001" not in data or url == "/api/openapi.json", url
