"""Case photos (案件照片): `POST /api/cases/<id>/photos`, `GET /api/cases/<id>/photos` and
`GET /api/cases/<id>/photos/<photo_id>`.

At most 3 photos per case (`layers.cases.tables.MAX_PHOTOS`), each JPEG, PNG or WebP as its
content says (Pillow opens and verifies it; the client's file name, extension and content
type are ignored) and at most `Settings.photo_max_bytes` (BLOCKDATA_PHOTO_MAX_MB, 5 MB by
default). A photo is kept on disk under `Settings.photos` (BLOCKDATA_PHOTO_DIR, default
var/photos/) as `<sha256[:2]>/<sha256>.<ext>`, never under the client's name, and as a row
of `case_photos` (migration 0019) in the request's transaction, as the reader in the
caller's zone: row-level security lets a caller see and add photos where it sees the case
(a commander: its street's; a department: its unit's cases). A grid officer sees and adds
photos of the cases it reported only.

Every file of a request is checked before anything is written; the rows are inserted, then
the files written (atomically: a temporary file renamed into place). A refused upload stores
nothing, on disk or in the table. If the transaction fails after the files were written, the
files stay unreferenced (content-addressed: a later upload of the same photo reuses them).
The case row is locked while photos are added, and (case, position) is unique: two uploads
at once never make a fourth photo.

Who may: a role that works cases (`CASES`) or files them (`INTAKE`): the district,
commanders, clerks, departments, grid officers; not analysts nor planners (403).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify, request, send_file
from PIL import Image, UnidentifiedImageError
from werkzeug.datastructures import FileStorage

from app import auth, db
from app.capabilities import INTAKE, logged_in, may
from app.config import Settings
from app.errors import ApiError, BadRequest, Forbidden, NotFound
from app.openapi import JSON, contribute, errors, operation, path_param
from layers.cases.tables import MAX_PHOTOS, case_photos, cases
from layers.queries.access import CASES
from layers.queries.params import check_params

log = logging.getLogger(__name__)
bp = Blueprint("photos", __name__, url_prefix="/api")

FIELD = "photo"  # the multipart field (repeated for several photos)
MAX_ID = 2**63 - 1
ID = f"int(max={MAX_ID})"
# Pillow's format → (content type, file extension)
FORMATS = {
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
}
GRID_OFFICER = "grid_officer"


class Refused(ApiError):
    """A photo refused: 409 (the case is full, or has it), 413 (too large), 415 (not an image)."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message, **details)
        self.status, self.code = status, code


@dataclass(frozen=True)
class Photo:
    """A checked upload: its bytes, what they are, their SHA-256."""

    data: bytes
    content_type: str
    extension: str
    sha256: str

    @property
    def file_name(self) -> str:
        return f"{self.sha256[:2]}/{self.sha256}.{self.extension}"


def _settings() -> Settings:
    settings: Settings = current_app.config["BLOCKDATA_SETTINGS"]
    return settings


def check(data: bytes, max_bytes: int, index: int = 1) -> Photo:
    """`data` as a photo: 413 over `max_bytes`, 415 unless Pillow reads it as a JPEG, PNG or
    WebP image (whatever the client called it)."""
    if len(data) > max_bytes:
        raise Refused(
            413,
            "payload_too_large",
            f"第 {index} 张照片过大：{len(data)} 字节，上限 {max_bytes} 字节 "
            f"(photo {index} is too large: {len(data)} bytes, at most {max_bytes})",
            field=FIELD,
        )
    if not data:
        raise BadRequest(f"第 {index} 张照片为空 (photo {index} is empty)", field=FIELD)
    kind = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                kind = image.format
                image.verify()
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ):
        kind = None
    if kind not in FORMATS:
        raise Refused(
            415,
            "unsupported_media_type",
            f"第 {index} 张照片不是 JPEG、PNG 或 WebP 图片 "
            f"(photo {index} is not a JPEG, PNG or WebP image)",
            field=FIELD,
        )
    content_type, extension = FORMATS[kind]
    return Photo(data, content_type, extension, hashlib.sha256(data).hexdigest())


def read_uploads(files: Sequence[FileStorage], max_bytes: int) -> list[Photo]:
    """The uploaded files, each checked (read at most `max_bytes` + 1 bytes of each)."""
    if len(files) > MAX_PHOTOS:
        raise BadRequest(
            f"照片最多 {MAX_PHOTOS} 张，收到 {len(files)} 张 "
            f"(at most {MAX_PHOTOS} photos, got {len(files)})",
            field=FIELD,
        )
    photos = [check(f.stream.read(max_bytes + 1), max_bytes, i) for i, f in enumerate(files, 1)]
    if len({p.sha256 for p in photos}) != len(photos):
        raise BadRequest("同一张照片上传了两次 (the same photo twice)", field=FIELD)
    return photos


