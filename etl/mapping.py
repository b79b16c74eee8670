"""Source mappings: one YAML per source system maps its columns onto a layer's fields.

A mapping names the layer, the source (the `source` column of every row it loads), the
default coordinate system, the column of each field, the required fields, and value
tables that turn a source's spellings into the canonical values. Fields and their types
come from the layer registry; a mapping may only name fields the layer has, plus the
special targets `lng`, `lat`, `crs` (a per-row coordinate system) and `due_days`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from etl.yamlcache import read_yaml
from layers import Layer, get_layer

MAPPINGS_DIR = Path(__file__).resolve().parent / "mappings"
SPECIAL_TARGETS = {"lng", "lat", "crs", "due_days", "geometry"}
# Every top-level key a mapping may have (docs/etl.md documents each); any other is refused,
# so that a misspelt key (`datetime_format`) fails the run instead of being ignored.
KEYS = (
    "layer",
    "source",
    "crs",
    "columns",
    "required",
    "values",
    "progress",
    "datetime_formats",
)


class MappingError(ValueError):
    """A mapping file is malformed; the message names the file and the bad entry."""


@dataclass(frozen=True)
class Mapping:
    name: str
    layer: str
    source: str
    crs: str | None
    columns: dict[str, str]
    required: tuple[str, ...]
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    progress: tuple[str, ...] = ()
    datetime_formats: tuple[str, ...] = ()

    @property
    def layer_obj(self) -> Layer:
        return get_layer(self.layer)


def resolve(name_or_path: str | Path) -> Path:
    """A shipped mapping by name (`service_requests`) or a path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    shipped = MAPPINGS_DIR / f"{name_or_path}.yaml"
    if shipped.exists():
        return shipped
    known = sorted(p.stem for p in MAPPINGS_DIR.glob("*.yaml"))
    raise MappingError(f"找不到映射 no such mapping: {str(name_or_path)!r} (shipped: {known})")


def load_mapping(name_or_path: str | Path) -> Mapping:
    path = resolve(name_or_path)
    try:
        doc: dict[str, Any] = read_yaml(path) or {}
    except yaml.YAMLError as exc:
        raise MappingError(f"{path.name}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise MappingError(f"{path.name}: expected a mapping of keys at the top")
    for key in ("layer", "columns"):
        if key not in doc:
            raise MappingError(f"{path.name}: missing key {key!r}")
    unknown_keys = sorted(str(k) for k in doc if k not in KEYS)
    if unknown_keys:
        raise MappingError(
            f"{path.name}: unknown key(s) {unknown_keys}; a mapping has {list(KEYS)}"
        )
    layer = get_layer(str(doc["layer"]))
    fields = {f.name for f in layer.fields}
    columns = {str(k): str(v) for k, v in dict(doc["columns"]).items()}
    unknown = sorted(set(columns) - fields - SPECIAL_TARGETS)
    if unknown:
        raise MappingError(f"{path.name}: layer {layer.name!r} has no field(s) {unknown}")
    if "source_id" not in columns:
        raise MappingError(f"{path.name}: a mapping must map source_id")
    required = tuple(str(r) for r in doc.get("required", ["source_id"]))
    missing = sorted(set(required) - set(columns))
    if missing:
        raise MappingError(f"{path.name}: required field(s) {missing} are not mapped")
    values = {
        str(k): {str(a): str(b) for a, b in dict(v).items()}
        for k, v in dict(doc.get("values", {})).items()
    }
    return Mapping(
        name=path.stem,
        layer=layer.name,
        source=str(doc.get("source", path.stem)),
        crs=doc.get("crs"),
        columns=columns,
        required=required,
        values=values,
        progress=tuple(doc.get("progress", ())),
        datetime_formats=tuple(doc.get("datetime_formats", ())),
    )


def default_mapping(layer: str) -> str:
    """The shipped mapping for a layer (the demo source systems' formats)."""
    return layer
