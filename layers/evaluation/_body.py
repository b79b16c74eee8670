"""A stand-in for evalcore's layers/evaluation/scheme.py until it lands: the latest scheme's
body as stored, and an item's owner, max, rule and aspect. Same names and signatures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from layers.evaluation.tables import evaluation_schemes


class SchemeError(ValueError):
    pass


@dataclass(frozen=True)
class Item:
    code: str
    name: str
    aspect: str
    owner: str
    max: float
    rule: str
    each: float | None = None
    cap: float | None = None
    source: str | None = None


@dataclass(frozen=True)
class Scheme:
    code: str
    version: int
    name: str
    body: dict[str, Any]


def load_scheme(conn: sa.Connection, code: str | None = None, version: int | None = None) -> Scheme:
    s = evaluation_schemes.c
    query = sa.select(s.code, s.version, s.name, s.body).order_by(s.id.desc()).limit(1)
    if code is not None:
        query = query.where(s.code == code)
    if version is not None:
        query = query.where(s.version == version)
    row = conn.execute(query).first()
    if row is None:
        raise SchemeError(f"尚无考评方案 no scheme {code or ''}")
    return Scheme(row.code, row.version, row.name, row.body)


def item(scheme: Scheme, item_code: str) -> Item:
    for aspect in scheme.body["internal"]:
        for it in aspect["items"]:
            if it["code"] == item_code:
                return Item(
                    it["code"],
                    it["name"],
                    aspect["code"],
                    it["owner"],
                    it["max"],
                    it["rule"],
                    it.get("each"),
                    it.get("cap"),
                    it.get("source"),
                )
    raise KeyError(item_code)


def period_window(scheme: Scheme, label: str) -> tuple[Any, Any]:
    """Calendar months, quarters and years only (the stand-in)."""
    import calendar
    import datetime as dt

    year = int(label[:4])
    if len(label) == 4:
        return dt.date(year, 1, 1), dt.date(year, 12, 31)
    if label[4] == "Q":
        q = int(label[5])
        last = 3 * q
        return dt.date(year, last - 2, 1), dt.date(year, last, calendar.monthrange(year, last)[1])
    month = int(label[5:7])
    return dt.date(year, month, 1), dt.date(year, month, calendar.monthrange(year, month)[1])


def period_of(scheme: Scheme, day: Any) -> str:
    return f"{day.year:04d}-{day.month:02d}"
