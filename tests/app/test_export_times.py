"""Exported times state the district's offset: ISO 8601 in CSV and GeoJSON, timestamps with
the zone in GeoParquet, and in a GeoPackage the local wall-clock time with its offset — read
back by the system's `ogrinfo` (GDAL 3.6, what QGIS on Debian 12 links) and by pyogrio, not
through our code."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
import pyogrio
import pytest
import sqlalchemy as sa
from werkzeug.datastructures import MultiDict

from etl.jobs import run_file
from layers import get_layer
from layers.queries import export, slices
from tests.clock import BEIJING
from tests.district import request_row, write_csv

OGRINFO = shutil.which("ogrinfo") or "ogrinfo"  # scripts/system-deps.sh --gdal
NEW_YORK = ZoneInfo("America/New_York")
NOW = dt.datetime(2026, 11, 20, 10, 0, tzinfo=BEIJING)  # the export's clock
TIMES = {"W1": "2026-11-02 08:15:00", "S1": "2026-07-01 09:00:00"}  # local, winter and summer


def _load(conn: sa.Connection, tmp_path: Path, zone: str) -> dict[str, dt.datetime]:
    rows = [request_row(sid, 受理时间=t, 经度="116.305", 纬度="39.905") for sid, t in TIMES.items()]
    run_file(conn, write_csv(tmp_path / "r.csv", rows), layer="service_requests", zone=zone)
    return dict(conn.execute(sa.text("select source_id, received_at from service_requests")).all())


def _export(conn: sa.Connection, fmt: str, path: Path, zone: ZoneInfo) -> dict[str, Any]:
    chosen = slices.parse_slice(get_layer("service_requests"), MultiDict(), zone=zone)
    return export.export_file(conn, chosen, fmt, path, "tester", now=NOW)


def _ogrinfo(path: Path) -> dict[str, str]:
    """source_id → received_at as GDAL 3.6's ogrinfo prints it."""
    out = subprocess.run(
        [OGRINFO, "-ro", "-al", "-q", str(path)], capture_output=True, text=True, check=True
    ).stdout
    features = out.split("OGRFeature(")[1:]
    found = {}
    for feature in features:
        sid = re.search(r"source_id \(String\) = (\S+)", feature)
        received = re.search(r"received_at \(DateTime\) = (.+)", feature)
        assert sid and received, feature
        found[sid[1]] = received[1].strip()
    return found


def _ogr_text(moment: dt.datetime) -> str:
    """How OGR prints a date-time with its offset: 2026/11/02 08:15:00+08 (or +05:30)."""
    offset = moment.utcoffset() or dt.timedelta()
    minutes = int(offset.total_seconds() // 60)
    hh, mm = divmod(abs(minutes), 60)
    zone = f"{'-' if minutes < 0 else '+'}{hh:02d}" + (f":{mm:02d}" if mm else "")
    return f"{moment:%Y/%m/%d %H:%M:%S}{zone}"


@pytest.mark.parametrize("zone", [BEIJING, NEW_YORK], ids=["beijing", "new-york"])
@pytest.mark.filterwarnings("ignore:Non-conformant content:RuntimeWarning")
def test_exported_times_carry_the_districts_offset(
    connection: sa.Connection,
    district: Any,
    tmp_path: Path,
    zone: ZoneInfo,
) -> None:
    stored = _load(connection, tmp_path, str(zone))
    for sid, text in TIMES.items():  # the source's wall-clock times, read in the zone
        assert stored[sid] == dt.datetime.fromisoformat(text).replace(tzinfo=zone)
    # GeoPackage: one offset for the file, the zone's at export time (NOW: winter).
    offset = dt.timezone(NOW.astimezone(zone).utcoffset() or dt.timedelta())
    gpkg = tmp_path / "r.gpkg"
    _export(connection, "gpkg", gpkg, zone)
    printed = _ogrinfo(gpkg)
    assert printed == {sid: _ogr_text(t.astimezone(offset)) for sid, t in stored.items()}
    if zone is BEIJING:
        assert printed["W1"] == "2026/11/02 08:15:00+08"  # what QGIS shows: local, with offset
    frame = pyogrio.read_dataframe(gpkg)
    for _, row in frame.iterrows():
        assert row["received_at"].to_pydatetime() == stored[row["source_id"]]
        assert row["received_at"].utcoffset() == offset.utcoffset(None)
    # CSV and GeoJSON: ISO 8601 with each time's own offset in the zone.
    iso = {sid: t.astimezone(zone).isoformat() for sid, t in stored.items()}
    _export(connection, "csv", tmp_path / "r.csv", zone)
    rows = csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text("utf-8-sig")))
    assert {r["source_id"]: r["received_at"] for r in rows} == iso
    if zone is BEIJING:
        assert iso["W1"] == "2026-11-02T08:15:00+08:00"
    else:
        assert (iso["W1"], iso["S1"]) == ("2026-11-02T08:15:00-05:00", "2026-07-01T09:00:00-04:00")
    prov = _export(connection, "geojson", tmp_path / "r.geojson", zone)
    body = json.loads((tmp_path / "r.geojson").read_text("utf-8"))
    assert {
        f["properties"]["source_id"]: f["properties"]["received_at"] for f in body["features"]
    } == iso
    assert prov["generated_at"] == NOW.astimezone(zone).isoformat(timespec="seconds")
    # GeoParquet: instants with the zone's name.
    _export(connection, "parquet", tmp_path / "r.parquet", zone)
    table = pq.read_table(tmp_path / "r.parquet")
    assert table.schema.field("received_at").type.tz == str(zone)
    got = dict(
        zip(
            table.column("source_id").to_pylist(),
            table.column("received_at").to_pylist(),
            strict=True,
        )
    )
    assert got == stored


def test_csv_over_http_states_the_offset(
    client: Any,
    connection: sa.Connection,
    district: Any,
    tmp_path: Path,
) -> None:
    stored = _load(connection, tmp_path, "Asia/Shanghai")
    response = client.get("/api/layers/service_requests/features?f=csv")
    assert response.status_code == 200
    rows = csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff")))
    got = {r["source_id"]: r["received_at"] for r in rows}
    assert got == {sid: t.astimezone(BEIJING).isoformat() for sid, t in stored.items()}
    assert got["W1"] == "2026-11-02T08:15:00+08:00"
