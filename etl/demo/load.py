"""The demo district end to end: generate, import the boundaries, run every extract."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pyogrio
import sqlalchemy as sa

from etl.admin import AdminReport, import_admin
from etl.aggregates import aggregates_zone
from etl.demo.cases import Life, enliven
from etl.demo.extracts import DEFAULT_END, DEMO_ZONE, generate_extracts
from etl.demo.gazetteer import load_gazetteer
from etl.demo.geography import generate_geography, write_geography
from etl.demo.units import FILE as UNITS_FILE
from etl.demo.units import write_units
from etl.jobs import RunReport, run_file
from etl.units import build_units, import_units

# Boundary files in the order their levels nest.
ADMIN_FILES = (
    ("streets", "street"),
    ("communities", "community"),
    ("grids", "grid"),
    ("lanes", "lane"),
    ("service_halls", "service_hall"),
    ("landmarks", "landmark"),
)
# Extracts in the order the source systems would deliver them: the later extract last.
EXTRACTS = (
    ("requests_hotline.csv", "service_requests"),
    ("requests_grid_gbk.csv", "service_requests"),
    ("requests_app.xlsx", "service_requests"),
    ("enforcement_cases.csv", "enforcement_cases"),
    ("relocation_targets.xlsx", "relocation_targets"),
    ("renovation_projects.geojson", "renovation_projects"),
    ("requests_update.csv", "service_requests"),
)


@dataclass
class DemoReport:
    admin: list[AdminReport] = field(default_factory=list)
    units: list[RunReport] = field(default_factory=list)
    runs: list[RunReport] = field(default_factory=list)
    life: Life = field(default_factory=Life)


def generate(
    out: Path,
    *,
    seed: int = 42,
    requests: int = 200_000,
    cases: int = 3_000,
    targets: int = 120,
    projects: int = 200,
    end: dt.date = DEFAULT_END,
    progress: bool = False,
    now: dt.datetime | None = None,
    zone: str = DEMO_ZONE,
) -> dict[str, Path]:
    """Write the boundary files and the extracts of the demo district into `out`.

    `now`: the moment of generation when `end` is today (see `generate_extracts`): the
    later extract is taken then, so that nothing in the files lies after it.
    """
    geo = generate_geography(seed)
    files = write_geography(geo, out)
    streets = zip(geo.streets["code"].astype(str), geo.streets["name"].astype(str), strict=True)
    files["units"] = write_units(streets, out)
    files.update(
        generate_extracts(
            geo,
            out,
            seed=seed,
            requests=requests,
            cases=cases,
            targets=targets,
            projects=projects,
            end=end,
            progress=progress,
            now=now,
            zone=zone,
        )
    )
    return files


DEMO_PASSWORD = "blockdata-demo"
# A department user per kind of unit (承办单位), bound to one of the demo's units: a street
# department (大部) and a station (科站队所) of the first street, and a district department.
DEPARTMENT_UNITS = ("{street}-city", "{street}-enforcement", "district-fire")


ASSESSOR_UNIT = "district-civil-affairs"


class DemoUser(NamedTuple):
    name: str
    role: str
    street: str | None = None
    unit: str | None = None


def demo_users(conn: sa.Connection, password_hash: str) -> list[DemoUser]:
    """One user per role — a department user per kind of unit, bound to a demo unit — and
    one commander per street (created once; all share a password)."""
    from layers.accounts import users

    streets = conn.exec_driver_sql("select code from streets order by code").scalars().all()
    wanted = [DemoUser(role, role) for role in ("district", "analyst", "planner")]
    first = streets[0] if streets else None
    # The clerk and the grid officer work for one street (migration 0019): the first.
    if first is not None:
        wanted += [
            DemoUser("clerk", "clerk", first),
            DemoUser("grid-officer", "grid_officer", first),
        ]
    active = set(conn.exec_driver_sql("select code from units where active").scalars())
    for pattern in DEPARTMENT_UNITS:
        if "{street}" in pattern and first is None:
            continue
        unit = pattern.format(street=first)
        if unit in active:
            wanted.append(DemoUser(f"unit-{unit}", "department", unit=unit))
    # An assessor (考核部门) of a unit that owns manual items of the demo's evaluation scheme
    # (etl/config/evaluation/xicheng.yaml): it lands on /evaluation/score.
    if ASSESSOR_UNIT in active:
        wanted.append(DemoUser("assessor-civil-affairs", "assessor", unit=ASSESSOR_UNIT))
    wanted += [DemoUser(f"commander-{code}", "commander", code) for code in streets]
    existing = set(conn.execute(sa.select(users.c.name)).scalars())
    for user in wanted:
        if user.name not in existing:
            conn.execute(
                sa.insert(users).values(
                    name=user.name,
                    role=user.role,
                    street_code=user.street,
                    unit_code=user.unit,
                    password_hash=password_hash,
                )
            )
        elif user.street is not None:
            # a demo clerk made before migration 0019 has no street: bind it, as
            # `blockdata users bind` would (a street's user without one may not log in)
            conn.execute(
                sa.update(users)
                .where(
                    users.c.name == user.name,
                    users.c.role == user.role,
                    users.c.street_code.is_(None),
                )
                .values(street_code=user.street)
            )
    return wanted


def clear(conn: sa.Connection) -> None:
    """Remove the demo sources' events (the boundaries stay; a reload updates them)."""
    from etl.mapping import load_mapping

    for _, layer in EXTRACTS:
        mapping = load_mapping(layer)
        table = mapping.layer_obj.table
        conn.execute(sa.delete(table).where(table.c.source == mapping.source))


