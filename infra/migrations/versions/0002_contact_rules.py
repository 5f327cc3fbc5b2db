"""Contact rules held by the database, answers stored when given, orphaned dialogs, a shared
dialing budget and the health probe.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DIALING = sa.text("status = 'dialing'")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("call_attempts") as batch:
        batch.add_column(sa.Column("result", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("result_value", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("result_at", _utc(), nullable=True))
        batch.add_column(sa.Column("dialog", sa.JSON(), nullable=True))

    for column in ("client_id", "phone"):
        op.create_index(f"uq_jobs_dialing_{column}", "jobs", [column], unique=True,
                        postgresql_where=_DIALING, sqlite_where=_DIALING)

    op.create_table(
        "contact_locks",
        sa.Column("key", sa.String(length=240), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_contact_locks"),
    )
    op.create_table(
        "dial_budget",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("next_slot_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_dial_budget"),
    )
    op.create_table(
        "health_probes",
        sa.Column("instance", sa.String(length=200), nullable=False),
        sa.Column("checked_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("instance", name="pk_health_probes"),
    )


def downgrade() -> None:
    for table in ("health_probes", "dial_budget", "contact_locks"):
        op.drop_table(table)
    for column in ("client_id", "phone"):
        op.drop_index(f"uq_jobs_dialing_{column}", "jobs")
    with op.batch_alter_table("call_attempts") as batch:
        for column in ("dialog", "result_at", "result_value", "result"):
            batch.drop_column(column)
