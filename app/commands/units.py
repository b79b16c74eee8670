"""`blockdata units`: the units cases are dispatched to (承办单位)."""

from __future__ import annotations

import json
import sys
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click
import sqlalchemy as sa

from app.commands.users import printable
from layers.units import UNIT_KINDS

if TYPE_CHECKING:
    from etl.jobs import RunReport


def _engine() -> sa.Engine:
    from app.db import engine_from_env

    return engine_from_env(poolclass=sa.pool.NullPool)


def _run(load: Callable[[sa.Connection], RunReport]) -> None:
    """`load` on a connection of its own, committed; prints the report, exits 1 when the
    run failed (the database is then as it was, the run recorded failed)."""
    from etl.jobs import EtlError

    engine = _engine()
    try:
        with engine.connect() as conn:
            try:
                report = load(conn)
            except EtlError as exc:
                conn.commit()  # keep the record of the failed run; the data is untouched
                for line in exc.report.lines():
                    click.echo(line, err=True)
                sys.exit(1)
            conn.commit()
    finally:
        engine.dispose()
    for line in report.lines():
        click.echo(line)
    if report.rejected:
        click.echo(f"被拒绝的行 rejected rows: blockdata etl rejects {report.run_id}")


@click.group("units")
def units_group() -> None:
    """Units: each street's centre, seven departments and stations; district departments."""


@units_group.command("build")
@click.option(
    "--district-departments",
    "district_departments",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="A YAML list of district departments (default: etl/config/district_departments.yaml).",
)
def build(district_departments: Path | None) -> None:
    """Give every street its centre and seven departments; load the district departments.

    Run it after importing the streets, and again after adding one: units that are there
    already stay as they are (counted unchanged)."""
    from etl.units import DISTRICT_DEPARTMENTS, build_units

    _run(lambda conn: build_units(conn, district_departments or DISTRICT_DEPARTMENTS))


@units_group.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--sheet", help="The workbook's sheet (when several hold rows).")
def import_(file: Path, sheet: str | None) -> None:
    """Load stations and district departments from FILE (CSV, XLSX or YAML).

    Columns: code 编码, name 名称, kind 类型 (station 科站队所 or district_department 区级部门),
    street_code 街道编码 (a station's street; empty for a district department), active 启用
    (是/否, default 是). Rows are upserted by code; a bad row is rejected with its reason
    (`blockdata etl rejects RUN`) and the others load."""
    from etl.units import import_units

    _run(lambda conn: import_units(conn, file, sheet=sheet))


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(width - _width(text), 0)


@units_group.command("list")
@click.option("--street", help="Only this street's units (a street code).")
@click.option("--kind", type=click.Choice(list(UNIT_KINDS)), help="Only units of this kind.")
@click.option("--json", "as_json", is_flag=True)
def list_(street: str | None, kind: str | None, as_json: bool) -> None:
    """List the units: code, name, kind, street, active."""
    from layers.queries.units import list_units

    engine = _engine()
    try:
        with engine.connect() as conn:
            rows = list_units(conn, street=street, kind=kind)
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    header = ["编码 code", "名称 name", "类型 kind", "街道 street", "启用 active"]
    table = [
        [
            printable(r["code"]),
            printable(r["name"]),
            UNIT_KINDS[r["kind"]],
            printable(f"{r['street_name'] or ''} {r['street_code']}") if r["street_code"] else "-",
            "是" if r["active"] else "否",
        ]
        for r in rows
    ]
    widths = [max(_width(line[i]) for line in [header, *table]) for i in range(len(header))]
    for line in [header, *table]:
        click.echo("  ".join(_pad(cell, w) for cell, w in zip(line, widths, strict=True)).rstrip())
    click.echo(f"共 {len(rows)} 个单位 units")
