"""Who may do what and who sees which rows, said once for the web, the CLI and the seeder.

The table of role → layers, pages and actions (the web's view declarations, app/capabilities.py,
are checked against it); the zone rule (a commander is confined to their street, everyone else
sees the district); scoping a connection to the reader role and a zone (row-level security,
migration 0004, compares each row's street with the `blockdata.zone` setting); and the audit
row of an action.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from layers import LAYERS
from layers.accounts import audit_log

READER_ROLE = "blockdata_reader"
DISTRICT = "*"  # the zone of the whole district
# The zone of a department user (承办单位): a value no street code has (codes are 9 digits),
# so every policy by street lets it see nothing; its own policies (migration 0018) compare
# the `blockdata.unit` setting with the cases' and whistles' units instead.
NO_STREET = "-"


# --- the table of role → layers, pages and actions ----------------------------------------

ALL_LAYERS = frozenset(layer.name for layer in LAYERS)
ADMIN_LAYERS = frozenset(layer.name for layer in LAYERS if layer.kind == "admin")

EXPORT = "export"  # download a slice with its provenance: /api/…/features, `blockdata export`
INTAKE = "intake"  # file a service request: POST /open311/v2/requests.json
CASES = "cases"  # work cases and whistles: /api/cases, /api/whistles
ACTIONS = {EXPORT: "导出数据", INTAKE: "提交诉求", CASES: "办理案件"}


@dataclass(frozen=True)
class Page:
    name: str  # the endpoint is pages.<name> (and pages.<name>_*) unless `endpoint` says
    title: str
    layers: frozenset[str]  # the layers it draws: a role that opens it reads them all
    endpoint: str | None = None  # its view, when not pages.<name>


PAGES: dict[str, Page] = {
    "overview": Page("overview", "区级指挥中心", frozenset({"streets", "service_requests"})),
    "command": Page("command", "战区指挥", ALL_LAYERS),
    "planner": Page(
        "planner",
        "整治与疏解",
        frozenset({"streets", "relocation_targets", "renovation_projects"}),
    ),
    "imports": Page("imports", "数据导入", frozenset()),
    "queue": Page("queue", "案件队列", frozenset()),  # cases, not layers: /api/cases
    "report": Page("report", "网格员上报", frozenset(), endpoint="intake.report"),
    "evaluation_score": Page(
        "evaluation_score", "考评录入", frozenset(), endpoint="evaluation_inputs.score_page"
    ),
    # 考评: the evaluation API's data (its own access rules: a commander sees the published
    # ranking and its own street) and the drill-down's requests (row-level security).
    "evaluation": Page("evaluation", "考评", frozenset(), endpoint="evaluation_page.evaluation"),
}


@dataclass(frozen=True)
class Role:
    name: str
    title: str  # as the pages show it
    layers: frozenset[str]
    pages: tuple[str, ...]  # navigation order; login lands on the first one it can link
    actions: frozenset[str]


# The table. A commander reads every layer, of their street only (row-level security); the
# planner reads the boundaries and the two progress layers; the clerk, who loads extracts,
# reads the boundaries (to check an import in QGIS) and the load reports, files requests and
# works cases from the street centre's queue (/queue: dispatch, callbacks) — bound to its
# street's centre since migration 0019 (its zone is that street). A department user
# (承办单位) works its own unit's cases and whistles from its queue.
ROLES: dict[str, Role] = {
    r.name: r
    for r in (
        Role(
            "district",
            "区级指挥中心",
            ALL_LAYERS,
            ("overview", "command", "planner", "imports", "evaluation", "evaluation_score"),
            frozenset({EXPORT, INTAKE, CASES}),
        ),
        Role(
            "commander",
            "战区司令",
            ALL_LAYERS,
            ("command", "evaluation"),
            frozenset({EXPORT, INTAKE, CASES}),
        ),
        Role(
            "analyst",
            "数据分析员",
            ALL_LAYERS,
            ("overview", "command", "planner", "evaluation", "evaluation_score"),
            frozenset({EXPORT}),
        ),
        Role(
            "planner",
            "规划人员",
            ADMIN_LAYERS | {"relocation_targets", "renovation_projects"},
            ("planner",),
            frozenset({EXPORT}),
        ),
        Role("clerk", "数据管理员", ADMIN_LAYERS, ("imports", "queue"), frozenset({INTAKE, CASES})),
        # A department (承办单位) acts on its unit's cases and whistles (row-level security
        # by unit, migration 0018) and reads no layer: its zone matches no street, so even
        # the boundaries would come back empty. Its page is its unit's case queue.
        Role("department", "承办单位", frozenset(), ("queue",), frozenset({CASES})),
        # A grid officer (网格员) reports from the street (the 上报 page, Open311 POST) and
        # reads the cases it reported; bound to one street, like a commander. It takes no
        # case transition (layers/cases/machine.py: no action lists it).
        Role("grid_officer", "网格员", ADMIN_LAYERS, ("report",), frozenset({INTAKE})),
        # An assessor (考核部门) is a district department's evaluator, bound to its unit: it
        # reads the district (zone '*') and writes the evaluation inputs its unit owns
        # (row-level security by owner unit, migration 0022). No case action.
        Role(
            "assessor",
            "考核部门",
            ALL_LAYERS,
            ("evaluation_score", "evaluation", "overview"),
            frozenset(),
        ),
    )
}


def may_read(role_name: str, layer: str) -> bool:
    r = ROLES.get(role_name)
    return r is not None and layer in r.layers


def may(role_name: str, action: str) -> bool:
    r = ROLES.get(role_name)
    return r is not None and action in r.actions


def may_open(role_name: str, page: str) -> bool:
    r = ROLES.get(role_name)
    return r is not None and page in r.pages


# --- zones ------------------------------------------------------------------------------


# The roles confined to one street (their user's `street_code`, migration 0019).
STREET_ROLES = frozenset({"commander", "clerk", "grid_officer"})


def zone_of(role: str, street_code: str | None) -> str:
    """The street a user of `role` is confined to, '*' for the whole district, or
    NO_STREET for a department user (who sees its unit's cases and whistles only) and for
    a street's user bound to no street (a clerk made before migration 0019: it sees
    nothing until bound)."""
    if role == "department":
        return NO_STREET
    if role in STREET_ROLES:
        return street_code or NO_STREET
    return DISTRICT


def unbound(role: str, street_code: str | None) -> bool:
    """A user of a street's role without a street (a clerk from before migration 0019):
    refused until `blockdata users bind` gives it one."""
    return role in STREET_ROLES and not street_code


UNIT_ROLES = frozenset({"department", "assessor"})


def unit_of(role: str, unit_code: str | None) -> str:
    """The unit a department user or an assessor is bound to ('' for every other role): the
    `blockdata.unit` setting of its connection. An assessor's zone is the district's, so the
    unit adds nothing to what it reads; it names the inputs it may write (migration 0022)."""
    return (unit_code or "") if role in UNIT_ROLES else ""


@functools.lru_cache(maxsize=64)
def scope_statement(columns: str = "") -> sa.TextClause:
    """One statement that switches to the reader role (from the next statement on) and sets
    the zone; `columns` are read in the same round trip, with the caller's own privileges."""
    return sa.text(
        "select set_config('role', :role, true), set_config('blockdata.zone', :zone, true),"
        " set_config('blockdata.unit', :unit, true)" + (f", {columns}" if columns else "")
    )


