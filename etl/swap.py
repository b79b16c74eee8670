"""Build a table aside and swap it in: readers keep the old one until the swap commits.

A twin is an empty copy of a table in the `etl_build` schema (migration 0009), named after
the table and a tag of its builder (`{table}_{tag}`): columns, defaults, checks, comments and
storage options, no indexes (so that it fills fast). `create_aside` makes it; the caller
fills it — in its own transaction, or on a second connection that commits, beside a load;
`copy_indexes` builds the twin's indexes; `swap` takes ACCESS EXCLUSIVE locks on the tables
the way `etl.locks.acquire` does (unless the caller holds them), drops each, moves its twin
into its place under its name, indexes renamed too, and gives it the old table's owner,
grants, row-level security and policies. Readers wait only for the swap itself: it comes
when everything else is done, and the caller commits right after.

A table that other objects depend on (a view, say) cannot be dropped, and a table with
triggers would lose them (a twin has none): the rows of those are replaced from the twin
instead, under the same lock. Twins committed by a builder whose load did not
finish are dropped with `discard` (by the load when it fails, or later by whoever finds it
dead: `etl.jobs.mark_interrupted`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from etl import locks

BUILD_SCHEMA = "etl_build"
DEPENDENT_OBJECTS = "2BP01"
_INDEX_DEF = re.compile(r"^(CREATE (?:UNIQUE )?INDEX \S+ ON (?:ONLY )?)(\S+)( .*)$", re.S)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def twin_name(table: str, tag: str) -> str:
    return f"{table}_{tag}"


def twin(table: str, tag: str) -> str:
    """The twin's qualified name."""
    return f"{quote(BUILD_SCHEMA)}.{quote(twin_name(table, tag))}"


def create_aside(conn: sa.Connection, table: str, tag: str) -> str:
    """An empty twin of `table` without indexes; its qualified name."""
    options = conn.execute(
        sa.text("select reloptions from pg_class where oid = cast(:t as regclass)"), {"t": table}
    ).scalar_one()
    with_ = f" with ({', '.join(options)})" if options else ""
    conn.exec_driver_sql(f"drop table if exists {twin(table, tag)}")
    conn.exec_driver_sql(
        f"create table {twin(table, tag)} (like {quote(table)} including all excluding indexes)"
        + with_
    )
    return twin(table, tag)


@dataclass(frozen=True)
class _Index:
    name: str
    definition: str
    constraint: str | None  # the constraint the index backs (primary key, unique), if any


def _indexes(conn: sa.Connection, table: str) -> list[_Index]:
    rows = conn.execute(
        sa.text(
            """
            select i.relname, pg_get_indexdef(x.indexrelid),
                   c.conname, pg_get_constraintdef(c.oid)
              from pg_index x join pg_class i on i.oid = x.indexrelid
              left join pg_constraint c on c.conindid = x.indexrelid and c.conrelid = x.indrelid
             where x.indrelid = cast(:t as regclass)
             order by i.relname
            """
        ),
        {"t": table},
    ).all()
    return [
        _Index(name, condef if conname else indexdef, conname)
        for name, indexdef, conname, condef in rows
    ]


def index_statements(conn: sa.Connection, table: str, tag: str) -> list[str]:
    """The statements that build every index of `table` on its twin (names tagged)."""
    statements = []
    for index in _indexes(conn, table):
        if index.constraint is not None:
            statements.append(
                f"alter table {twin(table, tag)} add constraint "
                f"{quote(twin_name(index.constraint, tag))} {index.definition}"
            )
            continue
        match = _INDEX_DEF.match(index.definition)
        if match is None:
            raise RuntimeError(f"unexpected index definition: {index.definition}")
        head, _, tail = match.groups()
        head = head.replace(
            f" INDEX {index.name} ON ", f" INDEX {quote(twin_name(index.name, tag))} ON ", 1
        )
        statements.append(f"{head}{twin(table, tag)}{tail}")
    return statements


def copy_indexes(conn: sa.Connection, table: str, tag: str) -> None:
    """Build on the twin of `table` every index of `table`."""
    for statement in index_statements(conn, table, tag):
        conn.exec_driver_sql(statement)


@dataclass(frozen=True)
class _Access:
    """What a swapped-in table takes over from the table it replaces."""

    schema: str
    owner: str
    grants: list[tuple[str, str, bool]]  # grantee ('' = PUBLIC), privilege, grantable
    row_security: bool
    force_row_security: bool
    policies: list[str]  # CREATE POLICY statements, "{table}" for the table's name
    comment: str | None


_POLICIES = """
select format('create policy %I on {table} as %s for %s to %s%s%s', p.polname,
              case when p.polpermissive then 'permissive' else 'restrictive' end,
              case p.polcmd when 'r' then 'select' when 'a' then 'insert' when 'w' then 'update'
                            when 'd' then 'delete' else 'all' end,
              (select string_agg(case when r = 0 then 'public' else quote_ident(a.rolname) end,
                                 ', ')
                 from unnest(p.polroles) r left join pg_roles a on a.oid = r),
              ' using (' || pg_get_expr(p.polqual, p.polrelid) || ')',
              ' with check (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')')
  from pg_policy p where p.polrelid = cast(:t as regclass) order by p.polname
"""


