"""`blockdata demo`: generate the demo district and load it."""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click
import sqlalchemy as sa

from app.config import from_env

if TYPE_CHECKING:
    from etl.jobs import RunReport


def _size_options(func: Callable[..., None]) -> Callable[..., None]:
    for option in (
        click.option("--seed", default=42, show_default=True, type=int),
        click.option("--requests", default=200_000, show_default=True, type=click.IntRange(0)),
        click.option("--cases", default=3_000, show_default=True, type=click.IntRange(0)),
        click.option("--targets", default=120, show_default=True, type=click.IntRange(0)),
        click.option("--projects", default=200, show_default=True, type=click.IntRange(0)),
    ):
        func = option(func)
    return func


@click.group()
def demo() -> None:
    """The demo district (modelled on Xicheng): generate its files, load them."""


@demo.command("generate")
@click.option("--out", required=True, type=click.Path(path_type=Path, file_okay=False))
@_size_options
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), help="Last day of the extracts.")
@click.option(
    "--now",
    type=click.DateTime(["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"]),
    help="When the later extract is taken (district time, from --end's midnight to the next); "
    "default: the next midnight, or the app's clock when --end is today.",
)
def generate_cmd(
    out: Path,
    seed: int,
    requests: int,
    cases: int,
    targets: int,
    projects: int,
    end: dt.datetime | None,
    now: dt.datetime | None,
) -> None:
    """Write boundaries and extracts to OUT; the same seed (and --now) gives the same bytes."""
    from etl.demo.extracts import DEFAULT_END
    from etl.demo.load import generate

    settings = from_env()
    last = end.date() if end else DEFAULT_END
    clock = settings.now()
    if now is None and last == clock.date():
        now = clock.replace(tzinfo=None)  # today's files hold nothing after this moment
    if now is not None and now.date() < last:
        raise click.BadParameter(
            f"不能早于 --end 当日零点 must not be before --end's midnight: {now} < {last}",
            param_hint="--now",
        )
    files = generate(
        out,
        seed=seed,
        requests=requests,
        cases=cases,
        targets=targets,
        projects=projects,
        end=last,
        progress=sys.stderr.isatty(),
        now=now,
        zone=settings.tz,
    )
    for name, path in sorted(files.items()):
        click.echo(f"{name:<24} {path}")


@demo.command("load")
@_size_options
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where to write the files (default: var/demo).",
)
@click.option("--force", is_flag=True, help="Reload even when event data is already there.")
def load_cmd(
    seed: int,
    requests: int,
    cases: int,
    targets: int,
    projects: int,
    directory: Path | None,
    force: bool,
) -> None:
    """Generate the demo district up to now, import its boundaries, run every extract.

    The main extracts end at today's midnight; the later one is taken now (the app's clock,
    in the district's time zone), so no time loaded lies in the future. Skips when the
    database already holds service requests, unless --force: then the demo sources' events
    are removed first, so that a reload never doubles them.
    """
    from app.db import engine_from_env
    from etl.demo.load import clear, generate, load

    started = time.monotonic()
    settings = from_env()
    engine = engine_from_env()
    with engine.connect() as conn:
        existing = conn.exec_driver_sql("select count(*) from service_requests").scalar_one()
    directory = directory or settings.var_dir / "demo"
    if existing and not force:
        click.echo(
            f"演示数据已存在 the database already holds {existing:,} service requests: "
            "only the units are checked (use --force to reload the demo)"
        )
        from etl.demo.load import load_units

        with engine.connect() as conn:
            _print_runs(load_units(conn, directory))
            _load_scheme(conn)
            conn.commit()
        _print_logins(engine)
        return
    click.echo(f"生成演示数据 generating the demo district into {directory} …")
    now = settings.now()  # one instant: today's date and the later extract's time
    generate(
        directory,
        seed=seed,
        requests=requests,
        cases=cases,
        targets=targets,
        projects=projects,
        end=now.date(),
        progress=sys.stderr.isatty(),
        now=now,
        zone=settings.tz,
    )
    with engine.connect() as conn:
        if force:
            clear(conn)
        report = load(
            conn,
            directory,
            progress=sys.stderr.isatty(),
            cache_dir=settings.var_dir / "cache",
            zone=settings.tz,
            now=settings.now(),
            seed=seed,
        )
        _load_scheme(conn)
        _load_inputs(conn, settings.now(), settings.tz, seed)
        _publish(conn, settings.now(), settings.tz)
        conn.commit()
    for admin in report.admin:
        click.echo(
            f"边界 {admin.level:<13} read {admin.read:>5} inserted {admin.inserted:>5} "
            f"updated {admin.updated:>5} unchanged {admin.unchanged:>5}"
        )
    _print_runs([*report.units, *report.runs])
    for line in report.life.lines():
        click.echo(line)
    from app.maintenance import cluster

    for result in cluster(engine):  # what `blockdata db maintain` does nightly
        if result.error:
            click.echo(f"{result.layer}: 未整理 not clustered ({result.error})", err=True)
    click.echo(f"演示数据已载入 demo loaded in {time.monotonic() - started:.0f} s")
    _print_logins(engine)


