"""One column-type mapping for every output (layers/queries/types.py), checked against the
types each format documents, on real columns of the registry."""

from __future__ import annotations

import pyarrow as pa
import pytest

from layers import LAYERS, get_layer
from layers.queries import types

CASES = [
    # layer, column, kind, JSON Schema, TileJSON, export Arrow, COPY Arrow
    ("streets", "area_km2", "number", {"type": "number"}, "Number", pa.float64(), pa.float64()),
    (
        "service_requests",
        "received_at",
        "datetime",
        {"type": "string", "format": "date-time"},
        "String",
        pa.timestamp("us", tz="Asia/Shanghai"),
        pa.timestamp("us", tz="UTC"),
    ),
    (
        "service_requests",
        "callback_valid",
        "boolean",
        {"type": "boolean"},
        "Boolean",
        pa.bool_(),
        pa.bool_(),
    ),
    (
        "relocation_targets",
        "merchants",
        "integer",
        {"type": "integer"},
        "Number",
        pa.int64(),
        pa.int32(),
    ),
    (
        "relocation_targets",
        "planned_start",
        "date",
        {"type": "string", "format": "date"},
        "String",
        pa.date32(),
        pa.date32(),
    ),
    (
        "enforcement_cases",
        "agencies",
        "array",
        {"type": "array", "items": {"type": "string"}},
        "String",
        pa.string(),
        pa.list_(pa.string()),
    ),
    ("streets", "name", "text", {"type": "string"}, "String", pa.string(), pa.string()),
    ("streets", "geom", "geometry", {"type": "string"}, "String", pa.string(), pa.binary()),
]


@pytest.mark.parametrize(("layer", "column", "kind", "schema", "tile", "export", "copy"), CASES)
def test_each_output_names_the_column_type_as_its_format_does(
    layer: str,
    column: str,
    kind: str,
    schema: dict[str, object],
    tile: str,
    export: pa.DataType,
    copy: pa.DataType,
) -> None:
    col = get_layer(layer).table.c[column]
    assert types.kind(col) == kind
    assert types.json_schema(col) == schema
    assert types.tilejson_type(col) == tile
    assert types.export_arrow_type(col, "Asia/Shanghai") == export
    assert types.copy_arrow_type(col) == copy


def test_json_schema_is_a_copy() -> None:
    col = get_layer("enforcement_cases").table.c["agencies"]
    types.json_schema(col)["type"] = "changed"
    assert types.json_schema(col)["type"] == "array"


def test_every_named_geometry_type_of_the_registry_has_its_geojson_name() -> None:
    named = {layer.geometry_type for layer in LAYERS} - {"GEOMETRY"}
    assert named <= set(types.GEOMETRY_NAMES)
    assert types.GEOMETRY_NAMES["MULTIPOLYGON"] == "MultiPolygon"
