"""The server as it runs: HEAD on every route, slow readers, start-up, a broken var/tiles.

A committed copy of the demo district (12,000 requests loaded by the real ETL: its GeoJSON
export is about 10 MB, more than the kernel's socket buffers hold) is served by real servers
with their own engines — waitress in a thread (`serve`, with the production settings) or
`blockdata serve` in a subprocess on a free port — never through the shared test
connection. Open transactions are read from `pg_stat_activity` over a connection of the
test's own.
"""

from __future__ import annotations

import gc
import http.client
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from app.config import PROJECT_ROOT, WEB_ROLE, from_env, web_role_password, with_user
from app.db import make_engine
from layers import LAYERS
from tests.plugins.ogc import add_account, demo_database, live_app

REQUESTS = 12_000
HANG = 120.0  # seconds: only a hung server takes this long


@pytest.fixture(scope="module")
def served_url(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    name = f"blockdata_test_serving_{os.getpid()}"
    workdir = tmp_path_factory.mktemp("serving-demo")
    with demo_database(
        server_url, name, workdir, requests=REQUESTS, cases=100, targets=20, projects=30
    ) as url:
        yield url


@pytest.fixture(scope="module")
def district_token(served_url: str) -> str:
    token: str = add_account(served_url, "serving-district")[1]
    return token


@pytest.fixture(scope="module")
def street(served_url: str) -> str:
    engine = make_engine(served_url)
    with engine.connect() as conn:
        code: str = conn.exec_driver_sql("select min(code) from streets").scalar_one()
    engine.dispose()
    return code


@pytest.fixture(scope="module")
def commander_token(served_url: str, street: str) -> str:
    token: str = add_account(served_url, f"serving-commander-{street}", "commander", street)[1]
    return token


def open_transactions(url: str) -> list[tuple[Any, ...]]:
    """(pid, state, query) of every session of the database `url` names that is inside a
    transaction, read from another session."""
    database = make_url(url).database
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "select pid, state, left(query, 120) from pg_stat_activity "
            "where datname = %s and pid <> pg_backend_pid() and xact_start is not null",
            (database,),
        ).fetchall()


def request(
    port: int, method: str, path: str, token: str, timeout: float = HANG
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


@contextmanager
def serve(app: Any) -> Iterator[int]:
    """`app` served by waitress, as `blockdata serve --workers 1` sets it up, in a thread of
    this process; its port. Stopped from inside its loop (closing its sockets from this
    thread would race with the loop's poll)."""
    from waitress import wasyncore
    from waitress.server import create_server

    from app.serving import adjustments

    server: Any = create_server(app, host="127.0.0.1", port=0, **adjustments(4))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield int(server.effective_port)
    finally:
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        thread.join(HANG)
        server.task_dispatcher.shutdown()
        app.extensions["blockdata.engine"].dispose()


@pytest.fixture
def no_gc() -> Iterator[None]:
    """The garbage collector off (for the in-process server too): a transaction must end
    because the server ends it, not because a collection happened to free its connection."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# --- HEAD -----------------------------------------------------------------------------------


def test_forty_heads_on_an_export_leave_no_transaction_open(
    served_url: str, district_token: str, no_gc: None
) -> None:
    """HEAD answers an export's headers without opening its stream; the pool stays whole."""
    app = live_app(served_url)
    with serve(app) as port:
        for i in range(40):
            query = "?f=csv" if i % 2 else ""
            status, headers, body = request(
                port, "HEAD", f"/api/layers/service_requests/features{query}", district_token
            )
            assert status == 200, (i, status, body[:300])
            assert body == b"" and int(headers["x-blockdata-rows"]) > 10_000
            assert headers.get("content-length") != "0"  # not the GET's length: none
        assert open_transactions(served_url) == []
        status, _, _ = request(port, "GET", "/api/streets", district_token)
        assert status == 200


def _route_values(url: str, street: str) -> dict[str, list[str]]:
    """Values for each route argument: every layer, a real feature, a tile over the data."""
    engine = make_engine(url)
    with engine.connect() as conn:
        request_id, category, lon, lat = conn.exec_driver_sql(
            "select id, category, ST_X(geom), ST_Y(geom) from service_requests "
            "where street_code = %(s)s order by id limit 1",
            {"s": street},
        ).one()
        run_id = conn.exec_driver_sql("select max(id) from etl_runs").scalar_one()
    engine.dispose()
    z = 14
    x = int((lon + 180) / 360 * 2**z)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2**z)
    static = next(p for p in sorted((PROJECT_ROOT / "static").rglob("*.css")))
    return {
        "layer": [layer.name for layer in LAYERS],
        "collection_id": [layer.name for layer in LAYERS],
        "street_code": [street],
        "feature_id": [str(request_id)],
        "request_id": [str(request_id)],
        "service_code": [category],
        "fmt": ["json", "xml"],
        "z": [str(z)],
        "x": [str(x)],
        "y": [str(y)],
        "filename": [str(static.relative_to(PROJECT_ROOT / "static"))],
        "run_id": [str(run_id)],
        "case_id": ["1"],
        "photo_id": ["1"],
        "guard": ["repeat", "bounced"],
        "label": ["2026-11"],
        "code": ["xicheng", street],
        "level": ["street"],
        "task_id": ["1"],
    }


