"""Conversion of Chinese coordinate systems (GCJ-02, BD-09) to WGS84.

Sources declare their coordinate system in many spellings; `normalize_crs` maps them to
one of three codes and `to_wgs84` converts whole columns at once with numpy.

The formulas are the public ones used by Amap/Tencent (GCJ-02, "Krasovsky" offset) and
Baidu (BD-09, a small rotation and shift of GCJ-02). Neither has a closed-form inverse:
the inverses here solve the forward formula by fixed-point iteration, so a round trip
returns the original point to about 1e-9 degrees instead of the decimetre-to-metre error
of the usual one-step inverses. CGCS2000 is treated as WGS84, as the design allows at city
scale.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import Protocol, cast, overload

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Kernel = Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]

WGS84 = "wgs84"
GCJ02 = "gcj02"
BD09 = "bd09"
CODES = (WGS84, GCJ02, BD09)

# Krasovsky 1940 ellipsoid, as used by the published GCJ-02 formula.
_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = math.pi * 3000.0 / 180.0

# Inverse iteration: stop a point once the forward residual is below _TOL degrees.
_TOL = 1e-9
_MAX_ROUNDS = 10


class UnknownCRS(ValueError):
    """A coordinate system name that `normalize_crs` does not recognise."""

    def __init__(self, value: object, rows: int | None = None, hint: str = "") -> None:
        self.value = value
        message = f"未知坐标系 unknown coordinate system: {value!r}"
        if rows is not None:
            message += f" ({rows} rows)"
        if hint:
            message += f"; {hint}"
        super().__init__(message)


_SPELLINGS: dict[str, tuple[str, ...]] = {
    WGS84: (
        *("wgs84", "wgs1984", "wgs", "gps", "4326", "crs84", "ogccrs84", "地球"),
        *("cgcs2000", "cgcs", "4490", "2000", "国家2000", "2000国家大地", "大地2000"),
    ),
    GCJ02: (
        *("gcj02", "gcj2", "gcj", "gcj02ll", "mars", "火星", "国测局", "国测"),
        *("高德", "amap", "autonavi", "gaode", "tencent", "腾讯", "qq", "soso"),
    ),
    BD09: ("bd09", "bd09ll", "bd", "baidu", "百度"),
}
_ALIASES = {key: code for code, keys in _SPELLINGS.items() for key in keys}

_HINTS = {
    "bd09mc": "百度墨卡托是平面坐标, 需先反投影为 BD-09 "
    "Baidu Mercator is planar; unproject it to BD-09 degrees first",
}

_NOISE = re.compile(r"[\s\-_:./\u2010-\u2015]+")
_EPSG = re.compile(r"^(?:urnogcdefcrs)?epsg(\d+)$")
_SUFFIXES = ("坐标系统", "坐标系", "坐标", "地图", "经纬度")


def _key(name: str) -> str:
    """Fold a spelling to a lookup key: NFKC, case-folded, separators and suffixes dropped."""
    key = _NOISE.sub("", unicodedata.normalize("NFKC", name).casefold())
    key = _EPSG.sub(r"\1", key)
    stripped = True
    while stripped:
        stripped = False
        for suffix in _SUFFIXES:
            if key.endswith(suffix) and key != suffix:
                key = key.removesuffix(suffix)
                stripped = True
    return key


def normalize_crs(name: object) -> str:
    """Return 'wgs84', 'gcj02' or 'bd09' for a coordinate system spelling.

    Tolerates case, whitespace, separators, full-width characters and Chinese suffixes
    such as 坐标系; an EPSG integer (4326, 4490) is accepted too. Raises UnknownCRS,
    naming the value, for anything else: empty strings, None, Baidu Mercator, ...
    """
    if isinstance(name, float) and float(name).is_integer():
        name = int(name)  # an EPSG column read as float because of blanks
    if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
        text = str(int(name))
    elif isinstance(name, str):
        text = name
    else:
        raise UnknownCRS(name)
    key = _key(text)
    try:
        return _ALIASES[key]
    except KeyError:
        raise UnknownCRS(name, hint=_HINTS.get(key, "")) from None


def _is_missing(value: object) -> bool:
    """True for None, NaN, pandas NA/NaT and blank strings."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    try:
        return bool(value != value)
    except (TypeError, ValueError):  # pandas.NA refuses bool(); so do arrays
        return True


