"""The JSON API under ``/api/v1``: the staff pages' operations, for programs holding a token.

::

    curl -H "Authorization: Bearer lmb_..." https://trial.example/api/v1/participants

A separate application, mounted by :func:`lumbar.web.app.create_app`, so its OpenAPI
document (``/api/v1/openapi.json``) describes the API alone. Every request carries a
personal API token (``lumbar user token create``); the token's owner acts, limited to the
permissions the token carries, and the operations decide the rest exactly as for the
pages (role, site, blinding). There is no cookie authentication here, so no CSRF either:
a browser's session opens nothing under ``/api/v1``.

Every refusal has one JSON shape, made in one place (:func:`_refusal`)::

    {"error": "unknown participant",
     "problems": [{"where": "participant", "rule": "...", "received": "S00007", "hint": "..."}]}

- 400: the request breaks the schema, or an answer breaks its question's rule;
- 401: no token, or one refused (unknown, expired, revoked, its owner deactivated),
  with ``WWW-Authenticate: Bearer``;
- 403: the operation refused the token's owner (role, blinding, the token's permissions);
- 404: nothing there that the owner may see (a participant of another site included);
- 409: a well-formed request the operation refused as things stand (randomized already,
  a date after today, consent before eligibility, ...).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException

from lumbar import __version__
from lumbar.errors import AccessError, AnswerError, LumbarError, OperationError, Problem, shown
from lumbar.operations import Trial
from lumbar.operations.authentication import authenticate_token
from lumbar.operations.context import Context
from lumbar.operations.enrolment import ParticipantView
from lumbar.operations.followup import CLOSING_SOON
from lumbar.operations.vocabulary import (
    OUTCOMES,
    RELATEDNESS,
    SEVERITIES,
    SOURCES,
    WITHDRAWAL_KINDS,
)
from lumbar.web.base import NotFoundError, is_unknown

__all__ = ["API_PREFIX", "ErrorBody", "create_api"]

API_PREFIX = "/api/v1"

# ---------------------------------------------------------------------- field types
# Bounded everywhere, so no request can make the server do unbounded work, and the
# OpenAPI document says exactly what is accepted. Text excludes control characters
# (PostgreSQL refuses NUL in text, and none belongs in a trial record).

_PRINTABLE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
Name = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_PRINTABLE)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=4000, pattern=_PRINTABLE)]
Reference = Annotated[
    str,
    Path(
        min_length=1,
        max_length=32,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="A study id or a screening number",
    ),
]

VisitId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]


def _iso_date(value: object) -> object:
    """Only an ISO date's text (``2026-01-05``) is a date here: no numbers, no times."""
    if isinstance(value, str) and len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    raise ValueError("must be an ISO date, e.g. 2026-01-05")


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]

Answer = (
    bool
    | Annotated[int, Field(ge=-1_000_000, le=1_000_000)]
    | Annotated[float, Field(ge=-1_000_000, le=1_000_000, allow_inf_nan=False)]
    | Annotated[str, StringConstraints(max_length=200, pattern=_PRINTABLE)]
    | None
)
"""One answer to a screening question or a questionnaire item."""
Answers = Annotated[dict[Name, Answer], Field(max_length=200)]


class Body(BaseModel):
    """A request body: strict JSON types, no unknown fields."""

    model_config = ConfigDict(strict=True, extra="forbid")