def _get_urls(app: Any, values: dict[str, list[str]]) -> list[str]:
    """Every GET route of `app`, once per value of each of its arguments."""
    from urllib.parse import quote

    urls = []
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()):
            continue
        missing = set(rule.arguments) - set(values)
        assert not missing, f"{rule.rule}: give the test values for {missing}"
        combos: list[dict[str, str]] = [{}]
        for name in sorted(rule.arguments):
            if rule.endpoint == "ogc.item" and name == "collection_id":
                options = ["service_requests"]
            elif rule.endpoint == "tiles.tile" and name == "layer":
                options = ["service_requests", "streets"]
            else:
                options = values[name]
            combos = [{**c, name: v} for c in combos for v in options]
        for combo in combos:
            path = rule.rule
            for name, value in combo.items():
                path = re.sub(rf"<(?:[a-z]+:)?{name}>", quote(value, safe="/"), path)
            urls.append(path)
    return urls


@pytest.mark.parametrize(
    "role", ["district", "commander", "analyst", "planner", "clerk", "grid_officer"]
)
def test_head_on_every_get_route_answers_like_get_and_leaves_no_transaction(
    served_url: str,
    district_token: str,
    commander_token: str,
    street: str,
    role: str,
    no_gc: None,
) -> None:
    """Every role (each may read other layers: HEAD must refuse what GET refuses)."""
    if role == "district":
        token = district_token
    elif role == "commander":
        token = commander_token
    else:
        bound = street if role in ("clerk", "grid_officer") else None  # one street's
        token = add_account(served_url, f"serving-{role}", role, bound)[1]
    app = live_app(served_url)
    urls = _get_urls(app, _route_values(served_url, street))
    assert len(urls) > 40
    with serve(app) as port:
        for url in urls:
            head_status, head_headers, head_body = request(port, "HEAD", url, token)
            assert head_status < 500, (url, head_status)
            assert head_body == b"", url
            get_status, get_headers, _ = request(port, "GET", url, token)
            assert head_status == get_status, url
            assert head_headers.get("content-type") == get_headers.get("content-type"), url
        assert open_transactions(served_url) == []
        assert request(port, "GET", "/api/layers", token)[0] == 200


