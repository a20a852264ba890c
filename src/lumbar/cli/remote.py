"""The command line over a lumbar server's JSON API, for staff who hold a token, not the database.

::

    export LUMBAR_TOKEN=lmb_...            # from 'lumbar user token create'
    lumbar participants --server https://trial.example
    lumbar consent S00001 --version 2.1 --server https://trial.example

The token is read from ``LUMBAR_TOKEN`` only (never a flag, so it stays out of the
shell's history and the process list). A refusal from the server arrives in the API's
one error shape and becomes the same :class:`~lumbar.errors.LumbarError` the command
would have raised against the database, so the command line shows it the same way.
Each command that takes ``--server`` calls :func:`get_json` or :func:`post_json`; both
go through :func:`_request`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lumbar.errors import (
    AccessError,
    AnswerError,
    LumbarError,
    OperationError,
    Problem,
    StoreError,
)

if TYPE_CHECKING:  # the views are imported where they are made, as the commands import them
    from lumbar.operations.enrolment import ParticipantView, ScreeningView
    from lumbar.operations.followup import FollowUp
    from lumbar.operations.randomization import Assignment
    from lumbar.operations.responses import QuestionnaireView
    from lumbar.operations.safety import AdverseEventView
    from lumbar.operations.schedule import VisitStatus
    from lumbar.operations.treatment import TreatmentPlan

__all__ = ["TOKEN_ENV", "ServerTrial", "get_json", "post_json"]

TOKEN_ENV = "LUMBAR_TOKEN"
_TIMEOUT_SECONDS = 30
_API = "/api/v1"


def get_json(
    server: str, path: str, query: Mapping[str, str | int | bool | dt.date | None] | None = None
) -> Any:
    """``GET`` one API path on ``server`` with the token of ``LUMBAR_TOKEN``; its JSON body.

    ``query``'s parameters that are None are left out.
    """
    given = {name: value for name, value in (query or {}).items() if value is not None}
    if given:
        path += "?" + urllib.parse.urlencode(
            {name: _query_text(value) for name, value in given.items()}
        )
    return _request(server, "GET", path)


def post_json(server: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
    """``POST`` a JSON body to one API path on ``server``; the JSON body of its answer.

    Dates in ``body`` are sent as ISO text; a field that is None is left out (the API's
    default applies).
    """
    given = {name: value for name, value in (body or {}).items() if value is not None}
    return _request(server, "POST", path, json.dumps(given, default=_json_value).encode())


def _query_text(value: str | int | bool | dt.date) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _json_value(value: object) -> str:
    """A value JSON has no type for: a date (as answers in YAML may be) as its ISO text."""
    if isinstance(value, dt.date):
        return value.isoformat()
    raise OperationError(
        "cannot send this to the server",
        [
            Problem(
                "--server",
                "JSON cannot carry a value of this kind",
                type(value).__name__,
                "give a number, yes/no, a date or text",
            )
        ],
    )


def _request(server: str, method: str, path: str, data: bytes | None = None) -> Any:
    """The one request to the API: the token, the address checked, a refusal translated."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise AccessError(
            "no token",
            [
                Problem(
                    TOKEN_ENV,
                    "--server needs an API token in the environment",
                    hint="create one with 'lumbar user token create' and export "
                    f"{TOKEN_ENV}=lmb_...",
                )
            ],
        )
    if not server.startswith(("https://", "http://")):
        raise StoreError(
            "not a server address",
            [
                Problem(
                    "--server",
                    "must start with https:// (http:// only on this machine)",
                    server,
                    "e.g. https://trial.example",
                )
            ],
        )
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(
        server.rstrip("/") + _API + path, data=data, headers=headers, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_SECONDS) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        raise _refusal(error.code, error.read()) from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise StoreError(
            "the server did not answer",
            [Problem("--server", str(error), server, "check the address and your network")],
        ) from None


def _refusal(status: int, body: bytes) -> LumbarError:
    """The server's refusal as the error the operation itself raises (lumbar.web.api says
    which status each error gets: 400 an answer, 401 and 403 access, 404 and 409 the
    operation's refusal)."""
    try:
        parsed = json.loads(body)
        summary = str(parsed["error"])
        problems = [
            Problem(
                str(item["where"]),
                str(item["rule"]),
                item["received"],
                str(item["hint"]),
            )
            if item.get("received") is not None
            else Problem(str(item["where"]), str(item["rule"]), hint=str(item["hint"]))
            for item in parsed["problems"]
            if item["where"] or item["hint"] or item["rule"] != summary  # a bare refusal
        ]
    except (ValueError, KeyError, TypeError):
        summary, problems = f"the server answered {status}", []
    if status in (401, 403):
        return AccessError(summary, problems)
    if status == 400:
        return AnswerError(summary, problems)
    return OperationError(summary, problems)


