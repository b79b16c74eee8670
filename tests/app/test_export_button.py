"""The export button of the map pages, server side: rendered for the roles that may export
only (each role that opens a map page, against the table written out here), and the
GeoPackage it links made by the export endpoint, audited, with the rows SQL gives."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import pyogrio
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app import export as spooling
from app.errors import ServiceUnavailable
from tests.helpers import add_unit, add_user, login

A = "110102001"  # a street of the tiny district
# Who may export, as the issue says (analysts and whoever may export): not derived from
# app.capabilities, so that a change there shows here.
EXPORTERS = {"district", "commander", "analyst", "planner"}
# Each role and the map pages it opens.
MAP_PAGES = {
    "district": ("/", f"/command/{A}", "/planner"),
    "commander": (f"/command/{A}",),
    "analyst": ("/", f"/command/{A}", "/planner"),
    "planner": ("/planner",),
    "assessor": ("/",),
}


@pytest.mark.parametrize("role", sorted(MAP_PAGES))
def test_the_button_is_there_for_roles_that_may_export(
    app: Flask, connection: sa.Connection, district: Any, role: str
) -> None:
    unit = add_unit(connection) if role == "assessor" else None
    street = A if role == "commander" else None
    client = login(app.test_client(), add_user(connection, f"export-{role}", role, street, unit))
    for url in MAP_PAGES[role]:
        page = client.get(url)
        assert page.status_code == 200, url
        html = page.get_data(as_text=True)
        shown = role in EXPORTERS
        assert ('id="bd-export"' in html) == shown, (role, url)
        assert ("js/export_button.js" in html) == shown, (role, url)
        if shown:
            assert "导出数据" in html
            for fmt in ("geojson", "csv", "gpkg"):
                assert f'data-format="{fmt}"' in html


def test_the_planner_exports_its_two_layers(client: FlaskClient, district: Any) -> None:
    html = client.get("/planner").get_data(as_text=True)
    assert '<option value="renovation_projects">' in html
    assert '<option value="relocation_targets">' in html
    assert '<option value="service_requests">' not in html


def test_a_geopackage_export_has_the_rows_sql_gives_and_is_audited(
    client: FlaskClient, connection: sa.Connection, loaded: int, tmp_path: Path
) -> None:
    params = {"f": "gpkg", "street": A, "since": "2026-11-01", "until": "2026-11-02"}
    r = client.get(
        "/api/layers/service_requests/features?" + urllib.parse.urlencode(params), buffered=True
    )
    assert r.status_code == 200
    assert r.mimetype == "application/geopackage+sqlite3"
    assert r.headers["Content-Disposition"].startswith("attachment; filename=service_requests.gpkg")
    assert int(r.headers["Content-Length"]) == len(r.data)
    path = tmp_path / "out.gpkg"
    path.write_bytes(r.data)
    frame = pyogrio.read_dataframe(path, columns=["id"], read_geometry=False)
    # Beijing days 2026-11-01 and 2026-11-02, independently: [11-01 00:00, 11-03 00:00) +08.
    expected = connection.execute(
        sa.text(
            "select id from service_requests where street_code = :s"
            " and received_at >= '2026-11-01 00:00+08' and received_at < '2026-11-03 00:00+08'"
        ),
        {"s": A},
    ).scalars()
    ids = sorted(expected)
    assert ids and sorted(int(i) for i in frame["id"]) == ids
    assert int(r.headers["X-Blockdata-Rows"]) == len(ids)
    entry = connection.execute(
        sa.text("select user_name, filters, rows from audit_log order by id desc limit 1")
    ).one()
    assert entry.user_name == "test-district"
    assert entry.rows == len(ids)
    assert entry.filters["format"] == "gpkg"
    assert entry.filters["filters"] == {"street": A, "since": "2026-11-01", "until": "2026-11-02"}


def test_a_role_that_may_not_export_gets_no_geopackage(
    app: Flask, connection: sa.Connection, loaded: int
) -> None:
    client = login(
        app.test_client(), add_user(connection, "no-export", "assessor", None, add_unit(connection))
    )
    r = client.get("/api/layers/service_requests/features?f=gpkg")
    assert r.status_code == 403
    audited = connection.execute(
        sa.text("select count(*) from audit_log where action = 'export'")
    ).scalar_one()
    assert audited == 0


def test_a_file_export_is_sent_from_a_file_already_gone(tmp_path: Path) -> None:
    written: list[Path] = []

    def write(path: Path) -> None:
        written.append(path)
        path.write_bytes(b"GPKG" * 1000)

    out, size = spooling.spool_file(write, "x.gpkg", tmp_path, reserve=0)
    with out:
        assert size == 4000 and out.read() == b"GPKG" * 1000
    assert written[0].name == "x.gpkg" and tmp_path in written[0].parents
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_a_file_export_that_would_fill_the_disk_is_a_503(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailable, match="磁盘空间不足"):
        spooling.spool_file(lambda p: p.write_bytes(b"x"), "x.gpkg", tmp_path, reserve=1 << 62)
    assert list(tmp_path.iterdir()) == []
