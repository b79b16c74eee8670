"""Where each layer changed, for the tile cache (migration 0008 has the triggers).

`tile_changes` is a log written by statement triggers on every layer table: one row per
statement, tile that the changed rows' boxes touch and street of those rows, at each of the
levels 14–18 (a level-L tile is the map tile of zoom L; migration 0009 added the street);
the server compacts it to a row per tile and street, `n` summed. `tile_epochs` holds a
random token per layer, renewed when the whole layer changes (TRUNCATE, a bulk load, a
statement of over 10,000 rows, a huge geometry), which also empties the layer's log. Only
the server's own role reads or writes them.
"""

from __future__ import annotations

import sqlalchemy as sa

from layers.registry import metadata

CHANGE_LEVELS = range(14, 19)  # as the triggers of migration 0008 write them

tile_epochs = sa.Table(
    "tile_epochs",
    metadata,
    sa.Column("layer", sa.Text, primary_key=True),
    sa.Column(
        "epoch",
        sa.Text,
        nullable=False,
        server_default=sa.text("md5(random()::text)"),
        comment="random, renewed when every tile of the layer changes",
    ),
    sa.Column(
        "renewed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

tile_changes = sa.Table(
    "tile_changes",
    metadata,
    sa.Column("layer", sa.Text, nullable=False),
    sa.Column("level", sa.SmallInteger, nullable=False, comment="tile zoom, 14–18"),
    sa.Column("x", sa.Integer, nullable=False),
    sa.Column("y", sa.Integer, nullable=False),
    sa.Column(
        "n",
        sa.BigInteger,
        nullable=False,
        server_default=sa.text("1"),
        comment="changes this row stands for (compaction merges rows)",
    ),
    sa.Column(
        "street_code",
        sa.String(9),
        comment="the changed row's street (NULL: none; rows logged before 0009)",
    ),
    sa.Index(
        "ix_tile_changes_layer_level_x_y",
        "layer",
        "level",
        "x",
        "y",
        postgresql_include=["n", "street_code"],
    ),
    postgresql_with={
        "autovacuum_vacuum_insert_scale_factor": "0.01",
        "autovacuum_vacuum_scale_factor": "0.01",
    },
)
