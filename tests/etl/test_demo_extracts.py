"""The demo extracts: formats, encodings, determinism, messiness and truth."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import re
import unicodedata
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pyarrow as pa
import pytest
import shapely

from etl import coords
from etl.demo import extracts as ex
from etl.demo.geography import METRIC_CRS, Geography, generate_geography
from etl.rules import DEPARTMENTS, load_time_limits

SMALL: dict[str, Any] = {"requests": 8_000, "cases": 400, "targets": 60, "projects": 60}
EXTRACT_TIME = dt.datetime(2026, 11, 25)
UPDATE_TIME = EXTRACT_TIME + dt.timedelta(days=1)
RANK = {s: i for i, s in enumerate(ex.STATUSES)}
R = 6_371_008.8
FULLWIDTH_DIGIT = re.compile("[０-９]")


@pytest.fixture(scope="module")
def geo() -> Geography:
    return generate_geography(42)


@pytest.fixture(scope="module")
def out(geo: Geography, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("extracts")
    ex.generate_extracts(geo, path, seed=7, **SMALL)
    return path


@pytest.fixture(scope="module")
def truth(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / ex.TRUTH, dtype=str, keep_default_na=False)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return repr(value)
    return str(value)


def read_rows(path: Path) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of a CSV (by the file's encoding) or of an XLSX (cell values)."""
    if path.suffix == ".xlsx":
        wb = openpyxl.load_workbook(path, read_only=True)
        rows = [list(r) for r in wb.worksheets[0].iter_rows(values_only=True)]
        wb.close()
        return [str(h) for h in rows[0]], rows[1:]
    with path.open(encoding=ex.ENCODING.get(path.name, "utf-8"), newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], [list(r) for r in rows[1:]]


def read_frame(path: Path) -> pd.DataFrame:
    """A request file as text, NFKC-normalised and stripped, as a careful loader sees it."""
    header, rows = read_rows(path)
    df = pd.DataFrame([[_text(v) for v in r] for r in rows], columns=header, dtype=object)
    return df.map(lambda v: unicodedata.normalize("NFKC", v).strip())


def parse_time(value: str, file: str) -> dt.datetime | None:
    if not value:
        return None
    fmt = "%Y/%m/%d %H:%M" if file == ex.GRID else "%Y-%m-%d %H:%M:%S"
    return dt.datetime.strptime(value, fmt)


