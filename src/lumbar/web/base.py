"""What every staff page needs: who is signed in, CSRF, rendering, and the web's errors.

See :mod:`lumbar.web.app` for the security this implements and :mod:`lumbar.web.pages`
for the pages.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from lumbar import __version__
from lumbar.errors import AccessError, LumbarError, OperationError
from lumbar.operations import Trial
from lumbar.operations.authentication import (
    authenticate_password,
    end_web_session,
    resume_web_session,
    start_web_session,
)
from lumbar.operations.context import Context
from lumbar.operations.people import StaffView
from lumbar.operations.vocabulary import PERMISSIONS

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "HERE",
    "NAMED_BY_URL",
    "NOT_COLLECTED",
    "SECOND_FACTOR_PAGE",
    "SECURITY_HEADERS",
    "SESSION_COOKIE",
    "SIGN_IN_COOKIE",
    "CheckedForm",
    "CsrfRefusedError",
    "NotFoundError",
    "Page",
    "SecondFactorDueError",
    "SignInNeededError",
    "SignedIn",
    "checked_form",
    "csrf_token",
    "field_messages",
    "form_field",
    "form_refusal",
    "found",
    "is_unknown",
    "refused",
    "render",
    "set_sign_in_csrf",
    "sign_in",
    "sign_in_csrf",
    "sign_in_url",
    "sign_out",
    "signed_in",
    "templates",
]

HERE = Path(__file__).parent
SESSION_COOKIE = "lumbar_session"
SIGN_IN_COOKIE = "lumbar_sign_in"
"""The sign-in form's double-submit CSRF value (there is no session yet to derive one from)."""

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


def csrf_token(session_token: str) -> str:
    """The CSRF token of the forms of one web session (an HMAC keyed by the session token)."""
    return hmac.new(session_token.encode(), b"lumbar csrf", hashlib.sha256).hexdigest()


class SignInNeededError(Exception):
    """The request needs a signed-in member of staff and has none (or theirs ended)."""

    def __init__(self, reason: str | None = None):
        super().__init__(reason or "sign in")
        self.reason = reason


class CsrfRefusedError(Exception):
    """A form was posted without this session's CSRF token."""


class NotFoundError(Exception):
    """Nothing here for this user (what does not exist and what they may not see alike)."""


def templates() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every value shown is escaped, free text included
        auto_reload=False,  # the templates ship with lumbar: no file check at every page
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals["version"] = __version__
    return environment


def sign_in_url(request: Request, reason: str | None) -> str:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    url = "/sign-in"
    if request.method == "GET" and target not in ("/", "/sign-in"):
        url += "?next=" + quote(target, safe="")
    if reason is not None:
        url += ("&" if "?" in url else "?") + "ended=1"
    return url


# ---------------------------------------------------------------------- per request


class Page:
    """One request by a signed-in member of staff: their trial, and their forms' CSRF token."""

    def __init__(self, request: Request, trial: Trial, token: str):
        self.request = request
        self.trial = trial
        self.csrf = csrf_token(token)
        self.user = trial.principal.username
        self._me: StaffView | None = None

    def may(self, permission: str) -> bool:
        """Whether the user's role holds ``permission`` (to leave out what would be refused)."""
        return self.role in PERMISSIONS[permission]

    @property
    def role(self) -> str:
        """The member of staff's role, from the scope their session was checked with."""
        scope = self.trial.principal.scope
        return self.me.role if scope is None else scope.role

    @property
    def me(self) -> StaffView:
        """The member of staff: role, sites, blinding (asked once a request)."""
        if self._me is None:
            self._me = self.trial.me()
        return self._me


