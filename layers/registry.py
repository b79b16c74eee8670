"""The layer registry: each layer declared once.

A `Layer` names its table, Chinese title, geometry, fields (each with its Chinese label,
whether it is published and whether it can be filtered on), time field and default style.
The SQLAlchemy table is built from that declaration, so migrations, ETL, API, tiles,
exports and legends all derive from this one place.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql as pg

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

SRID = 4326


class UnknownLayer(LookupError):
    """No layer of that name; maps to HTTP 404."""

    status = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"未知图层 unknown layer: {name!r}")
        self.name = name


@dataclass(frozen=True)
class Field:
    """One column of a layer: the column itself plus what the registry says of it."""

    column: sa.Column[Any]
    label: str
    published: bool = True
    filterable: bool = False

    @property
    def name(self) -> str:
        return self.column.name


@dataclass(frozen=True)
class Style:
    """Default Leaflet style; `by` colours features by a field's value."""

    color: str
    fill_color: str | None = None
    weight: float = 1.5
    fill_opacity: float = 0.2
    radius: float = 5.0
    by: str | None = None
    palette: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Layer:
    name: str
    title: str
    geometry_type: str
    fields: tuple[Field, ...]
    style: Style
    kind: str  # "admin" or "event"
    time_field: str | None = None
    min_zoom: int = 10
    max_zoom: int = 20
    # An admin level (`blockdata admin import --level`), and the level a polygon level nests in
    # (through its `<parent>_code` column).
    level: str | None = None
    parent: str | None = None
    overlay: bool = False  # drawn over the pages' maps (`/api/overlays/<layer>`)
    seeded: bool = False  # the tile seeder builds its tiles ahead of the requests
    # Exact counts per 100 m cell (layers.aggregates) that aggregated tiles may read instead
    # of the points: the (daily, periods) tables, and the columns of theirs a filter may name.
    cell_tables: tuple[str, str] | None = None
    cell_filters: tuple[str, ...] = ()
    table: sa.Table = field(init=False, compare=False, repr=False)

    @property
    def code_length(self) -> int | None:
        """The digits of a unit's code at this level (its key's length), None for events."""
        if self.level is None:
            return None
        length = self.table.c[self.key].type.length  # type: ignore[attr-defined]
        return int(length) if length is not None else None

    @property
    def key(self) -> str:
        return next(f.name for f in self.fields if f.column.primary_key)

    @property
    def published(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.published)

    @property
    def filterable(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.filterable)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"layer {self.name!r} has no field {name!r}")

    @property
    def labels(self) -> dict[str, str]:
        return {f.name: f.label for f in self.fields}


def _geom(geometry_type: str) -> sa.Column[Any]:
    # The GiST index is declared explicitly (see _table) so Alembic sees it like any other.
    return sa.Column(
        "geom",
        Geometry(geometry_type, srid=SRID, spatial_index=False),
        nullable=False,
    )


def _code(name: str, length: int, label: str, **kw: Any) -> Field:
    return Field(sa.Column(name, sa.String(length), **kw), label, filterable=True)


def _ref(
    name: str, length: int, target: str, label: str, nullable: bool = True, index: bool = True
) -> Field:
    return Field(
        sa.Column(name, sa.String(length), sa.ForeignKey(target), nullable=nullable, index=index),
        label,
        filterable=True,
    )


def _text(name: str, label: str, *, filterable: bool = False, **kw: Any) -> Field:
    return Field(sa.Column(name, sa.Text, **kw), label, filterable=filterable)


def _time(name: str, label: str, **kw: Any) -> Field:
    return Field(sa.Column(name, sa.DateTime(timezone=True), **kw), label)


def _date(name: str, label: str) -> Field:
    return Field(sa.Column(name, sa.Date), label)


def _event_head() -> list[Field]:
    """Identity and provenance shared by every event layer."""
    return [
        Field(sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True), "编号"),
        _text("source", "数据来源", nullable=False, filterable=True),
        _text("source_id", "来源编号", nullable=False),
    ]


