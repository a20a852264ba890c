"""A participant's own pages: their survey link, answered on a phone.

::

    /survey/lms_...                   what is asked, and how far they are
    /survey/lms_.../rdq               one screen per questionnaire (saved when sent)
    /survey/lms_.../review            the answers, to check before sending
    /survey/lms_.../submit (POST)     sends them once, through Survey.submit
    /survey/thanks                    the thank-you page
    /rate/lmr_...                     the rating before today's treatment session
    /rate/lmr_... (POST)              gives it (again the same day: replaces it),
                                      through SessionRatingForm.give

The token in the address is the participant's only credential: every request
authenticates it again (:func:`~lumbar.operations.authentication.authenticate_survey`) and
goes through :class:`~lumbar.operations.survey.Survey`, which knows only that link's
participant and visit (a session-rating link goes through
:class:`~lumbar.operations.ratings.SessionRatingForm`, which knows only that participant
and today); no page shows an arm, another participant or a staff link. A link
that opens nothing (forged, revoked, used, not open yet, expired, closed) gets a page
saying so and changes nothing; forged links are counted per client address and, past
:data:`FAILED_LOOKUP_LIMIT` in :data:`FAILED_LOOKUP_PERIOD`, the address is answered 429
before any lookup.

Pages are plain HTML forms (no script) with large tap targets. Every text comes from a
:class:`~lumbar.messages.Catalogue` (English shipped as ``lumbar/messages/en.yaml``;
another language from a file with the same keys), item texts from the instrument
registry, or from licensed wording files the server was given
(:func:`lumbar.instruments.load_wording`), as everywhere else in lumbar.
"""

from __future__ import annotations

import collections
import datetime as dt
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from lumbar.errors import AnswerError, OperationError
from lumbar.instruments import INSTRUMENTS, Instrument, apply_wording, load_wording
from lumbar.messages import Catalogue
from lumbar.operations.authentication import (
    SurveyLinkRefusedError,
    authenticate_rating_link,
    authenticate_survey,
)
from lumbar.operations.context import Context
from lumbar.operations.ratings import RatingToday, SessionRatingForm
from lumbar.operations.survey import Survey, SurveyDue
from lumbar.web.base import NotFoundError, context_of, form_field
from lumbar.web.records import answer_value, shown_answer

__all__ = [
    "FAILED_LOOKUP_LIMIT",
    "FAILED_LOOKUP_PERIOD",
    "FailedLookups",
    "install",
    "router",
]

router = APIRouter()

FAILED_LOOKUP_LIMIT = 20
"""Forged links a client address may try in :data:`FAILED_LOOKUP_PERIOD` (a participant
mistyping their link a few times stays far below; a guesser of 128-bit tokens gains
nothing from 20 tries either way: the limit keeps the server's work bounded)."""
FAILED_LOOKUP_PERIOD = dt.timedelta(minutes=10)

_REFUSAL_WORDS = {
    "survey": "refused",
    "session_rating": "rating.refused",
    "consent": "consent.refused",
}
"""The catalogue's words for each kind of link that opens nothing (by the reason's key)."""

CHOICE_RANGE_LIMIT = 11
"""An integer item with at most this many values (a 0-10 rating) is offered as buttons to
tap rather than a number to type."""


class FailedLookups:
    """Forged links tried per client address, in one server process (each worker counts
    its own, so a server of N workers allows up to N times the limit)."""

    MAX_ADDRESSES = 10_000
    """Addresses remembered at most: the oldest is forgotten first (memory stays bounded)."""

    def __init__(
        self, limit: int = FAILED_LOOKUP_LIMIT, period: dt.timedelta = FAILED_LOOKUP_PERIOD
    ) -> None:
        self.limit = limit
        self.period = period
        self._failures: collections.OrderedDict[str, collections.deque[dt.datetime]] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()

    def blocked(self, address: str, now: dt.datetime) -> bool:
        with self._lock:
            failures = self._failures.get(address)
            if failures is None:
                return False
            while failures and failures[0] <= now - self.period:
                failures.popleft()
            return len(failures) >= self.limit

    def record(self, address: str, now: dt.datetime) -> None:
        with self._lock:
            failures = self._failures.setdefault(address, collections.deque())
            self._failures.move_to_end(address)
            failures.append(now)
            while len(failures) > self.limit:
                failures.popleft()
            while len(self._failures) > self.MAX_ADDRESSES:
                self._failures.popitem(last=False)


