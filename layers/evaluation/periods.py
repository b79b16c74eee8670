"""The periods of a scheme: labels and their windows of local dates (inclusive).

- month: '2026-11' = 2026-11-01 … 2026-11-30;
- quarter: '2026Q4' = 2026-10-01 … 2026-12-31;
- year: '2026' = 2026-01-01 … 2026-12-31;
- window (start_day d, the 19th to the 18th for d = 19): '2026-11' = 2026-10-19 … 2026-11-18,
  the month the window ends in names it; with d = 1 the window is the calendar month.

A label that is not of the scheme's kind, or names no period ('2026-13'), is refused with
PeriodError (a ValueError; the message in Chinese names it).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Protocol

FIRST_YEAR, LAST_YEAR = 2000, 2099
MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
QUARTER = re.compile(r"([0-9]{4})Q([0-9])")
YEAR = re.compile(r"([0-9]{4})")
FORMS = {"month": "2026-11", "quarter": "2026Q4", "year": "2026", "window": "2026-11"}


class PeriodError(ValueError):
    """A period label that names no period of the scheme."""


class HasPeriod(Protocol):
    @property
    def period_kind(self) -> str: ...

    @property
    def start_day(self) -> int | None: ...


def _refuse(label: object, kind: str, why: str = "") -> PeriodError:
    return PeriodError(
        f"考评周期无效：{label!r}{why}（{kind} 周期的写法如 {FORMS[kind]}）"
        f" (bad period label for a {kind} scheme)"
    )


def _year(text: str, label: str, kind: str) -> int:
    year = int(text)
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise _refuse(label, kind, f"：年份应在 {FIRST_YEAR}–{LAST_YEAR}")
    return year


def _month_start(year: int, month: int) -> dt.date:
    return dt.date(year, month, 1)


def _add_months(day: dt.date, months: int) -> dt.date:
    """The first of the month `months` after `day`'s month."""
    n = day.year * 12 + day.month - 1 + months
    return dt.date(n // 12, n % 12 + 1, 1)


def parse_label(kind: str, label: str) -> tuple[int, int]:
    """(year, month | quarter | 0) of a label of `kind`; PeriodError otherwise."""
    if not isinstance(label, str):
        raise _refuse(label, kind)
    if kind in ("month", "window"):
        m = MONTH.fullmatch(label)
        if not m:
            raise _refuse(label, kind)
        year, month = _year(m[1], label, kind), int(m[2])
        if not 1 <= month <= 12:
            raise _refuse(label, kind, "：月份应为 01–12")
        return year, month
    if kind == "quarter":
        m = QUARTER.fullmatch(label)
        if not m:
            raise _refuse(label, kind)
        year, quarter = _year(m[1], label, kind), int(m[2])
        if not 1 <= quarter <= 4:
            raise _refuse(label, kind, "：季度应为 1–4")
        return year, quarter
    m = YEAR.fullmatch(label)
    if kind != "year" or not m:
        raise _refuse(label, kind)
    return _year(m[1], label, kind), 0


def window_of(kind: str, start_day: int | None, label: str) -> tuple[dt.date, dt.date]:
    """The window [since, until] (inclusive local dates) of `label` for a period `kind`."""
    year, n = parse_label(kind, label)
    day = dt.timedelta(days=1)
    if kind == "month" or (kind == "window" and (start_day or 1) == 1):
        since = _month_start(year, n)
        return since, _add_months(since, 1) - day
    if kind == "window":
        assert start_day is not None
        end = dt.date(year, n, start_day)
        return _add_months(end, -1).replace(day=start_day), end - day
    if kind == "quarter":
        since = _month_start(year, 3 * n - 2)
        return since, _add_months(since, 3) - day
    return dt.date(year, 1, 1), dt.date(year, 12, 31)


def period_window(scheme: HasPeriod, label: str) -> tuple[dt.date, dt.date]:
    """The window of `label` under `scheme`'s period: (since, until), inclusive local dates."""
    return window_of(scheme.period_kind, scheme.start_day, label)


def label_of(kind: str, start_day: int | None, day: dt.date) -> str:
    """The label of the period of `kind` that holds `day`."""
    if kind == "window" and (start_day or 1) > 1 and day.day >= (start_day or 1):
        day = _add_months(day, 1)
    if kind in ("month", "window"):
        return f"{day.year:04d}-{day.month:02d}"
    if kind == "quarter":
        return f"{day.year:04d}Q{(day.month - 1) // 3 + 1}"
    return f"{day.year:04d}"


def period_of(scheme: HasPeriod, day: dt.date) -> str:
    """The label of the scheme's period that holds the local date `day`."""
    return label_of(scheme.period_kind, scheme.start_day, day)


def previous_period(scheme: HasPeriod, label: str) -> str:
    """The label of the period before `label` (checked)."""
    since, _ = period_window(scheme, label)
    return period_of(scheme, since - dt.timedelta(days=1))


def periods_of_year(scheme: HasPeriod, year: int) -> list[str]:
    """The labels of the scheme's periods named in `year`, in order."""
    if scheme.period_kind in ("month", "window"):
        return [f"{year:04d}-{m:02d}" for m in range(1, 13)]
    if scheme.period_kind == "quarter":
        return [f"{year:04d}Q{q}" for q in range(1, 5)]
    return [f"{year:04d}"]
