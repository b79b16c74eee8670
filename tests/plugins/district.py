"""The `district` fixture, for every test directory: the tiny district (tests/district.py)
as the production import (`etl.admin.import_admin`, what `blockdata admin import` runs)
leaves it.

The import runs once per session, on the GeoJSON files, in a transaction that is rolled back;
each test then gets exactly the rows it wrote (tests/test_district.py checks that they equal
a fresh import's, unit for unit, and that the placement index is the one the import built).
Importing three levels into every test's transaction would cost about 0.3 s a test (three
placement indexes, three file reads and validations) over some 300 tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from app.db import make_engine
from tests.district import (
    Cell,
    Rows,
    grid_cells,
    load_district,
    read_units,
    write_district,
    write_units,
)


@pytest.fixture(scope="session")
def district_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The district's GeoJSON files, one per level, written once per session."""
    return write_district(tmp_path_factory.mktemp("district"))


@pytest.fixture(scope="session")
def district_units(database_url: str, district_files: dict[str, Path]) -> Rows:
    """The unit rows the production import writes for the district's files (on the session's
    database, through an engine of its own: a module may override `engine`)."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            tx = conn.begin()
            try:
                load_district(conn, district_files)
                return read_units(conn)
            finally:
                tx.rollback()
    finally:
        engine.dispose()


@pytest.fixture
def district(connection: sa.Connection, district_units: Rows) -> list[Cell]:
    """The tiny district, as imported, in the test transaction (rolled back after it)."""
    write_units(connection, district_units)
    return grid_cells()
