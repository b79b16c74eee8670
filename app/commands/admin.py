"""`blockdata admin`: load the district's boundary files (streets down to landmarks)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import click
import yaml

from etl.admin import (
    PROBLEM_KINDS,
    AdminFileError,
    AdminImportError,
    AdminReport,
    import_admin,
)
from layers.registry import admin_levels

POLYGON_TABLES = ("streets", "communities", "grids")


@click.group("admin")
def admin() -> None:
    """行政区划 Admin units: streets, communities, grids, lanes, halls, landmarks."""


def _load_mapping(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"映射文件无效 {str(path)!r} is not valid YAML: {exc}") from exc
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise click.ClickException(
            f"映射文件应为字典 {str(path)!r} must be a YAML mapping, not {type(doc).__name__}"
        )
    return doc


def _location(lng: float | None, lat: float | None) -> str:
    return "-" if lng is None or lat is None else f"{lng:.6f},{lat:.6f}"


def _echo_report(report: AdminReport, file: Path) -> None:
    head = "试运行 dry run, 未写入 nothing written: " if report.dry_run else ""
    click.echo(f"{head}{report.level} ← {file.name}")
    click.echo(
        f"读取 read {report.read} · 新增 inserted {report.inserted} · "
        f"更新 updated {report.updated} · 未变 unchanged {report.unchanged}"
    )
    if report.placement:
        click.echo(f"定位索引 placement index: {report.placement}")
    for note in report.notes:
        click.echo(f"说明 note: {note}")
    if report.problems:
        click.echo(f"问题 {len(report.problems)} problem(s), 未写入 nothing was written:")
    for p in report.problems:
        label = PROBLEM_KINDS.get(p.kind, "")
        click.echo(f"  {p.kind} {label}\t{p.code or '-'}\t{_location(p.lng, p.lat)}\t{p.message}")
    if len(report.problems) > 10:
        kinds = Counter(p.kind for p in report.problems)
        click.echo("合计 total: " + ", ".join(f"{k} {n}" for k, n in kinds.most_common()))


@admin.command("import")
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--level", required=True, type=click.Choice(list(admin_levels())), help="Which units."
)
@click.option(
    "--mapping",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=(
        "YAML: columns (renamed, or transformed by regex / slice / prefix), crs, defaults, "
        "code_pattern (see etl/mappings/admin_example.yaml)."
    ),
)
@click.option("--crs", help="EPSG:xxxx, wgs84, gcj02 or bd09; used when the file has none.")
@click.option("--encoding", help="Attribute encoding of a Shapefile without .cpg (e.g. GBK).")
@click.option("--layer", "layer_name", help="Layer of a multi-layer file (GeoPackage).")
@click.option("--dry-run", is_flag=True, help="Validate and count, write nothing.")
def import_cmd(
    file: Path,
    level: str,
    mapping: Path | None,
    crs: str | None,
    encoding: str | None,
    layer_name: str | None,
    dry_run: bool,
) -> None:
    """Load FILE (GeoJSON, GeoPackage, Shapefile) into the LEVEL's table, upserting by code.

    Every problem is reported with its location; a file with problems writes nothing and
    the command exits 1.
    """

    from app.config import ConfigError, from_env, resolve_database_url
    from app.db import make_engine
    from app.pgcluster import ClusterError
    from etl.place import DEFAULT_BUDGET_MB, placer_for

    doc = _load_mapping(mapping)
    try:
        settings = from_env()
        url = resolve_database_url(settings)
    except (ConfigError, ClusterError) as exc:
        raise click.ClickException(str(exc)) from exc
    budget = settings.placement_mb or DEFAULT_BUDGET_MB
    engine = make_engine(url, pool_size=1)
    warnings: list[str] = []
    try:
        # One transaction: the units, their placement index (a failed build is a problem
        # and takes the units back out) and the events given finer codes.
        with engine.begin() as conn:
            report = import_admin(
                conn,
                file,
                level,
                doc,
                crs,
                dry_run,
                encoding=encoding,
                layer=layer_name,
                placement_mb=budget,
            )
        if admin_levels()[level] in POLYGON_TABLES and not dry_run:
            # Keep the index built in the import for the next loads (a warning if it cannot).
            with engine.connect() as conn:
                placer_for(conn, settings.var_dir / "cache", budget_mb=budget, warnings=warnings)
    except AdminImportError as exc:
        report = exc.report
    except AdminFileError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()
    _echo_report(report, file)
    for warning in warnings:
        click.echo(f"警告 warning: {warning}", err=True)
    if not report.ok():
        sys.exit(1)
