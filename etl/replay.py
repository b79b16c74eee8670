"""Replay an extract's time columns into the case history (全响应), set-based, in the load's
transaction.

After a load of service requests or enforcement cases (`etl.jobs.run_file`), every loaded row
gets its case (`cases`, created in 受理 when missing) and its case gets one history row
(`case_history`) per step the extract shows that the case has not taken yet, by the ETL
(user 'etl', role 'etl', the run's id in the step's fields); the case row is then set to what
replaying its history gives (`layers.cases.machine.replay` agrees: tests/etl/test_case_replay.py).
A handful of SQL statements whatever the number of rows: no per-case loop.

The steps, in this order (the machine's):

    派单 dispatch (dispatched_at, the unit of 承办单位, the due time) → 签收 accept
    (accepted_at) → 联系 contact (contacted_at, optional) → 办结 resolve (resolved_at) →
    回访 callback (called_back_at, the callback's answers) → 归档 close (closed_at)

An enforcement case: 立案 (opened_at) is the dispatch to its lead agency (the first of 执法部门,
the others assisting) and the agency's acceptance; 结案 (closed_at) is 办结 resolve (the
machine closes only a called-back case, and an enforcement case has no callback).

The rules (docs/etl.md, "Cases from extracts"):

- **A chain from the extract.** A step counts when its time is given and not earlier than
  the previous step's; a missing or out-of-order required step ends the chain there (the
  later times stay in the layer's row but make no step: warning `replay_gap`). Contact is
  optional: when missing or out of order it is left out, not the steps after it.
- **Only forward.** A step is added only when it lies beyond the case's state (received <
  dispatched < accepted < contacted < resolved < called back < closed) and is not earlier than
  the case's last history row: a step the case already took — by a user in Blockdata or by an
  earlier load — is never written again, a case is never moved back, and a case a unit
  returned (退单) is left to the centre. When a required step is left out that way, the
  steps after it are too (the machine would refuse them).
- **Idempotent.** The same file again adds nothing; a later extract adds the steps beyond
  what the case has. A partial unique key on the ETL's (case, action, time) holds it in the
  database too (migration 0020).
- **Units.** 承办单位 (or an agency) is a unit's code, or a unit's name: of the case's street,
  then of the district's departments, then unique among all units; then, for names written
  without the street's prefix (城管执法队), the one unit of the case's street (then of the
  district's departments) whose name ends with it. Only active units. An unknown value: the
  row is loaded, the dispatch carries no unit, and the run warns `unknown_unit:VALUE`
  (the centre re-dispatches it, 改派).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from etl import locks
from layers.cases.machine import ETL
from layers.cases.tables import cases

USER = "etl"
RANK = {
    "received": 0,
    "dispatched": 1,
    "accepted": 2,
    "contacted": 3,
    "resolved": 4,
    "called_back": 5,
    "closed": 6,
    # returned (退单): the centre's to re-dispatch; the ETL adds nothing
}
# rank, action, the state it leads to, whether a later step needs it
STEPS = (
    (1, "dispatch", "dispatched", True),
    (2, "accept", "accepted", True),
    (3, "contact", "contacted", False),
    (4, "resolve", "resolved", True),
    (5, "callback", "called_back", True),
    (6, "close", "closed", True),
)
MAX_UNKNOWN_UNITS = 20  # distinct unknown unit values named in the warnings
FAST_MIN_ROWS = 20_000  # a batch this large skips the per-row reference checks (see replay)
# A batch of at least this many new rows for a table, and more than a quarter of it, rebuilds
# its secondary indexes around the inserts (as etl/load.py's bulk load does).
BULK_MIN_ROWS = 50_000
BULK_SHARE = 4  # … and more than 1 / BULK_SHARE of the table


@dataclass
class Replayed:
    """What a replay did: cases created, history rows added, warnings."""

    cases_created: int = 0
    steps_added: int = 0
    cases_moved: int = 0
    warnings: Counter[str] = field(default_factory=Counter)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step


# Per layer: the candidate rows (alias r) as the chain needs them — the unit values (text[],
# the first the main unit), and the time of each step (d a c r cb cl), the callback answers.
SOURCES = {
    "service_requests": {
        "kind": "service_request",
        "key": "service_request_id",
        "received": "r.received_at",
        "units": "case when nullif(btrim(r.main_unit), '') is null then '{}'::text[] "
        "else array[btrim(r.main_unit)] end",
        "d": "r.dispatched_at",
        "a": "r.accepted_at",
        "c": "r.contacted_at",
        "r": "r.resolved_at",
        "cb": "r.called_back_at",
        "cl": "r.closed_at",
        "valid": "r.callback_valid",
        "contacted": "r.callback_contacted",
        "solved": "r.callback_solved",
        "rating": "case when r.satisfaction in ('满意', '基本满意', '不满意') "
        "then r.satisfaction end",
    },
    "enforcement_cases": {
        "kind": "enforcement_case",
        "key": "enforcement_case_id",
        "received": "r.opened_at",
        "units": "coalesce(array(select btrim(a) from unnest(r.agencies) with ordinality "
        "as t(a, i) where nullif(btrim(a), '') is not null order by i), '{}'::text[])",
        "d": "r.opened_at",
        "a": "r.opened_at",
        "c": "null::timestamptz",
        "r": "r.closed_at",
        "cb": "null::timestamptz",
        "cl": "null::timestamptz",
        "valid": "null::boolean",
        "contacted": "null::boolean",
        "solved": "null::boolean",
        "rating": "null::text",
    },
}


def replayable(layer: str) -> bool:
    return layer in SOURCES


def _rank_sql(expr: str) -> str:
    whens = " ".join(f"when '{state}' then {rank}" for state, rank in RANK.items())
    return f"coalesce((case {expr} {whens} end), 99)"


def _rows(conn: sa.Connection, layer: str, source: str, run_id: int) -> int:
    """replay_rows: the cases to look at — every row of the source without a case yet (its
    case id drawn from the sequence now), the rows this run inserted or changed, and the
    cases that never moved — with their chain's times and unit values."""
    spec = SOURCES[layer]
    # the sequence by name, once (pg_get_serial_sequence in the select runs once a row)
    sequence = conn.execute(sa.select(sa.func.pg_get_serial_sequence("cases", "id"))).scalar_one()
    if not re.fullmatch(r'[\w."]+', str(sequence)):
        raise RuntimeError(f"unexpected sequence name {sequence!r}")
    conn.exec_driver_sql("drop table if exists replay_rows")
    result = conn.execute(
        sa.text(
            f"""
            create temp table replay_rows on commit drop as
            select coalesce(c.id, nextval('{sequence}'::regclass)) as case_id,
                   c.id is null as new, r.id as source_row,
                   coalesce(c.state, 'received') as state, coalesce(c.version, 0) as version,
                   coalesce(c.street_code, r.street_code) as street_code,
                   {_category(layer)} as category, {spec["received"]} as received_at,
                   case when coalesce(c.version, 0) = 0 then '-infinity'::timestamptz
                        else (select max(h.at) from case_history h where h.case_id = c.id)
                   end as last_at,
                   {_rank_sql("coalesce(c.state, 'received')")} as cur,
                   {spec["units"]} as unit_values,
                   r.due_at,
                   {spec["d"]} as d, {spec["a"]} as a, {spec["c"]} as c, {spec["r"]} as r,
                   {spec["cb"]} as cb, {spec["cl"]} as cl,
                   {spec["valid"]} as valid, {spec["contacted"]} as contacted,
                   {spec["solved"]} as solved, {spec["rating"]} as rating
              from {layer} r left join cases c on c.{spec["key"]} = r.id
             where r.source = :source
               and (c.id is null or r.etl_run_id = :run or c.version = 0)
            """
        ),
        {"source": source, "run": run_id},
    )
    conn.exec_driver_sql("analyze replay_rows")
    return int(result.rowcount)


