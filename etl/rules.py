"""Business rules from configuration: department routing and time limits (办理时限)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from etl.yamlcache import read_yaml

CONFIG_DIR = Path(__file__).resolve().parent / "config"
DEPARTMENTS = (
    "综合保障部",
    "党群工作部",
    "平安建设部",
    "城市管理部",
    "社会建设部",
    "民生保障部",
    "地区发展部",
)
END_OF_DAY = np.timedelta64(86399, "s")
DUE_SOON_SHARE = 0.2  # 临期: the last 20 % of the limit
log = logging.getLogger(__name__)


class RulesError(ValueError):
    """A rules file is malformed; the message names the entry."""


@dataclass(frozen=True)
class Routing:
    default: str
    by_category: dict[str, str]

    def route(self, categories: pa.Array) -> pa.Array:
        """The department of each category; unknown categories go to the default."""
        keys = pa.array(list(self.by_category), pa.string())
        departments = pa.array(list(self.by_category.values()), pa.string())
        routed = pc.take(departments, pc.index_in(categories, value_set=keys))
        return pc.fill_null(routed, self.default)


@dataclass(frozen=True)
class Limit:
    limit: float
    unit: str  # "hours" or "workdays"


@dataclass(frozen=True)
class Due:
    """Due times (UTC) and, per year the Chinese calendar does not cover, how many of the
    workday limits were counted on the Mon–Fri fallback in that year."""

    at: pa.Array
    fallback: dict[int, int]


@dataclass(frozen=True)
class TimeLimits:
    default: Limit
    by_category: dict[str, Limit]
    due_soon_share: float = DUE_SOON_SHARE

    def due_at(self, categories: pa.Array, start: pa.Array, zone: str) -> pa.Array:
        """When each item falls due: hours on the clock, workdays on the Chinese calendar —
        the end (23:59:59) of the Nth working day after the start's local day in `zone`."""
        return self.due(categories, start, zone).at

    def due(self, categories: pa.Array, start: pa.Array, zone: str) -> Due:
        """`due_at`, with the count of workday limits that fell back to Mon–Fri per year."""
        names = list(self.by_category)
        idx = pc.index_in(categories, value_set=pa.array(names, pa.string()))
        pos = np.asarray(pc.fill_null(idx, len(names)).to_numpy(zero_copy_only=False))
        limits = [*self.by_category.values(), self.default]
        amount = np.array([lim.limit for lim in limits], dtype=float)[pos]
        in_hours = np.array([lim.unit == "hours" for lim in limits])[pos]
        return _due(_utc_us(start), amount, in_hours, zone)


def _utc_us(values: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.datetime64]:
    """Instants as naive UTC datetime64[us] (NaT for null)."""
    utc = pc.cast(values, pa.timestamp("us"))
    return np.asarray(utc.to_numpy(zero_copy_only=False), dtype="datetime64[us]")


def _as_arrow(due: npt.NDArray[np.datetime64]) -> pa.Array:
    return pa.array(due, pa.timestamp("us"), from_pandas=True).cast(pa.timestamp("us", tz="UTC"))


def _due(
    utc: npt.NDArray[np.datetime64],
    amount: npt.NDArray[np.float64],
    in_hours: npt.NDArray[np.bool_],
    zone: str,
) -> Due:
    """`amount` hours after each instant, or the end of the `amount`-th working day after
    its local day in `zone`."""
    known = ~np.isnat(utc)
    due = np.full(len(utc), np.datetime64("NaT"), dtype="datetime64[us]")
    hours = in_hours & known
    due[hours] = utc[hours] + (amount[hours] * 3_600_000_000).astype("timedelta64[us]")
    work = ~in_hours & known
    fallback: dict[int, int] = {}
    if work.any():
        local = pd.DatetimeIndex(utc[work], tz="UTC").tz_convert(zone).tz_localize(None)
        local_day = local.to_numpy().astype("datetime64[D]")
        due_day = add_workdays(local_day, amount[work].astype(int))
        fallback = fallback_counts(local_day, due_day)
        end = pd.DatetimeIndex(due_day.astype("datetime64[us]") + END_OF_DAY)
        due[work] = (
            end.tz_localize(zone, ambiguous=False, nonexistent="shift_forward")
            .tz_convert("UTC")
            .tz_localize(None)
            .to_numpy()
            .astype("datetime64[us]")
        )
    return Due(at=_as_arrow(due), fallback=fallback)


