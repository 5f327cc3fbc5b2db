"""What callers hear: uploaded audio clips, recorded voices for robot prompts, hold lines, their
tips and the tips' play counts. One line, "main", exists from the start.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "audio_clips",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("pcm16", sa.LargeBinary(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("source_name", sa.String(length=200), nullable=False),
        sa.Column("source_format", sa.String(length=100), nullable=False),
        sa.Column("loudness_lufs", sa.Float(), nullable=True),
        sa.Column("gain_db", sa.Float(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=100), nullable=False),
        sa.Column("uploaded_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audio_clips"),
    )
    op.create_table(
        "prompt_recordings",
        sa.Column("prompt_id", sa.String(length=100), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("clip_id", sa.String(length=64), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(["clip_id"], ["audio_clips.id"],
                                name="fk_prompt_recordings_clip_id_audio_clips"),
        sa.PrimaryKeyConstraint("prompt_id", "locale", name="pk_prompt_recordings"),
    )
    op.create_table(
        "hold_lines",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("rotation", sa.String(length=16), nullable=False),
        sa.Column("first_delay_s", sa.Float(), nullable=False),
        sa.Column("gap_s", sa.Float(), nullable=False),
        sa.Column("gap_clip_id", sa.String(length=64), nullable=True),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(["gap_clip_id"], ["audio_clips.id"],
                                name="fk_hold_lines_gap_clip_id_audio_clips"),
        sa.PrimaryKeyConstraint("name", name="pk_hold_lines"),
    )
    lines = sa.table("hold_lines", sa.column("name"), sa.column("title"), sa.column("rotation"),
                     sa.column("first_delay_s"), sa.column("gap_s"), sa.column("updated_at"))
    op.bulk_insert(lines, [{"name": "main", "title": "Main line", "rotation": "order",
                            "first_delay_s": 5.0, "gap_s": 3.0,
                            "updated_at": datetime.now(UTC)}])
    op.create_table(
        "hold_tips",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("clip_id", sa.String(length=64), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=True),
        sa.Column("ends_on", sa.Date(), nullable=True),
        sa.Column("daily_from", sa.Time(), nullable=True),
        sa.Column("daily_to", sa.Time(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("render_error", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["clip_id"], ["audio_clips.id"],
                                name="fk_hold_tips_clip_id_audio_clips"),
        sa.PrimaryKeyConstraint("id", name="pk_hold_tips"),
    )
    op.create_index("ix_hold_tips_position", "hold_tips", ["position"])
    op.create_table(
        "hold_tip_lines",
        sa.Column("tip_id", sa.Integer(), nullable=False),
        sa.Column("line", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["tip_id"], ["hold_tips.id"],
                                name="fk_hold_tip_lines_tip_id_hold_tips"),
        sa.ForeignKeyConstraint(["line"], ["hold_lines.name"],
                                name="fk_hold_tip_lines_line_hold_lines"),
        sa.PrimaryKeyConstraint("tip_id", "line", name="pk_hold_tip_lines"),
    )
    op.create_table(
        "hold_tip_stats",
        sa.Column("tip_id", sa.Integer(), nullable=False),
        sa.Column("line", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("plays", sa.Integer(), nullable=False),
        sa.Column("hangups", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["tip_id"], ["hold_tips.id"],
                                name="fk_hold_tip_stats_tip_id_hold_tips"),
        sa.PrimaryKeyConstraint("tip_id", "line", "day", name="pk_hold_tip_stats"),
    )


def downgrade() -> None:
    op.drop_table("hold_tip_stats")
    op.drop_table("hold_tip_lines")
    op.drop_index("ix_hold_tips_position", "hold_tips")
    op.drop_table("hold_tips")
    op.drop_table("hold_lines")
    op.drop_table("prompt_recordings")
    op.drop_table("audio_clips")
