"""reader studies: studies, their cases (truth per box), readers and reads (issue 14)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 04:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("design", sa.String(length=16), nullable=False),
        sa.Column("washout_days", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Boolean(), nullable=False),
        sa.Column("protocol", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("launched_at", sa.DateTime(), nullable=True),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_studies_owner_id"), "studies", ["owner_id"], unique=False)
    op.create_table(
        "study_readers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("study_id", "user_id"),
    )
    op.create_index(op.f("ix_study_readers_study_id"), "study_readers", ["study_id"], unique=False)
    op.create_index(op.f("ix_study_readers_user_id"), "study_readers", ["user_id"], unique=False)
    op.create_table(
        "study_cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("boxes", sa.JSON(), nullable=False),
        sa.Column("analysis_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["analysis_id"],
            ["analyses.id"],
        ),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
        ),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("study_id", "case_id"),
    )
    op.create_index(op.f("ix_study_cases_case_id"), "study_cases", ["case_id"], unique=False)
    op.create_index(op.f("ix_study_cases_study_id"), "study_cases", ["study_id"], unique=False)
    op.create_table(
        "study_reads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reader_id", sa.Integer(), nullable=False),
        sa.Column("study_case_id", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("session", sa.Integer(), nullable=False),
        sa.Column("box", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=32), nullable=False),
        sa.Column("confidences", sa.JSON(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["reader_id"], ["study_readers.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["study_case_id"], ["study_cases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("reader_id", "study_case_id", "mode", "box"),
    )
    op.create_index(op.f("ix_study_reads_reader_id"), "study_reads", ["reader_id"], unique=False)
    op.create_index(
        op.f("ix_study_reads_study_case_id"), "study_reads", ["study_case_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_study_reads_study_case_id"), table_name="study_reads")
    op.drop_index(op.f("ix_study_reads_reader_id"), table_name="study_reads")
    op.drop_table("study_reads")
    op.drop_index(op.f("ix_study_cases_study_id"), table_name="study_cases")
    op.drop_index(op.f("ix_study_cases_case_id"), table_name="study_cases")
    op.drop_table("study_cases")
    op.drop_index(op.f("ix_study_readers_user_id"), table_name="study_readers")
    op.drop_index(op.f("ix_study_readers_study_id"), table_name="study_readers")
    op.drop_table("study_readers")
    op.drop_index(op.f("ix_studies_owner_id"), table_name="studies")
    op.drop_table("studies")
