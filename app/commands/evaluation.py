"""`blockdata evaluation`: the district's evaluation of its streets (考评).

`scheme load FILE` stores a scheme (a changed file: the next version; the same file again:
nothing), `scheme list`, `scheme show CODE`; `compute --period P` prints the live ranking,
`publish --period P` freezes it as the period's next published version. The CLI's clock is
the app's (BLOCKDATA_NOW / BLOCKDATA_TZ, app.config).
"""

from __future__ import annotations

import getpass
import json
import sys
import unicodedata
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa

from app.commands.users import printable, printable_json


def _engine() -> sa.Engine:
    from app.db import engine_from_env

    return engine_from_env(poolclass=sa.pool.NullPool)


def _fail(message: str) -> None:
    click.echo(message, err=True)
    sys.exit(1)


def _scheme(conn: sa.Connection, code: str | None, version: int | None = None) -> Any:
    from layers.evaluation.scheme import UnknownScheme, load_scheme

    try:
        return load_scheme(conn, code, version)
    except UnknownScheme as exc:
        _fail(f"{exc}：先运行 `blockdata evaluation scheme load FILE`")


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int, right: bool = False) -> str:
    gap = " " * max(width - _width(text), 0)
    return gap + text if right else text + gap


def _num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _change(value: int | None) -> str:
    if value is None:
        return "—"
    return f"↑{value}" if value > 0 else (f"↓{-value}" if value < 0 else "0")


def ranking_lines(result: dict[str, Any]) -> list[str]:
    """The ranking table of a Result, in Chinese."""
    parts = result["parts"]
    period = result["period"]
    state = (
        "实时（未发布）"
        if result.get("published") is None
        else f"已发布第 {result['published']['version']} 版"
    )
    head = (
        f"{result['scheme']['name']}（{result['scheme']['code']} 第 {result['scheme']['version']}"
        f" 版） {period['label']}：{period['since']} 至 {period['until']} {state}"
    )
    weights = (
        f"权重 内部评价 {parts['internal']:g} / 满意度调查 {parts['survey']:g} / "
        f"热线三率 {parts['hotline']:g}"
    )
    columns = [
        ("排名", 4, True),
        ("街道", 16, False),
        ("综合得分", 8, True),
        ("内部评价", 8, True),
        ("满意度(±)", 14, True),
        ("热线三率", 8, True),
        ("诉求量", 8, True),
        ("变化", 5, True),
        ("类别", 6, False),
    ]
    lines = [head, weights, "  ".join(_pad(name, w, r) for name, w, r in columns)]
    for s in result["streets"]:
        survey = _num(s.get("survey"))
        if s.get("survey_margin") is not None:
            survey += f"±{s['survey_margin']:.2f}"
        cells = [
            str(s["rank"]),
            printable(s["name"] or s["code"]),
            _num(s["composite"]),
            _num(s.get("internal")),
            survey,
            _num(s.get("hotline")),
            str((s.get("rates") or {}).get("requests", "")),
            _change(s["rank_change"]),
            s["class"] or "",
        ]
        lines.append("  ".join(_pad(c, w, r) for c, (_, w, r) in zip(cells, columns, strict=True)))
    missing = sorted({m for s in result["streets"] for m in s.get("missing", [])})
    if missing:
        lines.append(f"未评分的考评项（按 0 分计）missing scores: {', '.join(missing)}")
    return lines


@click.group("evaluation")
def evaluation_group() -> None:
    """The district's evaluation of its streets (考评): schemes, results, publications."""


@evaluation_group.group("scheme")
def scheme_group() -> None:
    """Evaluation schemes (考评方案), stored with versions."""


def save_file(conn: sa.Connection, path: Path, by: str) -> tuple[Any, bool]:
    """Read, check and store the scheme of `path` (SchemeError when it is refused)."""
    from layers.evaluation.scheme import read_scheme_file, save_scheme

    return save_scheme(conn, read_scheme_file(path), by=by)


