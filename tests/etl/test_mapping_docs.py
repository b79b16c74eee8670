"""docs/etl.md documents every key the mapping loader accepts, with an example that loads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from etl.mapping import KEYS, SPECIAL_TARGETS, MappingError, load_mapping

DOC = Path(__file__).resolve().parents[2] / "docs" / "etl.md"
MINIMAL = {"layer": "service_requests", "columns": {"source_id": "编号"}}
# A valid value for each key, to show the loader takes it.
SAMPLES: dict[str, object] = {
    "layer": "service_requests",
    "source": "x",
    "crs": "gcj02",
    "columns": {"source_id": "编号"},
    "required": ["source_id"],
    "values": {"status": {"办结": "已办结"}},
    "progress": ["已派单", "已办结"],
    "datetime_formats": ["%d.%m.%Y"],
}


def _mappings_section() -> str:
    text = DOC.read_text(encoding="utf-8")
    return text[text.index("## Mappings") : text.index("\n## ", text.index("## Mappings") + 1)]


def _write(tmp_path: Path, doc: dict[str, object]) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def test_the_loader_takes_exactly_the_listed_keys(tmp_path: Path) -> None:
    assert set(SAMPLES) == set(KEYS)
    for key, value in SAMPLES.items():
        load_mapping(_write(tmp_path, {**MINIMAL, key: value}))
    for wrong in ("datetime_format", "column", "encoding", "defaults"):
        with pytest.raises(MappingError, match=wrong):
            load_mapping(_write(tmp_path, {**MINIMAL, wrong: "x"}))


def test_every_key_is_documented_with_an_example() -> None:
    section = _mappings_section()
    rows = {m[1]: m[2] for m in re.finditer(r"^\| `(\w+)` \|(.*)$", section, re.M)}
    assert set(rows) == set(KEYS)
    for key, row in rows.items():
        assert f"`{key}:" in row, f"no example for {key!r} in its row"
    for target in SPECIAL_TARGETS:
        assert f"`{target}`" in rows["columns"], target


def test_the_documented_full_example_loads_and_has_every_key(tmp_path: Path) -> None:
    (block,) = re.findall(r"```yaml\n(.*?)```", _mappings_section(), re.S)
    doc = yaml.safe_load(block)
    assert set(doc) == set(KEYS)
    path = tmp_path / "full.yaml"
    path.write_text(block, encoding="utf-8")
    mapping = load_mapping(path)
    assert mapping.datetime_formats == ("%d.%m.%Y %H:%M", "%Y.%m.%d")
    assert mapping.values["status"]["办结"] == "已办结"


def test_every_shipped_event_mapping_loads() -> None:
    shipped = sorted(p.stem for p in (DOC.parents[1] / "etl" / "mappings").glob("*.yaml"))
    for name in shipped:
        if name.startswith("admin"):
            continue  # boundaries: etl/admin.py reads those
        assert load_mapping(name).name == name
