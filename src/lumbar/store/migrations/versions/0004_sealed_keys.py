"""Three keys, a keyed audit chain that covers the data, a sealed allocation table.

- ``trial``: the randomization and audit keys' checks (the identity key's is ``key_check``);
- ``allocation``: the assigned arm is sealed with the randomization key (``arm_sealed``),
  no longer stored as text;
- ``audit``: ``rows``, the keyed images of the data rows each unit of work wrote;
- ``audit_head``: ``mac``, the head's HMAC under the audit key.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A trial is created at the newest schema and never migrated with data in it (there is
    # no upgrade command yet), so these columns need no values for existing rows.
    with op.batch_alter_table("trial") as batch:
        batch.add_column(sa.Column("randomization_key_check", sa.LargeBinary(), nullable=False))
        batch.add_column(sa.Column("audit_key_check", sa.LargeBinary(), nullable=False))
    with op.batch_alter_table("allocation") as batch:
        batch.drop_column("arm")
        batch.add_column(sa.Column("arm_sealed", sa.LargeBinary(), nullable=False))
    # Plain ADD COLUMN (no table rebuild): the audit table's append-only triggers stay.
    op.add_column("audit", sa.Column("rows", sa.Text(), nullable=True))
    op.add_column("audit_head", sa.Column("mac", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_head", "mac")
    op.drop_column("audit", "rows")
    with op.batch_alter_table("allocation") as batch:
        batch.drop_column("arm_sealed")
        batch.add_column(sa.Column("arm", sa.String(length=64), nullable=False))
    with op.batch_alter_table("trial") as batch:
        batch.drop_column("audit_key_check")
        batch.drop_column("randomization_key_check")