def _code_or_none(value: object, fallback: str | None) -> str | None:
    if _is_missing(value):
        return fallback
    try:
        return normalize_crs(value)
    except UnknownCRS:
        return None


def normalize_crs_array(
    values: Iterable[object], default: str | None = None
) -> npt.NDArray[np.object_]:
    """Normalise a column of spellings to codes, row by row.

    Missing values (None, NaN, blank) become `default`, itself normalised (an unknown
    default raises UnknownCRS at once). Unknown spellings become None, and so do missing
    values when `default` is None: the caller rejects those rows with their raw value,
    e.g. ``pandas.isna(codes)``. Returns an object array of the input's shape.
    """
    fallback = None if default is None else normalize_crs(default)
    raw = np.asarray(values, dtype=object)
    flat = raw.ravel().tolist()
    try:  # a column holds few distinct spellings: normalise each once
        table = {value: _code_or_none(value, fallback) for value in set(flat)}
        codes = [table[value] for value in flat]
    except TypeError:  # unhashable values
        codes = [_code_or_none(value, fallback) for value in flat]
    out = np.empty(len(codes), dtype=object)
    out[:] = codes
    return out.reshape(raw.shape)


def _in_china(lng: FloatArray, lat: FloatArray) -> npt.NDArray[np.bool_]:
    """The usual rough bounding box inside which GCJ-02 applies; NaN is outside."""
    return (lng > 73.66) & (lng < 135.05) & (lat > 3.86) & (lat < 53.55)


