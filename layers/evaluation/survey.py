"""A third-party satisfaction survey (外部评价): its results per street and question for a
period, imported from XLSX or CSV (the district only: the database's write policy is zone
'*' and no unit), and each street's satisfaction with its margin of error.

File columns: 街道编码, 题目编码, 样本量, then the answer counts — 5分, 4分, 3分, 2分, 1分
for a five-point question, 满意, 基本满意, 不满意 for a three-point one (the scheme says
which scale each question has). Every row is checked (known street, question of the scheme,
non-negative whole counts that add up to the sample size, no duplicate) and all are written
or none. A re-import replaces the period's results: it must name every (street, question)
already imported for the period (results are updated, never deleted: migration 0022 grants
no DELETE), else it is refused.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from layers.evaluation import xlsx
from layers.evaluation.scheme import Question, Scheme
from layers.evaluation.scoring import InputError, Rejection, check_period, rejected, streets
from layers.evaluation.tables import survey_results

FIVE = ("5", "4", "3", "2", "1")
THREE = ("满意", "基本满意", "不满意")
SCALE_KEYS = {"five": FIVE, "three": THREE}
COLUMNS = {
    "街道编码": "street",
    "题目编码": "question",
    "样本量": "sample_size",
    **{f"{v}分": v for v in FIVE},
    **{v: v for v in THREE},
}
REQUIRED = ("街道编码", "题目编码", "样本量")
Z95 = 1.96


def questions(scheme: Scheme) -> dict[str, Question]:
    return {q.code: q for q in scheme.questions}


def value_of(scheme: Scheme, scale: str, answer: str) -> float:
    """An answer's score out of 100: five-point v → (v − 1) / 4 × 100; three-point by the
    scheme's `scale_values`."""
    if scale == "five":
        return (int(answer) - 1) / 4 * 100
    return float(scheme.scale_values[answer])


def _whole(value: object) -> int | None:
    """A non-negative whole number, or None."""
    if value is None or isinstance(value, bool) or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    if not math.isfinite(number) or not number.is_integer() or number < 0:
        return None
    return int(number)


def import_survey(
    conn: sa.Connection,
    scheme: Scheme,
    period: str,
    data: bytes,
    filename: str,
    by: str | None,
    now: dt.datetime,
    source: str | None = None,
) -> dict[str, Any]:
    """Write every row of the file or none (InputError lists each reason)."""
    check_period(period)
    asked = questions(scheme)
    known = streets(conn)
    table = xlsx.read_table(data, filename, COLUMNS, REQUIRED)
    headers = {field: header for header, field in COLUMNS.items()}
    bad: list[Rejection] = []
    seen: dict[tuple[str, str], int] = {}
    rows = []
    for n, r in table:

        def no(field: str, reason: str, n: int = n) -> None:
            bad.append(Rejection(n, headers[field], reason))

        street, question = xlsx.code(r.get("street")), xlsx.code(r.get("question"))
        if street not in known:
            no("street", f"未知街道：{street!r} unknown street")
        if question not in asked:
            no("question", f"方案中没有该题目：{question!r} unknown question")
            continue
        if (street, question) in seen:
            no("question", f"重复：与第 {seen[(street, question)]} 行相同 duplicate row")
            continue
        seen[(street, question)] = n
        size = _whole(r.get("sample_size"))
        if size is None or size == 0:
            no("sample_size", f"样本量应为正整数：{r.get('sample_size')!r} sample size")
        scale = asked[question].scale
        counts: dict[str, int] = {}
        for answer in SCALE_KEYS[scale]:
            raw = r.get(answer)
            value = 0 if raw is None or str(raw).strip() == "" else _whole(raw)
            if value is None:
                no(answer, f"人数应为非负整数：{raw!r} counts are whole numbers ≥ 0")
            else:
                counts[answer] = value
        other = next(a for a in SCALE_KEYS if a != scale)
        if any(_whole(r.get(a)) for a in SCALE_KEYS[other]):
            no(
                "question",
                f"题目 {question} 的量表是{'五级' if scale == 'five' else '三级'}，"
                "另一量表的列应为空 answers on the wrong scale",
            )
        if size and len(counts) == len(SCALE_KEYS[scale]) and sum(counts.values()) != size:
            no(
                "sample_size",
                f"各选项人数之和 {sum(counts.values())} 不等于样本量 {size}"
                " counts do not add up to the sample size",
            )
        rows.append(
            {
                "period": period,
                "street_code": street,
                "question": question,
                "scale": scale,
                "sample_size": size,
                "counts": counts,
                "source": source or filename,
                "imported_by": by,
                "imported_at": now,
            }
        )
    if not bad:
        bad = _kept(conn, period, set(seen))
    if bad:
        raise rejected(bad, "调查结果")
    if not rows:
        raise InputError("文件中没有数据 no row")
    stmt = insert(survey_results)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["period", "street_code", "question"],
            set_={
                c: stmt.excluded[c]
                for c in ("scale", "sample_size", "counts", "source", "imported_by", "imported_at")
            },
        ),
        rows,
    )
    return {"period": period, "rows": len(rows), "streets": len({r["street_code"] for r in rows})}


