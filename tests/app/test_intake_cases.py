"""Intake (受理): an Open311 POST makes the request and its case in 受理 in one transaction,
placed in street, community and grid; the photos of a case (type, size and count limits,
files named by SHA-256, nothing stored when refused) and who may see them.

The tiny hand-made district (streets A and B, eight square grids) in the rolled-back test
transaction; the app's clock is frozen; photos go to a temporary directory.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import random
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from app import create_app
from app.config import from_env
from etl.units import build_units
from layers.cases import Actor, transition
from tests.clock import BEIJING, FrozenClock
from tests.helpers import add_unit, add_user, grid_of, login, post_request, token

A, B = "110102001", "110102003"
POINT_A = (116.315, 39.915)  # in grid 110102001002002
POINT_B = (116.335, 39.915)  # in grid 110102003002002
CLOCK = FrozenClock(dt.datetime(2026, 11, 18, 10, 30, tzinfo=BEIJING))
MAX_BYTES = 20_000  # the app's photo limit in these tests


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    return tmp_path / "photos"


@pytest.fixture
def app(connection: sa.Connection, photo_dir: Path) -> Flask:
    settings = from_env().with_(clock=CLOCK, photo_dir=photo_dir, photo_max_bytes=MAX_BYTES)
    return create_app(
        {"TESTING": True, "DB_CONNECTION": connection, "WTF_CSRF_ENABLED": False},
        settings=settings,
    )


def image(fmt: str, size: tuple[int, int] = (16, 12), seed: int = 1, noise: bool = False) -> bytes:
    """A small image in `fmt` (Pillow's format name), different for each seed."""
    rng = random.Random(seed)
    picture = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    if noise:
        picture.putdata(
            [tuple(rng.randrange(256) for _ in range(3)) for _ in range(size[0] * size[1])]
        )
    out = io.BytesIO()
    picture.save(out, format=fmt)
    return out.getvalue()


def counts(conn: sa.Connection) -> tuple[int, int]:
    """(service requests from Open311, cases)."""
    return (
        conn.execute(
            sa.text("select count(*) from service_requests where source = 'open311'")
        ).scalar_one(),
        conn.execute(sa.text("select count(*) from cases")).scalar_one(),
    )


def files_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory.exists() else []


def photo_rows(conn: sa.Connection, case_id: int) -> list[Any]:
    return conn.execute(
        sa.text(
            "select position, file_name, content_type, bytes, sha256, uploaded_by"
            " from case_photos where case_id = :c order by position"
        ),
        {"c": case_id},
    ).all()


def upload(client: FlaskClient, case_id: int, *files: tuple[bytes, str, str]) -> Any:
    data = {"photo": [(io.BytesIO(b), name, kind) for b, name, kind in files]}
    return client.post(
        f"/api/cases/{case_id}/photos", data=data, content_type="multipart/form-data"
    )


# --- Open311 POST → the case ------------------------------------------------------------------


def test_an_open311_post_makes_its_case_in_received_placed_in_street_community_and_grid(
    app: Flask, anonymous: FlaskClient, connection: sa.Connection, district: Any
) -> None:
    key = token(connection, "district")
    for point in (POINT_A, POINT_B):
        status, body, _ = post_request(anonymous, key, point)
        assert status == 200, body
        request_id, case_id = body[0]["service_request_id"], body[0]["case_id"]
        case = (
            connection.execute(sa.text("select * from cases where id = :id"), {"id": case_id})
            .mappings()
            .one()
        )
        request = (
            connection.execute(
                sa.text("select * from service_requests where id = :id"), {"id": request_id}
            )
            .mappings()
            .one()
        )
        grid, community, street = grid_of(connection, *point)
        assert (case["kind"], case["service_request_id"]) == ("service_request", request_id)
        assert (case["state"], case["version"]) == ("received", 0)
        assert case["street_code"] == street
        assert (request["grid_code"], request["community_code"], request["street_code"]) == (
            grid,
            community,
            street,
        )
        assert case["category"] == "环境卫生"
        assert case["received_at"] == CLOCK.instant == request["received_at"]
        assert case["reported_by"] == "o311-district-None"
        assert case["main_unit"] is None and case["due_at"] is None
        history = connection.execute(
            sa.text("select count(*) from case_history where case_id = :c"), {"c": case_id}
        ).scalar_one()
        assert history == 0  # the history starts with the dispatch
        audit = (
            connection.execute(
                sa.text(
                    "select filters from audit_log where action = 'open311_post' order by id desc"
                )
            )
            .scalars()
            .first()
        )
        assert audit["case_id"] == case_id and audit["street"] == street
        # The case API shows it in 受理 to the district.
        shown = login(app.test_client(), add_user(connection, f"d-{case_id}", "district"))
        answer = shown.get(f"/api/cases/{case_id}").get_json()
        assert (answer["state"], answer["state_label"], answer["street"]) == (
            "received",
            "受理",
            street,
        )


def test_a_post_outside_the_callers_street_stores_neither_request_nor_case(
    anonymous: FlaskClient, connection: sa.Connection, district: Any
) -> None:
    for role in ("commander", "clerk", "grid_officer"):
        key = token(connection, role, A)
        before = counts(connection)
        status, body, _ = post_request(anonymous, key, POINT_B)
        assert status == 403, (role, body)
        assert "不在辖区内" in body[0]["description"]
        assert counts(connection) == before, role
        status, body, _ = post_request(anonymous, key, POINT_A)
        assert status == 200, (role, body)
        assert counts(connection) == (before[0] + 1, before[1] + 1), role


# --- photos: limits ---------------------------------------------------------------------------


@pytest.fixture
def case_a(anonymous: FlaskClient, connection: sa.Connection, district: Any) -> int:
    """A case of street A, filed by the commander of A (`o311-commander-110102001`)."""
    status, body, _ = post_request(anonymous, token(connection, "commander", A), POINT_A)
    assert status == 200, body
    return int(body[0]["case_id"])


def test_three_photos_are_kept_by_content_and_served_back(
    app: Flask, connection: sa.Connection, case_a: int, photo_dir: Path
) -> None:
    client = login(app.test_client(), add_user(connection, "ph-district", "district"))
    pictures = [image("JPEG", seed=1), image("PNG", seed=2), image("WEBP", seed=3)]
    # The client's names and types say nothing: the content does.
    response = upload(
        client,
        case_a,
        (pictures[0], "../../etc/passwd", "text/plain"),
        (pictures[1], "a.jpg", "image/jpeg"),
        (pictures[2], "b", "application/octet-stream"),
    )
    assert response.status_code == 201, response.get_json()
    rows = photo_rows(connection, case_a)
    kinds = ["image/jpeg", "image/png", "image/webp"]
    digests = [hashlib.sha256(p).hexdigest() for p in pictures]
    assert [(r.position, r.content_type, r.bytes, r.sha256, r.uploaded_by) for r in rows] == [
        (i + 1, kinds[i], len(pictures[i]), digests[i], "ph-district") for i in range(3)
    ]
    extensions = ["jpg", "png", "webp"]
    expected = sorted(
        photo_dir / d[:2] / f"{d}.{e}" for d, e in zip(digests, extensions, strict=True)
    )
    assert files_in(photo_dir) == expected
    for path in expected:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.stem
    listed = response.get_json()["photos"]
    assert [p["sha256"] for p in listed] == digests
    for photo, picture, kind in zip(listed, pictures, kinds, strict=True):
        got = client.get(photo["url"])
        assert got.status_code == 200
        assert got.data == picture
        assert got.mimetype == kind
        assert got.headers["X-Content-Type-Options"] == "nosniff"
        got.close()
    audit = connection.execute(
        sa.text(
            "select action, rows, filters from audit_log where action like 'case_photo%'"
            " order by id"
        )
    ).all()
    assert [(a.action, a.rows) for a in audit] == [("case_photo_upload", 3)] + [
        ("case_photo_get", None)
    ] * 3
    assert audit[0].filters["case_id"] == case_a


def _nothing_more(
    connection: sa.Connection, case_id: int, rows: list[Any], files: list[Path], photo_dir: Path
) -> None:
    assert photo_rows(connection, case_id) == rows
    assert files_in(photo_dir) == files


def test_bad_photos_are_4xx_in_chinese_and_store_nothing(
    app: Flask, connection: sa.Connection, case_a: int, photo_dir: Path
) -> None:
    client = login(app.test_client(), add_user(connection, "ph-bad", "district"))
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, format="GIF")
    big = image("PNG", size=(200, 200), noise=True)
    assert len(big) > MAX_BYTES
    refused = [
        # (files, status, words of the message)
        ([(b"GIF89a not really", "x.jpg", "image/jpeg")], 415, "不是 JPEG"),
        ([(b"\xff\xd8\xff\xe0 truncated jpeg", "y.jpg", "image/jpeg")], 415, "不是 JPEG"),
        ([(gif.getvalue(), "z.png", "image/png")], 415, "不是 JPEG"),
        ([(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "s.webp", "image/webp")], 415, "不是"),
        ([(big, "big.png", "image/png")], 413, "过大"),
        ([(b"", "empty.jpg", "image/jpeg")], 400, "为空"),
        ([(image("PNG", seed=i), f"{i}.png", "image/png") for i in range(4)], 400, "最多 3 张"),
        # A good photo with a bad one: neither is kept.
        (
            [(image("PNG", seed=9), "ok.png", "image/png"), (big, "big.png", "image/png")],
            413,
            "过大",
        ),
    ]
    for files, status, words in refused:
        response = upload(client, case_a, *files)
        assert response.status_code == status, (files[0][1], response.get_json())
        body = response.get_json()
        assert words in body["message"] and "Traceback" not in response.get_data(as_text=True)
        _nothing_more(connection, case_a, [], [], photo_dir)
    # Three kept; a fourth (in a later upload) is refused, and so is a photo sent twice.
    first = image("JPEG", seed=20)
    assert upload(client, case_a, (first, "1.jpg", "image/jpeg")).status_code == 201
    response = upload(client, case_a, (first, "again.jpg", "image/jpeg"))
    assert response.status_code == 409 and "已上传" in response.get_json()["message"]
    more = [(image("PNG", seed=21 + i), f"{i}.png", "image/png") for i in range(2)]
    assert upload(client, case_a, *more).status_code == 201
    rows, files = photo_rows(connection, case_a), files_in(photo_dir)
    assert len(rows) == 3 and len(files) == 3
    response = upload(client, case_a, (image("WEBP", seed=30), "4.webp", "image/webp"))
    assert response.status_code == 409
    assert "最多 3 张" in response.get_json()["message"]
    _nothing_more(connection, case_a, rows, files, photo_dir)
    # No file at all, another field, or no such case.
    assert client.post(f"/api/cases/{case_a}/photos").status_code == 400
    other_field = {"file": (io.BytesIO(first), "f.jpg", "image/jpeg")}
    wrong = client.post(
        f"/api/cases/{case_a}/photos", data=other_field, content_type="multipart/form-data"
    )
    assert wrong.status_code == 400 and "photo" in wrong.get_json()["message"]
    missing = upload(client, 999_999, (image("PNG", seed=40), "p.png", "image/png"))
    assert missing.status_code == 404
    _nothing_more(connection, case_a, rows, files, photo_dir)


