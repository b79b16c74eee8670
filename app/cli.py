"""`blockdata`: the command line. Commands own their transactions."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import click

from app.config import ConfigError, Settings, from_env, resolve_database_url
from app.pgcluster import Cluster, ClusterError

if TYPE_CHECKING:
    from flask import Flask


def _settings() -> Settings:
    try:
        return from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _database_url(settings: Settings) -> str:
    try:
        return resolve_database_url(settings)
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from exc


class _Commands(click.Group):
    """The command groups of app/commands, imported only when one is run (or --help lists
    them): `blockdata export` need not load GDAL, geopandas and the ETL to start."""

    LAZY: ClassVar[dict[str, tuple[str, str]]] = {
        "admin": ("app.commands.admin", "admin"),
        "audit": ("app.commands.users", "audit_cmd"),
        "demo": ("app.commands.demo", "demo"),
        "etl": ("app.commands.etl", "etl"),
        "evaluation": ("app.commands.evaluation", "evaluation_group"),
        "export": ("app.commands.export", "export_cmd"),
        "gazetteer": ("app.commands.gazetteer", "gazetteer_group"),
        "geocode": ("app.commands.gazetteer", "geocode"),
        "scores": ("app.commands.evaluation_inputs", "scores_group"),
        "survey": ("app.commands.evaluation_inputs", "survey_group"),
        "tasks": ("app.commands.evaluation_inputs", "tasks_group"),
        "report": ("app.commands.report", "report_group"),
        "tiles": ("app.commands.tiles", "tiles_group"),
        "units": ("app.commands.units", "units_group"),
        "users": ("app.commands.users", "users_group"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.LAZY:
            import importlib

            module, attr = self.LAZY[name]
            command: click.Command = getattr(importlib.import_module(module), attr)
            return command
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> object:
        """A database that is not running or not migrated gets a clear message, not a trace."""
        import sqlalchemy.exc as sa_exc

        try:
            return super().invoke(ctx)
        except (sa_exc.OperationalError, sa_exc.ProgrammingError) as exc:
            hint = _database_hint(exc.orig)
            if hint is None:
                raise
            raise click.ClickException(f"{hint} ({str(exc.orig).splitlines()[0]})") from exc


def _database_hint(error: BaseException | None) -> str | None:
    import psycopg.errors

    if isinstance(error, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedFunction):
        return (
            "数据库尚未建表或版本过旧 the schema is missing or out of date: "
            "run `blockdata db upgrade`"
        )
    if isinstance(error, psycopg.OperationalError):
        return (
            "无法连接数据库 cannot reach the database: start it with `blockdata db start` "
            "or check DATABASE_URL"
        )
    return None


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Blockdata 地区块数据中心: ETL, PostGIS and the map server."""


@main.group()
def db() -> None:
    """The database: managed cluster and schema migrations."""


def _managed(settings: Settings, action: str) -> Cluster | None:
    if settings.database_url:
        click.echo(f"DATABASE_URL is set: the managed cluster is not used ({action} skipped).")
        return None
    return Cluster.from_settings(settings)


@db.command("start")
def db_start() -> None:
    """Start the managed cluster under var/pg (initialising it on first use)."""
    cluster = _managed(_settings(), "start")
    if cluster is None:
        return
    try:
        cluster.start()
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from exc
    info = cluster.status()
    click.echo(f"数据库已启动 database running on 127.0.0.1:{info['port']} ({info['datadir']})")


@db.command("stop")
def db_stop() -> None:
    """Stop the managed cluster; its data stays in var/pg."""
    cluster = _managed(_settings(), "stop")
    if cluster is None:
        return
    try:
        cluster.stop()
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("数据库已停止 database stopped")


@db.command("destroy")
@click.option("--yes", is_flag=True, help="Do not ask.")
def db_destroy(yes: bool) -> None:
    """Stop the managed cluster and DELETE its data (var/pg; as root /var/lib/blockdata/<key>)."""
    cluster = _managed(_settings(), "destroy")
    if cluster is None:
        return
    if not yes:
        click.confirm(f"删除数据库 delete the managed cluster of {cluster.var_dir}?", abort=True)
    try:
        removed = cluster.destroy()
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from exc
    for path in removed:
        click.echo(f"已删除 removed {path}")


