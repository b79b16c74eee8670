"""One service request at a time: the ETL's own steps for a single record (the Open311 API).

A submission becomes a one-row extract in the columns of the `open311` mapping (GeoReport's
parameter names) and goes through `transform.prepare` — validation, coordinates, placement
in grid, community and street, department and due time from `etl.rules` — and then
`load.insert`, as every row of a file does. A submission that a run would reject raises
`Rejected` with the run's reason and message. The caller owns the transaction and the
database role, and refreshes the aggregates (`etl.aggregates.refresh_unless_busy`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import sqlalchemy as sa

from etl import load
from etl.extract import ROW, Extract
from etl.mapping import load_mapping
from etl.place import Placer
from etl.rules import Routing, TimeLimits, load_routing, load_time_limits
from etl.transform import prepare
from layers import get_layer

MAPPING = "open311"
NEW_STATUS = "待派单"
CHANNEL = "Open311"


class Rejected(ValueError):
    """The submission is rejected, for the reason (and with the message) a run would give."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Submission:
    """One request as a client sent it; coordinates as text, WGS84."""

    category: str
    description: str | None
    received_at: dt.datetime  # timezone-aware
    lng: str | None = None
    lat: str | None = None
    address: str | None = None
    channel: str = CHANNEL
    geocode_quality: str | None = None  # how the coordinates were found when not sent


@dataclass(frozen=True)
class Prepared:
    """The submission as one row ready to load, and what the rules made of it."""

    rows: pa.Table
    source: str
    source_id: str

    def value(self, name: str) -> Any:
        return self.rows.column(name)[0].as_py()


def prepare_one(
    submission: Submission,
    placer: Placer,
    routing: Routing | None = None,
    limits: TimeLimits | None = None,
    *,
    zone: str,
) -> Prepared:
    """Validate, locate, place, route and time one submission; Rejected if a run would.
    `zone`: the district's time zone, in which the extract's times are written."""
    mapping = load_mapping(MAPPING)
    source_id = uuid.uuid4().hex
    local = submission.received_at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")
    values = {
        "source_id": source_id,
        "received_at": local,
        "channel": submission.channel,
        "category": submission.category,
        "description": submission.description,
        "address": submission.address,
        "lng": submission.lng,
        "lat": submission.lat,
        "status": NEW_STATUS,
    }
    row = {mapping.columns[target]: value for target, value in values.items()}
    table = pa.table(
        {
            **{column: pa.array([value], pa.string()) for column, value in row.items()},
            ROW: pa.array([1], pa.int32()),
        }
    )
    prepared = prepare(
        Extract(table=table, columns=list(row), encoding=None),
        mapping,
        placer,
        routing or load_routing(),
        limits or load_time_limits(),
        now=submission.received_at,  # the intake's "now" is the moment it was received
        zone=zone,
    )
    if prepared.rejects:
        reject = prepared.rejects[0]
        raise Rejected(str(reject["reason"]), str(reject["message"]))
    rows = prepared.table
    if submission.geocode_quality is not None:
        rows = rows.set_column(
            rows.schema.get_field_index("geocode_quality"),
            "geocode_quality",
            pa.array([submission.geocode_quality], pa.string()),
        )
    return Prepared(rows=rows, source=mapping.source, source_id=source_id)


def insert_one(conn: sa.Connection, prepared: Prepared) -> int:
    """Insert the prepared row with plain INSERTs (row-level security applies); its id."""
    layer = get_layer("service_requests")
    inserted = load.insert(conn, layer, prepared.rows)
    if inserted != 1:
        raise RuntimeError(f"intake inserted {inserted} rows for {prepared.source_id!r}")
    t = layer.table
    request_id: int = conn.execute(
        sa.select(t.c.id).where(t.c.source == prepared.source, t.c.source_id == prepared.source_id)
    ).scalar_one()
    return request_id
