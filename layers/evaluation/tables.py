"""The tables of the evaluation (考评). Migration 0022 creates them with their grants,
row-level security and triggers.

- `evaluation_schemes`: each scheme's versions (the validated body as JSON); a changed body
  is a new version, never an edit.
- the inputs: `evaluation_scores` (an assessor's points for a manual item, a street and a
  period, with its evidence) and `evaluation_score_audit` (every change: who, when, old →
  new; append-only), `evaluation_tasks` (tasks handed to the streets: 市里下达 / 部门任务),
  `evaluation_events` (one row per event of a "points per event" item), `survey_results` (a
  third-party survey's answers per street, question and period).
- the publications: `evaluation_publications` (a period frozen with its scheme's version and
  body), `evaluation_rankings` (every street's public line) and `evaluation_results` (each
  street's full result and the inputs it used). Immutable: a trigger refuses UPDATE and
  DELETE; publishing again makes a new version.

Row-level security (reader): every street's row for the district's zone ('*'), a
commander's own street's rows otherwise; an input is written only by an assessor of the
unit that owns it (zone '*' and `blockdata.unit` = owner_unit); survey results and
publications only with zone '*' and no unit (the app lets the district role alone).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from layers.registry import metadata
from layers.units import CODE_LENGTH

TASK_KINDS = ("city", "department")  # 市里下达 / 部门任务
SCALES = ("five", "three")  # 5-point, or 满意 / 基本满意 / 不满意
AUDIT_SOURCES = ("form", "xlsx", "api", "cli")


def _street() -> sa.Column[str]:
    return sa.Column("street_code", sa.String(9), sa.ForeignKey("streets.code"), nullable=False)


def _owner() -> sa.Column[str]:
    return sa.Column(
        "owner_unit", sa.String(CODE_LENGTH), sa.ForeignKey("units.code"), nullable=False
    )


def _when(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


evaluation_schemes = sa.Table(
    "evaluation_schemes",
    metadata,
    sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("code", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("body", pg.JSONB, nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("created_by", sa.Text),
    sa.UniqueConstraint("code", "version"),
    sa.CheckConstraint("version >= 1", name="version"),
)

evaluation_scores = sa.Table(
    "evaluation_scores",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("scheme_code", sa.Text, nullable=False),
    sa.Column("period", sa.Text, nullable=False),
    sa.Column("item_code", sa.Text, nullable=False),
    _street(),
    _owner(),
    sa.Column("points", sa.Numeric(8, 2), nullable=False),
    sa.Column("evidence", sa.Text),
    sa.Column("scored_by", sa.Text),
    _when("scored_at"),
    sa.UniqueConstraint("scheme_code", "period", "item_code", "street_code"),
)

evaluation_score_audit = sa.Table(
    "evaluation_score_audit",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("scheme_code", sa.Text, nullable=False),
    sa.Column("period", sa.Text, nullable=False),
    sa.Column("item_code", sa.Text, nullable=False),
    _street(),
    _owner(),
    sa.Column("old_points", sa.Numeric(8, 2)),
    sa.Column("new_points", sa.Numeric(8, 2)),
    sa.Column("old_evidence", sa.Text),
    sa.Column("new_evidence", sa.Text),
    sa.Column("changed_by", sa.Text),
    _when("changed_at"),
    sa.Column("source", sa.Text, nullable=False),
    sa.CheckConstraint(f"source in {AUDIT_SOURCES!r}", name="source"),
    sa.Index("ix_evaluation_score_audit_item", "scheme_code", "period", "item_code"),
)

evaluation_tasks = sa.Table(
    "evaluation_tasks",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    _owner(),
    _street(),
    sa.Column("item_code", sa.Text),
    _when("deadline"),
    _when("done_at", nullable=True),
    sa.Column("note", sa.Text),
    sa.Column("created_by", sa.Text),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("updated_by", sa.Text),
    _when("updated_at", nullable=True),
    sa.CheckConstraint(f"kind in {TASK_KINDS!r}", name="kind"),
    sa.CheckConstraint("btrim(title) <> ''", name="title"),
    sa.Index("ix_evaluation_tasks_deadline", "deadline", "street_code"),
)

evaluation_events = sa.Table(
    "evaluation_events",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("scheme_code", sa.Text, nullable=False),
    sa.Column("item_code", sa.Text, nullable=False),
    _street(),
    _owner(),
    _when("occurred_at"),
    sa.Column("note", sa.Text),
    sa.Column("recorded_by", sa.Text),
    sa.Column(
        "recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Index("ix_evaluation_events_item", "scheme_code", "item_code", "occurred_at"),
)

survey_results = sa.Table(
    "survey_results",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("period", sa.Text, nullable=False),
    _street(),
    sa.Column("question", sa.Text, nullable=False),
    sa.Column("scale", sa.Text, nullable=False),
    sa.Column("sample_size", sa.Integer, nullable=False),
    sa.Column("counts", pg.JSONB, nullable=False),
    sa.Column("source", sa.Text),
    sa.Column("imported_by", sa.Text),
    _when("imported_at"),
    sa.UniqueConstraint("period", "street_code", "question"),
    sa.CheckConstraint(f"scale in {SCALES!r}", name="scale"),
    sa.CheckConstraint("sample_size > 0", name="sample_size"),
)

evaluation_publications = sa.Table(
    "evaluation_publications",
    metadata,
    sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("scheme_code", sa.Text, nullable=False),
    sa.Column("scheme_version", sa.Integer, nullable=False),
    sa.Column("scheme_body", pg.JSONB, nullable=False),
    sa.Column("period", sa.Text, nullable=False),
    sa.Column("since", sa.Date, nullable=False),
    sa.Column("until", sa.Date, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("published_by", sa.Text),
    _when("published_at"),
    sa.Column("departments", pg.JSONB),
    sa.UniqueConstraint("scheme_code", "period", "version"),
    sa.CheckConstraint("version >= 1", name="version"),
)

evaluation_rankings = sa.Table(
    "evaluation_rankings",
    metadata,
    sa.Column(
        "publication_id",
        sa.Integer,
        sa.ForeignKey("evaluation_publications.id"),
        primary_key=True,
    ),
    sa.Column("street_code", sa.String(9), primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("composite", sa.Numeric(8, 2)),
    sa.Column("rank", sa.Integer, nullable=False),
    sa.Column("rank_change", sa.Integer),
    sa.Column("class", sa.Text),
)

evaluation_results = sa.Table(
    "evaluation_results",
    metadata,
    sa.Column(
        "publication_id",
        sa.Integer,
        sa.ForeignKey("evaluation_publications.id"),
        primary_key=True,
    ),
    sa.Column("street_code", sa.String(9), primary_key=True),
    sa.Column("result", pg.JSONB, nullable=False),
    sa.Column("inputs", pg.JSONB, nullable=False),
)
