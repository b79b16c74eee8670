"""The evaluation's inputs on a real PostgreSQL, run as the reader scoped as each role (the
database's row-level security under the library): manual scores and their audit, the XLSX
template and its import (all or nothing), tasks and their states at several clocks, the
survey and its margin of error (computed here with `statistics`, not by the code)."""

from __future__ import annotations

import datetime as dt
import io
import math
import statistics
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook
from sqlalchemy.exc import DBAPIError

from layers.cases import Actor
from layers.evaluation import scoring, survey, tasks, xlsx
from layers.evaluation.scheme import load_scheme
from layers.evaluation.scoring import InputError
from tests.clock import BEIJING
from tests.district import Cell
from tests.evalinputs_fixtures import (
    OTHER,
    OWNER,
    OWNER_MANUAL,
    PERIOD,
    A,
    B,
    add_scheme,
    scope_as,
    workbook,
)

NOW = dt.datetime(2026, 11, 20, 10, 0, tzinfo=BEIJING)
LATER = NOW + dt.timedelta(hours=2)
ME = Actor("assessor-owner", "assessor", OWNER)
THEM = Actor("assessor-other", "assessor", OTHER)


@pytest.fixture
def scheme(connection: sa.Connection, district: list[Cell]) -> scoring.Scheme:
    add_scheme(connection)
    return load_scheme(connection, "test")