def scope(
    conn: sa.Connection,
    zone: str,
    extra: tuple[str, dict[str, Any]] | None = None,
    unit: str = "",
) -> tuple[Any, ...] | None:
    """Read the rest of `conn`'s transaction as the reader, confined to `zone` (and, for a
    department user, whose zone is NO_STREET, to its `unit`'s cases and whistles).

    `extra`: (SQL columns, bound parameters) read in the same statement with the caller's
    own privileges (the switch applies from the next statement on): versions and counters
    the reader may not see, never rows. Returns their values, or None without `extra`.
    """
    params: dict[str, Any] = {"role": READER_ROLE, "zone": zone, "unit": unit}
    if extra is None:
        conn.execute(scope_statement(), params)
        return None
    row = conn.execute(scope_statement(extra[0]), {**params, **extra[1]}).one()
    return tuple(row[3:])


def audit(
    conn: sa.Connection,
    *,
    user_name: str | None,
    role: str | None,
    action: str,
    path: str,
    filters: Mapping[str, Any],
    rows: int | None = None,
    remote: str | None = None,
) -> None:
    """Record an action (an export, a token use): who, what filter, how many rows.

    No RETURNING (`inline`): a commander could not read the row back through row-level
    security."""
    conn.execute(
        sa.insert(audit_log)
        .inline()
        .values(
            user_name=user_name,
            role=role,
            action=action,
            path=path,
            filters={k: v for k, v in filters.items() if v is not None},
            rows=rows,
            remote=remote,
        )
    )
