"""`blockdata report monthly`: the period's report (通报) of the evaluation as an HTML, PDF or
XLSX file."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import click
import sqlalchemy as sa

from app.report import FORMATS, ReportError, write

# A period label: a month (2026-11), a quarter (2026Q4) or a year (2026).
PERIOD = re.compile(r"\d{4}(-(0[1-9]|1[0-2])|Q[1-4])?")


def parse_period(label: str) -> str:
    if not PERIOD.fullmatch(label):
        raise ReportError(
            f"考评期 {label!r} 格式错误，应为 2026-11（月）、2026Q4（季度）或 2026（年） bad period"
        )
    return label


def parse_format(fmt: str | None, out: Path) -> str:
    """The format asked for, or the one of the file's suffix."""
    chosen = (fmt or out.suffix.lstrip(".")).lower()
    if chosen not in FORMATS:
        given = fmt if fmt is not None else f"文件后缀 {out.suffix or '（无）'}"
        raise ReportError(
            f"不支持的格式 {given}：可选 {'、'.join(FORMATS)}（--format） unknown format"
        )
    return chosen


@click.group("report")
def report_group() -> None:
    """通报 The evaluation's reports."""


@report_group.command("monthly")
@click.option("--period", "label", required=True, help="考评期 the period: 2026-11, 2026Q4, 2026.")
@click.option("--format", "fmt", help="html, pdf or xlsx (default: from the --out file's suffix).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The file to write (replaced only when the report is complete).",
)
@click.option("--scheme", help="考评方案代码 the scheme's code (default: the only/latest one).")
@click.option(
    "--version",
    type=click.IntRange(min=1),
    help="发布版本 the period's publication version (default: its latest; live if unpublished).",
)
@click.option(
    "--now",
    type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]),
    help="生成时间 the report's 'generated at', in the district's time zone (default: now).",
)
def monthly(
    label: str,
    fmt: str | None,
    out: Path,
    scheme: str | None,
    version: int | None,
    now: dt.datetime | None,
) -> None:
    """The period's report: ranking, each street's scores and changes, the departments,
    top problems, a map per street and charts."""
    from app.config import from_env
    from app.db import engine_from_env
    from layers.evaluation.report import gather

    try:
        label = parse_period(label)
        fmt = parse_format(fmt, out)
    except ReportError as exc:
        raise click.UsageError(str(exc)) from None
    if not out.resolve().parent.is_dir():
        raise click.UsageError(f"目录不存在 no such directory: {out.resolve().parent}")
    settings = from_env()
    instant = settings.now() if now is None else now.replace(tzinfo=settings.zone)
    engine = engine_from_env(poolclass=sa.pool.NullPool)
    try:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            try:
                report = gather(
                    conn, scheme, label, zone_tz=settings.tz, now=instant, version=version
                )
            except (LookupError, ValueError) as exc:
                raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()
    size = write(report, fmt, out)
    click.echo(f"已生成通报 report written: {out} ({fmt}, {size:,} 字节)")
