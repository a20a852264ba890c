"""Managing credentials: passwords, second factors and API tokens.

Each member of staff sets their own password, enrols their own second factor
and creates their own tokens; an admin may set another user's password (for a
newcomer, or after a lock-out) and reset another user's second factor (a lost
phone), both audited. Tokens are only ever made for oneself: a token made by an
admin for someone else would let the admin act under that person's name, and
"identity is proven, never claimed". (The operator, who holds the database and
its key, can do anything as anyone on the command line; the audit records say so.)

None of this can be done with an API token: managing credentials needs the
person, signed in with their password, or the operator
(:meth:`~lumbar.operations.scope.Scope.require_unlimited`). Secrets are returned
once and never stored in a form that signs anyone in: passwords as argon2id
hashes, tokens as SHA-256 digests, TOTP secrets sealed in the vault. Credentials
are checked in :mod:`lumbar.operations.authentication`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, select, update

from lumbar.errors import AccessError, OperationError, Problem
from lumbar.operations.authentication import (
    API_TOKEN_PREFIX,
    check_password_rules,
    hash_password,
    new_token,
    new_totp_secret,
    totp_step,
    totp_uri,
)
from lumbar.operations.context import Service, Unit, require_text
from lumbar.operations.vocabulary import PERMISSIONS
from lumbar.store.schema import ApiToken, LoginFailure, Staff, WebSession

__all__ = [
    "MAX_TOKEN_DAYS",
    "CredentialService",
    "NewToken",
    "TokenView",
    "TotpEnrolment",
]

MAX_TOKEN_DAYS = 366
"""The longest an API token lives: a year (and a day), so every token is renewed, and
reviewed, at least yearly."""


@dataclass(frozen=True)
class TotpEnrolment:
    """A new second factor: shown once, to be added to an authenticator app."""

    secret: str
    uri: str
    """``otpauth://totp/...``: what a QR code for the app holds."""


@dataclass(frozen=True)
class NewToken:
    """An API token just created: ``token`` is shown this once and never again."""

    id: int
    name: str
    token: str
    permissions: tuple[str, ...]
    expires_at: dt.datetime


@dataclass(frozen=True)
class TokenView:
    """An API token as listed: everything but the token."""

    id: int
    username: str
    name: str
    prefix: str
    permissions: tuple[str, ...]
    created_at: dt.datetime
    expires_at: dt.datetime
    last_used_at: dt.datetime | None
    state: str
    """``active``, ``expired`` or ``revoked``."""


