"""Credentials: passwords with a second factor, API tokens, survey tokens, failed sign-ins.

- ``staff``: when the password was set, the sealed TOTP secret, whether it is
  confirmed, and the time step of the last code accepted (no code counts twice);
- ``api_token``: a member of staff's scoped, expiring, revocable tokens (SHA-256 only);
- ``survey_token``: a participant's one-time link to one visit's questionnaires;
- ``login_failure``: failed password sign-ins per user name, for the rate limit.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import lumbar.store.schema

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "staff",
        sa.Column(
            "password_changed_at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=True
        ),
    )
    op.add_column("staff", sa.Column("totp_sealed", sa.LargeBinary(), nullable=True))
    op.add_column(
        "staff",
        sa.Column("totp_active", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("staff", sa.Column("totp_last_step", sa.Integer(), nullable=True))
    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.Column("created_at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.id"], name=op.f("fk_api_token_staff_id_staff")
        ),
        sa.ForeignKeyConstraint(
            ["revoked_by"], ["staff.id"], name=op.f("fk_api_token_revoked_by_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_token")),
    )
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_token_prefix"), ["prefix"], unique=False)
        batch_op.create_index(batch_op.f("ix_api_token_staff_id"), ["staff_id"], unique=False)
    op.create_table(
        "survey_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("visit", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_survey_token_participant_id_participant"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["staff.id"], name=op.f("fk_survey_token_created_by_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_token")),
    )
    with op.batch_alter_table("survey_token", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_survey_token_participant_id"), ["participant_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_survey_token_prefix"), ["prefix"], unique=False)
    op.create_table(
        "login_failure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("locked_until", lumbar.store.schema.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failure")),
    )
    with op.batch_alter_table("login_failure", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_login_failure_username"), ["username"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("login_failure", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_failure_username"))
    op.drop_table("login_failure")
    with op.batch_alter_table("survey_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_survey_token_prefix"))
        batch_op.drop_index(batch_op.f("ix_survey_token_participant_id"))
    op.drop_table("survey_token")
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_token_staff_id"))
        batch_op.drop_index(batch_op.f("ix_api_token_prefix"))
    op.drop_table("api_token")
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.drop_column("totp_last_step")
        batch_op.drop_column("totp_active")
        batch_op.drop_column("totp_sealed")
        batch_op.drop_column("password_changed_at")
