"""Seeding the tile cache: every unfiltered tile of zooms 10–18 over the streets, built ahead
of the requests, and rebuilt where the data changed.

A pass builds, per seeded layer (`seeded=True` in the registry), the tiles of `WARM_ZOOMS`
that intersect a street, first for the whole district (zone '*'), then for each street's
commander (zone = the street code: only the tiles intersecting that street) — each through
the same statements a request of that user runs (`db.scope` with the tile's version columns,
then `layers.queries.tiles.prepare_tile` on that connection; no request), so its key is the
key that user's request will ask for. A tile whose file is there already costs its version
statement and a stat. Tiles go to the disk cache only (`TileCache.seed`):
the in-process LRU keeps the tiles in use.

The first pass visits every tile. A later one visits only the tiles whose area holds a
change since the previous pass that their zone sees — the level-18 sums of `tile_changes`
(migrations 0008, 0009) per street that differ, mapped back to the tiles of each zoom whose
buffered area reads them: every street's for the district, their own street's for a
commander — and the tiles whose files the disk bound swept away; every tile again when a
layer's epoch, its aggregates' staleness or the streets changed. Each pass first compacts
the change log. A swept tile is seeded again only while the seeded tiles fit in `FIT` of the
disk bound; beyond it, re-seeding would sweep others every minute, so they wait to be asked
for (and a warning says to raise `TILE_CACHE_DISK_BYTES`).

Seeding is opt-in: `blockdata tiles seed`, or `blockdata serve --seed-tiles`. By default
the server builds a tile when it is first asked for and keeps it (no built-in page asks for
tiles; seeding every tile of the district for every zone cost two minutes of CPU at start).
In a server (`start_warming`), one process keeps the cache: the one holding the lock file
of the cache directory (fcntl); the others read its files, and take over if it exits. It
compacts the change log every minute and records each round in `seeded.json` in that
directory; with `--seed-tiles` it seeds in the same rounds, a tile at a time and only while
its process serves no request (`Activity`), so the first users do not wait for it.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from flask import Flask

from app import db, tile_cache, tiles
from layers import get_layer
from layers.changes import CHANGE_LEVELS
from layers.queries import tiles as qtiles
from layers.registry import seeded_layers

WARM_ZOOMS = range(10, 19)
WARM_EVERY = 60.0  # seconds between passes
LOCK_FILE = "seed.lock"
FIT = 0.8  # the seeded tiles may take this share of the disk bound
DISTRICT = "*"
TOP = CHANGE_LEVELS.stop - 1  # the finest level of the change log

Tile = tuple[int, int]
# zone → zoom → tiles
TileSet = dict[str, dict[int, list[Tile]]]

# Per zoom: each street's tiles whose envelope intersects the street (from the tile range of
# its box; a tile's envelope in degrees, as qtiles.tile_bounds computes it).
_STREET_TILES = sa.text(
    """
    with s as (
        select code, geom,
               floor((ST_XMin(geom) + 180) / 360 * :n)::int x0,
               floor((ST_XMax(geom) + 180) / 360 * :n)::int x1,
               floor((1 - asinh(tan(radians(ST_YMax(geom)))) / pi()) / 2 * :n)::int y0,
               floor((1 - asinh(tan(radians(ST_YMin(geom)))) / pi()) / 2 * :n)::int y1
          from streets
    )
    select s.code, x, y
      from s, generate_series(s.x0, s.x1) x, generate_series(s.y0, s.y1) y
     where ST_Intersects(s.geom, ST_MakeEnvelope(
               x::float8 / :n * 360 - 180,
               degrees(atan(sinh(pi() * (1 - 2 * (y + 1)::float8 / :n)))),
               (x + 1)::float8 / :n * 360 - 180,
               degrees(atan(sinh(pi() * (1 - 2 * y::float8 / :n)))),
               4326))
     order by s.code, x, y
    """
)

# Merge each tile's rows of the change log into one per street, their sum kept: a version
# read before or after sees the same sums. Rows appended meanwhile are not in the statement's
# snapshot and stay; a concurrent compaction merges only the rows it deleted itself.
_COMPACT = sa.text(
    """
    with merged as (
        delete from tile_changes t
         using (select layer, level, x, y, street_code from tile_changes
                 group by 1, 2, 3, 4, 5 having count(*) > 1) d
         where (t.layer, t.level, t.x, t.y) = (d.layer, d.level, d.x, d.y)
           and t.street_code is not distinct from d.street_code
        returning t.layer, t.level, t.x, t.y, t.street_code, t.n
    ), added as (
        insert into tile_changes (layer, level, x, y, street_code, n)
        select layer, level, x, y, street_code, sum(n) from merged group by 1, 2, 3, 4, 5
        returning 1
    )
    select (select count(*) from merged) - (select count(*) from added)
    """
)
_COMPACT_LOCK = sa.select(sa.func.pg_try_advisory_xact_lock(sa.func.hashtext("tile_changes")))

_SUMS = sa.text(
    "select x, y, street_code, sum(n) from tile_changes where layer = :layer and level = :level "
    "group by x, y, street_code"
)
_EPOCH = sa.text("select epoch from tile_epochs where layer = :layer")


def street_tiles(conn: sa.Connection, zooms: Iterable[int]) -> TileSet:
    """The tiles to seed: zone '*' → every tile intersecting a street; each street code →
    the tiles intersecting that street."""
    out: TileSet = {DISTRICT: {}}
    for z in zooms:
        district: set[Tile] = set()
        for code, x, y in conn.execute(_STREET_TILES, {"n": 2**z}):
            out.setdefault(code, {}).setdefault(z, []).append((x, y))
            district.add((x, y))
        out[DISTRICT][z] = sorted(district)
    return out


def compact_changes(conn: sa.Connection) -> int:
    """Merge the change log's rows tile by tile (unless another compaction runs); the number
    of rows fewer."""
    if not conn.execute(_COMPACT_LOCK).scalar_one():
        return 0
    return int(conn.execute(_COMPACT).scalar_one())


def affected(z: int, changed: Iterable[Tile]) -> set[Tile]:
    """The tiles of zoom z (≤ 18) whose buffered area holds one of the `changed` level-18
    tiles of the change log (as `qtiles.change_area` reads it)."""
    level = qtiles.change_level(z)
    shift, scale, top = TOP - level, 2 ** (level - z), 2**z - 1
    out: set[Tile] = set()
    for cx, cy in {(x >> shift, y >> shift) for x, y in changed}:
        for x in range(max(cx // scale - 1, 0), min(cx // scale + 1, top) + 1):
            for y in range(max(cy // scale - 1, 0), min(cy // scale + 1, top) + 1):
                _, x0, x1, y0, y1 = qtiles.change_area(z, x, y)
                if x0 <= cx <= x1 and y0 <= cy <= y1:
                    out.add((x, y))
    return out


@dataclass
class SeedReport:
    """What a pass did: tiles visited per zone kind and zoom, how many it built."""

    full: bool = False
    district: Counter[int] = field(default_factory=Counter)
    commanders: Counter[int] = field(default_factory=Counter)
    built: int = 0
    compacted: int = 0
    seconds: float = 0.0
    bytes: int = 0  # the seeded tiles' files on disk after the pass
    fits: bool = True  # those within FIT of the disk bound

    @property
    def tiles(self) -> int:
        return sum(self.district.values()) + sum(self.commanders.values())


@dataclass(frozen=True)
class _State:
    """What a pass saw of a layer: its epoch, whether its aggregates were stale, the sums of
    its change log per level-18 tile."""

    epoch: str | None
    stale: bool | None
    sums: dict[tuple[int, int, str | None], int]  # (x, y, street) → changes


class Seeder:
    """Seeds `app`'s tile cache; remembers between passes what it saw and built."""

    def __init__(
        self, app: Flask, zooms: Iterable[int] = WARM_ZOOMS, layers: Iterable[str] | None = None
    ) -> None:
        self.app = app
        self.zooms = sorted(set(zooms))
        if any(not 0 <= z <= TOP for z in self.zooms):
            raise ValueError(f"zooms must be 0–{TOP}: {self.zooms}")
        self.layers = [get_layer(name) for name in (seeded_layers() if layers is None else layers)]
        self.cache = tile_cache.tile_cache(app)
        self.tz: str = app.config["BLOCKDATA_SETTINGS"].tz
        self._streets: str | None = None
        self._tiles: TileSet = {}
        self._states: dict[str, _State] = {}
        self._keys: dict[tuple[str, str, int, int, int], str] = {}
        self._lock = threading.Lock()
        # Whether the seeded tiles fit the disk bound (with room for the tiles requests
        # build): if not, a tile the sweep removed is not built again by the next pass —
        # that would sweep another, every minute, for ever — but when it is asked for.
        self.fits = True

    def run(
        self,
        jobs: int = 1,
        progress: Callable[[int, int], None] | None = None,
        pause: Callable[[], None] | None = None,
    ) -> SeedReport:
        """One pass (see the module docstring) with `jobs` threads building; `progress` is
        told (tiles done, tiles to do) as it goes; `pause` is called before each tile (the
        server's seeding waits there while requests are served)."""
        started = time.monotonic()
        report = SeedReport()
        with self.app.app_context():
            report.compacted = compact_changes(db.connection())
        with self.app.app_context():
            conn = db.connection()
            streets = qtiles.data_version(conn, get_layer("streets"))
            if streets != self._streets:
                self._tiles = street_tiles(conn, self.zooms)
            states = {layer.name: self._state(conn, layer.name) for layer in self.layers}
        work: list[tuple[str, str, int, int, int]] = []
        full = streets != self._streets
        for layer in self.layers:
            new, old = states[layer.name], self._states.get(layer.name)
            if full or old is None or (new.epoch, new.stale) != (old.epoch, old.stale):
                report.full = True
                work += self._everything(layer.name)
            else:
                work += self._changed(layer.name, old, new)
        for item in work:
            counter = report.district if item[1] == DISTRICT else report.commanders
            counter[item[2]] += 1
        done = 0

        def one(item: tuple[str, str, int, int, int]) -> bool:
            nonlocal done
            if pause is not None:
                pause()
            built = self._seed(item)
            if progress is not None:
                with self._lock:
                    done += 1
                    progress(done, len(work))
            return built

        if jobs > 1:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                report.built = sum(pool.map(one, work))
        else:
            report.built = sum(map(one, work))
        self._streets = streets
        self._states = states
        report.bytes = self._seeded_bytes()
        self.fits = report.bytes <= FIT * self.cache.disk_bytes
        report.fits = self.fits
        report.seconds = time.monotonic() - started
        return report

    def _seeded_bytes(self) -> int:
        """The size of the seeded tiles' files that are on disk now."""
        if self.cache.directory is None:
            return 0
        total = 0
        for key in set(self._keys.values()):
            try:
                total += self.cache.file_size(key)
            except OSError:
                continue
        return total

    def _state(self, conn: sa.Connection, layer: str) -> _State:
        epoch = conn.execute(_EPOCH, {"layer": layer}).scalar()
        stale = None
        if get_layer(layer).cell_tables is not None:
            stale = conn.exec_driver_sql("select exists (select from request_dirty_days)").scalar()
        sums = {
            (x, y, street): int(n)
            for x, y, street, n in conn.execute(_SUMS, {"layer": layer, "level": TOP})
        }
        return _State(epoch, stale, sums)

    def _everything(self, layer: str) -> list[tuple[str, str, int, int, int]]:
        return [
            (layer, zone, z, x, y)
            for zone, by_zoom in self._tiles.items()
            for z in self.zooms
            for x, y in by_zoom.get(z, [])
        ]

    def _changed(
        self, layer: str, old: _State, new: _State
    ) -> list[tuple[str, str, int, int, int]]:
        changed = [t for t, n in new.sums.items() if old.sums.get(t) != n]
        changed += [t for t in old.sums if t not in new.sums]
        # The district sees every change; a commander those of their street (layers.queries.tiles).
        where: dict[str, list[Tile]] = {DISTRICT: [(x, y) for x, y, _ in changed]}
        for x, y, street in changed:
            if street is not None:
                where.setdefault(street, []).append((x, y))
        hit = {zone: {z: affected(z, tiles_) for z in self.zooms} for zone, tiles_ in where.items()}
        work = []
        for zone, by_zoom in self._tiles.items():
            for z in self.zooms:
                for x, y in by_zoom.get(z, []):
                    item = (layer, zone, z, x, y)
                    key = self._keys.get(item)
                    swept = self.fits and key is not None and not self.cache.has(key)
                    if (x, y) in hit.get(zone, {}).get(z, ()) or key is None or swept:
                        work.append(item)
        return work

    def _seed(self, item: tuple[str, str, int, int, int]) -> bool:
        """Build one tile as its zone's user would ask for it, unless its file is there."""
        name, zone, z, x, y = item
        layer = get_layer(name)
        with self.app.app_context():
            db.scope(zone, extra=qtiles.version_columns(layer, (z, x, y), self.tz))
            prepared = qtiles.prepare_tile(
                db.connection(),
                layer,
                (z, x, y),
                {},
                tz=self.tz,
                max_raw=tiles.max_raw_points(),
                scoped=tiles.scoped(),
            )
            built = self.cache.seed(prepared.key, prepared.build)
        with self._lock:
            self._keys[item] = prepared.key
        return built


