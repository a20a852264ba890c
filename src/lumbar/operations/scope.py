"""Who may see and do what: every visibility rule of lumbar, decided in this one module.

A :class:`Scope` is the acting member of staff as one unit of work sees them,
loaded from the database at the start of the unit (so a deactivated user or a
revoked grant takes effect at once). It decides three things and nothing else
does:

- **Permissions.** Every operation names the permission it needs;
  :meth:`Scope.require` refuses with an :class:`~lumbar.errors.AccessError` that
  says which roles hold it. Emergency unblinding is not a role's permission but
  a grant to one person (:data:`GRANTS`), given with a reason by an admin and
  never to themselves.
- **Sites.** A user sees and changes only participants of their own sites
  unless they work at all sites. The restriction is part of the SQL
  (:meth:`Scope.visible`), never a filter over loaded rows; a participant at
  another site looks exactly like one who does not exist.
- **Arms.** Only unblinded users see arms (:meth:`Scope.arm`). A blinded user
  sees no arm and no group code at all: a code shared by the whole trial (group
  A, B, C) would be revealed for everyone by a single emergency unblinding.
  What would reveal arms indirectly (treatment sessions, adherence, the
  adverse-event list, between-group contrasts) needs an unblinded user
  (:meth:`Scope.require_unblinded`).

A principal may carry less than their role: an API token holds only the
permissions it was created with (``Scope.limit``), checked by the same
:meth:`Scope.require`; managing credentials needs the person themselves
(:meth:`Scope.require_unlimited`). A participant holding a survey link is not
staff and has no scope: :mod:`lumbar.operations.survey` opens exactly the one
participant and visit their token is bound to, and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, bindparam, select, true
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from lumbar.errors import AccessError, Problem
from lumbar.operations.vocabulary import PERMISSIONS, WHAT
from lumbar.store.schema import Participant, Site, Staff, StaffSite

__all__ = [
    "Scope",
    "load_scope",
    "roles_allowed",
]

Query = TypeVar("Query", bound=Select[*tuple[Any, ...]])


@dataclass(frozen=True)
class Scope:
    """The member of staff on whose behalf a unit of work runs, and what they may see."""

    id: int
    username: str
    role: str
    unblinded: bool
    may_unblind: bool
    """Holds the emergency-unblinding grant."""
    all_sites: bool
    site_ids: frozenset[int]
    limit: frozenset[str] | None = None
    """The permissions the principal's credential carries (an API token's), when fewer
    than the role's; None: the role's."""

    # ------------------------------------------------------------------ permissions

    def require(self, permission: str) -> None:
        """Refuse unless this user holds ``permission`` (and their credential carries it)."""
        if self.limit is not None and permission not in self.limit:
            raise AccessError(
                "not allowed",
                [
                    Problem(
                        f"user {self.username}",
                        f"the token in use does not carry the permission {permission} "
                        f"(to {WHAT.get(permission, permission)})",
                        hint="use a token created with that permission, or sign in",
                    )
                ],
            )
        if permission == "emergency_unblind":
            if not self.may_unblind:
                raise AccessError(
                    "not allowed",
                    [
                        Problem(
                            f"user {self.username}",
                            "does not hold the emergency-unblinding grant",
                            hint="an admin grants it with a reason "
                            "(lumbar user grant USER emergency_unblind --reason ...)",
                        )
                    ],
                )
            return
        allowed = PERMISSIONS[permission]
        if self.role not in allowed:
            raise AccessError(
                "not allowed",
                [
                    Problem(
                        f"user {self.username}",
                        f"a {self.role} may not {WHAT[permission]}",
                        hint="ask someone with the role " + " or ".join(sorted(allowed)),
                    )
                ],
            )

    def holds(self, permission: str) -> bool:
        """Whether this user's role (and credential) allows ``permission``."""
        if self.limit is not None and permission not in self.limit:
            return False
        return self.role in PERMISSIONS.get(permission, frozenset())

    def require_unlimited(self, what: str) -> None:
        """Refuse a principal limited by a token: ``what`` (managing passwords, second
        factors and tokens) needs the person, signed in, or the operator."""
        if self.limit is not None:
            raise AccessError(
                "not with a token",
                [
                    Problem(
                        f"user {self.username}",
                        f"{what} needs a password sign-in, not an API token",
                        hint="sign in with your password",
                    )
                ],
            )

    def require_unblinded(self, what: str) -> None:
        """Refuse a blinded user: ``what`` would show them which arm participants are in."""
        if not self.unblinded:
            raise AccessError(
                "blinded",
                [
                    Problem(
                        f"user {self.username}",
                        f"is blinded, and {what} would reveal arms",
                        hint="ask an unblinded colleague",
                    )
                ],
            )

    # ------------------------------------------------------------------ sites

    def sees_site(self, site_id: int) -> bool:
        return self.all_sites or site_id in self.site_ids

    def site_filter(self, column: Any = Participant.site_id) -> ColumnElement[bool]:
        """The SQL condition that keeps rows of this user's sites (``column`` holds a site id)."""
        if self.all_sites:
            return true()
        condition: ColumnElement[bool] = column.in_(sorted(self.site_ids))
        return condition

    def visible(self, query: Query) -> Query:
        """``query`` (which must involve :class:`Participant`) kept to this user's sites."""
        if self.all_sites:
            return query
        return query.where(self.site_filter())

    def visible_sites(self, query: Query) -> Query:
        """``query`` over :class:`Site` kept to this user's sites."""
        if self.all_sites:
            return query
        return query.where(self.site_filter(Site.id))

    # ------------------------------------------------------------------ arms

    def arm(self, arm: str) -> str | None:
        """``arm`` for an unblinded user; None (nothing at all) for a blinded one."""
        return arm if self.unblinded else None


def roles_allowed(permission: str) -> frozenset[str]:
    return PERMISSIONS[permission]


def load_scope(session: Session, username: str, limit: frozenset[str] | None = None) -> Scope:
    """The active member of staff ``username``, with their sites; AccessError otherwise.

    ``limit``: the permissions their credential carries, when fewer than the role's.
    """
    rows = session.connection().execute(_STAFF, {"username": username}).all()
    staff = rows[0] if rows else None
    if staff is None or not staff.active:
        raise AccessError(
            "unknown user",
            [
                Problem(
                    "actor",
                    "is not an active member of staff of this trial",
                    username,
                    "give your user name; an admin adds users with 'lumbar user add'",
                )
            ],
        )
    return Scope(
        staff.id,
        staff.username,
        staff.role,
        staff.unblinded,
        staff.may_unblind,
        staff.all_sites,
        frozenset(row.site_id for row in rows if row.site_id is not None),
        limit,
    )


# Built once: this runs at the start of every unit of work.
_STAFF = (
    select(
        Staff.id,
        Staff.username,
        Staff.role,
        Staff.unblinded,
        Staff.may_unblind,
        Staff.all_sites,
        Staff.active,
        StaffSite.site_id,
    )
    .outerjoin(StaffSite, StaffSite.staff_id == Staff.id)
    .where(Staff.username == bindparam("username"))
)
