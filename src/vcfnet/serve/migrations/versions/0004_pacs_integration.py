"""PACS integration: the DICOMweb endpoint, the original-UID mapping, the send queue (issue 20)

Revision ID: 0004_pacs
Revises: 0003
Create Date: 2026-12-01 05:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_pacs"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pacs_endpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("qido_url", sa.String(length=512), nullable=False),
        sa.Column("wado_url", sa.String(length=512), nullable=False),
        sa.Column("stow_url", sa.String(length=512), nullable=False),
        sa.Column("auth", sa.String(length=8), nullable=False),
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("send_on_sign", sa.Boolean(), nullable=False),
        sa.Column("send_after_analysis", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "pacs_origins",
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("series_uid", sa.String(length=64), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("sop_class_uid", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("case_id"),
    )
    op.create_table(
        "pacs_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("read_id", sa.Integer(), nullable=True),
        sa.Column("analysis_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=255), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["analysis_id"], ["analyses.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["read_id"], ["read_requests.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_pacs_outbox_case_id"), "pacs_outbox", ["case_id"], unique=False)
    op.create_index(op.f("ix_pacs_outbox_state"), "pacs_outbox", ["state"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_pacs_outbox_state"), table_name="pacs_outbox")
    op.drop_index(op.f("ix_pacs_outbox_case_id"), table_name="pacs_outbox")
    op.drop_table("pacs_outbox")
    op.drop_table("pacs_origins")
    op.drop_table("pacs_endpoints")
