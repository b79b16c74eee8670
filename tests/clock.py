"""A frozen clock for the app (`Settings.clock`) and the process's own time zone, for tests
that must pass at any hour: expectations are computed here, from the frozen instant, never
from the server's clock."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

BEIJING = ZoneInfo("Asia/Shanghai")  # the district's time zone (the default BLOCKDATA_TZ)
UTC = dt.UTC

# The hours at which "today" in UTC and in Beijing differ (00:00–08:00 Beijing time) or
# nearly do, and ordinary ones; the last days of a month and of a year included.
HOURS = {
    "2330-beijing": dt.datetime(2026, 11, 18, 23, 30, tzinfo=BEIJING),
    "0730-beijing": dt.datetime(2026, 11, 19, 7, 30, tzinfo=BEIJING),
    "0005-beijing": dt.datetime(2026, 11, 1, 0, 5, tzinfo=BEIJING),
    "noon-beijing": dt.datetime(2026, 11, 18, 12, 0, tzinfo=BEIJING),
    "new-year-0100": dt.datetime(2027, 1, 1, 1, 0, tzinfo=BEIJING),
}
PROCESS_ZONES = ("UTC", "Asia/Shanghai", "America/New_York")


@dataclass
class FrozenClock:
    """A clock standing at `instant` (aware) until moved."""

    instant: dt.datetime

    def __call__(self) -> dt.datetime:
        return self.instant

    def local(self, zone: dt.tzinfo = BEIJING) -> dt.datetime:
        return self.instant.astimezone(zone)

    def today(self, zone: dt.tzinfo = BEIJING) -> dt.date:
        return self.local(zone).date()


def day_start(day: dt.date, zone: dt.tzinfo = BEIJING) -> dt.datetime:
    """Local midnight that starts `day` in `zone`, computed here, not by the code under test."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=zone)


@contextlib.contextmanager
def process_tz(name: str) -> Iterator[None]:
    """The process's TZ (what `datetime.date.today()` and `time.localtime` follow)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()