def _gcj_offset(lng: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The GCJ-02 shift (dlng, dlat) in degrees at WGS84 points, ignoring the box.

    This is the published formula with sin(2πu) and sin(6πu) taken from sin(πu) and
    cos(πu), and cos(lat) from sin(lat): sine calls dominate the cost.
    """
    u = lng - 105.0
    v = lat - 35.0
    pu = u * math.pi
    pv = v * math.pi
    sin_pu = np.sin(pu)
    sin_2pu = 2.0 * sin_pu * np.cos(pu)
    sin_6pu = sin_2pu * (3.0 - 4.0 * sin_2pu * sin_2pu)
    shared = (20.0 * sin_6pu + 20.0 * sin_2pu) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * u + 3.0 * v + 0.2 * v * v + 0.1 * u * v
    dlat += 0.2 * np.sqrt(np.abs(u)) + shared
    dlat += (20.0 * np.sin(pv) + 40.0 * np.sin(pv / 3.0)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(pv / 12.0) + 320.0 * np.sin(pv / 30.0)) * 2.0 / 3.0
    dlng = 300.0 + u + 2.0 * v + 0.1 * u * u + 0.1 * u * v
    dlng += 0.1 * np.sqrt(np.abs(u)) + shared
    dlng += (20.0 * sin_pu + 40.0 * np.sin(pu / 3.0)) * 2.0 / 3.0
    dlng += (150.0 * np.sin(pu / 12.0) + 300.0 * np.sin(pu / 30.0)) * 2.0 / 3.0
    sin_lat = np.sin(lat / 180.0 * math.pi)
    sin2_lat = sin_lat * sin_lat
    magic = 1.0 - _EE * sin2_lat
    sqrt_magic = np.sqrt(magic)
    cos_lat = np.sqrt(1.0 - sin2_lat)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * math.pi)
    dlng = (dlng * 180.0) / (_A / sqrt_magic * cos_lat * math.pi)
    return dlng, dlat


def _solve(
    forward: Kernel,
    lng: FloatArray,
    lat: FloatArray,
    start: tuple[FloatArray, FloatArray],
) -> tuple[FloatArray, FloatArray]:
    """Find points p with forward(p) == (lng, lat) by fixed-point iteration.

    Each round moves the still-unconverged points by their residual; a point stops once
    its residual is below _TOL, all stop after _MAX_ROUNDS. It converges fast because the
    offsets vary slowly (derivatives under 0.01 for GCJ-02, 0.03 for BD-09 in China):
    GCJ-02 takes four rounds, BD-09 three.
    """
    x, y = start[0].copy(), start[1].copy()
    active = np.arange(x.size)
    for _ in range(_MAX_ROUNDS):
        fx, fy = forward(x[active], y[active])
        rx = fx - lng[active]
        ry = fy - lat[active]
        x[active] -= rx
        y[active] -= ry
        active = active[np.maximum(np.abs(rx), np.abs(ry)) >= _TOL]
        if active.size == 0:
            break
    return x, y


def _gcj_forward(lng: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    dlng, dlat = _gcj_offset(lng, lat)
    return lng + dlng, lat + dlat


def _wgs_to_gcj(lng: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    inside = _in_china(lng, lat)
    if inside.all():
        return _gcj_forward(lng, lat)
    out_lng, out_lat = lng.copy(), lat.copy()
    out_lng[inside], out_lat[inside] = _gcj_forward(lng[inside], lat[inside])
    return out_lng, out_lat


def _gcj_to_wgs(lng: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    inside = _in_china(lng, lat)
    if inside.all():
        return _solve(_gcj_forward, lng, lat, (lng, lat))
    out_lng, out_lat = lng.copy(), lat.copy()
    g_lng, g_lat = lng[inside], lat[inside]
    out_lng[inside], out_lat[inside] = _solve(_gcj_forward, g_lng, g_lat, (g_lng, g_lat))
    return out_lng, out_lat


def _gcj_to_bd(lng: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    with np.errstate(invalid="ignore"):  # inf in, NaN out, quietly
        z = np.hypot(lng, lat) + 0.00002 * np.sin(lat * _X_PI)
        theta = np.arctan2(lat, lng) + 0.000003 * np.cos(lng * _X_PI)
        return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def _bd_to_gcj(lng: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    # The published inverse is off by up to ~1.5e-6 degrees; it only seeds the solver.
    with np.errstate(invalid="ignore"):
        x = lng - 0.0065
        y = lat - 0.006
        z = np.hypot(x, y) - 0.00002 * np.sin(y * _X_PI)
        theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
        seed = (z * np.cos(theta), z * np.sin(theta))
    finite = np.isfinite(lng) & np.isfinite(lat)
    if finite.all():
        return _solve(_gcj_to_bd, lng, lat, seed)
    out_lng, out_lat = seed
    out_lng[finite], out_lat[finite] = _solve(
        _gcj_to_bd, lng[finite], lat[finite], (out_lng[finite], out_lat[finite])
    )
    return out_lng, out_lat


def _wgs_to_bd(lng: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    return _gcj_to_bd(*_wgs_to_gcj(lng, lat))


def _bd_to_wgs(lng: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    return _gcj_to_wgs(*_bd_to_gcj(lng, lat))


_TO_WGS84: dict[str, Kernel] = {GCJ02: _gcj_to_wgs, BD09: _bd_to_wgs}

# Points per block: the many temporaries of a block then stay in the CPU cache, which
# makes a million points about a third faster than one pass over whole arrays.
_BLOCK = 1 << 14


def _apply(kernel: Kernel, lng: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Run a 1-d kernel over blocks of points into new arrays."""
    if lng.size <= _BLOCK:
        return kernel(lng, lat)
    out_lng = np.empty_like(lng)
    out_lat = np.empty_like(lat)
    for start in range(0, lng.size, _BLOCK):
        block = slice(start, start + _BLOCK)
        out_lng[block], out_lat[block] = kernel(lng[block], lat[block])
    return out_lng, out_lat


def _as_float(lng: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    x = np.asarray(lng, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"lng and lat differ in shape: {x.shape} vs {y.shape}")
    return x, y


class Transform(Protocol):
    """A conversion: scalars in, floats out; arrays in, float64 arrays of that shape out."""

    __name__: str

    @overload
    def __call__(self, lng: float, lat: float) -> tuple[float, float]: ...
    @overload
    def __call__(self, lng: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]: ...


def _transform(kernel: Kernel, name: str, doc: str) -> Transform:
    """Wrap a 1-d kernel as public `name`, taking scalars or arrays of any shape."""

    def wrapper(lng: npt.ArrayLike, lat: npt.ArrayLike) -> object:
        x, y = _as_float(lng, lat)
        out_x, out_y = _apply(kernel, x.ravel(), y.ravel())
        if x.ndim == 0:
            return float(out_x[0]), float(out_y[0])
        return out_x.reshape(x.shape), out_y.reshape(x.shape)

    wrapper.__name__ = wrapper.__qualname__ = name
    wrapper.__doc__ = doc
    return cast(Transform, wrapper)


wgs84_to_gcj02 = _transform(
    _wgs_to_gcj,
    "wgs84_to_gcj02",
    "WGS84 → GCJ-02; points outside China are returned unchanged.",
)
gcj02_to_wgs84 = _transform(
    _gcj_to_wgs,
    "gcj02_to_wgs84",
    "GCJ-02 → WGS84, exact by iteration; points outside China are returned unchanged.",
)
gcj02_to_bd09 = _transform(
    _gcj_to_bd,
    "gcj02_to_bd09",
    "GCJ-02 → BD-09, applied everywhere as the published formula does.",
)
bd09_to_gcj02 = _transform(
    _bd_to_gcj,
    "bd09_to_gcj02",
    "BD-09 → GCJ-02, the exact inverse of gcj02_to_bd09 by iteration.",
)
wgs84_to_bd09 = _transform(_wgs_to_bd, "wgs84_to_bd09", "WGS84 → BD-09 through GCJ-02.")
bd09_to_wgs84 = _transform(
    _bd_to_wgs, "bd09_to_wgs84", "BD-09 → WGS84 through GCJ-02, exact by iteration."
)


@overload
def to_wgs84(lng: float, lat: float, crs: str) -> tuple[float, float]: ...
@overload
def to_wgs84(
    lng: npt.ArrayLike, lat: npt.ArrayLike, crs: str | Iterable[object]
) -> tuple[FloatArray, FloatArray]: ...
def to_wgs84(
    lng: npt.ArrayLike, lat: npt.ArrayLike, crs: str | Iterable[object]
) -> tuple[float, float] | tuple[FloatArray, FloatArray]:
    """Convert points to WGS84 from one coordinate system or one per row.

    `crs` is any spelling `normalize_crs` accepts, either one for all points or an
    array of the points' shape. A row with a missing or unknown system raises
    UnknownCRS naming the value: reject such rows before calling.
    """
    x, y = _as_float(lng, lat)
    if isinstance(crs, (str, int)):
        code = normalize_crs(crs)
        kernel = _TO_WGS84.get(code)
        out_x, out_y = x.ravel(), y.ravel()
        out_x, out_y = _apply(kernel, out_x, out_y) if kernel else (out_x.copy(), out_y.copy())
    else:
        raw = np.asarray(crs, dtype=object)
        codes = normalize_crs_array(raw)
        if codes.shape != x.shape:
            raise ValueError(f"crs and points differ in shape: {codes.shape} vs {x.shape}")
        codes = codes.ravel()
        unknown = np.fromiter((c is None for c in codes), dtype=bool, count=codes.size)
        if unknown.any():
            raise UnknownCRS(raw.ravel()[unknown][0], rows=int(unknown.sum()))
        out_x, out_y = x.ravel().copy(), y.ravel().copy()
        for code, kernel in _TO_WGS84.items():
            rows = codes == code
            if rows.any():
                out_x[rows], out_y[rows] = _apply(kernel, out_x[rows], out_y[rows])
    if x.ndim == 0:
        return float(out_x[0]), float(out_y[0])
    return out_x.reshape(x.shape), out_y.reshape(x.shape)
