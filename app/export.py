"""The web side of exports: the body spooled to a temporary file, then sent.

The exports themselves (GeoJSON and CSV chunks, GeoPackage and Parquet files, provenance)
are written by layers.queries.export. Over HTTP the chunks go to a temporary file first
(`spool`): the request's transaction ends when the file is complete, and the server sends the
file at the client's pace (`sent`: waitress's `wsgi.file_wrapper`, no thread waits on the
client). Spooling stays here because only the server spools: the CLI writes its file itself,
and the reserve it keeps free protects the disk the server's database lives on (503).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from flask import current_app

from app.errors import ServiceUnavailable
from layers.queries.export import CHUNK_BYTES

log = logging.getLogger(__name__)

SPOOL_MEMORY = 1 << 20  # a body up to this size stays in memory
SPOOL_RESERVE = 1 << 30  # spooling stops (503) rather than leave less free on its disk
SPOOL_CHECK = 16 << 20  # free space is looked at every this many bytes written


def spool_directory(var_dir: Path) -> Path | None:
    """`var_dir`/spool, created 0700 if need be; None (the system's temporary directory,
    with a warning) when it cannot be written."""
    directory = var_dir / "spool"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        log.warning(
            "exports: %s not writable (%s), spooling to %s", directory, exc, tempfile.gettempdir()
        )
        return None
    return directory


def spool(
    chunks: Iterator[bytes], directory: Path | None, reserve: int | None = None
) -> tuple[IO[bytes], int]:
    """All of `chunks` in an anonymous temporary file, rewound, and its size.

    Up to SPOOL_MEMORY it stays in memory. A disk that would keep less than `reserve` bytes
    (default SPOOL_RESERVE) free stops it with a 503: one export must not fill the disk the
    database lives on.
    """
    reserve = SPOOL_RESERVE if reserve is None else reserve
    # Closed by the server once sent (wsgi.file_wrapper), or below on failure.
    out = tempfile.SpooledTemporaryFile(  # noqa: SIM115
        max_size=SPOOL_MEMORY, dir=None if directory is None else str(directory)
    )
    size = checked = 0
    try:
        for chunk in chunks:
            out.write(chunk)
            size += len(chunk)
            if size - checked >= SPOOL_CHECK:
                checked = size
                _check_space(directory, reserve)
        out.seek(0)
    except OSError as exc:  # a full disk, say
        out.close()
        log.warning("exports: spooling failed: %s", exc)
        raise _unavailable(exc) from None
    except BaseException:
        out.close()
        raise
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # a COPY cut short ends here, not when the generator is collected
    return out, size


def _check_space(directory: Path | None, reserve: int) -> None:
    """A 503 when the spool's disk has less than `reserve` bytes free."""
    free = shutil.disk_usage(directory or tempfile.gettempdir()).free
    if free < reserve:
        raise ServiceUnavailable(
            "服务器磁盘空间不足，请缩小导出范围或稍后重试 "
            f"not enough disk space to prepare this export ({free >> 20} MB free)"
        )


def _unavailable(exc: OSError) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"导出暂不可用，请稍后重试 the export could not be prepared: {exc.strerror or exc}"
    )


def spool_file(
    write: Callable[[Path], None],
    name: str,
    directory: Path | None,
    reserve: int | None = None,
) -> tuple[IO[bytes], int]:
    """A file format that is written to a path (GeoPackage): `write` makes it, as `name`, in
    a private temporary directory under `directory`; it comes back open, rewound, with its
    size, its name gone already (the open file is sent, then closed). Less than `reserve`
    bytes free on that disk (default SPOOL_RESERVE) refuses it with a 503 before writing."""
    reserve = SPOOL_RESERVE if reserve is None else reserve
    try:
        _check_space(directory, reserve)
        with tempfile.TemporaryDirectory(dir=None if directory is None else str(directory)) as tmp:
            path = Path(tmp) / name
            write(path)
            size = path.stat().st_size
            out = path.open("rb")  # closed by the server once sent; unlinked on leaving
    except OSError as exc:
        log.warning("exports: writing the file failed: %s", exc)
        raise _unavailable(exc) from None
    return out, size


def sent(spooled: IO[bytes], environ: dict[str, Any]) -> Iterable[bytes]:
    """The spooled file as the server sends files (`wsgi.file_wrapper`: waitress's I/O loop
    sends it and closes it, no thread waits on the client), else read through and closed."""
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is not None:
        chunks: Iterable[bytes] = wrapper(spooled, CHUNK_BYTES)
        return chunks

    def read() -> Iterator[bytes]:
        with spooled:
            while chunk := spooled.read(CHUNK_BYTES):
                yield chunk

    return read()


SPOOL_KEY = "blockdata.export_spool"


def directory() -> Path | None:
    """Where the current app spools exports: `EXPORT_SPOOL_DIR`, else the instance's var/spool
    (looked at once per app), else the system's temporary directory."""
    configured = current_app.config.get("EXPORT_SPOOL_DIR")
    if configured:
        return Path(configured)
    if SPOOL_KEY not in current_app.extensions:
        settings = current_app.config["BLOCKDATA_SETTINGS"]
        current_app.extensions[SPOOL_KEY] = spool_directory(settings.var_dir)
    found: Path | None = current_app.extensions[SPOOL_KEY]
    return found
