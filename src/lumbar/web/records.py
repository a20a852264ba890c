"""What is recorded about an enrolled participant: questionnaires, sessions, adverse events.

Each page calls the operations as the signed-in member of staff and renders what they
return; they decide who may see and record what (a blinded user never reaches a session
or an adverse-event list: the operation refuses, and the page is a 403). A questionnaire's
form is generated from its instrument in the registry, item by item, and the operation's
refusal is shown beside the item it names (``Problem.where`` is ``"rdq: item rdq_05"``).

The web only turns form text into values: an empty field is "not answered", a number is a
number, and anything else is passed on as it is, so the instrument's own rule refuses it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from lumbar.errors import AccessError, AnswerError, OperationError
from lumbar.instruments import INSTRUMENTS, Instrument
from lumbar.operations.responses import RecordedQuestionnaire
from lumbar.operations.treatment import TreatmentPlan
from lumbar.operations.vocabulary import OUTCOMES, RELATEDNESS, SEVERITIES
from lumbar.web.base import (
    CheckedForm,
    NotFoundError,
    Page,
    SignedIn,
    form_refusal,
    found,
    render,
)

__all__ = ["router"]

router = APIRouter()


def answer_value(text: str) -> Any:
    """Form text as an answer: empty is not answered; what is no number stays text (the
    instrument refuses it with its own rule)."""
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def shown_answer(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def parse_date(text: str, field: str, errors: list[dict[str, str]]) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        errors.append(
            {"where": field, "rule": "must be a date as YYYY-MM-DD", "hint": f"received {text!r}"}
        )
        return None


def _redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


# ---------------------------------------------------------------------- questionnaires


def _items(instrument: Instrument) -> list[dict[str, Any]]:
    """The instrument's items as the form shows them: our label, the answers it takes,
    and when a branching condition asks it."""
    rows = []
    for item in instrument.items:
        condition = None
        if item.only_if is not None:
            gate = instrument.item(item.only_if.item)
            answer: str = str(item.only_if.equals)
            if gate.response.kind == "choice":
                answer = gate.response.option_label(item.only_if.equals)
            condition = f"asked only when \u201c{instrument.text_of(gate.id)}\u201d is {answer}"
        rows.append(
            {
                "id": item.id,
                "label": instrument.text_of(item.id),
                "kind": item.response.kind,
                "options": item.response.options,
                "describe": item.response.describe(),
                "condition": condition,
            }
        )
    return rows


def _score_labels(instrument: Instrument) -> dict[str, str]:
    return {score.id: score.label for score in instrument.scores}


def _questionnaire_form(
    request: Request,
    page: Page,
    study_id: str,
    visit: str,
    instrument: str,
    *,
    values: Mapping[str, str],
    completed_on: str,
    errors: list[dict[str, str]] | None = None,
    recorded: RecordedQuestionnaire | None = None,
    reason: str = "",
) -> Response:
    definition = INSTRUMENTS.get(instrument)
    errors = errors or []
    return render(
        request,
        "records_questionnaire.html",
        {
            "study_id": study_id,
            "visit": visit,
            "instrument": definition,
            "items": _items(definition),
            "values": values,
            "completed_on": completed_on,
            "errors": errors,
            "editing": recorded is not None,
            "reason": reason,
        },
        page=page,
        status_code=422 if errors else 200,
    )


@router.get("/participants/{study_id}/visits/{visit}")
def visit_page(study_id: str, visit: str, request: Request, page: SignedIn) -> Response:
    with found():
        recorded = {view.instrument: view for view in page.trial.questionnaires(study_id, visit)}
    instruments = [
        (INSTRUMENTS.get(name), recorded.get(name))
        for name in page.trial.protocol.visit(visit).instruments
    ]
    return render(
        request,
        "records_visit.html",
        {"study_id": study_id, "visit": visit, "instruments": instruments},
        page=page,
    )


@router.get("/participants/{study_id}/visits/{visit}/{instrument}")
def questionnaire_page(
    study_id: str, visit: str, instrument: str, request: Request, page: SignedIn
) -> Response:
    with found():
        recorded = page.trial.questionnaire(study_id, visit, instrument)
    if recorded is None:
        return _questionnaire_form(
            request,
            page,
            study_id,
            visit,
            instrument,
            values={},
            completed_on=page.trial.clock().date().isoformat(),
        )
    definition = INSTRUMENTS.get(instrument)
    return render(
        request,
        "records_recorded.html",
        {
            "study_id": study_id,
            "visit": visit,
            "instrument": definition,
            "items": _items(definition),
            "recorded": recorded,
            "answers": {item: shown_answer(value) for item, value in recorded.answers.items()},
            "score_labels": _score_labels(definition),
            "item_labels": {item.id: definition.text_of(item.id) for item in definition.items},
            # The trail keeps an answer as it came (1 from one client, 1.0 from another).
            "shown": shown_answer,
        },
        page=page,
    )


@router.post("/participants/{study_id}/visits/{visit}/{instrument}")
def questionnaire_post(
    study_id: str, visit: str, instrument: str, request: Request, form: CheckedForm, page: SignedIn
) -> Response:
    with found():
        recorded = page.trial.questionnaire(study_id, visit, instrument)
    definition = INSTRUMENTS.get(instrument)
    values = {item.id: form.get(f"answer_{item.id}", "") for item in definition.items}
    errors: list[dict[str, str]] = []
    completed_on = parse_date(form.get("completed_on", ""), "completed_on", errors)
    if recorded is None and completed_on is not None:
        try:
            page.trial.record_questionnaire(
                study_id,
                visit,
                instrument,
                {item: answer_value(text) for item, text in values.items()},
                completed_on=completed_on,
            )
        except (OperationError, AnswerError) as error:
            errors = form_refusal(error)
        else:
            return _redirect(f"/participants/{study_id}/visits/{visit}/{instrument}")
    elif recorded is not None:
        errors.append(
            {
                "where": "questionnaire",
                "rule": f"{instrument} at {visit} is recorded already",
                "hint": "correct it with an edit and a reason",
            }
        )
    return _questionnaire_form(
        request,
        page,
        study_id,
        visit,
        instrument,
        values=values,
        completed_on=form.get("completed_on", ""),
        errors=errors,
    )


@router.get("/participants/{study_id}/visits/{visit}/{instrument}/edit")
def edit_questionnaire_page(
    study_id: str, visit: str, instrument: str, request: Request, page: SignedIn
) -> Response:
    with found():
        recorded = page.trial.questionnaire(study_id, visit, instrument)
    if recorded is None:
        raise NotFoundError()
    return _questionnaire_form(
        request,
        page,
        study_id,
        visit,
        instrument,
        values={item: shown_answer(value) for item, value in recorded.answers.items()},
        completed_on=recorded.view.completed_on.isoformat(),
        recorded=recorded,
    )


@router.post("/participants/{study_id}/visits/{visit}/{instrument}/edit")
def edit_questionnaire_post(
    study_id: str, visit: str, instrument: str, request: Request, form: CheckedForm, page: SignedIn
) -> Response:
    with found():
        recorded = page.trial.questionnaire(study_id, visit, instrument)
    if recorded is None:
        raise NotFoundError()
    definition = INSTRUMENTS.get(instrument)
    values = {item.id: form.get(f"answer_{item.id}", "") for item in definition.items}
    errors: list[dict[str, str]] = []
    completed_on = parse_date(form.get("completed_on", ""), "completed_on", errors)
    reason = form.get("reason", "")
    if completed_on is not None:
        try:
            page.trial.edit_questionnaire(
                study_id,
                visit,
                instrument,
                {item: answer_value(text) for item, text in values.items()},
                reason,
                completed_on=completed_on,
            )
        except (OperationError, AnswerError) as error:
            errors = form_refusal(error)
        else:
            return _redirect(f"/participants/{study_id}/visits/{visit}/{instrument}")
    return _questionnaire_form(
        request,
        page,
        study_id,
        visit,
        instrument,
        values=values,
        completed_on=form.get("completed_on", ""),
        errors=errors,
        recorded=recorded,
        reason=reason,
    )


# ---------------------------------------------------------------------- sessions


def _vocabulary_labels(page: Page) -> dict[str, str]:
    vocabulary = page.trial.protocol.vocabulary
    return {term.id: term.label for term in (*vocabulary.techniques, *vocabulary.body_regions)}


def _rating_labels(plan: TreatmentPlan) -> dict[str, Instrument]:
    """The instruments of the ratings asked before a session, by name."""
    return {name: INSTRUMENTS.get(name) for name in plan.ratings}


def _session_form(
    request: Request,
    page: Page,
    plan: TreatmentPlan,
    form: Mapping[str, str],
    errors: list[dict[str, str]] | None = None,
) -> Response:
    errors = errors or []
    return render(
        request,
        "records_session.html",
        {
            "plan": plan,
            "labels": _vocabulary_labels(page),
            "ratings": _rating_labels(plan),
            "form": form,
            "errors": errors,
        },
        page=page,
        status_code=422 if errors else 200,
    )


def _ratings(
    plan: TreatmentPlan, form: Mapping[str, str], errors: list[dict[str, str]]
) -> dict[str, int]:
    """The ratings typed in the form's ``rating_<instrument>`` fields; a blank one is left
    out, and one that is not a whole number is an error at its field (the operation checks
    the range)."""
    ratings = {}
    for instrument in plan.ratings:
        field = f"rating_{instrument}"
        typed = form.get(field, "").strip()
        if not typed:
            continue
        try:
            ratings[instrument] = int(typed)
        except ValueError:
            errors.append(
                {"where": field, "rule": "must be a whole number from 0 to 10", "hint": ""}
            )
    return ratings


@router.get("/participants/{study_id}/sessions")
def sessions_page(study_id: str, request: Request, page: SignedIn) -> Response:
    with found():
        plan = page.trial.treatment_plan(study_id)
        sessions = page.trial.sessions(study_id)
        # The same users see the ratings the participant gave on their phone (pending,
        # attached to a session, or superseded by the tablet's) and their link's state.
        given = page.trial.given_ratings(study_id) if plan.ratings else []
        links = page.trial.rating_links(study_id) if plan.ratings else []
    return render(
        request,
        "records_sessions.html",
        {
            "plan": plan,
            "sessions": sessions,
            "given": given,
            "link": links[-1] if links else None,
            "link_last_day": (links[-1].expires_at - dt.timedelta(days=1)).date().isoformat()
            if links
            else "",
            "labels": _vocabulary_labels(page),
            "ratings": _rating_labels(plan),
        },
        page=page,
    )


@router.get("/participants/{study_id}/sessions/new")
def new_session_page(study_id: str, request: Request, page: SignedIn) -> Response:
    with found():
        plan = page.trial.treatment_plan(study_id)
    today = page.trial.clock().date().isoformat()
    return _session_form(request, page, plan, {"session_date": today})


@router.post("/participants/{study_id}/sessions/new")
def new_session_post(
    study_id: str, request: Request, form: CheckedForm, page: SignedIn
) -> Response:
    with found():
        plan = page.trial.treatment_plan(study_id)
    errors: list[dict[str, str]] = []
    session_date = parse_date(form.get("session_date", ""), "session_date", errors)
    minutes_text = form.get("minutes", "").strip()
    minutes = int(minutes_text) if minutes_text.isdigit() else None
    if minutes is None:
        errors.append({"where": "minutes", "rule": "must be a whole number of minutes", "hint": ""})
    ratings = _ratings(plan, form, errors)
    if not errors and session_date is not None and minutes is not None:
        try:
            page.trial.log_session(
                study_id,
                session_date,
                minutes,
                [term for term in plan.techniques if form.get(f"technique_{term}")],
                [term for term in plan.body_regions if form.get(f"region_{term}")],
                home_care=[
                    advice
                    for number, advice in enumerate(plan.home_care)
                    if form.get(f"home_care_{number}")
                ],
                notes=form.get("notes", ""),
                ratings=ratings,
            )
        except OperationError as error:
            errors = form_refusal(error)
        else:
            return _redirect(f"/participants/{study_id}/sessions")
    return _session_form(request, page, plan, form, errors)


@router.post("/participants/{study_id}/sessions/rating-link")
def rating_link_post(
    study_id: str, request: Request, form: CheckedForm, page: SignedIn
) -> Response:
    """Issue the participant's session-rating link (shown this once, to give them) or,
    with ``action=revoke``, revoke it."""
    errors: list[dict[str, str]] = []
    with found():
        plan = page.trial.treatment_plan(study_id)
    try:
        if form.get("action") == "revoke":
            page.trial.revoke_rating_link(study_id)
            return _redirect(f"/participants/{study_id}/sessions")
        link = page.trial.issue_rating_link(study_id)
    except OperationError as error:
        errors = form_refusal(error)
        link = None
    return render(
        request,
        "records_rating_link.html",
        {
            "plan": plan,
            "address": None if link is None else f"{request.base_url}rate/{link.token}",
            "last_day": ""
            if link is None
            else (link.expires_at - dt.timedelta(days=1)).date().isoformat(),
            "errors": errors,
        },
        page=page,
        status_code=422 if errors else 200,
    )


# ---------------------------------------------------------------------- adverse events


def _event_form(
    request: Request,
    page: Page,
    study_id: str,
    form: Mapping[str, str],
    errors: list[dict[str, str]] | None = None,
) -> Response:
    errors = errors or []
    return render(
        request,
        "records_adverse_event.html",
        {
            "study_id": study_id,
            "form": form,
            "severities": SEVERITIES,
            "relatedness": RELATEDNESS,
            "outcomes": OUTCOMES,
            "errors": errors,
        },
        page=page,
        status_code=422 if errors else 200,
    )


@router.get("/participants/{study_id}/adverse-events")
def adverse_events_page(
    study_id: str, request: Request, page: SignedIn, recorded: int | None = None
) -> Response:
    events: list[Any] | None
    with found():
        page.trial.schedule(study_id)  # the participant is one you may see
        try:
            events = page.trial.adverse_events(study_id)
        except AccessError:
            events = None  # recording is allowed to blinded staff; the list could unblind
    return render(
        request,
        "records_adverse_events.html",
        {"study_id": study_id, "events": events, "recorded": recorded},
        page=page,
    )


@router.get("/participants/{study_id}/adverse-events/new")
def new_adverse_event_page(study_id: str, request: Request, page: SignedIn) -> Response:
    with found():
        page.trial.schedule(study_id)
    today = page.trial.clock().date().isoformat()
    return _event_form(request, page, study_id, {"onset_date": today, "outcome": "unknown"})


@router.post("/participants/{study_id}/adverse-events/new")
def new_adverse_event_post(
    study_id: str, request: Request, form: CheckedForm, page: SignedIn
) -> Response:
    with found():
        page.trial.schedule(study_id)
    errors: list[dict[str, str]] = []
    onset_date = parse_date(form.get("onset_date", ""), "onset_date", errors)
    if onset_date is not None:
        try:
            event = page.trial.report_adverse_event(
                study_id,
                form.get("description", ""),
                onset_date,
                severity=form.get("severity", ""),
                serious=form.get("serious") == "yes",
                relatedness=form.get("relatedness", ""),
                outcome=form.get("outcome", "unknown"),
            )
        except OperationError as error:
            errors = form_refusal(error)
        else:
            return _redirect(f"/participants/{study_id}/adverse-events?recorded={event.id}")
    return _event_form(request, page, study_id, form, errors)


def _event_of(page: Page, study_id: str, event_id: int) -> Any:
    with found():
        events = page.trial.adverse_events(study_id)
    for event in events:
        if event.id == event_id:
            return event
    raise NotFoundError()


def _event_edit_form(
    request: Request,
    page: Page,
    event: Any,
    form: Mapping[str, str],
    errors: list[dict[str, str]] | None = None,
) -> Response:
    errors = errors or []
    return render(
        request,
        "records_adverse_event_edit.html",
        {
            "event": event,
            "form": form,
            "outcomes": OUTCOMES,
            "errors": errors,
        },
        page=page,
        status_code=422 if errors else 200,
    )


@router.get("/participants/{study_id}/adverse-events/{event_id}/edit")
def edit_adverse_event_page(
    study_id: str, event_id: int, request: Request, page: SignedIn
) -> Response:
    event = _event_of(page, study_id, event_id)
    return _event_edit_form(request, page, event, {"outcome": event.outcome})


@router.post("/participants/{study_id}/adverse-events/{event_id}/edit")
def edit_adverse_event_post(
    study_id: str, event_id: int, request: Request, form: CheckedForm, page: SignedIn
) -> Response:
    event = _event_of(page, study_id, event_id)
    try:
        page.trial.update_adverse_event(
            event_id, outcome=form.get("outcome", ""), reason=form.get("reason", "")
        )
    except OperationError as error:
        return _event_edit_form(request, page, event, form, form_refusal(error))
    return _redirect(f"/participants/{study_id}/adverse-events")


# ---------------------------------------------------------------------- notifications


@router.get("/notifications")
def notifications_page(
    request: Request, page: SignedIn, acknowledged: int | None = None
) -> Response:
    return _notifications(request, page, acknowledged=acknowledged)


@router.post("/notifications/{notification_id}/acknowledge")
def acknowledge_notification(
    notification_id: int, request: Request, form: CheckedForm, page: SignedIn
) -> Response:
    try:
        page.trial.acknowledge_notification(notification_id)
    except OperationError as error:
        return _notifications(request, page, errors=form_refusal(error), status_code=422)
    return _redirect(f"/notifications?acknowledged={notification_id}")


def _notifications(
    request: Request,
    page: Page,
    *,
    acknowledged: int | None = None,
    errors: list[dict[str, str]] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "notifications.html",
        {
            "title": "Notifications",
            "notifications": page.trial.notifications(),
            "acknowledged": acknowledged,
            "errors": errors or [],
        },
        page=page,
        status_code=status_code,
    )