def context_of(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


def signed_in(request: Request) -> Page:
    """The signed-in member of staff (FastAPI dependency); SignInNeededError otherwise."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInNeededError()
    try:
        principal = resume_web_session(context_of(request), token)
    except AccessError as error:
        raise SignInNeededError(
            error.problems[0].rule if error.problems else "signed out"
        ) from None
    if principal.second_factor_due and not request.url.path.startswith(SECOND_FACTOR_PAGE):
        raise SecondFactorDueError()
    return Page(request, Trial(context_of(request), principal), token)


SECOND_FACTOR_PAGE = "/account/second-factor"
"""Where someone whose role needs a second factor, and who has none yet, enrols one: the
only page such a session opens."""


class SecondFactorDueError(Exception):
    """The signed-in user must enrol a second factor before any other page."""


SignedIn = Annotated[Page, Depends(signed_in)]
"""A page's parameter: the signed-in member of staff."""


async def checked_form(request: Request, page: SignedIn) -> dict[str, str]:
    """The posted form of a signed-in page, once its CSRF token is checked (dependency)."""
    form = await request.form()
    sent = form.get("csrf")
    if not isinstance(sent, str) or not hmac.compare_digest(sent, page.csrf):
        raise CsrfRefusedError()
    return {key: value for key, value in form.items() if isinstance(value, str)}


CheckedForm = Annotated[dict[str, str], Depends(checked_form)]
"""A form post's parameter: its fields, once the sender is signed in and the CSRF token checked."""


def render(
    request: Request,
    template: str,
    values: dict[str, Any],
    *,
    page: Page | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """A page from ``template``, with what every page shows (who, the trial, its labels)."""
    context = context_of(request)
    environment: jinja2.Environment = request.app.state.templates
    setting_up = page is None or page.trial.principal.second_factor_due
    html = environment.get_template(template).render(
        {
            "trial_title": context.protocol.trial.title,
            "synthetic": context.synthetic,
            "user": None if page is None else page.user,
            "role": None if setting_up else page.role,  # type: ignore[union-attr]
            "may": frozenset()
            if setting_up
            else frozenset(
                name
                for name, roles in PERMISSIONS.items()
                if page.role in roles  # type: ignore[union-attr]
            ),
            "csrf": None if page is None else page.csrf,
            "path": request.url.path,
            "messages": field_messages(
                values.get("errors") or [],
                f"{values['failed']}-" if values.get("failed") else "",
            ),
            **values,
        }
    )
    return HTMLResponse(html, status_code=status_code)


def refused(error: LumbarError) -> list[dict[str, str]]:
    """An operation's refusal as the messages a form shows next to its fields."""
    if not error.problems:
        return [{"where": "", "rule": error.summary, "hint": ""}]
    return [
        {"where": problem.where, "rule": problem.rule, "hint": problem.hint}
        for problem in error.problems
    ]


def is_unknown(error: OperationError) -> bool:
    """Whether a refusal means "no such thing that you may see" (answered 404)."""
    return error.summary.startswith("unknown ")


NOT_COLLECTED = "instrument not collected at this visit"
"""The refusal for an instrument a visit does not collect: no such page (404) either."""


NAMED_BY_URL = frozenset(
    {"participant", "visit", "event", "notification", "token", "grant", "username"}
)
"""What an operation's "unknown ..." refusal can be about that a page's URL names (an
unknown site, role or outcome is a value typed in a field instead)."""


def form_refusal(error: LumbarError) -> list[dict[str, str]]:
    """What a form shows for an operation's refusal, the one way every page decides it.

    A role refused is re-raised (the 403 page); "no such thing that you may see" about
    what the URL names (another site's participant, an event that is not theirs) is a 404,
    so a page never tells whether it exists; anything else, an unknown value typed in a
    field included, is shown at its field.
    """
    if isinstance(error, AccessError):
        raise error
    if isinstance(error, OperationError) and (
        error.summary == NOT_COLLECTED
        or (is_unknown(error) and any(p.where in NAMED_BY_URL for p in error.problems))
    ):
        raise NotFoundError() from None
    return refused(error)


@contextmanager
def found() -> Iterator[None]:
    """Read what the URL names: an operation's "unknown" (another site's alike) is a 404."""
    try:
        yield
    except OperationError as error:
        form_refusal(error)
        raise


_ITEM_WHERE = re.compile(r"^\w+: item '?(?P<item>\w+)'?$")
SCREENING_WHERE = "screening question "
"""How the operations name a screening question in a refusal (``screening question age``)."""


def form_field(where: str) -> str:
    """The form field a refusal's ``where`` names: an instrument's item (``rdq: item rdq_05``
    is ``rdq_05``), a screening question (``screening question age`` is ``q_age``), or
    the field itself."""
    if where.startswith(SCREENING_WHERE):
        return "q_" + where.removeprefix(SCREENING_WHERE)
    match = _ITEM_WHERE.match(where)
    return match.group("item") if match else where


def field_messages(errors: list[dict[str, str]], prefix: str = "") -> dict[str, list[str]]:
    """Each refusal's message keyed by the field it names (``prefix``: the form's name, on a
    page of several forms), as the templates' ``field_messages`` macro shows them."""
    messages: dict[str, list[str]] = {}
    for error in errors:
        field = prefix + form_field(error.get("where", ""))
        text = error.get("rule", "") + (f" ({error['hint']})" if error.get("hint") else "")
        messages.setdefault(field, []).append(text)
    return messages


# ---------------------------------------------------------------------- signing in


def sign_in(
    request: Request, username: str, password: str, code: str | None, next_url: str
) -> Response:
    """Check the credentials; on success start a session and go on to ``next_url``."""
    context = context_of(request)
    principal = authenticate_password(context, username, password, code or None)
    token = start_web_session(context, principal)
    response = RedirectResponse(_safe_next(next_url), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=bool(request.app.state.secure_cookies),
        path="/",
    )
    response.delete_cookie(SIGN_IN_COOKIE, path="/sign-in")
    return response


def sign_out(request: Request) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        end_web_session(context_of(request), token)
    response = RedirectResponse("/sign-in?signed_out=1", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def sign_in_csrf(request: Request) -> str:
    """The sign-in form's CSRF value: the browser's cookie, or a new one."""
    return request.cookies.get(SIGN_IN_COOKIE) or secrets.token_urlsafe(32)


def set_sign_in_csrf(request: Request, response: Response, value: str) -> None:
    response.set_cookie(
        SIGN_IN_COOKIE,
        value,
        httponly=True,
        samesite="strict",
        secure=bool(request.app.state.secure_cookies),
        path="/sign-in",
    )


def _safe_next(next_url: str) -> str:
    """Only a path on this site (never another origin, never //host)."""
    if next_url.startswith("/") and not next_url.startswith("//") and "\\" not in next_url:
        return next_url
    return "/"
