"""Time limits (办理时限): working days across the 2026 holidays and their make-up days, the
Mon–Fri fallback for years chinese_calendar does not cover, extensions, and the due states
(临期 / 超期 / 超期办结) in NumPy and in SQL. Expected days are counted by hand from the State
Council's notice on the 2026 holidays (国办, 2025-11-04), written here as literal dates."""

from __future__ import annotations

import datetime as dt
import logging
import random
from fractions import Fraction
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar
import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa

from etl.jobs import run_file
from etl.rules import (
    Limit,
    RulesError,
    TimeLimits,
    _workdays,
    calendar_years,
    due_states,
    extend_due,
    load_time_limits,
    uncovered_years,
)
from layers.queries.due import due_state, due_state_condition
from tests.district import request_row, write_csv

BEIJING = ZoneInfo("Asia/Shanghai")
UTC = dt.UTC
D = dt.date

# 国务院办公厅关于2026年部分节假日安排的通知 (2025-11-04): days off and make-up working days.
OFF_2026 = {
    *(D(2026, 1, d) for d in (1, 2, 3)),  # 元旦
    *(D(2026, 2, d) for d in range(15, 24)),  # 春节 2/15 (Sun) – 2/23 (Mon)
    *(D(2026, 4, d) for d in (4, 5, 6)),  # 清明
    *(D(2026, 5, d) for d in range(1, 6)),  # 劳动节
    *(D(2026, 6, d) for d in (19, 20, 21)),  # 端午
    *(D(2026, 9, d) for d in (25, 26, 27)),  # 中秋
    *(D(2026, 10, d) for d in range(1, 8)),  # 国庆 10/1 (Thu) – 10/7 (Wed)
}
MAKE_UP_2026 = {
    D(2026, 1, 4),
    D(2026, 2, 14),
    D(2026, 2, 28),
    D(2026, 5, 9),
    D(2026, 9, 20),
    D(2026, 10, 10),
}


def _is_workday_2026(day: dt.date) -> bool:
    return day in MAKE_UP_2026 or (day.weekday() < 5 and day not in OFF_2026)


def _nth_workday_2026(day: dt.date, n: int) -> dt.date:
    """Counted one day at a time on the notice's dates (the start day not counted)."""
    while n:
        day += dt.timedelta(days=1)
        n -= _is_workday_2026(day)
    return day


def _limits(n: float, unit: str = "workdays") -> TimeLimits:
    return TimeLimits(default=Limit(n, unit), by_category={})


def _due(limits: TimeLimits, start: dt.datetime, zone: str = "Asia/Shanghai") -> dt.datetime:
    got = limits.due_at(pa.array(["x"]), pa.array([start], pa.timestamp("us", tz="UTC")), zone)
    return got[0].as_py()


def _end_of(day: dt.date, zone: ZoneInfo = BEIJING) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=zone)


def test_the_package_covers_2026_as_the_notice_says() -> None:
    """The holiday tests below run on the real calendar: 2026 must be covered (1.11.0 is)."""
    assert uncovered_years(2026, 2026) == []
    day = D(2026, 1, 1)
    while day.year == 2026:
        assert chinese_calendar.is_workday(day) == _is_workday_2026(day), day
        day += dt.timedelta(days=1)


