"""Indexes for search: work-order and case numbers found by exact value or prefix.

- `ix_service_requests_source_id_pattern` on `service_requests (source_id text_pattern_ops)`:
  a work-order number (工单编号, GD20261118000123) or its prefix, typed into the map's search
  box (`layers.queries.search`); the unique (source, source_id) key cannot serve a search
  that does not know the source, and a LIKE prefix needs the pattern operator class;
- `ix_enforcement_cases_case_no_pattern` on `enforcement_cases (case_no text_pattern_ops)`:
  the same for an enforcement case's number (ZF2026-000123).

`bench/bench_search.py` measures the search with and without them.

Revision ID: 0026
Revises: 0024 (the lead chains it after 0025)
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_service_requests_source_id_pattern",
        "service_requests",
        ["source_id"],
        postgresql_ops={"source_id": "text_pattern_ops"},
    )
    op.create_index(
        "ix_enforcement_cases_case_no_pattern",
        "enforcement_cases",
        ["case_no"],
        postgresql_ops={"case_no": "text_pattern_ops"},
    )


def downgrade() -> None:
    op.drop_index("ix_enforcement_cases_case_no_pattern", table_name="enforcement_cases")
    op.drop_index("ix_service_requests_source_id_pattern", table_name="service_requests")
