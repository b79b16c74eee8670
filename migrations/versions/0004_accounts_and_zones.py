"""Users, API tokens, the audit log; the reader role and row-level security by zone.

The server reads every request as `blockdata_reader` with the caller's zone in the
`blockdata.zone` setting ('*' for the whole district, else a street code). Each table that
belongs to a street gets a policy comparing its street with that setting; other tables the
reader may not see at all unless the zone is '*'. The per-street scorecard
(`request_street_daily`: counts and rates only) is readable by every role, because a
commander is shown their rank among the streets.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READER = "blockdata_reader"
ZONE = "current_setting('blockdata.zone', true)"
# table → the expression naming the row's street
BY_STREET = {
    "streets": "code",
    "communities": "street_code",
    "grids": "street_code",
    "lanes": "street_code",
    "service_halls": "street_code",
    "landmarks": "street_code",
    "service_requests": "street_code",
    "enforcement_cases": "street_code",
    "relocation_targets": "street_code",
    "renovation_projects": "street_code",
    "request_daily": "street_code",
    "request_cells_daily": "street_code",
    "request_open": "street_code",
    "request_monthly": "street_code",
    "request_cells_monthly": "street_code",
    "request_periods": "street_code",
    "request_cells_periods": "street_code",
}
DISTRICT_ONLY = ("etl_runs", "etl_rejects")
PRIVATE = ("users", "api_tokens", "request_dirty_days")


def _existing(names: Sequence[str]) -> list[str]:
    bind = op.get_bind()
    return [n for n in names if bind.exec_driver_sql(f"select to_regclass('{n}')").scalar()]


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=True),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("disabled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "role in ('district', 'commander', 'analyst', 'planner', 'clerk')",
            name=op.f("ck_users_role"),
        ),
        sa.CheckConstraint(
            "(role = 'commander') = (street_code is not null)", name=op.f("ck_users_zone")
        ),
        sa.ForeignKeyConstraint(
            ["street_code"], ["streets.code"], name=op.f("fk_users_street_code_streets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_api_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_api_tokens_token_sha256")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("user_name", sa.Text(), nullable=True),
        sa.Column("role", sa.Text(), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column(
            "filters",
            sa.dialects.postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.Column("remote", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"], unique=False)

    # Roles belong to the whole cluster: create it once, grant it in this database.
    op.execute(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{READER}') "
        f"THEN CREATE ROLE {READER} NOLOGIN; END IF; END $$"
    )
    op.execute(f"GRANT {READER} TO CURRENT_USER")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {READER}")
    op.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER}")
    op.execute(f"REVOKE ALL ON {', '.join(_existing(PRIVATE))} FROM {READER}")
    op.execute(f"GRANT INSERT ON audit_log TO {READER}")
    for table, street in BY_STREET.items():
        if not _existing([table]):
            continue
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY zone ON {table} FOR SELECT TO {READER} "
            f"USING ({ZONE} = '*' OR {street} = {ZONE})"
        )
    for table in DISTRICT_ONLY:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY zone ON {table} FOR SELECT TO {READER} USING ({ZONE} = '*')")
    op.execute("ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY zone ON audit_log FOR SELECT TO {READER} USING ({ZONE} = '*')")
    op.execute(f"CREATE POLICY write ON audit_log FOR INSERT TO {READER} WITH CHECK (true)")


def downgrade() -> None:
    for table in [*BY_STREET, *DISTRICT_ONLY]:
        if not _existing([table]):
            continue
        op.execute(f"DROP POLICY IF EXISTS zone ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {READER}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {READER}")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("api_tokens")
    op.drop_table("users")
