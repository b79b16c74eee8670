from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from app.migrate import include_object
from layers import LAYERS, UnknownLayer, get_layer, metadata

DESIGN_LAYERS = {
    "streets",
    "communities",
    "grids",
    "lanes",
    "service_halls",
    "service_requests",
    "enforcement_cases",
    "relocation_targets",
    "renovation_projects",
}


def test_registry_has_the_nine_layers_of_the_design() -> None:
    assert {layer.name for layer in LAYERS} == DESIGN_LAYERS
    for layer in LAYERS:
        assert layer.table.name == layer.name
        assert layer.title and all(ord(ch) > 0x2E80 for ch in layer.title), layer.title
        assert all(f.label for f in layer.fields)
        assert "geom" in layer.table.c
        assert layer.table.c.geom.type.srid == 4326


def test_get_layer_unknown_raises_with_the_name() -> None:
    with pytest.raises(UnknownLayer, match="nope"):
        get_layer("nope")
    assert get_layer("grids").key == "code"


def test_event_layers_are_keyed_on_source_and_source_id() -> None:
    for layer in LAYERS:
        if layer.kind != "event":
            continue
        uniques = [
            tuple(c.name for c in con.columns)
            for con in layer.table.constraints
            if isinstance(con, sa.UniqueConstraint)
        ]
        assert ("source", "source_id") in uniques
        for col in ("street_code", "community_code", "grid_code"):
            assert layer.table.c[col].foreign_keys, col


def test_models_and_migrations_agree(connection: sa.Connection) -> None:
    ctx = MigrationContext.configure(
        connection, opts={"include_object": include_object, "compare_type": True}
    )
    assert compare_metadata(ctx, metadata) == []


def test_every_geometry_column_has_a_gist_index(connection: sa.Connection) -> None:
    rows = connection.exec_driver_sql(
        """select c.relname from pg_index i
           join pg_class c on c.oid = i.indrelid
           join pg_class ic on ic.oid = i.indexrelid
           join pg_am am on am.oid = ic.relam
           where am.amname = 'gist'"""
    ).scalars()
    assert set(rows) >= DESIGN_LAYERS


def test_published_columns_exist_in_database(connection: sa.Connection) -> None:
    inspector = sa.inspect(connection)
    for layer in LAYERS:
        columns = {c["name"] for c in inspector.get_columns(layer.name)}
        assert {f.name for f in layer.published} <= columns
        srid = connection.exec_driver_sql(
            "select srid, type from geometry_columns where f_table_name = %s", (layer.name,)
        ).one()
        assert srid[0] == 4326
        assert srid[1] == layer.geometry_type


def test_per_layer_facts_live_in_the_registry() -> None:
    """Admin levels, their code formats and nesting, overlays and seeding are declared on the
    layers (issue 11); the expectations are the statistical code standard and the pages'."""
    from layers.registry import admin_levels, level_layer, overlay_layers, seeded_layers

    assert admin_levels() == {
        "street": "streets",
        "community": "communities",
        "grid": "grids",
        "lane": "lanes",
        "service_hall": "service_halls",
        "landmark": "landmarks",
    }
    # 9-digit street, 12-digit community, 15-digit grid codes
    assert {lvl: level_layer(lvl).code_length for lvl in ("street", "community", "grid")} == {
        "street": 9,
        "community": 12,
        "grid": 15,
    }
    for child, parent in (("community", "street"), ("grid", "community")):
        layer = level_layer(child)
        assert layer.parent == parent
        (fk,) = layer.table.c[f"{parent}_code"].foreign_keys
        assert fk.target_fullname == f"{level_layer(parent).name}.code"
    assert level_layer("street").parent is None
    assert set(overlay_layers()) == {
        "streets",
        "communities",
        "grids",
        "lanes",
        "service_halls",
        "enforcement_cases",
        "relocation_targets",
        "renovation_projects",
    }
    assert seeded_layers() == ("service_requests",)
