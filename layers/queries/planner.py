"""The planner: renovation projects and relocation targets as they stood on a day, from what
was known on that day (`as_of_state`), as two GeoJSON FeatureCollections.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from layers import Layer, get_layer
from layers.queries.geojson import geometry
from layers.queries.types import json_value


@dataclass(frozen=True)
class AsOf:
    """A project's or target's state on a date, from what was known on that date."""

    state: str
    state_code: str
    progress: float | None
    progress_basis: str
    actual_start: dt.date | None
    actual_end: dt.date | None
    delay_days: int | None
    early_days: int | None

    @property
    def schedule(self) -> str | None:
        """延期 N 天 / 提前 N 天 / 按期, or None without a planned end."""
        if self.delay_days is None:
            return None
        if self.delay_days > 0:
            return f"延期 {self.delay_days} 天"
        if self.early_days:
            return f"提前 {self.early_days} 天"
        return "按期"


STATES = {"not_started": "未启动", "in_progress": "进行中", "done": "已完成"}
# How the progress of a day was found: the stored value (today or later), a fact of the
# dates (0 before the start, 100 from the end), or a straight-line estimate in between.
PROGRESS_BASES = ("recorded", "dates", "estimated")


def as_of_state(row: dict[str, Any], as_of: dt.date, today: dt.date) -> AsOf:
    """State, progress and schedule on `as_of`, knowing only what was known then.

    An actual date after `as_of` had not happened yet: it is not shown (null) and does not
    count. Started on actual_start (planned_start when none was ever recorded), done on
    actual_end; between the two, in progress.

    Progress: on or after today the stored value ("recorded"); on a past day 0 before the
    start and 100 from the end ("dates"), and in between a straight line from 0 at the start
    to 100 at the actual end when it came later, or, still open today, to the stored progress
    today ("estimated": no history of progress is kept).

    Schedule, against planned_end: done — the days from planned_end to the actual end,
    late (`delay_days`) or early (`early_days`, 提前); still open — the days past planned_end
    on `as_of` (`delay_days`, 0 while not yet due; `early_days` 0). Both are ≥ 0; null
    without a planned end.
    """
    recorded_start, recorded_end = row["actual_start"], row["actual_end"]
    known_start = recorded_start if recorded_start and recorded_start <= as_of else None
    known_end = recorded_end if recorded_end and recorded_end <= as_of else None
    start = known_start or (row["planned_start"] if recorded_start is None else None)
    if known_end is not None:
        code = "done"
    elif start is not None and as_of >= start:
        code = "in_progress"
    else:
        code = "not_started"
    progress = row["progress"]
    basis = "recorded"
    if as_of < today:
        basis = "dates"
        if code == "not_started":
            progress = 0.0
        elif code == "done":
            progress = 100.0
        else:
            assert start is not None
            if recorded_end is not None:
                target, span = 100.0, (recorded_end - start).days
            else:
                target, span = float(progress or 0.0), (today - start).days
            progress = target * (as_of - start).days / span if span > 0 else target
            basis = "estimated"
        progress = round(min(max(progress, 0.0), 100.0), 1)
    delay = early = None
    planned_end = row["planned_end"]
    if planned_end is not None:
        late = (known_end if known_end is not None else as_of) - planned_end
        delay = max(0, late.days)
        early = max(0, -late.days) if known_end is not None else 0
    return AsOf(STATES[code], code, progress, basis, known_start, known_end, delay, early)


def _planner_features(
    conn: sa.Connection,
    layer: Layer,
    as_of: dt.date,
    today: dt.date,
    kind: str | None,
    street: str | None,
) -> dict[str, Any]:
    t = layer.table
    columns = [f.column for f in layer.published]
    query = sa.select(
        *columns,
        sa.cast(geometry(t.c.geom), sa.Text).label("geometry"),
    ).order_by(t.c[layer.key])
    if kind is not None:
        query = query.where(t.c.kind == kind)
    if street is not None:
        query = query.where(t.c.street_code == street)
    features = []
    for row in conn.execute(query).mappings():
        props = {c.name: json_value(row[c.name]) for c in columns}
        derived = as_of_state(dict(row), as_of, today)
        current = {
            "current_" + name: props.pop(name) for name in ("status", "phase") if name in props
        }
        props["current_progress"] = props.pop("progress")
        props.update(current)
        props.update(
            state=derived.state,
            state_code=derived.state_code,
            progress=derived.progress,
            progress_basis=derived.progress_basis,
            actual_start=json_value(derived.actual_start),
            actual_end=json_value(derived.actual_end),
            delay_days=derived.delay_days,
            early_days=derived.early_days,
            delayed=bool(derived.delay_days),
            schedule=derived.schedule,
        )
        features.append(
            {
                "type": "Feature",
                "id": row[layer.key],
                "geometry": json.loads(row["geometry"]),
                "properties": props,
            }
        )
    return {"type": "FeatureCollection", "features": features}


def planner(
    conn: sa.Connection,
    as_of: dt.date,
    today: dt.date,
    kind: str | None = None,
    street: str | None = None,
) -> dict[str, Any]:
    """Renovation projects and relocation targets as they stood on `as_of` (see as_of_state)."""
    args = (as_of, today, kind, street)
    return {
        "as_of": as_of.isoformat(),
        "kind": kind,
        "street": street,
        "projects": _planner_features(conn, get_layer("renovation_projects"), *args),
        "targets": _planner_features(conn, get_layer("relocation_targets"), *args),
    }
