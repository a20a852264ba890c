"""The staff pages: each calls operations as the signed-in member of staff and renders them.

Every route here either takes :func:`~lumbar.web.app.signed_in` (a page) or
:func:`~lumbar.web.app.checked_form` (a form post: signed in and CSRF-checked); only
the sign-in page takes neither. tests/web/test_security.py walks every route to hold
that.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from lumbar.errors import AccessError, OperationError
from lumbar.instruments import INSTRUMENTS, Instrument
from lumbar.operations.authentication import SIGN_IN_FAILED
from lumbar.web.base import (
    SECOND_FACTOR_PAGE,
    CheckedForm,
    NotFoundError,
    Page,
    SignedIn,
    is_unknown,
    refused,
    render,
    set_sign_in_csrf,
    sign_in,
    sign_in_csrf,
    sign_out,
)

__all__ = ["router"]

router = APIRouter()


# ---------------------------------------------------------------------- signing in


@router.get("/sign-in")
def sign_in_page(
    request: Request, next: str = "/", ended: int = 0, signed_out: int = 0
) -> Response:
    value = sign_in_csrf(request)
    notice = None
    if ended:
        notice = "Your session has ended. Sign in again to go on."
    elif signed_out:
        notice = "You are signed out."
    response = render(
        request, "sign_in.html", {"next": next, "sign_in_csrf": value, "notice": notice}
    )
    set_sign_in_csrf(request, response, value)
    return response


@router.post("/sign-in")
def sign_in_post(
    request: Request,
    username: str = Form("", max_length=64),
    password: str = Form("", max_length=1024),
    code: str = Form("", max_length=16),
    csrf: str = Form("", max_length=128),
    next: str = Form("/", max_length=2048),
) -> Response:
    expected = request.cookies.get("lumbar_sign_in")
    if not expected or csrf != expected:
        value = sign_in_csrf(request)
        response = render(
            request,
            "sign_in.html",
            {
                "next": next,
                "sign_in_csrf": value,
                "notice": None,
                "errors": [
                    {
                        "where": "form",
                        "rule": "the sign-in form was out of date",
                        "hint": "send it again",
                    }
                ],
                "username": username,
            },
            status_code=403,
        )
        set_sign_in_csrf(request, response, value)
        return response
    try:
        return sign_in(request, username.strip(), password, code.strip(), next)
    except AccessError as error:
        value = sign_in_csrf(request)
        response = render(
            request,
            "sign_in.html",
            {
                "next": next,
                "sign_in_csrf": value,
                "notice": None,
                "errors": refused(error) if error.problems else [{"rule": SIGN_IN_FAILED}],
                "username": username,
            },
            status_code=401,
        )
        set_sign_in_csrf(request, response, value)
        return response


@router.post("/sign-out")
def sign_out_post(request: Request, _form: CheckedForm) -> Response:
    return sign_out(request)


# ---------------------------------------------------------------------- dashboard


@router.get("/")
def dashboard(request: Request, page: SignedIn) -> Response:
    trial = page.trial
    today = trial.clock().date()
    by_site = {site: Counter(counts) for site, counts in trial.participant_counts().items()}
    by_status = sum(by_site.values(), Counter[str]())
    visits = trial.due(on=today)
    progress = trial.progress(on=today)
    events: list[Any] | None
    try:
        events = [event for event in trial.adverse_events() if event.outcome != "resolved"]
    except AccessError:
        events = None  # the role may not see them (they could reveal the arm)
    waiting = trial.notifications(waiting=True) if page.may("notifications") else None
    reconsent = (
        trial.reconsent_due()
        if page.may("consent") and trial.protocol.consent is not None
        else None
    )
    return render(
        request,
        "dashboard.html",
        {
            "today": today,
            "me": page.me,
            "counts": by_status,
            "by_site": sorted(by_site.items()),
            "visits": sorted(visits, key=lambda visit: (visit.closes, visit.study_id)),
            "progress": progress,
            "statuses": VISIT_STATUSES,
            "events": events,
            "serious": None if events is None else [event for event in events if event.serious],
            "notifications": waiting,
            "reconsent": reconsent,
            "planned": trial.protocol.trial.planned_participants,
        },
        page=page,
    )


VISIT_STATUSES = ("complete", "due", "overdue", "missed", "upcoming", "withdrawn")
"""The columns of the dashboard's follow-up table, in the order a coordinator reads them."""


