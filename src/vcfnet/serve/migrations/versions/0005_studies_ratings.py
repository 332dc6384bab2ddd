"""reader studies: the rating scale of a study (none, sliders summing to 100, or 5-point)

Revision ID: 0005_studies
Revises: 0004_pacs
Create Date: 2026-12-01 05:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_studies"
down_revision: str | None = "0004_pacs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.add_column(
            sa.Column("ratings", sa.String(length=16), nullable=False, server_default="none")
        )
    op.execute(sa.text("UPDATE studies SET ratings = 'sliders' WHERE confidence"))


def downgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.drop_column("ratings")