def _write(directory: Path, photo: Photo) -> None:
    """Keep the photo's file (atomically; an existing one of the same content is kept)."""
    path = directory / photo.file_name
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(photo.data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def add(
    conn: sa.Connection,
    case_id: int,
    photos: Sequence[Photo],
    *,
    user: str | None,
    now: Any,
    directory: Path,
) -> list[int]:
    """Add `photos` to case `case_id` (visible to the caller: else 404), after those it has;
    409 past MAX_PHOTOS or for a photo it already has. Their ids."""
    locked = conn.execute(
        sa.select(cases.c.id).where(cases.c.id == case_id).with_for_update()
    ).scalar()
    if locked is None:
        raise NotFound(f"案件不存在 no case {case_id}", case_id=case_id)
    p = case_photos.c
    have = (
        conn.execute(sa.select(p.sha256).where(p.case_id == case_id).order_by(p.position))
        .scalars()
        .all()
    )
    if len(have) + len(photos) > MAX_PHOTOS:
        raise Refused(
            409,
            "conflict",
            f"每个案件最多 {MAX_PHOTOS} 张照片，已有 {len(have)} 张 "
            f"(at most {MAX_PHOTOS} photos per case; it has {len(have)})",
            case_id=case_id,
        )
    if any(photo.sha256 in have for photo in photos):
        raise Refused(
            409, "conflict", "该照片已上传 (the case already has this photo)", case_id=case_id
        )
    ids = [
        int(
            conn.execute(
                sa.insert(case_photos)
                .values(
                    case_id=case_id,
                    position=len(have) + i,
                    file_name=photo.file_name,
                    content_type=photo.content_type,
                    bytes=len(photo.data),
                    sha256=photo.sha256,
                    uploaded_by=user,
                    uploaded_at=now,
                )
                .returning(p.id)
            ).scalar_one()
        )
        for i, photo in enumerate(photos, 1)
    ]
    for photo in photos:
        _write(directory, photo)
    return ids


def listed(conn: sa.Connection, case_id: int) -> list[dict[str, Any]]:
    """The photos of a case the caller sees, in their order."""
    p = case_photos.c
    rows = conn.execute(
        sa.select(p.id, p.position, p.content_type, p.bytes, p.sha256, p.uploaded_by, p.uploaded_at)
        .where(p.case_id == case_id)
        .order_by(p.position)
    ).mappings()
    return [
        {
            "id": r["id"],
            "position": r["position"],
            "content_type": r["content_type"],
            "bytes": r["bytes"],
            "sha256": r["sha256"],
            "uploaded_by": r["uploaded_by"],
            "uploaded_at": r["uploaded_at"].isoformat(),
            "url": f"/api/cases/{case_id}/photos/{r['id']}",
        }
        for r in rows
    ]


# --- the views --------------------------------------------------------------------------------


@bp.before_request
def _no_params() -> None:
    """400 for any query parameter: these endpoints take none (as /api's own rule)."""
    check_params(request.args, ())


def _caller() -> auth.Principal:
    """The caller, when its role works or files cases; 403 otherwise."""
    principal = auth.current()
    if principal is None or not (may(principal.role, CASES) or may(principal.role, INTAKE)):
        role = principal.role if principal else None
        raise Forbidden(f"无权查看或上传案件照片 role {role!r} may not see or add case photos")
    return principal


def visible_case(case_id: int, principal: auth.Principal) -> None:
    """404 unless the caller sees the case: row-level security (zone, unit) and, for a grid
    officer, only the cases it reported."""
    c = cases.c
    query = sa.select(c.id).where(c.id == case_id)
    if principal.role == GRID_OFFICER:
        query = query.where(c.reported_by == principal.name)
    if db.connection().execute(query).scalar() is None:
        raise NotFound(f"案件不存在 no case {case_id}", case_id=case_id)


# One rule for both methods: two rules on one path with a bounded converter answer 405,
# not 404, for an id out of range (werkzeug's matching).
@bp.route(f"/cases/<{ID}:case_id>/photos", methods=["GET", "POST"])
@logged_in
def case_photos_view(case_id: int) -> Response | tuple[Response, int]:
    """GET: the case's photos (id, type, size, who, when, url). POST: add photos (multipart,
    field `photo`, up to 3 per case): 201 and the case's photos."""
    principal = _caller()
    visible_case(case_id, principal)
    if request.method == "GET":
        return jsonify({"case_id": case_id, "photos": listed(db.connection(), case_id)})
    files = request.files.getlist(FIELD)
    if not files or set(request.files) - {FIELD}:
        raise BadRequest(
            f"请以 multipart 字段 {FIELD} 上传照片 (send the photos as multipart field {FIELD!r})",
            field=FIELD,
        )
    settings = _settings()
    photos = read_uploads(files, settings.photo_max_bytes)
    ids = add(
        db.connection(),
        case_id,
        photos,
        user=principal.name,
        now=settings.now(),
        directory=settings.photos,
    )
    auth.audit("case_photo_upload", rows=len(ids), case_id=case_id, photo_ids=ids)
    return jsonify({"case_id": case_id, "photos": listed(db.connection(), case_id)}), 201


@bp.get(f"/cases/<{ID}:case_id>/photos/<{ID}:photo_id>")
@logged_in
def photo(case_id: int, photo_id: int) -> Response:
    """One photo's bytes, with its checked content type (nosniff)."""
    principal = _caller()
    visible_case(case_id, principal)
    p = case_photos.c
    row = (
        db.connection()
        .execute(
            sa.select(p.file_name, p.content_type, p.position).where(
                p.id == photo_id, p.case_id == case_id
            )
        )
        .mappings()
        .one_or_none()
    )
    missing = NotFound(f"照片不存在 no photo {photo_id} of case {case_id}", photo_id=photo_id)
    if row is None:
        raise missing
    path = _settings().photos / row["file_name"]
    if not path.is_file():
        log.warning("case photo %s: file %s is missing", photo_id, path)
        raise missing
    auth.audit("case_photo_get", case_id=case_id, photo_id=photo_id)
    extension = row["file_name"].rsplit(".", 1)[-1]
    response = send_file(
        path,
        mimetype=row["content_type"],
        download_name=f"case-{case_id}-{row['position']}.{extension}",
        max_age=0,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


# --- the OpenAPI part -------------------------------------------------------------------------

PHOTO_SCHEMA = {
    "type": "object",
    "required": ["id", "position", "content_type", "bytes", "sha256", "url"],
    "properties": {
        "id": {"type": "integer"},
        "position": {"type": "integer", "minimum": 1, "maximum": MAX_PHOTOS},
        "content_type": {"type": "string", "enum": [t for t, _ in FORMATS.values()]},
        "bytes": {"type": "integer", "minimum": 1},
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "uploaded_by": {"type": "string", "nullable": True},
        "uploaded_at": {"type": "string", "format": "date-time"},
        "url": {"type": "string"},
    },
}
PHOTOS_SCHEMA = {
    "type": "object",
    "required": ["case_id", "photos"],
    "properties": {
        "case_id": {"type": "integer"},
        "photos": {"type": "array", "maxItems": MAX_PHOTOS, "items": PHOTO_SCHEMA},
    },
}
PHOTO_FIELD = {
    "type": "array",
    "maxItems": MAX_PHOTOS,
    "items": {"type": "string", "format": "binary"},
    "description": "JPEG / PNG / WebP，每张不超过配置上限 (BLOCKDATA_PHOTO_MAX_MB)",
}
UPLOAD_BODY = {"type": "object", "required": [FIELD], "properties": {FIELD: PHOTO_FIELD}}


def more_errors(*codes: int) -> dict[str, Any]:
    text = {
        409: "照片已满或重复 at most 3 photos, or a photo twice",
        415: "不是 JPEG、PNG 或 WebP 图片 not a JPEG, PNG or WebP image",
    }
    ref = {"$ref": "#/components/schemas/Error"}
    out = errors(*(c for c in codes if c not in text))
    out.update(
        {
            str(c): {"description": text[c], "content": {JSON: {"schema": ref}}}
            for c in codes
            if c in text
        }
    )
    return out


@contribute
def _paths() -> dict[str, dict[str, Any]]:
    number = {"type": "integer", "minimum": 0, "maximum": MAX_ID}
    case_id = path_param("case_id", "案件编号 case id", number)
    photo_id = path_param("photo_id", "照片编号 photo id", number)
    answer = {
        "description": "案件的照片 the case's photos",
        "content": {JSON: {"schema": PHOTOS_SCHEMA}},
    }
    images = {t: {"schema": {"type": "string", "format": "binary"}} for t, _ in FORMATS.values()}
    return {
        "/api/cases/{case_id}/photos": {
            "get": operation(
                "案件照片列表 the photos of a case", "api", [case_id], {"200": answer}
            ),
            "post": operation(
                "上传案件照片（最多 3 张，JPEG/PNG/WebP）add photos to a case",
                "api",
                [case_id],
                {"201": answer, **more_errors(409, 413, 415)},
                requestBody={
                    "required": True,
                    "content": {"multipart/form-data": {"schema": UPLOAD_BODY}},
                },
            ),
        },
        "/api/cases/{case_id}/photos/{photo_id}": {
            "get": operation(
                "案件照片 one photo (its checked content type, nosniff)",
                "api",
                [case_id, photo_id],
                {"200": {"description": "照片 the photo", "content": images}},
            )
        },
    }