def extend_due(
    due_at: pa.Array, amount: float | npt.ArrayLike, unit: str | npt.ArrayLike, zone: str
) -> Due:
    """The due time after an approved extension (延期) of `amount` hours or workdays, same rules
    as the limit itself: hours on the clock from the current due time; workdays to the end
    (23:59:59 local) of the Nth working day after the current due time's local day."""
    utc = _utc_us(due_at)
    amounts = np.broadcast_to(np.asarray(amount, dtype=float), utc.shape)
    units = np.broadcast_to(np.asarray(unit, dtype=object), utc.shape)
    bad = sorted({str(u) for u in units if u not in ("hours", "workdays")})
    if bad:
        raise RulesError(f"延期单位无效 extension unit must be hours or workdays, not {bad}")
    if (amounts <= 0).any() or np.isnan(amounts).any():
        raise RulesError("延期时长须为正数 an extension must be positive")
    return _due(utc, amounts, units == "hours", zone)


# 临期 / 超期 / 超期办结, as codes (0: none of them) and their labels.
DUE_STATES = (None, "due_soon", "overdue", "resolved_late")
DUE_SOON, OVERDUE, RESOLVED_LATE = 1, 2, 3


def share_ratio(share: float) -> tuple[int, int]:
    """The share as a fraction p/q (q ≤ 1000), so that NumPy and SQL compare exactly."""
    if not 0 <= share < 1:
        raise RulesError(f"due_soon_share: expected a share in [0, 1), got {share!r}")
    ratio = Fraction(share).limit_denominator(1000)
    return ratio.numerator, ratio.denominator


def _micros(
    values: pa.Array | pa.ChunkedArray | npt.NDArray[np.datetime64],
) -> npt.NDArray[np.int64]:
    """Instants as int64 microseconds since the epoch, UTC (NaT/null: the NaT integer)."""
    if isinstance(values, np.ndarray):
        return values.astype("datetime64[us]").astype(np.int64)
    return _utc_us(values).astype(np.int64)