def _category(layer: str) -> str:
    return "r.category" if layer == "service_requests" else "r.case_type"


def _resolve_units(conn: sa.Connection) -> None:
    """replay_units: (value, street) → the one unit it names (the module's rule)."""
    conn.exec_driver_sql("drop table if exists replay_units")
    conn.exec_driver_sql(
        """
        create temp table replay_units on commit drop as
        with pairs as (
            select distinct t.val as v, coalesce(p.street_code, '') as s
              from replay_rows p cross join unnest(p.unit_values) as t(val)
        ), matched as (
            select p.v, p.s, x.code,
                   case when x.code = p.v then 1
                        when x.name = p.v and x.street_code = p.s then 2
                        when x.name = p.v and x.street_code is null then 3
                        when x.name = p.v then 4
                        when char_length(p.v) >= 2 and right(x.name, char_length(p.v)) = p.v
                             and x.street_code = p.s then 5
                        when char_length(p.v) >= 2 and right(x.name, char_length(p.v)) = p.v
                             and x.street_code is null then 6
                   end as level
              from pairs p join units x on x.active
               and (x.code = p.v or x.name = p.v
                    or (char_length(p.v) >= 2 and right(x.name, char_length(p.v)) = p.v))
        ), best as (
            select v, s, min(level) as level from matched where level is not null
             group by v, s
        )
        select m.v, m.s, min(m.code) as code
          from matched m join best b using (v, s, level)
         group by m.v, m.s
        having count(*) = 1
        """
    )
    conn.exec_driver_sql("analyze replay_units")


