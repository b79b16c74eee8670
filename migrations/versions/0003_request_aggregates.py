"""Request aggregates for the heat maps and scorecards, and the triggers that mark changes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 07:10:03.677496
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Statement-level triggers with transition tables: a few set-based INSERTs per statement
# (a COPY of a million rows included), whichever path wrote the rows. `place` is true when a
# request appeared, disappeared, or changed day, category, codes or position.
MARK_FUNCTION = """
CREATE FUNCTION request_aggregates_mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO request_dirty_days (day, place) VALUES (NULL, true);
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO request_dirty_days (day, place)
        SELECT DISTINCT (received_at AT TIME ZONE 'Asia/Shanghai')::date, true FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO request_dirty_days (day, place)
        SELECT DISTINCT (received_at AT TIME ZONE 'Asia/Shanghai')::date, true FROM old_rows;
    ELSE
        WITH pairs AS (
            SELECT o.received_at AS old_at, n.received_at AS new_at,
                   (o.received_at, o.category, o.street_code, o.community_code, o.grid_code,
                    o.geom)
                   IS DISTINCT FROM
                   (n.received_at, n.category, n.street_code, n.community_code, n.grid_code,
                    n.geom) AS place
              FROM old_rows o FULL JOIN new_rows n ON n.id = o.id
        )
        INSERT INTO request_dirty_days (day, place)
        SELECT day, bool_or(place) FROM (
            SELECT (old_at AT TIME ZONE 'Asia/Shanghai')::date AS day, place
              FROM pairs WHERE old_at IS NOT NULL
            UNION ALL
            SELECT (new_at AT TIME ZONE 'Asia/Shanghai')::date, place
              FROM pairs WHERE new_at IS NOT NULL
        ) days
        GROUP BY day;
    END IF;
    RETURN NULL;
