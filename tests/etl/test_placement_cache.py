"""The placement cache (var/cache) is an optimisation and never runs code.

Faults are made so that they hold for root too (tests may run as root, where a read-only
mode stops nothing): a regular file where the cache directory should be, and a full disk
simulated by RLIMIT_FSIZE (writes past the limit fail with EFBIG, for every user).
"""

from __future__ import annotations

import logging
import pickle
import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from app import create_app
from app.auth import new_token
from etl import place
from etl.jobs import run_file
from etl.place import placer_for, units_fingerprint
from layers.accounts import api_tokens
from tests.district import request_row, write_csv
from tests.helpers import add_user

pytestmark = pytest.mark.usefixtures("district")

FAULTS = ("file_in_the_way", "disk_full")


@contextmanager
def fault(kind: str, cache: Path) -> Iterator[None]:
    """`cache` cannot be written while inside, whoever we are."""
    if kind == "file_in_the_way":
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text("not a directory")
        yield
        return
    cache.mkdir(parents=True, exist_ok=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@pytest.fixture(autouse=True)
def fresh_process_cache() -> Iterator[None]:
    """Each test starts as a new process would: nothing in memory."""
    place._CACHE.clear()
    place._TRIED.clear()
    yield
    place._CACHE.clear()
    place._TRIED.clear()


def leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.partial"))


@pytest.mark.parametrize("kind", FAULTS)
def test_a_load_goes_on_without_a_writable_cache_and_says_so(
    connection: sa.Connection, tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    csv = write_csv(tmp_path / "r.csv", [request_row("c1"), request_row("c2", 经度="116.335")])
    cache = tmp_path / "var" / "cache"
    with caplog.at_level(logging.WARNING, logger="etl.place"), fault(kind, cache):
        report = run_file(connection, csv, layer="service_requests", cache_dir=cache)
    assert report.status == "succeeded" and report.inserted == 2
    placed = connection.execute(
        sa.text("select source_id, grid_code from service_requests order by source_id")
    ).all()
    assert [tuple(r) for r in placed] == [("c1", "110102001001001"), ("c2", "110102003002001")]
    assert len(report.notes) == 1 and "placement cache not written" in report.notes[0]
    assert any("placement cache not written" in line for line in report.lines())
    stored = connection.execute(
        sa.text("select warnings from etl_runs where id = :id"), {"id": report.run_id}
    ).scalar_one()
    assert stored["placement_cache"] == 1
    assert any("placement cache not written" in r.getMessage() for r in caplog.records)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", FAULTS)
def test_an_open311_post_goes_on_without_a_writable_cache(
    connection: sa.Connection, tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "var" / "cache"
    app = create_app(
        {
            "TESTING": True,
            "DB_CONNECTION": connection,
            "WTF_CSRF_ENABLED": False,
            "PLACER_CACHE_DIR": str(cache),
        }
    )
    client: FlaskClient = app.test_client()
    for role, street in [("district", None), ("commander", "110102001")]:
        key, digest = new_token()
        uid = add_user(connection, f"cache-{role}", role, street)
        connection.execute(sa.insert(api_tokens).values(user_id=uid, token_sha256=digest))
        place._CACHE.clear()
        place._TRIED.clear()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="etl.place"), fault(kind, cache):
            response = client.post(
                "/open311/v2/requests.json",
                data={
                    "service_code": "环境卫生",
                    "lat": "39.905",
                    "long": "116.305",
                    "description": "垃圾堆放",
                },
                headers={"Authorization": f"Bearer {key}"},
            )
        assert response.status_code == 200, response.get_data(as_text=True)
        request_id = response.get_json()[0]["service_request_id"]
        grid = connection.execute(
            sa.text("select grid_code from service_requests where id = :id"), {"id": request_id}
        ).scalar_one()
        assert grid == "110102001001001"
        assert any("placement cache not written" in r.getMessage() for r in caplog.records)
        assert leftovers(tmp_path) == []
        if kind == "file_in_the_way":
            cache.unlink()


class Payload:
    """Unpickling this creates `marker`: a cache that runs code would leave it behind."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def test_a_malicious_cache_file_is_never_executed_and_is_rebuilt(
    connection: sa.Connection, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    key = units_fingerprint(connection)
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Payload(marker))
    # Where this version reads its cache, and where the earlier version read it.
    (cache / f"placer-{key}.npz").write_bytes(payload)
    (cache / f"placer-{key}.pickle").write_bytes(payload)
    with caplog.at_level(logging.WARNING, logger="etl.place"):
        placer = placer_for(connection, cache)
    assert not marker.exists()
    assert any("unreadable, rebuilt" in r.getMessage() for r in caplog.records)
    p = placer.place(np.array([116.305, 116.335]), np.array([39.905, 39.915]))
    assert list(p.grid_code) == ["110102001001001", "110102003002002"]
    # Rebuilt in place: plain arrays now, and the old pickle is gone.
    assert sorted(f.name for f in cache.iterdir()) == [f"placer-{key}.npz"]
    with np.load(cache / f"placer-{key}.npz", allow_pickle=False) as npz:
        assert str(npz["placer.meta"][1]) == key
    # A new process reads it back, and places the same.
    place._CACHE.clear()
    caplog.clear()
    again = placer_for(connection, cache)
    assert not caplog.records
    q = again.place(np.array([116.305, 116.335]), np.array([39.905, 39.915]))
    assert list(q.grid_code) == list(p.grid_code)


def corrupt_variants(good: dict[str, np.ndarray], key: str) -> dict[str, dict[str, Any]]:
    object_array = dict(good)
    object_array["placer.grid_code"] = np.array([Payload(Path("/nonexistent"))], dtype=object)
    other_units = dict(good)
    other_units["placer.meta"] = np.array(["1", "0" * 32, "256.0"])
    shuffled = dict(good)
    shuffled["index.lattice._raster"] = np.zeros_like(good["index.lattice._raster"])
    bad_wkb = dict(good)
    bad_wkb["index.wkb"] = np.frombuffer(b"\x01" * len(good["index.wkb"]), dtype=np.uint8)
    return {
        "object_array": object_array,
        "other_units": other_units,
        "zeroed_lattice": shuffled,
        "bad_wkb": bad_wkb,
    }


@pytest.mark.parametrize(
    "variant", ["truncated", "object_array", "other_units", "zeroed_lattice", "bad_wkb"]
)
def test_a_corrupt_cache_file_is_rebuilt(
    connection: sa.Connection, tmp_path: Path, variant: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    key = units_fingerprint(connection)
    path = cache / f"placer-{key}.npz"
    placer_for(connection, cache)
    with np.load(path, allow_pickle=False) as npz:
        good = {name: npz[name] for name in npz.files}
    if variant == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        with path.open("wb") as fh:
            np.savez(fh, **corrupt_variants(good, key)[variant])
    place._CACHE.clear()
    place._TRIED.clear()
    with caplog.at_level(logging.WARNING, logger="etl.place"):
        placer = placer_for(connection, cache)
    assert any("unreadable, rebuilt" in r.getMessage() for r in caplog.records)
    p = placer.place(np.array([116.305, 116.335, 116.40]), np.array([39.905, 39.915, 39.905]))
    assert list(p.grid_code) == ["110102001001001", "110102003002002", None]
    with np.load(path, allow_pickle=False) as npz:  # rewritten whole
        assert sorted(npz.files) == sorted(good)
        assert all(np.array_equal(npz[name], good[name]) for name in good)