def _chain(conn: sa.Connection) -> None:
    """replay_chain: per case, its unit(s) and, for each step, whether it is added (add_d …
    add_cl: the chain's order and times, beyond the case's state, not before its last step,
    its required predecessor reached or added)."""
    conn.exec_driver_sql("drop table if exists replay_chain")
    conn.exec_driver_sql(
        """
        create temp table replay_chain on commit drop as
        with united as (
            select p.*, mu.code as main_unit,
                   case when cardinality(p.unit_values) > 1 then array(
                       select distinct u.code from unnest(p.unit_values[2:]) as t(val)
                         join replay_units u
                           on u.v = t.val and u.s = coalesce(p.street_code, '')
                        where u.code is distinct from mu.code
                        order by u.code
                   ) else '{}'::varchar[] end as assisting
              from replay_rows p
              left join replay_units mu
                on mu.v = p.unit_values[1] and mu.s = coalesce(p.street_code, '')
        ), ok1 as (
            select *, d is not null as ok_d,
                   d is not null and a is not null and a >= d as ok_a
              from united
        ), ok2 as (
            select *, ok_a and c is not null and c >= a and (r is null or c <= r) as ok_c
              from ok1
        ), ok3 as (
            select *, ok_a and r is not null and r >= (case when ok_c then c else a end) as ok_r
              from ok2
        ), ok4 as (
            select *, ok_r and cb is not null and cb >= r as ok_cb from ok3
        ), ok5 as (
            select *, ok_cb and cl is not null and cl >= cb as ok_cl from ok4
        ), add1 as (
            select *, ok_d and cur < 1 and d >= last_at as add_d from ok5
        ), add2 as (
            select *, ok_a and cur < 2 and a >= last_at and (cur >= 1 or add_d) as add_a
              from add1
        ), add3 as (
            select *,
                   ok_c and cur < 3 and c >= last_at and (cur >= 2 or add_a) as add_c,
                   ok_r and cur < 4 and r >= last_at and (cur >= 2 or add_a) as add_r
              from add2
        ), add4 as (
            select *, ok_cb and cur < 5 and cb >= last_at and (cur >= 4 or add_r) as add_cb
              from add3
        )
        select *, ok_cl and cur < 6 and cl >= last_at and (cur >= 5 or add_cb) as add_cl
          from add4
         order by case_id
        """
    )


