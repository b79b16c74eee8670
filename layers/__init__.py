"""Layer registry and tables: the one place a layer is declared."""

from layers import (
    accounts,  # noqa: F401  (users, tokens, audit log on the same metadata)
    cases,  # noqa: F401  (案件: the case lifecycle's tables, same metadata)
    changes,  # noqa: F401  (the tile cache's change log, same metadata)
    evaluation,  # noqa: F401  (考评: schemes, inputs and publications, same metadata)
    gazetteer,  # noqa: F401  (地名地址库: the geocoder's names, roads, 门牌, places)
    units,  # noqa: F401  (承办单位: who cases are dispatched to, same metadata)
    whistles,  # noqa: F401  (吹哨报到: summons of units, same metadata)
)
from layers.aggregates import AGGREGATE_TABLES
from layers.registry import (
    LAYERS,
    Field,
    Layer,
    Style,
    UnknownLayer,
    etl_rejects,
    etl_runs,
    get_layer,
    iter_layers,
    landmarks,
    metadata,
)

__all__ = [
    "AGGREGATE_TABLES",
    "LAYERS",
    "Field",
    "Layer",
    "Style",
    "UnknownLayer",
    "etl_rejects",
    "etl_runs",
    "get_layer",
    "iter_layers",
    "landmarks",
    "metadata",
]
