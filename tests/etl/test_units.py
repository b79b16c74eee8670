"""Units (承办单位): built for every street, imported from a file with every bad row kept, the
database's own checks. The tiny district has the streets 110102001 and 110102003."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from etl import units as etl_units
from etl.jobs import EtlError
from etl.units import DISTRICT_DEPARTMENTS, build_units, import_units
from layers.queries.units import list_units

A, B = "110102001", "110102003"
# The seven departments of DESIGN.md, by the suffix of their code.
SEVEN = {
    "general": "综合保障部",
    "party": "党群工作部",
    "safety": "平安建设部",
    "city": "城市管理部",
    "social": "社会建设部",
    "livelihood": "民生保障部",
    "development": "地区发展部",
}
CENTRE = "政务服务和街区治理中心"
HEADER = ["编码", "名称", "类型", "街道编码", "启用"]


def _units(conn: sa.Connection) -> dict[str, tuple[Any, ...]]:
    rows = conn.exec_driver_sql(
        "select code, name, kind, street_code, active, updated_at from units"
    ).all()
    return {r[0]: tuple(r[1:]) for r in rows}


def _write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _rejects(conn: sa.Connection, run_id: int) -> list[tuple[int, str, str | None]]:
    return [
        tuple(r)
        for r in conn.exec_driver_sql(
            "select row_number, reason, source_id from etl_rejects where run_id = %s "
            "order by row_number",
            (run_id,),
        ).all()
    ]


def _run(conn: sa.Connection, run_id: int) -> tuple[Any, ...]:
    return tuple(
        conn.exec_driver_sql(
            "select status, read, inserted, updated, unchanged, rejected from etl_runs "
            "where id = %s",
            (run_id,),
        ).one()
    )


def test_build_gives_every_street_its_centre_and_seven_departments(
    connection: sa.Connection, district: Any
) -> None:
    report = build_units(connection)
    listed = yaml.safe_load(DISTRICT_DEPARTMENTS.read_text(encoding="utf-8"))
    expected = {}
    for street in (A, B):
        expected[f"{street}-centre"] = (CENTRE, "centre", street, True)
        for suffix, name in SEVEN.items():
            expected[f"{street}-{suffix}"] = (name, "department", street, True)
    for entry in listed["district_departments"]:
        expected[entry["code"]] = (entry["name"], "district_department", None, True)
    assert {code: row[:4] for code, row in _units(connection).items()} == expected
    assert len(listed["district_departments"]) >= 5
    assert (report.status, report.read, report.inserted, report.rejected) == (
        "succeeded",
        len(expected),
        len(expected),
        0,
    )
    assert _run(connection, report.run_id) == ("succeeded", len(expected), len(expected), 0, 0, 0)

    before = _units(connection)
    again = build_units(connection)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, len(expected))
    assert _units(connection) == before  # not even updated_at moved


def test_the_seven_departments_are_the_routings(connection: sa.Connection) -> None:
    """Every department requests are routed to (etl/config/departments.yaml) is a unit that
    build makes, and no other."""
    from etl.rules import CONFIG_DIR

    routing = yaml.safe_load((CONFIG_DIR / "departments.yaml").read_text(encoding="utf-8"))
    assert set(routing["departments"]) == set(SEVEN.values())
    assert routing["default"] in SEVEN.values()


def test_import_loads_good_rows_and_keeps_each_bad_one_with_its_reason(
    connection: sa.Connection, district: Any, tmp_path: Path
) -> None:
    build_units(connection)
    before = _units(connection)
    rows = [
        [f"{A}-justice", "测试001司法所", "科站队所", A, "是"],  # 1 loads
        ["district-test", "区测试局", "district_department", "", ""],  # 2 loads
        [f"{B}-police", "测试003派出所", "station", B, "否"],  # 3 loads, inactive
        [f"{A}-labour", "", "科站队所", A, "是"],  # 4 missing_required
        [f"{A}-office", "测试办公室", "科室", A, "是"],  # 5 bad_value (kind)
        [f"{A}-market", "测试001市场监管所", "科站队所", A, "也许"],  # 6 bad_value (active)
        [f"{A}-hub", "第二中心", "中心", A, "是"],  # 7 generated_unit (kind)
        [f"{A}-city", "城管队", "科站队所", A, "是"],  # 8 generated_unit (a department's code)
        [f"{A}-housing", "测试房管所", "科站队所", "", "是"],  # 9 street_required
        ["district-law", "区司法局", "区级部门", A, "是"],  # 10 street_not_allowed
        ["110102099-police", "某派出所", "科站队所", "110102099", "是"],  # 11 unknown_street
        [f"{B}-fire", "测试消防站", "科站队所", A, "是"],  # 12 code_format (other street)
        [f"{A}-Police", "测试001派出所", "科站队所", A, "是"],  # 13 code_format (upper case)
        ["market", "区市场监管局", "区级部门", "", "是"],  # 14 code_format (no district-)
        [f"{A}-tax", "测试税务所", "科站队所", A, "是"],  # 15 duplicate (16 loads)
        [f"{A}-tax", "测试001税务所", "科站队所", A, "是"],  # 16 loads
        [f"{A}-law", "测试001司法所", "科站队所", A, "是"],  # 17 duplicate_name (row 1's)
        [f"{B}-party2", "党群工作部", "科站队所", B, "是"],  # 18 duplicate_name (built)
        [f"{A}-nul", "测试\x00所", "科站队所", A, "是"],  # 19 nul_byte
    ]
    path = _write_csv(tmp_path / "units.csv", rows)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(f"{A}-extra,多一列,科站队所,{A},是,多余\n")  # 20 bad_row
    report = import_units(connection, path)

    expected_rejects = [
        (4, "missing_required", f"{A}-labour"),
        (5, "bad_value", f"{A}-office"),
        (6, "bad_value", f"{A}-market"),
        (7, "generated_unit", f"{A}-hub"),
        (8, "generated_unit", f"{A}-city"),
        (9, "street_required", f"{A}-housing"),
        (10, "street_not_allowed", "district-law"),
        (11, "unknown_street", "110102099-police"),
        (12, "code_format", f"{B}-fire"),
        (13, "code_format", f"{A}-Police"),
        (14, "code_format", "market"),
        (15, "duplicate", f"{A}-tax"),
        (17, "duplicate_name", f"{A}-law"),
        (18, "duplicate_name", f"{B}-party2"),
        (19, "nul_byte", f"{A}-nul"),
        (20, "bad_row", None),
    ]
    assert _rejects(connection, report.run_id) == expected_rejects
    assert (report.read, report.inserted, report.updated, report.unchanged) == (20, 4, 0, 0)
    assert report.rejected == len(expected_rejects)
    assert _run(connection, report.run_id) == ("succeeded", 20, 4, 0, 0, 16)
    after = _units(connection)
    new = {code: row[:4] for code, row in after.items() if code not in before}
    assert new == {
        f"{A}-justice": ("测试001司法所", "station", A, True),
        "district-test": ("区测试局", "district_department", None, True),
        f"{B}-police": ("测试003派出所", "station", B, False),
        f"{A}-tax": ("测试001税务所", "station", A, True),
    }
    assert {c: after[c] for c in before} == before  # the built units are untouched

    # Each reject keeps the row as the file has it, and its message names the bad value.
    raw, message = connection.exec_driver_sql(
        "select raw, message from etl_rejects where run_id = %s and row_number = 11",
        (report.run_id,),
    ).one()
    assert raw == dict(zip(HEADER, rows[10], strict=True))
    assert "110102099" in message


def test_reimporting_the_same_file_changes_nothing_and_a_change_is_an_update(
    connection: sa.Connection, district: Any, tmp_path: Path
) -> None:
    rows = [
        [f"{A}-justice", "测试001司法所", "科站队所", A, "是"],
        [f"{B}-justice", "测试003司法所", "科站队所", B, "是"],
        ["district-test", "区测试局", "区级部门", "", "是"],
    ]
    first = import_units(connection, _write_csv(tmp_path / "a.csv", rows))
    assert (first.inserted, first.updated, first.unchanged, first.rejected) == (3, 0, 0, 0)
    snapshot = _units(connection)

    again = import_units(connection, _write_csv(tmp_path / "a.csv", rows))
    assert (again.inserted, again.updated, again.unchanged, again.rejected) == (0, 0, 3, 0)
    assert _units(connection) == snapshot

    rows[1][4] = "否"  # the station closes
    changed = import_units(connection, _write_csv(tmp_path / "b.csv", rows))
    assert (changed.inserted, changed.updated, changed.unchanged) == (0, 1, 2)
    after = _units(connection)
    assert after[f"{B}-justice"][3] is False
    assert {c: r for c, r in after.items() if c != f"{B}-justice"} == {
        c: r for c, r in snapshot.items() if c != f"{B}-justice"
    }


def test_a_name_freed_in_the_same_file_may_be_taken(
    connection: sa.Connection, district: Any, tmp_path: Path
) -> None:
    """Renaming one unit and giving its old name to another in one file is no clash."""
    import_units(
        connection, _write_csv(tmp_path / "a.csv", [[f"{A}-old", "测试所", "科站队所", A, "是"]])
    )
    swap = [
        [f"{A}-old", "测试旧所", "科站队所", A, "否"],
        [f"{A}-new", "测试所", "科站队所", A, "是"],
    ]
    report = import_units(connection, _write_csv(tmp_path / "b.csv", swap))
    assert (report.inserted, report.updated, report.rejected) == (1, 1, 0)
    assert {c: r[0] for c, r in _units(connection).items()} == {
        f"{A}-old": "测试旧所",
        f"{A}-new": "测试所",
    }


def test_a_failed_load_leaves_the_database_as_it_was(
    connection: sa.Connection, district: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_units(connection)
    before = _units(connection)
    rows = [
        [f"{A}-justice", "测试001司法所", "科站队所", A, "是"],
        [f"{A}-labour", "", "科站队所", A, "是"],  # a reject, to be saved after the upsert
    ]
    path = _write_csv(tmp_path / "units.csv", rows)

    def crash(*args: object) -> None:  # the rows are upserted by now
        assert connection.exec_driver_sql(
            f"select count(*) from units where code = '{A}-justice'"
        ).scalar_one()
        raise RuntimeError("disk full")

    monkeypatch.setattr(etl_units, "save_rejects", crash)
    with pytest.raises(EtlError, match="disk full") as caught:
        import_units(connection, path)
    assert _units(connection) == before
    run_id = caught.value.report.run_id
    status, error = connection.exec_driver_sql(
        "select status, error from etl_runs where id = %s", (run_id,)
    ).one()
    assert (status, error) == ("failed", "RuntimeError: disk full")
    assert _rejects(connection, run_id) == []


def test_a_file_without_a_required_column_fails_the_run(
    connection: sa.Connection, district: Any, tmp_path: Path
) -> None:
    path = _write_csv(
        tmp_path / "units.csv", [[f"{A}-x", "测试所", A]], ["编码", "名称", "街道编码"]
    )
    with pytest.raises(EtlError, match="kind / 类型 / 单位类型") as caught:
        import_units(connection, path)
    assert caught.value.report.status == "failed"
    assert _units(connection) == {}
    status = connection.exec_driver_sql(
        "select status from etl_runs where id = %s", (caught.value.report.run_id,)
    ).scalar_one()
    assert status == "failed"


def test_xlsx_and_yaml_files_load_alike(
    connection: sa.Connection, district: Any, tmp_path: Path
) -> None:
    import xlsxwriter

    workbook = tmp_path / "units.xlsx"
    book = xlsxwriter.Workbook(str(workbook))
    sheet = book.add_worksheet("单位")
    for r, row in enumerate(
        [
            ["code", "name", "kind", "street_code", "active"],
            [f"{A}-justice", "测试001司法所", "station", A, "是"],
            [f"{A}-police", "测试001派出所", "station", A, ""],
        ]
    ):
        sheet.write_row(r, 0, row)
    book.close()
    from_xlsx = import_units(connection, workbook)
    assert (from_xlsx.inserted, from_xlsx.rejected) == (2, 0)

    listing = tmp_path / "units.yaml"
    listing.write_text(
        yaml.safe_dump(
            {
                "stations": [{"code": f"{B}-justice", "name": "测试003司法所", "street_code": B}],
                "district_departments": [
                    {"code": "district-test", "name": "区测试局", "active": False},
                    {"code": "district-bad", "name": "区坏局", "street_code": A},
                ],
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    from_yaml = import_units(connection, listing)
    assert (from_yaml.read, from_yaml.inserted, from_yaml.rejected) == (3, 2, 1)
    assert _rejects(connection, from_yaml.run_id) == [(3, "street_not_allowed", "district-bad")]
    assert {c: r[:4] for c, r in _units(connection).items()} == {
        f"{A}-justice": ("测试001司法所", "station", A, True),
        f"{A}-police": ("测试001派出所", "station", A, True),
        f"{B}-justice": ("测试003司法所", "station", B, True),
        "district-test": ("区测试局", "district_department", None, False),
    }

    typo = tmp_path / "typo.yaml"
    typo.write_text("district_departments:\n  - {code: district-x, nmae: 区某局}\n", "utf-8")
    with pytest.raises(EtlError, match="unknown keys"):
        import_units(connection, typo)


def test_list_filters_by_street_and_kind(connection: sa.Connection, district: Any) -> None:
    build_units(connection)
    everything = list_units(connection)
    kinds = ["centre", "department", "station", "district_department"]
    order = sorted(
        _units(connection).items(), key=lambda u: (u[1][2] or "~", kinds.index(u[1][1]), u[0])
    )
    assert [u["code"] for u in everything] == [code for code, _ in order]
    assert everything[0]["code"] == f"{A}-centre"
    centre = list_units(connection, street=B, kind="centre")
    assert centre == [
        {
            "code": f"{B}-centre",
            "name": CENTRE,
            "kind": "centre",
            "street_code": B,
            "street_name": "测试003街道",
            "active": True,
            "kind_label": "街道中心",
        }
    ]
    assert {u["code"] for u in list_units(connection, kind="district_department")} == {
        e["code"]
        for e in yaml.safe_load(DISTRICT_DEPARTMENTS.read_text("utf-8"))["district_departments"]
    }


def _violates(conn: sa.Connection, sql: str) -> str | None:
    """The constraint `sql` violates (in a savepoint), None when it is accepted."""
    try:
        with conn.begin_nested():
            conn.exec_driver_sql(sql)
    except sa.exc.IntegrityError as exc:
        return getattr(exc.orig.diag, "constraint_name", None)  # type: ignore[union-attr]
    return None


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        # (codes that pass the code check, so that the street rule is the one broken)
        ("('district-centre', '中心', 'centre', null)", "ck_units_street"),
        ("('district-city', '城市管理部', 'department', null)", "ck_units_street"),
        ("('district-justice', '司法所', 'station', null)", "ck_units_street"),
        (f"('{A}-district', '区某局', 'district_department', '{A}')", "ck_units_street"),
        (f"('{A}-x', '某所', 'office', '{A}')", "ck_units_kind"),
        (f"('{B}-x', '某所', 'station', '{A}')", "ck_units_code"),
        (f"('{A}-X', '某所', 'station', '{A}')", "ck_units_code"),
        ("('x-1', '区某局', 'district_department', null)", "ck_units_code"),
        (f"('{A}-x', '  ', 'station', '{A}')", "ck_units_name"),
        ("('110102099-x', '某所', 'station', '110102099')", "fk_units_street_code_streets"),
        (f"('{A}-y', '测试所', 'station', '{A}')", "uq_units_street_code_name"),
        ("('district-y', '区测试局', 'district_department', null)", "uq_units_street_code_name"),
    ],
)
def test_the_database_refuses_what_breaks_the_rules(
    connection: sa.Connection, district: Any, values: str, constraint: str
) -> None:
    insert = "insert into units (code, name, kind, street_code) values "
    assert _violates(connection, insert + f"('{A}-x', '测试所', 'station', '{A}')") is None
    assert (
        _violates(connection, insert + "('district-x', '区测试局', 'district_department', null)")
        is None
    )
    assert _violates(connection, insert + values) == constraint


def test_the_imports_pages_name_a_units_run_in_chinese_with_its_rejects(
    connection: sa.Connection, district: Any, tmp_path: Path
) -> None:
    """A units run on /imports and /imports/<id>: titled 承办单位 (not the raw `units`), its
    rejected row shown with its reason — to the clerk and the district, not the analyst."""
    from app import create_app
    from tests.helpers import add_user, login

    build_units(connection)
    rows = [
        [f"{A}-justice", "页面测试司法所", "科站队所", A, "是"],
        ["bad", "", "科站队所", A, "是"],
    ]
    report = import_units(connection, _write_csv(tmp_path / "units.csv", rows))
    app = create_app({"TESTING": True, "DB_CONNECTION": connection, "WTF_CSRF_ENABLED": False})
    for role in ("clerk", "district"):
        street = A if role == "clerk" else None  # the clerk of a street reads every run
        client = login(app.test_client(), add_user(connection, f"units-page-{role}", role, street))
        listing = client.get("/imports").get_data(as_text=True)
        assert "承办单位" in listing, role
        assert f'href="/imports/{report.run_id}"' in listing, role
        page = client.get(f"/imports/{report.run_id}").get_data(as_text=True)
        assert f"导入记录 #{report.run_id} · 承办单位" in page, role
        assert "missing_required" in page, role
    analyst = login(app.test_client(), add_user(connection, "units-page-analyst", "analyst"))
    assert analyst.get(f"/imports/{report.run_id}").status_code == 403
