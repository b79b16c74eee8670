"""Users, API tokens and the audit log: who may see what, and what they took."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from layers.registry import metadata

ROLES = ("district", "commander", "analyst", "planner", "clerk")

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("street_code", sa.String(9), sa.ForeignKey("streets.code"), nullable=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.CheckConstraint(
        "role in ('district', 'commander', 'analyst', 'planner', 'clerk')", name="role"
    ),
    sa.CheckConstraint("(role = 'commander') = (street_code is not null)", name="zone"),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    # Only the SHA-256 of a token is kept; the token itself is shown once.
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("last_used_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("user_name", sa.Text),
    sa.Column("role", sa.Text),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("path", sa.Text),
    sa.Column("filters", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("rows", sa.Integer),
    sa.Column("remote", sa.Text),
    sa.Index("ix_audit_log_at", "at"),
)