# --- a real server process ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """`blockdata serve` in a subprocess on a free port; its output kept for the test."""

    def __init__(self, url: str, var: Path, *options: str) -> None:
        self.port = free_port()
        self.var = var
        password = web_role_password(from_env())
        assert password is not None, "the test session made the web role's password"
        env = {
            **os.environ,
            "DATABASE_URL": url,
            # The web role is the cluster's, its password the test session's (var/ of the
            # checkout): a var/ of its own would make another one and lock the others out.
            "BLOCKDATA_WEB_DATABASE_URL": with_user(url, WEB_ROLE, password),
            "BLOCKDATA_VAR": str(var),
            "BLOCKDATA_SECRET_KEY": "test-serving-" + "k" * 32,
        }
        self.log = var.parent / f"serve-{self.port}.log"
        self._out = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port), *options],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + HANG
        while True:
            assert self.proc.poll() is None, self.output()
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            finally:
                conn.close()
            assert time.monotonic() < deadline, "the server did not start: " + self.output()
            time.sleep(0.2)

    def output(self) -> str:
        self._out.flush()
        return self.log.read_text("utf-8", "replace")

    def stop(self) -> str:
        """Stop it as an operator does (SIGTERM); its output."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._out.close()
        return self.log.read_text("utf-8", "replace")


@pytest.fixture
def served(served_url: str, tmp_path: Path) -> Iterator[Served]:
    server = Served(served_url, tmp_path / "var")
    try:
        yield server
    finally:
        server.stop()


# --- slow readers ---------------------------------------------------------------------------


class SlowReaders:
    """`n` sockets, each asking for a large export and then a page (pipelined), read at
    1 KB/s each by one thread; the kernel's receive buffer is kept small, as a slow link's."""

    def __init__(self, port: int, token: str, n: int) -> None:
        self.received = [0] * n
        self.sockets = []
        auth = f"Authorization: Bearer {token}\r\n"
        for i in range(n):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            export = "/api/layers/service_requests/features" + ("?f=csv" if i % 2 else "")
            sock.sendall(
                (
                    f"GET {export} HTTP/1.1\r\nHost: test\r\n{auth}\r\n"
                    f"GET / HTTP/1.1\r\nHost: test\r\n{auth}\r\n"
                ).encode()
            )
            sock.setblocking(False)
            self.sockets.append(sock)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self._stop.wait(1.0):
            for i, sock in enumerate(self.sockets):
                if self.received[i] < 0:
                    continue
                try:
                    data = sock.recv(1024)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                self.received[i] = self.received[i] + len(data) if data else -1

    def close(self) -> None:
        self._stop.set()
        self.thread.join()
        for sock in self.sockets:
            sock.close()


ORDINARY = [
    "/healthz",
    "/api/streets",
    "/api/layers",
    "/ogc/collections/service_requests/items?limit=10",
    "/api/layers/service_requests/features?limit=5",
]


@pytest.mark.parametrize("readers", [16, 64])
def test_slow_readers_hold_neither_threads_nor_transactions(
    served: Served, served_url: str, district_token: str, readers: int
) -> None:
    """While `readers` clients download exports at 1 KB/s, another client's 20 requests are
    all answered, and no database transaction waits for the slow readers."""
    status, headers, _ = request(
        served.port, "HEAD", "/api/layers/service_requests/features", district_token
    )
    assert status == 200 and int(headers["x-blockdata-rows"]) > 10_000
    slow = SlowReaders(served.port, district_token, readers)
    try:
        answered = []
        for i in range(20):
            status, _, body = request(
                served.port, "GET", ORDINARY[i % len(ORDINARY)], district_token
            )
            assert status == 200, (i, body[:300])
            answered.append(i)
        deadline = time.monotonic() + HANG
        while open_transactions(served_url):
            assert time.monotonic() < deadline, open_transactions(served_url)
            time.sleep(0.5)
        # The slow readers are still at it: a few KB of ~10 MB each, none cut off.
        assert all(0 <= n < 1_000_000 for n in slow.received), slow.received
        assert sum(slow.received) > 0
        assert len(answered) == 20
    finally:
        slow.close()


# --- start-up: tiles are built when asked for; seeding is opt-in and gives way ---------------


def _status(var: Path) -> dict[str, Any] | None:
    """The tile upkeep thread's record of its last round (app.tile_seed.STATUS)."""
    try:
        status: dict[str, Any] = json.loads((var / "tiles" / "seeded.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return status


def _wait_for_status(var: Path, done: Any, timeout: float = 600.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = _status(var)
        if status is not None and done(status):
            return status
        assert time.monotonic() < deadline, f"no such round of the tile upkeep: {status}"
        time.sleep(0.5)


def _tile_files(var: Path) -> list[Path]:
    return [p for p in (var / "tiles").glob("??/*") if p.is_file()]


def _tile_path(url: str, street: str) -> str:
    values = _route_values(url, street)
    return f"/tiles/service_requests/{values['z'][0]}/{values['x'][0]}/{values['y'][0]}.pbf"


def test_the_server_builds_no_tile_nobody_asked_for(
    served: Served, served_url: str, district_token: str, street: str
) -> None:
    for path in ORDINARY:
        assert request(served.port, "GET", path, district_token)[0] == 200
    first = _wait_for_status(served.var, lambda s: True)  # the upkeep thread's first round
    assert first["built"] == 0 and first["seeding"] is False
    assert _tile_files(served.var) == []
    status, headers, _ = request(served.port, "GET", _tile_path(served_url, street), district_token)
    assert status == 200 and headers["x-tile-cache"] == "built"
    assert len(_tile_files(served.var)) == 1  # that tile, kept for the next one to ask


def test_seeding_is_opt_in_and_done_when_no_request_is_served(
    served_url: str, district_token: str, tmp_path: Path
) -> None:
    server = Served(served_url, tmp_path / "var", "--seed-tiles", "--seed-zooms", "10-11")
    try:
        for path in ORDINARY:
            assert request(server.port, "GET", path, district_token)[0] == 200
        seeded = _wait_for_status(server.var, lambda s: s.get("seeding") and s["full"])
        assert seeded["tiles"] == seeded["built"] == len(_tile_files(server.var)) > 0
    finally:
        output = server.stop()
    assert "Traceback" not in output


def test_seeding_waits_for_a_first_answer_and_for_requests_in_flight() -> None:
    """`Activity.pause`, the seeding's gate: shut until the app has answered, and while it
    serves a request."""
    from app.tile_seed import Activity

    release = threading.Event()

    def app(environ: Any, start_response: Any) -> list[bytes]:
        release.wait()
        start_response("200 OK", [])
        return [b"ok"]

    activity = Activity(app, first_after=3600)
    passed = threading.Event()

    def seeder() -> None:
        activity.pause()
        passed.set()

    def serve_one() -> None:
        activity({}, lambda *a: None)

    waiting = threading.Thread(target=seeder, daemon=True)
    waiting.start()
    assert not passed.wait(0.5)  # nothing answered yet
    release.set()
    serve_one()  # the first answer
    assert passed.wait(HANG)

    release.clear()
    passed.clear()
    busy = threading.Thread(target=serve_one, daemon=True)
    busy.start()
    while not activity.serving:
        time.sleep(0.01)
    waiting = threading.Thread(target=seeder, daemon=True)
    waiting.start()
    assert not passed.wait(0.5)  # a request in flight
    release.set()
    busy.join(HANG)
    assert passed.wait(HANG)


# --- a var/tiles that cannot be used --------------------------------------------------------


def test_an_unusable_tile_directory_costs_only_the_disk_cache(
    served_url: str, district_token: str, street: str, tmp_path: Path
) -> None:
    """var/tiles is a regular file (which no chmod makes a directory, root or not): serve
    warns and builds tiles in memory; `blockdata tiles seed`, whose work is that directory,
    says so and exits 1."""
    from click.testing import CliRunner

    from app.cli import main

    var = tmp_path / "var"
    var.mkdir()
    (var / "tiles").write_text("not a directory")
    server = Served(served_url, var)
    try:
        path = _tile_path(served_url, street)
        status, headers, body = request(server.port, "GET", path, district_token)
        assert status == 200 and body and headers["x-tile-cache"] == "built"
        assert request(server.port, "GET", "/api/streets", district_token)[0] == 200
    finally:
        output = server.stop()
    assert "Traceback" not in output
    assert "no disk cache" in output and str(var / "tiles") in output
    env = {"DATABASE_URL": served_url, "BLOCKDATA_VAR": str(var)}
    result = CliRunner().invoke(main, ["tiles", "seed", "--zooms", "10", "-q"], env=env)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "cannot be used" in result.output
