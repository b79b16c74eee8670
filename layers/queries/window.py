"""Windows of local days, and how the aggregates answer them.

The aggregates (layers.aggregates) hold counts per local day of the district's time zone and
per whole period (week, month, quarter, year): a window of days is read as the fewest whole
periods and leftover days (`Window.pieces`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from layers.aggregates import SPANS, period_after, period_start


def next_month(month: dt.date) -> dt.date:
    return (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def previous_month(month: dt.date) -> dt.date:
    return (month.replace(day=1) - dt.timedelta(days=1)).replace(day=1)


@dataclass(frozen=True)
class Window:
    """The local days [since, until], both included."""

    since: dt.date
    until: dt.date

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1

    def pieces(self, spans: tuple[str, ...] = SPANS) -> list[tuple[str, dt.date, dt.date]]:
        """The window as the fewest whole periods of `spans` and days, in runs of one span:
        (span, first day of the first period, first day of the last period)."""
        order = [span for span in reversed(SPANS) if span in spans] + ["day"]
        end = self.until + dt.timedelta(days=1)
        runs: list[tuple[str, dt.date, dt.date]] = []
        day = self.since
        while day < end:
            span = next(
                s for s in order if period_start(s, day) == day and period_after(s, day) <= end
            )
            if runs and runs[-1][0] == span and period_after(span, runs[-1][2]) == day:
                runs[-1] = (span, runs[-1][1], day)
            else:
                runs.append((span, day, day))
            day = period_after(span, day)
        return runs
