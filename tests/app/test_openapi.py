"""/api/openapi.json: valid, complete, in agreement with the code, and fuzzed by schemathesis
as several roles, each answer checked against the document (status, content type, body).

The tiny district with 60 requests (test_ogc's `loaded`) in the rolled-back test transaction.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from app.auth import new_token
from layers.accounts import api_tokens
from tests.helpers import add_user


@pytest.fixture
def doc(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    return body


def _concrete(path: str, op: dict[str, Any]) -> str:
    """The path with each path parameter replaced by a valid-looking value."""
    values = {"street_code": "110102001", "z": "14", "x": "13486", "y": "6203"}
    for p in op.get("parameters", []):
        if p["in"] == "path" and p["name"] not in values:
            enum = p["schema"].get("enum")
            values[p["name"]] = enum[0] if enum else "1"
    return re.sub(r"{(\w+)}", lambda m: values[m[1]], path)


def test_document_is_valid_openapi(doc: dict[str, Any]) -> None:
    from openapi_spec_validator import validate

    validate(doc)
    assert doc["openapi"].startswith("3.0")
    assert doc["info"]["title"].startswith("Blockdata")


def test_every_route_is_documented_and_every_documented_path_exists(
    app: Flask, doc: dict[str, Any]
) -> None:
    adapter = app.url_map.bind("localhost")
    documented: set[tuple[str, str]] = set()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            url = _concrete(path, op)
            try:
                endpoint, _ = adapter.match(url, method=method.upper())
            except (NotFound, MethodNotAllowed, RequestRedirect) as exc:
                pytest.fail(f"documented {method.upper()} {path} ({url}) has no route: {exc!r}")
            documented.add((endpoint, method.upper()))
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:  # type: ignore[operator]
            assert (rule.endpoint, method) in documented, f"{method} {rule.rule} undocumented"


def _query_ops(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        # Pages take no query parameters and ignore others, as browsers and bookmarks add their
        # own; Open311 clients send GeoReport's extras (jurisdiction_id …), which it ignores.
        if method == "get" and op["tags"][0] not in ("pages", "open311") and path != "/healthz"
    ]


def _example(schema: dict[str, Any]) -> str:
    """A valid value for a parameter documented without an example."""
    if "enum" in schema:
        return str(schema["enum"][-1])
    return {
        "integer": str(schema.get("minimum", 1)),
        "number": "1",
        "boolean": "true",
        "array": "116.30,39.90,116.34,39.92",
    }.get(schema.get("type", "string"), "x")


def test_every_documented_parameter_is_accepted(
    client: FlaskClient,
    doc: dict[str, Any],
    loaded: int,
) -> None:
    checked = 0
    for path, _, op in _query_ops(doc):
        url = _concrete(path, op)
        for p in op["parameters"]:
            if p["in"] != "query" or p["name"] == "cursor":
                continue  # a cursor is opaque: only a next link's value is valid
            example = p.get("example", _example(p["schema"]))
            query = urllib.parse.urlencode({p["name"]: example})
            response = client.get(f"{url}?{query}")
            response.close()
            body = response.get_json(silent=True) or {}
            message = str(body.get("message", ""))
            assert response.status_code != 400 or p["name"] not in message.split(":")[0], (
                f"GET {url}?{query}: {response.status_code} {message}"
            )
            assert "unknown parameter" not in message, f"GET {url}?{query}: {message}"
            checked += 1
    assert checked > 150


def test_undocumented_parameters_are_refused(
    client: FlaskClient,
    doc: dict[str, Any],
    loaded: int,
) -> None:
    for path, _, op in _query_ops(doc):
        url = _concrete(path, op)
        response = client.get(f"{url}?zzz=1")
        response.close()
        assert response.status_code == 400, f"GET {url}?zzz=1 → {response.status_code}"
        assert "zzz" in response.get_json()["message"]


def test_every_json_answer_has_a_schema(doc: dict[str, Any]) -> None:
    """schemathesis can only check a body against a schema the document gives."""
    missing = [
        f"{method.upper()} {path} {media}"
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        for media, spec in op["responses"].get("200", {}).get("content", {}).items()
        if media in ("application/json", "application/geo+json") and "schema" not in spec
    ]
    assert missing == []


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in _leaves(e)]
    return [exc]


FUZZ_ROLES = [
    ("district", None),
    ("commander", "110102001"),
    ("clerk", "110102001"),
    ("grid_officer", "110102001"),
]


@pytest.mark.parametrize(("role", "street"), FUZZ_ROLES)
def test_schemathesis_answers_conform_to_the_document(
    app: Flask,
    connection: sa.Connection,
    loaded: int,
    role: str,
    street: str | None,
) -> None:
    """Every operation, generated cases (positive and negative), as a district user, a
    commander (one street) and a clerk (refused most data): never a 5xx, and every answer's
    status code, content type and body are the ones the document gives."""
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )
    from schemathesis.core.failures import FailureGroup

    token, digest = new_token()
    uid = add_user(connection, f"fuzz-{role}", role, street)
    connection.execute(sa.insert(api_tokens).values(user_id=uid, token_sha256=digest))
    # identity: the WSGI client does not undo the compression a browser's request would get.
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json",
        "Accept-Encoding": "identity",
    }
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app, headers=headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 50
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    failures: list[str] = []
    cases = 0
    for operation in operations:
        if operation.method.upper() == "POST" and operation.path == "/login":
            continue  # throttled to 10 a minute by design; covered in test_auth
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=4,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                nonlocal cases
                cases += 1
                response = case.call(headers=headers)
                try:
                    case.validate_response(response, checks=checks)
                except (Exception, FailureGroup) as exc:  # a FailureGroup is a BaseException
                    failures.append(
                        f"{role} {case.method} {case.formatted_path} {case.query}: "
                        + "; ".join(str(e).splitlines()[0] for e in _leaves(exc))
                    )

            try:
                run()
            except Unsatisfiable:  # nothing to make invalid: no parameters, no body
                assert mode == GenerationMode.NEGATIVE, operation.path
    assert cases > 300
    assert not failures, "\n".join(sorted(set(failures))[:40])
