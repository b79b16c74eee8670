"""A Chinese street address, as a call-taker writes it, taken apart (issue 14's parser).

`parse_address("北京市西城区展览路街道百万庄大街11号院3号楼附近")` gives the parts a geocoder
matches on: the street (街道) and community named in it, the road or lane, the house number
with its 甲/乙/丙 prefix and 之一 suffix, whether it is a compound (号院), the building
(号楼 / 幢 / 栋), unit (单元) and room (室), and the qualifiers (附近, 对面, 东侧, 路口 …) —
recorded, never lost, since they say the point is near the number, not at it.

The text is normalised first: full-width characters to half-width (NFKC: ３１６ → 316),
spaces dropped; Chinese numerals become digits only where they count something (二十六号 →
26号, 三号楼 → 3号楼, 一单元 → 1单元), never inside a name (百万庄, 三里河 stay as they are).
The city and district prefixes (北京市, 西城区) are dropped; the common short forms of the
district's roads (广内 = 广安门内 …) are written out at the start of the road.

Pure: no database. Which road, community or landmark a name is, is the gazetteer's to say.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

# Prefixes a call-taker may or may not write: dropped (the district is the gazetteer's).
PREFIXES = ("北京市", "北京", "西城区", "市辖区")
# The district's common short forms, written out at the start of a road's name.
SHORT_FORMS: Mapping[str, str] = {
    "广内": "广安门内",
    "广外": "广安门外",
    "德内": "德胜门内",
    "德外": "德胜门外",
    "西内": "西直门内",
    "西外": "西直门外",
    "阜内": "阜成门内",
    "阜外": "阜成门外",
    "宣内": "宣武门内",
    "宣外": "宣武门外",
    "新外": "新街口外",
}
# Words after the number that place the point near it, not at it (longest first).
QUALIFIERS = (
    "斜对面",
    "对面",
    "附近",
    "旁边",
    "周边",
    "一带",
    "路口",
    "东侧",
    "西侧",
    "南侧",
    "北侧",
    "东口",
    "西口",
    "南口",
    "北口",
    "以东",
    "以西",
    "以南",
    "以北",
    "门口",
    "旁",
)
SUFFIXES = "甲乙丙丁"  # 甲12号: the first of the numbers added between 11 and 13

_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6}
_DIGITS |= {"七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000}
_NUMERAL = "零〇一二两三四五六七八九十百千"
# Numerals that count something: before 号 / 号院 / 号楼 / 幢 / 栋 / 单元 / 室 / 层. (之一 stays
# Chinese in the text: 12号之一2单元 must not become 12号之12单元; the house rule reads it.)
_COUNTED = re.compile(rf"([{_NUMERAL}]+)(?=号|幢|栋|单元|室|层)")
_SUB = rf"(?:\d{{1,2}}|[{_NUMERAL}]{{1,3}})"
_STREET = re.compile(r"^([\u4e00-\u9fff]{2,6}?街道)(?:办事处)?")
_COMMUNITY = re.compile(r"^([\u4e00-\u9fff]{2,10}?)(社区居委会|居委会|社区)")
_HOUSE = re.compile(
    rf"(?P<prefix>[{SUFFIXES}])?(?P<number>\d{{1,5}})(?:之(?P<sub>{_SUB}))?号"
    rf"(?:之(?P<sub2>{_SUB}))?(?P<compound>院)?"
)
_BUILDING = re.compile(r"^(?P<n>\d{1,4})(?:号楼|幢|栋|号?楼)")
_UNIT = re.compile(r"^(?P<n>\d{1,3})单元")
_ROOM = re.compile(r"^(?P<n>\d{1,5})(?:室|号)?")


@dataclass(frozen=True)
class Address:
    """The parts of an address; what the text did not say is None (or empty)."""

    text: str  # the normalised text the parts come from
    street: str | None = None  # 展览路街道
    community: str | None = None  # 百万庄 (without 社区 / 社区居委会 / 居委会)
    road: str | None = None  # 百万庄大街, 大木仓胡同: the words before the number
    number: int | None = None  # 11
    prefix: str | None = None  # 甲 (甲12号)
    sub: int | None = None  # 1 (12号之一)
    compound: bool = False  # 号院: a compound of buildings behind the number
    building: int | None = None  # 3 (3号楼 / 3幢 / 3栋)
    unit: int | None = None  # 2 (2单元)
    room: int | None = None  # 301 (301室)
    qualifiers: tuple[str, ...] = field(default=())  # 附近, 对面 …: near the number, not at it
    rest: str = ""  # what no rule read (kept, never dropped)

    @property
    def house_number(self) -> str | None:
        """The number as a plate shows it: 甲12号, 12号之一."""
        if self.number is None:
            return None
        sub = "" if self.sub is None else f"之{chinese(self.sub)}"
        return f"{self.prefix or ''}{self.number}号{sub}"


def chinese(n: int) -> str:
    """1 → 一 … 10 → 十 … 99 → 九十九 (for 之一, 之二 as plates write them)."""
    names = "零一二三四五六七八九"
    if n < 10:
        return names[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else names[tens]) + "十" + ("" if ones == 0 else names[ones])


def numeral_value(text: str) -> int:
    """A Chinese numeral's value: 二十六 → 26, 十二 → 12, 一百零五 → 105, 一〇五 → 105."""
    if all(ch in _DIGITS for ch in text):  # written digit by digit: 一〇五
        return int("".join(str(_DIGITS[ch]) for ch in text))
    total, current = 0, 0
    for ch in text:
        if ch in _DIGITS:
            current = _DIGITS[ch]
        else:
            total += (current or 1) * _UNITS[ch]
            current = 0
    return total + current