def _access(conn: sa.Connection, table: str) -> _Access:
    schema, owner, rls, force, comment = conn.execute(
        sa.text(
            "select relnamespace::regnamespace::text, pg_get_userbyid(relowner), "
            "relrowsecurity, relforcerowsecurity, obj_description(oid, 'pg_class') "
            "from pg_class where oid = cast(:t as regclass)"
        ),
        {"t": table},
    ).one()
    grants = conn.execute(
        sa.text(
            """
            select coalesce(r.rolname, ''), a.privilege_type, a.is_grantable
              from pg_class c, aclexplode(c.relacl) a left join pg_roles r on r.oid = a.grantee
             where c.oid = cast(:t as regclass) and a.grantee <> c.relowner
            """
        ),
        {"t": table},
    ).all()
    policies = [str(p) for p in conn.execute(sa.text(_POLICIES), {"t": table}).scalars()]
    return _Access(
        str(schema),
        str(owner),
        [(str(g), str(p), bool(o)) for g, p, o in grants],
        bool(rls),
        bool(force),
        policies,
        comment,
    )


def _grantee(name: str) -> str:
    return quote(name) if name else "public"


def _take_over(conn: sa.Connection, table: str, access: _Access) -> None:
    """Give the swapped-in `table` what the table it replaced had."""
    current = _access(conn, table)
    if current.owner != access.owner:
        conn.exec_driver_sql(f"alter table {quote(table)} owner to {quote(access.owner)}")
    for grantee in sorted({g for g, _, _ in current.grants}):
        conn.exec_driver_sql(f"revoke all on {quote(table)} from {_grantee(grantee)}")
    for grantee, privilege, grantable in access.grants:
        conn.exec_driver_sql(
            f"grant {privilege} on {quote(table)} to {_grantee(grantee)}"
            + (" with grant option" if grantable else "")
        )
    if access.row_security:
        conn.exec_driver_sql(f"alter table {quote(table)} enable row level security")
    if access.force_row_security:
        conn.exec_driver_sql(f"alter table {quote(table)} force row level security")
    for policy in access.policies:
        conn.exec_driver_sql(policy.replace("{table}", quote(table)))
    if access.comment is not None:
        literal = conn.execute(sa.select(sa.func.quote_literal(access.comment))).scalar_one()
        conn.exec_driver_sql(f"comment on table {quote(table)} is {literal}")


def swap(
    conn: sa.Connection,
    tables: Sequence[str],
    tag: str,
    *,
    policy: locks.LockPolicy | None = None,
    locked: bool = False,
) -> None:
    """Put each twin (`create_aside`) in the place of its table, in the caller's transaction.

    The tables' ACCESS EXCLUSIVE locks are taken with `etl.locks.acquire` unless the caller
    holds them already (`locked`)."""
    if not locked:
        locks.acquire(conn, [(t, locks.ACCESS_EXCLUSIVE) for t in tables], policy=policy)
    for table in tables:
        access = _access(conn, table)
        indexes = [i.name for i in _indexes(conn, table)]
        if _has_triggers(conn, table) or not _dropped(conn, table):
            # What depends on the table or hangs on it stays: its rows are replaced.
            conn.exec_driver_sql(f"truncate {quote(table)}")
            conn.exec_driver_sql(f"insert into {quote(table)} select * from {twin(table, tag)}")
            conn.exec_driver_sql(f"drop table {twin(table, tag)}")
            continue
        schema = quote(access.schema)
        conn.exec_driver_sql(f"alter table {twin(table, tag)} set schema {schema}")
        moved = f"{schema}.{quote(twin_name(table, tag))}"
        conn.exec_driver_sql(f"alter table {moved} rename to {quote(table)}")
        for index in indexes:
            conn.exec_driver_sql(
                f"alter index {schema}.{quote(twin_name(index, tag))} rename to {quote(index)}"
            )
        _take_over(conn, table, access)


def _has_triggers(conn: sa.Connection, table: str) -> bool:
    """Triggers are not copied to a twin: a table with some keeps its place."""
    return bool(
        conn.execute(
            sa.text(
                "select exists (select 1 from pg_trigger "
                "where tgrelid = cast(:t as regclass) and not tgisinternal)"
            ),
            {"t": table},
        ).scalar_one()
    )


def _dropped(conn: sa.Connection, table: str) -> bool:
    """Drop `table`; False (and nothing dropped) when other objects depend on it."""
    savepoint = conn.begin_nested()
    try:
        conn.exec_driver_sql(f"drop table {quote(table)}")
    except sa.exc.DBAPIError as exc:
        savepoint.rollback()
        if getattr(exc.orig, "sqlstate", None) != DEPENDENT_OBJECTS:
            raise
        return False
    savepoint.commit()
    return True


def discard(conn: sa.Connection, tables: Sequence[str], tag: str) -> None:
    """Drop the twins of `tables` with `tag`, if any."""
    for table in tables:
        conn.exec_driver_sql(f"drop table if exists {twin(table, tag)}")