# Each step: the action, its flag, its time, the state it comes from (the previous added
# step's, else the case's), the state it leads to, its fields.
RUN = "cast(:run as integer)"
STEP_SQL = (
    ("dispatch", "add_d", "d", "state", "dispatched",
     "jsonb_build_object('main_unit', main_unit, 'assisting_units', to_jsonb(assisting), "
     f"'due_at', due_at, 'etl_run_id', {RUN})"),
    ("accept", "add_a", "a", "case when add_d then 'dispatched' else state end", "accepted",
     "cast(:run_fields as jsonb)"),
    ("contact", "add_c", "c", "case when add_a then 'accepted' else state end", "contacted",
     "cast(:run_fields as jsonb)"),
    ("resolve", "add_r", "r",
     "case when add_c then 'contacted' when add_a then 'accepted' else state end", "resolved",
     "cast(:run_fields as jsonb)"),
    ("callback", "add_cb", "cb", "case when add_r then 'resolved' else state end",
     "called_back",
     "jsonb_build_object('valid', valid, 'contacted', contacted, 'solved', solved, "
     f"'rating', rating, 'etl_run_id', {RUN})"),
    ("close", "add_cl", "cl", "case when add_cb then 'called_back' else state end", "closed",
     "cast(:run_fields as jsonb)"),
)  # fmt: skip

# The case row after the added steps (the machine's `apply`, in SQL), column by column, from
# the chain (x) and the case's row before them ({old}: `c.` for a case that existed; a new
# case had nothing set yet).
FINAL = {
    "state": "case when x.add_cl then 'closed' when x.add_cb then 'called_back' "
    "when x.add_r then 'resolved' when x.add_c then 'contacted' when x.add_a then 'accepted' "
    "when x.add_d then 'dispatched' else {old}state end",
    "main_unit": "case when x.add_d then x.main_unit else {old}main_unit end",
    "assisting_units": "case when x.add_d then x.assisting else {old}assisting_units end",
    "dispatched_at": "case when x.add_d then x.d else {old}dispatched_at end",
    "due_at": "case when x.add_d then x.due_at else {old}due_at end",
    "accepted_at": "case when x.add_a then x.a when x.add_d then null else {old}accepted_at end",
    "contacted_at": "case when x.add_c then x.c when x.add_d then null else {old}contacted_at end",
    "resolved_at": "case when x.add_r then x.r when x.add_d then null else {old}resolved_at end",
    "result": "case when x.add_r or x.add_d then null else {old}result end",
    "extension_due_at": "case when x.add_r or x.add_d then null else {old}extension_due_at end",
    "called_back_at": "case when x.add_cb then x.cb when x.add_d then null "
    "else {old}called_back_at end",
    "callback_valid": "case when x.add_cb then x.valid when x.add_d then null "
    "else {old}callback_valid end",
    "callback_contacted": "case when x.add_cb then x.contacted when x.add_d then null "
    "else {old}callback_contacted end",
    "callback_solved": "case when x.add_cb then x.solved when x.add_d then null "
    "else {old}callback_solved end",
    "rating": "case when x.add_cb then x.rating when x.add_d then null else {old}rating end",
    "closed_at": "case when x.add_cl then x.cl else {old}closed_at end",
}
ANY = "(x.add_d or x.add_a or x.add_c or x.add_r or x.add_cb or x.add_cl)"
ADDED = (
    "(x.add_d::int + x.add_a::int + x.add_c::int + x.add_r::int + x.add_cb::int + x.add_cl::int)"
)
LAST = (
    "greatest(case when x.add_d then x.d end, case when x.add_a then x.a end, "
    "case when x.add_c then x.c end, case when x.add_r then x.r end, "
    "case when x.add_cb then x.cb end, case when x.add_cl then x.cl end)"
)


