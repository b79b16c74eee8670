"""`blockdata scores` / `tasks` / `survey`: the evaluation's inputs from the command line.

The same checks as the web (layers.evaluation): a write names its user (`--as`), is refused
unless that user's role may do it, and runs as the reader scoped as that user, so the
database's row-level security checks it again. Every file is written whole or not at all;
the rejected rows are printed with their row, column and reason. The clock is the app's.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa

from layers.cases import Actor

FILE = click.Path(path_type=Path, dir_okay=False, exists=True)
PERIOD = click.option("--period", required=True, help="2026-11, 2026Q4 or 2026.")
SCHEME = click.option("--scheme", help="The scheme's code (default: the latest).")
Command = Callable[..., None]


def file_as(who: str) -> Callable[[Command], Command]:
    """FILE, --as USER (`who`), --period and --scheme: a file imported for a period."""

    def wrap(command: Command) -> Command:
        for option in (
            SCHEME,
            PERIOD,
            click.option("--as", "as_user", required=True, help=who),
            click.argument("file", type=FILE),
        ):
            command = option(command)
        return command

    return wrap


def _engine() -> sa.Engine:
    from app.db import engine_from_env

    return engine_from_env(poolclass=sa.pool.NullPool)


def _actor(conn: sa.Connection, name: str) -> tuple[Actor, str | None]:
    """The user's actor and street (a commander's)."""
    from layers.accounts import users

    row = conn.execute(
        sa.select(users.c.role, users.c.unit_code, users.c.street_code).where(
            users.c.name == name, users.c.disabled.is_(False)
        )
    ).first()
    if row is None:
        raise click.BadParameter(f"没有该用户 no such active user: {name!r}", param_hint="--as")
    return Actor(name, row.role, row.unit_code), row.street_code


def _scope(conn: sa.Connection, who: tuple[Actor, str | None]) -> Actor:
    """Scope the rest of the transaction as the user (row-level security); its actor."""
    from layers.queries import access

    actor, street = who
    zone = access.zone_of(actor.role, street)
    access.scope(conn, zone, unit=access.unit_of(actor.role, actor.unit))
    return actor


def _run(work: Any) -> Any:
    """`work(conn, now)` in one transaction, committed; a refusal prints every reason and
    exits 1 with nothing written."""
    from app.config import from_env
    from layers.evaluation.scoring import InputError

    engine = _engine()
    try:
        with engine.connect() as conn:
            try:
                result = work(conn, from_env().now())
            except InputError as exc:
                conn.rollback()
                click.echo(exc.message, err=True)
                for r in exc.details.get("rejected", []):
                    where = f"第 {r['row']} 行" if r.get("row") else ""
                    click.echo(f"  {where} {r.get('column') or ''}：{r['reason']}", err=True)
                sys.exit(1)
            conn.commit()
            return result
    finally:
        engine.dispose()


def _scheme(conn: sa.Connection, code: str | None) -> Any:
    from layers.evaluation.scheme import UnknownScheme, load_scheme

    try:
        return load_scheme(conn, code)
    except UnknownScheme as exc:
        raise click.ClickException(str(exc)) from None


@click.group("scores")
def scores_group() -> None:
    """Manual scores (人工评分): the assessor's XLSX template and its import."""


@scores_group.command("template")
@click.option("--unit", required=True, help="The assessing unit (区级部门代码).")
@PERIOD
@SCHEME
@click.option("--out", "out", required=True, type=click.Path(path_type=Path, dir_okay=False))
def template_cmd(unit: str, period: str, scheme: str | None, out: Path) -> None:
    """Write the unit's template: its manual items × every street, current scores filled in."""
    from layers.evaluation import xlsx

    def work(conn: sa.Connection, now: Any) -> bytes:
        return xlsx.template(conn, _scheme(conn, scheme), period, unit)

    out.write_bytes(_run(work))
    click.echo(f"已写出评分模板 template written: {out}")


Write = Callable[[sa.Connection, Any, Actor, Any], Any]


def _as_user(as_user: str, scheme: str | None, write: Write, district: bool = False) -> Any:
    """`write(conn, scheme, actor, now)` as `as_user`, scoped (row-level security) as that
    user; `district`: the district's role alone may."""

    def work(conn: sa.Connection, now: Any) -> Any:
        who = _actor(conn, as_user)
        if district and who[0].role != "district":
            raise click.ClickException(
                f"无权导入满意度调查：只有区级指挥中心可以 ({who[0].role}) district only"
            )
        chosen = _scheme(conn, scheme)
        return write(conn, chosen, _scope(conn, who), now)

    return _run(work)


@scores_group.command("import")
@file_as("The assessor who scores.")
def import_cmd(file: Path, as_user: str, period: str, scheme: str | None) -> None:
    """Import a filled template: every row written, or none."""
    from layers.evaluation import xlsx

    def write(conn: sa.Connection, chosen: Any, actor: Actor, now: Any) -> dict[str, Any]:
        data = file.read_bytes()
        return xlsx.import_scores(conn, chosen, period, data, file.name, actor, now, "cli")

    answer = _as_user(as_user, scheme, write)
    click.echo(f"已写入 {len(answer['written'])} 项，未变 {answer['unchanged']} 项 written")
    if answer["published_versions"]:
        click.echo("注意：本周期已发布，已发布的结果不变 the period is published (unchanged)")


@click.group("tasks")
def tasks_group() -> None:
    """Tasks handed to the streets (市里下达 / 部门任务)."""


@tasks_group.command("import")
@click.argument("file", type=FILE)
@click.option("--as", "as_user", required=True, help="The assessor who hands them out.")
@SCHEME
def tasks_import_cmd(file: Path, as_user: str, scheme: str | None) -> None:
    """Tasks from FILE (类型, 标题, 街道编码, 考核项编码, 截止时间, 备注): all or none."""
    from app.config import from_env
    from layers.evaluation import tasks

    ids = _as_user(
        as_user,
        scheme,
        lambda conn, chosen, actor, now: tasks.import_tasks(
            conn, file.read_bytes(), file.name, actor, now, from_env().tz, chosen
        ),
    )
    click.echo(f"已下达 {len(ids)} 项任务 tasks created")


@click.group("survey")
def survey_group() -> None:
    """The third-party satisfaction survey (满意度调查)."""


@survey_group.command("import")
@file_as("A district user.")
def survey_import_cmd(file: Path, as_user: str, period: str, scheme: str | None) -> None:
    """Import a survey's results per street (XLSX or CSV): all rows or none."""

    def write(conn: sa.Connection, chosen: Any, actor: Actor, now: Any) -> dict[str, Any]:
        from layers.evaluation.survey import import_survey

        data, name = file.read_bytes(), file.name
        return import_survey(conn, chosen, period, data, name, actor.name, now, name)

    answer = _as_user(as_user, scheme, write, district=True)
    click.echo(f"已导入 {answer['rows']} 行（{answer['streets']} 个街道） survey imported")
