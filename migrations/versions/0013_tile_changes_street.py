"""The street of each logged tile change: a tile's version as a commander sees it counts the
changes in their street only.

Migration 0008 logged where each write landed (tiles at levels 14–18) but not in which
street, so a commander's tile ETag changed with writes in other streets inside the tile's
area: they could watch activity outside their zone. Now each row of `tile_changes` also
carries the changed row's street (`street_code`; the street's own `code` for the streets
table; NULL for a row of no street, which only the district sees): an UPDATE that moves a
row to another street marks the old street's tiles and the new one's. The tile version
(`app.tiles`) sums the rows of the caller's street, or all of them for zone '*'.

The trigger function is the one of 0008 with the street carried along, in two variants
(static SQL keeps its generic plans: a column cannot be chosen by name): `street_code`, and
`code` for the streets table. Rows logged before this revision have no street: the district
counts them, commanders do not — they record writes that happened before.

Revision ID: 0013
Revises: 0012
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _revision_0008() -> ModuleType:
    """0008's module (its layer list, triggers and function text), by path: the revision
    files are not a package."""
    path = Path(__file__).with_name("0008_tile_changes.py")
    spec = importlib.util.spec_from_file_location("blockdata_revision_0008", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PREVIOUS = _revision_0008()
SEARCH_PATH = PREVIOUS.SEARCH_PATH
LAYERS: tuple[str, ...] = PREVIOUS.LAYERS
TRIGGERS: dict[str, str] = PREVIOUS.TRIGGERS
MAX_ROWS: int = PREVIOUS.MAX_ROWS
MAX_TILES: int = PREVIOUS.MAX_TILES
STREET_COLUMN = {"streets": "code"}  # every other layer: street_code
INDEX = "ix_tile_changes_layer_level_x_y"


def mark(name: str, street: str) -> str:
    """0008's `tile_changes_mark` with each changed row's `street` logged beside its tiles."""
    return f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = {SEARCH_PATH} SET plan_cache_mode = force_generic_plan
AS $fn$
DECLARE
    changed bigint;
    boxes box2d[];
    streets text[];
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
        SELECT array_agg(geom::box2d), array_agg({street}::text) INTO boxes, streets
          FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(geom::box2d), array_agg({street}::text) INTO boxes, streets
          FROM old_rows;
    ELSE
        SELECT array_agg(b), array_agg(s) INTO boxes, streets FROM (
            SELECT geom::box2d b, {street}::text s FROM old_rows
            UNION ALL SELECT geom::box2d, {street}::text FROM new_rows) u;
    END IF;
    WITH ranges AS (
        SELECT DISTINCT s street,
               least(greatest(floor((ST_XMin(b) + 180) / 360 * 262144), 0), 262143)::int x0,
               least(greatest(floor((ST_XMax(b) + 180) / 360 * 262144), 0), 262143)::int x1,
               least(greatest(floor((1 - asinh(tan(radians(least(ST_YMax(b), 85.0511287798))))
                   / pi()) / 2 * 262144), 0), 262143)::int y0,
               least(greatest(floor((1 - asinh(tan(radians(greatest(ST_YMin(b), -85.0511287798))))
                   / pi()) / 2 * 262144), 0), 262143)::int y1
          FROM unnest(boxes, streets) u(b, s)
         WHERE b IS NOT NULL
    ), big AS (
        SELECT coalesce(bool_or((x1 - x0 + 1)::bigint * (y1 - y0 + 1) > {MAX_TILES}), false) yes
          FROM ranges
    ), parents AS (
        SELECT DISTINCT street, level, x0 >> (18 - level) x0, x1 >> (18 - level) x1,
               y0 >> (18 - level) y0, y1 >> (18 - level) y1
          FROM ranges, generate_series(14, 18) level
    ), marked AS (
        INSERT INTO tile_changes (layer, level, x, y, street_code)
        SELECT TG_TABLE_NAME, level, x, y, street
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


def _function(table: str) -> str:
    return "tile_changes_mark_streets" if table in STREET_COLUMN else "tile_changes_mark"


def _retrigger(function_of: dict[str, str]) -> None:
    for table, function in function_of.items():
        for event, spec in TRIGGERS.items():
            op.execute(f"DROP TRIGGER {table}_tiles_{event} ON {table}")
            op.execute(
                f"CREATE TRIGGER {table}_tiles_{event} {spec.format(t=table)} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            )


def upgrade() -> None:
    op.add_column(
        "tile_changes",
        sa.Column(
            "street_code",
            sa.String(length=9),
            nullable=True,
            comment="the changed row's street (NULL: none; rows logged before 0009)",
        ),
    )
    op.drop_index(INDEX, table_name="tile_changes")
    op.create_index(
        INDEX,
        "tile_changes",
        ["layer", "level", "x", "y"],
        unique=False,
        postgresql_include=["n", "street_code"],
    )
    op.execute(mark("tile_changes_mark", "street_code"))
    op.execute(mark("tile_changes_mark_streets", "code"))
    _retrigger({t: _function(t) for t in LAYERS if t in STREET_COLUMN})


def downgrade() -> None:
    _retrigger({t: "tile_changes_mark" for t in LAYERS if t in STREET_COLUMN})
    op.execute("DROP FUNCTION tile_changes_mark_streets()")
    op.execute(PREVIOUS.MARK.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    op.drop_index(INDEX, table_name="tile_changes")
    op.create_index(
        INDEX, "tile_changes", ["layer", "level", "x", "y"], unique=False, postgresql_include=["n"]
    )
    op.drop_column("tile_changes", "street_code")