def _stored(conn: sa.Connection) -> list[tuple[str, str, Decimal, str | None]]:
    rows = conn.execute(
        sa.text(
            "select item_code, street_code, points, evidence from evaluation_scores"
            " order by item_code, street_code"
        )
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


# --- scores -------------------------------------------------------------------------------


def test_an_owner_scores_and_two_changes_are_audited(
    connection: sa.Connection, scheme: scoring.Scheme
) -> None:
    scope_as(connection, "assessor", unit=OWNER)
    first = scoring.set_score(
        connection, scheme, PERIOD, "law_a", A, 8, "执法台账齐全", ME, NOW, "form"
    )
    assert first["written"][0]["old_points"] is None and first["published_versions"] == []
    scoring.set_score(
        connection, scheme, PERIOD, "law_a", A, "6.5", "抽查两处缺项", ME, LATER, "api"
    )
    assert _stored(connection) == [("law_a", A, Decimal("6.50"), "抽查两处缺项")]
    trail = scoring.audit(connection, "test", PERIOD)
    assert [(t["old_points"], t["new_points"], t["changed_by"], t["source"]) for t in trail] == [
        (8.0, 6.5, "assessor-owner", "api"),
        (None, 8.0, "assessor-owner", "form"),
    ]
    assert trail[0]["old_evidence"] == "执法台账齐全"
    assert dt.datetime.fromisoformat(trail[0]["changed_at"]) == LATER
    assert dt.datetime.fromisoformat(trail[1]["changed_at"]) == NOW


def test_the_same_score_again_writes_nothing(
    connection: sa.Connection, scheme: scoring.Scheme
) -> None:
    scope_as(connection, "assessor", unit=OWNER)
    scoring.set_score(connection, scheme, PERIOD, "law_a", A, 8, "台账", ME, NOW, "form")
    again = scoring.set_score(
        connection, scheme, PERIOD, "law_a", A, "8.00", None, ME, LATER, "form"
    )
    assert again["written"] == [] and again["unchanged"] == 1
    assert len(scoring.audit(connection, "test", PERIOD)) == 1


@pytest.mark.parametrize(
    ("item", "street", "points", "evidence", "reason"),
    [
        ("law_a", A, 10.5, "x", "超出范围"),
        ("law_a", A, -1, "x", "超出范围"),
        ("honours", A, -3.5, "x", "超出范围"),
        ("law_a", A, "八分", "x", "不是数字"),
        ("law_a", A, "8.125", "x", "不是数字"),
        ("law_a", A, 8, "  ", "依据说明"),
        ("law_a", "110102999", 8, "x", "未知街道"),
        ("nope", A, 8, "x", "未知考核项"),
        ("city_tasks", A, 8, "x", "按规则"),
    ],
)
def test_a_bad_score_is_refused_and_nothing_written(
    connection: sa.Connection,
    scheme: scoring.Scheme,
    item: str,
    street: str,
    points: object,
    evidence: str,
    reason: str,
) -> None:
    scope_as(connection, "assessor", unit=OWNER)
    with pytest.raises(InputError, match=reason) as refused:
        scoring.set_score(
            connection, scheme, PERIOD, item, street, points, evidence, ME, NOW, "form"
        )
    assert refused.value.status == 400
    assert _stored(connection) == []


def test_a_bonus_item_takes_negative_points(
    connection: sa.Connection, scheme: scoring.Scheme
) -> None:
    scope_as(connection, "assessor", unit=OWNER)
    scoring.set_score(connection, scheme, PERIOD, "honours", B, -3, "通报批评", ME, NOW, "form")
    assert _stored(connection) == [("honours", B, Decimal("-3.00"), "通报批评")]


@pytest.mark.parametrize(
    "actor",
    [
        THEM,
        Actor("d", "district", None),
        Actor("c", "commander", None),
        Actor("an", "analyst", None),
        Actor("dep", "department", OWNER),
    ],
)
def test_only_the_owner_units_assessor_scores(
    connection: sa.Connection, scheme: scoring.Scheme, actor: Actor
) -> None:
    with pytest.raises(InputError, match="无权评分") as refused:
        scoring.set_score(connection, scheme, PERIOD, "law_a", A, 8, "x", actor, NOW, "form")
    assert refused.value.status == 403
    assert _stored(connection) == []


@pytest.mark.parametrize(
    ("role", "street", "unit"),
    [("assessor", None, OTHER), ("district", None, None), ("commander", A, None)],
)
def test_the_database_refuses_even_when_the_app_check_is_bypassed(
    connection: sa.Connection,
    scheme: scoring.Scheme,
    role: str,
    street: str | None,
    unit: str | None,
) -> None:
    """The library called with the owner's actor, but the connection scoped as another role:
    row-level security refuses the write."""
    scope_as(connection, role, street, unit)
    with pytest.raises(DBAPIError, match="row-level security"), connection.begin_nested():
        scoring.set_score(connection, scheme, PERIOD, "law_a", A, 8, "x", ME, NOW, "form")


def test_a_published_period_is_scored_with_a_warning(
    connection: sa.Connection, scheme: scoring.Scheme
) -> None:
    connection.execute(
        sa.text(
            "insert into evaluation_publications (scheme_code, scheme_version, scheme_body,"
            " period, since, until, version, published_at) values ('test', 1, '{}', :p,"
            " '2026-11-01', '2026-11-30', 1, now())"
        ),
        {"p": PERIOD},
    )
    scope_as(connection, "assessor", unit=OWNER)
    answer = scoring.set_score(connection, scheme, PERIOD, "law_a", A, 8, "x", ME, NOW, "form")
    assert answer["published_versions"] == [1]


# --- the XLSX template ------------------------------------------------------------------


def _street_count(conn: sa.Connection) -> int:
    return int(conn.execute(sa.text("select count(*) from streets")).scalar_one())


def test_the_template_round_trips(connection: sa.Connection, scheme: scoring.Scheme) -> None:
    scope_as(connection, "assessor", unit=OWNER)
    scoring.set_score(connection, scheme, PERIOD, "law_a", A, 7, "原有评分", ME, NOW, "form")
    scoring.set_score(connection, scheme, PERIOD, "law_a", B, 5, "=1+1", ME, NOW, "form")
    data = xlsx.template(connection, scheme, PERIOD, OWNER)
    book = load_workbook(io.BytesIO(data))
    ws = book["评分"]
    header = [c.value for c in ws[1]]
    assert header == ["街道编码", "街道", "考核项编码", "考核项", "满分", "得分", "依据说明"]
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    assert len(rows) == len(OWNER_MANUAL) * _street_count(connection)
    assert {r[2] for r in rows} == set(OWNER_MANUAL)
    assert [r[5:] for r in rows if r[0] == A and r[2] == "law_a"] == [(7, "原有评分")]
    assert ws["G3"].value == "=1+1" and ws["G3"].data_type == "s"  # text, not a formula
    assert book["meta"].sheet_state == "hidden"
    assert ws.protection.sheet and not ws["F2"].protection.locked and ws["A2"].protection.locked
    # One validation per score range: [0, 10] law_a, [0, 15] party_build, [-3, 3] honours.
    ranges = {(float(v.formula1), float(v.formula2)) for v in ws.data_validations.dataValidation}
    assert ranges == {(0, 10), (0, 15), (-3, 3)}
    filled = {}
    for n, row in enumerate(ws.iter_rows(min_row=2), start=2):
        street, item = row[0].value, row[2].value
        if item == "law_a" and street in (A, B):
            continue  # left as it was
        points = {"law_a": 9.5, "party_build": 12, "honours": -1.25}[item]
        ws.cell(row=n, column=6, value=points)
        ws.cell(row=n, column=7, value=f"依据 {street} {item}")
        filled[(item, street)] = (
            Decimal(str(points)).quantize(Decimal("0.01")),
            f"依据 {street} {item}",
        )
    out = io.BytesIO()
    book.save(out)
    result = xlsx.import_scores(connection, scheme, PERIOD, out.getvalue(), "t.xlsx", ME, LATER)
    assert len(result["written"]) == len(filled) and result["unchanged"] == 2
    expected = {
        **filled,
        ("law_a", A): (Decimal("7.00"), "原有评分"),
        ("law_a", B): (Decimal("5.00"), "=1+1"),
    }
    assert {(i, s): (p, e) for i, s, p, e in _stored(connection)} == expected
    sources = connection.execute(sa.text("select distinct source from evaluation_score_audit"))
    assert sorted(sources.scalars()) == ["form", "xlsx"]


def test_bad_rows_are_all_rejected_with_reasons_and_nothing_written(
    connection: sa.Connection, scheme: scoring.Scheme
) -> None:
    scope_as(connection, "assessor", unit=OWNER)
    header = ["街道编码", "街道", "考核项编码", "考核项", "满分", "得分", "依据说明"]
    data = workbook(
        [
            header,
            [A, "", "law_a", "", 10, 9, "好"],  # 2: good
            ["110102999", "", "law_a", "", 10, 9, "好"],  # 3: unknown street
            [A, "", "nope", "", 10, 9, "好"],  # 4: unknown item
            [A, "", "law_b", "", 15, 9, "好"],  # 5: another unit's
            [B, "", "law_a", "", 10, "九", "好"],  # 6: not a number
            [B, "", "party_build", "", 15, 16, "好"],  # 7: out of range
            [B, "", "honours", "", 3, 2, None],  # 8: no evidence
            [A, "", "law_a", "", 10, 8, "又一行"],  # 9: duplicate of row 2
            [int(A), "", "honours", "", 3, 2, "数字街道编码"],  # 10: good (a number code)
        ],
        title="评分",
    )
    with pytest.raises(InputError) as refused:
        xlsx.import_scores(connection, scheme, PERIOD, data, "t.xlsx", ME, NOW)
    got = [(r["row"], r["column"], r["reason"][:4]) for r in refused.value.details["rejected"]]
    assert got == [
        (3, "街道编码", "未知街道"),
        (4, "考核项编码", "未知考核"),
        (5, "考核项编码", "无权评分"),
        (6, "得分", "得分不是"),
        (7, "得分", "得分 1"),
        (8, "依据说明", "得分有变"),
        (9, "考核项编码", "重复：同"),
    ]
    assert refused.value.status == 400
    assert _stored(connection) == []
    assert scoring.audit(connection, "test", PERIOD) == []


def test_another_periods_template_is_refused(
    connection: sa.Connection, scheme: scoring.Scheme
) -> None:
    scope_as(connection, "assessor", unit=OWNER)
    data = xlsx.template(connection, scheme, "2026-10", OWNER)
    with pytest.raises(InputError, match="2026-10"):
        xlsx.import_scores(connection, scheme, PERIOD, data, "t.xlsx", ME, NOW)


def test_not_a_spreadsheet_is_refused(connection: sa.Connection, scheme: scoring.Scheme) -> None:
    with pytest.raises(InputError, match="无法读取"):
        xlsx.import_scores(connection, scheme, PERIOD, b"not a zip", "t.xlsx", ME, NOW)


# --- tasks --------------------------------------------------------------------------------


def _task(conn: sa.Connection, street: str, deadline: dt.datetime, done: dt.datetime | None) -> int:
    [tid] = tasks.create_tasks(
        conn, [tasks.NewTask("city", "背街小巷整治", street, deadline, "city_tasks")], ME, NOW
    )
    if done is not None:
        tasks.mark_done(conn, tid, ME, done, done)
    return tid


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # deadline 11-25 18:00 Beijing; done 11-25 17:00 (on time), 11-25 19:00 (late), never
        (dt.datetime(2026, 11, 24, 12, 0, tzinfo=BEIJING), ["open", "open", "open"]),
        (dt.datetime(2026, 11, 25, 18, 0, tzinfo=BEIJING), ["done_on_time", "open", "open"]),
        (
            dt.datetime(2026, 11, 25, 18, 30, tzinfo=BEIJING),
            ["done_on_time", "overdue", "overdue"],
        ),
        (
            dt.datetime(2026, 11, 26, 0, 0, tzinfo=dt.UTC),
            ["done_on_time", "done_late", "overdue"],
        ),
    ],
)
def test_task_states_at_the_callers_now(
    connection: sa.Connection,
    scheme: scoring.Scheme,
    now: dt.datetime,
    expected: list[str],
) -> None:
    scope_as(connection, "assessor", unit=OWNER)
    deadline = dt.datetime(2026, 11, 25, 18, 0, tzinfo=BEIJING)
    on_time = deadline - dt.timedelta(hours=1)
    late = deadline + dt.timedelta(hours=1)
    ids = [
        _task(connection, A, deadline, on_time if now >= on_time else None),
        _task(connection, B, deadline, late if now >= late else None),
        _task(connection, A, deadline, None),
    ]
    listed = {t["id"]: t["state"] for t in tasks.list_tasks(connection, now)}
    assert [listed[i] for i in ids] == expected
    for state in tasks.STATES:
        only = tasks.list_tasks(connection, now, task_state=state)
        assert sorted(t["id"] for t in only) == sorted(
            i for i, s in zip(ids, expected, strict=True) if s == state
        )


