"""case DICOM UIDs (the de-identified Secondary Capture that DICOM SR reports reference)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 04:20:00

Existing cases get new UIDs here; new cases get them at ingest. They are never the upload's UIDs.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("study_instance_uid", "series_instance_uid", "sop_instance_uid")


def upgrade() -> None:
    from pydicom.uid import generate_uid

    with op.batch_alter_table("cases", schema=None) as batch_op:
        for name in COLUMNS:
            batch_op.add_column(sa.Column(name, sa.String(length=64), nullable=True))
    cases = sa.table(
        "cases", sa.column("id", sa.Integer), *(sa.column(c, sa.String) for c in COLUMNS)
    )
    connection = op.get_bind()
    for (case_id,) in connection.execute(sa.select(cases.c.id)).all():
        uids = {name: str(generate_uid(prefix=None)) for name in COLUMNS}
        connection.execute(cases.update().where(cases.c.id == case_id).values(**uids))
    with op.batch_alter_table("cases", schema=None) as batch_op:
        for name in COLUMNS:
            batch_op.alter_column(name, existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index(
            batch_op.f("ix_cases_sop_instance_uid"), ["sop_instance_uid"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cases_sop_instance_uid"))
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
