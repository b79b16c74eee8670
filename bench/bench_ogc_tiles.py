"""Benchmark: OGC API – Features and vector tiles over N service requests.

    python bench/bench_ogc_tiles.py [--rows 1000000] [--clients 16] [--workers 2]
                                    [--threads 8] [--reuse]

Loads N requests into a throwaway database `blockdata_bench_ogc` with bench_etl's helpers
(demo boundaries, clustered requests, `etl.jobs.run_file`), serves the app in a separate
process on 127.0.0.1 as `blockdata serve --workers W --threads T` does (W > 1: gunicorn's
processes, waitress in each), and measures, with Python client threads on keep-alive
connections:
  1. OGC items: one client pages through every feature with limit=1000 by the `next` links;
  2. OGC items with a small bbox (≈ 220 m square, random over the district), 16 clients;
  3. tiles z10–18 over the busiest area, 16 clients: cold (empty tile cache, each tile once),
     warm (the same tiles again), and with the cache off (every request builds its tile);
  3b. live: the same clients for `--live-seconds` against a server whose disk cache was
     seeded first (`blockdata tiles seed`'s code: zooms 10–18 over the streets, district and
     commanders; its time, tile counts and size reported), seeding in the background as
     `blockdata serve` does; once the server's first pass has checked every tile, one run
     per `--live-every` interval (default 10 s, then 1 s) WHILE a writer files one Open311
     request per interval at a random point of the benchmarked area (as a district user:
     insert as the reader, aggregates refreshed); p50/p99 and the hit rate (`X-Tile-Cache`
     memory or disk);
  4. per zoom, one client, cache off: the cost of building each tile, beside a server whose
     connections keep PostgreSQL's stock JIT and parallel-plan settings, and beside the
     obvious alternative, the bare ST_AsMVT of every point of the zoom's busiest tile.
`--only against --against DIR` serves the tiles (cache off) from this checkout and from
another one at DIR (the code before a change) at once, asked in turn, 16 clients A B B A and
then one client tile by tile. `--only workers` instead compares the servers in the same run:
waitress in gunicorn's workers (`blockdata serve`) and gunicorn's own gthread workers
(before), both up at once with the same processes and threads, asked in turn (A B B A,
`--pairs` times): tiles warm, OGC small boxes, then the tiles again while 16 clients
download exports at 1 KB/s each.
Requests are read as a district user (a session cookie), i.e. as `blockdata_reader` under
row-level security. Each server has a fresh disk cache directory (`TILE_CACHE_DIR`). The
machine's load average is printed beside each measurement: other work on it makes the figures
noisy. Prints a markdown table; `--reuse` keeps a loaded database; `--only live` runs 3b alone.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from app.config import from_env, resolve_database_url  # noqa: E402
from app.db import make_engine  # noqa: E402

if TYPE_CHECKING:
    from app.tile_seed import SeedReport

DB = "blockdata_bench_ogc"
WORKERS = 2  # as `blockdata serve --workers 2`
THREADS = 8
WAITRESS_WORKER = "app.serving.WaitressWorker"  # app.cli.WAITRESS_WORKER
WORKER_CLASSES = {"waitress": WAITRESS_WORKER, "gthread": "gthread"}


def session_cookie(url: str) -> str:
    """A signed session cookie of a district user (the browser's way in; no audit row per tile)
    and its server-side session row."""
    from app import create_app
    from app.auth import SESSION_KEY, hash_password, new_session_id
    from layers.accounts import sessions, users

    engine = make_engine(url)
    with engine.begin() as conn:
        uid = conn.execute(sa.select(users.c.id).where(users.c.name == "bench-district")).scalar()
        if uid is None:
            uid = conn.execute(
                sa.insert(users)
                .values(
                    name="bench-district", role="district", password_hash=hash_password("x" * 16)
                )
                .returning(users.c.id)
            ).scalar_one()
        sid, digest = new_session_id()
        now = sa.func.now()
        row = {"sid_sha256": digest, "user_id": uid, "created_at": now, "last_seen_at": now}
        conn.execute(sa.insert(sessions).values(**row))
    engine.dispose()
    app = create_app({"DATABASE_URL": url})
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    return f"{app.config['SESSION_COOKIE_NAME']}={serializer.dumps({SESSION_KEY: sid})}"


# --- the server, in its own process ---------------------------------------------------------


# PostgreSQL's own defaults for what app.db.SESSION_OPTIONS turns off, for the comparison.
STOCK_OPTIONS = "-c jit=on -c max_parallel_workers_per_gather=2"
STOCK = ("ours", "stock")


def app_config(
    url: str, cache_bytes: int, cache_dir: str, zooms: str = "10-18"
) -> dict[str, object]:
    from app.commands.tiles import parse_zooms

    return {
        "DATABASE_URL": url,
        "TILE_CACHE_BYTES": cache_bytes,
        "TILE_CACHE_DIR": cache_dir,
        "TILE_WARM_ZOOMS": parse_zooms(zooms),
    }


def serve_main(
    url: str,
    port: int,
    threads: int,
    workers: int,
    cache_bytes: int,
    options: str,
    cache_dir: str,
    zooms: str,
    worker: str,
) -> None:
    """Entry point of the server process: `blockdata serve`, without the seeding unless
    `options` says "seed" (of `zooms`); `worker`: gunicorn's worker class."""
    import logging

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" notes

    from app import create_app, db
    from app.cli import run_server

    if options == "stock":
        db.SESSION_OPTIONS = STOCK_OPTIONS
    run_server(
        lambda: create_app(app_config(url, cache_bytes, cache_dir, zooms)),
        host="127.0.0.1",
        port=port,
        threads=threads,
        workers=workers,
        seed_tiles=options == "seed",
        quiet=True,
        worker_class=worker,
    )


class Server:
    """A server process with its own tile cache directory (a fresh one unless given)."""

    def __init__(
        self,
        url: str,
        threads: int,
        workers: int,
        cache_bytes: int,
        options: str = "ours",
        cache_dir: str | None = None,
        zooms: str = "10-18",
        worker: str = WAITRESS_WORKER,
        script: str = __file__,
    ) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.own_dir = cache_dir is None
        self.cache_dir = cache_dir or tempfile.mkdtemp(prefix="bench-tiles-")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                script,
                "--serve",
                url,
                str(self.port),
                str(threads),
                str(workers),
                str(cache_bytes),
                options,
                self.cache_dir,
                zooms,
                worker,
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _ = get(self.port, "/healthz")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        if self.own_dir:
            shutil.rmtree(self.cache_dir, ignore_errors=True)


# --- clients --------------------------------------------------------------------------------

_local = threading.local()
HEADERS: dict[str, str] = {}


def get(port: int, path: str) -> tuple[int, bytes]:
    """GET on a keep-alive connection of this thread."""
    conn: http.client.HTTPConnection | None = getattr(_local, "conn", None)
    if conn is None or getattr(_local, "port", None) != port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        _local.conn, _local.port = conn, port
    try:
        conn.request("GET", path, headers=HEADERS)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (OSError, http.client.HTTPException):
        _local.conn = None
        raise


def _threads(clients: int, client: Callable[[int], None], errors: list[str]) -> float:
    """Run client(0 … clients-1) in threads at once; the wall seconds until the last ends."""
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(errors[:3])
    return time.perf_counter() - t0


def run_clients(
    clients: int, work: Callable[[int], list[str]], port: int
) -> tuple[list[float], list[int], float]:
    """Each client i GETs the paths work(i) in order; latencies (s), sizes, wall time."""
    latencies: list[float] = []
    sizes: list[int] = []
    lock = threading.Lock()
    errors: list[str] = []

    def client(i: int) -> None:
        mine_l, mine_s = [], []
        for path in work(i):
            t = time.perf_counter()
            status, body = get(port, path)
            mine_l.append(time.perf_counter() - t)
            mine_s.append(len(body))
            if status != 200:
                errors.append(f"{status} {path} {body[:200]!r}")
        with lock:
            latencies.extend(mine_l)
            sizes.extend(mine_s)

    return latencies, sizes, _threads(clients, client, errors)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# --- the measurements -----------------------------------------------------------------------


def bench_paging(port: int) -> tuple[int, float]:
    path: str | None = "/ogc/collections/service_requests/items?limit=1000"
    total = 0
    t0 = time.perf_counter()
    while path:
        status, body = get(port, path)
        assert status == 200, body[:300]
        tail = body[-4000:].decode("utf-8", "replace")
        total += int(re.search(r'"numberReturned":(\d+)', tail).group(1))  # type: ignore[union-attr]
        links = json.loads(tail[tail.rindex('"links":') + 8 : -1])
        href = next(
            (lk["href"] for lk in links if lk["rel"] == "next" and "json" in lk["type"]), None
        )
        path = urllib.parse.urlsplit(href)._replace(scheme="", netloc="").geturl() if href else None
    return total, time.perf_counter() - t0


def district_box(engine: sa.Engine) -> tuple[float, float, float, float]:
    with engine.connect() as conn:
        x0, y0, x1, y1 = conn.exec_driver_sql(
            "select ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
            "from (select ST_Extent(geom) e from streets) s"
        ).one()
    return float(x0), float(y0), float(x1), float(y1)


def bbox_paths(box: tuple[float, float, float, float], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    side = 0.002  # ≈ 170 m east-west, 220 m north-south
    out = []
    for _ in range(n):
        x = rng.uniform(box[0], box[2] - side)
        y = rng.uniform(box[1], box[3] - side)
        out.append(
            f"/ogc/collections/service_requests/items?bbox={x:.5f},{y:.5f},"
            f"{x + side:.5f},{y + side:.5f}"
        )
    return out


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    return (
        int((lon + 180) / 360 * n),
        int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n),
    )


def busiest_area(engine: sa.Engine) -> tuple[float, float, int]:
    """Centre of the ~500 m square holding the most requests, and its count."""
    with engine.connect() as conn:
        x, y, n = conn.exec_driver_sql(
            "select (floor(ST_X(geom) / 0.005) + 0.5) * 0.005, "
            "(floor(ST_Y(geom) / 0.005) + 0.5) * 0.005, count(*) "
            "from service_requests group by 1, 2 order by 3 desc limit 1"
        ).one()
    return float(x), float(y), int(n)


def tile_paths(lon: float, lat: float, half: float = 0.008) -> list[tuple[int, str]]:
    """Every tile z10–18 covering a square of ±`half` degrees around (lon, lat)."""
    out = []
    for z in range(10, 19):
        x0, y1 = tile_of(lon - half, lat - half, z)
        x1, y0 = tile_of(lon + half, lat + half, z)
        for x in range(x0, x1 + 1):
            for y in range(y0, y1 + 1):
                out.append((z, f"/tiles/service_requests/{z}/{x}/{y}.pbf"))
    return out


def shares(paths: list[str], clients: int, seed: int) -> Callable[[int], list[str]]:
    """Split `paths` (shuffled) over the clients: every path once in all."""
    order = paths[:]
    random.Random(seed).shuffle(order)
    return lambda i: order[i::clients]


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f}/{five:.1f}"


