"""Intake (受理): the grid officer role, the clerk bound to a street, who reported a case,
and the photos of a case.

- Role `grid_officer` (网格员): bound to one street (`users.street_code`), like a commander;
  its zone is that street, so row-level security confines it as it does a commander. It
  files reports (Open311 POST, the 网格员上报 page) and reads the cases it reported; it takes
  no case transition (layers/cases/machine.py).
- The clerk (数据管理员, the street centre's) is bound to one street too: its zone becomes
  that street. `blockdata users add --role clerk` requires `--street`. A clerk made before
  this revision has no street: the row is kept (nothing to guess its street from), but such
  an unbound clerk sees nothing (its zone is `-`, no street's code) and the server refuses
  its login and every request with a message saying to bind it
  (`blockdata users bind NAME --street CODE`). The check below allows that state for a
  clerk only; `--street` is required for a commander and a grid officer as before.
- `cases.reported_by`: the user who filed the case (Open311 POST, the report page); NULL for
  cases made from an extract.
- `case_photos`: at most 3 photos per case (`position` 1–3, unique per case: two uploads at
  once cannot make a fourth), each a file on disk named by its SHA-256 (never the client's
  name), with its checked content type and size. The reader may SELECT and INSERT (no
  UPDATE, no DELETE); row-level security as `case_history`: a photo is visible, and may be
  added, where its case is (the subquery reads `cases` under its own policies: zone, unit).

Revision ID: 0019
Revises: 0018
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READER = "blockdata_reader"
ROLES_BEFORE = "('district', 'commander', 'analyst', 'planner', 'clerk', 'department')"
ROLES_AFTER = (
    "('district', 'commander', 'analyst', 'planner', 'clerk', 'department', 'grid_officer')"
)
ZONE_BEFORE = "(role = 'commander') = (street_code is not null)"
# A commander and a grid officer have a street; a clerk should (one made before 0019 may
# not: it is refused until bound); no one else has one.
ZONE_AFTER = (
    "CASE WHEN role IN ('commander', 'grid_officer') THEN street_code IS NOT NULL "
    "WHEN role = 'clerk' THEN true ELSE street_code IS NULL END"
)
CONTENT_TYPES = "('image/jpeg', 'image/png', 'image/webp')"
VISIBLE = "EXISTS (SELECT 1 FROM cases c WHERE c.id = case_id)"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_users_role"), "users", type_="check")
    op.create_check_constraint(op.f("ck_users_role"), "users", f"role in {ROLES_AFTER}")
    op.drop_constraint(op.f("ck_users_zone"), "users", type_="check")
    op.create_check_constraint(op.f("ck_users_zone"), "users", ZONE_AFTER)

    op.add_column("cases", sa.Column("reported_by", sa.Text(), nullable=True))
    op.create_table(
        "case_photos",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("uploaded_by", sa.Text(), nullable=True),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("position between 1 and 3", name=op.f("ck_case_photos_position")),
        sa.CheckConstraint(
            f"content_type in {CONTENT_TYPES}", name=op.f("ck_case_photos_content_type")
        ),
        sa.CheckConstraint("bytes > 0", name=op.f("ck_case_photos_bytes")),
        sa.CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name=op.f("ck_case_photos_sha256")),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_photos_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_photos")),
        sa.UniqueConstraint("case_id", "position", name=op.f("uq_case_photos_case_id_position")),
        sa.UniqueConstraint("case_id", "sha256", name=op.f("uq_case_photos_case_id_sha256")),
    )
    op.execute(f"GRANT SELECT, INSERT ON case_photos TO {READER}")
    op.execute("ALTER TABLE case_photos ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY zone ON case_photos FOR SELECT TO {READER} USING ({VISIBLE})")
    op.execute(f"CREATE POLICY write ON case_photos FOR INSERT TO {READER} WITH CHECK ({VISIBLE})")


def downgrade() -> None:
    op.drop_table("case_photos")
    op.drop_column("cases", "reported_by")
    op.execute("DELETE FROM users WHERE role = 'grid_officer'")
    op.execute("UPDATE users SET street_code = NULL WHERE role = 'clerk'")
    op.drop_constraint(op.f("ck_users_zone"), "users", type_="check")
    op.create_check_constraint(op.f("ck_users_zone"), "users", ZONE_BEFORE)
    op.drop_constraint(op.f("ck_users_role"), "users", type_="check")
    op.create_check_constraint(op.f("ck_users_role"), "users", f"role in {ROLES_BEFORE}")