def drop_stale_units(conn: sa.Connection, directory: Path) -> dict[str, int]:
    """Units of a demo loaded before that the files no longer have (the demo moved onto the
    real street boundaries: other grids, lanes and landmarks) go before the import, finest
    first, so that the new ones do not overlap them; the rows that named them keep their
    other codes and lose those (the import's `fill_in` places them again). Returns the
    number dropped per table."""
    refs = conn.exec_driver_sql(
        """select c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text
             from pg_constraint c
             join pg_attribute a on a.attrelid = c.conrelid and a.attnum = c.conkey[1]
            where c.contype = 'f' and array_length(c.conkey, 1) = 1"""
    ).all()
    dropped: dict[str, int] = {}
    for name, _ in reversed(ADMIN_FILES):
        path = directory / f"{name}.geojson"
        if not path.exists():
            continue
        wanted = pyogrio.read_dataframe(path, columns=["code"], read_geometry=False)["code"]
        have = conn.exec_driver_sql(f"select code from {name}").scalars().all()
        stale = sorted(set(have) - set(wanted.astype(str)))
        if not stale:
            continue
        for table, column, target in refs:
            if target == name:
                conn.execute(
                    sa.text(f"update {table} set {column} = null where {column} = any(:c)"),
                    {"c": stale},
                )
        conn.execute(sa.text(f"delete from {name} where code = any(:c)"), {"c": stale})
        dropped[name] = len(stale)
    return dropped


def load_units(conn: sa.Connection, directory: Path) -> list[RunReport]:
    """Every street's centre and seven departments, the district departments, and the
    stations of `directory`'s units file — written from the streets in the database when
    the directory has none (a demo loaded before units existed). Idempotent."""
    path = directory / UNITS_FILE
    if not path.exists():
        streets = [
            (code, name) for code, name in conn.exec_driver_sql("select code, name from streets")
        ]
        directory.mkdir(parents=True, exist_ok=True)
        write_units(streets, directory)
    return [build_units(conn), import_units(conn, path)]


def load(
    conn: sa.Connection,
    directory: Path,
    *,
    progress: bool = False,
    cache_dir: Path | None = None,
    zone: str | None = None,
    now: dt.datetime | None = None,
    seed: int = 42,
) -> DemoReport:
    """Import the boundaries and run every extract found in `directory`, then give the cases
    the life the extracts do not carry (`etl.demo.cases.enliven`: returns, extensions,
    reopenings, supervision, whistles; drawn from `seed`) (caller commits); `zone`: the
    district's time zone, `now`: the clock the rows' times are checked against (see
    `etl.jobs.run_file`) and the life's steps stop at."""
    report = DemoReport()
    drop_stale_units(conn, directory)
    for name, level in ADMIN_FILES:
        report.admin.append(import_admin(conn, directory / f"{name}.geojson", level))
    report.units = load_units(conn, directory)
    report.runs.extend(load_gazetteer(conn, directory))  # before the extracts: they geocode
    for name, layer in EXTRACTS:
        path = directory / name
        if path.exists():
            report.runs.append(
                run_file(
                    conn,
                    path,
                    layer=layer,
                    progress=progress,
                    cache_dir=cache_dir,
                    zone=zone,
                    now=now,
                )
            )
    report.life = enliven(
        conn,
        now or dt.datetime.now(dt.UTC),
        seed=seed,
        zone=zone or aggregates_zone(conn),
    )
    return report
