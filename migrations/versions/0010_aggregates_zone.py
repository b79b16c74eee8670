"""The aggregates' time zone: `request_aggregates_zone`, read by the change-marking trigger.

The request aggregates are keyed on local days. Until now the zone was Asia/Shanghai, written
into the trigger function of migration 0003 and into the code; it is now a setting
(BLOCKDATA_TZ), so the database records the zone the existing aggregates were built in, one
row, and the trigger marks days in that zone. The row starts as Asia/Shanghai because that is
what every aggregate built before this revision is keyed on. A rebuild in another zone
(`blockdata db rebuild-aggregates`) rewrites the row in the same transaction as the rows.

The function keeps 0007's SECURITY DEFINER and search_path (CREATE OR REPLACE resets them).
The reader may read the zone: the server checks it before it serves aggregates.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READER = "blockdata_reader"
AGGREGATOR = "blockdata_aggregates"
SEARCH_PATH = "pg_catalog, public, pg_temp"
BUILT_IN = "Asia/Shanghai"  # the zone 0003's trigger and the code used until this revision


def _mark_function(zone: str) -> str:
    """0003's function with `zone` (an SQL expression) for the days' time zone."""
    return f"""
CREATE OR REPLACE FUNCTION request_aggregates_mark() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = {SEARCH_PATH} AS $$
DECLARE
    zone text := {zone};
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO request_dirty_days (day, place) VALUES (NULL, true);
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO request_dirty_days (day, place)
        SELECT DISTINCT (received_at AT TIME ZONE zone)::date, true FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO request_dirty_days (day, place)
        SELECT DISTINCT (received_at AT TIME ZONE zone)::date, true FROM old_rows;
    ELSE
        WITH pairs AS (
            SELECT o.received_at AS old_at, n.received_at AS new_at,
                   (o.received_at, o.category, o.street_code, o.community_code, o.grid_code,
                    o.geom)
                   IS DISTINCT FROM
                   (n.received_at, n.category, n.street_code, n.community_code, n.grid_code,
                    n.geom) AS place
              FROM old_rows o FULL JOIN new_rows n ON n.id = o.id
        )
        INSERT INTO request_dirty_days (day, place)
        SELECT day, bool_or(place) FROM (
            SELECT (old_at AT TIME ZONE zone)::date AS day, place
              FROM pairs WHERE old_at IS NOT NULL
            UNION ALL
            SELECT (new_at AT TIME ZONE zone)::date, place
              FROM pairs WHERE new_at IS NOT NULL
        ) days
        GROUP BY day;
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "request_aggregates_zone",
        sa.Column("id", sa.Boolean(), nullable=False, comment="true: the table has one row"),
        sa.Column(
            "zone", sa.Text(), nullable=False, comment="IANA time zone of the aggregates' days"
        ),
        sa.CheckConstraint("id", name=op.f("ck_request_aggregates_zone_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_aggregates_zone")),
    )
    op.execute(f"INSERT INTO request_aggregates_zone (id, zone) VALUES (true, '{BUILT_IN}')")
    op.execute(f"GRANT SELECT ON request_aggregates_zone TO {READER}")
    # An Open311 intake's first refresh (as the web role) builds the aggregates and records
    # their zone (migration 0009: the aggregates' rewriter).
    op.execute(f"GRANT UPDATE ON request_aggregates_zone TO {AGGREGATOR}")
    op.execute(_mark_function("(SELECT z.zone FROM request_aggregates_zone z)"))


def downgrade() -> None:
    op.execute(_mark_function(f"'{BUILT_IN}'"))
    op.drop_table("request_aggregates_zone")
