"""Drop the community and grid code indexes of the event tables.

Events are found by street (indexed), time and place; the counts of a community or a grid
come from the aggregates. Two fewer indexes to rebuild or maintain on every load.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENTS = ("service_requests", "enforcement_cases", "relocation_targets", "renovation_projects")
CODES = ("community_code", "grid_code")


def upgrade() -> None:
    for table in EVENTS:
        for column in CODES:
            op.drop_index(f"ix_{table}_{column}", table_name=table)


def downgrade() -> None:
    for table in EVENTS:
        for column in CODES:
            op.create_index(f"ix_{table}_{column}", table, [column], unique=False)
