"""The cases a user reported (网格员上报: "我的上报"), as GET /api/reports reads them.

Reads only, in the caller's transaction and zone (row-level security): each case with its
request's place (street, community, grid) and how many photos it has, newest first.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from layers import get_layer
from layers.cases.machine import STATES
from layers.cases.tables import case_photos, cases


def reported(
    conn: sa.Connection, user: str, zone: dt.tzinfo, limit: int = 20
) -> list[dict[str, Any]]:
    """The `limit` newest cases `user` reported that the caller sees."""
    c = cases.c
    r = get_layer("service_requests").table.c
    photos = (
        sa.select(sa.func.count())
        .where(case_photos.c.case_id == c.id)
        .scalar_subquery()
        .label("photos")
    )
    rows = conn.execute(
        sa.select(
            c.id,
            c.state,
            c.category,
            c.received_at,
            c.street_code,
            r.community_code,
            r.grid_code,
            r.description,
            photos,
        )
        .select_from(
            cases.outerjoin(get_layer("service_requests").table, r.id == c.service_request_id)
        )
        .where(c.reported_by == user)
        .order_by(c.received_at.desc(), c.id.desc())
        .limit(limit)
    ).mappings()
    return [
        {
            "case_id": row["id"],
            "state": row["state"],
            "state_label": STATES[row["state"]],
            "category": row["category"],
            "received_at": row["received_at"].astimezone(zone).isoformat(),
            "street": row["street_code"],
            "community": row["community_code"],
            "grid": row["grid_code"],
            "description": row["description"],
            "photos": row["photos"],
        }
        for row in rows
    ]
