"""/api/evaluation's inputs as every role concerned meets them: an assessor of the owner
unit scores, imports its template and hands out tasks; an assessor of another unit is
refused its neighbour's items; the district reads and imports the survey, never scores; a
commander is refused every input route; the analyst reads. The app's clock is injected."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from openpyxl import load_workbook

from tests.clock import BEIJING, FrozenClock
from tests.district import Cell
from tests.evalinputs_fixtures import OTHER, OWNER, PERIOD, A, B, add_scheme, workbook
from tests.helpers import add_user, clocked_app, login

API = "/api/evaluation"
NOW = dt.datetime(2026, 11, 20, 10, 0, tzinfo=BEIJING)
ROLES: dict[str, tuple[str, str | None, str | None]] = {
    "owner": ("assessor", None, OWNER),
    "other": ("assessor", None, OTHER),
    "district": ("district", None, None),
    "analyst": ("analyst", None, None),
    "commander": ("commander", A, None),
}


@pytest.fixture
def clients(connection: sa.Connection, district: list[Cell]) -> dict[str, FlaskClient]:
    add_scheme(connection)
    app = clocked_app(connection, FrozenClock(NOW))
    out = {}
    for name, (role, street, unit) in ROLES.items():
        out[name] = login(app.test_client(), add_user(connection, f"ev-{name}", role, street, unit))
    return out


def _put(client: FlaskClient, **body: Any) -> Any:
    return client.put(f"{API}/scores", json={"period": PERIOD, **body})


def _scores(connection: sa.Connection) -> list[tuple[Any, ...]]:
    connection.exec_driver_sql("reset role")
    rows = connection.execute(
        sa.text(
            "select item_code, street_code, points::float, evidence, scored_by"
            " from evaluation_scores order by 1, 2"
        )
    )
    return [tuple(r) for r in rows]


def test_the_owners_assessor_scores_and_the_audit_shows_it(
    clients: dict[str, FlaskClient], connection: sa.Connection
) -> None:
    owner = clients["owner"]
    first = _put(owner, item="law_a", street=A, points=8, evidence="台账齐全", source="form")
    assert first.status_code == 200, first.get_json()
    second = _put(owner, item="law_a", street=A, points=6, evidence="抽查缺项")
    assert second.get_json()["written"][0]["old_points"] == 8.0
    assert _scores(connection) == [("law_a", A, 6.0, "抽查缺项", "ev-owner")]
    for reader in ("district", "analyst", "owner"):
        trail = clients[reader].get(f"{API}/scores/audit?period={PERIOD}").get_json()["audit"]
        assert [(t["old_points"], t["new_points"], t["changed_by"]) for t in trail] == [
            (8.0, 6.0, "ev-owner"),
            (None, 8.0, "ev-owner"),
        ]
        assert dt.datetime.fromisoformat(trail[0]["changed_at"]) == NOW
        assert [t["source"] for t in trail] == ["api", "form"]


def test_the_grid_shows_the_assessor_its_own_items_and_the_district_all(
    clients: dict[str, FlaskClient],
) -> None:
    mine = clients["owner"].get(f"{API}/scores?period={PERIOD}").get_json()
    assert [i["code"] for i in mine["items"]] == ["law_a", "party_build", "honours"]
    assert mine["may_score"] is True
    assert [i["min"] for i in mine["items"]] == [0, 0, -3]
    every = clients["district"].get(f"{API}/scores?period={PERIOD}").get_json()
    assert [i["code"] for i in every["items"]] == [
        "law_a",
        "law_b",
        "party_build",
        "work_a",
        "honours",
    ]
    assert every["may_score"] is False


@pytest.mark.parametrize("who", ["other", "district", "analyst", "commander"])
def test_no_one_else_scores_the_owners_item(
    clients: dict[str, FlaskClient], connection: sa.Connection, who: str
) -> None:
    response = _put(clients[who], item="law_a", street=A, points=8, evidence="x")
    assert response.status_code == 403
    assert "无权" in response.get_json()["message"]
    assert _scores(connection) == []


def test_a_bad_score_is_a_400_in_chinese(clients: dict[str, FlaskClient]) -> None:
    response = _put(clients["owner"], item="law_a", street=A, points=11, evidence="x")
    assert response.status_code == 400
    body = response.get_json()
    assert "超出范围" in body["rejected"][0]["reason"]
    missing = clients["owner"].put(f"{API}/scores", json={"item": "law_a"})
    assert missing.status_code == 400 and "考评周期" in missing.get_json()["message"]
    for bad in ("2026Q4", "2026-13", "11-2026"):  # the scheme's periods are months
        answer = clients["district"].get(f"{API}/scores?period={bad}")
        assert answer.status_code == 400, bad
        assert "Traceback" not in answer.get_data(as_text=True)


INPUT_ROUTES = [
    ("GET", f"{API}/scores?period={PERIOD}"),
    ("PUT", f"{API}/scores"),
    ("GET", f"{API}/scores/audit?period={PERIOD}"),
    ("GET", f"{API}/scores/template.xlsx?period={PERIOD}"),
    ("POST", f"{API}/scores/import?period={PERIOD}"),
    ("GET", f"{API}/tasks"),
    ("POST", f"{API}/tasks"),
    ("PATCH", f"{API}/tasks/1"),
    ("POST", f"{API}/events"),
    ("POST", f"{API}/survey/import?period={PERIOD}"),
    ("GET", f"{API}/survey?period={PERIOD}"),
]


@pytest.mark.parametrize(("method", "url"), INPUT_ROUTES)
def test_a_commander_is_refused_every_input_route(
    clients: dict[str, FlaskClient], method: str, url: str
) -> None:
    response = clients["commander"].open(url, method=method, json={"period": PERIOD})
    assert response.status_code == 403, (method, url)
    assert "无权" in response.get_json()["message"]


def _fill(data: bytes, points: dict[str, float]) -> bytes:
    book = load_workbook(io.BytesIO(data))
    ws = book["评分"]
    for row in ws.iter_rows(min_row=2):
        if row[2].value in points:
            row[5].value = points[row[2].value]
            row[6].value = f"依据 {row[0].value}"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_the_template_downloads_and_imports_back(
    clients: dict[str, FlaskClient], connection: sa.Connection
) -> None:
    owner = clients["owner"]
    template = owner.get(f"{API}/scores/template.xlsx?period={PERIOD}")
    assert template.status_code == 200
    assert template.mimetype.endswith("spreadsheetml.sheet")
    filled = _fill(template.data, {"party_build": 12.5})
    answer = owner.post(
        f"{API}/scores/import?period={PERIOD}",
        data={"file": (io.BytesIO(filled), "filled.xlsx")},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 200, answer.get_json()
    streets = [r[0] for r in connection.execute(sa.text("select code from streets order by 1"))]
    assert _scores(connection) == [
        ("party_build", s, 12.5, f"依据 {s}", "ev-owner") for s in streets
    ]
    other = clients["other"].post(
        f"{API}/scores/import?period={PERIOD}",
        data={"file": (io.BytesIO(filled), "filled.xlsx")},
        content_type="multipart/form-data",
    )
    assert other.status_code == 403  # every row is another unit's item


def test_a_bad_upload_lists_every_reason_and_writes_nothing(
    clients: dict[str, FlaskClient], connection: sa.Connection
) -> None:
    data = workbook(
        [
            ["街道编码", "街道", "考核项编码", "考核项", "满分", "得分", "依据说明"],
            [A, "", "law_a", "", 10, 5, "好"],
            [B, "", "law_a", "", 10, "abc", "好"],
            [B, "", "party_build", "", 15, 3, ""],
        ],
        title="评分",
    )
    response = clients["owner"].post(
        f"{API}/scores/import?period={PERIOD}",
        data={"file": (io.BytesIO(data), "bad.xlsx")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    rejected = response.get_json()["rejected"]
    assert [(r["row"], r["column"]) for r in rejected] == [(3, "得分"), (4, "依据说明")]
    assert _scores(connection) == []


def test_tasks_are_handed_out_listed_and_marked_done(
    clients: dict[str, FlaskClient],
) -> None:
    owner = clients["owner"]
    made = owner.post(
        f"{API}/tasks",
        json={
            "kind": "city",
            "title": "背街小巷整治",
            "streets": [A, B],
            "deadline": "2026-11-19T18:00",
            "item": "city_tasks",
        },
    )
    assert made.status_code == 201, made.get_json()
    ids = made.get_json()["ids"]
    # The clock stands at 11-20 10:00 Beijing: past the deadline.
    done = owner.patch(f"{API}/tasks/{ids[0]}", json={"done_at": "2026-11-19T17:00:00+08:00"})
    assert done.get_json()["state"] == "done_on_time"
    refused = clients["other"].patch(f"{API}/tasks/{ids[1]}", json={})
    assert refused.status_code == 403
    listed = clients["district"].get(f"{API}/tasks?period={PERIOD}").get_json()["tasks"]
    assert [(t["street"], t["state_name"]) for t in listed] == [(A, "按时完成"), (B, "逾期未完成")]
    overdue = clients["analyst"].get(f"{API}/tasks?state=overdue").get_json()["tasks"]
    assert [t["id"] for t in overdue] == [ids[1]]
    october = clients["district"].get(f"{API}/tasks?period=2026-10").get_json()["tasks"]
    assert october == []


def test_an_event_is_recorded_by_its_owner_only(clients: dict[str, FlaskClient]) -> None:
    body = {"item": "overdue", "street": A, "occurred_at": "2026-11-18T09:00:00+08:00"}
    assert clients["owner"].post(f"{API}/events", json=body).status_code == 403
    made = clients["other"].post(f"{API}/events", json=body)
    assert made.status_code == 201, made.get_json()


def test_the_district_alone_imports_the_survey(
    clients: dict[str, FlaskClient], connection: sa.Connection
) -> None:
    csv_text = (
        "街道编码,题目编码,样本量,满意,基本满意,不满意,5分,4分,3分,2分,1分\n"
        f"{A},overall,4,2,2,0,,,,,\n"
        f"{A},environment,2,,,,2,0,0,0,0\n"
        f"{A},service,2,,,,0,0,2,0,0\n"
    ).encode()

    def send(client: FlaskClient) -> Any:
        return client.post(
            f"{API}/survey/import?period={PERIOD}",
            data={"file": (io.BytesIO(csv_text), "survey.csv")},
            content_type="multipart/form-data",
        )

    for who in ("owner", "analyst", "commander"):
        assert send(clients[who]).status_code == 403, who
    assert send(clients["district"]).status_code == 200
    got = clients["analyst"].get(f"{API}/survey?period={PERIOD}").get_json()["streets"]
    [a] = [s for s in got if s["street"] == A]
    # overall: (100+100+90+90)/4 = 95; environment 100; service 50.
    assert a["score"] == pytest.approx(0.5 * 95 + 0.25 * 100 + 0.25 * 50)
    assert a["sample"] == 4


def test_the_page_opens_for_the_assessor_and_the_district_only(
    clients: dict[str, FlaskClient],
) -> None:
    forms = {"owner": ("bd-import-form", "bd-task-form"), "district": ("bd-survey-form",)}
    every = {"bd-import-form", "bd-task-form", "bd-survey-form"}
    for who in ("owner", "district", "analyst"):
        page = clients[who].get("/evaluation/score")
        assert page.status_code == 200, who
        html = page.get_data(as_text=True)
        assert "考评录入" in html
        shown = {form for form in every if f'id="{form}"' in html}
        assert shown == set(forms.get(who, ())), who
    assert clients["commander"].get("/evaluation/score").status_code == 403
