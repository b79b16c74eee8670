"""The evaluation (考评): schemes, inputs, publications, and the assessor role.

The tables of layers/evaluation/tables.py. The server reads and writes them as
`blockdata_reader`, under row-level security:

- `evaluation_schemes`: read by every role (the CLI writes them, as the owner);
- the inputs an assessor owns — `evaluation_scores`, `evaluation_score_audit`,
  `evaluation_events`: read with the district's zone ('*') only, written only by an assessor
  of the owning unit (zone '*' and `blockdata.unit` = owner_unit: not the district or an
  analyst, whose unit is '', nor a department user, whose zone is '-');
  `evaluation_tasks` likewise, but a street reads its own tasks;
- `survey_results`: read with zone '*', written with zone '*' and no unit (the district);
- the publications: `evaluation_publications` and `evaluation_rankings` (every street's
  public line) read by everyone, `evaluation_results` (a street's full result and inputs) by
  zone '*' or the street's own; all three written with zone '*' and no unit.

The score audit and the three publication tables are append-only: a trigger refuses UPDATE
and DELETE (a published period is frozen; publishing again is a new version).

The role check of `users` gains 'assessor' (考核部门), bound to one unit like a department
user; the auth functions of migration 0018 already return the unit.

Revision ID: 0022
Revises: 0021
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READER = "blockdata_reader"
ZONE = "current_setting('blockdata.zone', true)"
UNIT = "nullif(current_setting('blockdata.unit', true), '')"
DISTRICT_ZONE = f"{ZONE} = '*'"
READ_STREET = f"({DISTRICT_ZONE} OR street_code = {ZONE})"
OWNER = f"({DISTRICT_ZONE} AND owner_unit = {UNIT})"
DISTRICT = f"({DISTRICT_ZONE} AND {UNIT} IS NULL)"

ROLES_BEFORE = (
    "('district', 'commander', 'analyst', 'planner', 'clerk', 'department', 'grid_officer')"
)
ROLES_AFTER = (
    "('district', 'commander', 'analyst', 'planner', 'clerk', 'department', 'grid_officer', "
    "'assessor')"
)
UNIT_BEFORE = "(role = 'department') = (unit_code is not null)"
UNIT_AFTER = "(role in ('department', 'assessor')) = (unit_code is not null)"

# table → (grants, read policy, write policy, the writes it covers)
ACCESS = {
    "evaluation_schemes": ("SELECT", "true", None, ()),
    "evaluation_scores": ("SELECT, INSERT, UPDATE", DISTRICT_ZONE, OWNER, ("INSERT", "UPDATE")),
    "evaluation_score_audit": ("SELECT, INSERT", DISTRICT_ZONE, OWNER, ("INSERT",)),
    "evaluation_events": ("SELECT, INSERT, DELETE", DISTRICT_ZONE, OWNER, ("INSERT", "DELETE")),
    "evaluation_tasks": ("SELECT, INSERT, UPDATE", READ_STREET, OWNER, ("INSERT", "UPDATE")),
    "survey_results": ("SELECT, INSERT, UPDATE", DISTRICT_ZONE, DISTRICT, ("INSERT", "UPDATE")),
    "evaluation_publications": ("SELECT, INSERT", "true", DISTRICT, ("INSERT",)),
    "evaluation_rankings": ("SELECT, INSERT", "true", DISTRICT, ("INSERT",)),
    "evaluation_results": ("SELECT, INSERT", READ_STREET, DISTRICT, ("INSERT",)),
}

FROZEN = """
CREATE FUNCTION evaluation_frozen() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'P0001';
END
$fn$
"""
FROZEN_TABLES = {
    "evaluation_score_audit": "考评记录只增不改 the score audit is append-only",
    "evaluation_publications": "已发布的考评不可修改 a published evaluation cannot be changed",
    "evaluation_rankings": "已发布的考评不可修改 a published evaluation cannot be changed",
    "evaluation_results": "已发布的考评不可修改 a published evaluation cannot be changed",
}


def _policy(table: str, name: str, command: str, using: str | None, check: str | None) -> str:
    parts = [f"CREATE POLICY {name} ON {table} FOR {command} TO {READER}"]
    if using is not None:
        parts.append(f"USING ({using})")
    if check is not None:
        parts.append(f"WITH CHECK ({check})")
    return " ".join(parts)


def _access() -> None:
    for table, (grants, read, write, writes) in ACCESS.items():
        op.execute(f"GRANT {grants} ON {table} TO {READER}")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(_policy(table, "read", "SELECT", read, None))
        for command in writes:
            using = None if command == "INSERT" else write
            check = None if command == "DELETE" else write
            op.execute(_policy(table, command.lower(), command, using, check))
    op.execute(FROZEN)
    for table, message in FROZEN_TABLES.items():
        op.execute(
            f"CREATE TRIGGER frozen BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION evaluation_frozen('{message}')"
        )


def _users(roles: str, unit: str) -> None:
    op.drop_constraint(op.f("ck_users_role"), "users", type_="check")
    op.create_check_constraint(op.f("ck_users_role"), "users", f"role in {roles}")
    op.drop_constraint(op.f("ck_users_unit"), "users", type_="check")
    op.create_check_constraint(op.f("ck_users_unit"), "users", unit)


def upgrade() -> None:
    op.create_table(
        "evaluation_publications",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("scheme_code", sa.Text(), nullable=False),
        sa.Column("scheme_version", sa.Integer(), nullable=False),
        sa.Column("scheme_body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column("since", sa.Date(), nullable=False),
        sa.Column("until", sa.Date(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("published_by", sa.Text(), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("departments", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint("version >= 1", name=op.f("ck_evaluation_publications_version")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluation_publications")),
        sa.UniqueConstraint(
            "scheme_code",
            "period",
            "version",
            name=op.f("uq_evaluation_publications_scheme_code_period_version"),
        ),
    )
    op.create_table(
        "evaluation_schemes",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.CheckConstraint("version >= 1", name=op.f("ck_evaluation_schemes_version")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluation_schemes")),
        sa.UniqueConstraint("code", "version", name=op.f("uq_evaluation_schemes_code_version")),
    )
    op.create_table(
        "evaluation_rankings",
        sa.Column("publication_id", sa.Integer(), nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("composite", sa.Numeric(precision=8, scale=2), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("rank_change", sa.Integer(), nullable=True),
        sa.Column("class", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["publication_id"],
            ["evaluation_publications.id"],
            name=op.f("fk_evaluation_rankings_publication_id_evaluation_publications"),
        ),
        sa.PrimaryKeyConstraint(
            "publication_id", "street_code", name=op.f("pk_evaluation_rankings")
        ),
    )
    op.create_table(
        "evaluation_results",
        sa.Column("publication_id", sa.Integer(), nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=False),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("inputs", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["publication_id"],
            ["evaluation_publications.id"],
            name=op.f("fk_evaluation_results_publication_id_evaluation_publications"),
        ),
        sa.PrimaryKeyConstraint(
            "publication_id", "street_code", name=op.f("pk_evaluation_results")
        ),
    )
    op.create_table(
        "survey_results",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("scale", sa.Text(), nullable=False),
        sa.Column("sample_size", sa.Integer(), nullable=False),
        sa.Column("counts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("imported_by", sa.Text(), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("scale in ('five', 'three')", name=op.f("ck_survey_results_scale")),
        sa.CheckConstraint("sample_size > 0", name=op.f("ck_survey_results_sample_size")),
        sa.ForeignKeyConstraint(
            ["street_code"], ["streets.code"], name=op.f("fk_survey_results_street_code_streets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_results")),
        sa.UniqueConstraint(
            "period",
            "street_code",
            "question",
            name=op.f("uq_survey_results_period_street_code_question"),
        ),
    )
    op.create_table(
        "evaluation_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("scheme_code", sa.Text(), nullable=False),
        sa.Column("item_code", sa.Text(), nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=False),
        sa.Column("owner_unit", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("recorded_by", sa.Text(), nullable=True),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["owner_unit"], ["units.code"], name=op.f("fk_evaluation_events_owner_unit_units")
        ),
        sa.ForeignKeyConstraint(
            ["street_code"], ["streets.code"], name=op.f("fk_evaluation_events_street_code_streets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluation_events")),
    )
    op.create_index(
        "ix_evaluation_events_item",
        "evaluation_events",
        ["scheme_code", "item_code", "occurred_at"],
        unique=False,
    )
    op.create_table(
        "evaluation_score_audit",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("scheme_code", sa.Text(), nullable=False),
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column("item_code", sa.Text(), nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=False),
        sa.Column("owner_unit", sa.String(length=64), nullable=False),
        sa.Column("old_points", sa.Numeric(precision=8, scale=2), nullable=True),
        sa.Column("new_points", sa.Numeric(precision=8, scale=2), nullable=True),
        sa.Column("old_evidence", sa.Text(), nullable=True),
        sa.Column("new_evidence", sa.Text(), nullable=True),
        sa.Column("changed_by", sa.Text(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "source in ('form', 'xlsx', 'api', 'cli')",
            name=op.f("ck_evaluation_score_audit_source"),
        ),
        sa.ForeignKeyConstraint(
            ["owner_unit"], ["units.code"], name=op.f("fk_evaluation_score_audit_owner_unit_units")
        ),
        sa.ForeignKeyConstraint(
            ["street_code"],
            ["streets.code"],
            name=op.f("fk_evaluation_score_audit_street_code_streets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluation_score_audit")),
    )
    op.create_index(
        "ix_evaluation_score_audit_item",
        "evaluation_score_audit",
        ["scheme_code", "period", "item_code"],
        unique=False,
    )
    op.create_table(
        "evaluation_scores",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("scheme_code", sa.Text(), nullable=False),
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column("item_code", sa.Text(), nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=False),
        sa.Column("owner_unit", sa.String(length=64), nullable=False),
        sa.Column("points", sa.Numeric(precision=8, scale=2), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=True),
        sa.Column("scored_by", sa.Text(), nullable=True),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_unit"], ["units.code"], name=op.f("fk_evaluation_scores_owner_unit_units")
        ),
        sa.ForeignKeyConstraint(
            ["street_code"], ["streets.code"], name=op.f("fk_evaluation_scores_street_code_streets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluation_scores")),
        sa.UniqueConstraint(
            "scheme_code",
            "period",
            "item_code",
            "street_code",
            name=op.f("uq_evaluation_scores_scheme_code_period_item_code_street_code"),
        ),
    )
    op.create_table(
        "evaluation_tasks",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("owner_unit", sa.String(length=64), nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=False),
        sa.Column("item_code", sa.Text(), nullable=True),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("btrim(title) <> ''", name=op.f("ck_evaluation_tasks_title")),
        sa.CheckConstraint("kind in ('city', 'department')", name=op.f("ck_evaluation_tasks_kind")),
        sa.ForeignKeyConstraint(
            ["owner_unit"], ["units.code"], name=op.f("fk_evaluation_tasks_owner_unit_units")
        ),
        sa.ForeignKeyConstraint(
            ["street_code"], ["streets.code"], name=op.f("fk_evaluation_tasks_street_code_streets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluation_tasks")),
    )
    op.create_index(
        "ix_evaluation_tasks_deadline",
        "evaluation_tasks",
        ["deadline", "street_code"],
        unique=False,
    )
    _access()
    _users(ROLES_AFTER, UNIT_AFTER)


def downgrade() -> None:
    op.execute("DELETE FROM users WHERE role = 'assessor'")
    _users(ROLES_BEFORE, UNIT_BEFORE)
    op.drop_index("ix_evaluation_tasks_deadline", table_name="evaluation_tasks")
    op.drop_table("evaluation_tasks")
    op.drop_table("evaluation_scores")
    op.drop_index("ix_evaluation_score_audit_item", table_name="evaluation_score_audit")
    op.drop_table("evaluation_score_audit")
    op.drop_index("ix_evaluation_events_item", table_name="evaluation_events")
    op.drop_table("evaluation_events")
    op.drop_table("survey_results")
    op.drop_table("evaluation_results")
    op.drop_table("evaluation_rankings")
    op.drop_table("evaluation_schemes")
    op.drop_table("evaluation_publications")
    op.execute("DROP FUNCTION evaluation_frozen()")
