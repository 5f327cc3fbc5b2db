"""Callback tasks for support: the task's life (claim, resolve, cancel, overdue, escalation),
notes and attempts, the audit log, and the people who sign in (users, browser sessions, the
sign-in throttle).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("callback_tasks") as batch:
        batch.add_column(sa.Column("client_timezone", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("assignee", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("claimed_at", _utc(), nullable=True))
        batch.add_column(sa.Column("resolved_at", _utc(), nullable=True))
        batch.add_column(sa.Column("outcome", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("resolution_note", sa.Text(), nullable=True))
        batch.add_column(sa.Column("cancel_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("overdue_at", _utc(), nullable=True))
        batch.add_column(sa.Column("escalations", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.create_index("ix_callback_tasks_assignee", ["assignee"])
    op.create_table(
        "callback_task_notes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("author", sa.String(length=100), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["callback_tasks.id"],
                                name="fk_callback_task_notes_task_id_callback_tasks"),
        sa.PrimaryKeyConstraint("id", name="pk_callback_task_notes"),
    )
    op.create_index("ix_callback_task_notes_task_id", "callback_task_notes", ["task_id"])
    op.create_table(
        "callback_task_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("agent", sa.String(length=100), nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("result", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["task_id"], ["callback_tasks.id"],
                                name="fk_callback_task_attempts_task_id_callback_tasks"),
        sa.PrimaryKeyConstraint("id", name="pk_callback_task_attempts"),
    )
    op.create_index("ix_callback_task_attempts_task_id", "callback_task_attempts", ["task_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_target", "audit_log", ["target", "at"])
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("password_changed_at", _utc(), nullable=False),
        sa.Column("disabled_at", _utc(), nullable=True),
        sa.CheckConstraint("role IN ('admin', 'marketing', 'support')", name="ck_users_user_role"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
    )
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("last_seen_at", _utc(), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_web_sessions_user_id_users"),
        sa.PrimaryKeyConstraint("token_hash", name="pk_web_sessions"),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
    op.create_table(
        "sign_in_failures",
        sa.Column("key", sa.String(length=240), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("first_at", _utc(), nullable=False),
        sa.Column("locked_until", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_sign_in_failures"),
    )


def downgrade() -> None:
    op.drop_table("sign_in_failures")
    op.drop_index("ix_web_sessions_user_id", "web_sessions")
    op.drop_table("web_sessions")
    op.drop_table("users")
    op.drop_index("ix_audit_log_target", "audit_log")
    op.drop_table("audit_log")
    for table in ("callback_task_attempts", "callback_task_notes"):
        op.drop_index(f"ix_{table}_task_id", table)
        op.drop_table(table)
    with op.batch_alter_table("callback_tasks") as batch:
        batch.drop_index("ix_callback_tasks_assignee")
        for column in ("escalations", "overdue_at", "cancel_reason", "resolution_note",
                       "outcome", "resolved_at", "claimed_at", "assignee", "client_timezone"):
            batch.drop_column(column)