class Out(BaseModel):
    """A response body, made from an operation's view by its attributes
    (``ParticipantOut.model_validate(view)``): one model a view, no copying by hand."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)


# ---------------------------------------------------------------------- requests


class ScreeningIn(Body):
    site: Name
    answers: Answers = Field(description="Answers to the protocol's eligibility questions")


class ScreeningUpdateIn(Body):
    answers: Answers = Field(description="The answers added or corrected")
    reason: Text = Field(description="Why the answers change")


class ConsentIn(Body):
    version: Name = Field(description="The consent form's version")
    consent_date: IsoDate


class VisitIn(Body):
    questionnaires: Annotated[dict[Name, Answers], Field(min_length=1, max_length=20)] = Field(
        description="Each instrument of the visit and its answers (all are stored, or none)"
    )
    completed_on: IsoDate
    source: Literal[SOURCES] = "staff_entry"  # type: ignore[valid-type]


class QuestionnaireEditIn(Body):
    answers: Answers = Field(default={}, description="The answers that change")
    reason: Text = Field(description="Why the answers or the date change")
    completed_on: IsoDate | None = Field(
        default=None, description="The corrected completion date (the window follows it)"
    )


class SessionIn(Body):
    session_date: IsoDate
    minutes: Annotated[int, Field(ge=0, le=10_000)]
    techniques: Annotated[list[Name], Field(max_length=50)]
    body_regions: Annotated[list[Name], Field(max_length=50)]
    home_care: Annotated[list[Name], Field(max_length=50)] = []
    notes: Annotated[str, StringConstraints(max_length=4000, pattern=_PRINTABLE)] = ""
    ratings: Annotated[dict[Name, int], Field(max_length=20)] = Field(
        default={},
        description="The 0-10 ratings the participant gave before the session, by instrument "
        "(the protocol's session_rating: e.g. bothersomeness, pain_intensity); a rating "
        "outside 0-10 or not declared is refused at rating_<instrument>",
    )


class AdverseEventIn(Body):
    description: Text
    onset_date: IsoDate
    severity: Literal[SEVERITIES]  # type: ignore[valid-type]
    serious: bool
    relatedness: Literal[RELATEDNESS]  # type: ignore[valid-type]
    outcome: Literal[OUTCOMES] = "unknown"  # type: ignore[valid-type]


class AdverseEventUpdateIn(Body):
    outcome: Literal[OUTCOMES]  # type: ignore[valid-type]
    reason: Text


class WithdrawalIn(Body):
    kind: Literal[WITHDRAWAL_KINDS]  # type: ignore[valid-type]
    reason: Text
    effective_date: IsoDate


# ---------------------------------------------------------------------- responses


class SiteOut(Out):
    code: str
    name: str


class TrialOut(Out):
    id: str
    title: str
    protocol_version: str
    protocol_hash: str
    created_with: str
    created_at: dt.datetime
    synthetic: bool
    sites: list[SiteOut] = Field(description="The sites the token's owner works at")
    allocation_source: str
    now: dt.datetime = Field(
        description="Now by the trial's clock: its date is the today that dates are checked "
        "against and that a client takes for a date not given"
    )


class ParticipantOut(Out):
    screening_number: str
    study_id: str | None
    site: str
    status: str


class ScreeningOut(Out):
    screening_number: str
    status: str
    reasons: list[str]
    unanswered: list[str]


class VisitOut(Out):
    study_id: str
    site: str
    visit: str
    target: dt.date
    opens: dt.date
    closes: dt.date
    status: str
    completed_on: dt.date | None
    out_of_window: bool


class QuestionnaireOut(Out):
    study_id: str
    visit: str
    instrument: str
    completed_on: dt.date
    source: str
    scores: dict[str, float | None]
    window: str | None
    days_from_target: int | None
    flag: str | None


class AssignmentOut(Out):
    study_id: str
    stratum: str
    arm: str | None = Field(description="The arm, for an unblinded owner; null otherwise")
    randomized_on: dt.date


class TreatmentPlanOut(Out):
    study_id: str
    arm: str
    arm_label: str
    planned: int
    attended: int
    techniques: list[str]
    body_regions: list[str]
    home_care: list[str]
    stopped: bool = Field(description="Stopped treatment or left the trial: no more sessions")
    ratings: list[str] = Field(
        default=[], description="The 0-10 ratings (instruments) asked before each session"
    )
    ratings_required: bool = Field(
        default=False, description="Whether a session is logged only with every rating given"
    )


class SessionOut(Out):
    study_id: str
    number: int


class AdverseEventOut(Out):
    id: int
    study_id: str
    description: str
    onset_date: dt.date
    severity: str
    serious: bool
    relatedness: str
    outcome: str


class NotificationOut(Out):
    id: int
    kind: str
    site: str
    study_id: str | None
    subject: str
    details: dict[str, str | int | float | bool | None]
    created_at: dt.datetime
    status: str
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None


class CompletionOut(Out):
    visit: str
    group: str = Field(description="all, a site's code, or an arm's id")
    label: str
    due: int = Field(description="Participants whose window for the visit has opened")
    complete: int
    rate: float | None = Field(description="complete / due; null when no one is due yet")


class ToCallOut(Out):
    study_id: str
    site: str
    visit: str
    status: str
    closes: dt.date
    days_left: int
    closing_soon: bool
    reminders_exhausted: bool
    link: str | None = Field(description="Where the latest survey link stands; null: none")
    last_message: str | None
    last_message_status: str | None
    last_message_reason: str | None
    last_message_at: dt.datetime | None


class FollowUpOut(Out):
    on: dt.date
    closing_within: int
    completion: list[CompletionOut] = Field(description="Each follow-up visit, all sites")
    by_site: list[CompletionOut]
    by_arm: list[CompletionOut] | None = Field(
        description="Each visit in each arm, for an unblinded owner; null otherwise"
    )
    to_call: list[ToCallOut] = Field(
        description="Open windows closing soon or with no reminder left (no contact details)"
    )


class ProblemOut(Out):
    where: str
    rule: str
    received: str | int | float | bool | None
    hint: str


class ErrorBody(Out):
    """Every refusal's body."""

    error: str
    problems: list[ProblemOut]