@dataclass
class SurveySite:
    """What the participant pages share: their texts, worded instruments, the rate limit."""

    catalogue: Catalogue
    worded: Mapping[str, Instrument] = field(default_factory=dict)
    failed: FailedLookups = field(default_factory=FailedLookups)

    def instrument(self, name: str) -> Instrument:
        return self.worded.get(name) or INSTRUMENTS.get(name)


class TooManyLookupsError(Exception):
    """A client address tried too many forged links lately (answered 429)."""


def install(app: FastAPI, *, messages: Path | None, wording: Sequence[Path]) -> None:
    """Add the participant pages to ``app``, with their catalogue and wording files."""
    worded = {}
    for path in wording:
        loaded = load_wording(path)
        worded[loaded.instrument] = apply_wording(INSTRUMENTS.get(loaded.instrument), loaded)
    app.state.survey = SurveySite(Catalogue.load(messages), worded)

    @app.exception_handler(SurveyLinkRefusedError)
    async def link_refused(request: Request, error: SurveyLinkRefusedError) -> Response:
        site = _site(request)
        if error.reason == "forged":
            site.failed.record(_address(request), context_of(request).now())
        day = error.day.isoformat() if error.day is not None else ""
        status = {"forged": 404, "not_open": 403}.get(error.reason, 410)
        key = f"{_REFUSAL_WORDS[error.link]}.{error.reason}"
        return _render(
            request,
            "survey_refused.html",
            {"message": site.catalogue.text(key, day=day)},
            status_code=status,
        )

    @app.exception_handler(TooManyLookupsError)
    async def too_many(request: Request, _error: TooManyLookupsError) -> Response:
        message = _site(request).catalogue.text("refused.too_many")
        response = _render(request, "survey_refused.html", {"message": message}, status_code=429)
        response.headers["Retry-After"] = str(int(FAILED_LOOKUP_PERIOD.total_seconds()))
        return response

    app.include_router(router)


def _site(request: Request) -> SurveySite:
    site: SurveySite = request.app.state.survey
    return site


def _address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _unless_blocked(request: Request) -> Context:
    """The trial's context, unless the client's address tried too many forged links."""
    context = context_of(request)
    if _site(request).failed.blocked(_address(request), context.now()):
        raise TooManyLookupsError()
    return context


def _survey(request: Request, token: str) -> Survey:
    """The survey the link opens (its refusal is the page that explains it)."""
    context = _unless_blocked(request)
    return Survey(context, authenticate_survey(context, token))


def _rating(request: Request, token: str) -> SessionRatingForm:
    """The rating form a session-rating link opens (the same refusals and rate limit)."""
    context = _unless_blocked(request)
    return SessionRatingForm(context, authenticate_rating_link(context, token))


