"""Electronic consent pages: at the site on a staff device, and on the participant's phone.

::

    /participants/{ref}/consent/electronic (POST)   the site's e-consent (the consent page
                                                    shows the document and this form)
    /consent/due                                    who must consent again, with a button
    /participants/{ref}/consent/link (POST)         issues a consent link, shown once
    /consent/{token}                                the phone: the document, the questions,
                                                    the typed name (POST sends it once)
    /consent/thanks                                 the thank-you page

The staff pages call :class:`~lumbar.operations.Trial` as the signed-in member of staff;
the phone pages go through :class:`~lumbar.operations.consent.ConsentLink`, which knows
only the link's participant and version, with texts from the participant message
catalogue (``consent.*`` keys). A link that opens nothing gets the survey pages' refusal
page, worded for consent, and changes nothing. The typed name is never put back into a
page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from lumbar.errors import LumbarError, OperationError
from lumbar.operations.consent import ConsentText
from lumbar.operations.consent_link import ConsentLink, authenticate_consent
from lumbar.operations.enrolment import ParticipantView
from lumbar.web.base import (
    CheckedForm,
    Page,
    SignedIn,
    context_of,
    form_refusal,
    found,
    render,
)
from lumbar.web.survey import Posted, TooManyLookupsError, _address, _render, _site

__all__ = [
    "answers_from_form",
    "consent_document_for",
    "consent_values",
    "paragraphs",
    "router",
]

router = APIRouter()


def _participant(page: Page, reference: str) -> ParticipantView:
    with found():
        return page.trial.participant(reference)


def consent_values(page: Page) -> dict[str, Any]:
    """What the consent page shows of electronic consent (nothing when the protocol
    declares no consent documents)."""
    document, unavailable = consent_document_for(page)
    return {
        "document": document,
        "paragraphs": paragraphs(document.text) if document else [],
        "unavailable": unavailable,
        "econsent": {},
    }


def paragraphs(text: str) -> list[str]:
    """A document's paragraphs (separated by blank lines), each shown as written."""
    return [block.strip() for block in text.replace("\r\n", "\n").split("\n\n") if block.strip()]


def answers_from_form(document: ConsentText, form: Mapping[str, str]) -> dict[str, Any]:
    """The yes/no radio buttons ``q_<id>`` as the operation takes them (absent: unanswered)."""
    answers: dict[str, Any] = {}
    for question in document.questions:
        value = form.get(f"q_{question.id}", "")
        if value in ("yes", "no"):
            answers[question.id] = value == "yes"
    return answers


def consent_document_for(page: Page) -> tuple[ConsentText | None, str | None]:
    """The document in effect for the consent page, or why it cannot be shown."""
    if page.trial.protocol.consent is None:
        return None, None
    try:
        return page.trial.consent_document(), None
    except OperationError as error:
        problem = error.problems[0] if error.problems else None
        detail = f"{problem.rule} ({problem.hint})" if problem and problem.hint else error.summary
        return None, f"{error.summary}: {detail}"


def _errors(error: LumbarError, document: ConsentText | None) -> list[dict[str, str]]:
    """Refusals at their fields: a question's problem at its radio group ``q_<id>``."""
    ids = {question.id for question in document.questions} if document else set()
    return [
        {**shown, "where": f"q_{shown['where']}" if shown["where"] in ids else shown["where"]}
        for shown in form_refusal(error)
    ]


# ---------------------------------------------------------------------- the site


@router.post("/participants/{reference}/consent/electronic")
def electronic_post(
    reference: str, request: Request, form: CheckedForm, page: SignedIn
) -> Response:
    view = _participant(page, reference)
    document, unavailable = consent_document_for(page)
    errors: list[dict[str, str]]
    if document is None:
        errors = [{"where": "econsent", "rule": unavailable or "no electronic consent", "hint": ""}]
    else:
        try:
            page.trial.record_electronic_consent(
                reference,
                form.get("version", ""),
                answers_from_form(document, form),
                form.get("typed_name", ""),
            )
        except OperationError as error:
            errors = _errors(error, document)
        else:
            return RedirectResponse(f"/participants/{reference}", status_code=303)
    shown = {key: value for key, value in form.items() if key != "typed_name"}
    return render(
        request,
        "enrolment_consent.html",
        {
            "participant": view,
            "form": {"version": document.version if document else "", "consent_date": ""},
            "document": document,
            "paragraphs": paragraphs(document.text) if document else [],
            "unavailable": unavailable,
            "econsent": shown,
            "errors": errors,
            "failed": "econsent",
        },
        page=page,
        status_code=422,
    )


@router.get("/consent/due")
def due_page(request: Request, page: SignedIn) -> Response:
    return render(
        request,
        "consent_due.html",
        {"due": page.trial.reconsent_due(), "issued": None, "errors": []},
        page=page,
    )


@router.post("/participants/{reference}/consent/link")
def link_post(reference: str, request: Request, form: CheckedForm, page: SignedIn) -> Response:
    _participant(page, reference)
    try:
        issued = page.trial.issue_consent_link(reference)
    except OperationError as error:
        return render(
            request,
            "consent_due.html",
            {"due": page.trial.reconsent_due(), "issued": None, "errors": form_refusal(error)},
            page=page,
            status_code=422,
        )
    url = str(request.base_url).rstrip("/") + f"/consent/{issued.token}"
    # Answered with the page itself, not a redirect: the link is shown this once.
    return render(
        request,
        "consent_due.html",
        {"due": page.trial.reconsent_due(), "issued": issued, "url": url, "errors": []},
        page=page,
    )


# ---------------------------------------------------------------------- the phone


def _link(request: Request, token: str) -> ConsentLink:
    context = context_of(request)
    if _site(request).failed.blocked(_address(request), context.now()):
        raise TooManyLookupsError()
    return ConsentLink(context, authenticate_consent(context, token))


@router.get("/consent/thanks")
def thanks_page(request: Request) -> Response:
    return _render(request, "consent_thanks.html", {})


def _phone(
    request: Request,
    token: str,
    document: ConsentText,
    values: Mapping[str, str],
    problems: frozenset[str] = frozenset(),
    status_code: int = 200,
) -> Response:
    return _render(
        request,
        "consent_phone.html",
        {
            "token": token,
            "document": document,
            "paragraphs": paragraphs(document.text),
            "values": values,
            "problems": problems,
        },
        status_code=status_code,
    )


def _unavailable(request: Request) -> Response:
    """The document cannot be shown (no folder, or its bytes do not match the protocol):
    the participant is told to contact the team; nothing is recorded."""
    message = _site(request).catalogue.text("consent.unavailable")
    return _render(request, "survey_refused.html", {"message": message}, status_code=503)


@router.get("/consent/{token}")
def phone_page(token: str, request: Request) -> Response:
    link = _link(request, token)
    try:
        document = link.open()
    except OperationError:
        return _unavailable(request)
    return _phone(request, token, document, {})


@router.post("/consent/{token}")
def phone_post(token: str, request: Request, form: Posted) -> Response:
    link = _link(request, token)
    try:
        document = link.document()
    except OperationError:
        return _unavailable(request)
    values = {key: value for key, value in form.items() if key.startswith("q_")}
    try:
        link.submit(answers_from_form(document, form), form.get("typed_name", ""))
    except OperationError as error:
        ids = {question.id for question in document.questions}
        named = frozenset(
            f"q_{problem.where}" if problem.where in ids else problem.where
            for problem in error.problems
        )
        return _phone(request, token, document, values, named or frozenset({"form"}), 422)
    return RedirectResponse("/consent/thanks", status_code=303)