def warm(app: Flask, zooms: Iterable[int] = WARM_ZOOMS, jobs: int = 1) -> SeedReport:
    """One full seeding pass of `app`'s tile cache."""
    return Seeder(app, zooms).run(jobs)


def seed_lock(directory: Path) -> IO[str] | None:
    """The seeding lock of a cache directory, held while the returned file stays open (its
    content: the holder's pid); None when another process holds it."""
    handle = (directory / LOCK_FILE).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def lock_holder(directory: Path) -> str:
    """The pid written in the lock file ('' when none)."""
    try:
        return (directory / LOCK_FILE).read_text().strip()
    except OSError:
        return ""


STATUS = "seeded.json"


def _record(directory: Path, report: SeedReport | None, compacted: int = 0) -> None:
    """The last pass, in `seeded.json` in the cache directory (written whole, then renamed):
    when it finished and what it did — for operators, and for the bench and the tests to
    wait for. Without a report, the pass only compacted the change log (no seeding)."""
    status: dict[str, Any] = {"finished_at": time.time(), "pid": os.getpid()}
    if report is None:
        status.update(seeding=False, tiles=0, built=0, compacted=compacted)
    else:
        status.update(
            seeding=True,
            tiles=report.tiles,
            built=report.built,
            full=report.full,
            seconds=round(report.seconds, 3),
            bytes=report.bytes,
            fits=report.fits,
            compacted=report.compacted,
        )
    temporary = directory / f"{STATUS}.{os.getpid()}.tmp"
    try:
        temporary.write_text(json.dumps(status), encoding="utf-8")
        os.replace(temporary, directory / STATUS)
    except OSError:
        temporary.unlink(missing_ok=True)