class ServerTrial:
    """The trial on a lumbar server, as the token's owner: the :class:`~lumbar.operations.Trial`
    methods that site staff's commands call, each one request to the API, answering with the
    operations' own views so a command draws them as it does from the database."""

    def __init__(self, server: str):
        self.server = server

    def clock(self) -> dt.datetime:
        """Now, by the trial's clock on the server (the today a date not given takes)."""
        return dt.datetime.fromisoformat(get_json(self.server, "/trial")["now"])

    def participants(self) -> list[ParticipantView]:
        from lumbar.operations.enrolment import ParticipantView

        return [ParticipantView(**found) for found in get_json(self.server, "/participants")]

    def screen(self, site: str, answers: Mapping[str, Any]) -> ScreeningView:
        return _screening(post_json(self.server, "/screenings", {"site": site, "answers": answers}))

    def update_screening(
        self, reference: str, answers: Mapping[str, Any], reason: str
    ) -> ScreeningView:
        return _screening(
            post_json(
                self.server,
                f"{_participant(reference)}/screening",
                {"answers": answers, "reason": reason},
            )
        )

    def consent(self, reference: str, version: str, consent_date: dt.date) -> None:
        post_json(
            self.server,
            f"{_participant(reference)}/consent",
            {"version": version, "consent_date": consent_date},
        )

    def enrol(self, reference: str) -> str:
        return str(post_json(self.server, f"{_participant(reference)}/enrol")["study_id"])

    def record_questionnaire(
        self,
        reference: str,
        visit: str,
        instrument: str,
        answers: Mapping[str, Any],
        *,
        completed_on: dt.date,
        source: str = "staff_entry",
    ) -> QuestionnaireView:
        """One questionnaire, as the operation records it: a visit of one questionnaire."""
        (view,) = self.record_visit(
            reference, visit, {instrument: answers}, completed_on=completed_on, source=source
        )
        return view

    def record_visit(
        self,
        reference: str,
        visit: str,
        questionnaires: Mapping[str, Mapping[str, Any]],
        *,
        completed_on: dt.date,
        source: str = "staff_entry",
    ) -> tuple[QuestionnaireView, ...]:
        recorded = post_json(
            self.server,
            _visit(reference, visit),
            {"questionnaires": questionnaires, "completed_on": completed_on, "source": source},
        )
        return tuple(_questionnaire(found) for found in recorded)

    def edit_questionnaire(
        self,
        reference: str,
        visit: str,
        instrument: str,
        answers: Mapping[str, Any],
        reason: str,
        *,
        completed_on: dt.date | None = None,
    ) -> QuestionnaireView:
        return _questionnaire(
            post_json(
                self.server,
                f"{_visit(reference, visit)}/{_segment(instrument)}/edit",
                {"answers": answers, "reason": reason, "completed_on": completed_on},
            )
        )

    def questionnaires(self, reference: str, visit: str) -> list[QuestionnaireView]:
        return [_questionnaire(found) for found in get_json(self.server, _visit(reference, visit))]

    def treatment_plan(self, reference: str) -> TreatmentPlan:
        from lumbar.operations.treatment import TreatmentPlan

        found = get_json(self.server, f"{_participant(reference)}/plan")
        return TreatmentPlan(
            **(
                found
                | {
                    name: tuple(found[name])
                    for name in ("techniques", "body_regions", "home_care", "ratings")
                }
            )
        )

    def randomize(self, reference: str) -> Assignment:
        from lumbar.operations.randomization import Assignment

        found = post_json(self.server, f"{_participant(reference)}/randomize")
        return Assignment(**(found | {"randomized_on": _date(found["randomized_on"])}))

    def log_session(
        self,
        reference: str,
        session_date: dt.date,
        minutes: int,
        techniques: Sequence[str],
        body_regions: Sequence[str],
        *,
        home_care: Sequence[str] = (),
        notes: str = "",
        ratings: Mapping[str, int] | None = None,
    ) -> int:
        logged = post_json(
            self.server,
            f"{_participant(reference)}/sessions",
            {
                "session_date": session_date,
                "minutes": minutes,
                "techniques": list(techniques),
                "body_regions": list(body_regions),
                "home_care": list(home_care),
                "notes": notes,
                "ratings": dict(ratings or {}),
            },
        )
        return int(logged["number"])

    def report_adverse_event(
        self,
        reference: str,
        description: str,
        onset_date: dt.date,
        *,
        severity: str,
        serious: bool,
        relatedness: str,
        outcome: str = "unknown",
    ) -> AdverseEventView:
        return _event(
            post_json(
                self.server,
                f"{_participant(reference)}/adverse-events",
                {
                    "description": description,
                    "onset_date": onset_date,
                    "severity": severity,
                    "serious": serious,
                    "relatedness": relatedness,
                    "outcome": outcome,
                },
            )
        )

    def update_adverse_event(self, event_id: int, *, outcome: str, reason: str) -> AdverseEventView:
        return _event(
            post_json(
                self.server, f"/adverse-events/{event_id}", {"outcome": outcome, "reason": reason}
            )
        )

    def adverse_events(self) -> list[AdverseEventView]:
        return [_event(found) for found in get_json(self.server, "/adverse-events")]

    def withdraw(self, reference: str, kind: str, reason: str, effective_date: dt.date) -> None:
        post_json(
            self.server,
            f"{_participant(reference)}/withdrawal",
            {"kind": kind, "reason": reason, "effective_date": effective_date},
        )

    def schedule(self, reference: str, on: dt.date | None = None) -> list[VisitStatus]:
        return _visits(get_json(self.server, f"{_participant(reference)}/schedule", {"on": on}))

    def due(
        self, site: str | None = None, on: dt.date | None = None, *, missed: bool = False
    ) -> list[VisitStatus]:
        return _visits(get_json(self.server, "/due", {"site": site, "on": on, "missed": missed}))

    def follow_up(self, on: dt.date | None = None, closing_within: int = 7) -> FollowUp:
        return _follow_up(get_json(self.server, "/follow-up", {"on": on, "within": closing_within}))