def _event_tail() -> list[Field]:
    """Placement in the admin units, quality and bookkeeping shared by every event layer."""
    return [
        _ref("street_code", 9, "streets.code", "街道"),
        # Events are found by street (indexed) and time; a community's or grid's events are
        # a street's subset, and their counts live in the aggregates: two fewer indexes to
        # keep on every load.
        _ref("community_code", 12, "communities.code", "社区", index=False),
        _ref("grid_code", 15, "grids.code", "网格", index=False),
        Field(
            sa.Column("near_boundary", sa.Boolean, nullable=False, server_default=sa.false()),
            "靠近边界",
        ),
        _text("geocode_quality", "定位质量", filterable=True),
        Field(
            sa.Column(
                "etl_run_id",
                sa.Integer,
                sa.ForeignKey("etl_runs.id", ondelete="SET NULL"),
                nullable=True,
            ),
            "导入批次",
            published=False,
        ),
        Field(
            sa.Column(
                "updated_at",
                sa.DateTime(timezone=True),
                nullable=False,
                server_default=sa.func.now(),
            ),
            "更新时间",
        ),
    ]


# The maps' colours: every layer, every class of a layer's palette and every colour the pages
# add (overdue cases, the live requests, renovation progress) is distinct from all the others,
# so the legend reads one colour as one thing (tests/app/test_maps_browser.py checks it).
STATUS_PALETTE = {
    "待启动": "#9e9e9e",
    "未启动": "#9e9e9e",  # the same state under another name: one legend entry, 待启动/未启动
    "进行中": "#fb8c00",
    "已完成": "#43a047",
    "已验收": "#00897b",
    "暂缓": "#5d4037",
}
# Colours the pages draw beyond the layers' own styles (static/js/blockdata.js reads them).
PAGE_COLOURS = {
    "overdue_case": "#d81b60",  # an enforcement case past its deadline
    "latest_request": "#ff5252",  # the live layer's newest requests
    "progress_low": "#f06292",  # renovation progress < 50 %
    "progress_mid": "#fdd835",  # 50–99 %
    "progress_done": "#1b5e20",  # finished
    "progress_unknown": "#cfd8dc",  # no progress reported
}
# Heat classes, light to dark (ColorBrewer YlOrRd 6 without its palest, which the basemap's
# land colour would swallow).
HEAT_COLOURS = ("#fed976", "#feb24c", "#fd8d3c", "#f03b20", "#bd0026")

# What a record's `source` code is called on the maps (the mapping files' `source:`).
SOURCE_NAMES = {
    "12345": "12345市民服务热线",
    "open311": "网上诉求（Open311）",
    "zhifa": "城管综合执法系统",
    "shujie": "疏解整治台账",
    "zhengzhi": "整治提升台账",
    "units": "单位名录",
}
# How a record was placed (`geocode_quality`): the ETL's and the geocoder's levels.
QUALITY_NAMES = {
    "coordinates": "坐标",
    "coordinates_swapped": "坐标（经纬度互换后）",
    "geometry": "图形",
    "address_point": "门牌地址",
    "interpolated": "门牌插值",
    "road": "道路",
    "landmark": "地标",
    "community": "社区",
    "street": "街道",
    "failed": "未能定位",
}
# Landmark kinds (the gazetteer's `kind`) in words.
LANDMARK_KINDS = {
    "school": "学校",
    "hospital": "医院",
    "park": "公园",
    "compound": "小区",
    "office": "办公楼",
    "station": "车站",
    "market": "市场",
    "construction_site": "工地",
}

