"""`blockdata tiles`: the vector tile cache."""

from __future__ import annotations

import sys
from typing import Any

import click

from app.config import from_env

ZOOMS = "10-18"


def parse_zooms(text: str) -> list[int]:
    """'10-18', '12' or '10,12,14-16' → the zooms, each 0–18."""
    zooms: set[int] = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            first, last = int(lo), int(hi or lo)
            if not 0 <= first <= last <= 18:
                raise ValueError(part)
            zooms.update(range(first, last + 1))
    except ValueError:
        raise click.BadParameter(
            f"缩放级别应为 0–18，如 10-18 或 10,12,14-16 (zooms 0–18, e.g. 10-18): {text!r}"
        ) from None
    return sorted(zooms)


@click.group("tiles")
def tiles_group() -> None:
    """矢量瓦片缓存 The vector tile cache (var/tiles, shared with `blockdata serve`)."""


@tiles_group.command("seed")
@click.option(
    "--zooms", default=ZOOMS, show_default=True, help="Zooms to seed: 10-18, 12, 10,14-16."
)
@click.option(
    "--jobs",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="Tiles built at once (PostgreSQL does the work: about one per core).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def seed_cmd(zooms: str, jobs: int, quiet: bool) -> None:
    """预热瓦片 Build every unfiltered tile over the streets into the disk cache.

    The whole district's tiles, then each street commander's, as their requests ask for
    them; tiles already there are kept. A running `blockdata serve` holds the cache's
    seeding lock (it compacts the change log every minute, and with --seed-tiles seeds the
    same way): then this command stops.
    """
    from tqdm import tqdm

    from app import create_app, db, tile_cache, tile_seed
    from app.config import resolve_database_url

    wanted = parse_zooms(zooms)
    settings = from_env()  # a CLI command: the owner's URL (the server's is the web role's)
    app = create_app(
        {"DATABASE_URL": resolve_database_url(settings), "DB_AS_OWNER": True}, settings=settings
    )
    directory = tile_cache.use_disk_cache(app)
    if directory is None:
        raise click.ClickException(
            "瓦片缓存目录不可用 the tile cache directory cannot be used (see the warning above)"
        )
    lock = tile_seed.seed_lock(directory)
    if lock is None:
        raise click.ClickException(
            f"瓦片缓存正由另一进程预热 another process (pid {tile_seed.lock_holder(directory)}) "
            f"is seeding {directory}"
        )
    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="tile", desc="预热 seed", leave=False)
        bar.update(done - bar.n)

    try:
        report = tile_seed.Seeder(app, wanted).run(
            jobs, None if quiet or not sys.stderr.isatty() else progress
        )
    finally:
        if bar is not None:
            bar.close()
        lock.close()
        engine = app.extensions.get(db.ENGINE_KEY)
        if engine is not None:
            engine.dispose()
    files, size = tile_cache.tile_cache(app).disk_usage()
    click.echo(
        f"瓦片预热完成 seeded {report.tiles:,} tiles in {report.seconds:.1f} s: "
        f"新建 built {report.built:,}, 已有 already cached {report.tiles - report.built:,}"
    )
    click.echo("缩放 zoom  全区 district  街道 commanders")
    for z in wanted:
        click.echo(f"{z:>9}  {report.district[z]:>13,}  {report.commanders[z]:>15,}")
    click.echo(f"缓存 cache {directory}: {files:,} files, {size / 2**20:,.1f} MiB")