def _segment(text: str) -> str:
    """``text`` as one segment of a path (a reference with a slash stays one segment)."""
    return urllib.parse.quote(text, safe="")


def _participant(reference: str) -> str:
    return f"/participants/{_segment(reference)}"


def _visit(reference: str, visit: str) -> str:
    return f"{_participant(reference)}/visits/{_segment(visit)}"


def _screening(found: dict[str, Any]) -> ScreeningView:
    from lumbar.operations.enrolment import ScreeningView

    return ScreeningView(
        found["screening_number"],
        found["status"],
        tuple(found["reasons"]),
        tuple(found["unanswered"]),
    )


def _questionnaire(found: dict[str, Any]) -> QuestionnaireView:
    from lumbar.operations.responses import QuestionnaireView

    return QuestionnaireView(**(found | {"completed_on": _date(found["completed_on"])}))


def _date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def _event(found: dict[str, Any]) -> AdverseEventView:
    from lumbar.operations.safety import AdverseEventView

    return AdverseEventView(**(found | {"onset_date": _date(found["onset_date"])}))


def _visits(found: list[dict[str, Any]]) -> list[VisitStatus]:
    from lumbar.operations.schedule import VisitStatus

    return [
        VisitStatus(
            **(
                visit
                | {name: _date(visit[name]) for name in ("target", "opens", "closes")}
                | {
                    "completed_on": None
                    if visit["completed_on"] is None
                    else _date(visit["completed_on"])
                }
            )
        )
        for visit in found
    ]


def _follow_up(found: dict[str, Any]) -> FollowUp:
    from lumbar.operations.followup import Completion, FollowUp, ToCall

    def completions(rows: list[dict[str, Any]]) -> tuple[Completion, ...]:
        return tuple(
            Completion(**{name: value for name, value in row.items() if name != "rate"})
            for row in rows
        )

    return FollowUp(
        on=_date(found["on"]),
        closing_within=found["closing_within"],
        completion=completions(found["completion"]),
        by_site=completions(found["by_site"]),
        by_arm=None if found["by_arm"] is None else completions(found["by_arm"]),
        to_call=tuple(
            ToCall(
                **(
                    call
                    | {"closes": _date(call["closes"])}
                    | {
                        "last_message_at": None
                        if call["last_message_at"] is None
                        else dt.datetime.fromisoformat(call["last_message_at"])
                    }
                )
            )
            for call in found["to_call"]
        ),
    )