# ---------------------------------------------------------------------- errors, in one place


class _UnauthenticatedError(Exception):
    def __init__(self, error: AccessError | None = None):
        super().__init__("unauthenticated")
        self.error = error


def _received(value: object) -> str | int | float | bool | None:
    """A received value as JSON can carry it, shortened like every error message."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and abs(value) < 2**53:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, str) and len(value) <= 60:
        return value
    return shown(value)


def _problem(problem: Problem) -> dict[str, Any]:
    return {
        "where": problem.where,
        "rule": problem.rule,
        "received": _received(problem.received) if problem.has_value else None,
        "hint": problem.hint,
    }


def _body(error: str, problems: list[dict[str, Any]]) -> dict[str, Any]:
    return {"error": error, "problems": problems}


def _status(error: LumbarError) -> int:
    if isinstance(error, AccessError):
        return 403
    if isinstance(error, OperationError):
        return 404 if is_unknown(error) else 409
    if isinstance(error, AnswerError):
        return 400
    return 409


def _refusal(request: Request, error: Exception) -> Response:
    """The one translation of every refusal into the API's error shape."""
    headers: dict[str, str] = {}
    if isinstance(error, _UnauthenticatedError):
        status = 401
        headers["WWW-Authenticate"] = "Bearer"
        problems = [_problem(problem) for problem in error.error.problems] if error.error else []
        if not problems:
            problems = [
                {
                    "where": "Authorization",
                    "rule": "a request needs an API token",
                    "received": None,
                    "hint": "send 'Authorization: Bearer lmb_...' (lumbar user token create)",
                }
            ]
        content = _body("token refused" if error.error else "no token", problems)
    elif isinstance(error, RequestValidationError):
        status = 400
        content = _body("the request does not fit the API", _validation_problems(error))
    elif isinstance(error, NotFoundError):
        status = 404
        content = _body(
            "not found",
            [
                {
                    "where": request.url.path,
                    "rule": "there is nothing here that you may see",
                    "received": None,
                    "hint": "check the id",
                }
            ],
        )
    elif isinstance(error, LumbarError):
        status = _status(error)
        problems = [_problem(problem) for problem in error.problems]
        content = _body(error.summary, problems or [_bare(error.summary)])
    elif isinstance(error, StarletteHTTPException):
        status = error.status_code
        content = _body(
            str(error.detail).lower(),
            [
                {
                    "where": f"{request.method} {request.url.path}",
                    "rule": str(error.detail),
                    "received": None,
                    "hint": f"see {API_PREFIX}/openapi.json",
                }
            ],
        )
        headers.update(error.headers or {})
    else:  # a fault of lumbar's own: say so without details
        status = 500
        content = _body("internal error", [_bare("the server failed; nothing was changed")])
    return JSONResponse(content, status_code=status, headers=headers)


def _bare(rule: str) -> dict[str, Any]:
    return {"where": "", "rule": rule, "received": None, "hint": ""}


def _validation_problems(error: RequestValidationError) -> list[dict[str, Any]]:
    problems = []
    for found in error.errors()[:20]:
        location = [str(part) for part in found.get("loc", ())]
        if location and location[0] == "body":
            location = location[1:]
        problems.append(
            {
                "where": ".".join(location) or "body",
                "rule": str(found.get("msg", "is not valid")),
                "received": _received(found.get("input")),
                "hint": f"see {API_PREFIX}/openapi.json",
            }
        )
    return problems


REFUSALS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "The request does not fit the API, or an answer breaks its rule"),
        (401, "No API token, or one refused"),
        (403, "Not allowed for the token's owner or the token"),
        (404, "Nothing there that the token's owner may see"),
        (409, "The operation refused the request as things stand"),
        ("4XX", "Another refusal (a method not allowed, ...)"),
    )
}


# ---------------------------------------------------------------------- who asks

_bearer = HTTPBearer(auto_error=False, description="A personal API token (lmb_...)")


