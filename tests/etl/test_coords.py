"""Tests for etl.coords against a plain scalar transcription of the public formulas."""

import math

import numpy as np
import pytest

from etl.coords import (
    UnknownCRS,
    bd09_to_gcj02,
    bd09_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    normalize_crs,
    normalize_crs_array,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from tests.coords_reference import (
    TIANANMEN_WGS84,
    ref_gcj02_to_bd09,
    ref_gcj02_to_wgs84_one_step,
    ref_wgs84_to_bd09,
    ref_wgs84_to_gcj02,
)


def haversine_m(lng1, lat1, lng2, lat2):
    lng1, lat1, lng2, lat2 = map(np.radians, (lng1, lat1, lng2, lat2))
    h = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lng2 - lng1) / 2) ** 2
    )
    return 2 * 6371008.8 * np.arcsin(np.sqrt(h))


def apply_ref(func, lng, lat):
    pairs = [func(float(x), float(y)) for x, y in zip(lng, lat, strict=True)]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


@pytest.fixture
def beijing():
    """10,000 random WGS84 points over Beijing municipality."""
    rng = np.random.default_rng(20240601)
    return rng.uniform(115.4, 117.5, 10_000), rng.uniform(39.4, 41.1, 10_000)


@pytest.fixture
def china():
    """2,000 random WGS84 points over the whole GCJ-02 box."""
    rng = np.random.default_rng(7)
    return rng.uniform(73.7, 135.0, 2_000), rng.uniform(3.9, 53.5, 2_000)


def test_tiananmen_matches_reference_and_known_shift():
    lng, lat = wgs84_to_gcj02(*TIANANMEN_WGS84)
    ref_lng, ref_lat = ref_wgs84_to_gcj02(*TIANANMEN_WGS84)
    assert lng == pytest.approx(ref_lng, abs=1e-12)
    assert lat == pytest.approx(ref_lat, abs=1e-12)
    assert 0.005 < lng - TIANANMEN_WGS84[0] < 0.007
    assert 0.001 < lat - TIANANMEN_WGS84[1] < 0.0018


def test_tiananmen_bd09_matches_reference():
    lng, lat = wgs84_to_bd09(*TIANANMEN_WGS84)
    ref_lng, ref_lat = ref_wgs84_to_bd09(*TIANANMEN_WGS84)
    assert (lng, lat) == pytest.approx((ref_lng, ref_lat), abs=1e-12)
    assert 0.011 < lng - TIANANMEN_WGS84[0] < 0.014


def test_forward_conversions_match_reference_across_china(china):
    lng, lat = china
    for func, ref in [
        (wgs84_to_gcj02, ref_wgs84_to_gcj02),
        (gcj02_to_bd09, ref_gcj02_to_bd09),
        (wgs84_to_bd09, ref_wgs84_to_bd09),
    ]:
        out_lng, out_lat = func(lng, lat)
        ref_lng, ref_lat = apply_ref(ref, lng, lat)
        np.testing.assert_allclose(out_lng, ref_lng, rtol=0, atol=1e-11, err_msg=func.__name__)
        np.testing.assert_allclose(out_lat, ref_lat, rtol=0, atol=1e-11, err_msg=func.__name__)


def test_gcj02_inverse_solves_the_reference_forward(china):
    gcj_lng, gcj_lat = china
    wgs_lng, wgs_lat = gcj02_to_wgs84(gcj_lng, gcj_lat)
    back_lng, back_lat = apply_ref(ref_wgs84_to_gcj02, wgs_lng, wgs_lat)
    assert np.abs(back_lng - gcj_lng).max() < 1e-9
    assert np.abs(back_lat - gcj_lat).max() < 1e-9
    # The usual one-step inverse misses by far more: this test tells them apart.
    one_lng, _ = apply_ref(ref_gcj02_to_wgs84_one_step, gcj_lng, gcj_lat)
    assert np.abs(one_lng - wgs_lng).max() > 1e-6


def test_bd09_inverse_solves_the_reference_forward(beijing):
    bd_lng, bd_lat = beijing
    gcj_lng, gcj_lat = bd09_to_gcj02(bd_lng, bd_lat)
    back_lng, back_lat = apply_ref(ref_gcj02_to_bd09, gcj_lng, gcj_lat)
    assert np.abs(back_lng - bd_lng).max() < 1e-9
    assert np.abs(back_lat - bd_lat).max() < 1e-9


