"""Ratings a participant gives on their own phone before a treatment session.

- ``survey_token.kind``: ``survey`` (a follow-up visit's questionnaires, as before) or
  ``session_rating`` (the participant's link to rate before each session);
- ``given_rating``: one day's ratings given through that link, ``pending`` until the
  day's session is logged, then ``attached`` to it or ``superseded`` by the tablet's.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import lumbar.store.schema

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("survey_token", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), server_default="survey", nullable=False)
        )
    op.create_table(
        "given_rating",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("rated_on", sa.Date(), nullable=False),
        sa.Column("ratings", sa.JSON(), nullable=False),
        sa.Column("given_at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_given_rating_participant_id_participant"),
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["treatment_session.id"],
            name=op.f("fk_given_rating_session_id_treatment_session"),
        ),
        sa.ForeignKeyConstraint(
            ["token_id"], ["survey_token.id"], name=op.f("fk_given_rating_token_id_survey_token")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_given_rating")),
        sa.UniqueConstraint(
            "participant_id", "rated_on", name=op.f("uq_given_rating_participant_id")
        ),
    )
    with op.batch_alter_table("given_rating", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_given_rating_participant_id"), ["participant_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("given_rating", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_given_rating_participant_id"))
    op.drop_table("given_rating")
    with op.batch_alter_table("survey_token", schema=None) as batch_op:
        batch_op.drop_column("kind")
