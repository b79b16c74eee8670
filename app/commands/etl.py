"""`blockdata etl`: run a load, retry a run's retryable rejects, list runs, show rejects."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click
import sqlalchemy as sa

from layers import LAYERS, etl_rejects, etl_runs

T = TypeVar("T")


@click.group()
def etl() -> None:
    """Load extracts and inspect what loaded and what was rejected."""


@etl.command("run")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--layer", type=click.Choice([layer.name for layer in LAYERS]))
@click.option("--mapping", help="A shipped mapping name or a YAML file (default: the layer's).")
@click.option("--source", help="The source name stored with each row (default: the mapping's).")
@click.option(
    "--crs", help="The file's coordinate system (wgs84, gcj02, bd09); a row's own 坐标系 wins."
)
@click.option(
    "--sheet", help="The workbook's sheet to load (needed when several sheets hold data)."
)
@click.option(
    "--allow-crs-mismatch",
    is_flag=True,
    help="Load the points as declared even when another coordinate system fits them far "
    "better (the run fails otherwise).",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a tty).")
def run(
    file: Path,
    layer: str | None,
    mapping: str | None,
    source: str | None,
    crs: str | None,
    sheet: str | None,
    allow_crs_mismatch: bool,
    progress: bool | None,
) -> None:
    """Load FILE (CSV, XLSX, GeoJSON, GeoPackage) into a layer; re-running is safe."""
    from app.config import from_env
    from app.db import engine_from_env
    from etl.coords import UnknownCRS, normalize_crs
    from etl.jobs import run_file
    from etl.mapping import MappingError

    if layer is None and mapping is None:
        raise click.UsageError("give --layer or --mapping")
    if crs is not None:
        try:
            normalize_crs(crs)
        except UnknownCRS as exc:
            raise click.BadParameter(str(exc), param_hint="--crs") from exc
    settings = from_env()
    # One connection, closed with the command (no pool left holding it).
    engine = engine_from_env(poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        report = _attempt(
            conn,
            lambda: run_file(
                conn,
                file,
                layer=layer,
                mapping=mapping,
                source=source,
                crs=crs,
                sheet=sheet,
                allow_crs_mismatch=allow_crs_mismatch,
                progress=sys.stderr.isatty() if progress is None else progress,
                cache_dir=settings.var_dir / "cache",
                zone=settings.tz,
                placement_mb=settings.placement_mb,
            ),
            MappingError,
        )
    for line in report.lines():
        click.echo(line)


REMAINING_SHOWN = 20


def _attempt(conn: sa.Connection, call: Callable[[], T], *refused: type[Exception]) -> T:
    """Run an ETL call on the command's connection and commit. A failed run keeps its record
    (committed; the data is untouched), prints its report and exits 1; `refused` errors are
    the command's own (a bad mapping, a run that cannot be retried)."""
    from etl.jobs import EtlError

    try:
        result = call()
    except EtlError as exc:
        conn.commit()
        for line in exc.report.lines():
            click.echo(line, err=True)
        sys.exit(1)
    except refused as exc:
        raise click.ClickException(str(exc)) from exc
    conn.commit()
    return result