def _render(
    request: Request, template: str, values: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    catalogue = _site(request).catalogue
    html = request.app.state.templates.get_template(template).render(
        {
            "t": catalogue.text,
            "language": catalogue.language,
            "synthetic": context_of(request).synthetic,
            **values,
        }
    )
    return HTMLResponse(html, status_code=status_code)


def _redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def _next_screen(token: str, due: SurveyDue) -> str:
    unanswered = [name for name in due.instruments if name not in due.saved]
    return f"/survey/{token}/{unanswered[0]}" if unanswered else f"/survey/{token}/review"


def _steps(request: Request, due: SurveyDue) -> list[dict[str, Any]]:
    site = _site(request)
    return [
        {"name": name, "title": site.instrument(name).title, "saved": name in due.saved}
        for name in due.instruments
    ]


@router.get("/survey/thanks")
def thanks_page(request: Request) -> Response:
    return _render(request, "survey_thanks.html", {})


@router.get("/survey/{token}")
def start_page(token: str, request: Request) -> Response:
    survey = _survey(request, token)
    due = survey.open()
    last_day = due.expires_at - dt.timedelta(days=1)
    return _render(
        request,
        "survey_start.html",
        {
            "token": token,
            "steps": _steps(request, due),
            "answered": len(due.saved),
            "closes": last_day.date().isoformat(),
            "next": _next_screen(token, due),
        },
    )


def _items(instrument: Instrument, text: Any) -> list[dict[str, Any]]:
    """The instrument's items as a participant's screen shows them."""
    rows = []
    for item in instrument.items:
        response = item.response
        condition = ""
        if item.only_if is not None:
            gate = instrument.item(item.only_if.item)
            answer = str(item.only_if.equals)
            if gate.response.kind == "choice":
                answer = gate.response.option_label(item.only_if.equals)
            condition = text("form.only_if", gate=instrument.text_of(gate.id), answer=answer)
        options: list[tuple[str, str]] = []
        hint = ""
        if response.kind == "choice":
            options = [(str(option.code), option.label) for option in response.options]
        else:
            low, high = shown_answer(response.minimum), shown_answer(response.maximum)
            whole = response.kind == "integer"
            hint = text("form.range" if whole else "form.range_decimal", low=low, high=high)
            if response.low_anchor and response.high_anchor:
                hint += " " + text(
                    "form.anchors",
                    low=low,
                    high=high,
                    low_anchor=response.low_anchor,
                    high_anchor=response.high_anchor,
                )
            span = (response.maximum or 0) - (response.minimum or 0)
            if whole and span + 1 <= CHOICE_RANGE_LIMIT:
                first = int(response.minimum or 0)
                options = [
                    (str(value), str(value)) for value in range(first, first + int(span) + 1)
                ]
        rows.append(
            {
                "id": item.id,
                "label": instrument.text_of(item.id),
                "kind": response.kind,
                "options": options,
                "hint": hint,
                "condition": condition,
            }
        )
    return rows


def _form(
    request: Request,
    token: str,
    due: SurveyDue,
    name: str,
    values: Mapping[str, str],
    problems: frozenset[str] = frozenset(),
    general: bool = False,
) -> Response:
    site = _site(request)
    instrument = site.instrument(name)
    return _render(
        request,
        "survey_form.html",
        {
            "token": token,
            "instrument": instrument,
            "items": _items(instrument, site.catalogue.text),
            "values": values,
            "problems": problems,
            "general": general or bool(problems),
            "number": due.instruments.index(name) + 1,
            "total": len(due.instruments),
        },
        status_code=422 if problems or general else 200,
    )


@router.get("/survey/{token}/review")
def review_page(token: str, request: Request) -> Response:
    due = _survey(request, token).due()
    site = _site(request)
    screens = []
    for name in due.instruments:
        instrument = site.instrument(name)
        saved = due.saved.get(name)
        answers = []
        for item in instrument.items:
            if saved is None:
                break
            value = saved.get(item.id)
            shown = "" if value is None else shown_answer(value)
            if value is not None and item.response.kind == "choice":
                shown = item.response.option_label(value)
            answers.append((instrument.text_of(item.id), shown))
        screens.append({"name": name, "title": instrument.title, "answers": answers})
    return _render(
        request,
        "survey_review.html",
        {
            "token": token,
            "screens": screens,
            "complete": all(name in due.saved for name in due.instruments),
        },
    )


@router.post("/survey/{token}/submit")
def submit(token: str, request: Request) -> Response:
    # The answers saved are read and recorded in one transaction (Survey.submit_saved).
    if _survey(request, token).submit_saved() is None:
        return _redirect(f"/survey/{token}/review")
    return _redirect("/survey/thanks")


@router.get("/survey/{token}/{name}")
def form_page(token: str, name: str, request: Request) -> Response:
    due = _survey(request, token).due()
    if name not in due.instruments:
        raise NotFoundError()
    saved = due.saved.get(name, {})
    values = {item: "" if value is None else shown_answer(value) for item, value in saved.items()}
    return _form(request, token, due, name, values)


async def _posted(request: Request) -> dict[str, str]:
    """A participant's form: no CSRF token, since the link's secret is in the address
    (another site cannot post to it without knowing the link)."""
    return {key: value for key, value in (await request.form()).items() if isinstance(value, str)}


Posted = Annotated[dict[str, str], Depends(_posted)]


@router.post("/survey/{token}/{name}")
def form_post(token: str, name: str, request: Request, form: Posted) -> Response:
    survey = _survey(request, token)
    if name not in context_of(request).protocol.visit(survey.principal.visit).instruments:
        raise NotFoundError()
    instrument = _site(request).instrument(name)
    values = {item.id: str(form.get(f"answer_{item.id}", "")) for item in instrument.items}
    try:
        due = survey.save(name, {item: answer_value(text) for item, text in values.items()})
    except (AnswerError, OperationError) as error:
        if isinstance(error, SurveyLinkRefusedError):
            raise
        # Only a refusal reads what is due again: to tell a screen not due (404) from
        # answers refused at their items.
        due = survey.due()
        if name not in due.instruments:
            raise NotFoundError() from None
        items = {item.id for item in instrument.items}
        named = frozenset(form_field(problem.where) for problem in error.problems) & items
        return _form(request, token, due, name, values, named, general=True)
    return _redirect(_next_screen(token, due))


# ---------------------------------------------------------------- rating before a session


def _rating_page(
    request: Request,
    token: str,
    today: RatingToday,
    values: Mapping[str, str],
    problems: frozenset[str] = frozenset(),
    general: bool = False,
) -> Response:
    """Today's rating form: one 0-10 question per rating the protocol declares, the
    instrument's own item text and anchors, as buttons to tap."""
    site = _site(request)
    questions = []
    for name in today.instruments:
        (item,) = _items(site.instrument(name), site.catalogue.text)[:1]
        questions.append({**item, "id": name})
    last_day = today.expires_at - dt.timedelta(days=1)
    return _render(
        request,
        "rating_form.html",
        {
            "token": token,
            "questions": questions,
            "values": values,
            "problems": problems,
            "general": general or bool(problems),
            "given": today.given is not None,
            "logged": today.session_logged,
            "day": today.day.isoformat(),
            "closes": last_day.date().isoformat(),
        },
        status_code=422 if problems or general else 200,
    )


@router.get("/rate/{token}")
def rating_page(token: str, request: Request) -> Response:
    today = _rating(request, token).open()
    values = {name: str(value) for name, value in (today.given or {}).items()}
    return _rating_page(request, token, today, values)


@router.post("/rate/{token}")
def rating_post(token: str, request: Request, form: Posted) -> Response:
    rating = _rating(request, token)
    today = rating.today()
    values = {name: str(form.get(f"rating_{name}", "")).strip() for name in today.instruments}
    given = {name: answer_value(text) for name, text in values.items() if text}
    try:
        rating.give(given)
    except OperationError as error:
        if isinstance(error, SurveyLinkRefusedError):
            raise
        named = frozenset(
            form_field(problem.where).removeprefix("rating_") for problem in error.problems
        )
        return _rating_page(
            request, token, rating.today(), values, named & set(today.instruments), general=True
        )
    return _redirect(f"/rate/{token}")
