"""The tables of the case lifecycle: `cases` (the current state) and `case_history` (every
transition, append-only). Migration 0016 creates them with their grants, row-level security
and triggers.

A case is a service request or an enforcement case: `kind` says which and exactly one of
`service_request_id` / `enforcement_case_id` is set (a check). The reference is checked by a
trigger on insert and update (`cases_source_exists`), not by a foreign key: the ETL's bulk
load drops and rebuilds the event tables' primary keys and truncates an empty table
(etl/load.py), which a foreign key pointing at them would forbid.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from layers.cases.machine import ACTIONS, RATINGS, STATES
from layers.registry import metadata
from layers.units import CODE_LENGTH

KINDS = ("service_request", "enforcement_case")


def _in(column: str, values: tuple[str, ...] | list[str]) -> str:
    return f"{column} in ({', '.join(repr(v) for v in values)})"


def _time(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True))


cases = sa.Table(
    "cases",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("service_request_id", sa.BigInteger, unique=True),
    sa.Column("enforcement_case_id", sa.BigInteger, unique=True),
    sa.Column("street_code", sa.String(9), sa.ForeignKey("streets.code")),
    sa.Column("category", sa.Text),
    sa.Column("state", sa.Text, nullable=False, server_default="received"),
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("main_unit", sa.String(CODE_LENGTH), sa.ForeignKey("units.code"), index=True),
    sa.Column(
        "assisting_units",
        pg.ARRAY(sa.String(CODE_LENGTH)),
        nullable=False,
        server_default=sa.text("'{}'"),
    ),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    _time("dispatched_at"),
    _time("due_at"),
    _time("accepted_at"),
    _time("contacted_at"),
    _time("resolved_at"),
    _time("called_back_at"),
    _time("closed_at"),
    sa.Column("result", sa.Text),
    sa.Column("callback_valid", sa.Boolean),
    sa.Column("callback_contacted", sa.Boolean),
    sa.Column("callback_solved", sa.Boolean),
    sa.Column("rating", sa.Text),
    sa.Column("return_reason", sa.Text),
    _time("extension_due_at"),  # an open extension request (延期申请): the due time asked
    sa.Column("extension_decision", sa.Text),  # the last request's fate
    sa.Column("supervised", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("supervise_note", sa.Text),
    sa.Column("reopen_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("reported_by", sa.Text),  # the user who filed it (intake); NULL from an extract
    # A street's queue and its counts, a unit's cases (migration 0021).
    sa.Index(
        "ix_cases_street_state",
        "street_code",
        "state",
        "main_unit",
        postgresql_include=["assisting_units", "version", "updated_at"],
    ),
    sa.Index("ix_cases_street_due", "street_code", "due_at", "id"),
    sa.Index("ix_cases_assisting_units", "assisting_units", postgresql_using="gin"),
    # A period's dispatched cases: the departments' ratings (migration 0023).
    sa.Index("ix_cases_dispatched_at", "dispatched_at"),
    sa.CheckConstraint(_in("kind", KINDS), name="kind"),
    sa.CheckConstraint(
        "(kind = 'service_request') = (service_request_id is not null) and "
        "(kind = 'enforcement_case') = (enforcement_case_id is not null)",
        name="source",
    ),
    sa.CheckConstraint(_in("state", list(STATES)), name="state"),
    sa.CheckConstraint(_in("rating", RATINGS), name="rating"),
    sa.CheckConstraint(_in("extension_decision", ("approved", "refused")), name="extension"),
    sa.CheckConstraint("version >= 0 and reopen_count >= 0", name="counts"),
)

case_history = sa.Table(
    "case_history",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("case_id", sa.BigInteger, sa.ForeignKey("cases.id"), nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("from_state", sa.Text, nullable=False),
    sa.Column("to_state", sa.Text, nullable=False),
    sa.Column("user_name", sa.Text),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("unit_code", sa.String(CODE_LENGTH), sa.ForeignKey("units.code")),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("fields", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.CheckConstraint(_in("action", list(ACTIONS)), name="action"),
    sa.CheckConstraint(
        f"{_in('from_state', list(STATES))} and {_in('to_state', list(STATES))}", name="states"
    ),
    sa.Index("ix_case_history_case_id", "case_id", "id"),
    # A period's returns (退单) by unit: the departments' ratings (migration 0023).
    sa.Index(
        "ix_case_history_returns",
        "at",
        postgresql_include=["case_id", "unit_code"],
        postgresql_where=sa.text("action = 'return'"),
    ),
    # A case's moves away from a unit: the `bounced` guard (migration 0023).
    sa.Index(
        "ix_case_history_moves",
        "case_id",
        postgresql_where=sa.text(
            "action = 'return' OR (action = 'redispatch' AND from_state = 'dispatched')"
        ),
    ),
    # The ETL's steps (etl/replay.py) once each: a replayed step is never written twice.
    sa.Index(
        "uq_case_history_etl_step",
        "case_id",
        "action",
        "at",
        unique=True,
        postgresql_where=sa.text("role = 'etl'"),
    ),
)

PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp")
MAX_PHOTOS = 3

# The photos of a case (migration 0019): files on disk named by their SHA-256; visible where
# their case is. At most MAX_PHOTOS per case: `position` 1…3, unique per case.
case_photos = sa.Table(
    "case_photos",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("case_id", sa.BigInteger, sa.ForeignKey("cases.id"), nullable=False),
    sa.Column("position", sa.SmallInteger, nullable=False),
    sa.Column("file_name", sa.Text, nullable=False),
    sa.Column("content_type", sa.Text, nullable=False),
    sa.Column("bytes", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("uploaded_by", sa.Text),
    sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(f"position between 1 and {MAX_PHOTOS}", name="position"),
    sa.CheckConstraint(_in("content_type", PHOTO_TYPES), name="content_type"),
    sa.CheckConstraint("bytes > 0", name="bytes"),
    sa.CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="sha256"),
    sa.UniqueConstraint("case_id", "position"),
    sa.UniqueConstraint("case_id", "sha256"),
)
