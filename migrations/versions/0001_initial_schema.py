"""Initial schema: admin units, event layers, ETL bookkeeping.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 06:20:01.821240
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "etl_runs",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("layer", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=True),
        sa.Column("file_sha256", sa.String(length=64), nullable=True),
        sa.Column("status", sa.Text(), server_default="running", nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("read", sa.Integer(), server_default="0", nullable=False),
        sa.Column("inserted", sa.Integer(), server_default="0", nullable=False),
        sa.Column("updated", sa.Integer(), server_default="0", nullable=False),
        sa.Column("unchanged", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rejected", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "warnings",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "options",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status <> 'succeeded' OR read = inserted + updated + unchanged + rejected",
            name=op.f("ck_etl_runs_counts_add_up"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_etl_runs")),
    )
    op.create_geospatial_table(
        "streets",
        sa.Column("code", sa.String(length=9), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("commander", sa.Text(), nullable=True),
        sa.Column("area_km2", sa.Float(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_streets")),
    )
    op.create_geospatial_index(
        "ix_streets_geom",
        "streets",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_geospatial_table(
        "communities",
        sa.Column("code", sa.String(length=12), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["street_code"], ["streets.code"], name=op.f("fk_communities_street_code_streets")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_communities")),
    )
    op.create_geospatial_index(
        "ix_communities_geom",
        "communities",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        op.f("ix_communities_street_code"), "communities", ["street_code"], unique=False
    )
    op.create_table(
        "etl_rejects",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("retryable", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["etl_runs.id"],
            name=op.f("fk_etl_rejects_run_id_etl_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_etl_rejects")),
    )
    op.create_index(op.f("ix_etl_rejects_run_id"), "etl_rejects", ["run_id"], unique=False)
    op.create_geospatial_table(
        "lanes",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=True),
        sa.Column("street_code", sa.String(length=9), nullable=False),
        sa.Column("lane_chief", sa.Text(), nullable=True),
        sa.Column("rectification_status", sa.Text(), nullable=True),
        sa.Column("left_from", sa.Integer(), nullable=True),
        sa.Column("left_to", sa.Integer(), nullable=True),
        sa.Column("right_from", sa.Integer(), nullable=True),
        sa.Column("right_to", sa.Integer(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="LINESTRING",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["street_code"], ["streets.code"], name=op.f("fk_lanes_street_code_streets")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_lanes")),
    )
    op.create_geospatial_index(
        "ix_lanes_geom", "lanes", ["geom"], unique=False, postgresql_using="gist", postgresql_ops={}
    )
    op.create_index(op.f("ix_lanes_street_code"), "lanes", ["street_code"], unique=False)
    op.create_geospatial_table(
        "service_halls",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=False),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["street_code"], ["streets.code"], name=op.f("fk_service_halls_street_code_streets")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_service_halls")),
    )
    op.create_geospatial_index(
        "ix_service_halls_geom",
        "service_halls",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        op.f("ix_service_halls_street_code"), "service_halls", ["street_code"], unique=False
    )
    op.create_geospatial_table(
        "grids",
        sa.Column("code", sa.String(length=15), nullable=False),
        sa.Column("community_code", sa.String(length=12), nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=False),
        sa.Column("grid_officer", sa.Text(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["community_code"],
            ["communities.code"],
            name=op.f("fk_grids_community_code_communities"),
        ),
        sa.ForeignKeyConstraint(
            ["street_code"], ["streets.code"], name=op.f("fk_grids_street_code_streets")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_grids")),
    )
    op.create_index(op.f("ix_grids_community_code"), "grids", ["community_code"], unique=False)
    op.create_geospatial_index(
        "ix_grids_geom", "grids", ["geom"], unique=False, postgresql_using="gist", postgresql_ops={}
    )
    op.create_index(op.f("ix_grids_street_code"), "grids", ["street_code"], unique=False)
    op.create_geospatial_table(
        "enforcement_cases",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column("case_no", sa.Text(), nullable=True),
        sa.Column("case_type", sa.Text(), nullable=True),
        sa.Column("agencies", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("joint", sa.Boolean(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("street_code", sa.String(length=9), nullable=True),
        sa.Column("community_code", sa.String(length=12), nullable=True),
        sa.Column("grid_code", sa.String(length=15), nullable=True),
        sa.Column("near_boundary", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("geocode_quality", sa.Text(), nullable=True),
        sa.Column("etl_run_id", sa.Integer(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["community_code"],
            ["communities.code"],
            name=op.f("fk_enforcement_cases_community_code_communities"),
        ),
        sa.ForeignKeyConstraint(
            ["etl_run_id"],
            ["etl_runs.id"],
            name=op.f("fk_enforcement_cases_etl_run_id_etl_runs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["grid_code"], ["grids.code"], name=op.f("fk_enforcement_cases_grid_code_grids")
        ),
        sa.ForeignKeyConstraint(
            ["street_code"], ["streets.code"], name=op.f("fk_enforcement_cases_street_code_streets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enforcement_cases")),
        sa.UniqueConstraint(
            "source", "source_id", name=op.f("uq_enforcement_cases_source_source_id")
        ),
    )
    op.create_index(
        op.f("ix_enforcement_cases_community_code"),
        "enforcement_cases",
        ["community_code"],
        unique=False,
    )
    op.create_geospatial_index(
        "ix_enforcement_cases_geom",
        "enforcement_cases",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        op.f("ix_enforcement_cases_grid_code"), "enforcement_cases", ["grid_code"], unique=False
    )
    op.create_index(
        "ix_enforcement_cases_opened_at", "enforcement_cases", ["opened_at"], unique=False
    )
    op.create_index(
        op.f("ix_enforcement_cases_street_code"), "enforcement_cases", ["street_code"], unique=False
    )
    op.create_geospatial_table(
        "relocation_targets",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=True),
        sa.Column("floor_area_m2", sa.Float(), nullable=True),
        sa.Column("merchants", sa.Integer(), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("progress", sa.Float(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("planned_start", sa.Date(), nullable=True),
        sa.Column("planned_end", sa.Date(), nullable=True),
        sa.Column("actual_start", sa.Date(), nullable=True),
        sa.Column("actual_end", sa.Date(), nullable=True),
        sa.Column("street_code", sa.String(length=9), nullable=True),
        sa.Column("community_code", sa.String(length=12), nullable=True),
        sa.Column("grid_code", sa.String(length=15), nullable=True),
        sa.Column("near_boundary", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("geocode_quality", sa.Text(), nullable=True),
        sa.Column("etl_run_id", sa.Integer(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["community_code"],
            ["communities.code"],
            name=op.f("fk_relocation_targets_community_code_communities"),
        ),
        sa.ForeignKeyConstraint(
            ["etl_run_id"],
            ["etl_runs.id"],
            name=op.f("fk_relocation_targets_etl_run_id_etl_runs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["grid_code"], ["grids.code"], name=op.f("fk_relocation_targets_grid_code_grids")
        ),
        sa.ForeignKeyConstraint(
            ["street_code"],
            ["streets.code"],
            name=op.f("fk_relocation_targets_street_code_streets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_relocation_targets")),
        sa.UniqueConstraint(
            "source", "source_id", name=op.f("uq_relocation_targets_source_source_id")
        ),
    )
    op.create_index(
        op.f("ix_relocation_targets_community_code"),
        "relocation_targets",
        ["community_code"],
        unique=False,
    )
    op.create_geospatial_index(
        "ix_relocation_targets_geom",
        "relocation_targets",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        op.f("ix_relocation_targets_grid_code"), "relocation_targets", ["grid_code"], unique=False
    )
    op.create_index(
        "ix_relocation_targets_planned_end", "relocation_targets", ["planned_end"], unique=False
    )
    op.create_index(
        op.f("ix_relocation_targets_street_code"),
        "relocation_targets",
        ["street_code"],
        unique=False,
    )
    op.create_geospatial_table(
        "renovation_projects",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=True),
        sa.Column("phase", sa.Text(), nullable=True),
        sa.Column("progress", sa.Float(), nullable=True),
        sa.Column("lane_code", sa.Text(), nullable=True),
        sa.Column("planned_start", sa.Date(), nullable=True),
        sa.Column("planned_end", sa.Date(), nullable=True),
        sa.Column("actual_start", sa.Date(), nullable=True),
        sa.Column("actual_end", sa.Date(), nullable=True),
        sa.Column("street_code", sa.String(length=9), nullable=True),
        sa.Column("community_code", sa.String(length=12), nullable=True),
        sa.Column("grid_code", sa.String(length=15), nullable=True),
        sa.Column("near_boundary", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("geocode_quality", sa.Text(), nullable=True),
        sa.Column("etl_run_id", sa.Integer(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "geom",
            Geometry(
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["community_code"],
            ["communities.code"],
            name=op.f("fk_renovation_projects_community_code_communities"),
        ),
        sa.ForeignKeyConstraint(
            ["etl_run_id"],
            ["etl_runs.id"],
            name=op.f("fk_renovation_projects_etl_run_id_etl_runs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["grid_code"], ["grids.code"], name=op.f("fk_renovation_projects_grid_code_grids")
        ),
        sa.ForeignKeyConstraint(
            ["street_code"],
            ["streets.code"],
            name=op.f("fk_renovation_projects_street_code_streets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_renovation_projects")),
        sa.UniqueConstraint(
            "source", "source_id", name=op.f("uq_renovation_projects_source_source_id")
        ),
    )
    op.create_index(
        op.f("ix_renovation_projects_community_code"),
        "renovation_projects",
        ["community_code"],
        unique=False,
    )
    op.create_geospatial_index(
        "ix_renovation_projects_geom",
        "renovation_projects",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        op.f("ix_renovation_projects_grid_code"), "renovation_projects", ["grid_code"], unique=False
    )
    op.create_index(
        "ix_renovation_projects_planned_start",
        "renovation_projects",
        ["planned_start"],
        unique=False,
    )
    op.create_index(
        op.f("ix_renovation_projects_street_code"),
        "renovation_projects",
        ["street_code"],
        unique=False,
    )
    op.create_geospatial_table(
        "service_requests",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("department", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("coord_system", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("callback_valid", sa.Boolean(), nullable=True),
        sa.Column("callback_contacted", sa.Boolean(), nullable=True),
        sa.Column("callback_solved", sa.Boolean(), nullable=True),
        sa.Column("satisfaction", sa.Text(), nullable=True),
        sa.Column("street_code", sa.String(length=9), nullable=True),
        sa.Column("community_code", sa.String(length=12), nullable=True),
        sa.Column("grid_code", sa.String(length=15), nullable=True),
        sa.Column("near_boundary", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("geocode_quality", sa.Text(), nullable=True),
        sa.Column("etl_run_id", sa.Integer(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["community_code"],
            ["communities.code"],
            name=op.f("fk_service_requests_community_code_communities"),
        ),
        sa.ForeignKeyConstraint(
            ["etl_run_id"],
            ["etl_runs.id"],
            name=op.f("fk_service_requests_etl_run_id_etl_runs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["grid_code"], ["grids.code"], name=op.f("fk_service_requests_grid_code_grids")
        ),
        sa.ForeignKeyConstraint(
            ["street_code"], ["streets.code"], name=op.f("fk_service_requests_street_code_streets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_requests")),
        sa.UniqueConstraint(
            "source", "source_id", name=op.f("uq_service_requests_source_source_id")
        ),
    )
    op.create_index(
        op.f("ix_service_requests_community_code"),
        "service_requests",
        ["community_code"],
        unique=False,
    )
    op.create_geospatial_index(
        "ix_service_requests_geom",
        "service_requests",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        op.f("ix_service_requests_grid_code"), "service_requests", ["grid_code"], unique=False
    )
    op.create_index(
        "ix_service_requests_received_at", "service_requests", ["received_at"], unique=False
    )
    op.create_index(
        op.f("ix_service_requests_street_code"), "service_requests", ["street_code"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_service_requests_street_code"), table_name="service_requests")
    op.drop_index("ix_service_requests_received_at", table_name="service_requests")
    op.drop_index(op.f("ix_service_requests_grid_code"), table_name="service_requests")
    op.drop_geospatial_index(
        "ix_service_requests_geom",
        table_name="service_requests",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_index(op.f("ix_service_requests_community_code"), table_name="service_requests")
    op.drop_geospatial_table("service_requests")
    op.drop_index(op.f("ix_renovation_projects_street_code"), table_name="renovation_projects")
    op.drop_index("ix_renovation_projects_planned_start", table_name="renovation_projects")
    op.drop_index(op.f("ix_renovation_projects_grid_code"), table_name="renovation_projects")
    op.drop_geospatial_index(
        "ix_renovation_projects_geom",
        table_name="renovation_projects",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_index(op.f("ix_renovation_projects_community_code"), table_name="renovation_projects")
    op.drop_geospatial_table("renovation_projects")
    op.drop_index(op.f("ix_relocation_targets_street_code"), table_name="relocation_targets")
    op.drop_index("ix_relocation_targets_planned_end", table_name="relocation_targets")
    op.drop_index(op.f("ix_relocation_targets_grid_code"), table_name="relocation_targets")
    op.drop_geospatial_index(
        "ix_relocation_targets_geom",
        table_name="relocation_targets",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_index(op.f("ix_relocation_targets_community_code"), table_name="relocation_targets")
    op.drop_geospatial_table("relocation_targets")
    op.drop_index(op.f("ix_enforcement_cases_street_code"), table_name="enforcement_cases")
    op.drop_index("ix_enforcement_cases_opened_at", table_name="enforcement_cases")
    op.drop_index(op.f("ix_enforcement_cases_grid_code"), table_name="enforcement_cases")
    op.drop_geospatial_index(
        "ix_enforcement_cases_geom",
        table_name="enforcement_cases",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_index(op.f("ix_enforcement_cases_community_code"), table_name="enforcement_cases")
    op.drop_geospatial_table("enforcement_cases")
    op.drop_index(op.f("ix_grids_street_code"), table_name="grids")
    op.drop_geospatial_index(
        "ix_grids_geom", table_name="grids", postgresql_using="gist", column_name="geom"
    )
    op.drop_index(op.f("ix_grids_community_code"), table_name="grids")
    op.drop_geospatial_table("grids")
    op.drop_index(op.f("ix_service_halls_street_code"), table_name="service_halls")
    op.drop_geospatial_index(
        "ix_service_halls_geom",
        table_name="service_halls",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("service_halls")
    op.drop_index(op.f("ix_lanes_street_code"), table_name="lanes")
    op.drop_geospatial_index(
        "ix_lanes_geom", table_name="lanes", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("lanes")
    op.drop_index(op.f("ix_etl_rejects_run_id"), table_name="etl_rejects")
    op.drop_table("etl_rejects")
    op.drop_index(op.f("ix_communities_street_code"), table_name="communities")
    op.drop_geospatial_index(
        "ix_communities_geom", table_name="communities", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("communities")
    op.drop_geospatial_index(
        "ix_streets_geom", table_name="streets", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("streets")
    op.drop_table("etl_runs")
