"""Per-session ratings: the 0-10 ratings a participant gives before a treatment session.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "session_rating",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("instrument", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.CheckConstraint("value >= 0 AND value <= 10", name=op.f("ck_session_rating_value")),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["treatment_session.id"],
            name=op.f("fk_session_rating_session_id_treatment_session"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_rating")),
        sa.UniqueConstraint("session_id", "instrument", name=op.f("uq_session_rating_session_id")),
    )
    with op.batch_alter_table("session_rating", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_session_rating_session_id"), ["session_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("session_rating", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_session_rating_session_id"))
    op.drop_table("session_rating")