def due_state_codes(
    dispatched_at: pa.Array | npt.NDArray[np.datetime64],
    due_at: pa.Array | npt.NDArray[np.datetime64],
    resolved_at: pa.Array | npt.NDArray[np.datetime64],
    now: dt.datetime,
    share: float = DUE_SOON_SHARE,
) -> npt.NDArray[np.int8]:
    """Each case's state at `now` as a code of DUE_STATES: resolved_late (resolved by `now`,
    after its due time), overdue (open at `now`, past due), due_soon (open, not past due, in
    the last `share` of its limit dispatched → due), else 0. A case resolved after `now`
    counts as open; without a due time a case has no state, without a dispatch time it is
    never due_soon. Naive NumPy datetimes are UTC; `now` must be aware."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    p, q = share_ratio(share)
    at = int(np.datetime64(now.astimezone(dt.UTC).replace(tzinfo=None), "us").astype(np.int64))
    nat = np.iinfo(np.int64).min
    sent, due, done = _micros(dispatched_at), _micros(due_at), _micros(resolved_at)
    has_due = due != nat
    resolved = (done != nat) & (done <= at)
    codes = np.zeros(len(due), dtype=np.int8)
    late = has_due & resolved & (done > due)
    over = has_due & ~resolved & (at > due)
    # q·(due − now) ≤ p·(due − dispatched), in integers: the same comparison as the SQL one.
    soon = (
        has_due
        & ~resolved
        & (at <= due)
        & (sent != nat)
        & (q * (due - at) <= p * (due - np.where(sent != nat, sent, due)))
    )
    codes[soon] = DUE_SOON
    codes[over] = OVERDUE
    codes[late] = RESOLVED_LATE
    return codes


def due_states(
    dispatched_at: pa.Array | npt.NDArray[np.datetime64],
    due_at: pa.Array | npt.NDArray[np.datetime64],
    resolved_at: pa.Array | npt.NDArray[np.datetime64],
    now: dt.datetime,
    share: float = DUE_SOON_SHARE,
) -> pa.DictionaryArray:
    """`due_state_codes` as labels (due_soon, overdue, resolved_late; null for none)."""
    codes = due_state_codes(dispatched_at, due_at, resolved_at, now, share)
    indices = pa.array(codes - 1, pa.int8(), mask=codes == 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array(DUE_STATES[1:], pa.string()))


@lru_cache(maxsize=1)
def calendar_years() -> tuple[int, int]:
    """The first and last year `chinese_calendar` has holiday data for."""
    import chinese_calendar

    years = [day.year for day in chinese_calendar.holidays]
    return min(years), max(years)


def uncovered_years(first: dt.date | int, last: dt.date | int) -> list[int]:
    """The years of [first, last] (dates or years) that `chinese_calendar` does not cover:
    their working days fall back to Monday–Friday, without holidays or make-up days."""
    lo, hi = calendar_years()
    y0 = first if isinstance(first, int) else first.year
    y1 = last if isinstance(last, int) else last.year
    return [year for year in range(y0, y1 + 1) if year < lo or year > hi]


def fallback_counts(
    first: npt.NDArray[np.datetime64], last: npt.NDArray[np.datetime64]
) -> dict[int, int]:
    """Per uncovered year, how many spans [first, last] (days) reach into it; logged."""
    if len(first) == 0:
        return {}
    years = uncovered_years(pd.Timestamp(first.min()).year, pd.Timestamp(last.max()).year)
    if not years:  # the usual case: no per-row work
        return {}
    year0 = first.astype("datetime64[Y]").astype(int) + 1970
    year1 = last.astype("datetime64[Y]").astype(int) + 1970
    counts = {year: int(((year0 <= year) & (year1 >= year)).sum()) for year in years}
    counts = {year: n for year, n in counts.items() if n}
    if counts:
        log.warning(
            "chinese_calendar 未覆盖 %s 年：按周一至周五计算工作日 "
            "(no holiday data for %s: Mon–Fri working days assumed, for %s limits)",
            "、".join(map(str, counts)),
            ", ".join(map(str, counts)),
            sum(counts.values()),
        )
    return counts


@lru_cache(maxsize=4)
def _workdays(first: dt.date, last: dt.date) -> npt.NDArray[np.datetime64]:
    """Working days in [first, last]: the Chinese calendar where it is known (its holidays
    off, its make-up days on), else Mon–Fri."""
    import chinese_calendar

    days = np.arange(np.datetime64(first, "D"), np.datetime64(last, "D") + 1)
    work = (days.astype(np.int64) + 3) % 7 < 5  # 1970-01-01 was a Thursday
    lo, hi = calendar_years()
    years = days.astype("datetime64[Y]").astype(int) + 1970
    covered = (years >= lo) & (years <= hi)
    off = np.array(list(chinese_calendar.holidays), dtype="datetime64[D]")
    on = np.array(list(chinese_calendar.workdays), dtype="datetime64[D]")
    work[covered & np.isin(days, off)] = False
    work[covered & np.isin(days, on)] = True
    return days[work]


def add_workdays(
    days: npt.NDArray[np.datetime64], n: npt.NDArray[np.int_]
) -> npt.NDArray[np.datetime64]:
    """The n-th working day after each day (the day itself not counted)."""
    if len(days) == 0:
        return days
    first = pd.Timestamp(days.min()).date()
    last = pd.Timestamp(days.max()).date() + dt.timedelta(days=int(n.max()) * 3 + 30)
    workdays = _workdays(first, last)
    idx = np.searchsorted(workdays, days, side="right") + np.maximum(n, 1) - 1
    return workdays[idx]


def _load_yaml(path: Path) -> dict[str, object]:
    try:
        doc = read_yaml(path)
    except (OSError, yaml.YAMLError) as exc:
        raise RulesError(f"cannot read {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise RulesError(f"{path}: expected a mapping at the top")
    return doc


def load_routing(path: Path | None = None) -> Routing:
    doc = _load_yaml(path or CONFIG_DIR / "departments.yaml")
    default = str(doc.get("default", "综合保障部"))
    by_category: dict[str, str] = {}
    departments = doc.get("departments", {})
    if not isinstance(departments, dict):
        raise RulesError("departments: expected department → list of categories")
    for department, categories in departments.items():
        if department not in DEPARTMENTS:
            raise RulesError(f"未知部门 unknown department {department!r}; one of {DEPARTMENTS}")
        for category in categories or []:
            by_category.setdefault(str(category), str(department))
    if default not in DEPARTMENTS:
        raise RulesError(f"未知部门 unknown default department {default!r}")
    return Routing(default=default, by_category=by_category)


def _limit(value: object, where: str) -> Limit:
    if not isinstance(value, dict) or value.get("unit") not in ("hours", "workdays"):
        raise RulesError(f"{where}: expected {{limit: N, unit: hours|workdays}}, got {value!r}")
    return Limit(limit=float(value["limit"]), unit=str(value["unit"]))


def load_time_limits(path: Path | None = None) -> TimeLimits:
    doc = _load_yaml(path or CONFIG_DIR / "time_limits.yaml")
    categories = doc.get("categories", {}) or {}
    if not isinstance(categories, dict):
        raise RulesError("categories: expected category → limit")
    share = doc.get("due_soon_share", DUE_SOON_SHARE)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share < 1:
        raise RulesError(f"due_soon_share: expected a share in [0, 1), got {share!r}")
    return TimeLimits(
        default=_limit(doc.get("default"), "default"),
        by_category={str(k): _limit(v, str(k)) for k, v in categories.items()},
        due_soon_share=float(share),
    )
