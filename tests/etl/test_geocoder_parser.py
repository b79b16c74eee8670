"""Property tests (hypothesis): the address parser never crashes and is idempotent on its own
output; the geocoder answers any text with at least one match of a known level, and never
gives a point without saying how it found it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from etl.address import QUALIFIERS, SHORT_FORMS, normalize, parse_address
from etl.geocoder import LEVELS, Geocoder, _Area, _Piece, _Place, _Point, name_key

# Pieces a call-taker's address is made of, so that the rules are exercised, not only noise.
PARTS = [
    "北京市", "北京", "西城区", "展览路街道", "府右街南社区", "居委会", "社区", "百万庄大街",
    "砖塔胡同", "大木仓胡同", "甲", "乙", "之一", "之十二", "号", "号院", "号楼", "幢", "栋",
    "单元", "室", "层", "十", "二十六", "一〇五", "两", "零", "〇", "０", "３１６", " ", "　",
    *QUALIFIERS, *SHORT_FORMS, "11", "3", "301", "99999", "-", "(", "）", "#",
]  # fmt: skip
addresses = st.lists(st.sampled_from(PARTS), max_size=12).map("".join)
any_text = st.one_of(addresses, st.text(max_size=40))


@settings(max_examples=400, deadline=None)
@given(any_text)
def test_the_parser_never_crashes_and_is_idempotent_on_its_output(text: str) -> None:
    parsed = parse_address(text)
    assert parsed.text == normalize(text)
    assert normalize(parsed.text) == parsed.text
    assert parse_address(parsed.text) == parsed
    if parsed.number is not None:
        assert parsed.number >= 0 and parsed.house_number is not None
    assert all(q in QUALIFIERS for q in parsed.qualifiers)


@settings(max_examples=200, deadline=None)
@given(any_text)
def test_name_keys_are_idempotent(text: str) -> None:
    assert name_key(name_key(text)) == name_key(text)


def _geocoder() -> Geocoder:
    """A small gazetteer by hand: one street, one community, one lane with 1–9 and 2–10."""
    point = _Point(116.31, 39.905, "110102001001001", "110102001001", "110102001")
    street = _Area("street", "110102001", "110102001", "展览路街道", (116.31, 39.91))
    community = _Area("community", "110102001001", "110102001", "府右街南社区", (116.31, 39.9))
    areas = {
        "展览路街道": [street],
        "展览路": [street],
        "府右街南社区": [community],
        "府右街南": [community],
    }
    piece = _Piece("砖塔胡同", "110102001", 800.0, (116.31, 39.905))
    numbers = {("砖塔胡同", n): [(0, point)] for n in range(1, 11)}
    place = _Place("西单商场", point)
    return Geocoder(
        areas=areas,
        pieces=[piece],
        roads={"砖塔胡同": [0]},
        numbers=numbers,
        plates={("砖塔胡同", 3, None, None): point},
        places={"西单商场": [place]},
    )


GEOCODER = _geocoder()


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(any_text, st.lists(st.sampled_from([*PARTS, "西单商场"]), max_size=8).map("".join))
)
def test_the_geocoder_answers_every_text(text: str) -> None:
    found = GEOCODER.geocode(text, limit=10)
    assert found and all(m.level in LEVELS for m in found)
    for m in found:
        assert 0.0 <= m.score <= 1.0
        assert m.query == text
        if m.level == "failed":
            assert m.lng is None and m.message and len(found) == 1
        if m.lng is None and m.level != "failed":
            assert m.ambiguous and m.candidates
        if m.grid_code is not None:
            assert m.level in ("address_point", "interpolated", "landmark")
    assert GEOCODER.best_many([text])[0] == found[0]
