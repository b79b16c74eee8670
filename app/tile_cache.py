"""The built vector tiles of a server process: in memory, and on disk shared by the processes.

Built tiles are kept in a small in-process LRU keyed by their digest (concurrent misses of
one tile wait for one build) and, with `use_disk_cache` (the server, `blockdata tiles
seed`), in the instance's var/tiles: bounded (`TILE_CACHE_DISK_BYTES`, 1 GiB), shared by the
server's processes, kept across restarts; the key holds the caller's zone, so a tile built
for one zone is never served to another. `app.tile_seed` fills the disk cache ahead of the
requests (`blockdata tiles seed`, `blockdata serve --seed-tiles`).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from flask import Flask, current_app
from flask.sansio.app import App

CACHE_KEY = "blockdata.tiles"
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024  # in each process
DEFAULT_DISK_BYTES = 1024**3  # on disk, shared by the processes and kept across restarts


class TileCache:
    """A byte-bounded LRU of built tiles; concurrent misses of one key wait for one build.

    With a `directory` (`share`), built tiles are kept there too, one file per key, bounded
    by `disk_bytes` (the least recently read or written out first): the server's processes
    read the tiles any of them built or the seeder (`app.tile_seed`) built ahead of them,
    and the files outlive the server. Keys hold the layer's epoch, which is random per
    database, so the files of another database are never taken for this one's.
    """

    def __init__(
        self, max_bytes: int, directory: Path | None = None, disk_bytes: int = DEFAULT_DISK_BYTES
    ) -> None:
        self.max_bytes = max_bytes
        self.directory = directory
        self.disk_bytes = disk_bytes
        self._items: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self._building: dict[str, threading.Event] = {}
        self._written = 0

    def get(self, key: str, build: Callable[[], tuple[bytes, str]]) -> tuple[bytes, str]:
        data, kind, _ = self.lookup(key, build)
        return data, kind

    def lookup(self, key: str, build: Callable[[], tuple[bytes, str]]) -> tuple[bytes, str, str]:
        """(tile, kind, where it came from: "memory", "disk" or "built")."""
        if self.max_bytes <= 0:
            return *build(), "built"
        while True:
            with self._lock:
                hit = self._items.get(key)
                if hit is not None:
                    self._items.move_to_end(key)
                    return *hit, "memory"
                event = self._building.get(key)
                if event is None:
                    self._building[key] = threading.Event()
                    break
            if not event.wait(timeout=60):
                return *build(), "built"
        try:
            value, source = self._read(key), "disk"
            if value is None:
                value, source = build(), "built"
                self._write(key, value)
            self._put(key, value)
            return *value, source
        finally:
            with self._lock:
                self._building.pop(key).set()

    def seed(self, key: str, build: Callable[[], tuple[bytes, str]]) -> bool:
        """Have the tile of `key` on disk, without taking memory from the tiles in use (in
        memory when there is no directory); whether it had to be built."""
        if self.directory is None:
            built = False

            def counted() -> tuple[bytes, str]:
                nonlocal built
                built = True
                return build()

            self.get(key, counted)
            return built
        if self.has(key):
            return False
        self._write(key, build())
        return True

    def has(self, key: str) -> bool:
        """Whether the tile of `key` is on disk (in memory when there is no directory)."""
        if self.directory is None:
            with self._lock:
                return key in self._items
        return self._path(key).exists()

    def file_size(self, key: str) -> int:
        """The size of the tile file of `key` (OSError when there is none)."""
        return self._path(key).stat().st_size

    def share(self, directory: Path, disk_bytes: int = DEFAULT_DISK_BYTES) -> None:
        """Keep built tiles in `directory` too (created 0700), at most `disk_bytes` of them.
        OSError when it cannot be created or written to."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
        probe = directory / f".probe.{os.getpid()}.{threading.get_ident()}"
        probe.write_bytes(b"")
        probe.unlink()
        self.directory = directory
        self.disk_bytes = disk_bytes

    def disk_usage(self) -> tuple[int, int]:
        """(files, bytes) in the directory."""
        files = self._files()
        return len(files), sum(size for _, size, _ in files)

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / key[:2] / key

    def _read(self, key: str) -> tuple[bytes, str] | None:
        if self.directory is None:
            return None
        path = self._path(key)
        try:
            kind, _, data = path.read_bytes().partition(b"\n")
            os.utime(path)  # recently used: the sweep keeps it
        except OSError:
            return None
        return data, kind.decode()

    def _write(self, key: str, value: tuple[bytes, str]) -> None:
        """Write the file whole under a temporary name, then rename it: readers see all or
        nothing. A full disk or the like only costs the sharing."""
        data, kind = value
        if self.directory is None or len(data) + len(key) > self.disk_bytes // 4:
            return
        path = self._path(key)
        temporary = path.with_name(f"{key}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            path.parent.mkdir(mode=0o700, exist_ok=True)
            temporary.write_bytes(kind.encode() + b"\n" + data)
            os.replace(temporary, path)
        except OSError:
            temporary.unlink(missing_ok=True)
            return
        with self._lock:
            self._written += len(data)
            sweep = self._written > self.disk_bytes // 8
            if sweep:
                self._written = 0
        if sweep:
            self._sweep()

    def _files(self) -> list[tuple[float, int, str]]:
        """(mtime, size, path) of every tile file (the folders are the keys' first two
        characters; anything else in the directory is not a tile)."""
        assert self.directory is not None
        files = []
        for folder in os.scandir(self.directory):
            if len(folder.name) != 2 or not folder.is_dir():
                continue
            try:
                for entry in os.scandir(folder.path):
                    stat = entry.stat()
                    files.append((stat.st_mtime, stat.st_size, entry.path))
            except OSError:
                continue
        return files

    def _sweep(self) -> None:
        """Delete the least recently used files until the directory holds at most
        disk_bytes."""
        files = self._files()
        total = sum(size for _, size, _ in files)
        for _, size, name in sorted(files):
            if total <= self.disk_bytes:
                break
            Path(name).unlink(missing_ok=True)
            total -= size

    def _put(self, key: str, value: tuple[bytes, str]) -> None:
        size = len(value[0]) + len(key)
        if size > self.max_bytes // 4:
            return
        with self._lock:
            self._items[key] = value
            self._size += size
            while self._size > self.max_bytes:
                old_key, (old, _) = self._items.popitem(last=False)
                self._size -= len(old) + len(old_key)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0


def init_app(app: App) -> None:
    """Give `app` its in-memory tile cache (`TILE_CACHE_BYTES`, default 64 MiB)."""
    app.extensions[CACHE_KEY] = TileCache(
        int(app.config.get("TILE_CACHE_BYTES", DEFAULT_CACHE_BYTES))
    )


def tile_cache(app: Flask | None = None) -> TileCache:
    cache: TileCache = (app or current_app).extensions[CACHE_KEY]
    return cache


def use_disk_cache(app: Flask) -> Path | None:
    """Keep the app's tiles on disk too: `TILE_CACHE_DIR` (default: the instance's
    var/tiles), at most `TILE_CACHE_DISK_BYTES` (default 1 GiB). The directory; None, with
    a warning, when it cannot be created or written (a regular file in its place, a
    read-only or full disk): a cache is an optimisation, the tiles are then built in memory."""
    settings = app.config["BLOCKDATA_SETTINGS"]
    directory = Path(app.config.get("TILE_CACHE_DIR") or settings.var_dir / "tiles")
    disk_bytes = int(app.config.get("TILE_CACHE_DISK_BYTES", DEFAULT_DISK_BYTES))
    try:
        tile_cache(app).share(directory, disk_bytes)
    except OSError as exc:
        app.logger.warning(
            "tiles: 磁盘缓存不可用，仅用内存缓存 no disk cache, tiles are kept in memory only: "
            "%s: %s",
            directory,
            exc.strerror or exc,
        )
        return None
    return directory