def token_trial(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Trial:
    """The trial as the token's owner, limited to the token's permissions (dependency)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _UnauthenticatedError()
    context: Context = request.app.state.context
    try:
        principal = authenticate_token(context, credentials.credentials)
    except AccessError as error:
        raise _UnauthenticatedError(error) from None
    return Trial(context, principal)


TokenTrial = Annotated[Trial, Depends(token_trial)]


def _participant(trial: Trial, reference: str) -> ParticipantView:
    """The participant ``reference`` names, among those the operations let the owner see."""
    try:
        return trial.participant(reference)
    except OperationError as error:
        if is_unknown(error):
            raise NotFoundError() from None
        raise


# ---------------------------------------------------------------------- the application


def create_api(context: Context) -> FastAPI:
    """The API application over an open trial (mounted at :data:`API_PREFIX`)."""
    api = FastAPI(
        title="lumbar API",
        version=__version__,
        description=__doc__,
        docs_url=None,
        redoc_url=None,
        responses=REFUSALS,
    )
    api.state.context = context
    for kind in (
        _UnauthenticatedError,
        RequestValidationError,
        NotFoundError,
        LumbarError,
        StarletteHTTPException,
        Exception,
    ):
        api.add_exception_handler(kind, _refusal)

    @api.get("/trial", response_model=TrialOut)
    def about(trial: TokenTrial) -> TrialOut:
        info = trial.about()
        return TrialOut(
            id=info.id,
            title=info.title,
            protocol_version=info.protocol_version,
            protocol_hash=info.protocol_hash,
            created_with=info.created_with,
            created_at=info.created_at,
            synthetic=info.synthetic,
            sites=[SiteOut(code=code, name=name) for code, name in info.sites],
            allocation_source=info.allocation_source,
            now=trial.clock(),
        )

    @api.get("/participants", response_model=list[ParticipantOut])
    def participants(trial: TokenTrial) -> list[ParticipantOut]:
        return [ParticipantOut.model_validate(view) for view in trial.participants()]

    @api.get("/participants/{reference}", response_model=ParticipantOut)
    def participant(reference: Reference, trial: TokenTrial) -> ParticipantOut:
        return ParticipantOut.model_validate(_participant(trial, reference))

    @api.get("/participants/{reference}/schedule", response_model=list[VisitOut])
    def schedule(
        reference: Reference,
        trial: TokenTrial,
        on: Annotated[dt.date | None, Query(description="The day it stands on (today)")] = None,
    ) -> list[VisitOut]:
        return [VisitOut.model_validate(visit) for visit in trial.schedule(reference, on)]

    @api.post("/screenings", response_model=ScreeningOut, status_code=201)
    def screen(body: ScreeningIn, trial: TokenTrial) -> ScreeningOut:
        return ScreeningOut.model_validate(trial.screen(body.site, body.answers))

    @api.post("/participants/{reference}/screening", response_model=ScreeningOut)
    def update_screening(
        reference: Reference, body: ScreeningUpdateIn, trial: TokenTrial
    ) -> ScreeningOut:
        return ScreeningOut.model_validate(
            trial.update_screening(reference, body.answers, body.reason)
        )

    @api.post("/participants/{reference}/consent", response_model=ParticipantOut)
    def consent(reference: Reference, body: ConsentIn, trial: TokenTrial) -> ParticipantOut:
        trial.consent(reference, body.version, body.consent_date)
        return ParticipantOut.model_validate(_participant(trial, reference))

    @api.post("/participants/{reference}/enrol", response_model=ParticipantOut)
    def enrol(reference: Reference, trial: TokenTrial) -> ParticipantOut:
        study_id = trial.enrol(reference)
        return ParticipantOut.model_validate(_participant(trial, study_id))

    @api.post(
        "/participants/{reference}/visits/{visit}",
        response_model=list[QuestionnaireOut],
        status_code=201,
    )
    def record_visit(
        reference: Reference,
        visit: VisitId,
        body: VisitIn,
        trial: TokenTrial,
    ) -> list[QuestionnaireOut]:
        views = trial.record_visit(
            reference,
            visit,
            body.questionnaires,
            completed_on=body.completed_on,
            source=body.source,
        )
        return [QuestionnaireOut.model_validate(view) for view in views]

    @api.get("/participants/{reference}/visits/{visit}", response_model=list[QuestionnaireOut])
    def questionnaires(
        reference: Reference, visit: VisitId, trial: TokenTrial
    ) -> list[QuestionnaireOut]:
        return [
            QuestionnaireOut.model_validate(view) for view in trial.questionnaires(reference, visit)
        ]

    @api.post(
        "/participants/{reference}/visits/{visit}/{instrument}/edit",
        response_model=QuestionnaireOut,
    )
    def edit_questionnaire(
        reference: Reference,
        visit: VisitId,
        instrument: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
        body: QuestionnaireEditIn,
        trial: TokenTrial,
    ) -> QuestionnaireOut:
        view = trial.edit_questionnaire(
            reference,
            visit,
            instrument,
            body.answers,
            body.reason,
            completed_on=body.completed_on,
        )
        return QuestionnaireOut.model_validate(view)

    @api.post("/participants/{reference}/randomize", response_model=AssignmentOut)
    def randomize(reference: Reference, trial: TokenTrial) -> AssignmentOut:
        return AssignmentOut.model_validate(trial.randomize(reference))

    @api.get("/participants/{reference}/plan", response_model=TreatmentPlanOut)
    def treatment_plan(reference: Reference, trial: TokenTrial) -> TreatmentPlanOut:
        return TreatmentPlanOut.model_validate(trial.treatment_plan(reference))

    @api.post("/participants/{reference}/sessions", response_model=SessionOut, status_code=201)
    def log_session(reference: Reference, body: SessionIn, trial: TokenTrial) -> SessionOut:
        number = trial.log_session(
            reference,
            body.session_date,
            body.minutes,
            body.techniques,
            body.body_regions,
            home_care=body.home_care,
            notes=body.notes,
            ratings=body.ratings,
        )
        view = _participant(trial, reference)
        return SessionOut(study_id=str(view.study_id), number=number)

    @api.get("/participants/{reference}/adverse-events", response_model=list[AdverseEventOut])
    def adverse_events(reference: Reference, trial: TokenTrial) -> list[AdverseEventOut]:
        view = _participant(trial, reference)
        return [
            AdverseEventOut.model_validate(event)
            for event in trial.adverse_events()
            if event.study_id == view.study_id
        ]

    @api.post(
        "/participants/{reference}/adverse-events",
        response_model=AdverseEventOut,
        status_code=201,
    )
    def report_adverse_event(
        reference: Reference, body: AdverseEventIn, trial: TokenTrial
    ) -> AdverseEventOut:
        event = trial.report_adverse_event(
            reference,
            body.description,
            body.onset_date,
            severity=body.severity,
            serious=body.serious,
            relatedness=body.relatedness,
            outcome=body.outcome,
        )
        return AdverseEventOut.model_validate(event)

    @api.get("/adverse-events", response_model=list[AdverseEventOut])
    def all_adverse_events(trial: TokenTrial) -> list[AdverseEventOut]:
        return [AdverseEventOut.model_validate(event) for event in trial.adverse_events()]

    @api.post("/adverse-events/{event_id}", response_model=AdverseEventOut)
    def update_adverse_event(
        event_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
        body: AdverseEventUpdateIn,
        trial: TokenTrial,
    ) -> AdverseEventOut:
        # As the page: only who may read the events (their descriptions can reveal arms)
        # changes one; the operation then finds it among those at the owner's sites.
        trial.adverse_events()
        event = trial.update_adverse_event(event_id, outcome=body.outcome, reason=body.reason)
        return AdverseEventOut.model_validate(event)

    @api.post("/participants/{reference}/withdrawal", response_model=ParticipantOut)
    def withdraw(reference: Reference, body: WithdrawalIn, trial: TokenTrial) -> ParticipantOut:
        trial.withdraw(reference, body.kind, body.reason, body.effective_date)
        return ParticipantOut.model_validate(_participant(trial, reference))

    @api.get("/due", response_model=list[VisitOut])
    def due(
        trial: TokenTrial,
        site: Annotated[Name | None, Query()] = None,
        on: Annotated[dt.date | None, Query()] = None,
        missed: bool = False,
    ) -> list[VisitOut]:
        return [VisitOut.model_validate(visit) for visit in trial.due(site, on, missed=missed)]

    @api.get("/follow-up", response_model=FollowUpOut)
    def follow_up(
        trial: TokenTrial,
        on: Annotated[dt.date | None, Query(description="The day it stands on (today)")] = None,
        within: Annotated[
            int, Query(ge=0, le=90, description="Days: a window closing within them is listed")
        ] = CLOSING_SOON,
    ) -> FollowUpOut:
        return FollowUpOut.model_validate(trial.follow_up(on, within))

    @api.get("/notifications", response_model=list[NotificationOut])
    def notifications(trial: TokenTrial, waiting: bool = False) -> list[NotificationOut]:
        return [
            NotificationOut.model_validate(notice)
            for notice in trial.notifications(waiting=waiting)
        ]

    @api.post("/notifications/{notification_id}/acknowledge", response_model=NotificationOut)
    def acknowledge_notification(
        notification_id: Annotated[int, Path(ge=1, le=2**31 - 1)], trial: TokenTrial
    ) -> NotificationOut:
        return NotificationOut.model_validate(trial.acknowledge_notification(notification_id))

    return api
