"""Who is signing in: the one place lumbar checks a credential.

::

    principal = authenticate_password(context, "carol", password, totp_code="123456")
    principal = authenticate_token(context, "lmb_...")        # an API token: scoped
    survey = authenticate_survey(context, "lms_...")          # a participant's link
    rating = authenticate_rating_link(context, "lmr_...")     # their session-rating link

Each returns who acts (a :class:`~lumbar.operations.context.Principal` for staff, a
:class:`SurveyPrincipal` for a participant) or raises
:class:`~lumbar.errors.AccessError`. What is checked, and why so:

- **Passwords** are kept as argon2id hashes (argon2-cffi) with the parameters of
  :data:`PASSWORD_PARAMETERS`; a hash made with older parameters is replaced at the
  next sign-in. An unknown user name, a wrong password, a deactivated account and
  a wrong or reused second-factor code all get the same answer
  (:data:`SIGN_IN_FAILED`), after the same amount of work: a name that does not
  exist is checked against a dummy hash, so neither the message nor the time tells
  which names exist.
- **Failed sign-ins** are counted per user name, known or not, in ``login_failure``:
  :data:`LOCKOUT_FAILURES` failures within :data:`LOCKOUT_WINDOW` lock the name for
  :data:`LOCKOUT_DURATION` (refused even with the right password, saying until
  when); a success clears the count. Every failed or locked attempt leaves an audit
  record (``login.failed``, ``login.locked``) with the name and why, never the
  password; every success leaves ``login``.
- **A second factor** (TOTP, pyotp), once confirmed, is required with the
  password: a code of the current 30-second step or one either side, and never a
  step already used (``staff.totp_last_step``), so an overheard code cannot be
  replayed.
- **Tokens** (``lmb_`` for staff, ``lms_`` for a participant's survey link, ``lmr_`` for
  their session-rating link) are 32 random bytes; the database keeps their SHA-256
  digest only, found by a short prefix that is not secret, and compared in constant time.

Time comes from ``context.now()``, so tests move a clock instead of waiting.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.orm import Session

from lumbar.errors import AccessError, OperationError, Problem
from lumbar.operations.context import SYSTEM_ACTOR, Context, Principal, Transaction
from lumbar.operations.scope import load_scope
from lumbar.store.schema import (
    ApiToken,
    ConsentToken,
    LoginFailure,
    Participant,
    Staff,
    SurveyToken,
    WebSession,
)

if TYPE_CHECKING:
    from argon2 import PasswordHasher

__all__ = [
    "API_TOKEN_PREFIX",
    "LOCKOUT_DURATION",
    "LOCKOUT_FAILURES",
    "LOCKOUT_WINDOW",
    "MIN_PASSWORD_LENGTH",
    "PASSWORD_PARAMETERS",
    "RATING_TOKEN_PREFIX",
    "SESSION_ABSOLUTE",
    "SESSION_IDLE",
    "SIGN_IN_FAILED",
    "SURVEY_TOKEN_PREFIX",
    "WEB_SESSION_PREFIX",
    "PasswordParameters",
    "RatingPrincipal",
    "SurveyLinkRefusedError",
    "SurveyPrincipal",
    "SurveyRefusal",
    "authenticate_password",
    "authenticate_rating_link",
    "authenticate_survey",
    "authenticate_token",
    "check_password_rules",
    "end_web_session",
    "find_participant_link",
    "hash_password",
    "new_token",
    "new_totp_secret",
    "password_hasher",
    "rating_link_in_force",
    "resume_web_session",
    "second_factor_due",
    "start_web_session",
    "survey_token_in_force",
    "totp_step",
    "totp_uri",
]


@dataclass(frozen=True)
class PasswordParameters:
    time_cost: int
    memory_cost: int
    """KiB."""
    parallelism: int
    hash_len: int
    salt_len: int


PASSWORD_PARAMETERS = PasswordParameters(
    time_cost=3, memory_cost=64 * 1024, parallelism=4, hash_len=32, salt_len=16
)
"""argon2id parameters: RFC 9106 section 4, the second recommended option (3 passes
over 64 MiB, 4 lanes, 128-bit salt, 256-bit tag) for memory-constrained servers;
argon2-cffi's ``RFC_9106_LOW_MEMORY`` profile."""

