"""GET /api/units as every role: the same units for all (names are not secret), a street's
name only in the caller's zone, bad parameters a JSON 400/404."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from etl.units import build_units
from tests.helpers import add_user, json_error, login

A, B = "110102001", "110102003"  # the tiny district's streets
KINDS = {
    "centre": "街道中心",
    "department": "七大部",
    "station": "科站队所",
    "district_department": "区级部门",
}
ROLES = [
    ("district", None),
    ("analyst", None),
    ("planner", None),
    ("clerk", A),  # the street centre's clerk (migration 0019)
    ("grid_officer", B),
    ("commander", A),
    ("commander", B),
]


def _expected(conn: sa.Connection, zone: str | None) -> list[dict[str, Any]]:
    """The units read straight from the table (as the owner), the street's name only in
    `zone` (None: the district's)."""
    rows = conn.execute(
        sa.text(
            "select u.code, u.name, u.kind, u.street_code, s.name as street_name, u.active"
            " from units u left join streets s on s.code = u.street_code"
        )
    ).mappings()
    out = []
    for r in rows:
        row = dict(r)
        row["kind_label"] = KINDS[row["kind"]]
        if zone is not None and row["street_code"] != zone:
            row["street_name"] = None
        out.append(row)
    return out


def _key(u: dict[str, Any]) -> str:
    return u["code"]


@pytest.mark.parametrize(("role", "street"), ROLES)
def test_every_role_reads_every_unit(
    app: Flask, connection: sa.Connection, district: Any, role: str, street: str | None
) -> None:
    build_units(connection)
    want = _expected(connection, street)
    client = login(app.test_client(), add_user(connection, f"units-{role}-{street}", role, street))
    response = client.get("/api/units")
    assert response.status_code == 200, response.get_data(as_text=True)
    got = response.get_json()["units"]
    assert sorted(got, key=_key) == sorted(want, key=_key)
    assert {u["street_code"] for u in got} >= {A, B, None}
    stations = client.get("/api/units?kind=station").get_json()["units"]
    assert stations == [u for u in got if u["kind"] == "station"]
    own = street or A
    mine = client.get(f"/api/units?street={own}&kind=centre").get_json()["units"]
    assert [u["code"] for u in mine] == [f"{own}-centre"]


@pytest.mark.parametrize(
    ("query", "status"),
    [("kind=科室", 400), ("street=12", 400), ("street=110102099", 404), ("unit=x", 400)],
)
def test_bad_parameters_are_json_errors(
    app: Flask, connection: sa.Connection, district: Any, query: str, status: int
) -> None:
    build_units(connection)
    client = login(app.test_client(), add_user(connection, "units-bad", "district"))
    message = json_error(client, f"/api/units?{query}", status)
    assert query.split("=")[0] in message or query.split("=")[1] in message, message


def test_anonymous_callers_get_401(app: Flask) -> None:
    response = app.test_client().get("/api/units")
    assert response.status_code == 401
    assert response.is_json
