"""The demo's gazetteer files, in the formats a district's own would come in.

- `gazetteer_addresses.csv` — address points (门牌), GCJ-02 as a web map exports them, with
  Chinese headers (标准地址, 街路巷, 门牌号, X, Y), and `gazetteer_addresses.yaml`, its mapping;
- `gazetteer_pois.csv` — places with their aliases (名称, 别名, 类别, 地址, 经度, 纬度) in BD-09,
  and `gazetteer_pois.yaml`.

Where does a plate stand? At its house (`etl.demo.extracts.house_points`): about where the
district's numbering puts it along its lane, a few to twenty metres back on its side — and a
request said by a house number stands at that house (`etl.demo.extracts._at_houses`), as a
caller gives the plate of the door the problem is at. Plates are listed for most lanes, not
all (`SHARE`): the others are interpolated along their lane by the geocoder.

`load_gazetteer(conn, directory)` builds the gazetteer from the loaded layers
(`etl.gazetteer.build`) and imports the two files (written from the directory's boundary
files when it has none): `blockdata demo load` calls it before the extracts run, so that
their address-only rows find it.
"""

from __future__ import annotations

import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import sqlalchemy as sa
import yaml

from etl import coords
from etl.demo.geography import LAYERS, Geography
from etl.gazetteer import build, import_file
from etl.jobs import RunReport

ADDRESSES = "gazetteer_addresses.csv"
ADDRESSES_MAPPING = "gazetteer_addresses.yaml"
POIS = "gazetteer_pois.csv"
POIS_MAPPING = "gazetteer_pois.yaml"
SHARE = 0.8  # the share of lanes whose plates are listed

ADDRESS_MAPPING = {
    "columns": {
        "address": "标准地址",
        "road": "街路巷",
        "number": "门牌号",
        "lng": "X",
        "lat": "Y",
    },
    "crs": "gcj02",
}
POI_MAPPING = {
    "columns": {
        "code": "编号",
        "name": "名称",
        "aliases": "别名",
        "kind": "类别",
        "address": "地址",
        "lng": "经度",
        "lat": "纬度",
    },
    "crs": "bd09",
}
KIND_NAMES = {
    "compound": "小区",
    "school": "学校",
    "hospital": "医疗",
    "market": "市场",
    "office": "写字楼",
    "station": "地铁站",
    "park": "公园",
    "construction_site": "工地",
}
_MIDDLE = re.compile(r"^北京市?第(.+)中学$")


def aliases(name: str, kind: str) -> list[str]:
    """What people call a place besides its name: 北京市第一六一中学 → 一六一中, 161中;
    西单站 → 地铁西单站, 西单地铁站; 六铺炕小区 → 六铺炕; 北京积水潭医院 → 积水潭医院."""
    out = []
    if m := _MIDDLE.match(name):
        core = m.group(1)
        out += [f"{core}中", f"北京{core}中"]
    if kind == "station" and name.endswith("站"):
        out += [f"地铁{name}", f"{name[:-1]}地铁站"]
    for suffix in ("小区", "公寓"):
        if name.endswith(suffix) and len(name) - len(suffix) >= 3:
            out.append(name[: -len(suffix)])
    if name.startswith("北京") and not name.startswith("北京市") and len(name) > 4:
        out.append(name[2:])
    return list(dict.fromkeys(a for a in out if a != name))


def read_geography(directory: Path) -> Geography:
    """The demo's layers as `write_geography` wrote them into `directory`."""
    return Geography(*(gpd.read_file(directory / f"{layer}.geojson") for layer in LAYERS))