MIN_PASSWORD_LENGTH = 12
"""Longer than NIST SP 800-63B's floor of 8 (section 3.1.1.2): the staff who use these
accounts can open identifiers and arms, and length is what makes a password hard."""
MAX_PASSWORD_LENGTH = 1024
"""Enough for any pass phrase; refuses megabytes sent only to make hashing slow."""

SESSION_IDLE = dt.timedelta(minutes=30)
SESSION_ABSOLUTE = dt.timedelta(hours=12)
"""A web session ends after SESSION_IDLE without a request, and SESSION_ABSOLUTE after it
began however active (OWASP ASVS 4.0 V3.3.2: re-authentication within 12 hours, 30
minutes idle for level 2)."""

LOCKOUT_FAILURES = 5
LOCKOUT_WINDOW = dt.timedelta(minutes=15)
LOCKOUT_DURATION = dt.timedelta(minutes=15)
"""After LOCKOUT_FAILURES failed sign-ins within LOCKOUT_WINDOW a user name is locked for
LOCKOUT_DURATION: at most 20 guesses an hour per name (OWASP Authentication Cheat Sheet,
"Account lockout")."""

TOTP_WINDOW = 1
"""Codes of one 30-second step either side of now are accepted: the network delay RFC 6238
section 5.2 allows for, and pyotp's ``verify(valid_window=1)``."""

API_TOKEN_PREFIX = "lmb_"
SURVEY_TOKEN_PREFIX = "lms_"
RATING_TOKEN_PREFIX = "lmr_"
WEB_SESSION_PREFIX = "lmw_"
_TOKEN_BYTES = 32
_LOOKUP_CHARS = 8
"""Characters of the random part kept in clear to find a token by (not a secret: the
other 35 characters carry over 200 bits)."""
_TOKEN_LENGTH = 4 + 43  # the kind's prefix, then token_urlsafe(32)

SIGN_IN_FAILED = "sign-in failed"
_SIGN_IN_PROBLEM = Problem(
    "username",
    "the user name, the password or the code is wrong, or the account is not active",
    hint="check them and try again; accounts with a second factor need the current code",
)

COMMON_PASSWORDS = frozenset(
    {
        "000000000000",
        "111111111111",
        "123123123123",
        "123456123456",
        "123456654321",
        "123456789012",
        "1234567890123",
        "12345678901234",
        "123456789abc",
        "1q2w3e4r5t6y",
        "1qaz2wsx3edc",
        "aaaaaaaaaaaa",
        "abc123abc123",
        "abcd1234abcd",
        "abcdefghijkl",
        "administrator",
        "asdfasdfasdf",
        "asdfghjkl123",
        "baseball1234",
        "changeme1234",
        "dragon123456",
        "football1234",
        "iloveyou1234",
        "letmein12345",
        "master123456",
        "monkey123456",
        "password1234",
        "password12345",
        "password123456",
        "passwordpassword",
        "princess1234",
        "qazwsxedcrfv",
        "qwerty123456",
        "qwertyuiop12",
        "qwertyuiop123",
        "qwertyuiopas",
        "qwertyuiopasdf",
        "sunshine1234",
        "superman1234",
        "trustno1trustno1",
        "welcome12345",
        "welcome123456",
        "zaq12wsxcde3",
    }
)
"""Passwords of twelve characters or more that lead the published lists of leaked
passwords (a length rule alone lets these through)."""


# ---------------------------------------------------------------------- principals


@dataclass(frozen=True)
class SurveyPrincipal:
    """A participant holding a survey link: one participant, one visit, nothing else."""

    token_id: int
    participant_id: int
    study_id: str
    visit: str

    @property
    def actor(self) -> str:
        """How audit records name them: recognisably not a member of staff."""
        return f"participant:{self.study_id}"

    @property
    def origin(self) -> str:
        return f"survey token {self.token_id}"