def metres(lng1: np.ndarray, lat1: np.ndarray, lng2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    k = R * np.pi / 180
    dx = (lng1 - lng2) * k * np.cos(np.radians(lat2))
    return np.hypot(dx, (lat1 - lat2) * k)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_arguments_give_identical_bytes(geo: Geography, tmp_path: Path) -> None:
    a = ex.generate_extracts(
        geo, tmp_path / "a", seed=3, requests=3_000, cases=100, targets=30, projects=20
    )
    b = ex.generate_extracts(
        geo, tmp_path / "b", seed=3, requests=3_000, cases=100, targets=30, projects=20
    )
    c = ex.generate_extracts(
        geo, tmp_path / "c", seed=4, requests=3_000, cases=100, targets=30, projects=20
    )
    assert sorted(p.name for p in a.values()) == sorted(
        [*ex.REQUEST_FILES, ex.CASES, ex.TARGETS, ex.PROJECTS, ex.TRUTH, ex.MANIFEST]
    )
    for name, path in a.items():
        assert path.read_bytes() == b[name].read_bytes(), name
    assert sha(a["requests_hotline"]) != sha(c["requests_hotline"])
    assert sha(a["requests_app"]) != sha(c["requests_app"])


def test_xlsx_has_fixed_zip_times_and_properties(out: Path) -> None:
    import zipfile

    for name in (ex.APP, ex.TARGETS):
        with zipfile.ZipFile(out / name) as zf:
            # XlsxWriter stamps every entry with one fixed time: reproducible, whatever the clock
            assert {i.date_time for i in zf.infolist()} == {(1980, 1, 31, 0, 0, 0)}
            core = zf.read("docProps/core.xml").decode()
        assert "2026-11-25T00:00:00Z" in core
        wb = openpyxl.load_workbook(out / name)
        assert wb.properties.created == dt.datetime(2026, 11, 25)


def test_xlsx_cells_keep_their_kind(tmp_path: Path) -> None:
    """Text that looks like a formula or a link stays text; padding is kept; empty is no cell."""
    path = tmp_path / "kinds.xlsx"
    row = ["=1+1", "http://x.cn/a", " 前后有空格\u3000", 1.5, 7, EXTRACT_TIME, EXTRACT_TIME.date()]
    ex._write_xlsx(path, "表一", [f"c{i}" for i in range(9)], [[*row, "", None]], EXTRACT_TIME)
    wb = openpyxl.load_workbook(path)
    ws = wb["表一"]
    assert wb.sheetnames == ["表一"] and ws.freeze_panes == "A2"
    (cells,) = ws.iter_rows(min_row=2, values_only=True)
    assert cells[:3] == tuple(row[:3]) and ws["A2"].data_type == "s"
    assert not ws["B2"].hyperlink
    assert cells[3:5] == (1.5, 7)
    assert ws["F2"].is_date and ws["F2"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert ws["G2"].is_date and ws["G2"].number_format == "yyyy-mm-dd"
    assert cells[5] == EXTRACT_TIME and cells[6] == EXTRACT_TIME
    assert ws["H2"].value is None and ws["I2"].value is None
    with pytest.raises(TypeError, match="cannot write"):
        ex._write_xlsx(path, "表一", ["a"], [[object()]], EXTRACT_TIME)


def test_places_measure_in_the_etl_frame(geo: Geography) -> None:
    """The demo samples in the assignment's own local frame, not a copy of it."""
    from etl.assign import LocalFrame

    frame = ex._Places(geo).frame
    assert type(frame) is LocalFrame
    # 1 km east and 2 km north of the frame's centre, by the sphere's own arithmetic
    lng, lat = frame.to_degrees(np.array([1000.0]), np.array([2000.0]))
    k = R * np.pi / 180
    assert lng[0] == pytest.approx(frame.lon0 + 1000 / (k * np.cos(np.radians(frame.lat0))))
    assert lat[0] == pytest.approx(frame.lat0 + 2000 / k)
    x, y = frame.to_metres(lng, lat)
    assert (x[0], y[0]) == pytest.approx((1000.0, 2000.0))


def test_columns_in_order(out: Path) -> None:
    for file in ex.REQUEST_FILES:
        assert read_rows(out / file)[0] == list(ex.REQUEST_COLUMNS), file
    assert read_rows(out / ex.CASES)[0] == list(ex.CASE_COLUMNS)
    assert read_rows(out / ex.TARGETS)[0] == list(ex.TARGET_COLUMNS)
    assert read_rows(out / ex.TRUTH)[0] == list(ex.TRUTH_COLUMNS)
    features = json.loads((out / ex.PROJECTS).read_text(encoding="utf-8"))["features"]
    assert list(features[0]["properties"]) == [
        "项目编号",
        "项目名称",
        "类型",
        "街巷编码",
        "阶段",
        "进度(%)",
        "计划开始",
        "计划完成",
        "实际开始",
        "实际完成",
    ]


def test_encodings(out: Path) -> None:
    hotline = (out / ex.HOTLINE).read_bytes()
    assert hotline.startswith(b"\xef\xbb\xbf")
    hotline.decode("utf-8")
    grid = (out / ex.GRID).read_bytes()
    with pytest.raises(UnicodeDecodeError):
        grid.decode("utf-8")
    assert grid.decode("gbk").startswith("工单编号,受理时间")
    for name in (ex.UPDATE, ex.CASES, ex.TRUTH):
        data = (out / name).read_bytes()
        assert not data.startswith(b"\xef\xbb\xbf")
        data.decode("utf-8")


def test_file_shares_by_channel(truth: pd.DataFrame, out: Path) -> None:
    main = truth[truth["file"].isin([ex.HOTLINE, ex.GRID, ex.APP])]
    first = main[~main["defects"].str.contains("duplicate|later_version")]
    share = first["file"].value_counts(normalize=True)
    assert share[ex.HOTLINE] == pytest.approx(0.6, abs=0.03)
    assert share[ex.GRID] == pytest.approx(0.3, abs=0.03)
    assert share[ex.APP] == pytest.approx(0.1, abs=0.02)
    assert len(first) == SMALL["requests"]
    channels = {
        ex.HOTLINE: {"12345热线", "12345网络"},
        ex.GRID: {"网格员上报", "街道自采"},
        ex.APP: {"北京通APP", "微信小程序"},
    }
    for file, allowed in channels.items():
        got = set(read_frame(out / file)["来源渠道"])
        assert got == allowed, file


def _tags(df: pd.DataFrame) -> pd.Series:
    return df["defects"].str.split(";")


@pytest.mark.parametrize("file", [ex.HOTLINE, ex.GRID, ex.APP, ex.UPDATE])
def test_defect_shares_match_parameters(truth: pd.DataFrame, file: str) -> None:
    rows = truth[truth["file"] == file]
    tags = _tags(rows)
    primary = rows[~tags.map(lambda t: "duplicate" in t or "later_version" in t)]
    n = len(primary)
    mess = ex.Messiness()
    for defect in ex.DEFECTS:
        share = getattr(mess, defect)
        if defect in ("duplicate", "later_version"):
            got = int(tags.map(lambda t, d=defect: d in t).sum())
        else:
            got = int(_tags(primary).map(lambda t, d=defect: d in t).sum())
        if file == ex.UPDATE and defect in ("address_only", "swapped", "outside", "zero"):
            # repeated work orders keep their own coordinates: a share in expectation only
            assert abs(got - share * n) <= 4 * np.sqrt(share * n) + 2, (defect, got, n)
        else:
            assert abs(got - share * n) <= 1, (file, defect, got, share * n)


def test_messiness_is_a_parameter(geo: Geography) -> None:
    mess = ex.Messiness(address_only=0.2, whitespace=0.1, duplicate=0.05, zero=0.0)
    _, truth = ex.requests_frame(geo, 3_000, seed=5, messiness=mess)
    hot = truth[truth["file"] == ex.HOTLINE]
    tags = _tags(hot)
    primary = hot[~tags.map(lambda t: "duplicate" in t or "later_version" in t)]
    n = len(primary)
    assert abs(_tags(primary).map(lambda t: "address_only" in t).sum() - 0.2 * n) <= 1
    assert abs(_tags(primary).map(lambda t: "whitespace" in t).sum() - 0.1 * n) <= 1
    assert abs(tags.map(lambda t: "duplicate" in t).sum() - 0.05 * n) <= 1
    assert not tags.map(lambda t: "zero" in t).any()
    raw, clean = ex.requests_frame(geo, 3_000, seed=5, messy=False)
    assert (clean["defects"] == "").all()
    for _, ids in raw["工单编号"].groupby(clean["file"].to_numpy()):
        assert ids.is_unique
    with pytest.raises(ValueError, match="swapped"):
        ex.Messiness(swapped=-0.1)


def test_raw_frame_is_what_the_files_hold(geo: Geography, tmp_path: Path) -> None:
    raw, truth = ex.requests_frame(geo, 2_000, seed=11)
    ex.generate_extracts(geo, tmp_path, seed=11, requests=2_000, cases=10, targets=20, projects=5)
    for file in ex.REQUEST_FILES:
        part = raw[(truth["file"] == file).to_numpy()]
        assert truth.loc[truth["file"] == file, "row"].tolist() == list(range(1, len(part) + 1))
        _, rows = read_rows(tmp_path / file)
        expect = [["" if v == "" else v for v in r] for r in part.itertuples(index=False)]
        got = [[("" if v is None else v) for v in r] for r in rows]
        assert got == expect, file


def test_true_points_lie_inside_their_grid_away_from_edges(
    geo: Geography, truth: pd.DataFrame
) -> None:
    grids = geo.grids.set_index("code")
    assert set(truth["grid_code"]) <= set(grids.index)
    cells = gpd.GeoSeries(grids.loc[truth["grid_code"]].geometry.to_numpy(), crs=geo.grids.crs)
    pts = gpd.GeoSeries.from_xy(
        truth["true_lng"].astype(float), truth["true_lat"].astype(float), crs="EPSG:4326"
    )
    assert shapely.contains(cells.to_numpy(), pts.to_numpy()).all()
    edge = shapely.distance(
        cells.to_crs(METRIC_CRS).boundary.to_numpy(), pts.to_crs(METRIC_CRS).to_numpy()
    )
    assert edge.min() >= 1.0
    meta = grids.loc[truth["grid_code"]]
    assert (meta["community_code"].to_numpy() == truth["community_code"].to_numpy()).all()
    assert (meta["street_code"].to_numpy() == truth["street_code"].to_numpy()).all()
    assert set(truth["kind"]) == {"request", "case", "target", "project"}


def _written_wgs84(df: pd.DataFrame, file: str) -> tuple[np.ndarray, np.ndarray]:
    crs = df["坐标系"].replace("", ex.CRS_DEFAULT.get(file, "")).to_numpy()
    return coords.to_wgs84(df["经度"].astype(float), df["纬度"].astype(float), crs)


@pytest.mark.parametrize("file", [ex.HOTLINE, ex.GRID, ex.APP, ex.UPDATE, ex.CASES])
def test_clean_coordinates_convert_back_to_the_truth(
    out: Path, truth: pd.DataFrame, geo: Geography, file: str
) -> None:
    df = read_frame(out / file)
    t = truth[truth["file"] == file].reset_index(drop=True)
    assert len(df) == len(t)
    tags = _tags(t)
    coord_bad = {"address_only", "swapped", "outside", "zero"}
    ok = tags.map(lambda x: not coord_bad & set(x)).to_numpy()
    mess = ex.Messiness()
    share = mess.address_only + mess.swapped + mess.outside + mess.zero
    # Exact shares in the main files; the later extract repeats main rows that moved on,
    # defects and all, so there the share is binomial: allow three standard deviations.
    slack = 3 * np.sqrt(share * (1 - share) / len(t)) if file == ex.UPDATE else 0.01
    assert ok.mean() > 1 - share - slack
    lng, lat = _written_wgs84(df[ok], file)
    d = metres(lng, lat, t["true_lng"][ok].astype(float), t["true_lat"][ok].astype(float))
    assert d.max() < 0.1
    # the dirty ones are dirty in the documented way
    only = tags.map(lambda x: "address_only" in x).to_numpy()
    assert (df.loc[only, "经度"] == "").all() and (df.loc[only, "地址"] != "").all()
    if file == ex.CASES:
        return
    zero = tags.map(lambda x: "zero" in x).to_numpy()
    assert (df.loc[zero, "经度"].astype(float) == 0).all()
    swapped = tags.map(lambda x: "swapped" in x).to_numpy()
    back = df[swapped].rename(columns={"经度": "纬度", "纬度": "经度"})
    lng, lat = _written_wgs84(back, file)
    d = metres(lng, lat, t["true_lng"][swapped].astype(float), t["true_lat"][swapped].astype(float))
    assert swapped.sum() == 0 or d.max() < 0.1
    outside = tags.map(lambda x: "outside" in x).to_numpy()
    lng, lat = _written_wgs84(df[outside], file)
    far = metres(
        lng, lat, t["true_lng"][outside].astype(float), t["true_lat"][outside].astype(float)
    )
    district = geo.district.geometry.union_all()
    assert not shapely.intersects_xy(district, lng, lat).any()
    assert outside.sum() == 0 or far.min() > 500


def test_whitespace_and_fullwidth_rows_are_dirty_but_valid(out: Path, truth: pd.DataFrame) -> None:
    _, rows = read_rows(out / ex.HOTLINE)
    t = truth[truth["file"] == ex.HOTLINE].reset_index(drop=True)
    tags = _tags(t)
    ws = [i for i in range(len(rows)) if "whitespace" in tags[i]]
    fw = [i for i in range(len(rows)) if "fullwidth" in tags[i]]
    assert ws and fw
    assert all(any(v != v.strip() for v in rows[i]) for i in ws)
    assert all(any(unicodedata.normalize("NFKC", v) != v for v in rows[i]) for i in fw)
    clean = [i for i in range(len(rows)) if t["defects"][i] == ""]
    assert not any(v != v.strip() or FULLWIDTH_DIGIT.search(v) for i in clean for v in rows[i])
    assert all(FULLWIDTH_DIGIT.search("".join(rows[i])) for i in fw)
    assert all(re.fullmatch(r"GD\d{14}", rows[i][0]) for i in clean)


def _consistent(df: pd.DataFrame, t: pd.DataFrame, file: str, extract: dt.datetime) -> None:
    tags = _tags(t)
    usable = tags.map(lambda x: not {"bad_date", "missing_required"} & set(x)).to_numpy()
    for r in df[usable].to_dict("records"):
        received, dispatched, responded, resolved = (
            parse_time(r[c], file) for c in ("受理时间", "派单时间", "响应时间", "办结时间")
        )
        assert received is not None and received < extract
        rank = RANK[r["状态"]]
        shown = [dispatched is not None, responded is not None, resolved is not None]
        assert shown == [rank > 0, rank > 1, rank > 2], r
        chain = [x for x in (received, dispatched, responded, resolved) if x is not None]
        assert chain == sorted(chain), r
        assert chain[-1] <= extract
        callback = [r[c] for c in ("是否有效回访", "是否联系", "是否解决", "满意度")]
        if rank < 3 or r["来源渠道"] in ex.PATROL:
            assert callback == ["", "", "", ""], r
        elif callback[0] == "是":
            assert callback[1] in ("是", "否") and callback[2] in ("是", "否")
            assert callback[3] in ("满意", "基本满意", "不满意")
        else:
            assert callback == ["否", "", "", ""], r
        # the case's lifecycle (etl/replay.py replays it): the unit from dispatch on, 签收 and
        # 联系 once in progress, 回访 for a resolved citizen's request, 归档 unless unsatisfied
        accepted, contacted, called_back, filed = (
            parse_time(r[c], file) for c in ("签收时间", "联系时间", "回访时间", "归档时间")
        )
        assert (r["承办单位"] in DEPARTMENTS) == (rank > 0) and (r["承办单位"] == "") == (rank == 0)
        assert [accepted is not None, contacted is not None] == [rank > 1, rank > 1], r
        called = rank == 3 and r["来源渠道"] not in ex.PATROL
        assert (called_back is not None) == called, r
        assert (filed is not None) == (called and callback[3] != "不满意"), r
        steps = (received, dispatched, accepted, contacted, resolved, called_back, filed)
        chain = [x for x in steps if x is not None]
        assert chain == sorted(chain) and chain[-1] <= extract, r


def test_about_one_request_in_twenty_ends_overdue(out: Path, truth: pd.DataFrame) -> None:
    """超期: resolved after the due time, or still open past it when the extract is taken;
    due times from the configured limits (etl/config/time_limits.yaml), counted from 派单."""
    df = read_frame(out / ex.HOTLINE)
    t = truth[truth["file"] == ex.HOTLINE].reset_index(drop=True)
    df = df[(t["defects"] == "").to_numpy() & (df["派单时间"] != "").to_numpy()]
    zone = ZoneInfo(ex.DEMO_ZONE)
    start = [parse_time(v, ex.HOTLINE).replace(tzinfo=zone) for v in df["派单时间"]]  # type: ignore[union-attr]
    due = (
        load_time_limits()
        .due_at(
            pa.array(df["诉求类别"].tolist(), pa.string()),
            pa.array(start, pa.timestamp("us", "UTC")),
            ex.DEMO_ZONE,
        )
        .to_pylist()
    )
    taken = EXTRACT_TIME.replace(tzinfo=zone)
    late = 0
    for resolved, limit in zip(df["办结时间"], due, strict=True):
        done = parse_time(resolved, ex.HOTLINE)
        end = done.replace(tzinfo=zone) if done is not None else taken
        late += end > limit
    assert 0.03 <= late / len(df) <= 0.08, late / len(df)


@pytest.mark.parametrize("file", [ex.HOTLINE, ex.GRID, ex.APP, ex.UPDATE])
def test_statuses_and_timestamps_are_consistent(out: Path, truth: pd.DataFrame, file: str) -> None:
    df = read_frame(out / file)
    t = truth[truth["file"] == file].reset_index(drop=True)
    _consistent(df, t, file, UPDATE_TIME if file == ex.UPDATE else EXTRACT_TIME)


def test_request_patterns(out: Path, truth: pd.DataFrame) -> None:
    df = pd.concat([read_frame(out / f) for f in (ex.HOTLINE, ex.GRID, ex.APP)])
    t = truth[truth["file"].isin([ex.HOTLINE, ex.GRID, ex.APP])]
    ok = (t["defects"] == "").to_numpy()
    df = df[ok]
    received = pd.to_datetime(df["受理时间"].str.replace("/", "-"), format="mixed")
    hours = received.dt.hour.value_counts(normalize=True)
    assert hours.reindex([9, 10, 15, 16]).sum() > 4 * hours.reindex([1, 2, 3, 4]).fillna(0).sum()
    winter = received.dt.month.isin([11, 12, 1, 2, 3]).to_numpy()
    heating = (df["诉求类别"] == "供暖").to_numpy()
    assert heating[winter].sum() > 0.9 * heating.sum()
    assert 15 <= df["诉求类别"].nunique() <= 20
    assert df["诉求类别"].value_counts(normalize=True).max() < 0.2
    assert (df["地址"] != "").all()
    assert df["工单编号"].str.fullmatch(r"GD\d{8}\d{6}").all()
    assert (df["工单编号"].str[2:10] == received.dt.strftime("%Y%m%d").to_numpy()).all()
    closed = df[df["状态"] == "已办结"]
    assert (len(closed) / len(df)) > 0.95
    citizens = closed[~closed["来源渠道"].isin(ex.PATROL)]
    assert (citizens["是否有效回访"] == "是").mean() == pytest.approx(0.85, abs=0.03)
    valid = citizens[citizens["是否有效回访"] == "是"]
    assert (valid["是否联系"] == "是").mean() == pytest.approx(0.95, abs=0.03)
    assert (valid["是否解决"] == "是").mean() == pytest.approx(0.8, abs=0.05)
    rating = valid["满意度"].value_counts(normalize=True)
    assert rating["满意"] == pytest.approx(0.75, abs=0.06)
    assert rating["不满意"] == pytest.approx(0.10, abs=0.04)
    # a few recent ones are still open
    recent = received >= pd.Timestamp(EXTRACT_TIME - dt.timedelta(days=1))
    assert (df.loc[recent.to_numpy(), "状态"] != "已办结").mean() > 0.5


def test_satisfaction_differs_by_street(geo: Geography) -> None:
    raw, truth = ex.requests_frame(geo, 30_000, seed=9, messy=False)
    valid = (raw["是否有效回访"] == "是").to_numpy()
    happy = (raw["满意度"] == "满意").to_numpy()
    by_street = pd.Series(happy[valid]).groupby(truth["street_code"].to_numpy()[valid]).mean()
    assert by_street.max() - by_street.min() > 0.1


def test_requests_cluster_where_people_live_and_work(geo: Geography) -> None:
    _, truth = ex.requests_frame(geo, 30_000, seed=9, messy=False)
    metric = "EPSG:32650"  # measured independently of the generator's frame
    pts = gpd.GeoSeries.from_xy(
        truth["true_lng"].astype(float), truth["true_lat"].astype(float), crs=4326
    ).to_crs(metric)
    district = geo.district.to_crs(metric).geometry.iloc[0]
    average = len(pts) / district.area

    def density(zone: shapely.Geometry) -> float:
        """Requests per m² in zone (within the district), relative to the district's."""
        zone = zone.intersection(district)
        return float(pts.within(zone).sum()) / zone.area / average

    lanes = geo.lanes.to_crs(metric)
    marks = geo.landmarks.to_crs(metric)
    busy = lanes[lanes["kind"].isin(["大街", "路"])].geometry.buffer(30.0).union_all()
    assert density(busy) > 1.3
    compounds = marks[marks["kind"] == "compound"].geometry.buffer(150.0).union_all()
    assert density(compounds) > 1.4
    # Inside the large parks and lakes, away from the gate where their visitors call from.
    for name in ("北海公园", "什刹海", "陶然亭公园"):
        gate = marks.loc[marks["name"] == name].geometry.iloc[0]
        assert density(gate.buffer(350.0).difference(gate.buffer(200.0))) < 0.8, name
    # Not uniform: the busiest tenth of the grids holds far more than a tenth of requests.
    per_grid = truth["grid_code"].value_counts().reindex(geo.grids["code"], fill_value=0)
    area = geo.grids.to_crs(metric).area.to_numpy()
    rate = np.sort(per_grid.to_numpy() / area)[::-1]
    top = rate[: len(rate) // 10]
    assert top.sum() / rate.sum() > 0.2


def test_hotspots(out: Path, truth: pd.DataFrame, geo: Geography) -> None:
    df = read_frame(out / ex.HOTLINE)
    t = truth[truth["file"] == ex.HOTLINE]
    marks = geo.landmarks.to_crs(METRIC_CRS)
    pts = gpd.GeoSeries.from_xy(t["true_lng"].astype(float), t["true_lat"].astype(float), crs=4326)
    pts = pts.to_crs(METRIC_CRS)
    markets = marks[marks["kind"] == "market"].geometry.union_all()
    near = (pts.distance(markets) < 100).to_numpy()
    vending = (df["诉求类别"] == "占道经营").to_numpy()
    assert vending[near].mean() > 2 * vending[~near].mean()


def test_address_names_a_lane_or_landmark(out: Path, geo: Geography) -> None:
    df = read_frame(out / ex.HOTLINE)
    lanes = set(geo.lanes["name"])
    marks = set(geo.landmarks["name"])
    pattern = re.compile(r"(?:北京市)?(?:西城区|\w+街道)?(\w+?)(\d+)号院?")
    for address in df["地址"].head(2_000):
        m = pattern.fullmatch(address)
        if m:
            assert m.group(1) in lanes, address
        else:
            name = address.removesuffix("附近").removesuffix("门口")
            forms = {name, name.removeprefix("北京市"), name.removeprefix("西城区")}
            forms.add(name.removeprefix("北京市西城区"))
            assert forms & marks, address


def test_grid_file_dates_are_short_and_unpadded(out: Path, truth: pd.DataFrame) -> None:
    _, rows = read_rows(out / ex.GRID)
    t = truth[truth["file"] == ex.GRID].reset_index(drop=True)
    clean = [r for i, r in enumerate(rows) if t["defects"][i] == ""]
    stamps = [r[1] for r in clean] + [r[12] for r in clean if r[12]]
    assert all(re.fullmatch(r"\d{4}/[1-9]\d?/[1-9]\d? [12]?\d:\d\d", s) for s in stamps)
    assert any(re.fullmatch(r"\d{4}/\d/.*", s) for s in stamps)  # January to September
    assert any(re.fullmatch(r".* \d:\d\d", s) for s in stamps)  # before 10 o'clock
    labels = {r[8] for r in clean}
    assert labels == {"WGS84", "CGCS2000"}


def test_app_file_has_real_date_cells(out: Path, truth: pd.DataFrame) -> None:
    _, rows = read_rows(out / ex.APP)
    t = truth[truth["file"] == ex.APP].reset_index(drop=True)
    clean = [r for i, r in enumerate(rows) if t["defects"][i] == ""]
    assert all(isinstance(r[1], dt.datetime) for r in clean)
    assert all(isinstance(r[6], float) and isinstance(r[7], float) for r in clean)
    assert {r[8] for r in clean if r[2] == "微信小程序"} == {"BD09", "百度"}
    assert {r[8] for r in clean if r[2] == "北京通APP"} == {"GCJ-02"}
    bad = [r for i, r in enumerate(rows) if "bad_date" in t["defects"][i]]
    assert bad and all(
        any(isinstance(v, str) and v in ex.vocab.BAD_DATES["excel"] for v in r) for r in bad
    )


def test_duplicates_and_later_versions(out: Path, truth: pd.DataFrame) -> None:
    for file in (ex.HOTLINE, ex.GRID, ex.APP):
        _, rows = read_rows(out / file)
        t = truth[truth["file"] == file].reset_index(drop=True)
        seen: dict[tuple[Any, ...], int] = {}
        status: dict[str, int] = {}
        for i, row in enumerate(rows):
            key = tuple(row)
            tags = t["defects"][i].split(";")
            sid = t["source_id"][i]
            if "duplicate" in tags:
                assert key in seen, (file, i)
            elif "later_version" in tags:
                assert RANK[str(row[9]).strip()] > status[sid], (file, i)
            else:
                assert sid not in status or "later_version" in t["defects"][i], (file, i)
            seen.setdefault(key, i)
            status[sid] = RANK.get(str(row[9]).strip(), -1)
        dups = t["defects"].str.contains("duplicate").sum()
        assert dups > 0
        assert (
            t["source_id"].duplicated().sum()
            == dups + t["defects"].str.contains("later_version").sum()
        )


def test_missing_and_bad_fields(out: Path, truth: pd.DataFrame) -> None:
    df = read_frame(out / ex.HOTLINE)
    t = truth[truth["file"] == ex.HOTLINE].reset_index(drop=True)
    missing = t["defects"].str.contains("missing_required").to_numpy()
    assert missing.any()
    assert (df.loc[missing, ["工单编号", "受理时间", "诉求类别"]] == "").any(axis=1).all()
    assert not (df.loc[~missing, ["工单编号", "受理时间", "诉求类别"]] == "").any(axis=None)
    bad = t["defects"].str.contains("bad_date").to_numpy()
    assert bad.any()
    for _, row in df[bad].iterrows():
        values = [row["受理时间"], row["派单时间"], row["响应时间"], row["办结时间"]]
        assert any(v in ex.vocab.BAD_DATES["iso"] for v in values)


def _iso_minutes(value: str) -> str:
    """An old-system date as 'YYYY-MM-DD HH:MM'; garbled text stays as it is."""
    try:
        return dt.datetime.strptime(value, "%Y/%m/%d %H:%M").strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return value


def test_later_extract_only_progresses(out: Path, truth: pd.DataFrame) -> None:
    last: dict[str, dict[str, str]] = {}
    for file in (ex.HOTLINE, ex.GRID, ex.APP):
        df = read_frame(out / file)
        if file == ex.GRID:  # bring the old system's dates to one format
            for c in ("受理时间", "派单时间", "响应时间", "办结时间"):
                df[c] = [_iso_minutes(v) for v in df[c]]
        df["defects"] = truth.loc[truth["file"] == file, "defects"].to_numpy()
        df["工单编号"] = truth.loc[truth["file"] == file, "source_id"].to_numpy()
        for row in df.to_dict("records"):
            last[row["工单编号"]] = row
    upd = read_frame(out / ex.UPDATE)
    t = truth[truth["file"] == ex.UPDATE].reset_index(drop=True)
    usable = ~t["defects"].str.contains("bad_date|missing_required").to_numpy()
    repeated = new = 0
    for row in upd[usable].to_dict("records"):
        before = last.get(row["工单编号"])
        if before is None:
            new += 1
            received = parse_time(row["受理时间"], ex.UPDATE)
            assert received is not None and EXTRACT_TIME <= received < UPDATE_TIME
            continue
        repeated += 1
        assert RANK[row["状态"]] > RANK[before["状态"]], (before, row)
        if "bad_date" in before["defects"]:
            continue  # a garbled date in the main extract cannot be compared
        for c in ("受理时间", "派单时间", "响应时间", "办结时间"):
            if before[c]:
                assert row[c].startswith(before[c]), (c, before, row)
            elif row[c]:
                stamp = parse_time(row[c], ex.UPDATE)
                assert stamp is not None and EXTRACT_TIME < stamp <= UPDATE_TIME
    assert repeated == pytest.approx(0.02 * SMALL["requests"], rel=0.1)
    assert 5 < new < 60


def test_cases(out: Path, truth: pd.DataFrame) -> None:
    df = read_frame(out / ex.CASES)
    t = truth[truth["file"] == ex.CASES].reset_index(drop=True)
    assert len(df) == SMALL["cases"]
    assert df["案件编号"].str.fullmatch(r"ZF20\d\d-\d{6}").all()
    assert df["案件编号"].is_unique
    joint = df["执法部门"].str.contains("、")
    assert ((df["是否联合执法"] == "是") == joint).all()
    assert 0.1 < joint.mean() < 0.4
    agencies = {"城管执法队", "市场监管所", "消防救援支队", "派出所", "交通支队", "生态环境局"}
    assert set("、".join(df["执法部门"]).split("、")) <= agencies
    assert set(df["状态"]) <= set(ex.vocab.CASE_STATUSES)
    assert df["办理期限"].str.fullmatch(r"\d+").all()
    ok = (t["defects"] == "").to_numpy()
    opened = pd.to_datetime(df.loc[ok, "立案时间"], format="%Y-%m-%d %H:%M:%S")
    closed = pd.to_datetime(df.loc[ok, "结案时间"], format="%Y-%m-%d %H:%M:%S")
    done = (df.loc[ok, "状态"] == "已结案").to_numpy()
    assert closed[done].notna().all() and closed[~done].isna().all()
    assert (closed[done] > opened[done]).all()
    assert (df["坐标系"] == "WGS84").all()


def test_zoo_markets_are_relocation_targets_in_zhanlanlu(out: Path, truth: pd.DataFrame) -> None:
    streets = pd.read_csv(
        Path(ex.__file__).parent / "data" / "xicheng_streets.csv", dtype=str
    ).set_index("code")
    assert streets.loc[ex.vocab.ZOO_STREET, "name"] == "展览路街道"
    header, rows = read_rows(out / ex.TARGETS)
    df = pd.DataFrame(rows, columns=header)
    t = truth[truth["file"] == ex.TARGETS].reset_index(drop=True)
    assert (t["source_id"] == df["项目编号"]).all()
    zoo = df["名称"].str.endswith("服装批发市场").to_numpy()
    assert zoo.sum() >= 5
    assert {"天皓成服装批发市场", "金开利德服装批发市场", "众合服装批发市场"} <= set(
        df["名称"][zoo]
    )
    assert (t["street_code"][zoo] == ex.vocab.ZOO_STREET).all()
    z = df[zoo]
    assert (z["类型"] == "区域性批发市场").all()
    assert z["状态"].isin(["已完成", "已验收"]).all()
    assert (z["建筑面积(平方米)"] >= 15_000).all() and (z["商户数"] >= 300).all()
    assert all(2014 <= d.year <= 2018 for d in pd.concat([z["实际开始"], z["实际完成"]]))
    assert df["项目编号"].str.fullmatch(r"SJ\d{4}").all()
    for row in rows:
        status, progress = row[9], row[10]
        assert {"未启动": progress == 0, "进行中": 0 < progress < 100}.get(status, progress == 100)
        assert (row[13] is None) == (status == "未启动")
        assert (row[14] is None) == (status in ("未启动", "进行中"))
        if row[14] is not None:
            assert row[13] <= row[14] <= EXTRACT_TIME
    assert set(df["类型"]) >= {"区域性批发市场", "违法建设", "物流仓储"}


def test_projects(out: Path, truth: pd.DataFrame, geo: Geography) -> None:
    fc = json.loads((out / ex.PROJECTS).read_text(encoding="utf-8"))
    assert fc["type"] == "FeatureCollection"
    features = fc["features"]
    assert len(features) == SMALL["projects"]
    lanes = geo.lanes.set_index("code")
    communities = geo.communities.set_index("code").geometry
    t = truth[truth["file"] == ex.PROJECTS].reset_index(drop=True)
    for i, f in enumerate(features):
        p = f["properties"]
        assert p["项目编号"] == t["source_id"][i] == f"ZZ{i + 1:04d}"
        geom = shapely.geometry.shape(f["geometry"])
        assert geom.is_valid and not geom.is_empty
        if p["类型"] == "背街小巷整治":
            assert geom.geom_type == "LineString"
            assert shapely.equals_exact(geom, lanes.loc[p["街巷编码"]].geometry, 1e-7)
        else:
            assert geom.geom_type == "Polygon" and p["街巷编码"] is None
            assert communities.loc[t["community_code"][i]].contains(geom)
        assert p["阶段"] in ex.vocab.PROJECT_PHASES
        assert (p["进度(%)"] == 100) == (p["阶段"] == "完成")
        assert (p["实际完成"] is None) == (p["阶段"] != "完成")
        assert (p["实际开始"] is None) == (p["阶段"] in ("规划", "设计"))
        if p["实际完成"]:
            assert p["实际开始"] <= p["实际完成"] <= "2026-11-25"
    kinds = {f["properties"]["类型"] for f in features}
    assert kinds == set(ex.vocab.PROJECT_KINDS)


def test_manifest(out: Path, truth: pd.DataFrame) -> None:
    manifest = json.loads((out / ex.MANIFEST).read_text(encoding="utf-8"))
    assert manifest["seed"] == 7 and manifest["end"] == "2026-11-25"
    for file, info in manifest["files"].items():
        rows = truth[truth["file"] == file]
        assert info["rows"] == len(rows)
        for defect, count in info["defects"].items():
            assert count == rows["defects"].str.split(";").map(lambda t, d=defect: d in t).sum()


def tiny_geography() -> Geography:
    """A stand-in district: two streets of 2 x 2 square grids, a few lanes and landmarks."""
    grids, communities = [], []
    for s, (street, x0) in enumerate((("110102009", 116.330), ("110102012", 116.338))):
        for c in range(2):
            community = f"{street}{c + 1:03d}"
            communities.append((community, f"测试{s}{c}社区", street))
            for g in range(2):
                box = shapely.box(
                    x0 + 0.004 * c, 39.930 + 0.004 * g, x0 + 0.004 * (c + 1), 39.934 + 0.004 * g
                )
                grids.append((f"{community}{g + 1:03d}", community, street, f"员{s}{c}{g}", box))
    grid = gpd.GeoDataFrame(
        grids,
        columns=["code", "community_code", "street_code", "grid_officer", "geometry"],
        crs=4326,
    )
    comm = gpd.GeoDataFrame(
        [(c, n, s, grid[grid["community_code"] == c].union_all()) for c, n, s in communities],
        columns=["code", "name", "street_code", "geometry"],
        crs=4326,
    )
    streets = gpd.GeoDataFrame(
        [
            (s, n, "指挥", 1.0, grid[grid["street_code"] == s].union_all())
            for s, n in (("110102009", "展览路街道"), ("110102012", "什刹海街道"))
        ],
        columns=["code", "name", "commander", "area_km2", "geometry"],
        crs=4326,
    )
    lanes = gpd.GeoDataFrame(
        [
            ("L1", "测试胡同", "胡同", "110102009", "甲", "未整治", 1, 41, 2, 42,
             shapely.LineString([(116.331, 39.9325), (116.337, 39.9325)])),
            ("L2", "测试大街", "大街", "110102012", "乙", "已验收", 1, 21, 2, 22,
             shapely.LineString([(116.342, 39.931), (116.342, 39.937)])),
            ("L3", "测试巷", "巷", "110102012", "丙", "整治中", 1, 9, 2, 10,
             shapely.LineString([(116.339, 39.9365), (116.3415, 39.9365)])),
        ],
        columns=["code", "name", "kind", "street_code", "lane_chief", "rectification_status",
                 "left_from", "left_to", "right_from", "right_to", "geometry"],
        crs=4326,
    )  # fmt: skip
    marks = (
        ("P1", "测试市场", "market", "110102009", "测试胡同3号", (116.333, 39.933)),
        ("P2", "测试站", "station", "110102012", "测试大街2号", (116.342, 39.934)),
        ("P3", "测试小区", "compound", "110102012", "测试巷5号", (116.340, 39.936)),
    )
    landmarks = gpd.GeoDataFrame(
        [(*m[:4], f"北京市西城区{m[4]}", shapely.Point(m[5])) for m in marks],
        columns=["code", "name", "kind", "street_code", "address", "geometry"],
        crs=4326,
    )
    district = gpd.GeoDataFrame(
        {"code": ["110102"], "name": ["西城区"]}, geometry=[grid.union_all()], crs=4326
    )
    halls = gpd.GeoDataFrame({"code": [], "name": [], "street_code": []}, geometry=[], crs=4326)
    return Geography(district, streets, comm, grid, lanes, halls, landmarks)


def test_stand_in_geography(tmp_path: Path) -> None:
    tiny = tiny_geography()
    paths = ex.generate_extracts(tiny, tmp_path, requests=1_500, cases=50, targets=15, projects=6)
    truth = pd.read_csv(paths["truth"], dtype=str, keep_default_na=False)
    assert set(truth["grid_code"]) <= set(tiny.grids["code"])
    _, rows = read_rows(paths["relocation_targets"])
    names = [r[1] for r in rows]
    assert set(ex.vocab.ZOO_MARKETS) <= set(names)
    zoo = truth[(truth["file"] == ex.TARGETS) & truth["source_id"].isin([r[0] for r in rows[:8]])]
    assert (zoo["street_code"] == "110102009").all()
    cells = tiny.grids.set_index("code").loc[truth["grid_code"]].geometry.to_numpy()
    lng, lat = truth["true_lng"].astype(float), truth["true_lat"].astype(float)
    assert shapely.contains_xy(cells, lng, lat).all()
