"""Build a table aside and swap it in: readers keep the old one until the swap commits.

`create_aside` makes an empty twin of a table (columns, defaults, checks, comments, storage
options; no indexes, so that it fills fast) in the caller's transaction; the caller fills
it; `copy_indexes` builds the twin's indexes from the live table's definitions; `swap`
takes ACCESS EXCLUSIVE locks on the old tables the way `etl.locks.acquire` does, drops them
and renames the twins, their indexes too, into their places, with the old tables' owner,
grants, row-level security and policies. Readers wait only for the swap itself: the locks
are taken when everything else is done, and the caller commits right after.

An old table that other objects depend on (a view, say) cannot be dropped: its rows are
replaced from the twin instead, under the same lock.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from etl import locks

SUFFIX = "_new"
DEPENDENT_OBJECTS = "2BP01"
_INDEX_DEF = re.compile(r"^(CREATE (?:UNIQUE )?INDEX )(\S+)( ON (?:ONLY )?)(\S+)( .*)$", re.S)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def twin(name: str) -> str:
    return name + SUFFIX


def create_aside(conn: sa.Connection, table: str) -> str:
    """An empty twin of `table` without indexes; its name."""
    name = twin(table)
    options = conn.execute(
        sa.text("select reloptions from pg_class where oid = cast(:t as regclass)"), {"t": table}
    ).scalar_one()
    with_ = f" with ({', '.join(options)})" if options else ""
    conn.exec_driver_sql(f"drop table if exists {quote(name)}")
    conn.exec_driver_sql(
        f"create table {quote(name)} (like {quote(table)} including all excluding indexes)" + with_
    )
    return name


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
        _Index(name, f"constraint {condef}" if conname else indexdef, conname)
        for name, indexdef, conname, condef in rows
    ]


def copy_indexes(conn: sa.Connection, table: str, aside: str) -> None:
    """Build on `aside` every index of `table` (named with the twin suffix)."""
    for index in _indexes(conn, table):
        if index.constraint is not None:
            definition = index.definition.removeprefix("constraint ")
            conn.exec_driver_sql(
                f"alter table {quote(aside)} add constraint {quote(twin(index.constraint))} "
                + definition
            )
            continue
        match = _INDEX_DEF.match(index.definition)
        if match is None:
            raise RuntimeError(f"unexpected index definition: {index.definition}")
        head, _, on, _, tail = match.groups()
        conn.exec_driver_sql(f"{head}{quote(twin(index.name))}{on}{quote(aside)}{tail}")


@dataclass(frozen=True)
class _Access:
    """What a swapped-in table takes over from the table it replaces."""

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
    owner, rls, force, comment = conn.execute(
        sa.text(
            "select pg_get_userbyid(relowner), relrowsecurity, relforcerowsecurity, "
            "obj_description(oid, 'pg_class') from pg_class where oid = cast(:t as regclass)"
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
        str(owner), [tuple(g) for g in grants], bool(rls), bool(force), policies, comment
    )


def _grant(conn: sa.Connection, table: str, access: _Access) -> None:
    owner = conn.execute(
        sa.text("select pg_get_userbyid(relowner) from pg_class where oid = cast(:t as regclass)"),
        {"t": table},
    ).scalar_one()
    if owner != access.owner:
        conn.exec_driver_sql(f"alter table {quote(table)} owner to {quote(access.owner)}")
    current = _access(conn, table).grants
    for grantee in sorted({g for g, _, _ in current}):
        conn.exec_driver_sql(
            f"revoke all on {quote(table)} from {quote(grantee) if grantee else 'public'}"
        )
    for grantee, privilege, grantable in access.grants:
        conn.exec_driver_sql(
            f"grant {privilege} on {quote(table)} to {quote(grantee) if grantee else 'public'}"
            + (" with grant option" if grantable else "")
        )
    if access.row_security:
        conn.exec_driver_sql(f"alter table {quote(table)} enable row level security")
    if access.force_row_security:
        conn.exec_driver_sql(f"alter table {quote(table)} force row level security")
    for policy in access.policies:
        conn.exec_driver_sql(policy.replace("{table}", quote(table)))
    if access.comment is not None:
        conn.execute(
            sa.text(f"comment on table {quote(table)} is " + _literal(conn, access.comment))
        )


def _literal(conn: sa.Connection, text: str) -> str:
    return str(conn.execute(sa.select(sa.func.quote_literal(text))).scalar_one())


def swap(
    conn: sa.Connection,
    tables: Sequence[str],
    *,
    policy: locks.LockPolicy | None = None,
    locked: bool = False,
) -> None:
    """Put each twin (`create_aside`) in the place of its table, in the caller's transaction.

    The old tables' ACCESS EXCLUSIVE locks are taken with `etl.locks.acquire` unless the
    caller holds them already (`locked`)."""
    if not locked:
        locks.acquire(conn, [(t, locks.ACCESS_EXCLUSIVE) for t in tables], policy=policy)
    for table in tables:
        aside = twin(table)
        names = [(twin(i.name), i.name) for i in _indexes(conn, table)]
        access = _access(conn, table)
        savepoint = conn.begin_nested()
        try:
            conn.exec_driver_sql(f"drop table {quote(table)}")
        except sa.exc.DBAPIError as exc:
            savepoint.rollback()
            if getattr(exc.orig, "sqlstate", None) != DEPENDENT_OBJECTS:
                raise
            conn.exec_driver_sql(f"truncate {quote(table)}")
            conn.exec_driver_sql(f"insert into {quote(table)} select * from {quote(aside)}")
            conn.exec_driver_sql(f"drop table {quote(aside)}")
            continue
        savepoint.commit()
        conn.exec_driver_sql(f"alter table {quote(aside)} rename to {quote(table)}")
        for temporary, final in names:
            conn.exec_driver_sql(f"alter index {quote(temporary)} rename to {quote(final)}")
        _grant(conn, table, access)
