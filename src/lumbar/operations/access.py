"""Who may do what: roles, site scope and blinding, decided in this one module.

Every operation names the permission it needs; :func:`require` refuses with an
:class:`~lumbar.errors.AccessError` that says which roles may. Site scope: a
user sees and changes only participants of their own sites unless they work at
all sites (a participant elsewhere looks exactly like one who does not exist).
Blinding: only users granted unblinding see arms; everyone else gets masked arm
codes, which a blinded statistician can analyse without learning which code is
which treatment. What would reveal arms indirectly (treatment sessions,
adherence, the adverse-event list) needs an unblinded user
(:func:`require_unblinded`).
"""

from __future__ import annotations

from dataclasses import dataclass

from lumbar.errors import AccessError, Problem

__all__ = [
    "DEFAULT_UNBLINDED",
    "PERMISSIONS",
    "ROLES",
    "WHAT",
    "Actor",
    "require",
    "require_unblinded",
    "roles_allowed",
]

ROLES = ("admin", "coordinator", "therapist", "outcome_assessor", "statistician", "monitor")

DEFAULT_UNBLINDED = frozenset({"therapist"})
"""Roles that see arms unless told otherwise: therapists deliver the treatment and
cannot be blinded to it (as in the reference trial). Every other role starts blinded."""

PERMISSIONS: dict[str, frozenset[str]] = {
    "manage_sites": frozenset({"admin"}),
    "manage_staff": frozenset({"admin"}),
    "screen": frozenset({"admin", "coordinator"}),
    "identity": frozenset({"admin", "coordinator"}),
    "consent": frozenset({"admin", "coordinator"}),
    "enrol": frozenset({"admin", "coordinator"}),
    "randomize": frozenset({"admin", "coordinator"}),
    "unblind": frozenset({"admin", "coordinator"}),
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
    "verify_randomization": frozenset({"admin", "monitor", "statistician"}),
    "backup": frozenset({"admin"}),
}


WHAT = {
    "manage_sites": "add sites",
    "manage_staff": "manage staff",
    "screen": "screen people",
    "identity": "record or open identifiers",
    "consent": "record consent",
    "enrol": "enrol participants",
    "randomize": "randomize",
    "unblind": "unblind a participant",
    "questionnaire": "record questionnaires",
    "session": "log treatment sessions",
    "treatment_records": "see treatment sessions and adverse events",
    "adverse_event": "record adverse events",
    "withdraw": "record withdrawals",
    "view": "view the trial",
    "dataset": "read or export the dataset",
    "audit": "check the audit trail",
    "verify_randomization": "check the allocation list",
    "backup": "back up the trial",
}
"""Each permission in words, for error messages."""


@dataclass(frozen=True)
class Actor:
    """The member of staff on whose behalf an operation runs."""

    id: int
    username: str
    role: str
    unblinded: bool
    all_sites: bool
    site_ids: frozenset[int]

    def sees_site(self, site_id: int) -> bool:
        return self.all_sites or site_id in self.site_ids


def roles_allowed(permission: str) -> frozenset[str]:
    return PERMISSIONS[permission]


def require_unblinded(actor: Actor, what: str) -> None:
    """Refuse a blinded user: ``what`` would show them which arm a participant is in."""
    if not actor.unblinded:
        raise AccessError(
            "blinded",
            [
                Problem(
                    f"user {actor.username}",
                    f"is blinded, and {what} would reveal arms",
                    hint="ask an unblinded colleague, or an admin to grant unblinding",
                )
            ],
        )


def require(actor: Actor, permission: str) -> None:
    """Refuse unless ``actor``'s role carries ``permission``."""
    allowed = PERMISSIONS[permission]
    if actor.role not in allowed:
        raise AccessError(
            "not allowed",
            [
                Problem(
                    f"user {actor.username}",
                    f"a {actor.role} may not {WHAT[permission]}",
                    hint="ask someone with the role " + " or ".join(sorted(allowed)),
                )
            ],
        )
