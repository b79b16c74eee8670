"""`blockdata demo`: generate the demo district and load it."""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click
import sqlalchemy as sa

from app.config import from_env


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
def generate_cmd(
    out: Path,
    seed: int,
    requests: int,
    cases: int,
    targets: int,
    projects: int,
    end: dt.datetime | None,
) -> None:
    """Write boundaries and extracts to OUT; the same seed gives the same bytes."""
    from etl.demo.extracts import DEFAULT_END
    from etl.demo.load import generate

    files = generate(
        out,
        seed=seed,
        requests=requests,
        cases=cases,
        targets=targets,
        projects=projects,
        end=end.date() if end else DEFAULT_END,
        progress=sys.stderr.isatty(),
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
    """Generate the demo district up to today, import its boundaries, run every extract.

    Skips when the database already holds service requests, unless --force: then the
    demo sources' events are removed first, so that a reload never doubles them.
    """
    from app.db import engine_from_env
    from etl.demo.load import clear, generate, load

    started = time.monotonic()
    settings = from_env()
    engine = engine_from_env()
    with engine.connect() as conn:
        existing = conn.exec_driver_sql("select count(*) from service_requests").scalar_one()
    if existing and not force:
        click.echo(
            f"演示数据已存在 the database already holds {existing:,} service requests: "
            "nothing to do (use --force to reload the demo)"
        )
        _print_logins(engine)
        return
    directory = directory or settings.var_dir / "demo"
    click.echo(f"生成演示数据 generating the demo district into {directory} …")
    generate(
        directory,
        seed=seed,
        requests=requests,
        cases=cases,
        targets=targets,
        projects=projects,
        end=settings.today(),
        progress=sys.stderr.isatty(),
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
        )
        conn.commit()
    for admin in report.admin:
        click.echo(
            f"边界 {admin.level:<13} read {admin.read:>5} inserted {admin.inserted:>5} "
            f"updated {admin.updated:>5} unchanged {admin.unchanged:>5}"
        )
    for run in report.runs:
        for line in run.lines():
            click.echo(line)
    from app.maintenance import cluster

    for result in cluster(engine):  # what `blockdata db maintain` does nightly
        if result.error:
            click.echo(f"{result.layer}: 未整理 not clustered ({result.error})", err=True)
    click.echo(f"演示数据已载入 demo loaded in {time.monotonic() - started:.0f} s")
    _print_logins(engine)


def _print_logins(engine: sa.Engine) -> None:
    from app.auth import hash_password
    from etl.demo.load import DEMO_PASSWORD, demo_users

    with engine.begin() as conn:
        accounts = demo_users(conn, hash_password(DEMO_PASSWORD))
    click.echo(f"演示账号 demo accounts (password / 密码: {DEMO_PASSWORD}):")
    for name, role, street in accounts[:5]:
        click.echo(f"  {name:<22} {role}{' ' + street if street else ''}")
    click.echo(f"  … and commander-<street code> for each of the {len(accounts) - 4} streets")
