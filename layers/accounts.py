"""Users, sessions, API tokens, the login throttle and the audit log: who may see what,
and what they took. The web server reads none of these tables itself: it goes through the
SECURITY DEFINER functions of migration 0009."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from layers.registry import metadata

ROLES = (
    "district",
    "commander",
    "analyst",
    "planner",
    "clerk",
    "department",
    "grid_officer",
    "assessor",
)
UNIT_ROLES = ("department", "assessor")  # bound to one unit (migrations 0018, 0022)

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
    # A department user (承办单位) is bound to one unit (migration 0018), an assessor
    # (考核部门) to one district department (migration 0022).
    sa.Column("unit_code", sa.String(64), sa.ForeignKey("units.code"), nullable=True),
    sa.CheckConstraint(
        "role in ('district', 'commander', 'analyst', 'planner', 'clerk', 'department', "
        "'grid_officer', 'assessor')",
        name="role",
    ),
    sa.CheckConstraint(
        "CASE WHEN role IN ('commander', 'grid_officer') THEN street_code IS NOT NULL "
        "WHEN role = 'clerk' THEN true ELSE street_code IS NULL END",
        name="zone",
    ),
    sa.CheckConstraint(
        "(role in ('department', 'assessor')) = (unit_code is not null)", name="unit"
    ),
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
    sa.Column(
        "expires_at",
        sa.DateTime(timezone=True),
        nullable=False,
        server_default=sa.text("now() + interval '90 days'"),
    ),
)

# A login's session: the cookie carries a random id, only its SHA-256 is kept. It ends at
# logout, at a password change or when the user is disabled (`ended_at`), after an idle
# time or a lifetime (Settings.session_idle, session_lifetime).
sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("sid_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column(
        "user_id",
        sa.Integer,
        sa.ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
    sa.Column("remote", sa.Text),
)

# Failed (and in-flight) logins, per client address and user name: the throttle of every
# server process (migration 0009, `auth_login_challenge`).
login_attempts = sa.Table(
    "login_attempts",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("remote", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("checked", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_login_attempts_remote_at", "remote", "at"),
    sa.Index("ix_login_attempts_name_at", "name", "at"),
    sa.Index("ix_login_attempts_at", "at"),
)

login_decoy = sa.Table(
    "login_decoy",
    metadata,
    sa.Column(
        "key",
        sa.Text,
        nullable=False,
        server_default=sa.text("gen_random_uuid()::text"),
        comment="salts the decoy hash of unknown user names; only the owner reads it",
    ),
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
