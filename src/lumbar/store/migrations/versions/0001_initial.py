"""Initial schema: every table of a trial, the audit head, and append-only audit triggers.

Revision ID: 0001
Revises: none
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import lumbar.store.schema

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "allocation_slot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stratum", sa.String(length=255), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("block", sa.Integer(), nullable=False),
        sa.Column("block_size", sa.Integer(), nullable=False),
        sa.Column("arm_sealed", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocation_slot")),
        sa.UniqueConstraint("stratum", "position", name=op.f("uq_allocation_slot_stratum")),
    )
    op.create_table(
        "audit",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.Column("old", sa.Text(), nullable=True),
        sa.Column("new", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit")),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "site",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("created_at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site")),
        sa.UniqueConstraint("code", name=op.f("uq_site_code")),
    )
    op.create_table(
        "staff",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("unblinded", sa.Boolean(), nullable=False),
        sa.Column("all_sites", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("created_at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "role in ('admin', 'coordinator', 'therapist', 'outcome_assessor', 'statistician', 'monitor')",
            name=op.f("ck_staff_role"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff")),
        sa.UniqueConstraint("username", name=op.f("uq_staff_username")),
    )
    op.create_table(
        "stratum_counter",
        sa.Column("stratum", sa.String(length=255), nullable=False),
        sa.Column("next_position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("stratum", name=op.f("pk_stratum_counter")),
    )
    op.create_table(
        "trial",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("protocol_yaml", sa.Text(), nullable=False),
        sa.Column("protocol_hash", sa.String(length=64), nullable=False),
        sa.Column("protocol_version", sa.String(length=64), nullable=False),
        sa.Column("lumbar_version", sa.String(length=32), nullable=False),
        sa.Column("created_at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("allocation_source", sa.String(length=16), nullable=False),
        sa.Column("allocation_seed_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("allocation_digest", sa.String(length=64), nullable=False),
        sa.Column("allocation_length", sa.Integer(), nullable=False),
        sa.Column("synthetic", sa.Boolean(), nullable=False),
        sa.Column("key_check", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trial")),
    )
    op.create_table(
        "participant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("screening_number", sa.String(length=32), nullable=False),
        sa.Column("study_id", sa.String(length=32), nullable=True),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("screened_at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("screening_answers", sa.JSON(), nullable=False),
        sa.Column("eligibility", sa.String(length=16), nullable=False),
        sa.Column("enrolled_at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("synthetic", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"], name=op.f("fk_participant_site_id_site")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participant")),
        sa.UniqueConstraint("screening_number", name=op.f("uq_participant_screening_number")),
        sa.UniqueConstraint("study_id", name=op.f("uq_participant_study_id")),
    )
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_participant_site_id"), ["site_id"], unique=False)

    op.create_table(
        "staff_site",
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"], name=op.f("fk_staff_site_site_id_site")),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.id"], name=op.f("fk_staff_site_staff_id_staff")
        ),
        sa.PrimaryKeyConstraint("staff_id", "site_id", name=op.f("pk_staff_site")),
    )
    op.create_table(
        "adverse_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("onset_date", sa.Date(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("serious", sa.Boolean(), nullable=False),
        sa.Column("relatedness", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("reported_by", sa.Integer(), nullable=False),
        sa.Column("recorded_at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_adverse_event_participant_id_participant"),
        ),
        sa.ForeignKeyConstraint(
            ["reported_by"], ["staff.id"], name=op.f("fk_adverse_event_reported_by_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_adverse_event")),
    )
    with op.batch_alter_table("adverse_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_adverse_event_participant_id"), ["participant_id"], unique=False
        )

    op.create_table(
        "allocation",
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=False),
        sa.Column("stratum", sa.String(length=255), nullable=False),
        sa.Column("arm", sa.String(length=64), nullable=False),
        sa.Column("randomized_on", sa.Date(), nullable=False),
        sa.Column("randomized_at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("randomized_by", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_allocation_participant_id_participant"),
        ),
        sa.ForeignKeyConstraint(
            ["randomized_by"], ["staff.id"], name=op.f("fk_allocation_randomized_by_staff")
        ),
        sa.ForeignKeyConstraint(
            ["slot_id"], ["allocation_slot.id"], name=op.f("fk_allocation_slot_id_allocation_slot")
        ),
        sa.PrimaryKeyConstraint("participant_id", name=op.f("pk_allocation")),
        sa.UniqueConstraint("slot_id", name=op.f("uq_allocation_slot_id")),
    )
    op.create_table(
        "consent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("consent_date", sa.Date(), nullable=False),
        sa.Column("taken_by", sa.Integer(), nullable=False),
        sa.Column("recorded_at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_consent_participant_id_participant"),
        ),
        sa.ForeignKeyConstraint(["taken_by"], ["staff.id"], name=op.f("fk_consent_taken_by_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent")),
    )
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consent_participant_id"), ["participant_id"], unique=False
        )

    op.create_table(
        "identity",
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("name_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("contact_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("birth_date_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("updated_at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_identity_participant_id_participant"),
        ),
        sa.PrimaryKeyConstraint("participant_id", name=op.f("pk_identity")),
    )
    op.create_table(
        "questionnaire",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("visit", sa.String(length=64), nullable=False),
        sa.Column("instrument", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("completed_on", sa.Date(), nullable=False),
        sa.Column("entered_by", sa.Integer(), nullable=True),
        sa.Column("recorded_at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("edited_at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["entered_by"], ["staff.id"], name=op.f("fk_questionnaire_entered_by_staff")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_questionnaire_participant_id_participant"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_questionnaire")),
        sa.UniqueConstraint(
            "participant_id", "visit", "instrument", name=op.f("uq_questionnaire_participant_id")
        ),
    )
    with op.batch_alter_table("questionnaire", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_questionnaire_participant_id"), ["participant_id"], unique=False
        )

    op.create_table(
        "screening_reason",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_screening_reason_participant_id_participant"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_screening_reason")),
    )
    with op.batch_alter_table("screening_reason", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_screening_reason_participant_id"), ["participant_id"], unique=False
        )

    op.create_table(
        "treatment_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("therapist_id", sa.Integer(), nullable=False),
        sa.Column("session_date", sa.Date(), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("techniques", sa.JSON(), nullable=False),
        sa.Column("body_regions", sa.JSON(), nullable=False),
        sa.Column("home_care", sa.JSON(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("recorded_at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_treatment_session_participant_id_participant"),
        ),
        sa.ForeignKeyConstraint(
            ["therapist_id"], ["staff.id"], name=op.f("fk_treatment_session_therapist_id_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_treatment_session")),
    )
    with op.batch_alter_table("treatment_session", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_treatment_session_participant_id"), ["participant_id"], unique=False
        )

    op.create_table(
        "unblinding",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_unblinding_participant_id_participant"),
        ),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.id"], name=op.f("fk_unblinding_staff_id_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unblinding")),
    )
    with op.batch_alter_table("unblinding", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_unblinding_participant_id"), ["participant_id"], unique=False
        )

    op.create_table(
        "withdrawal",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.Column("recorded_by", sa.Integer(), nullable=False),
        sa.Column("recorded_at", lumbar.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_withdrawal_participant_id_participant"),
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by"], ["staff.id"], name=op.f("fk_withdrawal_recorded_by_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_withdrawal")),
    )
    with op.batch_alter_table("withdrawal", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_withdrawal_participant_id"), ["participant_id"], unique=False
        )

    op.create_table(
        "questionnaire_answer",
        sa.Column("questionnaire_id", sa.Integer(), nullable=False),
        sa.Column("item", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["questionnaire_id"],
            ["questionnaire.id"],
            name=op.f("fk_questionnaire_answer_questionnaire_id_questionnaire"),
        ),
        sa.PrimaryKeyConstraint("questionnaire_id", "item", name=op.f("pk_questionnaire_answer")),
    )
    op.create_table(
        "questionnaire_score",
        sa.Column("questionnaire_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("prorated", sa.Boolean(), nullable=False),
        sa.Column("missing_items", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["questionnaire_id"],
            ["questionnaire.id"],
            name=op.f("fk_questionnaire_score_questionnaire_id_questionnaire"),
        ),
        sa.PrimaryKeyConstraint("questionnaire_id", "score", name=op.f("pk_questionnaire_score")),
    )
    op.execute(
        sa.text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :genesis)").bindparams(
            genesis="0" * 64
        )
    )
    _make_audit_append_only()


def _make_audit_append_only() -> None:
    """Refuse UPDATE, DELETE (and on PostgreSQL TRUNCATE) of audit records in the database."""
    if op.get_bind().dialect.name == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_append_only_{event.lower()} BEFORE {event} ON audit "
                "BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END"
            )
        return
    op.execute(
        "CREATE FUNCTION lumbar_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'audit records are append-only'; END $$"
    )
    op.execute(
        "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit "
        "FOR EACH ROW EXECUTE FUNCTION lumbar_audit_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit "
        "FOR EACH STATEMENT EXECUTE FUNCTION lumbar_audit_append_only()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_no_truncate ON audit")
        op.execute("DROP TRIGGER IF EXISTS audit_append_only ON audit")
        op.execute("DROP FUNCTION IF EXISTS lumbar_audit_append_only()")
    op.drop_table("questionnaire_score")
    op.drop_table("questionnaire_answer")
    with op.batch_alter_table("withdrawal", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_withdrawal_participant_id"))

    op.drop_table("withdrawal")
    with op.batch_alter_table("unblinding", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_unblinding_participant_id"))

    op.drop_table("unblinding")
    with op.batch_alter_table("treatment_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_treatment_session_participant_id"))

    op.drop_table("treatment_session")
    with op.batch_alter_table("screening_reason", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_screening_reason_participant_id"))

    op.drop_table("screening_reason")
    with op.batch_alter_table("questionnaire", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_questionnaire_participant_id"))

    op.drop_table("questionnaire")
    op.drop_table("identity")
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_participant_id"))

    op.drop_table("consent")
    op.drop_table("allocation")
    with op.batch_alter_table("adverse_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_adverse_event_participant_id"))

    op.drop_table("adverse_event")
    op.drop_table("staff_site")
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_participant_site_id"))

    op.drop_table("participant")
    op.drop_table("trial")
    op.drop_table("stratum_counter")
    op.drop_table("staff")
    op.drop_table("site")
    op.drop_table("audit_head")
    op.drop_table("audit")
    op.drop_table("allocation_slot")
