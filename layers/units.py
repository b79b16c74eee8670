"""Units (承办单位): who a case can be dispatched to.

Each street has its centre (政务服务和街区治理中心), its seven departments (七大部) and its
stations (科站队所: 司法所, 派出所 …); the district has its departments (区级部门: 区城管委 …),
which come when a street blows the whistle. A unit's code is stable and readable: a street's
unit is the street code, a hyphen and an ASCII suffix (`110102001-centre`,
`110102001-city`, `110102001-police`); a district department is `district-` and a suffix
(`district-market`). Unit names are not secret: every role reads the table (migration 0015).
"""

from __future__ import annotations

import sqlalchemy as sa

from layers.registry import metadata

# kind → its Chinese label
UNIT_KINDS = {
    "centre": "街道中心",
    "department": "七大部",
    "station": "科站队所",
    "district_department": "区级部门",
}
STREET_KINDS = ("centre", "department", "station")  # the kinds that belong to one street
DISTRICT_PREFIX = "district-"
CODE_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
CODE_LENGTH = 64

units = sa.Table(
    "units",
    metadata,
    sa.Column("code", sa.String(CODE_LENGTH), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("street_code", sa.String(9), sa.ForeignKey("streets.code"), index=True),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.CheckConstraint(
        "kind in ('centre', 'department', 'station', 'district_department')", name="kind"
    ),
    # A street's units have a street; a district department has none.
    sa.CheckConstraint("(kind = 'district_department') = (street_code is null)", name="street"),
    # The code says whose unit it is: `<street code>-…` or `district-…`.
    sa.CheckConstraint(
        f"code ~ '{CODE_PATTERN}' and case when street_code is null "
        f"then starts_with(code, '{DISTRICT_PREFIX}') "
        "else starts_with(code, street_code || '-') end",
        name="code",
    ),
    sa.CheckConstraint("btrim(name) <> ''", name="name"),
    # One name once per street, and once among the district's departments.
    sa.UniqueConstraint("street_code", "name", postgresql_nulls_not_distinct=True),
)
