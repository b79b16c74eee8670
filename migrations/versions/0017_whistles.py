"""Whistles (吹哨报到): a street summons units to a case or a place (layers/whistles.py).

`whistles` (one per summons: street, case or place, reason, meeting point and time, who blew
it) and `whistle_units` (each summoned unit: arrival, completion, the street's rating). The
server writes both as `blockdata_reader` (SELECT, INSERT, UPDATE; never DELETE). Row-level
security by street, like cases (migration 0016): a commander sees and writes their street's
whistles only. A department user's policy (the whistles its unit is summoned to, across
streets) comes with the department role.

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READER = "blockdata_reader"
ZONE = "current_setting('blockdata.zone', true)"


def upgrade() -> None:
    op.create_table(
        "whistles",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=False),
        sa.Column("target_kind", sa.Text(), nullable=False),
        sa.Column("case_id", sa.BigInteger(), nullable=True),
        sa.Column("target_ref", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("meeting_point", sa.Text(), nullable=False),
        sa.Column(
            "meeting_geom",
            geoalchemy2.types.Geometry(
                geometry_type="POINT",
                srid=4326,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column("meet_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blown_by", sa.Text(), nullable=True),
        sa.Column("blown_role", sa.Text(), nullable=False),
        sa.Column("blown_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "target_kind in ('case', 'relocation_target', 'illegal_structure', 'lane')",
            name=op.f("ck_whistles_target_kind"),
        ),
        sa.CheckConstraint(
            "(target_kind = 'case') = (case_id is not null) and "
            "(target_kind = 'case' or target_ref is not null)",
            name=op.f("ck_whistles_target"),
        ),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_whistles_case_id_cases")),
        sa.ForeignKeyConstraint(
            ["street_code"], ["streets.code"], name=op.f("fk_whistles_street_code_streets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whistles")),
    )
    op.create_index("ix_whistles_street_code", "whistles", ["street_code", "meet_at"])
    op.create_table(
        "whistle_units",
        sa.Column("whistle_id", sa.BigInteger(), nullable=False),
        sa.Column("unit_code", sa.String(length=64), nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=False),
        sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("arrived_by", sa.Text(), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_by", sa.Text(), nullable=True),
        sa.Column("completion_note", sa.Text(), nullable=True),
        sa.Column("rating", sa.Text(), nullable=True),
        sa.Column("rating_comment", sa.Text(), nullable=True),
        sa.Column("rated_by", sa.Text(), nullable=True),
        sa.Column("rated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "rating in ('满意', '基本满意', '不满意')", name=op.f("ck_whistle_units_rating")
        ),
        sa.CheckConstraint(
            "completed_at is null or arrived_at is not null",
            name=op.f("ck_whistle_units_arrive_first"),
        ),
        sa.CheckConstraint(
            "rating is null or completed_at is not null", name=op.f("ck_whistle_units_rate_after")
        ),
        sa.ForeignKeyConstraint(
            ["whistle_id"], ["whistles.id"], name=op.f("fk_whistle_units_whistle_id_whistles")
        ),
        sa.ForeignKeyConstraint(
            ["unit_code"], ["units.code"], name=op.f("fk_whistle_units_unit_code_units")
        ),
        sa.ForeignKeyConstraint(
            ["street_code"], ["streets.code"], name=op.f("fk_whistle_units_street_code_streets")
        ),
        sa.PrimaryKeyConstraint("whistle_id", "unit_code", name=op.f("pk_whistle_units")),
    )
    op.create_index("ix_whistle_units_unit_code", "whistle_units", ["unit_code"])
    zone = f"{ZONE} = '*' OR street_code = {ZONE}"
    for table in ("whistles", "whistle_units"):
        op.execute(f"GRANT SELECT, INSERT, UPDATE ON {table} TO {READER}")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY zone ON {table} FOR ALL TO {READER} USING ({zone}) WITH CHECK ({zone})"
        )


def downgrade() -> None:
    op.drop_table("whistle_units")
    op.drop_table("whistles")
