"""Cases (案件) and their history (流转记录): the case lifecycle (layers/cases/).

`cases` holds each case's current state and a version number; `case_history` one row per
transition. The server writes both as `blockdata_reader` (the web role is a member) through
`layers.cases.store`: on `cases` SELECT, INSERT and UPDATE, on `case_history` SELECT and
INSERT only. The history is append-only for everyone: a trigger refuses UPDATE and DELETE
whoever asks (the owner may still TRUNCATE, for tests and a rebuild).

Row-level security on `cases` by street, like the event tables (migration 0004): the reader
sees and writes a case of its zone's street ('*': every street). A history row is visible
and insertable where its case is. A department user's policy (the cases dispatched to its
unit, across streets) comes with the department role.

A case points at its service request or enforcement case; a trigger checks that the row
exists (the ETL's bulk load rebuilds those tables' primary keys and truncates an empty one,
which a foreign key would forbid: see layers/cases/tables.py).

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READER = "blockdata_reader"
ZONE = "current_setting('blockdata.zone', true)"
SEARCH_PATH = "pg_catalog, public, pg_temp"
STATES = "('received', 'dispatched', 'accepted', 'contacted', 'resolved', 'called_back', 'closed', 'returned')"  # noqa: E501
ACTIONS = (
    "('dispatch', 'accept', 'contact', 'resolve', 'callback', 'return', 'redispatch', "
    "'extend', 'approve_extension', 'refuse_extension', 'supervise', 'reopen', 'close')"
)

APPEND_ONLY = """
CREATE FUNCTION case_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION '流转记录只能追加，不能修改或删除 case_history is append-only (% refused)',
        TG_OP USING ERRCODE = 'insufficient_privilege';
END
$fn$
"""

SOURCE_EXISTS = f"""
CREATE FUNCTION cases_source_exists() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {SEARCH_PATH} AS $fn$
BEGIN
    IF NEW.kind = 'service_request' THEN
        PERFORM 1 FROM service_requests WHERE id = NEW.service_request_id FOR KEY SHARE;
    ELSE
        PERFORM 1 FROM enforcement_cases WHERE id = NEW.enforcement_case_id FOR KEY SHARE;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION '案件的来源记录不存在 no % with id %', NEW.kind,
            coalesce(NEW.service_request_id, NEW.enforcement_case_id)
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END
$fn$
"""


def _time(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=True)


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("service_request_id", sa.BigInteger(), nullable=True),
        sa.Column("enforcement_case_id", sa.BigInteger(), nullable=True),
        sa.Column("street_code", sa.String(length=9), nullable=True),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("state", sa.Text(), server_default="received", nullable=False),
        sa.Column("version", sa.Integer(), server_default="0", nullable=False),
        sa.Column("main_unit", sa.String(length=64), nullable=True),
        sa.Column(
            "assisting_units",
            postgresql.ARRAY(sa.String(length=64)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        _time("dispatched_at"),
        _time("due_at"),
        _time("accepted_at"),
        _time("contacted_at"),
        _time("resolved_at"),
        _time("called_back_at"),
        _time("closed_at"),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("callback_valid", sa.Boolean(), nullable=True),
        sa.Column("callback_contacted", sa.Boolean(), nullable=True),
        sa.Column("callback_solved", sa.Boolean(), nullable=True),
        sa.Column("rating", sa.Text(), nullable=True),
        sa.Column("return_reason", sa.Text(), nullable=True),
        _time("extension_due_at"),
        sa.Column("extension_decision", sa.Text(), nullable=True),
        sa.Column("supervised", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("supervise_note", sa.Text(), nullable=True),
        sa.Column("reopen_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind in ('service_request', 'enforcement_case')", name=op.f("ck_cases_kind")
        ),
        sa.CheckConstraint(
            "(kind = 'service_request') = (service_request_id is not null) and "
            "(kind = 'enforcement_case') = (enforcement_case_id is not null)",
            name=op.f("ck_cases_source"),
        ),
        sa.CheckConstraint(f"state in {STATES}", name=op.f("ck_cases_state")),
        sa.CheckConstraint(
            "rating in ('满意', '基本满意', '不满意')", name=op.f("ck_cases_rating")
        ),
        sa.CheckConstraint(
            "extension_decision in ('approved', 'refused')", name=op.f("ck_cases_extension")
        ),
        sa.CheckConstraint("version >= 0 and reopen_count >= 0", name=op.f("ck_cases_counts")),
        sa.ForeignKeyConstraint(
            ["street_code"], ["streets.code"], name=op.f("fk_cases_street_code_streets")
        ),
        sa.ForeignKeyConstraint(
            ["main_unit"], ["units.code"], name=op.f("fk_cases_main_unit_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
        sa.UniqueConstraint("service_request_id", name=op.f("uq_cases_service_request_id")),
        sa.UniqueConstraint("enforcement_case_id", name=op.f("uq_cases_enforcement_case_id")),
    )
    op.create_index(op.f("ix_cases_street_code"), "cases", ["street_code"], unique=False)
    op.create_index(op.f("ix_cases_main_unit"), "cases", ["main_unit"], unique=False)
    op.create_table(
        "case_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("from_state", sa.Text(), nullable=False),
        sa.Column("to_state", sa.Text(), nullable=False),
        sa.Column("user_name", sa.Text(), nullable=True),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("unit_code", sa.String(length=64), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "fields",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.CheckConstraint(f"action in {ACTIONS}", name=op.f("ck_case_history_action")),
        sa.CheckConstraint(
            f"from_state in {STATES} and to_state in {STATES}",
            name=op.f("ck_case_history_states"),
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_history_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["unit_code"], ["units.code"], name=op.f("fk_case_history_unit_code_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_history")),
    )
    op.create_index("ix_case_history_case_id", "case_history", ["case_id", "id"], unique=False)

    op.execute(APPEND_ONLY)
    op.execute(
        "CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON case_history "
        "FOR EACH ROW EXECUTE FUNCTION case_history_append_only()"
    )
    op.execute(SOURCE_EXISTS)
    op.execute(
        "CREATE TRIGGER source_exists "
        "BEFORE INSERT OR UPDATE OF kind, service_request_id, enforcement_case_id ON cases "
        "FOR EACH ROW EXECUTE FUNCTION cases_source_exists()"
    )

    op.execute(f"GRANT SELECT, INSERT, UPDATE ON cases TO {READER}")
    op.execute(f"GRANT SELECT, INSERT ON case_history TO {READER}")
    op.execute("ALTER TABLE cases ENABLE ROW LEVEL SECURITY")
    zone = f"{ZONE} = '*' OR street_code = {ZONE}"
    op.execute(
        f"CREATE POLICY zone ON cases FOR ALL TO {READER} USING ({zone}) WITH CHECK ({zone})"
    )
    op.execute("ALTER TABLE case_history ENABLE ROW LEVEL SECURITY")
    # The subquery reads `cases` under its own policy: a history row goes with its case.
    visible = "EXISTS (SELECT 1 FROM cases c WHERE c.id = case_id)"
    op.execute(f"CREATE POLICY zone ON case_history FOR SELECT TO {READER} USING ({visible})")
    op.execute(f"CREATE POLICY write ON case_history FOR INSERT TO {READER} WITH CHECK ({visible})")


def downgrade() -> None:
    op.drop_table("case_history")
    op.execute("DROP FUNCTION case_history_append_only()")
    op.drop_table("cases")
    op.execute("DROP FUNCTION cases_source_exists()")