class Activity:
    """WSGI middleware counting the requests an app is serving, for the seeding to give way:
    `pause()` returns once the app has answered its first request (or `first_after` seconds
    passed) and serves none right now."""

    def __init__(self, wsgi_app: Any, first_after: float = WARM_EVERY) -> None:
        self.wsgi_app = wsgi_app
        self.first_after = first_after
        self.started = time.monotonic()
        self.answered = 0
        self.serving = 0
        self._changed = threading.Condition()

    def __call__(self, environ: Any, start_response: Any) -> Any:
        with self._changed:
            self.serving += 1
        try:
            return self.wsgi_app(environ, start_response)
        finally:
            with self._changed:
                self.serving -= 1
                self.answered += 1
                self._changed.notify_all()

    def pause(self) -> None:
        with self._changed:
            while True:
                first = self.answered or time.monotonic() - self.started >= self.first_after
                if first and not self.serving:
                    return
                self._changed.wait(timeout=0.5)


def start_warming(app: Flask, every: float = WARM_EVERY, seed: bool = False) -> threading.Thread:
    """Keep `app`'s tile cache in order in a daemon thread, in one process per cache
    directory (the others wait for the lock, in case its holder exits): compact the change
    log now, then every `every` seconds.

    With `seed` (`blockdata serve --seed-tiles`) each round also seeds (zooms
    `TILE_WARM_ZOOMS`, default 10–18): at the lowest priority, a tile at a time, only while
    this process serves no request, and not before it has answered its first (`Activity`).
    Without it (the default) tiles are built when they are asked for, and kept.
    """
    seeder = Seeder(app, app.config.get("TILE_WARM_ZOOMS", WARM_ZOOMS))
    directory = seeder.cache.directory
    if seed and directory is None:
        app.logger.warning("tiles: no disk cache, so no seeding: tiles are built when asked for")
        seed = False
    activity = Activity(app.wsgi_app, first_after=every)
    if seed:  # the requests are counted only for the seeding to give way
        app.wsgi_app = activity  # type: ignore[method-assign]

    def once() -> None:
        if not seed:
            with app.app_context():
                compacted = compact_changes(db.connection())
            if directory is not None:
                _record(directory, None, compacted)
            return
        report = seeder.run(pause=activity.pause)
        if directory is not None:
            _record(directory, report)
        if not report.fits:
            app.logger.warning(
                "tiles: the seeded tiles take %d MB, over %d%% of TILE_CACHE_DISK_BYTES (%d MB): "
                "tiles swept away are rebuilt when asked for, not by the seeder; raise the bound",
                report.bytes // 2**20,
                int(FIT * 100),
                seeder.cache.disk_bytes // 2**20,
            )
        if report.full or report.built:
            app.logger.info(
                "tiles: %d tiles of zooms %d–%d seeded (%d built, %s) in %.1f s",
                report.tiles,
                seeder.zooms[0],
                seeder.zooms[-1],
                report.built,
                "full pass" if report.full else "changed areas",
                report.seconds,
            )

    def loop() -> None:
        lock: Any = None
        while True:
            if directory is not None and lock is None:
                try:
                    lock = seed_lock(directory)
                except OSError as exc:  # the directory went away or read-only meanwhile
                    app.logger.warning("tiles: cannot lock %s: %s", directory, exc)
                if lock is None:
                    time.sleep(every)
                    continue
            try:
                once()
            except Exception:  # the database restarting, say: the next round tries again
                app.logger.exception("tiles: seeding failed")
            time.sleep(every)

    thread = threading.Thread(target=loop, name="tiles-seed", daemon=True)
    thread.start()
    return thread
