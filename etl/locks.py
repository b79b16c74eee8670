"""Heavy locks for loads, taken so that readers are never deadlocked and never queue for long.

A bulk load rebuilds a table's indexes and an aggregate rebuild swaps tables: both need
ACCESS EXCLUSIVE locks, which conflict with every reader. `acquire` takes all the locks a
step needs in one attempt, inside a savepoint, and an attempt — from its first lock request
to holding every lock, or giving up — lasts less than the server's `deadlock_timeout`:

- a reader who arrives meanwhile queues behind the load's request, so no reader waits for a
  load that does not hold its locks yet for longer than one attempt (`LockPolicy.wait`,
  at most 0.8 × deadlock_timeout);
- the load holds no lock a reader conflicts with before the attempt, so every reader that
  ends up waiting for it started waiting during the attempt. PostgreSQL checks a waiting
  session for deadlocks once, deadlock_timeout after its wait began: by then the attempt is
  over — the load holds its locks and waits for nothing, or has let them all go — and no
  cycle through the load is left to find. No reader is ever a DeadlockDetected victim of a
  load, in whatever order the readers take their tables;
- advisory locks are tried, never waited for.

When a lock is not granted in time, the savepoint is rolled back (releasing every lock of the
attempt), the load pauses — doubling each time, with jitter — and tries again; after
`LockPolicy.tries` attempts it raises `LockBusy`, naming the tables and the sessions that
held them, and the caller's transaction is as it was before. Once it holds them, the load
keeps the locks until its transaction ends: its caller commits soon after.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
LOCK_NOT_AVAILABLE = "55P03"
DEADLOCK_DETECTED = "40P01"


@dataclass(frozen=True)
class LockPolicy:
    """How long a load waits for its locks, and how often it tries."""

    wait: float = 0.8  # seconds one attempt may last (capped at 0.8 × deadlock_timeout)
    tries: int = 30
    pause: float = 0.1  # the first pause between tries; it doubles up to `max_pause`
    max_pause: float = 2.0


DEFAULT_POLICY = LockPolicy()


class LockBusy(RuntimeError):
    """Other sessions held a table past every try; nothing was changed."""


@dataclass(frozen=True)
class Holder:
    pid: int
    mode: str
    application: str
    state: str
    seconds: float

    def __str__(self) -> str:
        app = f" {self.application}" if self.application else ""
        return f"pid {self.pid}{app} ({self.mode}, {self.state}, {self.seconds:.0f} s)"


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None)


def _set_lock_timeout(conn: sa.Connection, seconds: float) -> None:
    ms = max(1, round(seconds * 1000))
    conn.execute(sa.select(sa.func.set_config("lock_timeout", f"{ms}ms", True)))


def _deadlock_timeout(conn: sa.Connection) -> float:
    ms = conn.execute(
        sa.text("select setting::int from pg_settings where name = 'deadlock_timeout'")
    ).scalar_one()
    return float(ms) / 1000


def holders(conn: sa.Connection, tables: Sequence[str]) -> list[Holder]:
    """The other sessions holding locks on `tables`, the longest-running first."""
    rows = conn.execute(
        sa.text(
            """
            select distinct on (l.pid) l.pid, l.mode, coalesce(a.application_name, ''),
                   coalesce(a.state, ''),
                   extract(epoch from now() - coalesce(a.xact_start, a.backend_start))
              from pg_locks l left join pg_stat_activity a using (pid)
             where l.locktype = 'relation' and l.granted and l.pid <> pg_backend_pid()
               and l.relation = any(cast(:tables as regclass[]))
             order by l.pid
            """
        ),
        {"tables": list(tables)},
    ).all()
    found = [Holder(int(r[0]), str(r[1]), str(r[2]), str(r[3]), float(r[4] or 0)) for r in rows]
    return sorted(found, key=lambda h: -h.seconds)


def acquire(
    conn: sa.Connection,
    tables: Sequence[tuple[str, str]],
    *,
    advisory: Sequence[str] = (),
    policy: LockPolicy | None = None,
) -> int:
    """Take every table lock `(table, mode)` of `tables` and every advisory lock (hashtext
    keys) of `advisory`, all of them or none (see the module doc); the number of attempts
    it took. The locks last until the caller's transaction ends."""
    if not tables and not advisory:
        return 0
    policy = policy or DEFAULT_POLICY
    previous = conn.execute(sa.select(sa.func.current_setting("lock_timeout"))).scalar_one()
    budget = min(policy.wait, 0.8 * _deadlock_timeout(conn))
    names = [t for t, _ in tables]
    for attempt in range(1, policy.tries + 1):
        savepoint = conn.begin_nested()
        started = time.monotonic()
        try:
            for table, mode in tables:
                left = budget - (time.monotonic() - started)
                if left < 0.001:
                    raise _Busy(table)
                _set_lock_timeout(conn, left)
                conn.exec_driver_sql(f'lock table "{table}" in {mode} mode')
            for key in advisory:
                got = conn.execute(
                    sa.select(sa.func.pg_try_advisory_xact_lock(sa.func.hashtext(key)))
                ).scalar_one()
                if not got:
                    raise _Busy(key)
            conn.execute(sa.select(sa.func.set_config("lock_timeout", previous, True)))
        except (sa.exc.OperationalError, _Busy) as exc:
            savepoint.rollback()
            busy = isinstance(exc, _Busy) or _sqlstate(exc) in (
                LOCK_NOT_AVAILABLE,
                DEADLOCK_DETECTED,
            )
            if not busy:
                raise
            if attempt == policy.tries:
                raise LockBusy(_busy_message(conn, names, advisory, attempt)) from exc
            pause = min(policy.max_pause, policy.pause * 2 ** (attempt - 1))
            _sleep(pause * random.uniform(0.5, 1.0))
        else:
            savepoint.commit()
            return attempt
    raise AssertionError("unreachable")  # pragma: no cover


class _Busy(Exception):
    """A lock of the attempt was not to be had in time."""


def _sleep(seconds: float) -> None:
    """Pause between tries (a seam for tests that want to see the retries)."""
    time.sleep(seconds)


def _busy_message(
    conn: sa.Connection, tables: Sequence[str], advisory: Sequence[str], tries: int
) -> str:
    held: list[Any] = holders(conn, tables) if tables else []
    who = "; ".join(map(str, held[:5])) or "另一次加载或刷新 another load or refresh"
    what = ", ".join([*tables, *advisory])
    return (
        f"无法取得 {what} 的锁：{tries} 次尝试后放弃，数据库未改动；占用者 held by: {who}. "
        f"could not lock {what} after {tries} tries; nothing was changed — "
        "retry when the holders are done"
    )