def normalize(text: str) -> str:
    """Full-width to half-width, no spaces, counted Chinese numerals as digits."""
    text = re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))
    # NFKC may write a space before a combining mark (¯ → space + U+0304): without the
    # space the mark composes, so normalise again (the text is then normal for good)
    text = unicodedata.normalize("NFKC", text)
    return _COUNTED.sub(lambda m: str(numeral_value(m.group(1))), text)


def _strip_prefixes(text: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if text.startswith(prefix):
                text, changed = text[len(prefix) :], True
    return text


_QUALIFIER_ENDS = frozenset(q[-1] for q in QUALIFIERS)


def _qualifiers(text: str) -> tuple[str, tuple[str, ...]]:
    """The qualifiers at the end of `text`, in the order written, and what is before them."""
    if not text or text[-1] not in _QUALIFIER_ENDS:  # most addresses: no qualifier at all
        return text, ()
    found: list[str] = []
    while True:
        q = next((q for q in QUALIFIERS if text.endswith(q)), None)
        if q is None:
            return text, tuple(reversed(found))
        found.append(q)
        text = text[: -len(q)]


def parse_address(text: str, short_forms: Mapping[str, str] = SHORT_FORMS) -> Address:
    """The parts of `text` (see the module doc). Never raises on a well-formed string: what
    no rule reads stays in `rest`."""
    normal = normalize(text)
    body, qualifiers = _qualifiers(_strip_prefixes(normal))
    street = community = None
    if m := _STREET.match(body):
        street, body = m.group(1), body[m.end() :]
    if m := _COMMUNITY.match(body):
        community, body = m.group(1), body[m.end() :]
    house = _HOUSE.search(body)
    if house is None:
        road = body or None
        rest = ""
        parts: dict[str, int | None] = {}
    else:
        road = body[: house.start()] or None
        after = body[house.end() :]
        parts = {}
        for name, pattern in (("building", _BUILDING), ("unit", _UNIT), ("room", _ROOM)):
            if m := pattern.match(after):
                parts[name], after = int(m.group("n")), after[m.end() :]
        rest = after
    if road:
        for short, full in short_forms.items():
            if road.startswith(short) and not road.startswith(full):
                road = full + road[len(short) :]
                break
    sub = None if house is None else house.group("sub") or house.group("sub2")
    return Address(
        text=normal,
        street=street,
        community=community,
        road=road,
        number=None if house is None else int(house.group("number")),
        prefix=None if house is None else house.group("prefix"),
        sub=None if sub is None else int(sub) if sub.isdigit() else numeral_value(sub),
        compound=house is not None and house.group("compound") is not None,
        building=parts.get("building"),
        unit=parts.get("unit"),
        room=parts.get("room"),
        qualifiers=qualifiers,
        rest=rest,
    )
