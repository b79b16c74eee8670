"""Where each layer changed, for the tile cache: `tile_epochs` and `tile_changes`.

A tile's version is its layer's epoch and how many changes touched the tile's area (its
buffer included), so one write invalidates the tiles around it, not the whole layer.

`tile_changes` is a log, appended to by statement-level AFTER triggers with transition
tables (INSERT, UPDATE, DELETE: PostgreSQL allows transition tables only on single-event
triggers; COPY fires the INSERT one) on every layer table: per statement, one row (n = 1)
per tile that the changed rows' bounding boxes touch — old and new rows of an UPDATE both,
since a moved point changes both places — at each of the levels 14–18 (a level-L tile is
the map tile of zoom L; a point marks one tile a level). A tile of zoom z reads level
min(z + 4, 18), so its buffered area spans at most 20 × 20 rows of the index.

Why a log and a count rather than the latest sequence number of each tile: appends take no
row lock, so a long ETL run never holds up an Open311 intake nor deadlocks with it; and the
sum of `n` over an area grows with every commit that touches it, whatever the order of the
commits — a max of per-statement sequence numbers would not (a long transaction commits its
lower number after a short one's higher, and the area's max stays put). The server compacts
the log, merging each tile's rows with their sum kept (`app.tile_seed.compact_changes`).

A statement of more than 10,000 rows (marking costs about 5 µs a row, and so many rows touch
nearly every tile of a district anyway), a geometry whose box spans more than 65,536
level-18 tiles (about 30 km square), a TRUNCATE, or a bulk load (`etl.load` skips the row
triggers there and calls `tile_changes_renew`) gives the layer a new random epoch instead
and forgets its log: every tile changes. The epoch is random, so the cache files of an
earlier database — the same counts over again — are never taken for this one's.

The functions run with their owner's rights (SECURITY DEFINER, a fixed search_path, pg_temp
last): `blockdata_reader` inserts service requests (Open311) but may not read or write
these tables; nobody but the owner may call `tile_changes_renew`.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEARCH_PATH = "pg_catalog, public, pg_temp"
LAYERS = (
    "streets",
    "communities",
    "grids",
    "lanes",
    "service_halls",
    "service_requests",
    "enforcement_cases",
    "relocation_targets",
    "renovation_projects",
)
# A statement changing more rows than this renews the layer's epoch instead of marking tiles
# (measured on a million requests: 10,000 rows marked in 50 ms; a million would take seconds).
MAX_ROWS = 10_000
MAX_TILES = 65_536  # level-18 tiles in one geometry's box (about 30 km square): renew
STORAGE = {
    "autovacuum_vacuum_insert_scale_factor": "0.01",
    "autovacuum_vacuum_scale_factor": "0.01",
}
TRIGGERS = {
    "insert": "AFTER INSERT ON {t} REFERENCING NEW TABLE AS new_rows",
    "update": "AFTER UPDATE ON {t} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "delete": "AFTER DELETE ON {t} REFERENCING OLD TABLE AS old_rows",
    "truncate": "AFTER TRUNCATE ON {t}",
}

RENEW = f"""
CREATE FUNCTION tile_changes_renew(layer_name text) RETURNS void LANGUAGE sql
SECURITY DEFINER SET search_path = {SEARCH_PATH} AS $$
    INSERT INTO tile_epochs AS e (layer) VALUES (layer_name)
    ON CONFLICT (layer) DO UPDATE SET epoch = md5(random()::text), renewed_at = now();
    DELETE FROM tile_changes WHERE layer = layer_name;
