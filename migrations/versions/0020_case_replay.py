"""Replaying the extracts into the case history (etl/replay.py).

`service_requests` gains the lifecycle's steps as the hotline extract has them: 承办单位
`main_unit` (a unit's code or name, as written), 签收 `accepted_at`, 联系 `contacted_at`,
回访 `called_back_at`, 归档 `closed_at` (派单, 响应 and 办结 were there). Nullable, no default:
adding them rewrites nothing, and older extracts without these columns load as before.

`case_history` gains a partial unique key on (case, action, time) for the ETL's rows
(role 'etl'): a step the ETL replayed once can never be written again, whatever a later
load does — the database holds the replay's idempotence, not only the loader's logic.

Revision ID: 0020
Revises: 0019
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMES = ("accepted_at", "contacted_at", "called_back_at", "closed_at")


def upgrade() -> None:
    op.add_column("service_requests", sa.Column("main_unit", sa.Text(), nullable=True))
    for name in TIMES:
        op.add_column(
            "service_requests", sa.Column(name, sa.DateTime(timezone=True), nullable=True)
        )
    op.create_index(
        "uq_case_history_etl_step",
        "case_history",
        ["case_id", "action", "at"],
        unique=True,
        postgresql_where=sa.text("role = 'etl'"),
    )


def downgrade() -> None:
    op.drop_index("uq_case_history_etl_step", table_name="case_history")
    for name in reversed(TIMES):
        op.drop_column("service_requests", name)
    op.drop_column("service_requests", "main_unit")