def raw_mvt(engine: sa.Engine, z: int, x: int, y: int) -> tuple[float, int]:
    """(ms, bytes) of the bare ST_AsMVT of every request in tile z/x/y, read as the district."""
    from app import db
    from layers import get_layer
    from layers.queries import tiles

    query = tiles.raw_query(get_layer("service_requests"), z, x, y, [])
    with engine.connect() as conn:
        conn.execute(
            sa.text(
                "select set_config('role', :role, true), set_config('blockdata.zone', '*', true)"
            ),
            {"role": db.READER_ROLE},
        )
        t = time.perf_counter()
        data = conn.execute(query).scalar()
        seconds = time.perf_counter() - t
        conn.rollback()
    return seconds * 1000, len(data or b"")


def paired(ports: dict[str, int], paths: list[str], rounds: int = 2) -> dict[str, list[float]]:
    """One client: each path from each server in turn (cache off: each request builds the
    tile), the order alternating, `rounds` times; per server and path the fastest time. The
    servers are compared under the same load, whatever else the machine does meanwhile."""
    conns = {name: http.client.HTTPConnection("127.0.0.1", port) for name, port in ports.items()}
    best: dict[str, list[float]] = {name: [math.inf] * len(paths) for name in ports}
    try:
        for r in range(rounds):
            for i, path in enumerate(paths):
                names = list(ports) if (i + r) % 2 == 0 else list(reversed(ports))
                for name in names:
                    t = time.perf_counter()
                    conns[name].request("GET", path, headers=HEADERS)
                    response = conns[name].getresponse()
                    response.read()
                    assert response.status == 200, (name, path, response.status)
                    best[name][i] = min(best[name][i], time.perf_counter() - t)
    finally:
        for conn in conns.values():
            conn.close()
    return best


