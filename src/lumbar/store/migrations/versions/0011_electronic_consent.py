"""Electronic consent: the document, answers, sealed typed name and digest of a consent;
consent links for participants to consent again.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"], ["staff.id"], name=op.f("fk_consent_token_created_by_staff")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_consent_token_participant_id_participant"),
        ),
        sa.ForeignKeyConstraint(
            ["revoked_by"], ["staff.id"], name=op.f("fk_consent_token_revoked_by_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_token")),
    )
    with op.batch_alter_table("consent_token", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consent_token_participant_id"), ["participant_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_consent_token_prefix"), ["prefix"], unique=False)
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.alter_column("taken_by", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(
            sa.Column("method", sa.String(length=32), nullable=False, server_default="paper")
        )
        batch_op.add_column(sa.Column("document_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("answers", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("name_sealed", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("token_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("digest", sa.String(length=64), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_consent_token_id_consent_token"), "consent_token", ["token_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_consent_token_id_consent_token"), type_="foreignkey"
        )
        batch_op.drop_column("digest")
        batch_op.drop_column("token_id")
        batch_op.drop_column("name_sealed")
        batch_op.drop_column("answers")
        batch_op.drop_column("document_sha256")
        batch_op.drop_column("method")
        batch_op.alter_column("taken_by", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("consent_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_token_prefix"))
        batch_op.drop_index(batch_op.f("ix_consent_token_participant_id"))
    op.drop_table("consent_token")