@db.command("status")
def db_status() -> None:
    """Say whether the database runs; exit 0 when it does, 1 when it does not."""
    settings = _settings()
    if settings.database_url:
        import sqlalchemy as sa

        from app.db import make_engine

        engine = make_engine(settings.database_url, poolclass=sa.pool.NullPool, tz=settings.tz)
        try:
            with engine.connect() as conn:
                version = conn.exec_driver_sql("show server_version").scalar_one()
            click.echo(json.dumps({"external": True, "running": True, "version": version}))
        except Exception as exc:
            click.echo(json.dumps({"external": True, "running": False, "error": str(exc)}))
            sys.exit(1)
        return
    info = Cluster.from_settings(settings).status()
    click.echo(json.dumps(info, ensure_ascii=False, indent=2))
    sys.exit(0 if info["running"] else 1)


@db.command("url")
def db_url() -> None:
    """Print the libpq URL of the database (psql accepts it)."""
    click.echo(_database_url(_settings()))


@db.command("psql", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def db_psql(args: tuple[str, ...]) -> None:
    """Open psql on the database (its session in the district's time zone, BLOCKDATA_TZ)."""
    settings = _settings()
    url = _database_url(settings)
    os.environ["PGTZ"] = settings.tz
    os.execvp("psql", ["psql", url, *args])


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate the schema up to REVISION (default: head), then give the web role its login."""
    from app import migrate

    settings = _settings()
    url = _database_url(settings)
    migrate.upgrade(migrate.alembic_config(url), revision)
    click.echo(f"schema upgraded to {revision}")
    try:
        role = migrate.ensure_web_role(url, settings)
    except (migrate.WebRoleError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from exc
    if role is not None:
        click.echo(f"Web 角色就绪 the map server logs in as {role} (password in var/)")
    elif settings.web_database_url:
        click.echo("BLOCKDATA_WEB_DATABASE_URL is set: the web role is left as it is.")
    else:
        click.echo(
            "注意 the owner may not manage roles (or the schema predates the web role): "
            "`serve` needs BLOCKDATA_WEB_DATABASE_URL",
            err=True,
        )


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Migrate the schema down to REVISION ('base' drops every table)."""
    from app import migrate

    migrate.downgrade(migrate.alembic_config(_database_url(_settings())), revision)
    click.echo(f"schema downgraded to {revision}")


@db.command("current")
def db_current() -> None:
    """Print the schema revision the database is at."""
    import sqlalchemy as sa

    from app import migrate
    from app.db import make_engine

    engine = make_engine(_database_url(_settings()), poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        click.echo(migrate.current(conn) or "base")


@db.command("rebuild-aggregates")
def db_rebuild_aggregates() -> None:
    """Rebuild the request aggregates in the district's time zone (BLOCKDATA_TZ): needed
    after the zone changed; until then loads refuse and the pages answer 503."""
    import sqlalchemy as sa

    from app.db import make_engine
    from etl.aggregates import aggregates_zone, refresh_request_aggregates

    settings = _settings()
    engine = make_engine(_database_url(settings), poolclass=sa.pool.NullPool, tz=settings.tz)
    with engine.connect() as conn:
        before = aggregates_zone(conn)
        report = refresh_request_aggregates(conn, full=True, zone=settings.tz)
        conn.commit()
    rows = sum(report.rows.values())
    click.echo(
        f"诉求聚合已按 {settings.tz} 重建 request aggregates rebuilt in {settings.tz} "
        f"(were {before}): {rows:,} rows, {report.seconds:.1f} s"
    )


@db.command("maintain")
@click.option("--layer", "names", multiple=True, help="only this layer (repeatable)")
def db_maintain(names: tuple[str, ...]) -> None:
    """Rewrite the point layers in spatial order (CLUSTER on the GiST index) and prune the
    audit log past its retention (BLOCKDATA_AUDIT_RETENTION_DAYS), nightly."""
    import sqlalchemy as sa

    from app.db import make_engine
    from app.maintenance import cluster, prune
    from layers import UnknownLayer, get_layer

    try:
        chosen = [get_layer(n) for n in names] or None
    except UnknownLayer as unknown:
        raise click.UsageError(str(unknown)) from None
    settings = _settings()
    engine = make_engine(_database_url(settings), poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        pruned = prune(conn, settings.audit_retention_days)
    click.echo(
        f"审计日志: 已清理 {pruned.audit_rows} 行 (audit rows older than "
        f"{settings.audit_retention_days} days pruned), {pruned.sessions} session(s), "
        f"{pruned.login_attempts} login attempt(s)"
    )
    failed = False
    for result in cluster(engine, chosen):
        if result.error:
            failed = True
            click.echo(f"{result.layer}: 未整理 not clustered ({result.error})", err=True)
        else:
            click.echo(
                f"{result.layer}: 已按空间顺序重写 {result.rows:,} 行, {result.seconds:.1f} s "
                "(clustered on its geometry index)"
            )
    if failed:
        raise SystemExit(1)


@main.command("layers")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def layers_cmd(as_json: bool) -> None:
    """List the layers of the registry."""
    from layers import LAYERS

    if as_json:
        rows = [
            {
                "name": layer.name,
                "title": layer.title,
                "geometry_type": layer.geometry_type,
                "time_field": layer.time_field,
                "fields": [
                    {"name": f.name, "label": f.label, "filterable": f.filterable}
                    for f in layer.published
                ],
            }
            for layer in LAYERS
        ]
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for layer in LAYERS:
        filters = ",".join(f.name for f in layer.filterable)
        click.echo(
            f"{layer.name:<20} {layer.title:<8}\t{layer.geometry_type:<12} "
            f"time={layer.time_field or '-'}\tfilters={filters}"
        )


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int, help="Threads per process.")
@click.option(
    "--workers",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="Processes, started and watched by gunicorn, each serving with waitress; 1: "
    "waitress alone, in this process. Two serve cached tiles about twice as fast as one on "
    "two cores (docs/benchmarks.md).",
)
@click.option(
    "--seed-tiles/--no-seed-tiles",
    default=False,
    show_default=True,
    help="Seed the tile cache in the background (every tile of --seed-zooms over the "
    "streets, then every minute where the data changed), at the lowest priority: after the "
    "first request, and only while no request is being served. Off: tiles are built when "
    "asked for, and kept in var/tiles.",
)
@click.option(
    "--seed-zooms",
    default="10-18",
    show_default=True,
    help="The zooms --seed-tiles seeds: 10-18, 12, 10,14-16.",
)
def serve(
    host: str, port: int, threads: int, workers: int, seed_tiles: bool, seed_zooms: str
) -> None:
    """Serve the map server: waitress in --workers processes managed by gunicorn (1: waitress
    alone)."""
    from app import create_app
    from app.commands.tiles import parse_zooms
    from app.config import resolve_web_database_url

    settings = _settings()
    zooms = parse_zooms(seed_zooms)
    try:  # refuse to serve as the owner, or without knowing how to log in
        resolve_web_database_url(settings)
    except (ConfigError, ClusterError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Blockdata 地图服务 http://{host}:{port}/")
    run_server(
        lambda: create_app({"TILE_WARM_ZOOMS": zooms}, settings=settings),
        host=host,
        port=port,
        threads=threads,
        workers=workers,
        seed_tiles=seed_tiles,
    )


WAITRESS_WORKER = "app.serving.WaitressWorker"


def run_server(
    factory: Callable[[], Flask],
    *,
    host: str,
    port: int,
    threads: int,
    workers: int = 1,
    seed_tiles: bool = False,
    quiet: bool = False,
    worker_class: str = WAITRESS_WORKER,
) -> None:
    """Serve the app `factory` builds until stopped.

    One worker: waitress, `threads` threads in this process (one GIL). More: gunicorn's
    process management, `workers` processes each serving with waitress and `threads`
    threads (`app.serving`; `worker_class="gthread"` gives gunicorn's own threaded worker,
    for comparison), each building its own app — its own connection pool and in-memory tile
    cache. waitress's I/O loop sends every response out of a buffer, so a client reading
    slowly holds no thread. The tiles they build go to the instance's tile directory too
    (`tile_cache.use_disk_cache`: var/tiles, bounded, kept across restarts; keyed by the data
    version, so correct in every process and after any reload; without it if it cannot be
    written). Every process starts the tiles' upkeep thread (`tile_seed.start_warming`); the
    one holding the directory's lock compacts the tiles' change log every minute and, with
    `seed_tiles`, seeds the cache when no request is being served.
    """
    import logging

    from app import serving, tile_cache, tile_seed

    def prepared() -> Flask:
        app = factory()
        if not quiet:
            app.logger.setLevel(logging.INFO)  # the seeding's reports
        tile_cache.use_disk_cache(app)  # or, with a warning, none
        tile_seed.start_warming(app, seed=seed_tiles)
        return app

    if workers <= 1:
        from waitress import serve as waitress_serve

        waitress_serve(
            prepared(), host=host, port=port, _quiet=quiet, **serving.adjustments(threads)
        )
        return

    from gunicorn.app.base import BaseApplication

    class Gunicorn(BaseApplication):
        def load_config(self) -> None:
            options = {
                "bind": f"{host}:{port}",
                "workers": workers,
                "threads": threads,
                "worker_class": worker_class,
                "loglevel": "warning" if quiet else "info",
                "control_socket_disable": True,  # gunicorn 27's socket in ~: unused here
            }
            for name, value in options.items():
                self.cfg.set(name, value)

        def load(self) -> Flask:  # in each worker, after the fork
            return prepared()

    Gunicorn().run()


if __name__ == "__main__":
    main()