@pytest.mark.parametrize(
    ("forward", "inverse"),
    [(wgs84_to_gcj02, gcj02_to_wgs84), (wgs84_to_bd09, bd09_to_wgs84)],
)
def test_round_trip_within_1e7_degrees(beijing, forward, inverse):
    lng, lat = beijing
    back_lng, back_lat = inverse(*forward(lng, lat))
    assert np.abs(back_lng - lng).max() < 1e-7
    assert np.abs(back_lat - lat).max() < 1e-7


def test_round_trip_across_china(china):
    lng, lat = china
    back_lng, back_lat = bd09_to_wgs84(*wgs84_to_bd09(lng, lat))
    assert np.abs(back_lng - lng).max() < 1e-7
    assert np.abs(back_lat - lat).max() < 1e-7


def test_shift_in_beijing_is_300_to_700_m_for_gcj_and_larger_for_bd(beijing):
    lng, lat = beijing
    gcj_m = haversine_m(lng, lat, *wgs84_to_gcj02(lng, lat))
    bd_m = haversine_m(lng, lat, *wgs84_to_bd09(lng, lat))
    assert gcj_m.min() > 300
    assert gcj_m.max() < 700
    assert (bd_m > gcj_m).all()
    assert bd_m.min() > 700


def test_out_of_china_is_unchanged_by_the_gcj_step():
    lng = np.array([-0.1276, 139.6917, 151.2093, -74.006, 100.0])
    lat = np.array([51.5072, 35.6895, -33.8688, 40.7128, 60.0])
    for func in (wgs84_to_gcj02, gcj02_to_wgs84):
        out_lng, out_lat = func(lng, lat)
        np.testing.assert_array_equal(out_lng, lng)
        np.testing.assert_array_equal(out_lat, lat)
    out_lng, out_lat = to_wgs84(lng, lat, "gcj02")
    np.testing.assert_array_equal(out_lng, lng)
    np.testing.assert_array_equal(out_lat, lat)


def test_mixed_inside_and_outside_china():
    lng = np.array([-0.1276, TIANANMEN_WGS84[0]])
    lat = np.array([51.5072, TIANANMEN_WGS84[1]])
    out_lng, out_lat = wgs84_to_gcj02(lng, lat)
    assert (out_lng[0], out_lat[0]) == (lng[0], lat[0])
    assert (out_lng[1], out_lat[1]) == pytest.approx(ref_wgs84_to_gcj02(*TIANANMEN_WGS84))


def test_scalars_in_floats_out():
    lng, lat = gcj02_to_wgs84(*wgs84_to_gcj02(*TIANANMEN_WGS84))
    assert type(lng) is float
    assert type(lat) is float
    assert (lng, lat) == pytest.approx(TIANANMEN_WGS84, abs=1e-9)
    w_lng, w_lat = to_wgs84(*ref_wgs84_to_bd09(*TIANANMEN_WGS84), "百度")
    assert type(w_lng) is float
    assert (w_lng, w_lat) == pytest.approx(TIANANMEN_WGS84, abs=1e-9)
    assert to_wgs84(116.4, 39.9, "WGS84") == (116.4, 39.9)


def test_array_shape_kept_and_input_not_modified():
    lng = np.full((2, 3), TIANANMEN_WGS84[0])
    lat = np.full((2, 3), TIANANMEN_WGS84[1])
    out_lng, out_lat = to_wgs84(lng, lat, "gcj02")
    assert out_lng.shape == (2, 3)
    assert out_lat.dtype == np.float64
    assert (lng == TIANANMEN_WGS84[0]).all()
    assert (out_lng != lng).all()


def test_lists_and_integer_input_accepted():
    out_lng, _ = wgs84_to_gcj02([116, 117], [40, 40])
    assert out_lng.dtype == np.float64
    assert out_lng[0] == pytest.approx(ref_wgs84_to_gcj02(116.0, 40.0)[0], abs=1e-12)


def test_mismatched_shapes_rejected():
    with pytest.raises(ValueError, match="shape"):
        wgs84_to_gcj02(np.zeros(3), np.zeros(2))


