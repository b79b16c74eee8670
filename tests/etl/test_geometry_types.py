"""A layer takes only the geometry dimensions it serves: renovation projects are lines or
areas (the OGC API splits them so); a point is rejected with its reason, not stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from etl.jobs import run_file

pytestmark = pytest.mark.usefixtures("district")


def _project(source_id: str, geometry: dict[str, object]) -> dict[str, object]:
    return {
        "type": "Feature",
        "properties": {"项目编号": source_id, "项目名称": f"项目{source_id}", "阶段": "施工"},
        "geometry": geometry,
    }


def test_renovation_points_and_collections_are_rejected(
    connection: sa.Connection, tmp_path: Path
) -> None:
    line = {"type": "LineString", "coordinates": [[116.301, 39.905], [116.309, 39.905]]}
    point = {"type": "Point", "coordinates": [116.305, 39.905]}
    multipoint = {"type": "MultiPoint", "coordinates": [[116.305, 39.905], [116.306, 39.906]]}
    path = tmp_path / "projects.geojson"
    features = [_project("L1", line), _project("P1", point), _project("M1", multipoint)]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), "utf-8")
    report = run_file(connection, path, layer="renovation_projects")
    assert (report.inserted, report.rejected) == (1, 2)
    stored = connection.execute(sa.text("select source_id from renovation_projects")).scalars()
    assert list(stored) == ["L1"]
    rejects = connection.execute(
        sa.text("select source_id, reason, message from etl_rejects order by source_id")
    ).all()
    assert [(r.source_id, r.reason) for r in rejects] == [
        ("M1", "wrong_geometry_type"),
        ("P1", "wrong_geometry_type"),
    ]
    assert "Point" in rejects[1].message and "线或面" in rejects[1].message
