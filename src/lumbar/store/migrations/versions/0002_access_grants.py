"""Access grants and the origin of audit records.

- ``staff.may_unblind``: the emergency-unblinding grant, held by a person, not a role;
- ``access_grant``: who granted someone arms or emergency unblinding, why, and who
  countersigned or revoked it;
- ``audit.origin``: how the actor's identity was established (the operator's command
  line with its OS user and host, a web sign-in, an API token).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import lumbar.store.schema

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "staff",
        sa.Column("may_unblind", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("audit", sa.Column("origin", sa.String(length=255), nullable=True))
    op.create_table(
        "access_grant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("granted_by", sa.Integer(), nullable=False),
        sa.Column("granted_at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("countersigned_by", sa.Integer(), nullable=True),
        sa.Column(
            "countersigned_at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("revoked_by", sa.Integer(), nullable=True),
        sa.Column("revoked_at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind in ('unblinded', 'emergency_unblind')", name=op.f("ck_access_grant_kind")
        ),
        sa.CheckConstraint("granted_by <> staff_id", name=op.f("ck_access_grant_not_self")),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.id"], name=op.f("fk_access_grant_staff_id_staff")
        ),
        sa.ForeignKeyConstraint(
            ["granted_by"], ["staff.id"], name=op.f("fk_access_grant_granted_by_staff")
        ),
        sa.ForeignKeyConstraint(
            ["countersigned_by"],
            ["staff.id"],
            name=op.f("fk_access_grant_countersigned_by_staff"),
        ),
        sa.ForeignKeyConstraint(
            ["revoked_by"], ["staff.id"], name=op.f("fk_access_grant_revoked_by_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_grant")),
    )
    with op.batch_alter_table("access_grant", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_access_grant_staff_id"), ["staff_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("access_grant", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_grant_staff_id"))
    op.drop_table("access_grant")
    op.drop_column("audit", "origin")
    op.drop_column("staff", "may_unblind")
