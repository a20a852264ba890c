"""Enrolment pages: screening, consent, enrolment, identifiers, randomization, leaving.

Each page calls one operation as the signed-in member of staff and shows what it
returns; the operations decide who may do what (a refusal for the role is the 403
page, a participant of another site is 404 like one who does not exist). What this
module does itself is only what a browser needs: turning form strings into the types
the operations take, and putting each refusal beside the field it is about.

Three pages answer a POST with the page itself rather than a redirect, because what
they show must not sit behind a URL that can be reloaded or prefetched: opening a
person's identifiers (each opening is audited) and the arm revealed by an emergency
unblinding (shown once, to the one user who broke the blind).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from lumbar.errors import AnswerError, OperationError
from lumbar.operations.enrolment import ParticipantView
from lumbar.operations.vocabulary import WITHDRAWAL_KINDS
from lumbar.protocol.model import Question
from lumbar.web.base import (
    CheckedForm,
    Page,
    SignedIn,
    form_refusal,
    found,
    render,
)
from lumbar.web.consent import consent_values

__all__ = ["router"]

router = APIRouter()

UNDERSTOOD = "I understand that breaking the blind is recorded and reported"


# ---------------------------------------------------------------------- screening


@router.get("/screening/new")
def screening_form(request: Request, page: SignedIn) -> Response:
    page.trial.authorize("screen")
    return _screening_page(request, page, {}, [])


@router.post("/screening/new")
def screening_post(request: Request, form: CheckedForm, page: SignedIn) -> Response:
    answers = _answers(page, form)
    try:
        view = page.trial.screen(form.get("site", ""), answers)
    except (OperationError, AnswerError) as error:
        return _screening_page(request, page, form, form_refusal(error), status_code=422)
    return _redirect(f"/participants/{view.screening_number}/screening")


@router.get("/participants/{reference}/screening")
def screening_outcome(reference: str, request: Request, page: SignedIn) -> Response:
    view = _read(page.trial.screening, reference)
    return _outcome_page(request, page, reference, view, {}, [])


@router.post("/participants/{reference}/screening")
def screening_update(
    reference: str, request: Request, form: CheckedForm, page: SignedIn
) -> Response:
    answers = _answers(page, form)
    given = {question: value for question, value in answers.items() if value is not None}
    try:
        page.trial.update_screening(reference, given, form.get("reason", ""))
    except (OperationError, AnswerError) as error:
        view = _read(page.trial.screening, reference)
        return _outcome_page(
            request, page, reference, view, form, form_refusal(error), status_code=422
        )
    return _redirect(f"/participants/{reference}/screening")


def _answers(page: Page, form: Mapping[str, str]) -> dict[str, Any]:
    """The form's answers in the types the questions take (None: not answered).

    A number that does not parse is passed on as the text typed, so the operation
    refuses it with its own words, at its question.
    """
    answers: dict[str, Any] = {}
    for question in page.trial.protocol.eligibility.questions:
        text = form.get(f"q_{question.id}", "").strip()
        answers[question.id] = _answer(question, text)
    return answers


def _answer(question: Question, text: str) -> Any:
    if not text:
        return None
    if question.type == "yes_no":
        return {"yes": True, "no": False}.get(text, text)
    if question.type == "choice":
        return text
    try:
        number = float(text)
    except ValueError:
        return text
    if question.type == "integer" and math.isfinite(number) and number.is_integer():
        return int(number)
    return number


def _screening_page(
    request: Request,
    page: Page,
    form: Mapping[str, str],
    errors: list[dict[str, str]],
    *,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "enrolment_screening.html",
        {
            "title": "Screen someone",
            "questions": page.trial.protocol.eligibility.questions,
            "sites": page.trial.sites(),
            "form": dict(form),
            "errors": errors,
        },
        page=page,
        status_code=status_code,
    )


def _outcome_page(
    request: Request,
    page: Page,
    reference: str,
    view: Any,
    form: Mapping[str, str],
    errors: list[dict[str, str]],
    *,
    status_code: int = 200,
) -> Response:
    questions = page.trial.protocol.eligibility.questions
    labels = {question.id: question.label for question in questions}
    shown = dict(form) or {
        f"q_{question}": _as_form_text(value) for question, value in view.answers.items()
    }
    return render(
        request,
        "enrolment_outcome.html",
        {
            "title": f"Screening of {view.screening_number}",
            "reference": reference,
            "screening": view,
            "unanswered": [labels.get(question, question) for question in view.unanswered],
            "questions": questions,
            "form": shown,
            "errors": errors,
        },
        page=page,
        status_code=status_code,
    )


def _as_form_text(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


# ---------------------------------------------------------------------- consent, enrolment


@router.get("/participants/{reference}/consent")
def consent_form(reference: str, request: Request, page: SignedIn) -> Response:
    view = _participant(page, reference)
    page.trial.authorize("consent")
    today = page.trial.clock().date()
    form = {"version": _consent_version(page), "consent_date": today.isoformat()}
    return _form_page(
        request, page, "enrolment_consent.html", view, form, [], extra=consent_values(page)
    )


@router.post("/participants/{reference}/consent")
def consent_post(reference: str, request: Request, form: CheckedForm, page: SignedIn) -> Response:
    view = _participant(page, reference)
    consent_date, wrong = _date(form, "consent_date", "the date consent was given")
    try:
        if consent_date is None:
            return _form_page(
                request,
                page,
                "enrolment_consent.html",
                view,
                form,
                wrong,
                422,
                extra=consent_values(page),
            )
        page.trial.consent(reference, form.get("version", ""), consent_date)
    except OperationError as error:
        return _form_page(
            request,
            page,
            "enrolment_consent.html",
            view,
            form,
            form_refusal(error),
            422,
            extra=consent_values(page),
        )
    return _redirect(f"/participants/{reference}")


def _consent_version(page: Page) -> str:
    """The consent form version the protocol names, when it names one: the consent
    document in effect today, when it declares consent documents."""
    plan = page.trial.protocol.consent
    current = plan.current(page.trial.clock().date()) if plan is not None else None
    if current is not None:
        return current.version
    return str(getattr(page.trial.protocol.trial, "consent_version", "") or "")


@router.post("/participants/{reference}/enrol")
def enrol_post(reference: str, request: Request, form: CheckedForm, page: SignedIn) -> Response:
    try:
        study_id = page.trial.enrol(reference)
    except OperationError as error:
        return render(
            request,
            "error.html",
            {
                "title": "Not enrolled",
                "message": "Enrolment was refused.",
                "errors": form_refusal(error),
            },
            page=page,
            status_code=422,
        )
    return _redirect(f"/participants/{study_id}")


# ---------------------------------------------------------------------- identifiers


@router.get("/participants/{reference}/identity")
def identity_form(reference: str, request: Request, page: SignedIn) -> Response:
    view = _participant(page, reference)
    page.trial.authorize("identity")
    return _form_page(request, page, "enrolment_identity.html", view, {}, [])


@router.post("/participants/{reference}/identity")
def identity_post(reference: str, request: Request, form: CheckedForm, page: SignedIn) -> Response:
    view = _participant(page, reference)
    birth_date, wrong = _date(form, "birth_date", "the date of birth", required=False)
    if wrong:
        return _form_page(request, page, "enrolment_identity.html", view, form, wrong, 422)
    try:
        page.trial.record_identity(
            reference,
            name=form.get("name", "").strip() or None,
            contact=form.get("contact", "").strip() or None,
            birth_date=birth_date,
        )
    except OperationError as error:
        return _form_page(
            request, page, "enrolment_identity.html", view, form, form_refusal(error), 422
        )
    return _redirect(f"/participants/{reference}/identity?recorded=1")


@router.post("/participants/{reference}/identity/open")
def identity_open(reference: str, request: Request, form: CheckedForm, page: SignedIn) -> Response:
    view = _participant(page, reference)
    identity = _read(page.trial.identity, reference)
    return render(
        request,
        "enrolment_identity.html",
        {
            "title": "Identifiers",
            "participant": view,
            "form": {},
            "errors": [],
            "at": {},
            "identity": identity,
            "recorded": False,
        },
        page=page,
    )


# ---------------------------------------------------------------------- randomization


@router.get("/participants/{reference}/randomize")
def randomize_confirm(reference: str, request: Request, page: SignedIn) -> Response:
    view = _participant(page, reference)
    page.trial.authorize("randomize")
    return _form_page(request, page, "enrolment_randomize.html", view, {}, [])


@router.post("/participants/{reference}/randomize")
def randomize_post(reference: str, request: Request, form: CheckedForm, page: SignedIn) -> Response:
    view = _participant(page, reference)
    try:
        assignment = page.trial.randomize(reference)
    except (OperationError, AnswerError) as error:
        return _form_page(
            request, page, "enrolment_randomize.html", view, form, form_refusal(error), 422
        )
    return _redirect(f"/participants/{assignment.study_id}")


@router.get("/participants/{reference}/assignment")
def assignment_page(reference: str, request: Request, page: SignedIn) -> Response:
    view = _participant(page, reference)
    assignment = _read(page.trial.assignment, reference)
    arm = None
    if assignment.arm is not None:  # shown only when the operation showed it
        arm = page.trial.protocol.arm(assignment.arm)
    return render(
        request,
        "enrolment_assignment.html",
        {"title": "Randomization", "participant": view, "assignment": assignment, "arm": arm},
        page=page,
    )


# ---------------------------------------------------------------------- leaving the trial


@router.get("/participants/{reference}/withdraw")
def withdraw_form(reference: str, request: Request, page: SignedIn) -> Response:
    view = _participant(page, reference)
    page.trial.authorize("withdraw")
    form = {"effective_date": page.trial.clock().date().isoformat()}
    return _form_page(request, page, "enrolment_withdraw.html", view, form, [])


@router.post("/participants/{reference}/withdraw")
def withdraw_post(reference: str, request: Request, form: CheckedForm, page: SignedIn) -> Response:
    view = _participant(page, reference)
    effective, wrong = _date(form, "effective_date", "the date it took effect")
    if effective is None:
        return _form_page(request, page, "enrolment_withdraw.html", view, form, wrong, 422)
    try:
        page.trial.withdraw(reference, form.get("kind", ""), form.get("reason", ""), effective)
    except OperationError as error:
        return _form_page(
            request, page, "enrolment_withdraw.html", view, form, form_refusal(error), 422
        )
    return _redirect(f"/participants/{reference}")


# ---------------------------------------------------------------------- emergency unblinding


@router.get("/participants/{reference}/unblind")
def unblind_form(reference: str, request: Request, page: SignedIn) -> Response:
    view = _participant(page, reference)
    page.trial.authorize("emergency_unblind")
    return _form_page(request, page, "enrolment_unblind.html", view, {}, [])


@router.post("/participants/{reference}/unblind")
def unblind_post(reference: str, request: Request, form: CheckedForm, page: SignedIn) -> Response:
    view = _participant(page, reference)
    if form.get("understood") != "yes":
        # The browser's own confirmation, before the operation's: nothing is sent.
        page.trial.authorize("emergency_unblind")
        wrong = [{"where": "understood", "rule": "tick the box to confirm", "hint": UNDERSTOOD}]
        return _form_page(request, page, "enrolment_unblind.html", view, form, wrong, 422)
    try:
        arm = page.trial.unblind(reference, form.get("reason", ""), confirm=form.get("confirm", ""))
    except OperationError as error:
        return _form_page(
            request, page, "enrolment_unblind.html", view, form, form_refusal(error), 422
        )
    return render(
        request,
        "enrolment_unblinded.html",
        {"title": "Unblinded", "participant": view, "arm": page.trial.protocol.arm(arm)},
        page=page,
    )


# ---------------------------------------------------------------------- shared


def _participant(page: Page, reference: str) -> ParticipantView:
    """The participant the URL names, among those the operations show this user."""
    view: ParticipantView = _read(page.trial.participant, reference)
    return view


def _read(operation: Any, reference: str) -> Any:
    """A read operation on the participant the URL names (an unknown one: a 404)."""
    with found():
        return operation(reference)


def _date(
    form: Mapping[str, str], name: str, what: str, *, required: bool = True
) -> tuple[dt.date | None, list[dict[str, str]]]:
    """A date field (YYYY-MM-DD, as a browser's date input sends it)."""
    text = form.get(name, "").strip()
    if not text:
        if not required:
            return None, []
        return None, [{"where": name, "rule": "must be given", "hint": f"give {what}"}]
    try:
        return dt.date.fromisoformat(text), []
    except ValueError:
        return None, [{"where": name, "rule": "is not a date", "hint": "give it as YYYY-MM-DD"}]


def _form_page(
    request: Request,
    page: Page,
    template: str,
    view: ParticipantView,
    form: Mapping[str, str],
    errors: list[dict[str, str]],
    status_code: int = 200,
    *,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    return render(
        request,
        template,
        {
            "participant": view,
            "form": dict(form),
            "errors": errors,
            "kinds": WITHDRAWAL_KINDS,
            "strata": page.trial.protocol.randomization.strata,
            "identity": None,
            "recorded": request.query_params.get("recorded") == "1",
            "understood": UNDERSTOOD,
            **(extra or {}),
        },
        page=page,
        status_code=status_code,
    )


def _redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303)
