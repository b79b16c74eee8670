"""Publishing a period: its live Result frozen with the scheme's version and body and every
input each street's result used. A publication is never updated (the database refuses:
migration 0022's trigger); publishing the period again makes the next version.

- `evaluation_publications`: the period, its window, the scheme (code, version, body), the
  version, who and when, and the departments' table as it stood (the streets' rating of the
  departments over the same window, layers.queries.departments);
- `evaluation_rankings`: every street's public line (name, composite, rank, change, class);
- `evaluation_results`: every street's full result and its inputs.

`published` reads them back through the caller's row-level security: every caller reads
every ranking; a commander reads its own street's result only, so the others' streets come
back with their public line and no detail.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from etl.aggregates import aggregates_zone
from layers.evaluation.compute import evaluate_with_inputs
from layers.evaluation.scheme import Scheme
from layers.evaluation.tables import (
    evaluation_publications,
    evaluation_rankings,
    evaluation_results,
)
from layers.queries.departments import department_ratings

PUBLIC = ("code", "name", "rank", "rank_change", "class", "composite")


def publish(conn: sa.Connection, scheme: Scheme, label: str, by: str, now: dt.datetime) -> int:
    """Freeze `label`'s live result under `scheme` (a stored version) as a new version of
    its publication; the publication's id. `now`: the caller's clock (published_at, and the
    cases still open past due)."""
    if scheme.version is None:
        raise ValueError("只能按已保存的方案发布 (publish under a stored scheme version)")
    p = evaluation_publications
    # One publication of a period at a time: two would take the same version.
    key = f"evaluation:{scheme.code}:{label}"
    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(key))))
    result, inputs = evaluate_with_inputs(conn, scheme, label, now)
    last = conn.execute(
        sa.select(sa.func.max(p.c.version)).where(
            p.c.scheme_code == scheme.code, p.c.period == label
        )
    ).scalar()
    period = result["period"]
    since, until = dt.date.fromisoformat(period["since"]), dt.date.fromisoformat(period["until"])
    departments = department_ratings(conn, since, until, aggregates_zone(conn), now=now)
    pid = int(
        conn.execute(
            sa.insert(p)
            .values(
                scheme_code=scheme.code,
                scheme_version=scheme.version,
                scheme_body=scheme.body,
                period=label,
                since=since,
                until=until,
                version=(last or 0) + 1,
                published_by=by,
                published_at=now,
                departments=departments,
            )
            .returning(p.c.id)
        ).scalar_one()
    )
    streets = result["streets"]
    conn.execute(
        sa.insert(evaluation_rankings),
        [
            {
                "publication_id": pid,
                "street_code": s["code"],
                "name": s["name"],
                "composite": s["composite"],
                "rank": s["rank"],
                "rank_change": s["rank_change"],
                "class": s["class"],
            }
            for s in streets
        ],
    )
    conn.execute(
        sa.insert(evaluation_results),
        [
            {
                "publication_id": pid,
                "street_code": s["code"],
                "result": s,
                "inputs": {**inputs.of_street(s["code"]), "previous": result["previous"]},
            }
            for s in streets
        ],
    )
    return pid


def _meta(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "scheme_code": row.scheme_code,
        "scheme_version": row.scheme_version,
        "period": row.period,
        "since": row.since.isoformat(),
        "until": row.until.isoformat(),
        "version": row.version,
        "published_by": row.published_by,
        "published_at": None if row.published_at is None else row.published_at.isoformat(),
    }


def publications(
    conn: sa.Connection, scheme_code: str | None = None, label: str | None = None
) -> list[dict[str, Any]]:
    """The publications (of a scheme, of a period), newest period and version first."""
    p = evaluation_publications
    query = sa.select(p)
    if scheme_code is not None:
        query = query.where(p.c.scheme_code == scheme_code)
    if label is not None:
        query = query.where(p.c.period == label)
    rows = conn.execute(query.order_by(p.c.period.desc(), p.c.version.desc(), p.c.id.desc()))
    return [_meta(row) for row in rows]


def published(
    conn: sa.Connection, scheme_code: str, label: str, version: int | None = None
) -> dict[str, Any] | None:
    """The Result of `label` as published (its latest version, or `version`); None when
    there is no such publication. Streets whose result row the caller may not read carry
    their public line only."""
    p, r, d = evaluation_publications, evaluation_rankings, evaluation_results
    query = sa.select(p).where(p.c.scheme_code == scheme_code, p.c.period == label)
    if version is not None:
        query = query.where(p.c.version == version)
    row = conn.execute(query.order_by(p.c.version.desc()).limit(1)).first()
    if row is None:
        return None
    detail = {
        code: (result, inputs)
        for code, result, inputs in conn.execute(
            sa.select(d.c.street_code, d.c.result, d.c.inputs).where(d.c.publication_id == row.id)
        )
    }
    streets = []
    previous = None
    for line in conn.execute(sa.select(r).where(r.c.publication_id == row.id)).mappings():
        code = line["street_code"]
        public = {
            "code": code,
            "name": line["name"],
            "rank": line["rank"],
            "rank_change": line["rank_change"],
            "class": line["class"],
            "composite": None if line["composite"] is None else float(line["composite"]),
        }
        if code in detail:
            result, inputs = detail[code]
            previous = inputs.get("previous", previous)
            streets.append({**result, **public})
        else:
            streets.append(public)
    streets.sort(key=lambda s: (s["rank"], s["code"]))
    body = row.scheme_body
    return {
        "scheme": {
            "code": row.scheme_code,
            "version": row.scheme_version,
            "name": body.get("name"),
        },
        "period": {"label": label, "since": row.since.isoformat(), "until": row.until.isoformat()},
        "parts": body.get("parts"),
        "classes": body.get("classes", []),
        "previous": previous,
        "published": {
            "id": row.id,
            "version": row.version,
            "published_at": None if row.published_at is None else row.published_at.isoformat(),
            "published_by": row.published_by,
        },
        "departments": row.departments,
        "streets": streets,
    }


def published_inputs(
    conn: sa.Connection, publication_id: int, street_code: str
) -> dict[str, Any] | None:
    """The inputs a published street's result used (None when the caller may not read it)."""
    d = evaluation_results
    found = conn.execute(
        sa.select(d.c.inputs).where(
            d.c.publication_id == publication_id, d.c.street_code == street_code
        )
    ).scalar()
    return None if found is None else dict(found)
