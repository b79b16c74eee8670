"""The tiny test district is what the production import makes of its GeoJSON files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from etl.place import units_fingerprint
from tests.district import STREETS, Cell, Rows, grid_cells, load_district, read_units, write_units


def _plain(rows: Any) -> list[tuple[str, list[dict[str, Any]]]]:
    """Rows with geometries as their EWKB bytes, comparable with ==."""
    return [
        (table.name, [{k: bytes(v.data) if hasattr(v, "data") else v for k, v in r.items()}
                      for r in values])
        for table, values in rows
    ]  # fmt: skip


def test_the_fixture_holds_what_a_fresh_import_writes(
    engine: sa.Engine,
    connection: sa.Connection,
    district_files: dict[str, Path],
    district_units: Rows,
) -> None:
    # A fresh import on a connection of its own first: the same codes written by two open
    # transactions would wait on each other.
    with engine.connect() as other:
        tx = other.begin()
        try:
            load_district(other, district_files)
            imported, imported_key = _plain(read_units(other)), units_fingerprint(other)
        finally:
            tx.rollback()
    write_units(connection, district_units)  # what the `district` fixture does
    given, given_key = _plain(read_units(connection)), units_fingerprint(connection)
    drop = {"created_at", "updated_at"}  # when each was written
    strip = [(n, [{k: v for k, v in r.items() if k not in drop} for r in rs]) for n, rs in given]
    fresh = [(n, [{k: v for k, v in r.items() if k not in drop} for r in rs]) for n, rs in imported]
    assert strip == fresh
    assert given_key == imported_key
    assert [len(rs) for _, rs in given] == [2, 4, 8]


def test_the_district_is_the_envelopes_and_codes_the_tests_expect(
    connection: sa.Connection, district: list[Cell]
) -> None:
    """Geometry and codes as the hand-written inserts had them: PostGIS envelopes."""
    envelope = "ST_AsEWKB(ST_Multi(ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)))"
    same = sa.text(f"select ST_AsEWKB(geom) = {envelope} from {{}} where code = :code")
    for code, (x0, x1) in STREETS.items():
        box = {"x0": x0, "y0": 39.90, "x1": x1, "y1": 39.92, "code": code}
        assert connection.execute(sa.text(same.text.format("streets")), box).scalar_one()
    cells = grid_cells()
    for code, _, _, (x0, y0, x1, y1) in cells:
        box = {"x0": x0, "y0": y0, "x1": x1, "y1": y1, "code": code}
        assert connection.execute(sa.text(same.text.format("grids")), box).scalar_one(), code
    grids = connection.execute(
        sa.text("select code, community_code, street_code from grids order by code")
    ).all()
    assert [tuple(g) for g in grids] == sorted((c, m, s) for c, m, s, _ in cells)
    communities = connection.execute(
        sa.text("select code, street_code from communities order by code")
    ).all()
    assert [tuple(c) for c in communities] == sorted({(m, s) for _, m, s, _ in cells})
