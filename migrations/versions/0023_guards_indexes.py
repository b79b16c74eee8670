"""Indexes for the departments' ratings and the data-quality guards (考评) at a million cases.

- `ix_cases_dispatched_at` on `cases (dispatched_at)`: a period's dispatched cases
  (`layers.queries.departments`), a month a twelfth of a year's, read by range instead of
  every case;
- `ix_case_history_returns` on `case_history (at) INCLUDE (case_id, unit_code) WHERE action =
  'return'`: a period's returns (退单) by unit, from a small index instead of every history
  row (the history is some five rows a case);
- `ix_case_history_moves` on `case_history (case_id) WHERE action = 'return' OR (action =
  'redispatch' AND from_state = 'dispatched')`: a case's moves away from a unit, counted for
  the `bounced` guard (`layers.queries.guards`) case by case from a small index.

`bench/bench_guards.py` measures both queries before and after.

Revision ID: 0023
Revises: 0022
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MOVES = "action = 'return' OR (action = 'redispatch' AND from_state = 'dispatched')"


def upgrade() -> None:
    op.create_index("ix_cases_dispatched_at", "cases", ["dispatched_at"])
    op.create_index(
        "ix_case_history_returns",
        "case_history",
        ["at"],
        postgresql_include=["case_id", "unit_code"],
        postgresql_where=sa.text("action = 'return'"),
    )
    op.create_index(
        "ix_case_history_moves",
        "case_history",
        ["case_id"],
        postgresql_where=sa.text(MOVES),
    )


def downgrade() -> None:
    op.drop_index("ix_case_history_moves", table_name="case_history")
    op.drop_index("ix_case_history_returns", table_name="case_history")
    op.drop_index("ix_cases_dispatched_at", table_name="cases")