LAYERS: tuple[Layer, ...] = (
    Layer(
        name="streets",
        title="街道",
        kind="admin",
        geometry_type="MULTIPOLYGON",
        fields=(
            _code("code", 9, "街道代码", primary_key=True),
            _text("name", "街道名称", nullable=False),
            _text("commander", "战区司令"),
            Field(sa.Column("area_km2", sa.Float), "面积(平方公里)"),
        ),
        style=Style(color="#c62828", weight=2.5, fill_opacity=0.05),
        min_zoom=8,
        level="street",
        overlay=True,
    ),
    Layer(
        name="communities",
        title="社区",
        kind="admin",
        geometry_type="MULTIPOLYGON",
        fields=(
            _code("code", 12, "社区代码", primary_key=True),
            _text("name", "社区名称", nullable=False),
            _ref("street_code", 9, "streets.code", "所属街道", nullable=False),
        ),
        style=Style(color="#a1887f", weight=1.5, fill_opacity=0.03),
        min_zoom=11,
        level="community",
        parent="street",
        overlay=True,
    ),
    Layer(
        name="grids",
        title="网格",
        kind="admin",
        geometry_type="MULTIPOLYGON",
        fields=(
            _code("code", 15, "网格编码", primary_key=True),
            _ref("community_code", 12, "communities.code", "所属社区", nullable=False),
            _ref("street_code", 9, "streets.code", "所属街道", nullable=False),
            _text("grid_officer", "网格员"),
        ),
        style=Style(color="#90a4ae", weight=0.6, fill_opacity=0.0),
        min_zoom=13,
        level="grid",
        parent="community",
        overlay=True,
    ),
    Layer(
        name="lanes",
        title="街巷",
        kind="admin",
        geometry_type="LINESTRING",
        fields=(
            _code("code", 16, "街巷编码", primary_key=True),
            _text("name", "街巷名称", nullable=False),
            _text("kind", "类型", filterable=True),
            _ref("street_code", 9, "streets.code", "所属街道", nullable=False),
            _text("lane_chief", "街巷长"),
            _text("rectification_status", "整治状态", filterable=True),
            Field(sa.Column("left_from", sa.Integer), "左侧起始门牌"),
            Field(sa.Column("left_to", sa.Integer), "左侧终止门牌"),
            Field(sa.Column("right_from", sa.Integer), "右侧起始门牌"),
            Field(sa.Column("right_to", sa.Integer), "右侧终止门牌"),
        ),
        style=Style(color="#37474f", weight=2.0),
        min_zoom=13,
        level="lane",
        overlay=True,
    ),
    Layer(
        name="service_halls",
        title="公共服务大厅",
        kind="admin",
        geometry_type="POINT",
        fields=(
            _code("code", 16, "编码", primary_key=True),
            _text("name", "名称", nullable=False),
            _ref("street_code", 9, "streets.code", "所属街道", nullable=False),
            _text("address", "地址"),
            _text("phone", "电话"),
        ),
        style=Style(color="#1565c0", radius=7, fill_opacity=0.9),
        level="service_hall",
        overlay=True,
    ),
    Layer(
        name="service_requests",
        title="诉求",
        kind="event",
        geometry_type="POINT",
        time_field="received_at",
        fields=(
            *_event_head(),
            _text("channel", "来源渠道", filterable=True),
            _time("received_at", "受理时间", nullable=False),
            _text("category", "诉求类别", filterable=True),
            _text("department", "承办部门", filterable=True),
            _text("description", "诉求内容"),
            _text("address", "地址"),
            _text("coord_system", "原坐标系"),
            _text("status", "状态", filterable=True),
            _time("dispatched_at", "派单时间"),
            _time("responded_at", "响应时间"),
            _time("resolved_at", "办结时间"),
            _time("due_at", "办理时限"),
            # the lifecycle's steps as the extract has them (etl/replay.py replays them)
            _text("main_unit", "承办单位"),
            _time("accepted_at", "签收时间"),
            _time("contacted_at", "联系时间"),
            _time("called_back_at", "回访时间"),
            _time("closed_at", "归档时间"),
            Field(sa.Column("callback_valid", sa.Boolean), "有效回访"),
            Field(sa.Column("callback_contacted", sa.Boolean), "是否联系"),
            Field(sa.Column("callback_solved", sa.Boolean), "是否解决"),
            _text("satisfaction", "满意度", filterable=True),
            *_event_tail(),
        ),
        style=Style(color="#e53935", radius=4, fill_opacity=0.7),
        min_zoom=10,
        seeded=True,  # the big layer; the others build in milliseconds
        cell_tables=("request_cells_daily", "request_cells_periods"),
        cell_filters=("category", "street_code"),
    ),
    Layer(
        name="enforcement_cases",
        title="执法案件",
        kind="event",
        geometry_type="POINT",
        time_field="opened_at",
        fields=(
            *_event_head(),
            _text("case_no", "案件编号"),
            _text("case_type", "案件类型", filterable=True),
            Field(sa.Column("agencies", pg.ARRAY(sa.Text)), "执法部门"),
            Field(sa.Column("joint", sa.Boolean), "联合执法", filterable=True),
            _text("description", "案情"),
            _text("address", "地址"),
            _time("opened_at", "立案时间", nullable=False),
            _time("closed_at", "结案时间"),
            _time("due_at", "办理时限"),
            _text("status", "状态", filterable=True),
            *_event_tail(),
        ),
        style=Style(color="#6a1b9a", radius=5, fill_opacity=0.8),
        overlay=True,
    ),
    Layer(
        name="relocation_targets",
        title="疏解目标",
        kind="event",
        geometry_type="POINT",
        time_field="planned_end",
        fields=(
            *_event_head(),
            _text("name", "名称"),
            _text("kind", "类型", filterable=True),
            Field(sa.Column("floor_area_m2", sa.Float), "建筑面积(平方米)"),
            Field(sa.Column("merchants", sa.Integer), "商户数"),
            _text("status", "状态", filterable=True),
            Field(sa.Column("progress", sa.Float), "进度(%)"),
            _text("address", "地址"),
            _date("planned_start", "计划开始"),
            _date("planned_end", "计划完成"),
            _date("actual_start", "实际开始"),
            _date("actual_end", "实际完成"),
            *_event_tail(),
        ),
        style=Style(
            color="#ef6c00", radius=7, fill_opacity=0.85, by="status", palette=STATUS_PALETTE
        ),
        overlay=True,
    ),
    Layer(
        name="renovation_projects",
        title="整治提升项目",
        kind="event",
        geometry_type="GEOMETRY",
        time_field="planned_start",
        fields=(
            *_event_head(),
            _text("name", "项目名称"),
            _text("kind", "类型", filterable=True),
            _text("phase", "阶段", filterable=True),
            Field(sa.Column("progress", sa.Float), "进度(%)"),
            _text("lane_code", "街巷编码"),
            _date("planned_start", "计划开始"),
            _date("planned_end", "计划完成"),
            _date("actual_start", "实际开始"),
            _date("actual_end", "实际完成"),
            *_event_tail(),
        ),
        style=Style(color="#1b5e20", weight=3, fill_opacity=0.35),
        overlay=True,
    ),
)

