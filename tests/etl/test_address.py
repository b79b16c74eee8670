"""The address parser (etl/address.py) on the call-takers' addresses of issue 14 and the
district's other habits. Every expected part is written by hand from the address."""

from __future__ import annotations

from typing import Any

import pytest

from etl.address import chinese, normalize, numeral_value, parse_address


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        (
            "西城区展览路街道百万庄大街11号院3号楼",
            {
                "street": "展览路街道",
                "road": "百万庄大街",
                "number": 11,
                "compound": True,
                "building": 3,
            },
        ),
        (
            "北京市西城区新街口外大街甲12号",
            {"road": "新街口外大街", "number": 12, "prefix": "甲", "house_number": "甲12号"},
        ),
        ("什刹海前海西街17号", {"road": "什刹海前海西街", "number": 17}),
        ("德胜门内大街93号附近", {"road": "德胜门内大街", "number": 93, "qualifiers": ("附近",)}),
        ("西城区月坛南街二十六号", {"road": "月坛南街", "number": 26}),
        ("广内大街３１６号对面", {"road": "广安门内大街", "number": 316, "qualifiers": ("对面",)}),
        ("大木仓胡同33号3幢", {"road": "大木仓胡同", "number": 33, "building": 3}),
        (
            "府右街南社区居委会府右街12号之一2单元301室",
            {
                "community": "府右街南",
                "road": "府右街",
                "number": 12,
                "sub": 1,
                "unit": 2,
                "room": 301,
                "house_number": "12号之一",
            },
        ),
        ("府右街南社区 光明胡同5号", {"community": "府右街南", "road": "光明胡同", "number": 5}),
        (
            "三里河东路十二号东侧路口",
            {"road": "三里河东路", "number": 12, "qualifiers": ("东侧", "路口")},
        ),
        ("百万庄大街", {"road": "百万庄大街", "number": None}),
        ("广外大街一百零五号", {"road": "广安门外大街", "number": 105}),
    ],
)
def test_the_call_takers_addresses(text: str, parts: dict[str, Any]) -> None:
    address = parse_address(text)
    for name, expected in parts.items():
        assert getattr(address, name) == expected, (text, name, address)
    # Nothing read is lost: every character of the normalised text is in a part or the rest.
    assert address.rest == ""


def test_no_part_more_than_the_text_says() -> None:
    address = parse_address("德胜门内大街93号")
    assert (address.street, address.community, address.prefix, address.sub) == (
        None,
        None,
        None,
        None,
    )
    assert (address.compound, address.building, address.unit, address.room) == (
        False,
        None,
        None,
        None,
    )
    assert address.qualifiers == ()


def test_names_keep_their_numerals_and_full_width_goes() -> None:
    # 百 and 三 inside names stay; only counted numerals become digits.
    assert normalize("百万庄大街 三号楼") == "百万庄大街3号楼"
    assert normalize("三里河一单元") == "三里河1单元"
    assert normalize("ＡＢＣ　１２号") == "ABC12号"


@pytest.mark.parametrize(
    ("numeral", "value"),
    [
        ("一", 1),
        ("十", 10),
        ("十二", 12),
        ("二十", 20),
        ("二十六", 26),
        ("九十九", 99),
        ("一百", 100),
        ("一百零五", 105),
        ("一〇五", 105),
        ("两千零一十", 2010),
        ("三百二十", 320),
    ],
)
def test_chinese_numerals(numeral: str, value: int) -> None:
    assert numeral_value(numeral) == value


@pytest.mark.parametrize(("n", "text"), [(1, "一"), (10, "十"), (12, "十二"), (26, "二十六")])
def test_plates_write_the_sub_number_in_chinese(n: int, text: str) -> None:
    assert chinese(n) == text
