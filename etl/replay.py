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
  database too (migration 0019).
- **Units.** 承办单位 (or an agency) is a unit's code, or a unit's name: of the case's street,
  then of the district's departments, then unique among all units; then, for names written
  without the street's prefix (城管执法队), the one unit of the case's street (then of the
  district's departments) whose name ends with it. Only active units. An unknown value: the
  row is loaded, the dispatch carries no unit, and the run warns `unknown_unit:VALUE`
  (the centre re-dispatches it, 改派).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import sqlalchemy as sa

from layers.cases.machine import ETL

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


@dataclass
class Replayed:
    """What a replay did: cases created, history rows added, warnings."""

    cases_created: int = 0
    steps_added: int = 0
    cases_moved: int = 0
    warnings: Counter[str] = field(default_factory=Counter)


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


def _create_cases(conn: sa.Connection, layer: str, source: str) -> int:
    """The missing case of every row of the source, in 受理 (version 0)."""
    spec = SOURCES[layer]
    result = conn.execute(
        sa.text(
            f"""
            insert into cases (kind, {spec["key"]}, street_code, category, received_at,
                               updated_at)
            select :kind, r.id, r.street_code, {_category(layer)}, {spec["received"]},
                   {spec["received"]}
              from {layer} r
             where r.source = :source
               and not exists (select 1 from cases c where c.{spec["key"]} = r.id)
             order by r.id
            """
        ),
        {"kind": spec["kind"], "source": source},
    )
    return int(result.rowcount)


def _category(layer: str) -> str:
    return "r.category" if layer == "service_requests" else "r.case_type"


def _candidates(conn: sa.Connection, layer: str, source: str, run_id: int) -> None:
    """replay_rows: the cases to look at — the rows this run inserted or changed, and the
    cases that never moved — with their chain's times and unit values."""
    spec = SOURCES[layer]
    conn.exec_driver_sql("drop table if exists replay_rows")
    conn.execute(
        sa.text(
            f"""
            create temp table replay_rows on commit drop as
            select c.id as case_id, c.state, c.version, c.street_code,
                   case when c.version = 0 then '-infinity'::timestamptz
                        else (select max(h.at) from case_history h where h.case_id = c.id)
                   end as last_at,
                   coalesce({_rank_sql("c.state")}, 99) as cur_rank,
                   {spec["units"]} as unit_values,
                   r.due_at,
                   {spec["d"]} as d, {spec["a"]} as a, {spec["c"]} as c, {spec["r"]} as r,
                   {spec["cb"]} as cb, {spec["cl"]} as cl,
                   {spec["valid"]} as valid, {spec["contacted"]} as contacted,
                   {spec["solved"]} as solved, {spec["rating"]} as rating
              from {layer} r join cases c on c.{spec["key"]} = r.id
             where r.source = :source and (r.etl_run_id = :run or c.version = 0)
            """
        ),
        {"source": source, "run": run_id},
    )


def _rank_sql(expr: str) -> str:
    whens = " ".join(f"when '{state}' then {rank}" for state, rank in RANK.items())
    return f"(case {expr} {whens} end)"


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


def _steps(conn: sa.Connection, run_id: int) -> None:
    """replay_steps: the steps to add, one row each, with what the case row takes from them."""
    values = ", ".join(
        f"({rank}, '{action}', '{state}', {_time_of(action)}, {_ok_of(action)}, {required})"
        for rank, action, state, required in STEPS
    )
    conn.exec_driver_sql("drop table if exists replay_steps")
    conn.execute(
        sa.text(
            f"""
            create temp table replay_steps on commit drop as
            with units_of as (
                select p.case_id,
                       (select u.code from replay_units u
                         where u.v = p.unit_values[1] and u.s = coalesce(p.street_code, ''))
                           as main_unit,
                       coalesce(array(
                           select distinct u.code from unnest(p.unit_values[2:]) as t(val)
                             join replay_units u
                               on u.v = t.val and u.s = coalesce(p.street_code, '')
                       ), '{{}}') as assisting
                  from replay_rows p
            ), chain as (
                select p.*, uo.main_unit,
                       array(select x from unnest(uo.assisting) as x
                              where x is distinct from uo.main_unit order by x) as assisting,
                       p.d is not null as ok_d
                  from replay_rows p join units_of uo using (case_id)
            ), chain_a as (
                select *, ok_d and a is not null and a >= d as ok_a from chain
            ), chain_c as (
                select *,
                       ok_a and c is not null and c >= a and (r is null or c <= r) as ok_c
                  from chain_a
            ), chain_r as (
                select *,
                       ok_a and r is not null
                       and r >= (case when ok_c then c else a end) as ok_r
                  from chain_c
            ), chain_cb as (
                select *, ok_r and cb is not null and cb >= r as ok_cb from chain_r
            ), full_chain as (
                select *, ok_cb and cl is not null and cl >= cb as ok_cl from chain_cb
            ), reached as (
                select f.case_id, f.state, f.last_at, f.cur_rank, f.main_unit, f.assisting,
                       f.due_at, f.valid, f.contacted, f.solved, f.rating,
                       s.rank, s.action, s.to_state, s.at, s.required
                  from full_chain f
                 cross join lateral (values {values})
                       as s(rank, action, to_state, at, ok, required)
                 where s.ok and s.rank > f.cur_rank
            ), kept as (
                select *,
                       bool_or(required and at < last_at) over (
                           partition by case_id order by rank
                       ) or at < last_at as behind
                  from reached
            )
            select case_id, rank, action, at,
                   coalesce(lag(to_state) over (partition by case_id order by rank), state)
                       as from_state,
                   to_state, main_unit, assisting, due_at, valid, contacted, solved, rating,
                   jsonb_strip_nulls(case action
                       when 'dispatch' then jsonb_build_object(
                           'main_unit', main_unit, 'assisting_units', to_jsonb(assisting),
                           'due_at', due_at, 'etl_run_id', cast(:run as integer))
                       when 'callback' then jsonb_build_object(
                           'valid', valid, 'contacted', contacted, 'solved', solved,
                           'rating', rating, 'etl_run_id', cast(:run as integer))
                       else jsonb_build_object('etl_run_id', cast(:run as integer))
                   end) as fields
              from kept
             where not behind
            """
        ),
        {"run": run_id},
    )


def _time_of(action: str) -> str:
    return {
        "dispatch": "f.d",
        "accept": "f.a",
        "contact": "f.c",
        "resolve": "f.r",
        "callback": "f.cb",
        "close": "f.cl",
    }[action]


def _ok_of(action: str) -> str:
    return {
        "dispatch": "f.ok_d",
        "accept": "f.ok_a",
        "contact": "f.ok_c",
        "resolve": "f.ok_r",
        "callback": "f.ok_cb",
        "close": "f.ok_cl",
    }[action]


def _append(conn: sa.Connection) -> int:
    result = conn.execute(
        sa.text(
            """
            insert into case_history (case_id, action, from_state, to_state, user_name, role,
                                      at, fields)
            select case_id, action, from_state, to_state, :user, :role, at, fields
              from replay_steps
             order by case_id, rank
            """
        ),
        {"user": USER, "role": ETL},
    )
    return int(result.rowcount)


def _move(conn: sa.Connection) -> int:
    """Set each case row to what its history now gives (the machine's `apply`, in SQL)."""
    result = conn.exec_driver_sql(
        """
        update cases c set
            state = x.state,
            version = c.version + x.n,
            updated_at = x.last_at,
            main_unit = case when x.dispatched then x.main_unit else c.main_unit end,
            assisting_units = case when x.dispatched then x.assisting
                                   else c.assisting_units end,
            dispatched_at = case when x.dispatched then x.d_at else c.dispatched_at end,
            due_at = case when x.dispatched then x.due_at else c.due_at end,
            accepted_at = case when x.a_at is not null then x.a_at
                               when x.dispatched then null else c.accepted_at end,
            contacted_at = case when x.c_at is not null then x.c_at
                                when x.dispatched then null else c.contacted_at end,
            resolved_at = case when x.r_at is not null then x.r_at
                               when x.dispatched then null else c.resolved_at end,
            result = case when x.r_at is not null or x.dispatched then null else c.result end,
            extension_due_at = case when x.r_at is not null or x.dispatched then null
                                    else c.extension_due_at end,
            called_back_at = case when x.cb_at is not null then x.cb_at
                                  when x.dispatched then null else c.called_back_at end,
            callback_valid = case when x.cb_at is not null then x.valid
                                  when x.dispatched then null else c.callback_valid end,
            callback_contacted = case when x.cb_at is not null then x.contacted
                                      when x.dispatched then null else c.callback_contacted end,
            callback_solved = case when x.cb_at is not null then x.solved
                                   when x.dispatched then null else c.callback_solved end,
            rating = case when x.cb_at is not null then x.rating
                          when x.dispatched then null else c.rating end,
            closed_at = case when x.cl_at is not null then x.cl_at else c.closed_at end
          from (
            select case_id, count(*) as n, max(at) as last_at,
                   (array_agg(to_state order by rank desc))[1] as state,
                   bool_or(action = 'dispatch') as dispatched,
                   max(at) filter (where action = 'dispatch') as d_at,
                   max(at) filter (where action = 'accept') as a_at,
                   max(at) filter (where action = 'contact') as c_at,
                   max(at) filter (where action = 'resolve') as r_at,
                   max(at) filter (where action = 'callback') as cb_at,
                   max(at) filter (where action = 'close') as cl_at,
                   min(main_unit) as main_unit, min(assisting) as assisting,
                   min(due_at) as due_at,
                   bool_or(valid) as valid, bool_or(contacted) as contacted,
                   bool_or(solved) as solved, min(rating) as rating
              from replay_steps group by case_id
          ) x
         where c.id = x.case_id
        """
    )
    return int(result.rowcount)


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


def replay(conn: sa.Connection, layer: str, source: str, run_id: int) -> Replayed:
    """Create the source's missing cases and replay its rows' steps into their history
    (see the module doc), on `conn` in the caller's transaction."""
    out = Replayed()
    if not replayable(layer):
        return out
    out.cases_created = _create_cases(conn, layer, source)
    _candidates(conn, layer, source, run_id)
    _resolve_units(conn)
    _steps(conn, run_id)
    out.steps_added = _append(conn)
    out.cases_moved = _move(conn) if out.steps_added else 0
    _warn(conn, out)
    gaps = conn.exec_driver_sql(
        """
        select count(*) from replay_rows p
         where (p.d is null and coalesce(p.a, p.c, p.r, p.cb, p.cl) is not null)
            or (p.a is not null and p.a < p.d)
            or (p.a is null and coalesce(p.r, p.cb, p.cl) is not null)
            or (p.r is not null and p.r < p.a)
            or (p.r is null and coalesce(p.cb, p.cl) is not null)
            or (p.cb is not null and p.cb < p.r)
            or (p.cb is null and p.cl is not null)
            or (p.cl is not null and p.cl < p.cb)
        """
    ).scalar_one()
    if gaps:
        out.warnings["replay_gap"] += int(gaps)
    for table in ("replay_steps", "replay_units", "replay_rows"):
        conn.exec_driver_sql(f"drop table {table}")
    return out
