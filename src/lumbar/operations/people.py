"""Sites and staff."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from lumbar.errors import OperationError, Problem
from lumbar.operations.access import DEFAULT_UNBLINDED, ROLES
from lumbar.operations.context import TrialContext, Unit
from lumbar.store.schema import Site, Staff, StaffSite

__all__ = ["PeopleOperations", "SiteView", "StaffView"]

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


class PeopleOperations(TrialContext):
    """Adding and listing sites and staff."""

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
    ) -> StaffView:
        """Add a member of staff with one role, at some sites (or all).

        Unblinded defaults to the role's usual blinding (only therapists see arms).
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
                        hint="give --site or --all-sites",
                    )
                ],
            )
        blind_free = role in DEFAULT_UNBLINDED if unblinded is None else unblinded
        with self._unit("manage_staff") as unit:
            if unit.session.execute(select(Staff).where(Staff.username == username)).first():
                raise OperationError(
                    "the user exists", [Problem("username", "is taken", username, "choose another")]
                )
            site_rows = self._sites(unit, sites)
            staff = Staff(
                username=username,
                role=role,
                unblinded=blind_free,
                all_sites=all_sites,
                active=True,
                created_at=unit.now,
            )
            unit.session.add(staff)
            unit.session.flush()
            for site in site_rows:
                unit.session.add(StaffSite(staff_id=staff.id, site_id=site.id))
            view = StaffView(
                username, role, blind_free, ("*",) if all_sites else tuple(sites), True
            )
            unit.audit(
                "staff.add",
                "staff",
                username,
                new={"role": role, "unblinded": blind_free, "sites": list(view.sites)},
            )
            return view

    def sites(self) -> tuple[SiteView, ...]:
        with self._unit("view", write=False) as unit:
            rows = unit.session.execute(select(Site).order_by(Site.code)).scalars()
            return tuple(SiteView(site.code, site.name) for site in rows)

    def staff(self) -> tuple[StaffView, ...]:
        with self._unit("manage_staff", write=False) as unit:
            codes = {site.id: site.code for site in unit.session.execute(select(Site)).scalars()}
            views = []
            for member in unit.session.execute(select(Staff).order_by(Staff.username)).scalars():
                site_ids = unit.session.execute(
                    select(StaffSite.site_id).where(StaffSite.staff_id == member.id)
                ).scalars()
                sites = ("*",) if member.all_sites else tuple(sorted(codes[i] for i in site_ids))
                views.append(
                    StaffView(member.username, member.role, member.unblinded, sites, member.active)
                )
            return tuple(views)

    def _sites(self, unit: Unit, codes: Sequence[str]) -> list[Site]:
        rows = []
        for code in codes:
            site = unit.session.execute(select(Site).where(Site.code == code)).scalar_one_or_none()
            if site is None:
                raise OperationError(
                    "unknown site",
                    [
                        Problem(
                            "site",
                            "is not a site of this trial",
                            code,
                            "add it with 'lumbar site add'",
                        )
                    ],
                )
            rows.append(site)
        return rows

    def _site(self, unit: Unit, code: str) -> Site:
        (site,) = self._sites(unit, [code])
        if not unit.actor.sees_site(site.id):
            raise OperationError(
                "not your site",
                [Problem("site", "is not one of your sites", code, "work at a site you belong to")],
            )
        return site