# --- the servers compared: waitress in gunicorn's workers, gunicorn's gthread -------------


class SlowReaders:
    """`n` connections, each asking for an export of the requests in `bbox` and reading
    1 KB/s (a small receive buffer, as a slow link's), until closed."""

    def __init__(self, port: int, n: int, bbox: str) -> None:
        import socket

        self.sockets = []
        for i in range(n):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            fmt = "&f=csv" if i % 2 else ""
            head = "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())
            sock.sendall(
                f"GET /api/layers/service_requests/features?bbox={bbox}{fmt} HTTP/1.1\r\n"
                f"Host: bench\r\n{head}\r\n".encode()
            )
            sock.setblocking(False)
            self.sockets.append(sock)
        self.received = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.wait(1.0):
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    self.received += len(sock.recv(1024))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self.sockets:
            sock.close()


def patient(clients: int, work: Callable[[int], list[str]], port: int, timeout: float) -> Any:
    """run_clients, but a request unanswered after `timeout` s counts as such and ends its
    client: (latencies of the answered, how many answered, how many asked, wall s)."""
    latencies: list[float] = []
    asked = [0]
    lock = threading.Lock()

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        mine = []
        try:
            for path in work(i):
                with lock:
                    asked[0] += 1
                t = time.perf_counter()
                try:
                    conn.request("GET", path, headers=HEADERS)
                    response = conn.getresponse()
                    response.read()
                except OSError:
                    break
                assert response.status == 200, (path, response.status)
                mine.append(time.perf_counter() - t)
        finally:
            conn.close()
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, len(latencies), asked[0], time.perf_counter() - t0