def _final(name: str, old: str | None) -> str:
    """FINAL[name] for a case that existed (`old` its alias and a dot) or a new one."""
    if old is not None:
        return FINAL[name].replace("{old}", old)
    column = cases.c[name]
    fresh = {"state": "'received'", "assisting_units": "'{}'"}.get(
        name, f"null::{column.type.compile(dialect=postgresql.dialect())}"
    )
    return re.sub(r"\{old\}\w+", fresh, FINAL[name])


def _new_cases(conn: sa.Connection, layer: str) -> int:
    """Insert the new cases as their steps leave them."""
    spec = SOURCES[layer]
    names = ", ".join(FINAL)
    values = ", ".join(_final(n, None) for n in FINAL)
    result = conn.execute(
        sa.text(
            f"""
            insert into cases (id, kind, {spec["key"]}, street_code, category, received_at,
                               version, updated_at, {names})
            select x.case_id, :kind, x.source_row, x.street_code, x.category, x.received_at,
                   {ADDED}, coalesce({LAST}, x.received_at), {values}
              from replay_chain x where x.new
             order by x.case_id
            """
        ),
        {"kind": spec["kind"]},
    )
    return int(result.rowcount)


def _moved_cases(conn: sa.Connection) -> int:
    """Update the existing cases that took steps."""
    sets = ", ".join(f"{n} = {_final(n, 'c.')}" for n in FINAL)
    result = conn.exec_driver_sql(
        f"""
        update cases c set {sets}, version = c.version + {ADDED}, updated_at = {LAST}
          from replay_chain x
         where c.id = x.case_id and not x.new and {ANY}
        """
    )
    return int(result.rowcount)


def _append(conn: sa.Connection, run_id: int) -> int:
    """One history row per added step: one pass per step, so that a case's rows follow
    each other in id order (what `layers.cases.store.history` reads them in)."""
    added = 0
    for action, flag, at, before, after, fields in STEP_SQL:
        result = conn.execute(
            sa.text(
                f"""
                insert into case_history (case_id, action, from_state, to_state, user_name,
                                          role, at, fields)
                select case_id, :action, {before}, :after, :user, :role, {at},
                       jsonb_strip_nulls({fields})
                  from replay_chain where {flag}
                """
            ),
            {
                "action": action,
                "after": after,
                "user": USER,
                "role": ETL,
                "run": run_id,
                "run_fields": json.dumps({"etl_run_id": run_id}),
            },
        )
        added += int(result.rowcount)
    return added


def _warn(conn: sa.Connection, out: Replayed) -> None:
    """unknown_unit:VALUE per value no unit answers to; replay_gap: rows whose extract has
    a time the chain could not reach."""
    unknown = conn.exec_driver_sql(
        """
        select t.val, count(*) from replay_rows p cross join unnest(p.unit_values) as t(val)
         where not exists (select 1 from replay_units u
                            where u.v = t.val and u.s = coalesce(p.street_code, ''))
         group by t.val order by count(*) desc, t.val
        """
    ).all()
    for value, count in unknown[:MAX_UNKNOWN_UNITS]:
        out.warnings[f"unknown_unit:{value}"] += int(count)
    rest = sum(int(c) for _, c in unknown[MAX_UNKNOWN_UNITS:])
    if rest:
        out.warnings["unknown_unit:…"] += rest
    gaps = conn.exec_driver_sql(
        """
        select count(*) from replay_chain
         where (not ok_d and coalesce(a, c, r, cb, cl) is not null)
            or (not ok_a and a is not null)
            or (not ok_r and coalesce(r, cb, cl) is not null)
            or (not ok_cb and coalesce(cb, cl) is not null)
            or (not ok_cl and cl is not null)
        """
    ).scalar_one()
    if gaps:
        out.warnings["replay_gap"] += int(gaps)


def _added_counts(conn: sa.Connection) -> tuple[int, int]:
    """(cases to create, history rows to add)."""
    new, steps = conn.exec_driver_sql(
        f"select count(*) filter (where new), coalesce(sum({ADDED}), 0) from replay_chain x"
    ).one()
    return int(new), int(steps)