_BY_NAME = {layer.name: layer for layer in LAYERS}


def _table(layer: Layer) -> sa.Table:
    columns = [f.column for f in layer.fields]
    extra: list[Any] = [
        sa.Index(f"ix_{layer.name}_geom", "geom", postgresql_using="gist"),
    ]
    if layer.kind == "event":
        extra.append(sa.UniqueConstraint("source", "source_id"))
        if layer.time_field:
            extra.append(sa.Index(f"ix_{layer.name}_{layer.time_field}", layer.time_field))
    return sa.Table(layer.name, metadata, *columns, _geom(layer.geometry_type), *extra)


etl_runs = sa.Table(
    "etl_runs",
    metadata,
    sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("layer", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("file_name", sa.Text),
    sa.Column("file_sha256", sa.String(64)),
    sa.Column("status", sa.Text, nullable=False, server_default="running"),
    sa.Column(
        "started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("read", sa.Integer, nullable=False, server_default="0"),
    sa.Column("inserted", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated", sa.Integer, nullable=False, server_default="0"),
    sa.Column("unchanged", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rejected", sa.Integer, nullable=False, server_default="0"),
    sa.Column("warnings", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("options", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("error", sa.Text),
    sa.Column("run_by", sa.Text, comment="operating-system user of the loading process"),
    sa.Column("host", sa.Text),
    sa.Column("pid", sa.Integer, comment="process id of the loading process"),
    sa.Column("backend_pid", sa.Integer, comment="PostgreSQL backend of the loading session"),
    sa.Column(
        "retry_of",
        sa.Integer,
        sa.ForeignKey("etl_runs.id", ondelete="SET NULL"),
        comment="the run whose retryable rejects this run re-ran",
    ),
    sa.CheckConstraint(
        "status <> 'succeeded' OR read = inserted + updated + unchanged + rejected",
        name="counts_add_up",
    ),
)

etl_rejects = sa.Table(
    "etl_rejects",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column(
        "run_id",
        sa.Integer,
        sa.ForeignKey("etl_runs.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("row_number", sa.Integer, nullable=False),
    sa.Column("source_id", sa.Text),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("retryable", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("raw", pg.JSONB, nullable=False),
    sa.Column(
        "retried_in",
        sa.Integer,
        sa.ForeignKey("etl_runs.id", ondelete="SET NULL"),
        comment="the retry run that took this reject; NULL while it waits",
    ),
)

# 地标: the address geocoder's gazetteer of schools, hospitals, markets, stations, 小区.
landmarks = sa.Table(
    "landmarks",
    metadata,
    sa.Column("code", sa.String(16), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("street_code", sa.String(9), sa.ForeignKey("streets.code"), index=True),
    sa.Column("address", sa.Text),
    sa.Column("geom", Geometry("POINT", srid=SRID, spatial_index=False), nullable=False),
    sa.Index("ix_landmarks_geom", "geom", postgresql_using="gist"),
)

for _layer in LAYERS:
    object.__setattr__(_layer, "table", _table(_layer))

# Work-order and case numbers found by exact value or prefix (layers.queries.search,
# migration 0026).
sa.Index(
    "ix_service_requests_source_id_pattern",
    _BY_NAME["service_requests"].table.c.source_id,
    postgresql_ops={"source_id": "text_pattern_ops"},
)
sa.Index(
    "ix_enforcement_cases_case_no_pattern",
    _BY_NAME["enforcement_cases"].table.c.case_no,
    postgresql_ops={"case_no": "text_pattern_ops"},
)


def get_layer(name: str) -> Layer:
    """The layer called `name`; raises UnknownLayer (→ 404) for any other name."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownLayer(name) from None


def iter_layers(kind: str | None = None) -> Iterator[Layer]:
    return (layer for layer in LAYERS if kind is None or layer.kind == kind)


LANDMARK_LEVEL = "landmark"  # the gazetteer's level: a table of its own, not a map layer


def admin_levels() -> dict[str, str]:
    """Every level `blockdata admin import` takes → its table, in the registry's order."""
    levels = {layer.level: layer.name for layer in LAYERS if layer.level is not None}
    return {**levels, LANDMARK_LEVEL: landmarks.name}


def level_layer(level: str) -> Layer:
    """The layer of an admin level ('street' → streets); UnknownLayer for any other."""
    for layer in LAYERS:
        if layer.level == level:
            return layer
    raise UnknownLayer(level)


def overlay_layers() -> tuple[str, ...]:
    return tuple(layer.name for layer in LAYERS if layer.overlay)


def seeded_layers() -> tuple[str, ...]:
    return tuple(layer.name for layer in LAYERS if layer.seeded)


def cell_layers() -> tuple[str, ...]:
    """The layers whose aggregated tiles may come from cell aggregates."""
    return tuple(layer.name for layer in LAYERS if layer.cell_tables is not None)