@dataclass(frozen=True)
class RatingPrincipal:
    """A participant holding their session-rating link: one participant, their rating before
    each session through their treatment period, nothing else."""

    token_id: int
    participant_id: int
    study_id: str

    @property
    def actor(self) -> str:
        """How audit records name them, as for a survey link."""
        return f"participant:{self.study_id}"

    @property
    def origin(self) -> str:
        return f"session-rating link {self.token_id}"


# ---------------------------------------------------------------------- passwords


def password_hasher(context: Context) -> PasswordHasher:
    """The context's hasher: argon2id with :data:`PASSWORD_PARAMETERS` unless it was given one."""
    if context.password_hasher is None:
        from argon2 import PasswordHasher  # noqa: PLC0415 - only credential work loads argon2

        parameters = PASSWORD_PARAMETERS
        context.password_hasher = PasswordHasher(
            time_cost=parameters.time_cost,
            memory_cost=parameters.memory_cost,
            parallelism=parameters.parallelism,
            hash_len=parameters.hash_len,
            salt_len=parameters.salt_len,
        )
    return context.password_hasher


def check_password_rules(password: str, username: str) -> None:
    """Refuse a password that is too short, is the user name, or is a well-known one."""
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(
            Problem(
                "password",
                f"must be at least {MIN_PASSWORD_LENGTH} characters long (it has {len(password)})",
                hint="a pass phrase of a few unrelated words is long and easy to remember",
            )
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(
            Problem("password", f"must be at most {MAX_PASSWORD_LENGTH} characters long")
        )
    folded = password.casefold()
    if username and username.casefold() in folded:
        problems.append(
            Problem("password", "must not contain the user name", hint="choose another")
        )
    if folded in COMMON_PASSWORDS:
        problems.append(
            Problem(
                "password",
                "is one of the most common passwords, tried first by anyone guessing",
                hint="choose another",
            )
        )
    if problems:
        raise OperationError("the password is not accepted", problems)


def hash_password(context: Context, password: str) -> str:
    """An argon2id hash of ``password`` (``$argon2id$v=19$m=...``), salted at random."""
    return password_hasher(context).hash(password)


def _verify(hasher: PasswordHasher, hashed: str, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError  # noqa: PLC0415

    try:
        return hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


_DUMMY_HASHES: dict[tuple[int, int, int, int, int], str] = {}


def _dummy_hash(hasher: PasswordHasher) -> str:
    """A hash of a random password with ``hasher``'s parameters, checked for names that do
    not exist so that they take as long as names that do."""
    key = (
        hasher.time_cost,
        hasher.memory_cost,
        hasher.parallelism,
        hasher.hash_len,
        hasher.salt_len,
    )
    if key not in _DUMMY_HASHES:
        _DUMMY_HASHES[key] = hasher.hash(secrets.token_urlsafe(16))
    return _DUMMY_HASHES[key]


def authenticate_password(
    context: Context,
    username: str,
    password: str,
    totp_code: str | None = None,
    *,
    origin: str = "web",
) -> Principal:
    """The member of staff ``username``, proven by their password (and code, when they use one).

    Raises AccessError with one message for every wrong answer, and another, saying
    until when, while the name is locked after too many failures. The attempt is
    recorded (failure count, audit record) even when it is refused.
    """
    with context.transaction(SYSTEM_ACTOR, origin) as work:
        outcome = _sign_in(context, work, username, password, totp_code)
    if isinstance(outcome, AccessError):
        raise outcome
    return outcome


def _sign_in(
    context: Context, work: Transaction, username: str, password: str, totp_code: str | None
) -> Principal | AccessError:
    """One attempt, inside its transaction; a refusal is returned so the attempt commits."""
    session, now = work.session, work.now
    name = username[:64]  # what failures are counted and audited under (the column's width)
    locked_until = _locked_until(session, name, now)
    if locked_until is not None:
        work.audit(
            "login.locked",
            "login",
            name,
            new={"username": name, "locked_until": locked_until.isoformat()},
        )
        return _locked(name, locked_until)
    staff = session.execute(select(Staff).where(Staff.username == username)).scalar_one_or_none()
    hasher = password_hasher(context)
    failure: str | None = None
    step: int | None = None
    if len(password) > MAX_PASSWORD_LENGTH:
        failure = "wrong password"
    elif staff is None or staff.password_hash is None:
        _verify(hasher, _dummy_hash(hasher), password)  # the same work as a real check
        failure = "unknown user" if staff is None else "no password set"
    elif not _verify(hasher, staff.password_hash, password):
        failure = "wrong password"
    elif not staff.active:
        failure = "deactivated"
    elif staff.totp_active:
        step = _totp_step_of(context, staff, totp_code or "", now)
        if step is None:
            failure = "wrong or missing code"
        elif staff.totp_last_step is not None and step <= staff.totp_last_step:
            failure = "code used before"
    if failure is not None:
        return _failed(work, name, failure)
    assert staff is not None
    assert staff.password_hash is not None
    session.execute(delete(LoginFailure).where(LoginFailure.username == name))
    if step is not None:
        staff.totp_last_step = step
    rehashed = hasher.check_needs_rehash(staff.password_hash)
    if rehashed:
        staff.password_hash = hasher.hash(password)
    work.actor = staff.username
    due = second_factor_due(context, staff)
    work.audit(
        "login",
        "staff",
        staff.username,
        new={"second_factor": staff.totp_active, "rehashed": rehashed}
        | ({"second_factor_due": True} if due else {}),
    )
    return Principal(staff.username, work.origin, second_factor_due=due)


def second_factor_due(context: Context, staff: Staff) -> bool:
    """Whether the protocol requires ``staff`` to sign in with a second factor they have
    not turned on yet (``access.second_factor``: their role, or ``unblinded``)."""
    if staff.totp_active:
        return False
    required = context.protocol.access.second_factor
    return staff.role in required or ("unblinded" in required and bool(staff.unblinded))


def _locked_until(session: Session, name: str, now: dt.datetime) -> dt.datetime | None:
    until = session.execute(
        select(func.max(LoginFailure.locked_until)).where(
            LoginFailure.username == name, LoginFailure.locked_until > now
        )
    ).scalar_one_or_none()
    return until


def _failed(work: Transaction, name: str, failure: str) -> AccessError:
    """Count a failure; lock the name at the LOCKOUT_FAILURES-th within the window."""
    session, now = work.session, work.now
    last_lock = session.execute(
        select(func.max(LoginFailure.at)).where(
            LoginFailure.username == name, LoginFailure.locked_until.is_not(None)
        )
    ).scalar_one_or_none()
    since = now - LOCKOUT_WINDOW
    if last_lock is not None and last_lock > since:
        since = last_lock  # after a lock, the count starts again
    earlier = session.execute(
        select(func.count())
        .select_from(LoginFailure)
        .where(LoginFailure.username == name, LoginFailure.at > since)
    ).scalar_one()
    failures = int(earlier) + 1
    locked_until = now + LOCKOUT_DURATION if failures >= LOCKOUT_FAILURES else None
    session.add(LoginFailure(username=name, at=now, locked_until=locked_until))
    # Forget failures that no longer count and locks that have ended (of every name).
    session.execute(
        delete(LoginFailure).where(
            LoginFailure.at < now - LOCKOUT_WINDOW,
            or_(LoginFailure.locked_until.is_(None), LoginFailure.locked_until <= now),
        )
    )
    work.audit(
        "login.failed",
        "login",
        name,
        new={
            "username": name,
            "failure": failure,
            "failures": failures,
            "locked_until": None if locked_until is None else locked_until.isoformat(),
        },
    )
    if locked_until is not None:
        return _locked(name, locked_until)
    return AccessError(SIGN_IN_FAILED, [_SIGN_IN_PROBLEM])


def _locked(name: str, until: dt.datetime) -> AccessError:
    return AccessError(
        "sign-in locked",
        [
            Problem(
                "username",
                f"is locked after {LOCKOUT_FAILURES} failed sign-ins, "
                f"until {until.strftime('%Y-%m-%d %H:%M')} UTC",
                name,
                "wait until then, or ask an admin to set a new password",
            )
        ],
    )


# ---------------------------------------------------------------------- second factor


def new_totp_secret() -> str:
    """A new TOTP secret: 32 base-32 characters (160 bits, RFC 4226's recommended length)."""
    import pyotp  # noqa: PLC0415 - only credential work loads pyotp

    return pyotp.random_base32()


def totp_uri(secret: str, username: str, issuer: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads (as a QR code or typed in)."""
    import pyotp  # noqa: PLC0415

    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def totp_step(secret: str, code: str, now: dt.datetime) -> int | None:
    """The time step whose code ``code`` is, within :data:`TOTP_WINDOW` of ``now``; else None.

    pyotp's ``verify(code, for_time=now, valid_window=1)``, unrolled to learn which step
    matched, so that no step is accepted twice. Every candidate is compared, in
    constant time.
    """
    import pyotp  # noqa: PLC0415

    code = code.replace(" ", "")
    if not (len(code) == 6 and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    matched = None
    for step in range(current - TOTP_WINDOW, current + TOTP_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            matched = step
    return matched


def _totp_step_of(context: Context, staff: Staff, code: str, now: dt.datetime) -> int | None:
    if staff.totp_sealed is None:
        return None
    secret = context.vault.open(staff.totp_sealed, f"totp:{staff.id}")
    return totp_step(secret, code, now)


# ---------------------------------------------------------------------- tokens


def new_token(kind: str) -> tuple[str, str, str]:
    """A new token of ``kind`` (:data:`API_TOKEN_PREFIX` or :data:`SURVEY_TOKEN_PREFIX`).

    Returns the token (shown once), its lookup prefix, and the SHA-256 digest that is
    stored. A fast hash is right here and wrong for passwords: a token is 256 random
    bits, so no table or brute force recovers it from its digest, while a slow hash
    would cost every API request.
    """
    token = kind + secrets.token_urlsafe(_TOKEN_BYTES)
    return token, _lookup(token), _digest(token)


def _lookup(token: str) -> str:
    return token[: 4 + _LOOKUP_CHARS]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _matching(token: str, candidates: list[tuple[str, int]]) -> int | None:
    """The id of the candidate (digest, id) whose digest is the token's, compared in constant
    time with every candidate."""
    digest = _digest(token)
    found = None
    for stored, row_id in candidates:
        if hmac.compare_digest(stored, digest):
            found = row_id
    return found


def _owned(
    session: Session, model: type[ApiToken] | type[WebSession], token: str
) -> tuple[Any, Staff] | None:
    """The row of ``model`` (API token or web session) whose digest is ``token``'s, with
    its owner; None when there is none. Found by the token's non-secret prefix, then
    compared in constant time with every candidate."""
    rows: list[Any] = list(
        session.execute(
            select(model, Staff)
            .join(Staff, Staff.id == model.staff_id)
            .where(model.prefix == _lookup(token))
        ).all()
    )
    found = _matching(token, [(row.token_hash, row.id) for row, _ in rows])
    return next(((row, staff) for row, staff in rows if row.id == found), None)


def _well_formed(token: str, kind: str) -> bool:
    return token.startswith(kind) and len(token) == _TOKEN_LENGTH and token.isascii()


_TOKEN_REFUSED = Problem(
    "token",
    "is not a valid token: mistyped, expired, revoked, or its owner is not active",
    hint="create a new one ('lumbar user token create')",
)


def authenticate_token(context: Context, token: str) -> Principal:
    """The member of staff an API token belongs to, limited to the token's permissions.

    Refused (one message for every reason) when the token is unknown, expired or
    revoked, or its owner is deactivated. A refused token that was once valid leaves a
    ``token.refused`` audit record; made-up tokens leave none, so noise cannot flood the
    trail. ``last_used_at`` is kept to the minute.
    """
    token = token.strip()
    refused = AccessError("token refused", [_TOKEN_REFUSED])
    if not _well_formed(token, API_TOKEN_PREFIX):
        raise refused
    now = context.now()
    with context.db.read() as session:
        owned = _owned(session, ApiToken, token)
        if owned is None:
            raise refused
        row, staff = owned
        found = row.id
        why = _out_of_force(row, staff, now)
        principal = Principal(staff.username, f"token {row.id}", frozenset(row.permissions))
        stale = row.last_used_at is None or now - row.last_used_at >= dt.timedelta(minutes=1)
    if why is not None:
        with context.transaction(SYSTEM_ACTOR, principal.origin) as work:
            work.audit(
                "token.refused", "api_token", found, new={"username": staff.username, "why": why}
            )
        raise refused
    if stale:
        with context.db.write() as session:
            session.execute(update(ApiToken).where(ApiToken.id == found).values(last_used_at=now))
    return principal


def _out_of_force(row: ApiToken, staff: Staff, now: dt.datetime) -> str | None:
    """Why a genuine token no longer signs anyone in, if it does not."""
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at <= now:
        return "expired"
    if not staff.active:
        return "owner deactivated"
    return None


def authenticate_survey(context: Context, token: str) -> SurveyPrincipal:
    """The participant and visit a survey link opens; AccessError when it does not open.

    A participant is told plainly when their link was used already or has expired.
    """
    with context.db.read() as session:
        row, study_id = _participant_link(session, token, SURVEY_TOKEN_PREFIX, "survey")
        principal = SurveyPrincipal(row.id, row.participant_id, study_id, row.visit)
        survey_token_in_force(session, principal, context.now())
        return principal


def authenticate_rating_link(context: Context, token: str) -> RatingPrincipal:
    """The participant a session-rating link belongs to; AccessError (a
    :class:`SurveyLinkRefusedError` of ``link`` ``session_rating``) when it opens nothing."""
    with context.db.read() as session:
        row, study_id = _participant_link(session, token, RATING_TOKEN_PREFIX, "session_rating")
        principal = RatingPrincipal(row.id, row.participant_id, study_id)
        rating_link_in_force(session, principal, context.now())
        return principal


def _participant_link(
    session: Session, token: str, prefix: str, kind: LinkKind
) -> tuple[SurveyToken, str]:
    """The participant's link of ``kind`` whose digest is ``token``'s, with their study id."""
    what = "survey link" if kind == "survey" else "session-rating link"
    forged = SurveyLinkRefusedError("forged", f"is not a valid {what}", link=kind)
    return find_participant_link(
        session, SurveyToken, token, prefix, forged, SurveyToken.kind == kind
    )


def find_participant_link(
    session: Session,
    model: type[_LinkRow],
    token: str,
    prefix: str,
    forged: SurveyLinkRefusedError,
    *where: ColumnElement[bool],
) -> tuple[_LinkRow, str]:
    """The participant's link in ``model``'s table (narrowed by ``where``) whose digest is
    ``token``'s, with their study id: found by the non-secret prefix, compared in constant
    time with every candidate; ``forged`` is raised when the token is malformed or matches
    none. Whether the link is still in force is for its kind to check."""
    token = token.strip()
    if not _well_formed(token, prefix):
        raise forged
    rows = session.execute(
        select(model, Participant.study_id)
        .join(Participant, Participant.id == model.participant_id)
        .where(model.prefix == _lookup(token), *where)
    ).all()
    found = _matching(token, [(row.token_hash, row.id) for row, _ in rows])
    if found is None:
        raise forged
    return next((row, str(study_id)) for row, study_id in rows if row.id == found)


def rating_link_in_force(
    session: Session, principal: RatingPrincipal, now: dt.datetime
) -> SurveyToken:
    """The session-rating link of ``principal``, not revoked, open and unexpired, bound to
    the participant the principal names; AccessError otherwise. (It is used many times: once
    before each session.)"""
    row = session.get(SurveyToken, principal.token_id)
    kind: LinkKind = "session_rating"
    if row is None or row.participant_id != principal.participant_id or row.kind != kind:
        raise SurveyLinkRefusedError("forged", "is not a valid session-rating link", link=kind)
    if row.revoked_at is not None:
        raise SurveyLinkRefusedError(
            "revoked",
            "was withdrawn by the study team",
            "use the newest link you were sent",
            link=kind,
        )
    if now < row.opens_at:
        raise SurveyLinkRefusedError(
            "not_open",
            f"opens on {row.opens_at.strftime('%Y-%m-%d')}",
            "come back on that day",
            day=row.opens_at.date(),
            link=kind,
        )
    if row.expires_at <= now:
        raise SurveyLinkRefusedError(
            "expired",
            f"expired on {row.expires_at.strftime('%Y-%m-%d %H:%M')} UTC: the treatment "
            "period is over",
            "ask the study team if you still have sessions",
            day=(row.expires_at - dt.timedelta(days=1)).date(),
            link=kind,
        )
    return row


def survey_token_in_force(
    session: Session, principal: SurveyPrincipal, now: dt.datetime
) -> SurveyToken:
    """The survey token of ``principal``, not revoked, unused, open and unexpired, bound to the
    participant and visit the principal names; AccessError otherwise."""
    row = session.get(SurveyToken, principal.token_id)
    if (
        row is None
        or row.participant_id != principal.participant_id
        or row.visit != principal.visit
        or row.kind != "survey"
    ):
        raise SurveyLinkRefusedError("forged", "is not a valid survey link")
    if row.revoked_at is not None:
        raise SurveyLinkRefusedError(
            "revoked", "was withdrawn by the study team", "use the newest link you were sent"
        )
    if row.used_at is not None:
        raise SurveyLinkRefusedError(
            "used",
            "was used already: each link answers one visit once",
            "if you need to change an answer, contact the study team",
        )
    if now < row.opens_at:
        raise SurveyLinkRefusedError(
            "not_open",
            f"opens on {row.opens_at.strftime('%Y-%m-%d')}: the questionnaires are not due yet",
            "come back on that day",
            day=row.opens_at.date(),
        )
    if row.expires_at <= now:
        raise SurveyLinkRefusedError(
            "expired",
            f"expired on {row.expires_at.strftime('%Y-%m-%d %H:%M')} UTC",
            "ask the study team for a new link",
            day=row.expires_at.date(),
        )
    return row


_LinkRow = TypeVar("_LinkRow", SurveyToken, ConsentToken)
SurveyRefusal = Literal["forged", "revoked", "used", "not_open", "expired", "closed"]
LinkKind = Literal["survey", "session_rating", "consent"]


class SurveyLinkRefusedError(AccessError):
    """A participant's link that opens nothing now, and why (``reason``), for a page to
    explain: ``forged`` (no such link), ``revoked``, ``used``, ``not_open`` (its window opens
    on ``day``), ``expired`` or ``closed`` (the participant's follow-up, or for a
    session-rating link their treatment, has ended). ``link``: which kind of link it was
    (``survey``, ``session_rating`` or ``consent``), so the page uses that link's words."""

    def __init__(
        self,
        reason: SurveyRefusal,
        rule: str,
        hint: str = "check the link you were sent",
        *,
        day: dt.date | None = None,
        summary: str = "survey link refused",
        link: LinkKind = "survey",
    ) -> None:
        super().__init__(summary, [Problem("token", rule, hint=hint)])
        self.reason: SurveyRefusal = reason
        self.day = day
        self.link: LinkKind = link


# ---------------------------------------------------------------------- web sessions


def start_web_session(context: Context, principal: Principal) -> str:
    """A new web session for ``principal``, just proven by :func:`authenticate_password`.

    Returns the session token for the browser's cookie (shown once; only its digest is
    kept). The audit trail records the session's start.
    """
    token, prefix, digest = new_token(WEB_SESSION_PREFIX)
    with context.transaction(principal.username, principal.origin) as work:
        staff = work.session.execute(
            select(Staff).where(Staff.username == principal.username)
        ).scalar_one()
        row = WebSession(
            staff_id=staff.id,
            prefix=prefix,
            token_hash=digest,
            created_at=work.now,
            expires_at=work.now + SESSION_ABSOLUTE,
            last_seen_at=work.now,
        )
        work.session.add(row)
        work.session.flush()
        work.audit(
            "session.start",
            "web_session",
            row.id,
            new={"username": staff.username, "expires_at": row.expires_at.isoformat()},
        )
    return token


def resume_web_session(context: Context, token: str) -> Principal:
    """Who the web session ``token`` signs in; AccessError when it signs in no one.

    A session ends (and says why) when signed out or revoked, after
    :data:`SESSION_IDLE` without a request or :data:`SESSION_ABSOLUTE` in all, when its
    owner is deactivated, and when their password changed after it began. A session that
    ends here leaves an audit record; ``last_seen_at`` is kept to the minute.
    """
    token = token.strip()
    if not _well_formed(token, WEB_SESSION_PREFIX):
        raise _session_refused("is not a session of this trial")
    now = context.now()
    with context.db.read() as session:
        owned = _owned(session, WebSession, token)
        if owned is None:
            raise _session_refused("is not a session of this trial")
        row, staff = owned
        found = row.id
        if row.ended_at is not None:
            raise _session_refused(f"has ended ({row.end_reason})")
        why = _session_over(row, staff, now)
        principal = Principal(
            staff.username,
            f"web session {row.id}",
            # Once they confirm a second factor in this session (a current code from the
            # app), the session has seen both factors and opens everything their role may.
            second_factor_due=second_factor_due(context, staff),
            scope=None if why is not None else load_scope(session, staff.username),
        )
        stale = now - row.last_seen_at >= dt.timedelta(minutes=1)
    if why is not None:
        _end(context, found, staff.username, why)
        raise _session_refused(f"has ended ({why})")
    if stale:
        with context.db.write() as session:
            session.execute(
                update(WebSession)
                .where(WebSession.id == found, WebSession.ended_at.is_(None))
                .values(last_seen_at=now)
            )
    return principal


def end_web_session(context: Context, token: str, reason: str = "signed out") -> None:
    """End the web session ``token`` (signing out); nothing happens for an unknown token."""
    token = token.strip()
    if not _well_formed(token, WEB_SESSION_PREFIX):
        return
    with context.db.read() as session:
        rows = session.execute(
            select(WebSession.token_hash, WebSession.id, Staff.username)
            .join(Staff, Staff.id == WebSession.staff_id)
            .where(WebSession.prefix == _lookup(token), WebSession.ended_at.is_(None))
        ).all()
    found = _matching(token, [(digest, row_id) for digest, row_id, _ in rows])
    if found is not None:
        username = next(name for _, row_id, name in rows if row_id == found)
        _end(context, found, username, reason)


def _session_over(row: WebSession, staff: Staff, now: dt.datetime) -> str | None:
    """Why an open session no longer signs its owner in, if it does not."""
    if not staff.active:
        return "account deactivated"
    if staff.password_changed_at is not None and staff.password_changed_at > row.created_at:
        return "password changed"
    if row.expires_at <= now:
        return "time limit reached"
    if now - row.last_seen_at >= SESSION_IDLE:
        return "idle too long"
    return None


def _end(context: Context, session_id: int, username: str, reason: str) -> None:
    with context.transaction(username, f"web session {session_id}") as work:
        row = work.session.get(WebSession, session_id)
        if row is None or row.ended_at is not None:
            return  # ended meanwhile, by another request
        row.ended_at = work.now
        row.end_reason = reason
        work.audit("session.end", "web_session", session_id, new={"reason": reason})


def _session_refused(rule: str) -> AccessError:
    return AccessError("signed out", [Problem("session", rule, hint="sign in again")])