def _bulk_tables(conn: sa.Connection, counts: dict[str, int]) -> list[str]:
    """The tables of `counts` (table → rows to add) whose secondary indexes are cheaper
    rebuilt than kept up row by row: a batch of at least BULK_MIN_ROWS, more than a quarter
    of the table (etl/load.py's rule). Their ACCESS EXCLUSIVE locks are taken together
    (`etl.locks`: short tries, never queueing readers for long) and held to the end of the
    load; their indexes (those no constraint owns) are dropped; the statements that make
    them again are returned, to run after the inserts."""
    bulk = []
    for table, rows in counts.items():
        existing = conn.exec_driver_sql(
            "select reltuples::bigint from pg_class where oid = %(t)s::regclass", {"t": table}
        ).scalar_one()
        if rows >= BULK_MIN_ROWS and rows * BULK_SHARE > max(existing, 0):
            bulk.append(table)
    if not bulk:
        return []
    locks.acquire(conn, [(t, locks.ACCESS_EXCLUSIVE) for t in bulk])
    empty = (
        "case_history" in bulk
        and not conn.exec_driver_sql(
            "select exists (select 1 from case_history) or exists (select 1 from pg_constraint "
            "where contype = 'f' and confrelid = 'case_history'::regclass)"
        ).scalar_one()
    )
    if empty:
        # Emptied in this transaction: with wal_level=minimal (the managed cluster), its rows
        # and index builds are then written without WAL (as etl/load.py's bulk load does).
        # Only when no foreign key refers to the history (a TRUNCATE would be refused);
        # `cases` cannot be emptied so (whistles refer to it).
        conn.exec_driver_sql("truncate case_history")
    made = []
    for table in bulk:
        found = conn.exec_driver_sql(
            """
            select i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
              from pg_index i
             where i.indrelid = %(t)s::regclass
               and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid)
             order by 1
            """,
            {"t": table},
        ).all()
        for name, definition in found:
            conn.exec_driver_sql(f"drop index {name}")
            made.append(definition)
    return made


def _superuser(conn: sa.Connection) -> bool:
    return bool(
        conn.execute(
            sa.text("select rolsuper from pg_roles where rolname = current_user")
        ).scalar_one()
    )


def replay(conn: sa.Connection, layer: str, source: str, run_id: int) -> Replayed:
    """Create the source's missing cases and replay its rows' steps into their history
    (see the module doc), on `conn` in the caller's transaction."""
    out = Replayed()
    if not replayable(layer):
        return out
    mark = time.monotonic()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.monotonic()
        out.timings[name] = now - mark
        mark = now

    rows = _rows(conn, layer, source, run_id)
    lap("rows")
    if rows:
        _resolve_units(conn)
        _chain(conn)
        lap("chain")
        # A large batch skips the per-row checks of the foreign keys and of the cases'
        # source trigger (a superuser's `session_replication_role = replica`, no table
        # lock): every row written here is built from rows that exist (the layer's rows,
        # their cases, active units) in this transaction. Unique keys still hold.
        fast = rows >= FAST_MIN_ROWS and _superuser(conn)
        new, steps = _added_counts(conn)
        rebuild = _bulk_tables(conn, {"cases": new, "case_history": steps}) if fast else []
        if fast:
            conn.exec_driver_sql("set local session_replication_role = replica")
        out.cases_created = _new_cases(conn, layer)
        out.cases_moved = _moved_cases(conn)
        lap("cases")
        out.steps_added = _append(conn, run_id)
        lap("history")
        if fast:
            conn.exec_driver_sql("set local session_replication_role = origin")
        if rebuild:
            conn.exec_driver_sql("set local maintenance_work_mem = '512MB'")
            for definition in rebuild:
                conn.exec_driver_sql(definition)
            lap("indexes")
        _warn(conn, out)
        for table in ("replay_chain", "replay_units"):
            conn.exec_driver_sql(f"drop table {table}")
    conn.exec_driver_sql("drop table replay_rows")
    lap("warnings")
    return out
