"""`blockdata units`: build, import and list, as a clerk runs them (each commits, so they run
against a database of their own with the tiny district); and who may read or write units."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from app.cli import main
from app.db import make_engine
from etl.units import build_units
from tests.etl.committed import committed_database

A, B = "110102001", "110102003"
LISTING = (
    "select u.code, u.name, u.kind, u.street_code, s.name as street_name, u.active, "
    "case u.kind when 'centre' then '街道中心' when 'department' then '七大部' "
    "when 'station' then '科站队所' when 'district_department' then '区级部门' end as kind_label "
    "from units u left join streets s on s.code = u.street_code "
)
# street by street (centre, departments, stations), then the district departments
ORDER = (
    "order by u.street_code nulls last, "
    "array_position(array['centre', 'department', 'station', 'district_department'], u.kind), "
    "u.code"
)


@pytest.fixture(scope="module")
def own_url(server_url: str) -> Iterator[str]:
    with committed_database(server_url, "blockdata_units_cli") as url:
        yield url


def _cli(url: str, *args: str) -> Any:
    return CliRunner().invoke(main, ["units", *args], env={"DATABASE_URL": url})


def _read(url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(sql), params)]
    finally:
        engine.dispose()


def test_build_import_and_list(own_url: str, tmp_path: Path) -> None:
    built = _cli(own_url, "build")
    assert built.exit_code == 0, built.output
    counted = _read(own_url, "select count(*) as n from units")[0]["n"]
    assert counted >= 2 * 8 + 5
    assert f"新增 inserted {counted} " in built.output

    path = tmp_path / "units.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["code", "name", "kind", "street_code", "active"])
        writer.writerow([f"{A}-police", "测试001派出所", "station", A, "是"])
        writer.writerow([f"{B}-police", "测试003派出所", "科站队所", B, "否"])
        writer.writerow([f"{B}-justice", "测试003司法所", "科站队所", "", "是"])  # no street
    imported = _cli(own_url, "import", str(path))
    assert imported.exit_code == 0, imported.output
    assert "新增 inserted 2 " in imported.output and "street_required 1" in imported.output
    run_id = _read(own_url, "select max(id) as id from etl_runs")[0]["id"]
    assert f"blockdata etl rejects {run_id}" in imported.output

    again = _cli(own_url, "import", str(path))
    assert "新增 inserted 0 + 更新 updated 0 + 未变 unchanged 2" in again.output, again.output

    listed = _cli(own_url, "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output) == _read(own_url, LISTING + ORDER)

    stations = _cli(own_url, "list", "--street", B, "--kind", "station", "--json")
    expected = _read(
        own_url, LISTING + "where u.street_code = :s and u.kind = 'station' " + ORDER, s=B
    )
    assert json.loads(stations.output) == expected
    assert [u["code"] for u in expected] == [f"{B}-police"]

    table = _cli(own_url, "list", "--street", A).output.splitlines()
    rows = _read(own_url, LISTING + "where u.street_code = :s " + ORDER, s=A)
    header = ["编码", "code", "名称", "name", "类型", "kind", "街道", "street", "启用", "active"]
    assert table[0].split() == header
    assert len(table) == len(rows) + 2 and table[-1] == f"共 {len(rows)} 个单位 units"
    kinds = {"centre": "街道中心", "department": "七大部", "station": "科站队所"}
    for line, row in zip(table[1:-1], rows, strict=True):
        assert line.split() == [
            row["code"],
            row["name"],
            kinds[row["kind"]],
            row["street_name"],
            A,
            "是" if row["active"] else "否",
        ]


def test_a_failed_import_exits_1_and_changes_nothing(own_url: str, tmp_path: Path) -> None:
    before = _read(own_url, LISTING + "order by 1")
    path = tmp_path / "units.csv"
    path.write_text(f"编码,名称\n{A}-x,某所\n", encoding="utf-8")
    result = _cli(own_url, "import", str(path))
    assert result.exit_code == 1
    assert "缺少列" in result.output and "类型" in result.output
    assert _read(own_url, LISTING + "order by 1") == before
    status = _read(own_url, "select status from etl_runs order by id desc limit 1")
    assert status == [{"status": "failed"}]


# --- who reads and writes units -------------------------------------------------------------


def _refused(conn: sa.Connection, statement: str) -> bool:
    """Whether `statement` fails for lack of privilege (in a savepoint)."""
    try:
        with conn.begin_nested():
            conn.exec_driver_sql(statement)
    except sa.exc.DBAPIError as exc:
        return getattr(exc.orig, "sqlstate", None) == "42501"
    return False


@pytest.mark.parametrize(
    ("role", "zones"),
    # the web login; the reader as the district and as each street's commander (the units
    # are not filtered by zone: a unit's name is not secret)
    [("blockdata_web", [None]), ("blockdata_reader", ["*", A, B])],
)
def test_the_servers_roles_read_units_and_never_write_them(
    connection: sa.Connection, district: Any, role: str, zones: list[str | None]
) -> None:
    build_units(connection)
    everything = connection.exec_driver_sql("select * from units order by code").all()
    assert len(everything) > 16
    connection.exec_driver_sql(f"set local role {role}")
    for zone in zones:
        if zone is not None:
            connection.execute(
                sa.text("select set_config('blockdata.zone', :z, true)"), {"z": zone}
            )
        assert connection.exec_driver_sql("select * from units order by code").all() == everything
    for statement in [
        "insert into units (code, name, kind, street_code) "
        f"values ('{A}-x', '某所', 'station', '{A}')",
        f"update units set active = false where code = '{A}-centre'",
        "delete from units",
        "truncate units",
        "alter table units drop constraint ck_units_street",
    ]:
        assert _refused(connection, statement), (role, statement)
    connection.exec_driver_sql("reset role")
    assert connection.exec_driver_sql("select * from units order by code").all() == everything
