"""contract versions and drift events

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 10:26:56.329082
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contract_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_id", sa.String(length=80), nullable=False),
        sa.Column("origin", sa.String(length=20), nullable=False),
        sa.Column("file", sa.String(length=500), nullable=True),
        sa.Column("file_content_id", sa.String(length=80), nullable=False),
        sa.Column("evolved", sa.JSON(), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_contract_versions_run_id_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contract_versions")),
        sa.UniqueConstraint("source", "version", name=op.f("uq_contract_versions_source")),
    )
    op.create_table(
        "drift_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("dataset_version", sa.Integer(), nullable=True),
        sa.Column("contract_version", sa.Integer(), nullable=True),
        sa.Column("batch", sa.String(length=500), nullable=False),
        sa.Column("entity", sa.String(length=20), nullable=False),
        sa.Column("change", sa.String(length=30), nullable=False),
        sa.Column("column", sa.String(length=500), nullable=True),
        sa.Column("old_type", sa.String(length=100), nullable=True),
        sa.Column("new_type", sa.String(length=100), nullable=True),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("affected", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_drift_events_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_events")),
    )
    with op.batch_alter_table("drift_events", schema=None) as batch_op:
        batch_op.create_index("ix_drift_events_source", ["source"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("drift_events", schema=None) as batch_op:
        batch_op.drop_index("ix_drift_events_source")

    op.drop_table("drift_events")
    op.drop_table("contract_versions")
