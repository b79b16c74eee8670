"""The ETL, the layer registry and the query layer load neither Flask nor app/."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Every module of etl/ and layers/ (the query package included), found on disk: a new one is
# checked without being listed here.
MODULES = tuple(
    sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for folder in ("etl", "layers")
        for path in (ROOT / folder).rglob("*.py")
    )
)

PROBE = f"""
import json, sys
for name in {MODULES!r}:
    __import__(name)
print(json.dumps(sorted(m for m in sys.modules if m == "flask" or m.startswith("flask.")
                        or m == "app" or m.startswith("app."))))
"""


def test_etl_layers_and_queries_load_neither_flask_nor_app() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == []
    assert {"etl.jobs", "layers.queries.params", "layers.queries.tiles"} <= set(MODULES)


def test_the_probe_sees_flask_when_it_is_loaded() -> None:
    """The check can fail: importing app/ shows up in the same probe."""
    probe = PROBE.replace("import json, sys", "import json, sys, app.errors")
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert "flask" in loaded and "app.errors" in loaded
