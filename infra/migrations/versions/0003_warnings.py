"""Warning calls: jobs withdrawn while ringing and rendered ahead, callback tasks with their
context and request count, top-ups for the warnings report.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("withdrawn_at", _utc(), nullable=True))
        batch.add_column(sa.Column("prepared_at", _utc(), nullable=True))
    with op.batch_alter_table("callback_tasks") as batch:
        batch.add_column(sa.Column("context", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("requests", sa.Integer(), nullable=False,
                                   server_default="1"))
        batch.add_column(sa.Column("updated_at", _utc(), nullable=True))
    op.create_table(
        "top_ups",
        sa.Column("source_event_id", sa.String(length=200), nullable=False),
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column("amount", sa.String(length=40), nullable=True),
        sa.Column("occurred_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("source_event_id", name="pk_top_ups"),
    )
    op.create_index("ix_top_ups_client_at", "top_ups", ["client_id", "occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_top_ups_client_at", "top_ups")
    op.drop_table("top_ups")
    with op.batch_alter_table("callback_tasks") as batch:
        for column in ("updated_at", "requests", "context"):
            batch.drop_column(column)
    with op.batch_alter_table("jobs") as batch:
        for column in ("prepared_at", "withdrawn_at"):
            batch.drop_column(column)