# ---------------------------------------------------------------------- participants


@router.get("/participants")
def participants(request: Request, page: SignedIn) -> Response:
    return render(
        request,
        "participants.html",
        {"participants": page.trial.participants()},
        page=page,
    )


@router.get("/participants/{reference}")
def participant(reference: str, request: Request, page: SignedIn, revoked: str = "") -> Response:
    notice = None
    if revoked in {visit.id for visit in page.trial.protocol.follow_up_visits}:
        notice = f"The link to {revoked.replace('_', ' ')} is revoked: it opens nothing now."
    return participant_page(request, page, reference, notice=notice)


def participant_page(
    request: Request,
    page: Page,
    reference: str,
    *,
    errors: list[dict[str, str]] | None = None,
    failed: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    """The participant page (``errors``: a refused form of it, named by ``failed``)."""
    trial = page.trial
    try:
        view = trial.participant(reference)
    except OperationError as error:
        if is_unknown(error):
            raise NotFoundError() from None
        raise
    schedule: list[Any] = []
    if view.study_id is not None:
        try:
            schedule = trial.schedule(view.study_id)
        except OperationError as error:
            if is_unknown(error):
                raise NotFoundError() from None
            raise
    consents = trial.consents(reference)
    return render(
        request,
        "participant.html",
        {
            "participant": view,
            "schedule": schedule,
            "today": trial.clock().date(),
            "consents": consents,
            "consent_due": _consent_due(page, view, consents),
            "errors": errors or [],
            "failed": failed,
            "notice": notice,
            **(_records(page, view.study_id) if view.study_id is not None else {"records": None}),
            **_follow_up(page, view.study_id, schedule, failed),
        },
        page=page,
        status_code=status_code,
    )


def _consent_due(page: Page, view: Any, consents: list[Any]) -> str | None:
    """The consent version in effect, when this enrolled participant in follow-up has
    consented only to older ones and the user may record consent; else None."""
    plan = page.trial.protocol.consent
    if plan is None or not consents or not page.may("consent"):
        return None
    if view.study_id is None or view.status in ("withdrew_consent", "lost_to_follow_up"):
        return None
    current = plan.current(page.trial.clock().date())
    versions = plan.versions()
    latest = consents[-1].version
    if current is None or latest not in versions:
        return None
    return current.version if versions.index(latest) < versions.index(current.version) else None


ONE_DAY = dt.timedelta(days=1)
"""A link expires at the midnight after its last day."""
LINK_ISSUABLE = ("due", "overdue")
"""The visit statuses for which the participant page offers a survey link: its window is
open (``lumbar invite show`` issues one ahead of it, to open with the window)."""

MESSAGE_WORDS = {"invitation": "invitation", "last": "last reminder"}
CHANNEL_WORDS = {"email": "e-mail", "sms": "text message"}


def message_words(message: str) -> str:
    """``reminder_2`` is "reminder 2", ``last`` "last reminder"."""
    return MESSAGE_WORDS.get(message, message.replace("_", " "))


def message_status(view: Any) -> str:
    """Where a participant's message stands, in words (no contact, no link)."""
    if view.status == "queued":
        return f"waiting to try again ({view.attempts} tried)" if view.attempts else "waiting"
    if view.status == "skipped":
        return f"not sent: {view.reason}" if view.reason else "not sent"
    if view.status == "failed":
        return f"failed after {view.attempts} attempts" + (
            f": {view.last_error}" if view.last_error else ""
        )
    return str(view.status)


def _follow_up(
    page: Page, study_id: str | None, schedule: list[Any], failed: str | None
) -> dict[str, Any]:
    """The participant page's survey links and messages (None: not shown to the role); a
    visit's link form is offered while a link can open it, and again beside its refusal."""
    if study_id is None or not schedule:
        return {"links": None, "outbox": None, "invite": (), "one_day": ONE_DAY}
    trial = page.trial
    links: list[Any] | None
    try:
        links = trial.survey_links(study_id)
    except AccessError:
        links = None
    outbox = [
        {
            "visit": view.visit,
            "message": message_words(view.message),
            "channel": CHANNEL_WORDS.get(view.channel, view.channel),
            "due_at": view.due_at,
            "sent_at": view.sent_at,
            "status": message_status(view),
        }
        for view in trial.participant_messages(study_id)
    ]
    invite: list[tuple[Any, Any]] = []
    if links is not None and page.may("questionnaire"):
        live = {link.visit: link for link in links if link.live}
        invite = [
            (visit, live.get(visit.visit))
            for visit in schedule
            if visit.status in LINK_ISSUABLE or failed == f"invite-{visit.visit}"
        ]
    return {"links": links, "outbox": outbox, "invite": invite, "one_day": ONE_DAY}


def _records(page: Page, study_id: str) -> dict[str, Any]:
    """What the participant page shows of what is recorded about them (lumbar.web.records);
    a section the role may not see is None, and the page says why."""
    trial = page.trial
    questionnaires: list[tuple[str, list[tuple[Instrument, Any]]]] | None = []
    try:
        recorded = {(view.visit, view.instrument): view for view in trial.questionnaires(study_id)}
        questionnaires = [
            (
                visit.id,
                [
                    (INSTRUMENTS.get(name), recorded.get((visit.id, name)))
                    for name in visit.instruments
                ],
            )
            for visit in trial.protocol.visits
        ]
    except AccessError:
        questionnaires = None
    plan: Any = None
    sessions: list[Any] | None = None
    sessions_note = None
    given: list[Any] = []
    try:
        plan = trial.treatment_plan(study_id)
        sessions = trial.sessions(study_id)
        if plan.planned and plan.ratings:  # ratings follow the sessions' visibility
            given = trial.given_ratings(study_id)
    except AccessError:
        sessions_note = "Treatment sessions are not shown to your role (they reveal the arm)."
    except OperationError as error:
        sessions_note = "No sessions yet: " + (
            error.problems[0].rule if error.problems else error.summary
        )
    events: list[Any] | None
    try:
        events = trial.adverse_events(study_id)
    except AccessError:
        events = None
    return {
        "records": True,
        "questionnaires": questionnaires,
        "plan": plan,
        "sessions": sessions,
        "sessions_note": sessions_note,
        "pending_ratings": sum(1 for rating in given if rating.status == "pending"),
        "phone_ratings": len(given),
        "events": events,
        "study_id": study_id,
    }


def _redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


# ---------------------------------------------------------------------- a second factor due


@router.get(SECOND_FACTOR_PAGE)
def second_factor_page(request: Request, page: SignedIn) -> Response:
    return render(request, "second_factor.html", {"enrolment": None, "errors": []}, page=page)


@router.post(SECOND_FACTOR_PAGE + "/start")
def second_factor_start(request: Request, form: CheckedForm, page: SignedIn) -> Response:
    del form
    try:
        enrolment = page.trial.enrol_totp()
    except OperationError as error:
        return render(
            request,
            "second_factor.html",
            {"enrolment": None, "errors": refused(error)},
            page=page,
            status_code=422,
        )
    return render(request, "second_factor.html", {"enrolment": enrolment, "errors": []}, page=page)


@router.post(SECOND_FACTOR_PAGE + "/confirm")
def second_factor_confirm(request: Request, form: CheckedForm, page: SignedIn) -> Response:
    try:
        page.trial.confirm_totp(form.get("code", "").replace(" ", ""))
    except OperationError as error:
        return render(
            request,
            "second_factor.html",
            {"enrolment": None, "confirming": True, "errors": refused(error)},
            page=page,
            status_code=422,
        )
    return _redirect("/")