def plates(geo: Geography, seed: int = 42) -> pd.DataFrame:
    """The demo's address points (see the module doc): road, number, lng, lat (WGS84)."""
    from etl.demo import extracts

    places = extracts._Places(geo)
    r = places.ranges
    lanes, left, numbers = [], [], []
    for is_left, lo, hi in (
        (True, r["left_from"], r["left_to"]),
        (False, r["right_from"], r["right_to"]),
    ):
        count = np.maximum((hi - lo) // 2 + 1, 0)
        lane = np.repeat(np.arange(len(lo)), count)
        first = np.repeat(lo, count)
        step = np.arange(len(lane)) - np.repeat(np.cumsum(count) - count, count)
        lanes.append(lane)
        left.append(np.full(len(lane), is_left))
        numbers.append(first + 2 * step)
    lane, side, number = np.concatenate(lanes), np.concatenate(left), np.concatenate(numbers)
    rng = np.random.default_rng([seed, 14])
    listed = rng.random(len(places.lane_code)) < SHARE
    keep = listed[lane]
    lane, side, number = lane[keep], side[keep], number[keep]
    x, y = extracts.house_points(places, lane, side, number)
    lng, lat = places.frame.to_degrees(x, y)
    out = pd.DataFrame({"road": places.lane_name[lane], "number": number, "lng": lng, "lat": lat})
    # a name continued over pieces numbers on: each (road, number) is one plate
    out = out.drop_duplicates(["road", "number"])
    return out.sort_values(["road", "number"], kind="stable").reset_index(drop=True)


def write_gazetteer(geo: Geography, out: Path, seed: int = 42) -> dict[str, Path]:
    """Write the two files and their mappings into `out`; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    district = str(geo.district["name"].iloc[0]) if "name" in geo.district else "西城区"
    found = plates(geo, seed)
    x, y = coords.wgs84_to_gcj02(found["lng"].to_numpy(), found["lat"].to_numpy())
    addresses = pd.DataFrame(
        {
            "标准地址": [
                f"北京市{district}{r}{n}号"
                for r, n in zip(found["road"], found["number"], strict=True)
            ],
            "街路巷": found["road"],
            "门牌号": [f"{n}号" for n in found["number"]],
            "X": np.round(x, 7),
            "Y": np.round(y, 7),
        }
    )
    marks = geo.landmarks
    mxy = np.array([(p.x, p.y) for p in marks.geometry])
    bx, by = coords.wgs84_to_bd09(mxy[:, 0], mxy[:, 1])
    pois = pd.DataFrame(
        {
            "编号": [f"poi-{c}" for c in marks["code"]],
            "名称": marks["name"],
            "别名": [
                "；".join(aliases(str(n), str(k)))
                for n, k in zip(marks["name"], marks["kind"], strict=True)
            ],
            "类别": [KIND_NAMES.get(str(k), str(k)) for k in marks["kind"]],
            "地址": marks["address"],
            "经度": np.round(bx, 7),
            "纬度": np.round(by, 7),
        }
    )
    paths = {
        "gazetteer_addresses": out / ADDRESSES,
        "gazetteer_addresses_mapping": out / ADDRESSES_MAPPING,
        "gazetteer_pois": out / POIS,
        "gazetteer_pois_mapping": out / POIS_MAPPING,
    }
    addresses.to_csv(paths["gazetteer_addresses"], index=False, encoding="utf-8-sig")
    pois.to_csv(paths["gazetteer_pois"], index=False, encoding="utf-8-sig")
    for key, mapping in (
        ("gazetteer_addresses_mapping", ADDRESS_MAPPING),
        ("gazetteer_pois_mapping", POI_MAPPING),
    ):
        paths[key].write_text(yaml.safe_dump(mapping, allow_unicode=True), encoding="utf-8")
    return paths


def _stale(directory: Path) -> bool:
    """The files are missing, or older than the boundaries they were written from (a
    directory the demo was generated into again)."""
    written = [directory / name for name in (ADDRESSES, ADDRESSES_MAPPING, POIS, POIS_MAPPING)]
    if not all(path.exists() for path in written):
        return True
    sources = [directory / f"{layer}.geojson" for layer in ("grids", "lanes", "landmarks")]
    newest = max((path.stat().st_mtime for path in sources if path.exists()), default=0.0)
    return min(path.stat().st_mtime for path in written) < newest


def load_gazetteer(conn: sa.Connection, directory: Path) -> list[RunReport]:
    """Build the gazetteer from the loaded layers, then import the directory's 门牌 and POI
    files (written from its boundary files first when it has none, or when they are older
    than the boundaries). Idempotent."""
    build(conn)
    if _stale(directory):
        write_gazetteer(read_geography(directory), directory)
    return [
        import_file(conn, directory / ADDRESSES, "address", directory / ADDRESSES_MAPPING),
        import_file(conn, directory / POIS, "poi", directory / POIS_MAPPING),
    ]
