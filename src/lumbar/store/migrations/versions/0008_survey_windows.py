"""Survey links open with their visit window, can be revoked, and keep answers saved so far.

- ``survey_token.opens_at``: when the link starts to open (the visit window's first day);
  existing links open from when they were issued;
- ``survey_token.opened_at``: when the participant first opened it;
- ``survey_token.revoked_at`` / ``revoked_by``: a link revoked (or replaced) by staff;
- ``survey_token.draft``: answers saved screen by screen, not yet submitted.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import lumbar.store.schema

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    moment = lumbar.store.schema.UTCDateTime(timezone=True)
    with op.batch_alter_table("survey_token", schema=None) as batch_op:
        batch_op.add_column(sa.Column("opens_at", moment, nullable=True))
        batch_op.add_column(sa.Column("opened_at", moment, nullable=True))
        batch_op.add_column(sa.Column("revoked_at", moment, nullable=True))
        batch_op.add_column(sa.Column("revoked_by", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("draft", sa.JSON(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_survey_token_revoked_by_staff"), "staff", ["revoked_by"], ["id"]
        )
    op.execute("UPDATE survey_token SET opens_at = created_at")
    with op.batch_alter_table("survey_token", schema=None) as batch_op:
        batch_op.alter_column("opens_at", existing_type=moment, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("survey_token", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_survey_token_revoked_by_staff"), type_="foreignkey")
        batch_op.drop_column("draft")
        batch_op.drop_column("revoked_by")
        batch_op.drop_column("revoked_at")
        batch_op.drop_column("opened_at")
        batch_op.drop_column("opens_at")