def test_per_row_crs_array(beijing):
    lng, lat = beijing[0][:9], beijing[1][:9]
    crs = np.array(
        ["WGS84", "gcj-02", "百度", "EPSG:4326", "高德", "bd09ll", "GPS", "tencent", "BD"],
        dtype=object,
    )
    codes = normalize_crs_array(crs)
    src_lng, src_lat = lng.copy(), lat.copy()
    for i, code in enumerate(codes):
        if code == "gcj02":
            src_lng[i], src_lat[i] = ref_wgs84_to_gcj02(lng[i], lat[i])
        elif code == "bd09":
            src_lng[i], src_lat[i] = ref_wgs84_to_bd09(lng[i], lat[i])
    out_lng, out_lat = to_wgs84(src_lng, src_lat, crs)
    np.testing.assert_allclose(out_lng, lng, rtol=0, atol=1e-9)
    np.testing.assert_allclose(out_lat, lat, rtol=0, atol=1e-9)
    # Each row is converted from its own system: the source differs from the result.
    assert (src_lng[codes != "wgs84"] != out_lng[codes != "wgs84"]).all()
    assert (src_lng[codes == "wgs84"] == out_lng[codes == "wgs84"]).all()


def test_per_row_crs_with_unknown_or_missing_row_raises():
    lng = np.array([116.4, 116.5, 116.6])
    lat = np.array([39.9, 39.9, 39.9])
    with pytest.raises(UnknownCRS, match="'XYZ'") as excinfo:
        to_wgs84(lng, lat, ["gcj02", "XYZ", "XYZ"])
    assert "2 rows" in str(excinfo.value)
    with pytest.raises(UnknownCRS, match="None"):
        to_wgs84(lng, lat, ["gcj02", None, "bd09"])
    with pytest.raises(ValueError, match="shape"):
        to_wgs84(lng, lat, ["gcj02", "bd09"])


SPELLINGS = {
    "wgs84": [
        "WGS84", "wgs-84", "WGS 84", "EPSG:4326", "4326", "GPS", "CGCS2000", "cgcs2000",
        "EPSG:4490", "wgs_84", "  WGS84\t", "ＷＧＳ８４", "WGS84坐标系", "epsg:４３２６",
        "urn:ogc:def:crs:EPSG::4326", "GPS坐标",
    ],
    "gcj02": [
        "GCJ02", "gcj-02", "GCJ", "火星坐标", "国测局", "高德", "amap", "tencent", "腾讯",
        "ＧＣＪ－０２", "火星坐标系", "国测局坐标", "高德地图", "Tencent ", "AMap",
    ],
    "bd09": [
        "BD09", "bd-09", "bd09ll", "BD", "百度", "baidu", "Baidu", "百度坐标", "百度地图",
        "ＢＤ０９", "bd 09", "BD-09LL",
    ],
}  # fmt: skip


@pytest.mark.parametrize(
    ("name", "code"), [(name, code) for code, names in SPELLINGS.items() for name in names]
)
def test_normalize_crs_spellings(name, code):
    assert normalize_crs(name) == code


def test_normalize_crs_accepts_epsg_integers():
    assert normalize_crs(4326) == "wgs84"
    assert normalize_crs(np.int64(4490)) == "wgs84"


@pytest.mark.parametrize("bad", ["XYZ", "", "   ", "EPSG:3857", "gcj03", "百度墨卡托", "bd09mc"])
def test_normalize_crs_unknown_names_the_value(bad):
    with pytest.raises(UnknownCRS) as excinfo:
        normalize_crs(bad)
    message = str(excinfo.value)
    assert "未知坐标系" in message
    assert "unknown coordinate system" in message
    assert repr(bad) in message
    assert isinstance(excinfo.value, ValueError)
    assert excinfo.value.value == bad


def test_unknown_crs_message_exact():
    with pytest.raises(UnknownCRS) as excinfo:
        normalize_crs("XYZ")
    assert str(excinfo.value) == "未知坐标系 unknown coordinate system: 'XYZ'"


def test_baidu_mercator_gets_a_hint():
    with pytest.raises(UnknownCRS, match="Baidu Mercator"):
        normalize_crs("BD09MC")