END
$$
"""
# Heat tables: vacuumed soon after each refresh, so their queries stay index-only scans.
HEAT_STORAGE = {
    "autovacuum_vacuum_insert_scale_factor": "0.01",
    "autovacuum_vacuum_scale_factor": "0.01",
}
TRIGGERS = {
    "insert": "AFTER INSERT ON service_requests REFERENCING NEW TABLE AS new_rows",
    "update": "AFTER UPDATE ON service_requests "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "delete": "AFTER DELETE ON service_requests REFERENCING OLD TABLE AS old_rows",
    "truncate": "AFTER TRUNCATE ON service_requests",
}


def upgrade() -> None:
    op.create_table(
        "request_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=True),
        sa.Column("community_code", sa.String(length=12), nullable=True),
        sa.Column("grid_code", sa.String(length=15), nullable=True),
        sa.Column("category", sa.Text(), nullable=True, comment="NULL: all categories"),
        sa.Column("received", sa.Integer(), nullable=False),
        postgresql_with=HEAT_STORAGE,
    )
    op.create_index(
        "ix_request_daily_day_street_code", "request_daily", ["day", "street_code"], unique=False
    )
    op.create_index(
        "ux_request_daily_key",
        "request_daily",
        ["category", "day", "street_code", "community_code", "grid_code"],
        unique=True,
        postgresql_include=["received"],
        postgresql_nulls_not_distinct=True,
    )
    op.create_table(
        "request_periods",
        sa.Column("span", sa.String(length=7), nullable=False, comment="dekad, month or quarter"),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=True),
        sa.Column("community_code", sa.String(length=12), nullable=True),
        sa.Column("grid_code", sa.String(length=15), nullable=True),
        sa.Column("category", sa.Text(), nullable=True, comment="NULL: all categories"),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "span = 'month' or category is null", name=op.f("ck_request_periods_totals_only")
        ),
        sa.CheckConstraint(
            "span in ('dekad', 'month', 'quarter')", name=op.f("ck_request_periods_span")
        ),
        postgresql_with=HEAT_STORAGE,
    )
    op.create_index(
        "ix_request_periods_emptied",
        "request_periods",
        ["first_day"],
        unique=False,
        postgresql_where=sa.text("received = 0"),
    )
    op.create_index(
        "ux_request_periods_key",
        "request_periods",
        ["category", "span", "first_day", "street_code", "community_code", "grid_code"],
        unique=True,
        postgresql_include=["received"],
        postgresql_nulls_not_distinct=True,
    )
    op.create_table(
        "request_cells_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=True),
        sa.Column("cell_x", sa.Integer(), nullable=False),
        sa.Column("cell_y", sa.Integer(), nullable=False),
        sa.Column("category", sa.Text(), nullable=True, comment="NULL: all categories"),
        sa.Column("received", sa.Integer(), nullable=False),
        postgresql_with=HEAT_STORAGE,
    )
    op.create_index(
        "ix_request_cells_daily_day_street_code",
        "request_cells_daily",
        ["day", "street_code"],
        unique=False,
    )
    op.create_index(
        "ux_request_cells_daily_key",
        "request_cells_daily",
        ["category", "day", "street_code", "cell_x", "cell_y"],
        unique=True,
        postgresql_include=["received"],
        postgresql_nulls_not_distinct=True,
    )
    op.create_table(
        "request_cells_periods",
        sa.Column("span", sa.String(length=7), nullable=False, comment="dekad, month or quarter"),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=True),
        sa.Column("cell_x", sa.Integer(), nullable=False),
        sa.Column("cell_y", sa.Integer(), nullable=False),
        sa.Column("category", sa.Text(), nullable=True, comment="NULL: all categories"),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "span = 'month' or category is null", name=op.f("ck_request_cells_periods_totals_only")
        ),
        sa.CheckConstraint(
            "span in ('dekad', 'month', 'quarter')", name=op.f("ck_request_cells_periods_span")
        ),
        postgresql_with=HEAT_STORAGE,
    )
    op.create_index(
        "ix_request_cells_periods_emptied",
        "request_cells_periods",
        ["first_day"],
        unique=False,
        postgresql_where=sa.text("received = 0"),
    )
    op.create_index(
        "ux_request_cells_periods_key",
        "request_cells_periods",
        ["category", "span", "first_day", "street_code", "cell_x", "cell_y"],
        unique=True,
        postgresql_include=["received"],
        postgresql_nulls_not_distinct=True,
    )
    op.create_table(
        "request_street_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=True),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.Column("resolved", sa.Integer(), nullable=False),
        sa.Column("callbacks", sa.Integer(), nullable=False),
        sa.Column("contacted", sa.Integer(), nullable=False),
        sa.Column("solved", sa.Integer(), nullable=False),
        sa.Column("satisfied", sa.Integer(), nullable=False),
        sa.Column("basic_satisfied", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ux_request_street_daily_key",
        "request_street_daily",
        ["day", "street_code"],
        unique=True,
        postgresql_nulls_not_distinct=True,
    )
    op.create_table(
        "request_open",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=True),
        sa.Column("community_code", sa.String(length=12), nullable=True),
        sa.Column("grid_code", sa.String(length=15), nullable=True),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_open")),
    )
    op.create_index(
        op.f("ix_request_open_street_code"), "request_open", ["street_code"], unique=False
    )
    op.create_table(
        "request_dirty_days",
        sa.Column("day", sa.Date(), nullable=True, comment="NULL: every day (after a TRUNCATE)"),
        sa.Column(
            "place",
            sa.Boolean(),
            nullable=False,
            comment="a request was added, removed, moved, re-dated or re-categorised",
        ),
    )
    op.execute(MARK_FUNCTION)
    for event, spec in TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER service_requests_mark_{event} {spec} "
            "FOR EACH STATEMENT EXECUTE FUNCTION request_aggregates_mark()"
        )


def downgrade() -> None:
    for event in TRIGGERS:
        op.execute(f"DROP TRIGGER service_requests_mark_{event} ON service_requests")
    op.execute("DROP FUNCTION request_aggregates_mark()")
    for table in (
        "request_dirty_days",
        "request_open",
        "request_street_daily",
        "request_cells_periods",
        "request_cells_daily",
        "request_periods",
        "request_daily",
    ):
        op.drop_table(table)  # with its indexes