@scheme_group.command("load")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
def scheme_load(file: Path) -> None:
    """Check the scheme of FILE (YAML) and store it: a changed scheme as its next version."""
    from layers.evaluation.scheme import SchemeError

    engine = _engine()
    try:
        with engine.connect() as conn:
            try:
                scheme, changed = save_file(conn, file, by=f"cli:{getpass.getuser()}")
            except SchemeError as exc:
                _fail(f"考评方案被拒绝 scheme refused: {exc}")
            conn.commit()
    finally:
        engine.dispose()
    if changed:
        click.echo(f"已保存考评方案 {scheme.code} 第 {scheme.version} 版 ({scheme.name})")
    else:
        click.echo(f"考评方案 {scheme.code} 未变，仍为第 {scheme.version} 版 (unchanged)")


@scheme_group.command("list")
def scheme_list() -> None:
    """The stored schemes: code, latest version, name."""
    from layers.evaluation.scheme import schemes

    engine = _engine()
    try:
        with engine.connect() as conn:
            found = schemes(conn)
    finally:
        engine.dispose()
    if not found:
        click.echo("没有考评方案 (no scheme stored)")
    for s in found:
        click.echo(
            f"{s['code']:<16} 第 {s['version']} 版（共 {s['versions']} 版） "
            f"{printable(s['name'])}  {s['created_at']}"
        )


@scheme_group.command("show")
@click.argument("code")
@click.option("--version", type=click.IntRange(1), help="A version (default: the latest).")
def scheme_show(code: str, version: int | None) -> None:
    """A stored scheme's body, as JSON."""
    engine = _engine()
    try:
        with engine.connect() as conn:
            scheme = _scheme(conn, code, version)
    finally:
        engine.dispose()
    click.echo(f"# {scheme.code} 第 {scheme.version} 版")
    click.echo(json.dumps(scheme.body, ensure_ascii=False, indent=2))


def _period(scheme: Any, period: str) -> str:
    from layers.evaluation.periods import PeriodError, period_window

    try:
        period_window(scheme, period)
    except PeriodError as exc:
        _fail(str(exc))
    return period


@evaluation_group.command("compute")
@click.option("--period", required=True, help="The period's label: 2026-11, 2026Q4, 2026.")
@click.option("--scheme", "code", help="The scheme's code (default: the latest stored).")
@click.option("--json", "as_json", is_flag=True, help="The Result as JSON.")
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
    help="Count the cases open past due at this time (default: now); without an offset, "
    "local time in BLOCKDATA_TZ.",
)
def compute_cmd(period: str, code: str | None, as_json: bool, as_of: Any) -> None:
    """The live (unpublished) evaluation of a period: every street's scores and rank."""
    from app.config import from_env
    from layers.evaluation.compute import evaluate

    settings = from_env()
    now = settings.now() if as_of is None else as_of
    if now.tzinfo is None:
        now = now.replace(tzinfo=settings.zone)
    engine = _engine()
    try:
        with engine.connect() as conn:
            scheme = _scheme(conn, code)
            result = evaluate(conn, scheme, _period(scheme, period), now=now)
    finally:
        engine.dispose()
    if as_json:
        click.echo(printable_json(result))
        return
    for line in ranking_lines(result):
        click.echo(line)


@evaluation_group.command("publish")
@click.option("--period", required=True, help="The period's label: 2026-11, 2026Q4, 2026.")
@click.option("--scheme", "code", help="The scheme's code (default: the latest stored).")
def publish_cmd(period: str, code: str | None) -> None:
    """Freeze a period's evaluation as its next published version (never rewritten)."""
    from app.config import from_env
    from layers.evaluation.publish import publish, published

    engine = _engine()
    try:
        with engine.connect() as conn:
            scheme = _scheme(conn, code)
            label = _period(scheme, period)
            publish(conn, scheme, label, by=f"cli:{getpass.getuser()}", now=from_env().now())
            result = published(conn, scheme.code, label)
            conn.commit()
    finally:
        engine.dispose()
    assert result is not None
    click.echo(
        f"已发布 {scheme.code} {label} 第 {result['published']['version']} 版 "
        f"(publication {result['published']['id']})"
    )
    for line in ranking_lines(result):
        click.echo(line)