def bench_workers(
    url: str,
    args: argparse.Namespace,
    paths: list[str],
    box: tuple[float, float, float, float],
    busiest: tuple[float, float, int],
    emit: Callable[[str], None],
) -> None:
    """Both kinds of server up at once, each case asked of them in turn: A B B A. The slow
    readers export the busiest 500 m square (quick to read: the table is in spatial order),
    so that what holds the threads is the reading, not the export."""
    c = args.clients
    lon, lat, dense = busiest
    square = f"{lon - 0.0025:.4f},{lat - 0.0025:.4f},{lon + 0.0025:.4f},{lat + 0.0025:.4f}"
    servers = {
        name: Server(url, args.threads, args.workers, 64 * 1024 * 1024, worker=worker)
        for name, worker in WORKER_CLASSES.items()
    }
    order = ["waitress", "gthread", "gthread", "waitress"] * args.pairs
    try:
        for server in servers.values():  # cold: every tile built once, then in the cache
            run_clients(c, shares(paths, c, 1), server.port)
            run_clients(c, lambda i: bbox_paths(box, 5, 1000 + i), server.port)
        cases: list[tuple[str, Callable[[int, int], tuple[list[float], float]]]] = [
            (
                f"tiles z10–18, warm, {c} clients",
                lambda port, k: run_clients(
                    c, shares(paths * max(1, args.warm_rounds // 2), c, 10 + k), port
                )[::2],
            ),
            (
                f"OGC items, small bbox (≈ 200 m), {c} clients",
                lambda port, k: run_clients(
                    c, lambda i: bbox_paths(box, args.bbox_requests // 2, 100 * k + i), port
                )[::2],
            ),
        ]
        for label, case in cases:
            got: dict[str, list[tuple[list[float], float, str]]] = {n: [] for n in servers}
            for k, name in enumerate(order):
                before = load()
                latencies, wall = case(servers[name].port, k)
                got[name].append((latencies, wall, before))
            cells = []
            for name in servers:
                lat = [x for r in got[name] for x in r[0]]
                wall = sum(r[1] for r in got[name])
                loads = ", ".join(r[2] for r in got[name])
                cells.append(
                    f"{name}: {len(lat) / wall:,.0f}/s, p50 {pct(lat, 0.5):.1f}, "
                    f"p99 {pct(lat, 0.99):.1f} (load {loads})"
                )
            emit(f"| {label}: waitress in gunicorn / gthread | {' / '.join(cells)} |")
        for name in ("gthread", "waitress"):
            slow = SlowReaders(servers[name].port, args.slow, square)
            try:
                time.sleep(5)  # the exports under way
                before = load()
                lat, answered, asked, wall = patient(c, shares(paths, c, 7), servers[name].port, 30)
            finally:
                slow.close()
            emit(
                f"| tiles z10–18, warm, {c} clients while {args.slow} clients read exports "
                f"of {dense:,} requests (GeoJSON or CSV) at 1 KB/s: {name} | {answered} of "
                f"{asked} answered in "
                f"{wall:.0f} s (30 s timeout), p50 "
                f"{pct(lat, 0.5) if lat else float('nan'):.1f} ms; load {before} |"
            )
    finally:
        for server in servers.values():
            server.stop()


def bench_against(
    url: str,
    args: argparse.Namespace,
    tiles: list[tuple[int, str]],
    emit: Callable[[str], None],
) -> None:
    """This checkout's server and another's (`--against`, e.g. the code before a change), both
    up at once with the tile cache off, asked in turn: 16 clients A B B A (`--pairs` times),
    then one client tile by tile (`paired`) for the cost of each build per zoom."""
    c = args.clients
    paths = [p for _, p in tiles]
    script = str(args.against.resolve() / "bench" / Path(__file__).name)
    servers = {
        "after": Server(url, args.threads, args.workers, 0),
        "before": Server(url, args.threads, args.workers, 0, script=script),
    }
    try:
        for server in servers.values():  # warm the connections and PostgreSQL's buffers
            run_clients(c, shares(paths, c, 1), server.port)
        got: dict[str, list[tuple[list[float], float, str]]] = {n: [] for n in servers}
        for k, name in enumerate(["after", "before", "before", "after"] * args.pairs):
            before = load()
            latencies, _, wall = run_clients(c, shares(paths, c, 20 + k), servers[name].port)
            got[name].append((latencies, wall, before))
        cells = []
        for name in servers:
            lat = [x for r in got[name] for x in r[0]]
            wall = sum(r[1] for r in got[name])
            cells.append(
                f"{name}: {len(lat) / wall:,.0f} tiles/s, p50 {pct(lat, 0.5):.1f}, "
                f"p99 {pct(lat, 0.99):.1f}"
            )
        loads = "; ".join(f"{name} " + ", ".join(r[2] for r in got[name]) for name in servers)
        emit(
            f"| tiles z10–18, cache off, {c} clients: this checkout / --against | "
            f"{' / '.join(cells)} | | | load {loads} |"
        )
        best = paired({name: s.port for name, s in servers.items()}, paths, rounds=3)
    finally:
        for server in servers.values():
            server.stop()
    emit("")
    emit("| zoom | tiles | after: median / max ms | before: median / max ms |")
    emit("|---:|---:|---:|---:|")
    for z in sorted({z for z, _ in tiles}):
        row = []
        for name in servers:
            v = [t for (tz, _), t in zip(tiles, best[name], strict=True) if tz == z]
            row.append(f"{statistics.median(v) * 1000:.1f} / {max(v) * 1000:.1f}")
        emit(f"| {z} | {sum(1 for tz, _ in tiles if tz == z)} | {row[0]} | {row[1]} |")


# --- live: a seeded server while requests come in ----------------------------------------


def seed(url: str, cache_dir: str, jobs: int, zooms: str) -> tuple[SeedReport, int, int]:
    """Seed `cache_dir` as `blockdata tiles seed` does: (report, files, bytes)."""
    from app import create_app, db, tile_cache, tile_seed
    from app.commands.tiles import parse_zooms

    app = create_app(app_config(url, 64 * 1024 * 1024, cache_dir, zooms))
    tile_cache.use_disk_cache(app)
    try:
        report = tile_seed.Seeder(app, parse_zooms(zooms)).run(jobs)
    finally:
        app.extensions[db.ENGINE_KEY].dispose()
    files, size = tile_cache.tile_cache(app).disk_usage()
    return report, files, size


def api_token(url: str) -> str:
    """An API token of the bench's district user (`session_cookie` made the user)."""
    from app.auth import new_token
    from layers.accounts import api_tokens, users

    token, digest = new_token()
    engine = make_engine(url)
    with engine.begin() as conn:
        uid = conn.execute(sa.select(users.c.id).where(users.c.name == "bench-district")).scalar()
        conn.execute(sa.insert(api_tokens).values(user_id=uid, token_sha256=digest))
    engine.dispose()
    return token


class Writer(threading.Thread):
    """Files one Open311 request every `every` seconds at a random point of the square
    ±`half` degrees around (lon, lat), until stopped; keeps the latencies."""

    DESCRIPTION = "基准测试：垃圾堆放 (bench)"

    def __init__(
        self, port: int, token: str, lon: float, lat: float, half: float, every: float = 1.0
    ) -> None:
        super().__init__(daemon=True)
        self.port, self.token, self.every = port, token, every
        self.lon, self.lat, self.half = lon, lat, half
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.done = threading.Event()
        self.rng = random.Random(5)

    def post(self) -> None:
        body = urllib.parse.urlencode(
            {
                "api_key": self.token,
                "service_code": "环境卫生",
                "description": self.DESCRIPTION,
                "long": f"{self.lon + self.rng.uniform(-self.half, self.half):.6f}",
                "lat": f"{self.lat + self.rng.uniform(-self.half, self.half):.6f}",
            }
        )
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        t = time.perf_counter()
        try:
            conn.request(
                "POST",
                "/open311/v2/requests.json",
                body=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            response = conn.getresponse()
            text = response.read()
        finally:
            conn.close()
        self.latencies.append(time.perf_counter() - t)
        if response.status != 200:
            self.failures.append(f"{response.status} {text[:200]!r}")

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.done.is_set():
            self.post()
            next_at += self.every
            self.done.wait(max(0.0, next_at - time.monotonic()))


def run_live(
    port: int, paths: list[str], clients: int, seconds: float
) -> tuple[list[float], Counter[str], float]:
    """`clients` threads GET random `paths` for `seconds`: latencies, where each tile came
    from (X-Tile-Cache), wall time."""
    latencies: list[float] = []
    sources: Counter[str] = Counter()
    lock = threading.Lock()
    errors: list[str] = []
    stop_at = time.monotonic() + seconds

    def client(i: int) -> None:
        rng = random.Random(100 + i)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        mine: list[float] = []
        seen: Counter[str] = Counter()
        while time.monotonic() < stop_at:
            path = rng.choice(paths)
            t = time.perf_counter()
            conn.request("GET", path, headers=HEADERS)
            response = conn.getresponse()
            body = response.read()
            mine.append(time.perf_counter() - t)
            seen[response.getheader("X-Tile-Cache") or "?"] += 1
            if response.status != 200:
                errors.append(f"{response.status} {path} {body[:200]!r}")
        conn.close()
        with lock:
            latencies.extend(mine)
            sources.update(seen)

    return latencies, sources, _threads(clients, client, errors)


def bench_live(
    url: str,
    args: argparse.Namespace,
    paths: list[str],
    centre: tuple[float, float],
    emit: Callable[[str], None],
) -> None:
    """3b: seed a cache, serve it (seeding in the background), read tiles while writing."""
    cache_dir = tempfile.mkdtemp(prefix="bench-tiles-live-")
    try:
        before = load()
        t = time.perf_counter()
        report, files, size = seed(url, cache_dir, args.seed_jobs, args.seed_zooms)
        seconds = time.perf_counter() - t
        per_zoom = ", ".join(
            f"z{z} {report.district[z]}+{report.commanders[z]}" for z in sorted(report.district)
        )
        emit(
            f"| seed the disk cache (`blockdata tiles seed --zooms {args.seed_zooms} --jobs "
            f"{args.seed_jobs}`) | "
            f"{report.tiles:,} tiles in {seconds:.0f} s | | | "
            f"{files:,} files, {size / 2**20:,.0f} MiB; tiles per zoom, district + "
            f"commanders: {per_zoom}; load {before} |"
        )
        server = Server(
            url,
            args.threads,
            args.workers,
            64 * 1024 * 1024,
            "seed",
            cache_dir=cache_dir,
            zooms=args.seed_zooms,
        )
        runs = []
        try:
            # A server starting on a seeded cache checks every tile once (its version and
            # file); the runs measure the server after that, as it runs day to day.
            started = time.time()
            check = wait_for_first_pass(Path(cache_dir), started)
            emit(
                f"| the server's first seeding pass over the seeded cache | "
                f"{check['tiles']:,} tiles checked in {check['seconds']:.0f} s | | | "
                f"{check['built']:,} built; load {load()} |"
            )
            token = api_token(url)
            for every in args.live_every:
                writer = Writer(server.port, token, *centre, half=0.008, every=every)
                writer.post()  # the server's first intake loads the placer
                writer.latencies.clear()
                before = load()
                writer.start()
                lat_, sources, wall = run_live(server.port, paths, args.clients, args.live_seconds)
                writer.done.set()
                writer.join()
                if writer.failures:
                    raise RuntimeError(writer.failures[:3])
                runs.append((every, writer, lat_, sources, wall, before))
        finally:
            server.stop()
        for every, writer, lat_, sources, wall, before in runs:
            total = sum(sources.values())
            hits = sources["memory"] + sources["disk"]
            emit(
                f"| tiles z10–18, live: seeded cache, 1 Open311 request every {every:g} s in "
                f"the area, {args.clients} clients | {len(lat_) / wall:,.0f} tiles/s | "
                f"{pct(lat_, 0.5):.1f} | {pct(lat_, 0.99):.1f} | {args.live_seconds:.0f} s, "
                f"{total:,} tiles: hit rate {hits / total:.1%} (memory {sources['memory']:,}, "
                f"disk {sources['disk']:,}, built {sources['built']:,}); "
                f"{len(writer.latencies)} requests filed, p50 "
                f"{pct(writer.latencies, 0.5):.0f} ms; load {before} |"
            )
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
        forget_writes(url)


def wait_for_first_pass(directory: Path, since: float, timeout: float = 600) -> dict[str, Any]:
    """The seeding worker's report of its first pass after `since` (app.tile_seed.STATUS)."""
    from app.tile_seed import STATUS

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status: dict[str, Any] = json.loads((directory / STATUS).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            status = {}
        if status.get("finished_at", 0) > since:
            return status
        time.sleep(1)
    raise RuntimeError(f"no seeding pass finished within {timeout:.0f} s")


def forget_writes(url: str) -> None:
    """Delete the requests the writer filed (the database stays as loaded for the next run)."""
    from etl.aggregates import refresh_request_aggregates

    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("delete from service_requests where source = 'open311' and description = :d"),
            {"d": Writer.DESCRIPTION},
        )
        refresh_request_aggregates(conn)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=WORKERS, help="server processes")
    parser.add_argument("--threads", type=int, default=THREADS, help="threads per process")
    parser.add_argument("--bbox-requests", type=int, default=100, help="per client")
    parser.add_argument("--warm-rounds", type=int, default=8, help="passes over the tiles")
    parser.add_argument("--reuse", action="store_true", help="keep a loaded database")
    parser.add_argument("--live-seconds", type=float, default=120.0, help="3b's duration")
    parser.add_argument(
        "--live-every",
        type=lambda v: [float(x) for x in v.split(",")],
        default=[10.0, 1.0],
        help="3b: seconds between Open311 requests, one run each (default 10,1)",
    )
    parser.add_argument("--seed-jobs", type=int, default=2, help="3b's seeding threads")
    parser.add_argument(
        "--only", choices=["live", "workers", "against"], help="run only this measurement"
    )
    parser.add_argument(
        "--against",
        type=Path,
        help="--only against: another checkout (the code before a change), served beside this one",
    )
    parser.add_argument("--db", default=DB, help="the database to load (or reuse)")
    parser.add_argument("--seed-zooms", default="10-18", help="3b's seeded zooms (smoke: fewer)")
    parser.add_argument("--serve", nargs=9, help=argparse.SUPPRESS)
    parser.add_argument("--slow", type=int, default=16, help="--only workers: slow readers")
    parser.add_argument("--pairs", type=int, default=3, help="--only workers: A B B A rounds")
    args = parser.parse_args()
    if args.serve:
        url, port, threads, workers, cache, options, cache_dir, zooms, worker = args.serve
        serve_main(
            url,
            int(port),
            int(threads),
            int(workers),
            int(cache),
            options,
            cache_dir,
            zooms,
            worker,
        )
        return

    started = load()
    server_url = resolve_database_url(from_env())
    t = time.perf_counter()
    from bench_etl import loaded_database

    url = loaded_database(server_url, args.db, args.rows, args.reuse)
    load_seconds = time.perf_counter() - t
    HEADERS["Cookie"] = session_cookie(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("select count(*) from service_requests").scalar_one()
        pg = str(conn.exec_driver_sql("show server_version").scalar_one()).split()[0]
        leakproof = conn.exec_driver_sql(
            "select proleakproof from pg_proc where proname = 'geometry_overlaps'"
        ).scalar()
    box = district_box(engine)
    lon, lat, dense = busiest_area(engine)
    tiles = tile_paths(lon, lat)
    paths = [p for _, p in tiles]
    zoom_of = dict((p, z) for z, p in tiles)
    c, workers, threads = args.clients, args.workers, args.threads
    server_kind = (
        f"gunicorn, {workers} worker processes × {threads} threads, waitress in each"
        if workers > 1
        else f"waitress, {threads} threads"
    )

    def emit(line: str) -> None:
        lines.append(line)
        print(line, file=sys.stderr, flush=True)

    lines = [
        "## OGC API – Features and vector tiles",
        "",
        f"`python bench/bench_ogc_tiles.py --rows {args.rows}` on {os.cpu_count()} cores, "
        f"PostgreSQL {pg}; {rows:,} requests (loaded in {load_seconds:.0f} s); "
        f"server: `blockdata serve --workers {workers} --threads {threads}` ({server_kind}) "
        f"in its own process, {c} clients (Python threads, keep-alive) on 127.0.0.1; "
        f"read as a district user under row-level security, `&&` "
        f"{'leakproof' if leakproof else 'not leakproof'}; {time.strftime('%Y-%m-%d')}.",
        "",
        "| measurement | result | p50 ms | p99 ms | note |",
        "|---|---:|---:|---:|---|",
    ]

    if args.only == "live":
        bench_live(url, args, paths, (lon, lat), emit)
        print("\n".join(lines))
        engine.dispose()
        return
    if args.only == "against":
        if args.against is None:
            parser.error("--only against needs --against DIR")
        lines[2] = lines[2].replace(
            f"--rows {args.rows}`", f"--rows {args.rows} --only against --against DIR`"
        )
        bench_against(url, args, tiles, emit)
        lines += ["", f"Load average (1/5 min) at the start {started}, at the end {load()}."]
        print("\n".join(lines))
        engine.dispose()
        return
    if args.only == "workers":
        lines[2] = lines[2].replace(f"--rows {args.rows}`", f"--rows {args.rows} --only workers`")
        bench_workers(url, args, paths, box, (lon, lat, dense), emit)
        lines += ["", f"Load average (1/5 min) at the start {started}, at the end {load()}."]
        print("\n".join(lines))
        engine.dispose()
        return

    server = Server(url, threads, workers, 64 * 1024 * 1024)
    try:
        get(server.port, "/ogc/collections/service_requests/items?limit=1")
        before = load()
        total, seconds = bench_paging(server.port)
        assert total == rows, (total, rows)
        emit(
            f"| OGC items, limit=1000, all pages by `next`, 1 client | "
            f"{total / seconds:,.0f} features/s | | | {total:,} features in {seconds:.1f} s; "
            f"load {before} |"
        )
        run_clients(c, lambda i: bbox_paths(box, 5, 1000 + i), server.port)  # warm-up
        before = load()
        lat_, sizes, wall = run_clients(
            c, lambda i: bbox_paths(box, args.bbox_requests, i), server.port
        )
        emit(
            f"| OGC items, small bbox (≈ 200 m), {c} clients | {len(lat_) / wall:,.0f} req/s | "
            f"{pct(lat_, 0.5):.1f} | {pct(lat_, 0.99):.1f} | {len(lat_):,} requests, "
            f"mean {statistics.mean(sizes) / 1024:.0f} KB; load {before} |"
        )

        before = load()
        cold, _, wall = run_clients(c, shares(paths, c, 1), server.port)
        emit(
            f"| tiles z10–18, cold cache, {c} clients | {len(cold) / wall:,.0f} tiles/s | "
            f"{pct(cold, 0.5):.1f} | {pct(cold, 0.99):.1f} | {len(paths)} tiles over "
            f"the busiest area ({dense:,} requests in its 500 m square), each built once; "
            f"load {before} |"
        )
        before = load()
        warm, _, wall = run_clients(c, shares(paths * args.warm_rounds, c, 2), server.port)
        emit(
            f"| tiles z10–18, warm, {c} clients | {len(warm) / wall:,.0f} tiles/s | "
            f"{pct(warm, 0.5):.1f} | {pct(warm, 0.99):.1f} | the same tiles "
            f"{args.warm_rounds}×, from the cache; load {before} |"
        )
        sizes_by_zoom: dict[int, list[int]] = {}
        kinds: dict[int, set[str]] = {}
        for path in paths:
            http_conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            http_conn.request("GET", path, headers=HEADERS)
            resp = http_conn.getresponse()
            body = resp.read()
            z = zoom_of[path]
            sizes_by_zoom.setdefault(z, []).append(len(body))
            kinds.setdefault(z, set()).add(resp.getheader("X-Tile-Kind") or "?")
            http_conn.close()
    finally:
        server.stop()

    bench_live(url, args, paths, (lon, lat), emit)

    servers = {name: Server(url, threads, workers, 0, name) for name in STOCK}
    try:
        before = load()
        nocache, _, wall = run_clients(c, shares(paths, c, 3), servers["ours"].port)
        emit(
            f"| tiles z10–18, cache off, {c} clients | {len(nocache) / wall:,.0f} "
            f"tiles/s | {pct(nocache, 0.5):.1f} | {pct(nocache, 0.99):.1f} | every "
            f"request builds its tile; load {before} |"
        )
        ports = {name: server.port for name, server in servers.items()}
        best = paired(ports, paths)
        before = load()
        bbox = paired(ports, bbox_paths(box, 100, 99))
        emit(
            f"| OGC items, small bbox, 1 client: our settings / stock JIT and parallel plans | "
            f"| {pct(bbox['ours'], 0.5):.1f} / {pct(bbox['stock'], 0.5):.1f} | "
            f"{pct(bbox['ours'], 0.99):.1f} / {pct(bbox['stock'], 0.99):.1f} | 100 requests "
            f"asked of both servers in turn, the faster of two tries; load {before} |"
        )
    finally:
        for server in servers.values():
            server.stop()
    by_zoom: dict[str, dict[int, list[float]]] = {name: {} for name in STOCK}
    for name, times in best.items():
        for path, seconds in zip(paths, times, strict=True):
            by_zoom[name].setdefault(zoom_of[path], []).append(seconds)
    biggest = max(max(v) for v in sizes_by_zoom.values())
    lines.append(f"| largest tile | {biggest / 1024:.0f} KB | | | limit 500 KB |")

    raw: dict[int, tuple[float, int]] = {}
    for z in range(10, 19):
        x, y = tile_of(lon, lat, z)
        raw[z] = raw_mvt(engine, z, x, y)
    lines += [
        "",
        "Per zoom, cache off, one client (the cost of building each tile alone: the fastest "
        "of two requests); beside it the same from a second server whose connections keep "
        "PostgreSQL's stock `jit=on`, `max_parallel_workers_per_gather=2` (the two asked in "
        "turn, tile by tile), and the obvious alternative: the bare `ST_AsMVT` of every "
        "request in the busiest tile of the zoom (as the district, in SQL, no HTTP):",
        "",
        "| zoom | tiles | kind | median ms | max ms | max KB | stock settings: median / max ms "
        "| raw ST_AsMVT ms | raw KB |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for z in sorted(by_zoom["ours"]):
        v, w = by_zoom["ours"][z], by_zoom["stock"][z]
        lines.append(
            f"| {z} | {len(v)} | {'/'.join(sorted(kinds[z]))} | "
            f"{statistics.median(v) * 1000:.1f} | {max(v) * 1000:.1f} | "
            f"{max(sizes_by_zoom[z]) / 1024:.0f} | "
            f"{statistics.median(w) * 1000:.1f} / {max(w) * 1000:.1f} | "
            f"{raw[z][0]:,.0f} | {raw[z][1] / 1024:,.0f} |"
        )
    lines += ["", f"Load average (1/5 min) at the start {started}, at the end {load()}."]
    print("\n".join(lines))
    engine.dispose()


if __name__ == "__main__":
    main()
