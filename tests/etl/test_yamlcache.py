"""Configuration files are parsed once per version: an edit takes effect, a copy is returned."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from etl.rules import RulesError, load_routing
from etl.yamlcache import read_yaml


def test_an_edited_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "departments.yaml"
    rules = "departments: {平安建设部: [噪声扰民]}\n"
    path.write_text("default: 城市管理部\n" + rules, encoding="utf-8")
    assert load_routing(path).default == "城市管理部"
    first = read_yaml(path)
    first["default"] = "changed by a caller"  # a copy: the cache keeps its own
    assert read_yaml(path)["default"] == "城市管理部"
    path.write_text("default: 民生保障部\n" + rules, encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a later mtime
    assert load_routing(path).default == "民生保障部"


def test_bad_files_still_fail_clearly(tmp_path: Path) -> None:
    path = tmp_path / "departments.yaml"
    path.write_text("default: [unclosed\n", encoding="utf-8")
    with pytest.raises(yaml.YAMLError):
        read_yaml(path)
    with pytest.raises(RulesError, match="cannot read"):
        load_routing(path)
    with pytest.raises(RulesError, match="cannot read"):
        load_routing(tmp_path / "missing.yaml")
