"""The outbox sends participants their invitations and reminders by e-mail or SMS.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import lumbar.store.schema

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_STATUSES_BEFORE = "status in ('queued', 'acknowledged', 'cancelled')"
_STATUSES = (
    "status in ('queued', 'sending', 'sent', 'skipped', 'failed', 'acknowledged', 'cancelled')"
)
_CHANNELS_BEFORE = "channel in ('inbox')"
_CHANNELS = "channel in ('inbox', 'email', 'sms')"
_RECIPIENT = "channel = 'inbox' or participant_id is not null"


def upgrade() -> None:
    moment = lumbar.store.schema.UTCDateTime(timezone=True)
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_outbox_status"), type_="check")
        batch_op.drop_constraint(batch_op.f("ck_outbox_channel"), type_="check")
        batch_op.add_column(sa.Column("due_at", moment, nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("next_attempt_at", moment, nullable=True))
        batch_op.add_column(sa.Column("claimed_at", moment, nullable=True))
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("sent_at", moment, nullable=True))
        batch_op.add_column(sa.Column("reason", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("last_error", sa.String(length=255), nullable=True))
        batch_op.create_check_constraint(batch_op.f("ck_outbox_status"), _STATUSES)
        batch_op.create_check_constraint(batch_op.f("ck_outbox_channel"), _CHANNELS)
        batch_op.create_check_constraint(batch_op.f("ck_outbox_recipient"), _RECIPIENT)
        batch_op.create_unique_constraint(
            batch_op.f("uq_outbox_participant_id"),
            ["participant_id", "recipient_role", "subject"],
        )
        batch_op.create_index(
            "ix_outbox_next_attempt_at", ["status", "next_attempt_at"], unique=False
        )


def downgrade() -> None:
    # A participant's messages have no place in the older outbox: they go with the columns.
    op.execute(sa.text("DELETE FROM outbox WHERE channel <> 'inbox'"))
    op.execute(
        sa.text(
            "UPDATE outbox SET status = 'queued' WHERE status not in "
            "('queued', 'acknowledged', 'cancelled')"
        )
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_next_attempt_at")
        batch_op.drop_constraint(batch_op.f("uq_outbox_participant_id"), type_="unique")
        batch_op.drop_constraint(batch_op.f("ck_outbox_recipient"), type_="check")
        batch_op.drop_constraint(batch_op.f("ck_outbox_channel"), type_="check")
        batch_op.drop_constraint(batch_op.f("ck_outbox_status"), type_="check")
        for column in (
            "last_error",
            "reason",
            "sent_at",
            "claimed_by",
            "claimed_at",
            "next_attempt_at",
            "attempts",
            "due_at",
        ):
            batch_op.drop_column(column)
        batch_op.create_check_constraint(batch_op.f("ck_outbox_status"), _STATUSES_BEFORE)
        batch_op.create_check_constraint(batch_op.f("ck_outbox_channel"), _CHANNELS_BEFORE)