def _load_scheme(conn: sa.Connection) -> None:
    """The demo's evaluation scheme (etl/config/evaluation/xicheng.yaml), as
    `blockdata evaluation scheme load` stores it (unchanged: nothing new)."""
    from app.commands.evaluation import save_file
    from layers.evaluation.scheme import DEMO_SCHEME

    scheme, changed = save_file(conn, DEMO_SCHEME, by="demo")
    state = "已保存" if changed else "未变"
    click.echo(f"考评方案 {scheme.code} 第 {scheme.version} 版{state} evaluation scheme")


def _publish(conn: sa.Connection, now: dt.datetime, zone: str) -> None:
    """The district publishes each period once it is over: the demo's last two complete
    periods, published (a commander reads published periods only; two give a change of rank)."""
    from zoneinfo import ZoneInfo

    from layers.evaluation.periods import period_of, previous_period
    from layers.evaluation.publish import publications, publish
    from layers.evaluation.scheme import load_scheme

    scheme = load_scheme(conn, "xicheng")
    last = previous_period(scheme, period_of(scheme, now.astimezone(ZoneInfo(zone)).date()))
    for label in (previous_period(scheme, last), last):
        if not publications(conn, scheme.code, label):
            publish(conn, scheme, label, by="demo", now=now)
            click.echo(f"考评 {label} 已发布 evaluation published")


def _load_inputs(conn: sa.Connection, now: dt.datetime, zone: str, seed: int) -> None:
    """The demo's evaluation inputs (etl/demo/evaluation.py): scores, tasks, events, survey."""
    from etl.demo.evaluation import load_inputs
    from layers.evaluation.scheme import load_scheme

    for line in load_inputs(conn, load_scheme(conn, "xicheng"), now, zone, seed).lines():
        click.echo(line)


def _print_runs(runs: list[RunReport]) -> None:
    for run in runs:
        for line in run.lines():
            click.echo(line)


def _print_logins(engine: sa.Engine) -> None:
    from app.auth import hash_password
    from etl.demo.load import DEMO_PASSWORD, demo_users

    with engine.begin() as conn:
        accounts = demo_users(conn, hash_password(DEMO_PASSWORD))
        units = conn.exec_driver_sql("select code, name from units").all()
    names: dict[str, str] = {code: name for code, name in units}
    click.echo(f"演示账号 demo accounts (password / 密码: {DEMO_PASSWORD}):")
    commanders = [a for a in accounts if a.role == "commander"]
    for account in accounts:
        if account.role == "commander":
            continue
        where = account.unit or account.street or ""
        label = f" {names[account.unit]}" if account.unit in names else ""
        click.echo(f"  {account.name:<28} {account.role}{' ' + where if where else ''}{label}")
    if commanders:
        click.echo(
            f"  commander-<street code>      commander, one for each of the "
            f"{len(commanders)} streets (e.g. {commanders[0].name})"
        )