$$
"""

# Each changed box's range of level-18 tiles (latitudes clamped to Web Mercator's), once
# each; then every tile of those ranges at each level (boxes that overlap may mark a tile
# twice: it only counts twice). Static SQL and generic plans: PL/pgSQL keeps them for the
# session, so a one-row intake pays about 0.1 ms, and no planning after its first.
MARK = f"""
CREATE FUNCTION tile_changes_mark() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = {SEARCH_PATH} SET plan_cache_mode = force_generic_plan
AS $fn$
DECLARE
    changed bigint;
    boxes box2d[];
    too_big boolean;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM tile_changes_renew(TG_TABLE_NAME);
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        changed := (SELECT count(*) FROM (SELECT FROM old_rows LIMIT {MAX_ROWS + 1}) s);
    ELSE
        changed := (SELECT count(*) FROM (SELECT FROM new_rows LIMIT {MAX_ROWS + 1}) s);
    END IF;
    IF changed > {MAX_ROWS} THEN
        PERFORM tile_changes_renew(TG_TABLE_NAME);
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        boxes := ARRAY(SELECT geom::box2d FROM new_rows);
    ELSIF TG_OP = 'DELETE' THEN
        boxes := ARRAY(SELECT geom::box2d FROM old_rows);
    ELSE
        boxes := ARRAY(SELECT geom::box2d FROM old_rows UNION ALL SELECT geom::box2d FROM new_rows);
    END IF;
    WITH ranges AS (
        SELECT DISTINCT
               least(greatest(floor((ST_XMin(b) + 180) / 360 * 262144), 0), 262143)::int x0,
               least(greatest(floor((ST_XMax(b) + 180) / 360 * 262144), 0), 262143)::int x1,
               least(greatest(floor((1 - asinh(tan(radians(least(ST_YMax(b), 85.0511287798))))
                   / pi()) / 2 * 262144), 0), 262143)::int y0,
               least(greatest(floor((1 - asinh(tan(radians(greatest(ST_YMin(b), -85.0511287798))))
                   / pi()) / 2 * 262144), 0), 262143)::int y1
          FROM unnest(boxes) b
         WHERE b IS NOT NULL
    ), big AS (
        SELECT coalesce(bool_or((x1 - x0 + 1)::bigint * (y1 - y0 + 1) > {MAX_TILES}), false) yes
          FROM ranges
    ), parents AS (
        SELECT DISTINCT level, x0 >> (18 - level) x0, x1 >> (18 - level) x1,
               y0 >> (18 - level) y0, y1 >> (18 - level) y1
          FROM ranges, generate_series(14, 18) level
    ), marked AS (
        INSERT INTO tile_changes (layer, level, x, y)
        SELECT TG_TABLE_NAME, level, x, y
          FROM parents, big, generate_series(x0, x1) x, generate_series(y0, y1) y
         WHERE NOT big.yes
    )
    SELECT yes INTO too_big FROM big;
    IF too_big THEN
        PERFORM tile_changes_renew(TG_TABLE_NAME);
    END IF;
    RETURN NULL;
END
$fn$
"""


def upgrade() -> None:
    op.create_table(
        "tile_epochs",
        sa.Column("layer", sa.Text(), nullable=False),
        sa.Column(
            "epoch",
            sa.Text(),
            server_default=sa.text("md5(random()::text)"),
            nullable=False,
            comment="random, renewed when every tile of the layer changes",
        ),
        sa.Column(
            "renewed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("layer", name=op.f("pk_tile_epochs")),
    )
    op.create_table(
        "tile_changes",
        sa.Column("layer", sa.Text(), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False, comment="tile zoom, 14–18"),
        sa.Column("x", sa.Integer(), nullable=False),
        sa.Column("y", sa.Integer(), nullable=False),
        sa.Column(
            "n",
            sa.BigInteger(),
            server_default=sa.text("1"),
            nullable=False,
            comment="changes this row stands for (compaction merges rows)",
        ),
        postgresql_with=STORAGE,
    )
    op.create_index(
        "ix_tile_changes_layer_level_x_y",
        "tile_changes",
        ["layer", "level", "x", "y"],
        unique=False,
        postgresql_include=["n"],
    )
    op.execute("INSERT INTO tile_epochs (layer) VALUES " + ", ".join(f"('{t}')" for t in LAYERS))
    op.execute(RENEW)
    op.execute("REVOKE ALL ON FUNCTION tile_changes_renew(text) FROM PUBLIC")
    op.execute(MARK)
    for table in LAYERS:
        for event, spec in TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER {table}_tiles_{event} {spec.format(t=table)} "
                "FOR EACH STATEMENT EXECUTE FUNCTION tile_changes_mark()"
            )


def downgrade() -> None:
    for table in LAYERS:
        for event in TRIGGERS:
            op.execute(f"DROP TRIGGER {table}_tiles_{event} ON {table}")
    op.execute("DROP FUNCTION tile_changes_mark()")
    op.execute("DROP FUNCTION tile_changes_renew(text)")
    op.drop_table("tile_changes")  # with its index
    op.drop_table("tile_epochs")