@etl.command("retry")
@click.argument("run_id", type=int)
@click.option(
    "--mapping", help="The mapping YAML file of the run, when it was not a shipped mapping."
)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a tty).")
def retry(run_id: int, mapping: str | None, progress: bool | None) -> None:
    """Re-run RUN_ID's retryable rejects (after the gazetteer or the admin units grew).

    The rows that now pass are loaded in a new run linked to RUN_ID; the others stay
    rejected there, with their reasons. Each reject is retried once: retrying RUN_ID again
    takes only what its retries still reject. A failed retry changes no data."""
    from app.config import from_env
    from app.db import engine_from_env
    from etl.jobs import RetryError, retry_run
    from etl.mapping import MappingError

    settings = from_env()
    engine = engine_from_env(poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        report = _attempt(
            conn,
            lambda: retry_run(
                conn,
                run_id,
                mapping=mapping,
                progress=sys.stderr.isatty() if progress is None else progress,
                cache_dir=settings.var_dir / "cache",
                zone=settings.tz,
                placement_mb=settings.placement_mb,
            ),
            RetryError,
            MappingError,
        )
        if report is None:
            click.echo(f"运行 {run_id} 没有待重试的行 run {run_id} has no rejects left to retry")
            return
        remaining = conn.execute(
            sa.select(etl_rejects)
            .where(etl_rejects.c.run_id == report.run_id)
            .order_by(etl_rejects.c.row_number)
            .limit(REMAINING_SHOWN)
        ).all()
    for line in report.lines():
        click.echo(line)
    if remaining:
        click.echo(f"仍被拒绝 still rejected ({report.rejected}):")
    for r in remaining:
        click.echo(f"  {_reject_line(dict(r._mapping))}")
    if report.rejected > len(remaining):
        click.echo(f"  … blockdata etl rejects {report.run_id}")


def _reject_line(r: Mapping[str, Any]) -> str:
    retry = "  (可重试 retryable)" if r["retryable"] else ""
    if r.get("retried_in") is not None:
        retry = f"  (已在运行 {r['retried_in']} 重试 retried in run {r['retried_in']})"
    return (
        f"row {r['row_number']:<7} {r['reason']:<18} {r['source_id'] or '-':<20} "
        f"{r['message']}{retry}"
    )


@etl.command("runs")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000))
@click.option("--json", "as_json", is_flag=True)
def runs(limit: int, as_json: bool) -> None:
    """List the latest ETL runs: status, counts, who ran them.

    Runs still marked running whose loading process is gone (killed, say) are marked
    failed first: 失败 (中断) failed (interrupted)."""
    from app.db import engine_from_env
    from etl.jobs import mark_interrupted

    cols = ["id", "started_at", "finished_at", "layer", "source", "file_name", "status"]
    cols.append("retry_of")
    counts = ["read", "inserted", "updated", "unchanged", "rejected"]
    who = ["run_by", "host", "pid", "backend_pid"]
    query = (
        sa.select(*(etl_runs.c[c] for c in [*cols, *counts, *who, "error"]))
        .order_by(etl_runs.c.id.desc())
        .limit(limit)
    )
    engine = engine_from_env()
    try:
        with engine.connect() as conn:
            try:
                conn.execute(sa.text("set local lock_timeout = '2s'"))
                mark_interrupted(conn)
                conn.commit()
            except sa.exc.OperationalError:  # a load holds etl_runs: list what is there
                conn.rollback()
            rows = [dict(r._mapping) for r in conn.execute(query)]
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, default=str, indent=2))
        return
    click.echo(
        "id  started             layer               file                     status     "
        "read  inserted  updated  unchanged  rejected  by"
    )
    for r in rows:
        by = f"{r['run_by'] or '?'}@{r['host'] or '?'} pid {r['pid']}" if r["pid"] else ""
        click.echo(
            f"{r['id']:<3} {r['started_at']:%Y-%m-%d %H:%M:%S} {r['layer']:<19} "
            f"{(r['file_name'] or '')[:24]:<24} {r['status']:<10} {r['read']:>6} "
            f"{r['inserted']:>9} {r['updated']:>8} {r['unchanged']:>10} {r['rejected']:>9}  {by}"
        )
        if r["retry_of"] is not None:
            click.echo(f"    重试运行 retry of run {r['retry_of']}")
        if r["error"]:
            click.echo(f"    错误 error: {r['error']}")


@etl.command("rejects")
@click.argument("run_id", type=int)
@click.option("--reason", help="Only rows rejected for this reason (e.g. needs_geocoding).")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000_000))
@click.option("--json", "as_json", is_flag=True, help="JSON lines, raw content included.")
def rejects(run_id: int, reason: str | None, limit: int, as_json: bool) -> None:
    """Show the rows RUN_ID rejected, with the reason for each."""
    from app.db import engine_from_env

    query = sa.select(etl_rejects).where(etl_rejects.c.run_id == run_id)
    if reason:
        query = query.where(etl_rejects.c.reason == reason)
    query = query.order_by(etl_rejects.c.row_number).limit(limit)
    engine = engine_from_env(poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            exists = conn.execute(sa.select(etl_runs.c.id).where(etl_runs.c.id == run_id)).first()
            if exists is None:
                raise click.ClickException(f"没有这次运行 no such run: {run_id}")
            rows = [dict(r._mapping) for r in conn.execute(query)]
    finally:
        engine.dispose()
    for r in rows:
        if as_json:
            click.echo(json.dumps(r, ensure_ascii=False, default=str))
        else:
            click.echo(_reject_line(r))