def test_on_time_counts_follow_the_period_in_its_time_zone(
    connection: sa.Connection, scheme: scoring.Scheme
) -> None:
    """A deadline at 2026-12-01 07:00 Beijing is 2026-11-30 23:00 UTC: in November's window
    in UTC, in December's in Beijing."""
    scope_as(connection, "assessor", unit=OWNER)
    edge = dt.datetime(2026, 12, 1, 7, 0, tzinfo=BEIJING)
    mid = dt.datetime(2026, 11, 15, 12, 0, tzinfo=BEIJING)
    _task(connection, A, edge, edge - dt.timedelta(days=1))  # on time
    _task(connection, A, mid, mid + dt.timedelta(days=1))  # late
    _task(connection, B, mid, mid)  # on time (done at the deadline)
    nov = (dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    assert tasks.on_time_counts(connection, "city_tasks", *nov, BEIJING) == {
        A: (0, 1),
        B: (1, 1),
    }
    assert tasks.on_time_counts(connection, "city_tasks", *nov, ZoneInfo("UTC")) == {
        A: (1, 2),
        B: (1, 1),
    }
    assert tasks.on_time_counts(connection, "dept_tasks", *nov, BEIJING) == {}
    listed = tasks.list_tasks(connection, NOW, *nov, zone=BEIJING, street=A)
    assert [t["deadline"] for t in listed] == [mid.isoformat()]


def test_only_the_owner_marks_a_task_done(
    connection: sa.Connection, scheme: scoring.Scheme
) -> None:
    scope_as(connection, "assessor", unit=OWNER)
    tid = _task(connection, A, LATER, None)
    with pytest.raises(InputError, match="无权") as refused:
        tasks.mark_done(connection, tid, THEM, NOW)
    assert refused.value.status == 403
    with pytest.raises(InputError, match="晚于现在"):
        tasks.mark_done(connection, tid, ME, NOW, LATER)
    with pytest.raises(InputError, match="无权下达"):
        tasks.create_tasks(
            connection, [tasks.NewTask("city", "t", A, LATER)], Actor("c", "commander"), NOW
        )


def test_tasks_import_is_all_or_nothing(connection: sa.Connection, scheme: scoring.Scheme) -> None:
    scope_as(connection, "assessor", unit=OWNER)
    csv_text = (
        "类型,标题,街道编码,考核项编码,截止时间,备注\n"
        f"市里下达,垃圾分类,{A},city_tasks,2026-11-30,\n"
        f"部门任务,安全检查,{B},,2026-11-28T17:00:00+08:00,复查\n"
        f"其他,,{A},law_a,明天,\n"
    ).encode()
    with pytest.raises(InputError) as refused:
        tasks.import_tasks(connection, csv_text, "t.csv", ME, NOW, BEIJING, scheme)
    got = [(r["row"], r["column"]) for r in refused.value.details["rejected"]]
    assert got == [(4, "类型"), (4, "标题"), (4, "截止时间"), (4, "考核项编码")]
    assert tasks.list_tasks(connection, NOW) == []
    good = csv_text.rsplit(b"\n", 2)[0] + b"\n"
    ids = tasks.import_tasks(connection, good, "t.csv", ME, NOW, BEIJING, scheme)
    listed = tasks.list_tasks(connection, NOW)
    assert [t["id"] for t in listed] == sorted(ids, reverse=True)  # by deadline: B's first
    assert (
        listed[1]["deadline"] == dt.datetime(2026, 11, 30, 23, 59, 59, tzinfo=BEIJING).isoformat()
    )


# --- survey -------------------------------------------------------------------------------


SURVEY_HEADER = [
    "街道编码",
    "题目编码",
    "样本量",
    "5分",
    "4分",
    "3分",
    "2分",
    "1分",
    "满意",
    "基本满意",
    "不满意",
]


def _survey_rows(street: str) -> list[list[object]]:
    return [
        [street, "overall", 10, None, None, None, None, None, 8, 1, 1],
        [street, "environment", 8, 4, 2, 1, 1, 0, None, None, None],
        [street, "service", 5, 1, 1, 1, 1, 1, None, None, None],
    ]


def test_survey_margin_matches_a_hand_computation(
    connection: sa.Connection, scheme: scoring.Scheme
) -> None:
    scope_as(connection, "district")
    data = workbook([SURVEY_HEADER, *_survey_rows(A)])
    survey.import_survey(connection, scheme, PERIOD, data, "s.xlsx", "district-1", NOW)
    answers = {
        "overall": [100] * 8 + [90] + [0],
        "environment": [100] * 4 + [75] * 2 + [50] + [25],
        "service": [100, 75, 50, 25, 0],
    }
    weights = {"overall": 0.5, "environment": 0.25, "service": 0.25}
    score = sum(weights[q] * statistics.mean(x) for q, x in answers.items())
    margin = sum(
        weights[q] * 1.96 * statistics.stdev(x) / math.sqrt(len(x)) for q, x in answers.items()
    )
    [a] = [s for s in survey.satisfaction(connection, PERIOD, scheme) if s["street"] == A]
    assert a["score"] == pytest.approx(score, abs=0.005)
    assert a["margin"] == pytest.approx(margin, abs=0.005)
    assert a["sample"] == 10 and a["missing"] == []
    [b] = [s for s in survey.satisfaction(connection, PERIOD, scheme) if s["street"] == B]
    assert b["score"] is None and b["missing"] == ["overall", "environment", "service"]


def test_a_bad_survey_is_rejected_whole(connection: sa.Connection, scheme: scoring.Scheme) -> None:
    scope_as(connection, "district")
    rows = [
        *_survey_rows(A),
        [B, "overall", 10, None, None, None, None, None, 8, 1, 0],  # 5: sum 9 ≠ 10
        [B, "nope", 10, None, None, None, None, None, 10, 0, 0],  # 6: unknown question
        [B, "environment", 5, 5, -1, 1, 0, 0, None, None, None],  # 7: negative
        [A, "service", 5, 1, 1, 1, 1, 1, None, None, None],  # 8: duplicate of row 4
        ["110102999", "service", 1, 1, 0, 0, 0, 0, None, None, None],  # 9: unknown street
        [B, "service", 2, 1, 1, 0, 0, 0, 2, 0, 0],  # 10: the wrong scale
    ]
    with pytest.raises(InputError) as refused:
        survey.import_survey(
            connection, scheme, PERIOD, workbook([SURVEY_HEADER, *rows]), "s.xlsx", "d", NOW
        )
    got = [(r["row"], r["column"]) for r in refused.value.details["rejected"]]
    assert got == [
        (5, "样本量"),
        (6, "题目编码"),
        (7, "4分"),
        (8, "题目编码"),
        (9, "街道编码"),
        (10, "题目编码"),
    ]
    assert connection.execute(sa.text("select count(*) from survey_results")).scalar() == 0


def test_a_survey_reimport_replaces_its_rows(
    connection: sa.Connection, scheme: scoring.Scheme
) -> None:
    scope_as(connection, "district")
    csv_first = "\n".join(
        ",".join("" if v is None else str(v) for v in r) for r in [SURVEY_HEADER, *_survey_rows(A)]
    )
    survey.import_survey(connection, scheme, PERIOD, csv_first.encode(), "s.csv", "d", NOW)
    partial = [SURVEY_HEADER, [A, "overall", 4, None, None, None, None, None, 4, 0, 0]]
    with pytest.raises(InputError) as refused:
        survey.import_survey(connection, scheme, PERIOD, workbook(partial), "s.xlsx", "d", LATER)
    reasons = [r["reason"] for r in refused.value.details["rejected"]]
    assert [r.split("（")[0] for r in reasons] == [
        f"重新导入须包含本周期已有的 {A} environment",
        f"重新导入须包含本周期已有的 {A} service",
    ]
    again = [*_survey_rows(A)]
    again[0] = [A, "overall", 4, None, None, None, None, None, 4, 0, 0]
    survey.import_survey(
        connection, scheme, PERIOD, workbook([SURVEY_HEADER, *again]), "s.xlsx", "d", LATER
    )
    rows = connection.execute(
        sa.text("select question, sample_size, imported_at from survey_results order by question")
    )
    assert [tuple(r) for r in rows] == [
        ("environment", 8, LATER),
        ("overall", 4, LATER),
        ("service", 5, LATER),
    ]


@pytest.mark.parametrize(
    ("role", "street", "unit"), [("assessor", None, OWNER), ("commander", A, None)]
)
def test_the_database_refuses_a_survey_but_the_districts(
    connection: sa.Connection,
    scheme: scoring.Scheme,
    role: str,
    street: str | None,
    unit: str | None,
) -> None:
    """The library does not check the role (the app does: the district only); the database
    refuses any other zone or a unit."""
    scope_as(connection, role, street, unit)
    data = workbook([SURVEY_HEADER, *_survey_rows(A)])
    with pytest.raises(DBAPIError, match="row-level security"), connection.begin_nested():
        survey.import_survey(connection, scheme, PERIOD, data, "s.xlsx", "a", NOW)
