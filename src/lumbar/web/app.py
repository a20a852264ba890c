"""The staff web application: pages rendered on the server over the operations API.

::

    app = create_app("sqlite:///trial.db")            # what ``lumbar serve`` runs
    uvicorn.run(app, host="127.0.0.1", port=8000)

Thin by design: a page finds who is signed in, calls one operation as them, and renders
what it returns. No rule of the trial lives here: the operations decide what each role
and site may see and do, and refuse the rest (a participant of another site is "unknown",
and is answered 404).

What this module adds is the web's own security, each part with its test in
tests/web/ (docs/security.md lists them against OWASP ASVS):

- **Sign-in** by password (argon2id) and, for those who use one, a TOTP code, through
  :func:`~lumbar.operations.authentication.authenticate_password` (rate limit and audit
  records included). A session then lives on the server
  (:func:`~lumbar.operations.authentication.start_web_session`): the browser holds
  only a random token in a cookie (HttpOnly, SameSite=Strict, Secure behind HTTPS), and
  every request checks it again, so signing out, an administrator's revocation, a
  deactivation, a password change and the idle and absolute limits take effect at once.
- **CSRF**: every form carries a token derived from the session (an HMAC of the
  session token, so it cannot be computed without the cookie) and every POST is refused
  without it; the sign-in form, which has no session yet, uses a random double-submit
  cookie.
- **Headers**: a strict Content-Security-Policy (no inline script or style, nothing from
  other origins, no framing), ``nosniff``, no referrer, and no caching of pages.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from collections.abc import Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import LOGGING_CONFIG

from lumbar import __version__
from lumbar.errors import AccessError
from lumbar.operations.context import Clock, Context, utc_now
from lumbar.web import admin, api, consent, enrolment, followup, pages, records, report, survey
from lumbar.web.base import (
    HERE,
    SECOND_FACTOR_PAGE,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    CsrfRefusedError,
    NotFoundError,
    SecondFactorDueError,
    SignInNeededError,
    refused,
    render,
    sign_in_url,
    templates,
)

if TYPE_CHECKING:
    from argon2 import PasswordHasher

__all__ = ["SurveyTokenFilter", "create_app", "from_environment", "server_log_config"]


def create_app(
    url: str | None,
    *,
    key_file: Path | None = None,
    secure_cookies: bool = False,
    clock: Clock = utc_now,
    password_hasher: PasswordHasher | None = None,
    reports_dir: Path | None = None,
    messages: Path | None = None,
    wording: Sequence[Path] = (),
    consent_documents: Path | None = None,
) -> FastAPI:
    """The application for the trial at ``url`` (the embedded SQLite trial by default).

    The trial is opened once, for the application's life (so a restore sees it in use).
    ``secure_cookies``: the application is served over HTTPS (behind a reverse proxy), so
    the session cookie is marked Secure and browsers are told to keep to HTTPS.
    ``reports_dir``: where trial reports made in the browser are kept, one folder for
    each member of staff (default: beside a SQLite trial's file, else in the system's
    temporary folder; every worker process must see the same folder).
    ``messages``: the participants' pages' message catalogue in another language (a file
    with the keys of lumbar's ``messages/en.yaml``); ``wording``: licensed wording files
    whose item texts those pages show (lumbar's own labels otherwise);
    ``consent_documents``: the folder of the consent document files the protocol declares
    (default: lumbar's own example documents, for the reference protocol).
    ``clock`` and ``password_hasher`` are for tests (a clock they move, cheap hashing).
    """
    context = Context.open(url, key_file=key_file, clock=clock, password_hasher=password_hasher)
    context.consent_documents = consent_documents

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        yield
        context.close()

    app = FastAPI(
        title="lumbar",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.context = context
    app.state.secure_cookies = secure_cookies
    app.state.templates = templates()
    app.state.reports_dir = report.reports_dir_for(context.db.url, reports_dir)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    app.add_middleware(_SecurityHeaders, secure_cookies=secure_cookies)

    @app.exception_handler(SignInNeededError)
    async def sign_in_needed(request: Request, error: SignInNeededError) -> Response:
        response = RedirectResponse(sign_in_url(request, error.reason), status_code=303)
        if error.reason is not None:
            response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.exception_handler(SecondFactorDueError)
    async def second_factor_due(_request: Request, _error: SecondFactorDueError) -> Response:
        return RedirectResponse(SECOND_FACTOR_PAGE, status_code=303)

    @app.exception_handler(CsrfRefusedError)
    async def csrf_refused(request: Request, _error: CsrfRefusedError) -> Response:
        return render(
            request,
            "error.html",
            {
                "title": "Form expired",
                "message": "This form could not be accepted: it is out of date or was not "
                "sent from this site. Go back, reload the page and send it again.",
            },
            status_code=403,
        )

    @app.exception_handler(AccessError)
    async def not_allowed(request: Request, error: AccessError) -> Response:
        # An operation refused the signed-in user (role, blinding, permission): nothing
        # was written. A participant they may not see is "unknown" instead (a 404).
        return render(
            request,
            "error.html",
            {
                "title": "Not allowed",
                "message": "Your role may not do this.",
                "errors": refused(error),
            },
            status_code=403,
        )

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, _error: NotFoundError) -> Response:
        return render(
            request,
            "error.html",
            {"title": "Not found", "message": "There is nothing here that you may see."},
            status_code=404,
        )

    @app.exception_handler(404)
    async def no_route(request: Request, _error: Exception) -> Response:
        return render(
            request,
            "error.html",
            {"title": "Not found", "message": "There is nothing here that you may see."},
            status_code=404,
        )

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)  # no icon: answered, so no browser logs a 404

    app.mount(api.API_PREFIX, api.create_api(context))
    app.include_router(pages.router)
    app.include_router(enrolment.router)
    app.include_router(consent.router)
    app.include_router(records.router)
    app.include_router(followup.router)
    app.include_router(admin.router)
    app.include_router(report.router)
    survey.install(app, messages=messages, wording=wording)
    return app


class _SecurityHeaders:
    """Adds the security headers to every response (a plain ASGI middleware: Starlette's
    ``BaseHTTPMiddleware`` would run each request in a task and streams of its own)."""

    def __init__(self, app: ASGIApp, *, secure_cookies: bool) -> None:
        self.app = app
        self.secure_cookies = secure_cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        page = not scope["path"].startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if page:
                    headers.setdefault("Cache-Control", "no-store")
                if self.secure_cookies:
                    headers.setdefault(
                        "Strict-Transport-Security", "max-age=31536000; includeSubDomains"
                    )
            await send(message)

        await self.app(scope, receive, send_with_headers)


class SurveyTokenFilter(logging.Filter):
    """Keeps participants' survey tokens out of the server's log: the access log names every
    path, and a survey link's path is the token (``/survey/lms_...``); it is logged as its
    non-secret prefix, as staff pages show it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SURVEY_TOKEN.sub(_prefix, arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _SURVEY_TOKEN.sub(_prefix, record.msg)
        return True


_SURVEY_TOKEN = re.compile(r"(lms_[A-Za-z0-9_-]{8})[A-Za-z0-9_-]+")


def _prefix(found: re.Match[str]) -> str:
    return found.group(1) + "..."


def server_log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with :class:`SurveyTokenFilter` on its handlers (given
    to every worker process, so each filters its own log)."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["survey_tokens"] = {"()": "lumbar.web.app.SurveyTokenFilter"}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("survey_tokens")
    return config


def from_environment() -> FastAPI:
    """The application ``lumbar serve`` starts in each worker process (uvicorn's factory):
    the trial and settings it was given, passed through the environment."""
    key_file = os.environ.get("LUMBAR_SERVE_KEY_FILE")
    reports = os.environ.get("LUMBAR_SERVE_REPORTS")
    messages = os.environ.get("LUMBAR_SERVE_MESSAGES")
    wording = os.environ.get("LUMBAR_SERVE_WORDING")
    documents = os.environ.get("LUMBAR_SERVE_CONSENT_DOCUMENTS")
    return create_app(
        os.environ.get("LUMBAR_SERVE_DB") or None,
        key_file=Path(key_file) if key_file else None,
        secure_cookies=bool(os.environ.get("LUMBAR_SERVE_HTTPS")),
        reports_dir=Path(reports) if reports else None,
        messages=Path(messages) if messages else None,
        wording=[Path(path) for path in wording.split(os.pathsep)] if wording else (),
        consent_documents=Path(documents) if documents else None,
    )
