"""`blockdata export`: a filtered slice of a layer to a GeoJSON, CSV, GeoPackage or Parquet file."""

from __future__ import annotations

import getpass
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import click
import sqlalchemy as sa
from werkzeug.datastructures import MultiDict

from app.errors import ApiError
from layers import UnknownLayer, get_layer
from layers.accounts import users
from layers.queries import ParamError, access
from layers.queries.export import FORMATS, Progress, export_file, suffix_format
from layers.queries.slices import parse_slice

# Options that become query parameters of the same name (the API's filters).
FILTER_OPTIONS = (
    ("bbox", "范围 minx,miny,maxx,maxy (CRS84)."),
    ("datetime", "时间：时刻或 起点/终点 (RFC 3339; `..` leaves an end open)."),
    ("since", "时间下限（含） lower time bound, inclusive."),
    ("until", "时间上限（含） upper time bound, inclusive."),
    ("street", "街道代码 street code(s), comma-separated."),
    ("community", "社区代码 community code(s)."),
    ("grid", "网格编码 grid code(s)."),
    ("category", "诉求类别 category (service requests)."),
    ("status", "状态 status."),
    ("department", "承办部门 department (service requests)."),
    ("limit", "最多导出行数 at most this many rows (in key order)."),
)


def _options(fn: Callable[..., None]) -> Callable[..., None]:
    for name, text in reversed(FILTER_OPTIONS):
        fn = click.option(f"--{name}", name, help=text)(fn)
    return fn


@click.command("export")
@click.argument("layer")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The file to write (replaced only when the export succeeds).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="Default: from the file name (.geojson .csv .gpkg .parquet).",
)
@_options
@click.option(
    "--filter",
    "extra",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Any other filterable field, e.g. --filter channel=12345热线 (repeatable).",
)
@click.option("--as", "as_user", help="Export what this user may see (role and zone).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def export_cmd(
    layer: str,
    output: Path,
    fmt: str | None,
    extra: tuple[str, ...],
    as_user: str | None,
    quiet: bool,
    **filters: str | None,
) -> None:
    """Export LAYER, filtered like the API, with its provenance (filter, time, row count).

    \b
    blockdata export service_requests --street 110102009 --since 2026-11-01 -o x.geojson
    blockdata export service_requests --category 噪声扰民,施工扰民 -o noise.csv
    blockdata export grids -o grids.gpkg
    """
    from app.config import from_env
    from app.db import engine_from_env

    fmt = fmt or suffix_format(output)
    if fmt is None:
        raise click.UsageError(f"give --format: {output.name!r} has no known suffix")
    try:
        source = get_layer(layer)
    except UnknownLayer as exc:
        raise click.BadParameter(str(exc), param_hint="LAYER") from None
    args: MultiDict[str, str] = MultiDict((k, v) for k, v in filters.items() if v is not None)
    for item in extra:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected FIELD=VALUE: {item!r}", param_hint="--filter")
        args.add(name.strip(), value)
    engine = engine_from_env()
    try:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            who = f"cli:{getpass.getuser()}"
            role = None
            if as_user is not None:
                row = conn.execute(
                    sa.select(users.c.role, users.c.street_code).where(
                        users.c.name == as_user, users.c.disabled.is_(False)
                    )
                ).first()
                if row is None:
                    raise click.BadParameter(f"no such active user: {as_user!r}", param_hint="--as")
                from app import capabilities
                from app.api import features  # the same declaration as the export endpoint's

                need = capabilities.need_of(features)
                reason = capabilities.refusal(row.role, need, {"layer": source.name})
                if reason is not None:
                    raise click.ClickException(f"{as_user} ({row.role}): {reason}")
                zone = access.zone_of(row.role, row.street_code)
                who, role = as_user, row.role
            try:
                settings = from_env()
                chosen = parse_slice(source, args, zone=settings.zone)
                if as_user is not None:
                    access.scope(conn, zone)
                prov = export_file(
                    conn,
                    chosen,
                    fmt,
                    output,
                    who,
                    now=settings.now(),
                    progress=None if quiet else _bar(output),
                )
            except (ApiError, ParamError) as exc:
                raise click.UsageError(exc.message) from None
            conn.exec_driver_sql("reset role")
            access.audit(
                conn,
                user_name=who,
                role=role,
                action="export",
                path=shlex.join(["blockdata", "export", *sys.argv[2:]])[:2000],
                filters={"layer": source.name, "format": fmt, "filters": chosen.filters},
                rows=prov["rows"],
            )
            conn.commit()
    finally:
        engine.dispose()
    click.echo(f"已导出 exported {prov['rows']} rows of {source.name} to {output} ({fmt})")


def _bar(output: Path) -> Callable[[int], Progress]:
    from tqdm import tqdm

    def make(total: int) -> Progress:
        bar = tqdm(total=total, unit="行", unit_scale=True, desc=output.name, file=sys.stderr)
        if total == 0:
            bar.close()

        def advance(n: int) -> None:
            bar.update(n)
            if bar.n >= total:
                bar.close()

        return advance

    return make