class CredentialService(Service):
    """Passwords, second factors and API tokens of the staff."""

    # ------------------------------------------------------------------ passwords

    def set_password(self, password: str, username: str | None = None) -> None:
        """Set your own password, or (an admin) another user's; clears a lock-out."""
        target = username or self.principal.username
        own = target == self.principal.username
        check_password_rules(password, target)
        hashed = hash_password(self.context, password)  # slow on purpose: before any lock
        with self._unit("view" if own else "manage_staff") as unit:
            unit.scope.require_unlimited("setting a password")
            staff = _staff(unit, target)
            staff.password_hash = hashed
            staff.password_changed_at = unit.now
            unit.session.execute(delete(LoginFailure).where(LoginFailure.username == target))
            unit.audit("staff.password", "staff", target, new={"own": own})

    # ------------------------------------------------------------------ second factor

    def enrol_totp(self) -> TotpEnrolment:
        """Start your second factor: a new secret for your authenticator app.

        It takes effect once confirmed with a code from the app (:meth:`confirm_totp`).
        """
        with self._unit("view", second_factor_setup=True) as unit:
            unit.scope.require_unlimited("enrolling a second factor")
            staff = _staff(unit, unit.scope.username)
            if staff.totp_active:
                raise OperationError(
                    "a second factor is on",
                    [
                        Problem(
                            "username",
                            "already signs in with a second factor",
                            staff.username,
                            "to replace it, an admin resets it first "
                            "('lumbar user totp reset USER')",
                        )
                    ],
                )
            secret = new_totp_secret()
            staff.totp_sealed = self.context.vault.seal(secret, f"totp:{staff.id}")
            staff.totp_last_step = None
            unit.audit("staff.totp_enrol", "staff", staff.username)
            return TotpEnrolment(
                secret, totp_uri(secret, staff.username, f"lumbar {self.protocol.id}")
            )

    def confirm_totp(self, code: str) -> None:
        """Turn your second factor on with a current code from the app."""
        with self._unit("view", second_factor_setup=True) as unit:
            unit.scope.require_unlimited("confirming a second factor")
            staff = _staff(unit, unit.scope.username)
            if staff.totp_sealed is None or staff.totp_active:
                state = "is on already" if staff.totp_active else "is not enrolled"
                raise OperationError(
                    "nothing to confirm",
                    [
                        Problem(
                            "username",
                            f"your second factor {state}",
                            staff.username,
                            "enrol first ('lumbar user totp enrol')",
                        )
                    ],
                )
            secret = self.context.vault.open(staff.totp_sealed, f"totp:{staff.id}")
            step = totp_step(secret, code, unit.now)
            if step is None:
                raise OperationError(
                    "the code is not accepted",
                    [
                        Problem(
                            "code",
                            "is not the app's current 6-digit code",
                            hint="check the phone's clock, and type the code shown now",
                        )
                    ],
                )
            staff.totp_active = True
            staff.totp_last_step = step
            unit.audit("staff.totp_confirm", "staff", staff.username)

    def reset_totp(self, username: str, reason: str) -> None:
        """Remove a user's second factor (a lost phone), so they can enrol a new one."""
        reason = require_text(reason, "reason", "reason")
        with self._unit("manage_staff") as unit:
            unit.scope.require_unlimited("resetting a second factor")
            staff = _staff(unit, username)
            if staff.totp_sealed is None:
                raise OperationError(
                    "no second factor",
                    [Problem("username", "has no second factor", username, "nothing to do")],
                )
            staff.totp_sealed = None
            staff.totp_active = False
            staff.totp_last_step = None
            unit.audit("staff.totp_reset", "staff", username, reason=reason)

    def end_sessions(self, username: str, reason: str) -> int:
        """Sign a user out of every browser (a lost laptop, a departure); how many ended."""
        reason = require_text(reason, "reason", "reason")
        with self._unit("manage_staff") as unit:
            unit.scope.require_unlimited("signing someone out")
            staff = _staff(unit, username)
            ids = list(
                unit.session.execute(
                    select(WebSession.id).where(
                        WebSession.staff_id == staff.id, WebSession.ended_at.is_(None)
                    )
                ).scalars()
            )
            if ids:
                unit.session.execute(
                    update(WebSession)
                    .where(WebSession.id.in_(ids))
                    .values(ended_at=unit.now, end_reason="revoked")
                )
                for session_id in ids:
                    unit.rows.add(WebSession.__table__, (session_id,))
            unit.audit(
                "staff.sessions_end", "staff", username, new={"ended": len(ids)}, reason=reason
            )
            return len(ids)

    # ------------------------------------------------------------------ API tokens

    def create_token(self, name: str, permissions: Iterable[str], expires_in_days: int) -> NewToken:
        """A new API token for yourself, carrying some of your role's permissions.

        The token is returned once; lumbar keeps only its digest.
        """
        name = require_text(name, "name", "token name")
        wanted = tuple(sorted(set(permissions)))
        problems = []
        if len(name) > 64:
            problems.append(Problem("name", "must be at most 64 characters", name))
        if not wanted:
            problems.append(
                Problem(
                    "permissions",
                    "a token carries at least one permission",
                    hint="permissions: " + ", ".join(PERMISSIONS),
                )
            )
        problems += [
            Problem(
                "permissions",
                "is not a permission",
                permission,
                "permissions: " + ", ".join(PERMISSIONS),
            )
            for permission in wanted
            if permission not in PERMISSIONS
        ]
        if not 1 <= expires_in_days <= MAX_TOKEN_DAYS:
            problems.append(
                Problem(
                    "expires_in_days",
                    f"must be from 1 to {MAX_TOKEN_DAYS} days",
                    expires_in_days,
                    "e.g. 90",
                )
            )
        if problems:
            raise OperationError("the token is not created", problems)
        with self._unit("view") as unit:
            unit.scope.require_unlimited("creating a token")
            beyond = [p for p in wanted if not unit.scope.holds(p)]
            if beyond:
                raise AccessError(
                    "not yours to give",
                    [
                        Problem(
                            "permissions",
                            f"a {unit.scope.role} does not hold it, so no token of theirs can",
                            permission,
                            "give only permissions your role holds",
                        )
                        for permission in beyond
                    ],
                )
            token, prefix, digest = new_token(API_TOKEN_PREFIX)
            expires_at = unit.now + dt.timedelta(days=expires_in_days)
            row = ApiToken(
                staff_id=unit.scope.id,
                name=name,
                prefix=prefix,
                token_hash=digest,
                permissions=list(wanted),
                created_at=unit.now,
                expires_at=expires_at,
            )
            unit.session.add(row)
            unit.session.flush()
            unit.audit(
                "token.create",
                "api_token",
                row.id,
                new={
                    "name": name,
                    "prefix": prefix,
                    "permissions": list(wanted),
                    "expires_at": expires_at.isoformat(),
                },
            )
            return NewToken(row.id, name, token, wanted, expires_at)

    def revoke_token(self, token_id: int) -> None:
        """Revoke one of your tokens (an admin: anyone's); it stops working at once."""
        with self._unit("view") as unit:
            unit.scope.require_unlimited("revoking a token")
            row = unit.session.get(ApiToken, token_id)
            if row is None or not (
                row.staff_id == unit.scope.id or unit.scope.holds("manage_staff")
            ):
                raise OperationError(
                    "unknown token",
                    [
                        Problem(
                            "token",
                            "is not one of your tokens",
                            token_id,
                            "see 'lumbar user token list'",
                        )
                    ],
                )
            if row.revoked_at is not None:
                raise OperationError(
                    "already revoked",
                    [Problem("token", "is revoked", token_id, "nothing to do")],
                )
            row.revoked_at = unit.now
            row.revoked_by = unit.scope.id
            unit.audit("token.revoke", "api_token", row.id, new={"name": row.name})

    def tokens(self, username: str | None = None) -> tuple[TokenView, ...]:
        """Your API tokens (an admin: another user's), newest first, without the tokens."""
        target = username or self.principal.username
        own = target == self.principal.username
        with self._unit("view" if own else "manage_staff", write=False) as unit:
            unit.scope.require_unlimited("listing tokens")
            staff = _staff(unit, target)
            rows = unit.session.execute(
                select(ApiToken).where(ApiToken.staff_id == staff.id).order_by(ApiToken.id.desc())
            ).scalars()
            return tuple(
                TokenView(
                    row.id,
                    staff.username,
                    row.name,
                    row.prefix,
                    tuple(row.permissions),
                    row.created_at,
                    row.expires_at,
                    row.last_used_at,
                    "revoked"
                    if row.revoked_at is not None
                    else "expired"
                    if row.expires_at <= unit.now
                    else "active",
                )
                for row in rows
            )


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
