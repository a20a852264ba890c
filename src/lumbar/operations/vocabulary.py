"""The words of trial operations: roles, permissions, grants and the allowed values of fields.

Plain data with no database or protocol behind it, so the command line can name the
allowed values in its help without loading the operations themselves.
:mod:`lumbar.operations.scope` decides with :data:`PERMISSIONS` and :data:`GRANTS`.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_UNBLINDED",
    "EXPORT_FORMATS",
    "GRANTS",
    "OUTCOMES",
    "PERMISSIONS",
    "RELATEDNESS",
    "ROLES",
    "SEVERITIES",
    "SOURCES",
    "WHAT",
    "WITHDRAWAL_KINDS",
]

ROLES = ("admin", "coordinator", "therapist", "outcome_assessor", "statistician", "monitor")

DEFAULT_UNBLINDED = frozenset({"therapist"})
"""Roles that see arms unless told otherwise: therapists deliver the treatment and
cannot be blinded to it (as in the reference trial). Every other role starts blinded.
Either way, an account that sees arms is created only with a recorded reason."""

PERMISSIONS: dict[str, frozenset[str]] = {
    "manage_sites": frozenset({"admin"}),
    "manage_staff": frozenset({"admin"}),
    "screen": frozenset({"admin", "coordinator"}),
    "identity": frozenset({"admin", "coordinator"}),
    "consent": frozenset({"admin", "coordinator"}),
    "enrol": frozenset({"admin", "coordinator"}),
    "randomize": frozenset({"admin", "coordinator"}),
    "questionnaire": frozenset({"admin", "coordinator", "outcome_assessor"}),
    "session": frozenset({"admin", "therapist"}),
    "treatment_records": frozenset(
        {"admin", "coordinator", "therapist", "monitor", "statistician"}
    ),
    "adverse_event": frozenset({"admin", "coordinator", "therapist"}),
    "withdraw": frozenset({"admin", "coordinator"}),
    "view": frozenset(ROLES),
    "dataset": frozenset({"admin", "statistician"}),
    "audit": frozenset({"admin", "monitor", "statistician"}),
    "notifications": frozenset({"admin", "monitor"}),
    "verify_randomization": frozenset({"admin", "monitor", "statistician"}),
    "backup": frozenset({"admin"}),
    "restore": frozenset({"admin"}),
    "upgrade": frozenset({"admin"}),
}
"""Each permission and the roles that hold it."""

GRANTS = ("unblinded", "emergency_unblind")
"""What an admin grants to one person, with a reason, rather than to a role:
seeing arms, and breaking the blind for one participant in an emergency."""

WHAT = {
    "manage_sites": "add sites",
    "manage_staff": "manage staff",
    "screen": "screen people",
    "identity": "record or open identifiers",
    "consent": "record consent",
    "enrol": "enrol participants",
    "randomize": "randomize",
    "emergency_unblind": "unblind a participant in an emergency",
    "questionnaire": "record questionnaires",
    "session": "log treatment sessions",
    "treatment_records": "see treatment sessions and adverse events",
    "adverse_event": "record adverse events",
    "withdraw": "record withdrawals",
    "view": "view the trial",
    "dataset": "read or export the dataset",
    "audit": "check the audit trail",
    "notifications": "read and acknowledge notifications",
    "verify_randomization": "check the allocation list",
    "backup": "back up the trial",
    "restore": "restore the trial",
    "upgrade": "upgrade the trial's database",
}
"""Each permission in words, for error messages."""


SOURCES: tuple[str, ...] = ("participant_link", "staff_entry", "paper")
"""Where a questionnaire's answers came from."""

EXPORT_FORMATS = ("csv", "parquet")
"""The file formats of the de-identified dataset."""

WITHDRAWAL_KINDS = ("discontinued_treatment", "withdrew_consent", "lost_to_follow_up")
"""``discontinued_treatment`` stops sessions but not follow-up; the other two end follow-up."""

SEVERITIES = ("mild", "moderate", "severe")
RELATEDNESS = ("not_related", "unlikely", "possible", "probable", "definite")
"""How likely the event was caused by the treatment (a common five-point scale)."""
OUTCOMES = (
    "recovered",
    "recovering",
    "not_recovered",
    "recovered_with_sequelae",
    "fatal",
    "unknown",
)
