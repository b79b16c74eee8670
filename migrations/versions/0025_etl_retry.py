"""Retries of a run's retryable rejects (`blockdata etl retry RUN_ID`).

- `etl_runs.retry_of`: the run whose rejects a retry run re-ran (NULL for a file's run);
- `etl_rejects.retried_in`: the retry run that took the reject (it was loaded there, or
  kept again as one of that run's rejects); NULL while the reject waits. A reject is taken
  once: a row is never loaded twice.

Revision ID: 0025
Revises: 0024
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "etl_runs",
        sa.Column(
            "retry_of",
            sa.Integer,
            sa.ForeignKey("etl_runs.id", ondelete="SET NULL"),
            comment="the run whose retryable rejects this run re-ran",
        ),
    )
    op.add_column(
        "etl_rejects",
        sa.Column(
            "retried_in",
            sa.Integer,
            sa.ForeignKey("etl_runs.id", ondelete="SET NULL"),
            comment="the retry run that took this reject; NULL while it waits",
        ),
    )


def downgrade() -> None:
    op.drop_column("etl_rejects", "retried_in")
    op.drop_column("etl_runs", "retry_of")
