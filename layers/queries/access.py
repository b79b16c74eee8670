"""Who sees which rows, said once for the web, the CLI and the tile seeder.

The zone rule (a commander is confined to their street, everyone else sees the district),
scoping a connection to the reader role and a zone (row-level security, migration 0004, compares
each row's street with the `blockdata.zone` setting), and the audit row of an action.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from layers.accounts import audit_log

READER_ROLE = "blockdata_reader"
DISTRICT = "*"  # the zone of the whole district


def zone_of(role: str, street_code: str | None) -> str:
    """The street a user of `role` is confined to, or '*' for the whole district."""
    return street_code if role == "commander" and street_code else DISTRICT


@functools.lru_cache(maxsize=64)
def scope_statement(columns: str = "") -> sa.TextClause:
    """One statement that switches to the reader role (from the next statement on) and sets
    the zone; `columns` are read in the same round trip, with the caller's own privileges."""
    return sa.text(
        "select set_config('role', :role, true), set_config('blockdata.zone', :zone, true)"
        + (f", {columns}" if columns else "")
    )


def scope(
    conn: sa.Connection, zone: str, extra: tuple[str, dict[str, Any]] | None = None
) -> tuple[Any, ...] | None:
    """Read the rest of `conn`'s transaction as the reader, confined to `zone`.

    `extra`: (SQL columns, bound parameters) read in the same statement with the caller's
    own privileges (the switch applies from the next statement on): versions and counters
    the reader may not see, never rows. Returns their values, or None without `extra`.
    """
    params: dict[str, Any] = {"role": READER_ROLE, "zone": zone}
    if extra is None:
        conn.execute(scope_statement(), params)
        return None
    row = conn.execute(scope_statement(extra[0]), {**params, **extra[1]}).one()
    return tuple(row[2:])


def audit(
    conn: sa.Connection,
    *,
    user_name: str | None,
    role: str | None,
    action: str,
    path: str,
    filters: Mapping[str, Any],
    rows: int | None = None,
    remote: str | None = None,
) -> None:
    """Record an action (an export, a token use): who, what filter, how many rows.

    No RETURNING (`inline`): a commander could not read the row back through row-level
    security."""
    conn.execute(
        sa.insert(audit_log)
        .inline()
        .values(
            user_name=user_name,
            role=role,
            action=action,
            path=path,
            filters={k: v for k, v in filters.items() if v is not None},
            rows=rows,
            remote=remote,
        )
    )