# --- photos: who sees them --------------------------------------------------------------------


def test_a_photo_is_seen_where_its_case_is(
    app: Flask, anonymous: FlaskClient, connection: sa.Connection, case_a: int
) -> None:
    """The district, the commander and clerk of the case's street, a department on the case
    (main or assisting) and the grid officer who reported it see the photo (200); a
    commander, clerk or grid officer of another street, a department off the case and a
    grid officer who did not report it do not (404); analysts and planners may not (403)."""
    build_units(connection)
    on_main, on_assist, off = f"{A}-city", "district-market", "district-fire"
    transition(
        connection,
        case_a,
        "dispatch",
        0,
        Actor("setup", "clerk"),
        {"main_unit": on_main, "assisting_units": [on_assist]},
        CLOCK.instant,
    )
    # A grid officer of A reports a case of its own, with a photo.
    officer = login(app.test_client(), add_user(connection, "go-a", "grid_officer", A))
    response = officer.post(
        "/report",
        data={
            "category": "环境卫生",
            "description": "垃圾满溢",
            "long": str(POINT_A[0]),
            "lat": str(POINT_A[1]),
            "photo": (io.BytesIO(image("PNG", seed=50)), "p.png", "image/png"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()
    reported = response.get_json()["case_id"]
    district = login(app.test_client(), add_user(connection, "see-district", "district"))
    assert (
        upload(district, case_a, (image("JPEG", seed=51), "j.jpg", "image/jpeg")).status_code == 201
    )
    photos = {
        case: district.get(f"/api/cases/{case}/photos").get_json()["photos"][0]["url"]
        for case in (case_a, reported)
    }

    def user(name: str, role: str, street: str | None = None, unit: str | None = None) -> Any:
        return login(app.test_client(), add_user(connection, name, role, street, unit))

    other_officer = user("go-a2", "grid_officer", A)
    verdicts = [
        (district, {case_a: 200, reported: 200}),
        (user("see-c-a", "commander", A), {case_a: 200, reported: 200}),
        (user("see-c-b", "commander", B), {case_a: 404, reported: 404}),
        (user("see-k-a", "clerk", A), {case_a: 200, reported: 200}),
        (user("see-k-b", "clerk", B), {case_a: 404, reported: 404}),
        (user("see-u-main", "department", unit=on_main), {case_a: 200, reported: 404}),
        (
            user("see-u-assist", "department", unit=add_unit(connection, on_assist)),
            {case_a: 200, reported: 404},
        ),
        (
            user("see-u-off", "department", unit=add_unit(connection, off)),
            {case_a: 404, reported: 404},
        ),
        (officer, {case_a: 404, reported: 200}),
        (other_officer, {case_a: 404, reported: 404}),
        (user("see-g-b", "grid_officer", B), {case_a: 404, reported: 404}),
        (user("see-analyst", "analyst"), {case_a: 403, reported: 403}),
        (user("see-planner", "planner"), {case_a: 403, reported: 403}),
    ]
    for client, expected in verdicts:
        for case, status in expected.items():
            for url in (photos[case], f"/api/cases/{case}/photos"):
                got = client.get(url)
                got.close()
                assert got.status_code == status, (url, status, got.get_data(as_text=True)[:200])
                if status != 200:
                    assert got.is_json and (
                        "无权" in got.get_json()["message"] or "不存在" in got.get_json()["message"]
                    )
    # Adding photos follows the same rule: a commander of B may not add to a case of A.
    commander_b = verdicts[2][0]
    refused = upload(commander_b, case_a, (image("PNG", seed=60), "x.png", "image/png"))
    assert refused.status_code == 404
    assert len(photo_rows(connection, case_a)) == 1


def test_the_photo_settings_come_from_the_environment(tmp_path: Path) -> None:
    from app.config import ConfigError

    default = from_env({"BLOCKDATA_VAR": str(tmp_path)})
    assert default.photos == tmp_path.resolve() / "photos"
    assert default.photo_max_bytes == 5 * 1024 * 1024
    chosen = from_env({"BLOCKDATA_PHOTO_DIR": str(tmp_path / "p"), "BLOCKDATA_PHOTO_MAX_MB": "0.5"})
    assert (chosen.photos, chosen.photo_max_bytes) == ((tmp_path / "p").resolve(), 524288)
    for bad in ("0", "-1", "x", "nan"):
        with pytest.raises(ConfigError, match="BLOCKDATA_PHOTO_MAX_MB"):
            from_env({"BLOCKDATA_PHOTO_MAX_MB": bad})
