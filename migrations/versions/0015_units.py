"""Units (承办单位): each street's centre, seven departments and stations; the district's
departments (layers/units.py).

Every role may read them (unit names are not secret, and a department user will see its
cases across streets): the reader gets SELECT, no row-level security. Only the owner writes
(`blockdata units build` / `units import`).

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READER = "blockdata_reader"


def upgrade() -> None:
    op.create_table(
        "units",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind in ('centre', 'department', 'station', 'district_department')",
            name=op.f("ck_units_kind"),
        ),
        sa.CheckConstraint(
            "(kind = 'district_department') = (street_code is null)",
            name=op.f("ck_units_street"),
        ),
        sa.CheckConstraint(
            "code ~ '^[a-z0-9]+(-[a-z0-9]+)*$' and case when street_code is null "
            "then starts_with(code, 'district-') "
            "else starts_with(code, street_code || '-') end",
            name=op.f("ck_units_code"),
        ),
        sa.CheckConstraint("btrim(name) <> ''", name=op.f("ck_units_name")),
        sa.ForeignKeyConstraint(
            ["street_code"], ["streets.code"], name=op.f("fk_units_street_code_streets")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_units")),
        sa.UniqueConstraint(
            "street_code",
            "name",
            name=op.f("uq_units_street_code_name"),
            postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_index(op.f("ix_units_street_code"), "units", ["street_code"], unique=False)
    op.execute(f"GRANT SELECT ON units TO {READER}")


def downgrade() -> None:
    op.drop_index(op.f("ix_units_street_code"), table_name="units")
    op.drop_table("units")
