"""ETL runs recorded before they load; a schema where loads build tables aside.

A run's row is now written and committed first, with status 'running', by the loading
process (`etl.jobs`), which then loads in a transaction of its own. These columns say who
and what: the operating-system user and host, the process id, and the PostgreSQL backend
pid of the loading session. A run whose loading session is gone without finishing (the
process was killed) is marked 'failed' by the next run or by `blockdata etl runs`: the
session holds a transaction-level advisory lock on the run's id while it loads.

`etl_build` holds the twins of tables being rebuilt (`etl.swap`): filled and indexed there,
possibly by a second connection beside a load, then moved into `public` in place of the
old tables. Nothing in it is read by anyone but the loads.

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE SCHEMA etl_build")
    op.add_column(
        "etl_runs",
        sa.Column(
            "run_by",
            sa.Text(),
            nullable=True,
            comment="operating-system user of the loading process",
        ),
    )
    op.add_column("etl_runs", sa.Column("host", sa.Text(), nullable=True))
    op.add_column(
        "etl_runs",
        sa.Column("pid", sa.Integer(), nullable=True, comment="process id of the loading process"),
    )
    op.add_column(
        "etl_runs",
        sa.Column(
            "backend_pid",
            sa.Integer(),
            nullable=True,
            comment="PostgreSQL backend of the loading session",
        ),
    )


def downgrade() -> None:
    op.execute("DROP SCHEMA etl_build CASCADE")
    for column in ("backend_pid", "pid", "host", "run_by"):
        op.drop_column("etl_runs", column)
