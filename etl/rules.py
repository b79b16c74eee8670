"""Business rules from configuration: department routing and time limits (办理时限)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
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
class TimeLimits:
    default: Limit
    by_category: dict[str, Limit]

    def due_at(self, categories: pa.Array, start: pa.Array, zone: str) -> pa.Array:
        """When each item falls due: hours on the clock, workdays on the Chinese calendar —
        the end (23:59:59) of the Nth working day after the start's local day in `zone`."""
        names = list(self.by_category)
        idx = pc.index_in(categories, value_set=pa.array(names, pa.string()))
        pos = np.asarray(pc.fill_null(idx, len(names)).to_numpy(zero_copy_only=False))
        limits = [*self.by_category.values(), self.default]
        amount = np.array([lim.limit for lim in limits], dtype=float)[pos]
        in_hours = np.array([lim.unit == "hours" for lim in limits])[pos]
        utc = pc.cast(start, pa.timestamp("us")).to_numpy(zero_copy_only=False)
        utc = np.asarray(utc, dtype="datetime64[us]")
        known = ~np.isnat(utc)
        due = np.full(len(utc), np.datetime64("NaT"), dtype="datetime64[us]")
        hours = in_hours & known
        due[hours] = utc[hours] + (amount[hours] * 3_600_000_000).astype("timedelta64[us]")
        work = ~in_hours & known
        if work.any():
            local = pd.DatetimeIndex(utc[work], tz="UTC").tz_convert(zone).tz_localize(None)
            local_day = local.to_numpy().astype("datetime64[D]")
            due_day = add_workdays(local_day, amount[work].astype(int))
            end = pd.DatetimeIndex(due_day.astype("datetime64[us]") + END_OF_DAY)
            due[work] = (
                end.tz_localize(zone, ambiguous=False, nonexistent="shift_forward")
                .tz_convert("UTC")
                .tz_localize(None)
                .to_numpy()
                .astype("datetime64[us]")
            )
        return pa.array(due, pa.timestamp("us"), from_pandas=True).cast(
            pa.timestamp("us", tz="UTC")
        )


@lru_cache(maxsize=4)
def _workdays(first: dt.date, last: dt.date) -> npt.NDArray[np.datetime64]:
    """Working days in [first, last]: the Chinese calendar where it is known, else Mon–Fri."""
    import chinese_calendar

    days = []
    day = first
    while day <= last:
        try:
            work = chinese_calendar.is_workday(day)
        except NotImplementedError:  # a year the package has no data for yet
            work = day.weekday() < 5
        if work:
            days.append(day)
        day += dt.timedelta(days=1)
    return np.array(days, dtype="datetime64[D]")


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
    return TimeLimits(
        default=_limit(doc.get("default"), "default"),
        by_category={str(k): _limit(v, str(k)) for k, v in categories.items()},
    )
