"""Benchmark the case API (全响应) at 1M cases and ~6M history rows, beside the obvious
alternative (the state read back from the history) in the same run.

    python bench/bench_cases_api.py [--cases 1000000] [--clients 16] [--per-client 40]
                                    [--workers 2] [--threads 8] [--pace 0.25] [--reuse]
                                    [--out docs/benchmarks.md]

Fills a throwaway database `blockdata_bench_cases` in SQL (demo boundaries and units; N
service requests and their cases: 94 % closed with six transitions each, the rest open in
every state; ~6 history rows a case), then serves the app in its own process as `blockdata
serve --workers W --threads T` does and measures with Python client threads on keep-alive
connections (bearer tokens, so each request is authenticated and audited as the real ones):
  1. transitions: `--clients` clients, each a department user of its own unit with a district
     dispatcher's token beside it, take cases of the 受理 pool through dispatch → accept →
     contact → resolve, one POST each (the version from the previous answer); p50/p90/p99 of
     every POST and the throughput; then one client alone (the service time), and the
     `--clients` clients at a user's rhythm, one POST every `--pace` seconds each (0.25 s:
     64 POSTs/s together, some 300 times the district's average of ~0.2 a second — a year's
     million requests with six steps each);
  2. the street queue's first page (`GET /api/cases?street=…&limit=50`, which carries the
     counts by state and by unit), as the street's commander (row-level security) and as the
     district; the same for a department user's queue; sequential, p50/p99;
  3. the obvious alternative, in this process on the same database: the current state of
     each case derived from its history (the latest transition, `DISTINCT ON`) instead of
     the case row — the street queue's counts by state, and a case's state before a
     transition (read row vs read and replay its history with layers.cases.machine.replay).
Results replace the `bench_cases_api` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_etl import fresh_database, load_district, machine, write_section  # noqa: E402
from bench_export import free_port, serve  # noqa: E402

from app.auth import new_token  # noqa: E402
from app.config import from_env, resolve_database_url  # noqa: E402
from app.db import make_engine  # noqa: E402
from layers.accounts import api_tokens, users  # noqa: E402
from tests.helpers import add_user  # noqa: E402  (a user as the tests make one)

DB = "blockdata_bench_cases"
STEPS = ("dispatch", "accept", "contact", "resolve", "callback", "close")
STATES = ("dispatched", "accepted", "contacted", "resolved", "called_back", "closed")
CATEGORIES = ("噪声扰民", "占道经营", "垃圾清运", "供暖", "违法建设", "物业管理", "道路破损")


def fill(url: str, n: int) -> None:
    """Boundaries, units, N requests and cases and their histories, set-based."""
    from etl.demo.load import load_units

    engine = make_engine(url)
    with tempfile.TemporaryDirectory() as tmp:
        load_district(engine, Path(tmp))
        with engine.begin() as conn:
            load_units(conn, Path(tmp) / "units")
    t = time.perf_counter()
    cats = "ARRAY[" + ",".join(f"'{c}'" for c in CATEGORIES) + "]"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE cases DISABLE TRIGGER source_exists")  # rows made consistent
        conn.execute(
            f"""
            INSERT INTO service_requests (source, source_id, received_at, category, street_code,
                                          status, channel, geom)
            SELECT '12345', 'B' || g,
                   timestamptz '2025-12-01 00:00+08' + g * interval '31 seconds',
                   ({cats})[1 + g % {len(CATEGORIES)}],
                   s.codes[1 + g % array_length(s.codes, 1)], '已办结', '12345热线',
                   ST_Translate(s.points[1 + g % array_length(s.codes, 1)],
                                (g % 97) * 2e-5, (g % 89) * 2e-5)
            FROM generate_series(1, {n}) g,
                 (SELECT array_agg(code ORDER BY code) AS codes,
                         array_agg(ST_PointOnSurface(geom) ORDER BY code) AS points
                  FROM streets) s
            """
        )
        # 94 % closed; the rest spread over the open states (0 = 受理 … 4 = 已办结 / 已回访)
        conn.execute(
            """
            CREATE TEMP TABLE plan AS
            SELECT r.id, r.street_code, r.category, r.received_at,
                   CASE WHEN r.id % 100 < 94 THEN 6 ELSE (r.id % 100 - 94) END AS steps,
                   u.codes[1 + r.id % array_length(u.codes, 1)] AS unit
            FROM service_requests r
            JOIN (SELECT street_code, array_agg(code ORDER BY code) AS codes FROM units
                  WHERE kind = 'department' GROUP BY street_code) u USING (street_code)
            """
        )
        conn.execute(
            """
            INSERT INTO cases (kind, service_request_id, street_code, category, state, version,
                               main_unit, received_at, dispatched_at, due_at, accepted_at,
                               contacted_at, resolved_at, called_back_at, closed_at, rating,
                               updated_at)
            SELECT 'service_request', id, street_code, category,
                   (ARRAY['received','dispatched','accepted','contacted','resolved',
                          'called_back','closed'])[steps + 1], steps,
                   CASE WHEN steps > 0 THEN unit END, received_at,
                   CASE WHEN steps >= 1 THEN received_at + interval '20 minutes' END,
                   CASE WHEN steps >= 1 THEN received_at + interval '7 days' END,
                   CASE WHEN steps >= 2 THEN received_at + interval '2 hours' END,
                   CASE WHEN steps >= 3 THEN received_at + interval '5 hours' END,
                   CASE WHEN steps >= 4 THEN received_at + interval '3 days' END,
                   CASE WHEN steps >= 5 THEN received_at + interval '4 days' END,
                   CASE WHEN steps >= 6 THEN received_at + interval '5 days' END,
                   CASE WHEN steps >= 5 THEN '满意' END,
                   received_at + steps * interval '1 day'
            FROM plan
            """
        )
        conn.execute(
            f"""
            INSERT INTO case_history (case_id, action, from_state, to_state, user_name, role,
                                      unit_code, at, fields)
            SELECT c.id, (ARRAY{list(STEPS)})[k],
                   (ARRAY['received'] || ARRAY{list(STATES)})[k],
                   (ARRAY{list(STATES)})[k],
                   CASE WHEN k IN (2, 3, 4) THEN 'bench-unit' ELSE 'bench-district' END,
                   CASE WHEN k IN (2, 3, 4) THEN 'department' ELSE 'district' END,
                   CASE WHEN k IN (2, 3, 4) THEN c.main_unit END,
                   c.received_at + k * interval '1 hour',
                   CASE k WHEN 1 THEN jsonb_build_object('main_unit', c.main_unit,
                                                         'due_at', c.due_at)
                          WHEN 4 THEN '{{"result": "已处理完毕"}}'::jsonb
                          WHEN 5 THEN '{{"valid": true, "contacted": true, "solved": true,
                                         "rating": "满意"}}'::jsonb
                          ELSE '{{}}'::jsonb END
            FROM cases c, generate_series(1, c.version) k
            ORDER BY c.id, k
            """
        )
        conn.execute("ALTER TABLE cases ENABLE TRIGGER source_exists")
        conn.execute("VACUUM ANALYZE service_requests")
        conn.execute("VACUUM ANALYZE cases")
        conn.execute("VACUUM ANALYZE case_history")
    engine.dispose()
    print(f"filled {n} cases in {time.perf_counter() - t:.0f} s", flush=True)


def account(url: str, name: str, role: str, street: str | None = None, unit: str | None = None):  # type: ignore[no-untyped-def]
    """A user of `role` (bound to `street` / `unit`; made once, as the tests make users) and a
    fresh API token."""
    engine = make_engine(url)
    token, digest = new_token()
    with engine.begin() as conn:
        uid = conn.execute(sa.select(users.c.id).where(users.c.name == name)).scalar()
        if uid is None:
            uid = add_user(conn, name, role, street, unit)
        conn.execute(sa.insert(api_tokens).values(user_id=uid, token_sha256=digest))
    engine.dispose()
    return token


class Client:
    """One keep-alive connection with a bearer token."""

    def __init__(self, port: int, token: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict, float]:  # type: ignore[type-arg]
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        t = time.perf_counter()
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        raw = response.read()
        took = time.perf_counter() - t
        return response.status, json.loads(raw) if raw else {}, took


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def transitions(
    port: int, url: str, clients: int, per_client: int, pace: float = 0.0
) -> dict[str, float]:
    """`clients` threads, each taking `per_client` cases from 受理 to 已办结 (the first cases
    still in 受理: a second call takes others). `pace` > 0: each client sends one POST every
    `pace` seconds (a user's rhythm, from a random phase) instead of back to back."""
    with psycopg.connect(url) as conn:
        units = [
            r[0]
            for r in conn.execute(
                "SELECT code FROM units WHERE kind = 'department' ORDER BY code LIMIT %s",
                (clients,),
            )
        ]
        pool = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM cases WHERE state = 'received' ORDER BY id LIMIT %s",
                (clients * per_client,),
            )
        ]
    if len(pool) < clients * per_client:
        raise SystemExit(f"only {len(pool)} cases in 受理: fewer --per-client")
    dispatcher = account(url, "bench-dispatcher", "district")
    tokens = [account(url, f"bench-unit-{u}", "department", unit=u) for u in units]
    samples: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def work(i: int) -> None:
        mine: list[float] = []
        boss, unit = Client(port, dispatcher), Client(port, tokens[i])
        barrier.wait()
        due = time.perf_counter() + random.random() * pace
        for case in pool[i * per_client : (i + 1) * per_client]:
            version = 0
            for who, action, extra in (
                (boss, "dispatch", {"main_unit": units[i]}),
                (unit, "accept", {}),
                (unit, "contact", {}),
                (unit, "resolve", {"result": "已处理完毕"}),
            ):
                if pace:
                    time.sleep(max(0.0, due - time.perf_counter()))
                    due += pace
                status, body, took = who.call(
                    "POST",
                    f"/api/cases/{case}/transitions",
                    {"action": action, "version": version, **extra},
                )
                if status != 201:
                    errors.append(f"{action} {case}: {status} {body}")
                    return
                version = body["version"] if "version" in body else body["case"]["version"]
                mine.append(took)
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    if errors:
        raise SystemExit("transition failed: " + errors[0])
    return {
        "n": len(samples),
        "p50": pct(samples, 0.5),
        "p90": pct(samples, 0.9),
        "p99": pct(samples, 0.99),
        "per_s": len(samples) / wall,
    }


