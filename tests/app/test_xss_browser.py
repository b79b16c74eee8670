"""Stored XSS: HTML in the data is shown as text on every page, to every role, never run.

A small demo district whose street, community, lane, lane chief, service hall, enforcement
case, relocation target and renovation project names, and request categories, descriptions
and addresses, carry `<img src=x onerror=…>` and `<script>` payloads, loaded through the
production ETL (and one request filed through Open311). Each role that may see them opens
each of its pages in Chromium with the server's CSP bypassed — so that only escaping stands
between the payload and the page — and every tooltip and popup of the map is opened. A payload
that ran would push to `window.__xss`; one that became markup would leave an `<img src="x">`.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa
from shapely.geometry import shape

from app import create_app, migrate
from app.auth import new_token
from app.db import make_engine
from etl.demo.extracts import REQUEST_COLUMNS
from etl.demo.load import generate, load
from etl.jobs import run_file
from layers.accounts import api_tokens
from tests.clock import BEIJING as ZONE
from tests.helpers import add_user, drop_database, new_database
from tests.plugins.browser import free_port

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ROLES = ("district", "commander", "analyst", "planner", "clerk")


def payload(where: str) -> str:
    """Markup that, if it ever became markup, would run and say where it came from."""
    return (
        f"<img src=x onerror=\"window.__xss.push('{where}')\">"
        f"<script>window.__xss.push('{where}')</script>《{where}》"
    )


MARKER = "<img src=x onerror="  # how a payload reads when it is shown as text
FILE_NAME = "<img src=x onerror=\"window.__xss.push('文件名')\">《文件名》"


@dataclass
class Poisoned:
    url: str
    engine: sa.Engine
    street: str
    run_with_rejects: int


def _poison_geojson(path: Path, street: str | None, fields: dict[str, str]) -> dict[str, Any]:
    data = json.loads(path.read_text("utf-8"))
    for feature in data["features"]:
        props = feature["properties"]
        if street is None or props.get("street_code", props.get("code")) == street:
            props.update({k: payload(v) for k, v in fields.items()})
    path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    return dict(data)


def _poison_csv(path: Path, fields: dict[str, str]) -> None:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
        columns = list(rows[0])
    for row in rows:
        row.update({k: payload(v) for k, v in fields.items()})
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _poison_xlsx(path: Path, fields: dict[str, str]) -> None:
    book = openpyxl.load_workbook(path)
    sheet = book.active
    header = [c.value for c in sheet[1]]
    for row in sheet.iter_rows(min_row=2):
        for column, where in fields.items():
            row[header.index(column)].value = payload(where)
    book.save(path)


def _requests_csv(path: Path, lng: float, lat: float) -> Path:
    """Ten open requests of the last hours in the street, and one rejected row (bad date)."""
    now = dt.datetime.now(ZONE).replace(tzinfo=None)
    rows = []
    for i in range(10):
        row = dict.fromkeys(REQUEST_COLUMNS, "")
        row.update(
            {
                "工单编号": f"XSS{i:04d}",
                "受理时间": (now - dt.timedelta(hours=1, minutes=i)).strftime("%Y-%m-%d %H:%M:%S"),
                "来源渠道": "12345热线",
                "诉求类别": payload("诉求类别"),
                "诉求内容": payload("诉求内容"),
                "地址": payload("地址"),
                "经度": f"{lng + i * 1e-5:.7f}",
                "纬度": f"{lat:.7f}",
                "坐标系": "WGS84",
                "状态": "待派单",
            }
        )
        rows.append(row)
    bad = dict(rows[0], 工单编号="XSSBAD", 受理时间=payload("拒收行"))
    rows.append(bad)
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(REQUEST_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def poisoned(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Poisoned]:
    from waitress.server import create_server

    name = f"blockdata_test_xss_{os.getpid()}"
    url = new_database(server_url, name)
    migrate.upgrade(migrate.alembic_config(url))
    demo = tmp_path_factory.mktemp("xss")
    generate(demo, requests=800, cases=80, targets=30, projects=40, end=dt.date.today())
    streets = json.loads((demo / "streets.geojson").read_text("utf-8"))
    street = min(f["properties"]["code"] for f in streets["features"])
    boundary = next(f for f in streets["features"] if f["properties"]["code"] == street)
    inside = shape(boundary["geometry"]).representative_point()
    _poison_geojson(demo / "streets.geojson", street, {"name": "街道名称", "commander": "战区司令"})
    _poison_geojson(demo / "communities.geojson", street, {"name": "社区名称"})
    _poison_geojson(demo / "lanes.geojson", street, {"name": "街巷名称", "lane_chief": "街巷长"})
    _poison_geojson(
        demo / "service_halls.geojson", street, {"name": "大厅名称", "address": "大厅地址"}
    )
    _poison_geojson(
        demo / "renovation_projects.geojson", None, {"项目名称": "项目名称", "类型": "项目类型"}
    )
    _poison_csv(demo / "enforcement_cases.csv", {"案件类型": "案件类型", "地址": "案件地址"})
    _poison_xlsx(demo / "relocation_targets.xlsx", {"名称": "疏解名称", "类型": "疏解类型"})
    engine = make_engine(url)
    with engine.connect() as conn:
        load(conn, demo)
        extra = run_file(
            conn,
            # The file's name too: the load reports show it.
            _requests_csv(demo / (FILE_NAME + ".csv"), inside.x, inside.y),
            layer="service_requests",
        )
        assert (extra.inserted, extra.rejected) == (10, 1), extra.reasons
        for role in ROLES:
            add_user(conn, f"x-{role}", role, street if role in ("commander", "clerk") else None)
        uid = conn.execute(sa.text("select id from users where name = 'x-commander'")).scalar_one()
        token, digest = new_token()
        conn.execute(sa.insert(api_tokens).values(user_id=uid, token_sha256=digest))
        run = conn.execute(sa.text("select max(run_id) from etl_rejects")).scalar_one()
        conn.commit()
    app = create_app({"DATABASE_URL": url})
    port = free_port()
    server = create_server(app, host="127.0.0.1", port=port, threads=6)
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    try:
        # One request filed through Open311, as a GeoReport client would.
        form = urllib.parse.urlencode(
            {
                "api_key": token,
                "service_code": "环境卫生",
                "lat": f"{inside.y:.7f}",
                "long": f"{inside.x:.7f}",
                "description": payload("Open311描述"),
                "address_string": payload("Open311地址"),
            }
        ).encode()
        with urllib.request.urlopen(base + "/open311/v2/requests.json", form) as answer:
            assert answer.status == 200
        yield Poisoned(base, engine, street, int(run))
    finally:
        server.close()
        engine.dispose()
        app.extensions["blockdata.engine"].dispose()
        drop_database(server_url, name)


OPEN_EVERYTHING = """async () => {
  if (!window.BD || !BD.map) return 0;
  let n = 0;
  const layers = [];
  BD.map.eachLayer((l) => layers.push(l));
  for (const l of layers) {
    if (l.getTooltip && l.getTooltip()) { l.openTooltip(); n += 1; }
    if (l.getPopup && l.getPopup()) { l.openPopup(); n += 1; }
  }
  return n;
}"""
SHOWN_AND_RUN = """async () => {
  // Every image settled first: an injected one would have fired its onerror by then.
  await Promise.all([...document.images].map((img) => img.complete ? null : new Promise((done) => {
    img.addEventListener('load', done);
    img.addEventListener('error', done);
  })));
  await new Promise((done) => setTimeout(done, 0));
  return {
  ran: window.__xss.slice(),
  images: document.querySelectorAll('img[src="x"]').length,
  // A script that carries a payload: any but the page's JSON settings (#bd-config: data, never
  // run, its "<" written as \\u003c so no payload can close the element early).
  scripts: [...document.scripts].filter((s) => s.textContent.includes('__xss')
    && !(s.type === 'application/json' && !s.textContent.includes('<')
      && JSON.parse(s.textContent))).length,
  text: document.documentElement.textContent,
  };
}"""
# The pages each role opens (the commander's: their street); what each must show as text.
PAGES: dict[str, list[str]] = {
    "district": ["/", "/command/{street}", "/planner", "/imports", "/imports/{run}"],
    "commander": ["/command/{street}"],
    "analyst": ["/", "/command/{street}", "/planner"],
    "planner": ["/planner"],
    "clerk": ["/imports", "/imports/{run}"],
}
SHOWN: dict[str, list[str]] = {
    "/": ["街道名称"],
    "/command/{street}": [
        "街道名称",
        "战区司令",
        "社区名称",
        "街巷名称",
        "街巷长",
        "大厅名称",
        "大厅地址",
        "诉求类别",
    ],
    "/planner": ["项目名称", "疏解名称"],
    "/imports": ["文件名"],
    "/imports/{run}": ["拒收行", "诉求内容"],
}


@pytest.mark.parametrize("role", ROLES)
def test_html_in_the_data_is_shown_as_text_and_never_runs(
    browser: Any,
    poisoned: Poisoned,
    role: str,
) -> None:
    context = browser.new_context(bypass_csp=True, viewport={"width": 1400, "height": 900})
    context.add_init_script("window.__xss = [];")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(poisoned.url + "/login")
    page.fill("input[name=name]", f"x-{role}")
    page.fill("input[name=password]", "secret-password")
    with page.expect_navigation():
        page.click("button[type=submit]")
    for template in PAGES[role]:
        path = template.format(street=poisoned.street, run=poisoned.run_with_rejects)
        response = page.goto(poisoned.url + path)
        assert response is not None and response.status == 200, (role, path)
        if not path.startswith("/imports"):
            page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=30_000)
        if path.startswith("/command"):
            # The live layer's latest requests (the payload ones among them) are drawn.
            page.wait_for_function(
                "() => Object.keys(window[BD.realtime]._features || {}).length > 0",
                timeout=30_000,
            )
        opened = page.evaluate(OPEN_EVERYTHING)
        assert path.startswith("/imports") or opened > 0, (role, path)
        seen = page.evaluate(SHOWN_AND_RUN)
        assert seen["ran"] == [], (role, path, seen["ran"])
        assert seen["images"] == 0 and seen["scripts"] == 0, (role, path, seen)
        for where in SHOWN[template]:
            assert MARKER in seen["text"] and f"《{where}》" in seen["text"], (role, path, where)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"xss-{role}{path.replace('/', '-')}.png"))
    if role in ("district", "commander", "analyst"):
        # The Open311 request's fields, in the command view's popups of the live layer.
        page.goto(poisoned.url + f"/command/{poisoned.street}")
        page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=30_000)
        page.wait_for_function(
            "() => Object.values(window[BD.realtime]._features || {})"
            ".some((f) => String(f.properties.address).includes('Open311'))",
            timeout=30_000,
        )
        page.evaluate(OPEN_EVERYTHING)
        seen = page.evaluate(SHOWN_AND_RUN)
        assert seen["ran"] == [] and seen["images"] == 0
    assert errors == []
    context.close()
