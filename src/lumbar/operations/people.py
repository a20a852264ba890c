"""Sites, staff, and the grants that let one person see arms or break the blind.

Seeing arms (``unblinded``) and emergency unblinding (``emergency_unblind``) are
given to a person, never by themselves to themselves, and always with a reason;
each grant is kept in ``access_grant`` with who gave it, and a second admin may
countersign it. :meth:`PeopleService.grants` lists them all, those still waiting
for a second person first: the dashboard of who can see what, and why.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import aliased

from lumbar.errors import AccessError, OperationError, Problem
from lumbar.operations.context import Service, Unit, require_text
from lumbar.operations.vocabulary import DEFAULT_UNBLINDED, GRANTS, ROLES
from lumbar.store.schema import AccessGrant, Site, Staff, StaffSite

__all__ = ["GrantView", "PeopleService", "SiteView", "StaffView"]

_CODE = re.compile(r"[A-Z0-9]{1,8}")
_USERNAME = re.compile(r"[a-z][a-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class SiteView:
    code: str
    name: str


@dataclass(frozen=True)
class StaffView:
    username: str
    role: str
    unblinded: bool
    sites: tuple[str, ...]
    """Site codes, or ``("*",)`` for all sites."""
    active: bool
    may_unblind: bool = False
    password: bool = False
    """Has a password set (can sign in to the web app)."""
    second_factor: bool = False
    """Signs in with a confirmed second factor (TOTP) too."""


@dataclass(frozen=True)
class GrantView:
    """One grant of arms or emergency unblinding to one person."""

    id: int
    username: str
    kind: str
    reason: str
    granted_by: str
    granted_at: dt.datetime
    countersigned_by: str | None
    revoked: bool

    @property
    def waiting(self) -> bool:
        """In force, and no second admin has confirmed it yet."""
        return self.countersigned_by is None and not self.revoked


class PeopleService(Service):
    """Adding and listing sites and staff; granting, countersigning and revoking access."""

    def add_site(self, code: str, name: str) -> SiteView:
        """Add a site; ``code`` (up to 8 capitals or digits) starts its participants' study ids."""
        if not _CODE.fullmatch(code):
            raise OperationError(
                "the site code is not valid",
                [Problem("code", "must be 1 to 8 capital letters or digits", code, "e.g. SEA")],
            )
        with self._unit("manage_sites") as unit:
            if unit.session.execute(select(Site).where(Site.code == code)).first():
                raise OperationError(
                    "the site exists", [Problem("code", "is taken", code, "choose another code")]
                )
            site = Site(code=code, name=name.strip() or code, created_at=unit.now)
            unit.session.add(site)
            unit.session.flush()
            unit.audit("site.add", "site", code, new={"code": code, "name": site.name})
            return SiteView(site.code, site.name)

    def add_staff(
        self,
        username: str,
        role: str,
        sites: Sequence[str] = (),
        *,
        all_sites: bool = False,
        unblinded: bool | None = None,
        reason: str | None = None,
    ) -> StaffView:
        """Add a member of staff with one role, at some sites (or all).

        Unblinded defaults to the role's usual blinding (only therapists see arms); an
        account that sees arms needs ``reason``, kept as its grant.
        """
        if not _USERNAME.fullmatch(username):
            raise OperationError(
                "the user name is not valid",
                [
                    Problem(
                        "username",
                        "must start with a lowercase letter, then letters, digits, . _ or -",
                        username,
                        "e.g. j.smith",
                    )
                ],
            )
        if role not in ROLES:
            raise OperationError(
                "unknown role",
                [Problem("role", "is not a role", role, "roles: " + ", ".join(ROLES))],
            )
        if not sites and not all_sites:
            raise OperationError(
                "no site given",
                [
                    Problem(
                        "sites",
                        "a user works at one or more sites",
                        hint="give a site, or all sites",
                    )
                ],
            )
        sees_arms = role in DEFAULT_UNBLINDED if unblinded is None else unblinded
        if sees_arms:
            reason = _grant_reason(reason, username)
        with self._unit("manage_staff") as unit:
            if unit.session.execute(select(Staff).where(Staff.username == username)).first():
                raise OperationError(
                    "the user exists", [Problem("username", "is taken", username, "choose another")]
                )
            site_rows = unit.sites(sites)
            staff = Staff(
                username=username,
                role=role,
                unblinded=sees_arms,
                may_unblind=False,
                all_sites=all_sites,
                active=True,
                created_at=unit.now,
            )
            unit.session.add(staff)
            unit.session.flush()
            for site in site_rows:
                unit.session.add(StaffSite(staff_id=staff.id, site_id=site.id))
            view = StaffView(username, role, sees_arms, ("*",) if all_sites else tuple(sites), True)
            unit.audit(
                "staff.add",
                "staff",
                username,
                new={"role": role, "unblinded": sees_arms, "sites": list(view.sites)},
            )
            if sees_arms:
                assert reason is not None
                _record_grant(unit, staff, "unblinded", reason)
            return view

    def grant(self, username: str, kind: str, reason: str) -> GrantView:
        """Give ``username`` arms (``unblinded``) or emergency unblinding, with a reason.

        Never to yourself: a blinded admin cannot unblind themselves. The grant stays
        listed as waiting until a second admin countersigns it.
        """
        if kind not in GRANTS:
            raise OperationError(
                "unknown grant",
                [Problem("kind", "is not a grant", kind, "grants: " + ", ".join(GRANTS))],
            )
        reason = _grant_reason(reason, username)
        with self._unit("manage_staff") as unit:
            staff = _staff(unit, username)
            if staff.id == unit.scope.id:
                raise AccessError(
                    "not for yourself",
                    [
                        Problem(
                            "username",
                            f"nobody grants themselves {kind.replace('_', ' ')}",
                            username,
                            "ask another admin",
                        )
                    ],
                )
            if (staff.unblinded if kind == "unblinded" else staff.may_unblind) is True:
                raise OperationError(
                    "already granted",
                    [Problem("username", f"already holds {kind}", username, "nothing to do")],
                )
            if kind == "unblinded":
                staff.unblinded = True
            else:
                staff.may_unblind = True
            row = _record_grant(unit, staff, kind, reason)
            return self._grant_view(unit, row)

    def revoke(self, username: str, kind: str, reason: str) -> None:
        """Take back a grant (the history of who held it stays)."""
        reason = require_text(reason, "reason", "reason for revoking")
        with self._unit("manage_staff") as unit:
            staff = _staff(unit, username)
            held = staff.unblinded if kind == "unblinded" else staff.may_unblind
            if kind not in GRANTS or not held:
                raise OperationError(
                    "nothing to revoke",
                    [
                        Problem(
                            "kind", f"{username} does not hold it", kind, "see 'lumbar user list'"
                        )
                    ],
                )
            if kind == "unblinded":
                staff.unblinded = False
            else:
                staff.may_unblind = False
            for row in unit.session.execute(
                select(AccessGrant).where(
                    AccessGrant.staff_id == staff.id,
                    AccessGrant.kind == kind,
                    AccessGrant.revoked_at.is_(None),
                )
            ).scalars():
                row.revoked_by = unit.scope.id
                row.revoked_at = unit.now
            unit.audit("staff.revoke", "staff", username, new={"kind": kind}, reason=reason)

    def countersign(self, grant_id: int) -> GrantView:
        """A second admin confirms a grant another admin gave (not one given to themselves)."""
        with self._unit("manage_staff") as unit:
            row = unit.session.get(AccessGrant, grant_id)
            if row is None or row.revoked_at is not None:
                raise OperationError(
                    "unknown grant",
                    [
                        Problem(
                            "grant", "is not a grant in force", grant_id, "see 'lumbar user grants'"
                        )
                    ],
                )
            if unit.scope.id in (row.granted_by, row.staff_id):
                raise AccessError(
                    "a second person is needed",
                    [
                        Problem(
                            "grant",
                            "is countersigned by an admin who neither gave nor received it",
                            grant_id,
                            "ask another admin",
                        )
                    ],
                )
            if row.countersigned_by is not None:
                raise OperationError(
                    "already countersigned",
                    [Problem("grant", "is countersigned", grant_id, "nothing to do")],
                )
            row.countersigned_by = unit.scope.id
            row.countersigned_at = unit.now
            unit.audit("grant.countersign", "access_grant", row.id, new={"kind": row.kind})
            return self._grant_view(unit, row)

    def grants(self) -> list[GrantView]:
        """Every grant of arms or emergency unblinding: waiting for a second admin first."""
        with self._unit("manage_staff", write=False) as unit:
            views = [
                self._grant_view(unit, row)
                for row in unit.session.execute(select(AccessGrant).order_by(AccessGrant.id))
                .scalars()
                .all()
            ]
            return sorted(views, key=lambda view: (not view.waiting, view.id))

    def set_active(self, username: str, active: bool, reason: str) -> None:
        """Deactivate (or reactivate) a user: a deactivated user can do nothing at once."""
        reason = require_text(reason, "reason", "reason")
        with self._unit("manage_staff") as unit:
            staff = _staff(unit, username)
            if staff.id == unit.scope.id and not active:
                raise OperationError(
                    "not yourself",
                    [
                        Problem(
                            "username",
                            "you cannot deactivate yourself",
                            username,
                            "ask another admin",
                        )
                    ],
                )
            if staff.active == active:
                state = "active" if active else "deactivated"
                raise OperationError(
                    f"already {state}",
                    [Problem("username", f"is {state}", username, "nothing to do")],
                )
            staff.active = active
            unit.audit(
                "staff.activate" if active else "staff.deactivate", "staff", username, reason=reason
            )

    def sites(self) -> tuple[SiteView, ...]:
        with self._unit("view", write=False) as unit:
            rows = unit.session.execute(
                unit.scope.visible_sites(select(Site)).order_by(Site.code)
            ).scalars()
            return tuple(SiteView(site.code, site.name) for site in rows)

    def me(self) -> StaffView:
        """The signed-in member of staff: their role, sites and blinding."""
        with self._unit("view", write=False) as unit:
            scope = unit.scope
            member = unit.session.get(Staff, scope.id)
            assert member is not None  # the scope was loaded from this row
            sites = (
                ("*",)
                if scope.all_sites
                else tuple(
                    sorted(
                        unit.session.execute(
                            select(Site.code).where(Site.id.in_(scope.site_ids))
                        ).scalars()
                    )
                )
            )
            return StaffView(
                member.username,
                member.role,
                member.unblinded,
                sites,
                member.active,
                scope.may_unblind,
                member.password_hash is not None,
                member.totp_active,
            )

    def staff(self) -> tuple[StaffView, ...]:
        with self._unit("manage_staff", write=False) as unit:
            codes = dict(unit.session.execute(select(Site.id, Site.code)).all())
            sites_of: dict[int, list[str]] = {}
            for staff_id, site_id in unit.session.execute(
                select(StaffSite.staff_id, StaffSite.site_id)
            ).all():
                sites_of.setdefault(staff_id, []).append(codes[site_id])
            return tuple(
                StaffView(
                    member.username,
                    member.role,
                    member.unblinded,
                    ("*",) if member.all_sites else tuple(sorted(sites_of.get(member.id, []))),
                    member.active,
                    member.may_unblind,
                    member.password_hash is not None,
                    member.totp_active,
                )
                for member in unit.session.execute(select(Staff).order_by(Staff.username)).scalars()
            )

    @staticmethod
    def _grant_view(unit: Unit, row: AccessGrant) -> GrantView:
        receiver, giver, second = (aliased(Staff) for _ in range(3))
        names = unit.session.execute(
            select(receiver.username, giver.username, second.username)
            .select_from(AccessGrant)
            .join(receiver, receiver.id == AccessGrant.staff_id)
            .join(giver, giver.id == AccessGrant.granted_by)
            .outerjoin(second, second.id == AccessGrant.countersigned_by)
            .where(AccessGrant.id == row.id)
        ).one()
        return GrantView(
            row.id,
            names[0],
            row.kind,
            row.reason,
            names[1],
            row.granted_at,
            names[2],
            row.revoked_at is not None,
        )


def _grant_reason(reason: str | None, username: str) -> str:
    if reason is None or not reason.strip():
        raise OperationError(
            "a reason is required",
            [
                Problem(
                    "reason",
                    "an account that sees arms or may unblind is created or granted only "
                    "with a recorded reason",
                    username,
                    "say why this person must see arms (e.g. 'delivers the massage')",
                )
            ],
        )
    return reason.strip()


def _staff(unit: Unit, username: str) -> Staff:
    staff = unit.session.execute(
        select(Staff).where(Staff.username == username)
    ).scalar_one_or_none()
    if staff is None:
        raise OperationError(
            "unknown user",
            [
                Problem(
                    "username", "is not a user of this trial", username, "see 'lumbar user list'"
                )
            ],
        )
    return staff


def _record_grant(unit: Unit, staff: Staff, kind: str, reason: str) -> AccessGrant:
    row = AccessGrant(
        staff_id=staff.id,
        kind=kind,
        reason=reason,
        granted_by=unit.scope.id,
        granted_at=unit.now,
    )
    unit.session.add(row)
    unit.session.flush()
    unit.audit(
        "staff.grant", "staff", staff.username, new={"kind": kind, "grant": row.id}, reason=reason
    )
    return row