@pytest.mark.parametrize(
    ("start", "n", "due"),
    [
        # 春节: Fri 2/13 → Sat 2/14 (make-up) 1, 2/24–2/27 2–5, Sat 2/28 (make-up) 6, Mon 3/2 7.
        (dt.datetime(2026, 2, 13, 10, 0, tzinfo=BEIJING), 7, D(2026, 3, 2)),
        (dt.datetime(2026, 2, 12, 0, 5, tzinfo=BEIJING), 1, D(2026, 2, 13)),
        (dt.datetime(2026, 2, 12, 0, 5, tzinfo=BEIJING), 2, D(2026, 2, 14)),
        (dt.datetime(2026, 2, 12, 0, 5, tzinfo=BEIJING), 3, D(2026, 2, 24)),
        # Started on the make-up Saturday itself, late: the next working day is after the holiday.
        (dt.datetime(2026, 2, 14, 23, 30, tzinfo=BEIJING), 1, D(2026, 2, 24)),
        # Started inside the holiday.
        (dt.datetime(2026, 2, 18, 0, 5, tzinfo=BEIJING), 5, D(2026, 2, 28)),
        # Fri 2/6: 2/9–2/13 1–5, 2/14 6, 2/24–2/27 7–10, 2/28 11, 3/2–3/5 12–15.
        (dt.datetime(2026, 2, 6, 9, 0, tzinfo=BEIJING), 15, D(2026, 3, 5)),
        # 中秋 + 国庆: Fri 9/18 → Sun 9/20 (make-up) 1, 9/21–9/24 2–5, (9/25–27 off),
        # 9/28 6, 9/29 7.
        (dt.datetime(2026, 9, 18, 23, 30, tzinfo=BEIJING), 7, D(2026, 9, 29)),
        # Tue 9/29: 9/30 1, (10/1–10/7 off), 10/8 2, 10/9 3, Sat 10/10 (make-up) 4, Mon 10/12 5.
        (dt.datetime(2026, 9, 29, 0, 5, tzinfo=BEIJING), 3, D(2026, 10, 9)),
        (dt.datetime(2026, 9, 29, 0, 5, tzinfo=BEIJING), 4, D(2026, 10, 10)),
        (dt.datetime(2026, 9, 29, 0, 5, tzinfo=BEIJING), 5, D(2026, 10, 12)),
        # Thu 9/24: 9/28–9/30 1–3, 10/8–10/10 4–6, 10/12–10/16 7–11, 10/19–10/22 12–15.
        (dt.datetime(2026, 9, 24, 23, 30, tzinfo=BEIJING), 15, D(2026, 10, 22)),
        # In UTC: 2/13 15:30Z is Fri 23:30 in Beijing (→ Sat 2/14); 16:30Z is already Sat 00:30.
        (dt.datetime(2026, 2, 13, 15, 30, tzinfo=UTC), 1, D(2026, 2, 14)),
        (dt.datetime(2026, 2, 13, 16, 30, tzinfo=UTC), 1, D(2026, 2, 24)),
        (dt.datetime(2026, 9, 30, 16, 5, tzinfo=UTC), 1, D(2026, 10, 8)),  # Thu 10/1 00:05
    ],
)
def test_workday_limits_across_the_2026_holidays(start: dt.datetime, n: int, due: dt.date) -> None:
    assert _due(_limits(n), start) == _end_of(due)


def test_workday_limits_agree_with_the_notice_every_day_around_both_holidays() -> None:
    """Every start day from mid-January to mid-March and September to October, at 00:05 and
    23:30 Beijing time, for 1, 2, 5, 7 and 15 working days, in one vectorised call per limit."""
    days = [D(2026, 1, 20) + dt.timedelta(days=i) for i in range(55)]
    days += [D(2026, 9, 5) + dt.timedelta(days=i) for i in range(45)]
    starts = [
        dt.datetime(d.year, d.month, d.day, h, m, tzinfo=BEIJING)
        for d in days
        for h, m in ((0, 5), (23, 30))
    ]
    arrow = pa.array(starts, pa.timestamp("us", tz="UTC"))
    for n in (1, 2, 5, 7, 15):
        got = _limits(n).due_at(pa.array(["x"] * len(starts)), arrow, "Asia/Shanghai").to_pylist()
        want = [_end_of(_nth_workday_2026(s.date(), n)) for s in starts]
        assert got == want, n


def test_hour_limits_run_on_the_clock_across_midnight_and_holidays() -> None:
    limits = TimeLimits(
        default=Limit(7, "workdays"),
        by_category={"燃气": Limit(2, "hours"), "供水": Limit(24, "hours")},
    )
    starts = [
        dt.datetime(2026, 2, 14, 23, 30, tzinfo=BEIJING),  # into the first day of 春节
        dt.datetime(2026, 9, 30, 23, 30, tzinfo=BEIJING),  # into 国庆
        dt.datetime(2026, 12, 31, 23, 30, tzinfo=UTC),  # across the year, in UTC
        dt.datetime(2026, 10, 1, 0, 5, tzinfo=BEIJING),
    ]
    got = limits.due_at(
        pa.array(["燃气", "供水", "燃气", "供水"]),
        pa.array(starts, pa.timestamp("us", tz="UTC")),
        "Asia/Shanghai",
    ).to_pylist()
    assert got == [
        dt.datetime(2026, 2, 15, 1, 30, tzinfo=BEIJING),
        dt.datetime(2026, 10, 1, 23, 30, tzinfo=BEIJING),
        dt.datetime(2027, 1, 1, 1, 30, tzinfo=UTC),
        dt.datetime(2026, 10, 2, 0, 5, tzinfo=BEIJING),
    ]