def _kept(conn: sa.Connection, period: str, given: set[tuple[str, str]]) -> list[Rejection]:
    """The period's stored (street, question) rows a re-import leaves out: refused, since a
    re-import replaces the period's results whole (the reader may update them, never delete)."""
    s = survey_results.c
    stored = conn.execute(
        sa.select(s.street_code, s.question).where(s.period == period).order_by(s.street_code)
    )
    return [
        Rejection(
            None,
            None,
            f"重新导入须包含本周期已有的 {street} {question}（原结果不能删除）"
            " a re-import must hold every street and question already imported",
        )
        for street, question in stored
        if (street, question) not in given
    ]


def question_score(scheme: Scheme, scale: str, counts: Mapping[str, int]) -> dict[str, Any]:
    """n, mean (0–100), sample standard deviation and the 95 % margin 1.96·s/√n."""
    values = [(value_of(scheme, scale, a), int(c)) for a, c in counts.items() if int(c) > 0]
    n = sum(c for _, c in values)
    mean = sum(v * c for v, c in values) / n
    var = sum(c * (v - mean) ** 2 for v, c in values) / (n - 1) if n > 1 else 0.0
    sd = math.sqrt(var)
    return {"n": n, "mean": mean, "sd": sd, "margin": Z95 * sd / math.sqrt(n)}


def satisfaction(conn: sa.Connection, period: str, scheme: Scheme) -> list[dict[str, Any]]:
    """Each street's satisfaction for `period`, in street order.

    Per question q: the answers' scores x (five-point v → (v − 1)/4 × 100, three-point by
    `scale_values`), n_q answers, mean m_q and sample standard deviation
    s_q = √(Σ (x − m_q)² / (n_q − 1)). Overall score = Σ w_q · m_q (the scheme's weights, which
    add up to 1); its 95 % margin of error = Σ w_q · 1.96 · s_q / √n_q (the margins added
    with the weights: an upper bound that needs no covariance between questions) — the
    evaluation's own `compute.survey_score`, so the page and the ranking agree.
    `sample` is the largest sample size. A street without an answer to every question has
    score and margin None and lists the missing ones."""
    from layers.evaluation.compute import survey_score

    check_period(period)
    asked = questions(scheme)
    s = survey_results.c
    got: dict[str, dict[str, dict[str, Any]]] = {}
    for r in conn.execute(
        sa.select(s.street_code, s.question, s.scale, s.sample_size, s.counts).where(
            s.period == period
        )
    ):
        if r.question in asked:
            got.setdefault(r.street_code, {})[r.question] = {
                "scale": r.scale,
                "sample_size": int(r.sample_size),
                "counts": {str(k): int(v) for k, v in r.counts.items()},
            }
    out = []
    for street, name in streets(conn).items():
        answers = got.get(street, {})
        score, margin, sample = survey_score(scheme, answers)
        out.append(
            {
                "street": street,
                "name": name,
                "sample": sample or 0,
                "score": None if score is None else round(score, 2),
                "margin": None if margin is None else round(margin, 2),
                "questions": {
                    q: {
                        k: round(v, 2) if isinstance(v, float) else v
                        for k, v in question_score(scheme, a["scale"], a["counts"]).items()
                    }
                    for q, a in answers.items()
                },
                "missing": [q for q in asked if q not in answers],
            }
        )
    return out
