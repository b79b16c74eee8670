"""Units (承办单位) as the pages, the API and `blockdata units list` read them."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from layers import get_layer
from layers.units import UNIT_KINDS, units


def list_units(
    conn: sa.Connection, *, street: str | None = None, kind: str | None = None
) -> list[dict[str, Any]]:
    """The units, each with its street's name (null outside the caller's zone: street rows
    follow the zones) and its kind's Chinese label: street by street (its centre,
    departments, stations), then the district departments; filtered by street and kind."""
    streets = get_layer("streets").table
    query = (
        sa.select(
            units.c.code,
            units.c.name,
            units.c.kind,
            units.c.street_code,
            streets.c.name.label("street_name"),
            units.c.active,
            sa.case(UNIT_KINDS, value=units.c.kind).label("kind_label"),
        )
        .select_from(units.outerjoin(streets, streets.c.code == units.c.street_code))
        .order_by(
            units.c.street_code.asc().nulls_last(),
            sa.func.array_position(sa.literal(list(UNIT_KINDS)), units.c.kind),
            units.c.code,
        )
    )
    if street is not None:
        query = query.where(units.c.street_code == street)
    if kind is not None:
        query = query.where(units.c.kind == kind)
    return [dict(r._mapping) for r in conn.execute(query)]