def queue(port: int, token: str, path: str, rounds: int) -> dict[str, float]:
    client = Client(port, token)
    status, body, _ = client.call("GET", path)
    if status != 200 or "counts" not in body:
        raise SystemExit(f"GET {path}: {status} {str(body)[:300]}")
    samples = []
    for _ in range(rounds):
        status, body, took = client.call("GET", path)
        assert status == 200
        samples.append(took)
    total = sum(body["counts"]["by_state"].values())
    return {"p50": pct(samples, 0.5), "p99": pct(samples, 0.99), "cases": total}


def alternative(url: str, street: str, rounds: int) -> dict[str, float]:
    """The state from the history instead of the case row: the street's counts by state, and
    one case's state before a transition (its row, or its history replayed)."""
    from layers.cases.machine import replay
    from layers.cases.store import case_of, transitions

    engine = make_engine(url)
    out: dict[str, float] = {}
    with engine.connect() as conn:

        def best(stmt: str, **params: object) -> float:
            times = []
            for _ in range(rounds):
                t = time.perf_counter()
                conn.execute(sa.text(stmt), params).all()
                times.append(time.perf_counter() - t)
            return statistics.median(times) * 1000

        out["counts_row"] = best(
            "SELECT state, count(*) FROM cases WHERE street_code = :s GROUP BY state", s=street
        )
        out["counts_history"] = best(
            """SELECT to_state, count(*) FROM (
                 SELECT DISTINCT ON (h.case_id) h.to_state FROM case_history h
                 JOIN cases c ON c.id = h.case_id WHERE c.street_code = :s
                 ORDER BY h.case_id, h.id DESC) latest GROUP BY to_state""",
            s=street,
        )
        ids = [
            r[0]
            for r in conn.execute(
                sa.text("SELECT id FROM cases WHERE state = 'closed' ORDER BY random() LIMIT :n"),
                {"n": rounds * 10},
            )
        ]
        row_times, replay_times = [], []
        for case_id in ids:
            t = time.perf_counter()
            row = conn.execute(sa.text("SELECT * FROM cases WHERE id = :i"), {"i": case_id})
            case_of(row.mappings().one())
            row_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            head = conn.execute(sa.text("SELECT * FROM cases WHERE id = :i"), {"i": case_id})
            first = head.mappings().one()
            hist = conn.execute(
                sa.text("SELECT * FROM case_history WHERE case_id = :i ORDER BY id"), {"i": case_id}
            )
            assert replay(transitions(list(hist.mappings()))).state == first["state"]
            replay_times.append(time.perf_counter() - t)
        out["state_row"] = statistics.median(row_times) * 1000
        out["state_replay"] = statistics.median(replay_times) * 1000
    engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--per-client", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument(
        "--pace", type=float, default=0.25, help="seconds between a paced client's POSTs"
    )
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()

    server_url = resolve_database_url(from_env())
    if args.reuse:
        from sqlalchemy.engine import make_url

        url = make_url(server_url).set(database=DB).render_as_string(hide_password=False)
    else:
        url = fresh_database(server_url, DB)
        fill(url, args.cases)
    with psycopg.connect(url) as conn:
        n_cases, n_history = conn.execute(
            "SELECT (SELECT count(*) FROM cases), (SELECT count(*) FROM case_history)"
        ).fetchone()
        street, unit = conn.execute(
            "SELECT street_code, main_unit FROM cases WHERE main_unit IS NOT NULL "
            "GROUP BY 1, 2 ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
    print(f"{n_cases} cases, {n_history} history rows", flush=True)

    port = free_port()
    proc = serve(url, port, args.workers, args.threads)
    try:
        load = os.getloadavg()[0]
        moves = transitions(port, url, args.clients, args.per_client)
        print(f"transitions: {moves}", flush=True)
        alone = transitions(port, url, 1, args.per_client)
        print(f"transitions, one client: {alone}", flush=True)
        paced = transitions(port, url, args.clients, args.per_client // 2, pace=args.pace)
        print(f"transitions, paced: {paced}", flush=True)
        commander = account(url, f"bench-commander-{street}", "commander", street=street)
        district = account(url, "bench-district-q", "district")
        department = account(url, f"bench-unit-{unit}", "department", unit=unit)
        first = f"/api/cases?street={street}&limit=50"
        queues = {
            "commander": queue(port, commander, first, args.rounds),
            "district": queue(port, district, first, args.rounds),
            "department": queue(port, department, "/api/cases?limit=50", args.rounds),
        }
        print(f"queues: {queues}", flush=True)
    finally:
        proc.terminate()
        proc.wait()
    alt = alternative(url, street, args.rounds)
    print(f"alternative: {alt}", flush=True)

    when = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    lines = [
        "<!-- bench_cases_api:start -->",
        "## The case API (全响应): transitions and queues — `bench/bench_cases_api.py`",
        "",
        f"`python bench/bench_cases_api.py --cases {args.cases} --clients {args.clients} "
        f"--per-client {args.per_client} --workers {args.workers} --threads {args.threads} "
        f"--pace {args.pace:g}` "
        f"on {machine()}, {when}; {n_cases:,} cases, {n_history:,} history rows; "
        f"load average {load:.1f} at the start (other work shared the machine).",
        "",
        "| measure | p50 ms | p99 ms | note |",
        "|---|---:|---:|---|",
        f"| transition POST, {args.clients} clients (dispatch/accept/contact/resolve) "
        f"| {moves['p50']:.1f} | {moves['p99']:.1f} | {moves['n']} POSTs, p90 "
        f"{moves['p90']:.1f} ms, {moves['per_s']:.0f}/s; target p50 < 30, p99 < 100 |",
        f"| transition POST, 1 client (the service time) | {alone['p50']:.1f} "
        f"| {alone['p99']:.1f} | {alone['n']} POSTs, {alone['per_s']:.0f}/s |",
        f"| transition POST, {args.clients} clients at one POST per {args.pace:g} s each "
        f"| {paced['p50']:.1f} | {paced['p99']:.1f} | {paced['n']} POSTs, "
        f"{paced['per_s']:.0f}/s offered together |",
    ]
    for who, q in queues.items():
        lines.append(
            f"| queue first page + counts, as {who} | {q['p50']:.1f} | {q['p99']:.1f} "
            f"| {q['cases']:,} cases counted; target < 100 |"
        )
    lines += [
        "",
        "The obvious alternative, the state derived from the history (same database, this "
        "process, median ms):",
        "",
        "| measure | from the case row | from the history | ",
        "|---|---:|---:|",
        f"| a street's counts by state ({street}) | {alt['counts_row']:.1f} "
        f"| {alt['counts_history']:.1f} |",
        f"| one case's current state before a move | {alt['state_row']:.2f} "
        f"| {alt['state_replay']:.2f} |",
        "<!-- bench_cases_api:end -->",
    ]
    section = "\n".join(lines)
    print(section)
    write_section(args.out, "bench_cases_api", section)


if __name__ == "__main__":
    main()
