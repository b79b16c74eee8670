"""The demo district through the production ETL, measured against its truth file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from etl.demo.load import generate, load
from etl.geocoder import LEVELS

CLEAN_DEFECTS = {"", "swapped", "whitespace", "fullwidth"}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    generate(out, requests=3_000, cases=150, targets=40, projects=40)
    return out


def test_demo_loads_and_every_row_with_coordinates_lands_in_its_true_grid(
    connection: sa.Connection, demo_dir: Path
) -> None:
    report = load(connection, demo_dir)
    assert all(a.ok() for a in report.admin)
    for run in report.runs:
        assert run.status == "succeeded"
        assert run.read == run.inserted + run.updated + run.unchanged + run.rejected

    truth = pd.read_csv(demo_dir / "truth.csv", dtype=str, keep_default_na=False)
    truth["defects"] = truth["defects"].fillna("")
    requests = truth[truth["kind"] == "request"]
    loaded = pd.read_sql(
        "select source_id, grid_code, ST_X(geom) x, ST_Y(geom) y, geocode_quality "
        "from service_requests",
        connection,
    )
    merged = loaded.merge(
        requests.drop_duplicates("source_id", keep="last"), on="source_id", how="left"
    )
    assert merged["grid_code_y"].notna().all()
    # Rows placed by their address (etl/geocode.py) carry their match level; the exact
    # checks below are for the rows placed by their coordinates.
    by_address = ~merged["geocode_quality"].str.startswith("coordinates")
    assert set(merged.loc[by_address, "geocode_quality"]) <= set(LEVELS) - {"failed"}
    assert set(merged.loc[by_address, "defects"].str.split(";").sum() or []) >= (
        {"address_only"} if by_address.any() else set()
    )
    merged = merged[~by_address]
    assert (merged["grid_code_x"] == merged["grid_code_y"]).all()
    metres = np.hypot(
        (merged["x"] - merged["true_lng"].astype(float)) * 85_000,
        (merged["y"] - merged["true_lat"].astype(float)) * 111_000,
    )
    assert metres.max() < 0.5

    # Every request whose row had usable coordinates is in the table.
    usable = requests[requests["defects"].map(lambda d: set(d.split(";")) <= CLEAN_DEFECTS)][
        "source_id"
    ]
    assert set(usable) <= set(loaded["source_id"])
    swapped = requests[requests["defects"].str.contains("swapped")]["source_id"]
    quality = loaded.set_index("source_id")["geocode_quality"]
    assert (quality.reindex(swapped).dropna() == "coordinates_swapped").all()

    # The defects were rejected for the right reasons, and kept.
    rejects = pd.read_sql("select reason, raw from etl_rejects", connection)
    reasons = set(rejects["reason"])
    assert {"outside_district", "duplicate", "bad_date"} <= reasons
    # Every address-only request is placed by its address or kept for a retry, never lost.
    only_that = {"address_only", *CLEAN_DEFECTS}
    address_only = set(
        requests[
            requests["defects"].map(
                lambda d: "address_only" in d and set(d.split(";")) <= only_that
            )
        ]["source_id"]
    )
    retry = set(
        connection.exec_driver_sql(
            "select source_id from etl_rejects where retryable "
            "and reason in ('geocode_failed', 'geocode_ambiguous')"
        ).scalars()
    )
    placed = set(loaded.loc[~loaded["geocode_quality"].str.startswith("coordinates"), "source_id"])
    assert address_only and address_only <= placed | retry

    # Cases, targets and projects land in their true grid too.
    for table, kind in [
        ("enforcement_cases", "case"),
        ("relocation_targets", "target"),
        ("renovation_projects", "project"),
    ]:
        rows = pd.read_sql(
            f"select source_id, grid_code from {table} "
            "where not (geocode_quality = any(cast(%(levels)s as text[])))",
            connection,
            params={"levels": list(LEVELS)},
        )
        expect = truth[truth["kind"] == kind].drop_duplicates("source_id", keep="last")
        both = rows.merge(expect, on="source_id")
        assert len(both) == len(rows) > 0, table
        assert (both["grid_code_x"] == both["grid_code_y"]).all(), table

    # The relocation targets under way or done get their whistles (吹哨报到), as do joint
    # enforcement cases once the load makes cases.
    whistles = dict(
        connection.exec_driver_sql("select target_kind, count(*) from whistles group by 1").all()
    )
    assert sum(whistles.values()) == report.life.whistles
    assert whistles.get("relocation_target", 0) > 0

    # Loading it all again changes nothing, and adds no life.
    again = load(connection, demo_dir)
    assert all(a.inserted == 0 and a.updated == 0 for a in again.admin)
    assert all(r.inserted == 0 and r.updated == 0 for r in again.runs), [
        (r.file_name, r.inserted, r.updated, r.geocoded) for r in again.runs
    ]
    assert (again.life.transitions, again.life.whistles) == (0, 0)


def test_demo_users_one_per_role_and_a_commander_per_street(
    connection: sa.Connection, demo_dir: Path
) -> None:
    from etl.demo.load import demo_users

    load(connection, demo_dir)
    first = demo_users(connection, "hash")
    again = demo_users(connection, "hash")  # idempotent
    assert first == again
    rows = connection.exec_driver_sql(
        "select role, count(*), count(distinct street_code), count(distinct unit_code) "
        "from users group by role"
    ).all()
    expected = {
        "district": (1, 0, 0),
        "analyst": (1, 0, 0),
        "planner": (1, 0, 0),
        "clerk": (1, 1, 0),  # bound to a street (migration 0019)
        "grid_officer": (1, 1, 0),
        "department": (3, 0, 3),
        "assessor": (1, 0, 1),  # of a unit owning items of the demo scheme (migration 0022)
        "commander": (15, 15, 0),
    }
    assert {r[0]: tuple(r[1:]) for r in rows} == expected
    # A department user per kind of unit, each bound to a unit of the demo.
    kinds = connection.exec_driver_sql(
        "select n.kind, n.street_code is null from users u join units n on n.code = u.unit_code "
        "order by n.kind"
    ).all()
    assert [tuple(k) for k in kinds] == [
        ("department", False),
        ("district_department", True),
        ("district_department", True),  # the assessor's
        ("station", False),
    ]


def test_demo_users_bind_a_demo_clerk_made_before_streets(
    connection: sa.Connection, demo_dir: Path
) -> None:
    """A demo loaded before migration 0019 left `clerk` without a street (it may not log in
    then): loading the demo again binds it to the first street, as `users bind` would."""
    from etl.demo.load import demo_users
    from layers.accounts import users

    load(connection, demo_dir)
    connection.execute(
        sa.insert(users).values(name="clerk", role="clerk", street_code=None, password_hash="h")
    )
    demo_users(connection, "hash")
    first = connection.exec_driver_sql("select min(code) from streets").scalar_one()
    bound = connection.execute(
        sa.select(users.c.street_code, users.c.password_hash).where(users.c.name == "clerk")
    ).one()
    assert tuple(bound) == (first, "h")  # bound, and its password left as it was


def test_a_reload_drops_the_units_the_files_no_longer_have(
    connection: sa.Connection, demo_dir: Path
) -> None:
    """A demo loaded on other boundaries (the old shapes) reloads: its grids that the files no
    longer have go, and a request that named one is placed again (before: the new grids
    overlapped the stale ones and nothing loaded)."""
    load(connection, demo_dir)
    code = connection.exec_driver_sql("select min(code) from grids").scalar_one()
    stale = code[:-3] + "999"
    connection.execute(
        sa.text(
            "insert into grids (code, community_code, street_code, geom) "
            "select :stale, community_code, street_code, geom from grids where code = :code"
        ),
        {"stale": stale, "code": code},
    )
    rid = connection.execute(
        sa.text(
            "update service_requests set grid_code = :stale where id = "
            "(select min(id) from service_requests where grid_code = :code) returning id"
        ),
        {"stale": stale, "code": code},
    ).scalar_one()
    grids = connection.exec_driver_sql("select count(*) from grids").scalar_one()

    report = load(connection, demo_dir)

    assert all(a.ok() for a in report.admin)
    assert connection.exec_driver_sql("select count(*) from grids").scalar_one() == grids - 1
    named = sa.text("select count(*) from grids where code = :stale")
    assert connection.execute(named, {"stale": stale}).scalar_one() == 0
    placed, covering = connection.execute(
        sa.text(
            "select r.grid_code, (select g.code from grids g where ST_Covers(g.geom, r.geom)) "
            "from service_requests r where r.id = :id"
        ),
        {"id": rid},
    ).one()
    assert placed == covering == code
