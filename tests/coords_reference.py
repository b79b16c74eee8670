"""Independent reference: the widely copied scalar GCJ-02 / BD-09 code, written out with
the math module only, so that the vectorised etl.coords is checked against the formula
itself rather than against its own rearrangement."""

import math

REF_A = 6378245.0
REF_EE = 0.00669342162296594323
REF_X_PI = math.pi * 3000.0 / 180.0

TIANANMEN_WGS84 = (116.3912, 39.9067)


def ref_out_of_china(lng: float, lat: float) -> bool:
    return not (73.66 < lng < 135.05 and 3.86 < lat < 53.55)


def ref_transform_lat(x: float, y: float) -> float:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return ret


def ref_transform_lng(x: float, y: float) -> float:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return ret


def ref_wgs84_to_gcj02(lng: float, lat: float) -> tuple[float, float]:
    if ref_out_of_china(lng, lat):
        return lng, lat
    dlat = ref_transform_lat(lng - 105.0, lat - 35.0)
    dlng = ref_transform_lng(lng - 105.0, lat - 35.0)
    radlat = lat / 180.0 * math.pi
    magic = math.sin(radlat)
    magic = 1 - REF_EE * magic * magic
    sqrtmagic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((REF_A * (1 - REF_EE)) / (magic * sqrtmagic) * math.pi)
    dlng = (dlng * 180.0) / (REF_A / sqrtmagic * math.cos(radlat) * math.pi)
    return lng + dlng, lat + dlat


def ref_gcj02_to_wgs84_one_step(lng: float, lat: float) -> tuple[float, float]:
    """The common approximate inverse, to show that the module does better."""
    if ref_out_of_china(lng, lat):
        return lng, lat
    mg_lng, mg_lat = ref_wgs84_to_gcj02(lng, lat)
    return lng * 2 - mg_lng, lat * 2 - mg_lat


def ref_gcj02_to_bd09(lng: float, lat: float) -> tuple[float, float]:
    z = math.sqrt(lng * lng + lat * lat) + 0.00002 * math.sin(lat * REF_X_PI)
    theta = math.atan2(lat, lng) + 0.000003 * math.cos(lng * REF_X_PI)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def ref_wgs84_to_bd09(lng: float, lat: float) -> tuple[float, float]:
    return ref_gcj02_to_bd09(*ref_wgs84_to_gcj02(lng, lat))
