"""The tile builder of the query layer, without Flask: a connection scoped as the district or
a commander, a plain dict of query parameters, and the bytes decoded with mapbox-vector-tile
against counts SQL makes of the same rows."""

from __future__ import annotations

import math
from typing import Any

import mapbox_vector_tile
import pytest
import sqlalchemy as sa
from werkzeug.datastructures import MultiDict

from etl.aggregates import refresh_request_aggregates
from layers import LAYERS, get_layer
from layers.queries import ParamError
from layers.queries import tiles as qtiles
from layers.registry import cell_layers
from tests.district import STREETS

LAYER = get_layer("service_requests")
TZ = "Asia/Shanghai"
A, B = STREETS  # street A west of 116.32, street B east of it
Z = 12  # one tile holds the north half of both streets of the tiny district


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


TILE = tile_of(116.32, 39.915, Z)


def add_requests(conn: sa.Connection) -> None:
    """Requests in both streets, two categories, all well inside TILE (and its buffer)."""
    rows = []
    for i in range(12):
        for street, (x0, x1) in STREETS.items():
            rows.append(
                {
                    "sid": f"QT-{street}-{i}",
                    "street": street,
                    "category": "环境卫生" if i % 3 else "噪声扰民",
                    "lon": x0 + (x1 - x0) * (i + 0.5) / 12,
                    "lat": 39.911 + 0.0007 * i,
                }
            )
    conn.execute(
        sa.text(
            "insert into service_requests (source, source_id, received_at, street_code, "
            "category, geom) values ('test', :sid, '2026-11-02 09:00+08', :street, :category, "
            "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))"
        ),
        rows,
    )
    refresh_request_aggregates(conn)  # as the intake does: the cell aggregates are fresh


def expected_ids(conn: sa.Connection, where: str) -> set[int]:
    """The requests inside TILE's envelope, as the owner (no row-level security) sees them."""
    z, x, y = TILE
    found = conn.execute(
        sa.text(
            "select id from service_requests where ST_Intersects(ST_Transform(geom, 3857), "
            f"ST_TileEnvelope(:z, :x, :y)) and {where}"
        ),
        {"z": z, "x": x, "y": y},
    ).scalars()
    return set(found)


def built(
    conn: sa.Connection, zone: str, args: Any, max_raw: int = qtiles.MAX_RAW_POINTS
) -> tuple[str, bytes, str]:
    """(key, tile, kind) of TILE built as `zone` sees it, in a savepoint rolled back after."""
    with conn.begin_nested() as savepoint:
        scoped = qtiles.scope(conn, LAYER, TILE, zone, TZ)
        assert conn.exec_driver_sql("select current_user").scalar_one() == "blockdata_reader"
        prepared = qtiles.prepare_tile(
            conn, LAYER, TILE, args, tz=TZ, max_raw=max_raw, scoped=scoped
        )
        data, kind = prepared.build()
        savepoint.rollback()
    return prepared.key, data, kind


def features(data: bytes) -> list[dict[str, Any]]:
    layers = mapbox_vector_tile.decode(data)
    return list(layers[LAYER.name]["features"]) if layers else []


@pytest.mark.parametrize(
    ("zone", "where"),
    [("*", "true"), (A, f"street_code = '{A}'"), (B, f"street_code = '{B}'")],
)
def test_a_raw_tile_holds_the_rows_its_zone_may_see(
    connection: sa.Connection, district: Any, zone: str, where: str
) -> None:
    add_requests(connection)
    want = expected_ids(connection, where)
    everyone = expected_ids(connection, "true")
    assert want and (want == everyone if zone == "*" else want < everyone)
    key, data, kind = built(connection, zone, {})
    got = features(data)
    assert kind == "raw"
    assert {f["id"] for f in got} == want and len(got) == len(want)
    if zone != "*":  # a commander's tile: not one point of the other street
        assert {f["properties"]["street_code"] for f in got} == {zone}

    category = built(connection, zone, {"category": "环境卫生"})
    want_category = expected_ids(connection, f"{where} and category = '环境卫生'")
    assert {f["id"] for f in features(category[1])} == want_category < want
    assert category[0] != key


@pytest.mark.parametrize(
    ("zone", "where"),
    [("*", "true"), (A, f"street_code = '{A}'")],
)
def test_an_aggregated_tile_counts_the_rows_its_zone_may_see(
    connection: sa.Connection, district: Any, zone: str, where: str
) -> None:
    add_requests(connection)
    want = len(expected_ids(connection, where))
    _, data, kind = built(connection, zone, {"since": "2020-01-01"}, max_raw=5)
    assert kind == "aggregated"
    assert sum(f["properties"]["count"] for f in features(data)) == want


def test_keys_hold_the_zone_and_not_the_mappings_kind(
    connection: sa.Connection, district: Any
) -> None:
    """A plain dict and a MultiDict of the same parameters give the same key (the seeder's and
    the web's), a different zone another."""
    add_requests(connection)
    plain = built(connection, "*", {"category": "环境卫生", "street": A})[0]
    multi = built(connection, "*", MultiDict([("street", A), ("category", "环境卫生")]))[0]
    assert plain == multi
    assert built(connection, A, {"category": "环境卫生", "street": A})[0] != plain


def test_bad_parameters_are_param_errors_naming_the_value(connection: sa.Connection) -> None:
    with pytest.raises(ParamError, match="'23'") as bad:
        qtiles.parse_tile("23", "0", "0")
    assert bad.value.status == 400
    with pytest.raises(ParamError, match="'nosuch'"):
        qtiles.prepare_tile(connection, LAYER, TILE, {"nosuch": "1"}, tz=TZ)


def test_cell_aggregates_are_declared_in_the_registry() -> None:
    """The layers with cell aggregates name tables that exist, with the columns the tiles read;
    the filters they answer are filterable fields of the layer and columns of both tables."""
    assert cell_layers() == ("service_requests",)
    for layer in LAYERS:
        tables = qtiles.cell_tables(layer)
        if layer.cell_tables is None:
            assert tables is None and layer.cell_filters == ()
            continue
        assert tables is not None and [t.name for t in tables] == list(layer.cell_tables)
        filterable = {f.name for f in layer.filterable}
        for table in tables:
            assert {"cell_x", "cell_y", "received", "category"} <= set(table.c.keys())
            assert set(layer.cell_filters) <= set(table.c.keys()) & filterable
