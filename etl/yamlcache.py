"""YAML configuration files, parsed once per version of the file.

An Open311 intake runs the ETL's steps for one row, and those read the routing, time-limit,
rates and mapping files: parsing them again took about 40 ms of each intake's CPU. A file is
parsed again when its modification time or size changes, so an edited file takes effect at
once, as before.
"""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Any

import yaml

_parsed: dict[Path, tuple[tuple[int, int], Any]] = {}
_lock = threading.Lock()


def read_yaml(path: Path) -> Any:
    """`yaml.safe_load` of the file, from the cache while the file is unchanged; a copy, so
    a caller may change what it gets. Raises OSError or yaml.YAMLError like a fresh read."""
    stat = path.stat()
    stamp = (stat.st_mtime_ns, stat.st_size)
    key = path.resolve()
    with _lock:
        hit = _parsed.get(key)
    if hit is None or hit[0] != stamp:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        with _lock:
            _parsed[key] = (stamp, doc)
        return copy.deepcopy(doc)
    return copy.deepcopy(hit[1])