def test_normalize_crs_rejects_non_strings():
    with pytest.raises(UnknownCRS):
        normalize_crs(None)
    with pytest.raises(UnknownCRS):
        normalize_crs(True)


def test_normalize_crs_array_defaults_and_unknowns():
    values = ["WGS84", None, "", "XYZ", float("nan"), "高德", " ", "百度", 4326.0]
    codes = normalize_crs_array(values, default="GCJ-02")
    assert codes.dtype == object
    assert codes.tolist() == [
        "wgs84", "gcj02", "gcj02", None, "gcj02", "gcj02", "gcj02", "bd09", "wgs84",
    ]  # fmt: skip
    codes = normalize_crs_array(values)
    assert codes.tolist() == ["wgs84", None, None, None, None, "gcj02", None, "bd09", "wgs84"]


def test_normalize_crs_array_pandas_missing_values():
    import pandas as pd  # a dependency: imported, never skipped

    series = pd.Series(["bd09", pd.NA, None, "amap"], dtype="object")
    assert normalize_crs_array(series, default="wgs84").tolist() == [
        "bd09", "wgs84", "wgs84", "gcj02",
    ]  # fmt: skip


def test_normalize_crs_array_unknown_default_raises():
    with pytest.raises(UnknownCRS, match="'mercator'"):
        normalize_crs_array(["wgs84"], default="mercator")


@pytest.mark.parametrize(
    "func",
    [wgs84_to_gcj02, gcj02_to_wgs84, gcj02_to_bd09, bd09_to_gcj02, wgs84_to_bd09, bd09_to_wgs84],
)
def test_nan_passes_through(func):
    lng = np.array([np.nan, 116.4, np.nan, 116.4])
    lat = np.array([39.9, np.nan, np.nan, 39.9])
    out_lng, out_lat = func(lng, lat)
    assert np.isnan(out_lng[[0, 2]]).all()
    assert np.isnan(out_lat[[1, 2]]).all()
    assert np.isfinite([out_lng[3], out_lat[3]]).all()
    expected_lng, expected_lat = func(116.4, 39.9)
    assert (out_lng[3], out_lat[3]) == (expected_lng, expected_lat)


@pytest.mark.parametrize(
    "func",
    [wgs84_to_gcj02, gcj02_to_wgs84, gcj02_to_bd09, bd09_to_gcj02, wgs84_to_bd09, bd09_to_wgs84],
)
def test_infinite_input_gives_non_finite_output_without_warning(func):
    out_lng, _ = func(np.array([np.inf, -np.inf, 116.4]), np.array([39.9, 39.9, 39.9]))
    assert not np.isfinite(out_lng[:2]).any()
    assert np.isfinite(out_lng[2])


@pytest.mark.parametrize("crs", ["wgs84", "gcj02", "bd09"])
def test_nan_and_inf_in_to_wgs84_do_not_warn(crs):
    lng = np.array([np.nan, np.inf, 116.4])
    lat = np.array([np.nan, 39.9, 39.9])
    out_lng, out_lat = to_wgs84(lng, lat, crs)
    assert np.isnan(out_lng[0])
    assert np.isnan(out_lat[0])
    assert not np.isfinite(out_lng[1])
    assert np.isfinite(out_lng[2])
    nan_lng, nan_lat = to_wgs84(float("nan"), float("nan"), crs)
    assert math.isnan(nan_lng)
    assert math.isnan(nan_lat)


def test_large_arrays_use_blocks_consistently():
    rng = np.random.default_rng(3)
    lng = rng.uniform(116.0, 116.8, 40_000)
    lat = rng.uniform(39.6, 40.2, 40_000)
    whole_lng, whole_lat = gcj02_to_wgs84(lng, lat)
    part_lng, part_lat = gcj02_to_wgs84(lng[-100:], lat[-100:])
    np.testing.assert_array_equal(whole_lng[-100:], part_lng)
    np.testing.assert_array_equal(whole_lat[-100:], part_lat)


def test_empty_input():
    empty = np.array([], dtype=np.float64)
    for crs in ("gcj02", "bd09", np.array([], dtype=object)):
        out_lng, out_lat = to_wgs84(empty, empty, crs)
        assert out_lng.shape == (0,)
        assert out_lat.shape == (0,)