def test_the_working_day_table_is_the_packages_day_by_day_answer() -> None:
    """The vectorised table (holidays off, make-up days on) against `is_workday` per day, over
    every covered year, and Mon–Fri for the uncovered years around them."""
    lo, hi = calendar_years()
    first, last = D(lo - 1, 12, 1), D(hi + 1, 1, 31)
    table = set(_workdays(first, last).astype(dt.date).tolist())
    day = first
    while day <= last:
        want = chinese_calendar.is_workday(day) if lo <= day.year <= hi else day.weekday() < 5
        assert (day in table) == want, day
        day += dt.timedelta(days=1)


def test_uncovered_years_are_those_the_package_refuses() -> None:
    years = uncovered_years(D(1998, 5, 1), D(2032, 1, 1))
    refused = []
    for year in range(1998, 2033):
        try:
            chinese_calendar.is_workday(D(year, 6, 1))
        except NotImplementedError:
            refused.append(year)
    assert years == refused
    assert 2003 in years and 2026 not in years


def test_an_uncovered_year_falls_back_to_monday_to_friday_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    year = max(uncovered_years(2026, 2040))  # beyond the package's data
    start = next(D(year, 1, d) for d in range(1, 8) if D(year, 1, d).weekday() == 4)  # a Friday
    limits = _limits(7)
    with caplog.at_level(logging.WARNING, logger="etl.rules"):
        due = limits.due(
            pa.array(["x", "x"]),
            pa.array(
                [
                    dt.datetime.combine(start, dt.time(10), BEIJING),
                    dt.datetime(2026, 3, 2, tzinfo=BEIJING),
                ],
                pa.timestamp("us", tz="UTC"),
            ),
            "Asia/Shanghai",
        )
    # Mon–Fri: the next Monday is 1, … the Tuesday of the week after is 7.
    assert due.at[0].as_py() == _end_of(start + dt.timedelta(days=11))
    assert due.fallback == {year: 1}
    assert any(str(year) in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_a_span_into_an_uncovered_year_is_counted_for_that_year() -> None:
    last = max(y for y in range(2004, 2041) if not uncovered_years(y, y))
    due = _limits(15).due(
        pa.array(["x"]),
        pa.array([dt.datetime(last, 12, 28, 12, tzinfo=BEIJING)], pa.timestamp("us", tz="UTC")),
        "Asia/Shanghai",
    )
    assert due.fallback == {last + 1: 1}


@pytest.mark.usefixtures("district")
def test_the_etl_run_warns_calendar_fallback_per_year(
    connection: sa.Connection, tmp_path: Path
) -> None:
    rows = [
        request_row("F1", 受理时间="2003-03-03 09:00:00", 派单时间="2003-03-03 09:30:00"),
        request_row("F2", 受理时间="2003-03-04 09:00:00", 派单时间="2003-03-04 09:30:00"),
        request_row("F3"),  # 2026: covered
    ]
    report = run_file(
        connection,
        write_csv(tmp_path / "old.csv", rows),
        layer="service_requests",
        now=dt.datetime(2026, 12, 1, tzinfo=BEIJING),
    )
    assert report.inserted == 3
    assert report.warnings.get("calendar_fallback:2003") == 2
    stored = connection.execute(
        sa.text("select warnings from etl_runs where id = :id"), {"id": report.run_id}
    ).scalar_one()
    assert stored.get("calendar_fallback:2003") == 2
    assert not any(k.startswith("calendar_fallback:2026") for k in stored)
    due = connection.execute(
        sa.text("select due_at from service_requests where source_id = 'F1'")
    ).scalar_one()
    # Mon 3/3 (环境卫生: 7 working days, Mon–Fri): 3/4–3/7 1–4, 3/10–3/12 5–7.
    assert due == _end_of(D(2003, 3, 12))


# --- extensions (延期) ------------------------------------------------------------------


def test_an_extension_in_hours_moves_the_due_time_on_the_clock() -> None:
    due = pa.array([dt.datetime(2026, 2, 14, 22, 0, tzinfo=BEIJING)], pa.timestamp("us", tz="UTC"))
    moved = extend_due(due, 5, "hours", "Asia/Shanghai").at
    assert moved[0].as_py() == dt.datetime(2026, 2, 15, 3, 0, tzinfo=BEIJING)


def test_an_extension_in_workdays_counts_holidays_and_make_up_days() -> None:
    dues = [_end_of(D(2026, 9, 18)), _end_of(D(2026, 9, 30)), _end_of(D(2026, 2, 13)), None]
    moved = extend_due(
        pa.array(dues, pa.timestamp("us", tz="UTC")), [2, 3, 1, 4], "workdays", "Asia/Shanghai"
    ).at.to_pylist()
    # Fri 9/18 + 2: Sun 9/20 (make-up), Mon 9/21. Wed 9/30 + 3: 10/8, 10/9, Sat 10/10 (make-up).
    # Fri 2/13 + 1: Sat 2/14 (make-up).
    assert moved == [
        _end_of(D(2026, 9, 21)),
        _end_of(D(2026, 10, 10)),
        _end_of(D(2026, 2, 14)),
        None,
    ]


def test_an_extension_of_an_hours_due_time_in_workdays_ends_at_the_end_of_a_working_day() -> None:
    due = pa.array([dt.datetime(2026, 10, 7, 18, 0, tzinfo=UTC)], pa.timestamp("us", tz="UTC"))
    # 18:00Z on 10/7 is 02:00 on Thu 10/8 in Beijing: + 2 working days = 10/9, Sat 10/10.
    moved = extend_due(due, 2, "workdays", "Asia/Shanghai").at
    assert moved[0].as_py() == _end_of(D(2026, 10, 10))


@pytest.mark.parametrize(("amount", "unit"), [(0, "hours"), (-1, "workdays"), (3, "days")])
def test_a_bad_extension_is_refused(amount: float, unit: str) -> None:
    due = pa.array([_end_of(D(2026, 9, 18))], pa.timestamp("us", tz="UTC"))
    with pytest.raises(RulesError):
        extend_due(due, amount, unit, "Asia/Shanghai")


# --- due states -------------------------------------------------------------------------


def test_due_soon_share_comes_from_the_configuration(tmp_path: Path) -> None:
    assert load_time_limits().due_soon_share == 0.2
    path = tmp_path / "t.yaml"
    path.write_text("default: {limit: 7, unit: workdays}\ndue_soon_share: 0.25\n", encoding="utf-8")
    assert load_time_limits(path).due_soon_share == 0.25
    path.write_text("default: {limit: 7, unit: workdays}\ndue_soon_share: 1.5\n", encoding="utf-8")
    with pytest.raises(RulesError, match="due_soon_share"):
        load_time_limits(path)


def _expected_state(
    sent: dt.datetime | None,
    due: dt.datetime | None,
    done: dt.datetime | None,
    now: dt.datetime,
    share: Fraction,
) -> str | None:
    """The definitions, one case at a time on datetimes (exact: timedelta arithmetic)."""
    if due is None:
        return None
    if done is not None and done <= now:
        return "resolved_late" if done > due else None
    if now > due:
        return "overdue"
    if sent is not None and (due - now) * share.denominator <= (due - sent) * share.numerator:
        return "due_soon"
    return None


def _random_cases(rng: random.Random, n: int) -> list[tuple[dt.datetime | None, ...]]:
    base = dt.datetime(2026, 11, 1, tzinfo=UTC)
    cases: list[tuple[dt.datetime | None, ...]] = []
    for _ in range(n):
        sent = base + dt.timedelta(
            seconds=rng.randrange(0, 20 * 86400), microseconds=rng.randrange(10**6)
        )
        due = sent + dt.timedelta(
            seconds=rng.choice([7200, 86400, 7 * 86400, rng.randrange(1, 30 * 86400)])
        )
        done = sent + dt.timedelta(seconds=rng.randrange(0, 40 * 86400))
        if rng.random() < 0.4:
            done = None
        kind = rng.random()
        if kind < 0.05:
            due = None
        elif kind < 0.1:
            cases.append((None, due, done))
            continue
        cases.append((sent, due, done))
    # Exactly on the edges: due at now, resolved at due, the window's start at now.
    now = dt.datetime(2026, 11, 15, 12, tzinfo=UTC)
    cases += [
        (now - dt.timedelta(days=5), now, None),
        (now - dt.timedelta(days=5), now - dt.timedelta(days=1), now - dt.timedelta(days=1)),
        (now - dt.timedelta(days=4), now + dt.timedelta(days=1), None),  # window starts at now
        (now - dt.timedelta(days=4, microseconds=1), now + dt.timedelta(days=1), None),
        (now - dt.timedelta(days=4), now + dt.timedelta(days=1, microseconds=1), None),
        (now - dt.timedelta(days=5), now - dt.timedelta(microseconds=1), now),
    ]
    return cases


NOWS = [
    dt.datetime(2026, 11, 15, 12, tzinfo=UTC),
    dt.datetime(2026, 11, 8, 0, 5, tzinfo=BEIJING),
    dt.datetime(2026, 11, 22, 23, 30, tzinfo=BEIJING),
    dt.datetime(2026, 12, 20, 3, 0, tzinfo=UTC),
]


@pytest.mark.parametrize("zone", ["UTC", "Asia/Shanghai"])
def test_due_states_agree_in_numpy_and_sql(connection: sa.Connection, zone: str) -> None:
    """Some 300 random cases and the edges, at four injected "now"s, with the times given in
    `zone` and the database session in `zone`: NumPy, SQL (label and filters) and the
    definitions case by case give the same states."""
    tz = ZoneInfo(zone)
    cases = [
        tuple(t.astimezone(tz) if t is not None else None for t in case)
        for case in _random_cases(random.Random(12), 300)
    ]
    connection.exec_driver_sql(f"set local timezone = '{zone}'")
    connection.exec_driver_sql(
        "create temporary table due_cases (id int primary key, dispatched_at timestamptz, "
        "due_at timestamptz, resolved_at timestamptz) on commit drop"
    )
    table = sa.table(
        "due_cases",
        sa.column("id", sa.Integer),
        sa.column("dispatched_at", sa.DateTime(timezone=True)),
        sa.column("due_at", sa.DateTime(timezone=True)),
        sa.column("resolved_at", sa.DateTime(timezone=True)),
    )
    connection.execute(
        table.insert(),
        [
            {"id": i, "dispatched_at": s, "due_at": d, "resolved_at": r}
            for i, (s, d, r) in enumerate(cases)
        ],
    )
    col = table.c
    arrow = [pa.array([c[k] for c in cases], pa.timestamp("us", tz=zone)) for k in range(3)]
    seen: set[str | None] = set()
    for share in (0.2, 0.3):
        for now in NOWS:
            now = now.astimezone(tz)
            want = [
                _expected_state(*c, now, Fraction(share).limit_denominator(1000)) for c in cases
            ]
            seen.update(want)
            got_np = due_states(*arrow, now, share).to_pylist()
            assert got_np == want, (share, now)
            expr = due_state(col.dispatched_at, col.due_at, col.resolved_at, now, share)
            got_sql = [
                state for _, state in connection.execute(sa.select(col.id, expr).order_by(col.id))
            ]
            assert got_sql == want, (share, now)
            for state in ("due_soon", "overdue", "resolved_late"):
                cond = due_state_condition(
                    state, col.dispatched_at, col.due_at, col.resolved_at, now, share
                )
                ids = (
                    connection.execute(sa.select(col.id).where(cond).order_by(col.id))
                    .scalars()
                    .all()
                )
                assert ids == [i for i, w in enumerate(want) if w == state], (state, now)
    assert seen == {None, "due_soon", "overdue", "resolved_late"}


def test_due_states_take_numpy_utc_times_and_refuse_a_naive_now() -> None:
    sent = np.array(["2026-11-01T00:00", "2026-11-01T00:00"], dtype="datetime64[us]")
    due = np.array(["2026-11-11T00:00", "2026-11-03T00:00"], dtype="datetime64[us]")
    done = np.array(["NaT", "NaT"], dtype="datetime64[us]")
    now = dt.datetime(2026, 11, 9, 8, 0, tzinfo=BEIJING)  # 11/9 00:00Z: the last 20 % of the first
    assert due_states(sent, due, done, now).to_pylist() == ["due_soon", "overdue"]
    with pytest.raises(ValueError, match="aware"):
        due_states(sent, due, done, dt.datetime(2026, 11, 9))
    with pytest.raises(ValueError, match="unknown due state"):
        due_state_condition("late", sa.column("a"), sa.column("b"), sa.column("c"), now)
