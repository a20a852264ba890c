"""The JSON API under /api/v1: token authentication, the operations' scoping, one error shape.

Each endpoint is used with a token of a role that may use it, and the result checked
through the operations; refusals are checked for their status and their shape.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any, cast

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from typer.testing import CliRunner

from lumbar.cli import app as cli_app
from lumbar.cli.remote import TOKEN_ENV
from lumbar.operations import Principal, Trial
from lumbar.operations.context import Context
from lumbar.operations.vocabulary import PERMISSIONS
from lumbar.web.api import create_api
from lumbar.web.app import create_app
from tests.operations.world import World, answers_for, eligible_answers, rdq_answers
from tests.web.conftest import CHEAP, served

pytestmark = pytest.mark.integration

API = "/api/v1"


def token(client: TestClient, username: str, permissions: list[str] | None = None) -> str:
    """A new API token of ``username`` carrying ``permissions`` (their role's, by default)."""
    context = client.app.state.context  # type: ignore[attr-defined]
    trial = Trial(context, Principal.operator(username))
    if permissions is None:
        role = trial.me().role
        permissions = [name for name, roles in PERMISSIONS.items() if role in roles]
    return trial.create_token(f"{username} tests", permissions, 30).token


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def assert_refusal(response: Any, status: int) -> dict[str, Any]:
    """The one error shape, with the status expected."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "problems"}
    assert body["problems"]
    for problem in body["problems"]:
        assert set(problem) == {"where", "rule", "received", "hint"}
    return body


def baseline(world: World) -> dict[str, dict[str, Any]]:
    """The baseline visit's questionnaires, complete."""
    questionnaires: dict[str, dict[str, Any]] = {}
    for instrument in world.protocol.baseline.instruments:
        questionnaires[instrument] = answers_for(instrument, 1)
    questionnaires["rdq"] = rdq_answers(8)
    questionnaires["bothersomeness"] = {"bothersomeness": 1}
    return questionnaires


# ---------------------------------------------------------------------- tokens


def test_a_request_without_a_token_is_401_with_a_bearer_challenge(client: TestClient) -> None:
    response = client.get(f"{API}/participants")
    body = assert_refusal(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert body["error"] == "no token"


def test_a_signed_in_browser_session_opens_nothing_in_the_api(coordinator: TestClient) -> None:
    assert coordinator.get("/participants").status_code == 200  # the pages, signed in
    assert_refusal(coordinator.get(f"{API}/participants"), 401)


@pytest.mark.parametrize("made_up", ["lmb_" + "x" * 43, "not a token", "lmw_" + "y" * 43])
def test_a_made_up_token_is_401(client: TestClient, made_up: str) -> None:
    response = client.get(f"{API}/participants", headers=bearer(made_up))
    assert_refusal(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_revoked_token_is_401(client: TestClient) -> None:
    value = token(client, "coord")
    assert client.get(f"{API}/participants", headers=bearer(value)).status_code == 200
    context = client.app.state.context  # type: ignore[attr-defined]
    trial = Trial(context, Principal.operator("coord"))
    (view,) = trial.tokens()
    trial.revoke_token(view.id)
    assert_refusal(client.get(f"{API}/participants", headers=bearer(value)), 401)


def test_an_expired_token_is_401(client: TestClient, world: World) -> None:
    value = token(client, "coord")
    world.clock.advance(31)
    assert_refusal(client.get(f"{API}/participants", headers=bearer(value)), 401)


def test_a_token_without_the_permission_is_refused_403(client: TestClient, world: World) -> None:
    value = token(client, "coord", ["view"])
    body = assert_refusal(
        client.post(
            f"{API}/screenings",
            headers=bearer(value),
            json={"site": "SEA", "answers": eligible_answers(world.protocol)},
        ),
        403,
    )
    assert "does not carry the permission screen" in body["problems"][0]["rule"]
    assert world.as_("coord").participants() == []


def test_a_role_that_may_not_is_refused_403(client: TestClient, world: World) -> None:
    study_id = world.enrolled()
    world.with_baseline(study_id)
    value = token(client, "assessor")
    assert_refusal(
        client.post(f"{API}/participants/{study_id}/randomize", headers=bearer(value)), 403
    )
    assert [view.status for view in world.as_("coord").participants()] == ["enrolled"]


# ---------------------------------------------------------------------- the workflow


def test_a_coordinator_screens_consents_enrols_records_and_randomizes(
    client: TestClient, world: World
) -> None:
    headers = bearer(token(client, "coord"))
    screened = client.post(
        f"{API}/screenings",
        headers=headers,
        json={"site": "SEA", "answers": eligible_answers(world.protocol)},
    )
    assert screened.status_code == 201, screened.text
    number = screened.json()["screening_number"]
    assert screened.json()["status"] == "eligible"

    consented = client.post(
        f"{API}/participants/{number}/consent",
        headers=headers,
        json={"version": "1.0", "consent_date": world.clock.today.isoformat()},
    )
    assert consented.status_code == 200, consented.text
    enrolled = client.post(f"{API}/participants/{number}/enrol", headers=headers)
    assert enrolled.status_code == 200, enrolled.text
    study_id = enrolled.json()["study_id"]
    assert study_id

    recorded = client.post(
        f"{API}/participants/{study_id}/visits/baseline",
        headers=headers,
        json={"questionnaires": baseline(world), "completed_on": world.clock.today.isoformat()},
    )
    assert recorded.status_code == 201, recorded.text
    assert {view["instrument"] for view in recorded.json()} == set(
        world.protocol.baseline.instruments
    )

    randomized = client.post(f"{API}/participants/{study_id}/randomize", headers=headers)
    assert randomized.status_code == 200, randomized.text
    assert randomized.json()["arm"] is None  # coord is blinded
    assert world.as_("stat_open").assignment(study_id).arm is not None

    again = assert_refusal(
        client.post(f"{API}/participants/{study_id}/randomize", headers=headers), 409
    )
    assert again["error"] == "already randomized"

    (view,) = world.as_("coord").participants()
    assert view.study_id == study_id
    listed = client.get(f"{API}/participants", headers=headers).json()
    assert listed == [
        {
            "screening_number": number,
            "study_id": study_id,
            "site": "SEA",
            "status": view.status,
        }
    ]
    assert client.get(f"{API}/participants/{number}", headers=headers).json() == listed[0]
    schedule = client.get(f"{API}/participants/{study_id}/schedule", headers=headers)
    assert [visit["visit"] for visit in schedule.json()] == [
        visit.visit for visit in world.as_("coord").schedule(study_id)
    ]


def test_the_trial_and_the_due_list(client: TestClient, world: World) -> None:
    study_id = world.randomized()
    world.clock.advance(65)
    headers = bearer(token(client, "coord"))
    about = client.get(f"{API}/trial", headers=headers).json()
    assert about["title"] == world.protocol.trial.title
    assert about["sites"] == [{"code": "SEA", "name": "Seattle"}]
    due = client.get(f"{API}/due", headers=headers)
    assert due.status_code == 200, due.text
    assert [visit["study_id"] for visit in due.json()] == [study_id]
    assert [visit["visit"] for visit in due.json()] == [
        visit.visit for visit in world.as_("coord").due()
    ]
    assert about["now"].startswith(world.clock.today.isoformat())  # the trial's clock
    later = world.clock.today + dt.timedelta(days=40)
    on = client.get(f"{API}/participants/{study_id}/schedule?on={later}", headers=headers)
    assert [visit["status"] for visit in on.json()] == [
        visit.status for visit in world.as_("coord").schedule(study_id, later)
    ]
    assert "missed" in {visit["status"] for visit in on.json()}


def test_adverse_events_are_listed_and_updated_within_the_owners_sites(
    client: TestClient, world: World
) -> None:
    seattle, new_york = world.randomized(), world.randomized("NYC", coordinator="coord_nyc")
    events = {
        study_id: world.as_(coordinator).report_adverse_event(
            study_id,
            "a fall",
            world.clock.today,
            severity="mild",
            serious=False,
            relatedness="not_related",
        )
        for study_id, coordinator in ((seattle, "coord_open"), (new_york, "coord_nyc"))
    }
    headers = bearer(token(client, "coord_open"))
    listed = client.get(f"{API}/adverse-events", headers=headers)
    assert listed.status_code == 200, listed.text
    assert [event["study_id"] for event in listed.json()] == [seattle]
    ours, theirs = events[seattle].id, events[new_york].id
    change = {"outcome": "recovered", "reason": "called back"}
    updated = client.post(f"{API}/adverse-events/{ours}", headers=headers, json=change)
    assert updated.status_code == 200, updated.text
    assert updated.json()["outcome"] == "recovered"
    assert world.as_("coord_open").adverse_events()[0].outcome == "recovered"
    body = assert_refusal(
        client.post(f"{API}/adverse-events/{theirs}", headers=headers, json=change), 404
    )
    assert body["error"] == "unknown adverse event"
    # A blinded coordinator, who may not read the events, changes none either (the page
    # shows them the event first).
    blinded = bearer(token(client, "coord"))
    assert_refusal(client.get(f"{API}/adverse-events", headers=blinded), 403)
    assert_refusal(client.post(f"{API}/adverse-events/{ours}", headers=blinded, json=change), 403)
    assert world.as_("stat_open").adverse_events()[1].outcome == "unknown"


def test_a_therapist_logs_a_session_and_an_adverse_event(client: TestClient, world: World) -> None:
    study_ids = [world.randomized() for _ in range(6)]
    massage = next(s for s in study_ids if world.arm(s) != "usual_care")
    arm = world.protocol.arm(world.arm(massage))
    headers = bearer(token(client, "ther"))
    logged = client.post(
        f"{API}/participants/{massage}/sessions",
        headers=headers,
        json={
            "session_date": world.clock.today.isoformat(),
            "minutes": 90,
            "techniques": [arm.techniques[0]],
            "body_regions": ["low_back"],
            "notes": "<script>alert(1)</script>",
        },
    )
    assert logged.status_code == 201, logged.text
    assert logged.json() == {"study_id": massage, "number": 1}
    adherence = {row.study_id: row.attended for row in world.as_("ther").adherence()}
    assert adherence[massage] == 1

    reported = client.post(
        f"{API}/participants/{massage}/adverse-events",
        headers=headers,
        json={
            "description": "soreness after the session",
            "onset_date": world.clock.today.isoformat(),
            "severity": "mild",
            "serious": False,
            "relatedness": "probable",
        },
    )
    assert reported.status_code == 201, reported.text
    (event,) = world.as_("ther").adverse_events()
    assert event.description == "soreness after the session"
    listed = client.get(f"{API}/participants/{massage}/adverse-events", headers=headers)
    assert [item["id"] for item in listed.json()] == [event.id]


def test_a_session_takes_its_ratings_and_one_out_of_range_is_refused_at_its_field(
    client: TestClient, world: World
) -> None:
    study_ids = [world.randomized() for _ in range(6)]
    massage = next(s for s in study_ids if world.arm(s) != "usual_care")
    arm = world.protocol.arm(world.arm(massage))
    headers = bearer(token(client, "ther"))
    plan = client.get(f"{API}/participants/{massage}/plan", headers=headers).json()
    assert (plan["ratings"], plan["ratings_required"]) == (
        ["bothersomeness", "pain_intensity"],
        False,
    )
    session = {
        "session_date": world.clock.today.isoformat(),
        "minutes": 60,
        "techniques": [arm.techniques[0]],
        "body_regions": ["low_back"],
    }
    url = f"{API}/participants/{massage}/sessions"
    body = assert_refusal(
        client.post(
            url,
            headers=headers,
            json=session | {"ratings": {"bothersomeness": 12, "pain_intensity": 3}},
        ),
        409,
    )
    (problem,) = body["problems"]
    assert (problem["where"], problem["received"]) == ("rating_bothersomeness", 12)
    assert "from 0 to 10" in problem["rule"]
    assert world.as_("ther").sessions(massage) == []
    logged = client.post(
        url, headers=headers, json=session | {"ratings": {"bothersomeness": 8, "pain_intensity": 3}}
    )
    assert logged.status_code == 201, logged.text
    (stored,) = world.as_("ther").sessions(massage)
    assert stored.ratings == {"bothersomeness": 8, "pain_intensity": 3}


def test_a_serious_event_reaches_the_monitor_who_acknowledges_it(
    client: TestClient, world: World
) -> None:
    study_id = world.randomized()
    reported = client.post(
        f"{API}/participants/{study_id}/adverse-events",
        headers=bearer(token(client, "coord")),
        json={
            "description": "admitted to hospital",
            "onset_date": world.clock.today.isoformat(),
            "severity": "severe",
            "serious": True,
            "relatedness": "unlikely",
        },
    )
    assert reported.status_code == 201, reported.text
    monitor = bearer(token(client, "monitor"))
    waiting = client.get(f"{API}/notifications", headers=monitor, params={"waiting": "true"})
    assert waiting.status_code == 200, waiting.text
    (notice,) = waiting.json()
    assert (notice["kind"], notice["study_id"], notice["status"]) == (
        "serious_adverse_event",
        study_id,
        "queued",
    )
    assert notice["details"]["adverse_event"] == reported.json()["id"]
    assert "hospital" not in waiting.text
    assert_refusal(client.get(f"{API}/notifications", headers=bearer(token(client, "coord"))), 403)
    done = client.post(f"{API}/notifications/{notice['id']}/acknowledge", headers=monitor)
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["acknowledged_by"]) == ("acknowledged", "monitor")
    again = client.post(f"{API}/notifications/{notice['id']}/acknowledge", headers=monitor)
    assert assert_refusal(again, 409)["problems"][0]["rule"] == "is already acknowledged"
    unknown = client.post(f"{API}/notifications/{notice['id'] + 1}/acknowledge", headers=monitor)
    assert_refusal(unknown, 404)
    assert (
        client.get(f"{API}/notifications", headers=monitor, params={"waiting": "true"}).json() == []
    )


def test_a_coordinator_records_a_withdrawal(client: TestClient, world: World) -> None:
    study_id = world.randomized()
    response = client.post(
        f"{API}/participants/{study_id}/withdrawal",
        headers=bearer(token(client, "coord")),
        json={
            "kind": "withdrew_consent",
            "reason": "moved away",
            "effective_date": world.clock.today.isoformat(),
        },
    )
    assert response.status_code == 200, response.text
    (view,) = world.as_("coord").participants()
    assert response.json()["status"] == view.status
    assert view.status != "randomized"


# ---------------------------------------------------------------------- refusals


def test_bad_input_is_400_naming_the_field_and_nothing_is_stored(
    client: TestClient, world: World
) -> None:
    headers = bearer(token(client, "coord"))
    body = assert_refusal(
        client.post(
            f"{API}/screenings", headers=headers, json={"site": "SEA", "answers": {}, "x": 1}
        ),
        400,
    )
    assert "x" in [problem["where"] for problem in body["problems"]]
    study_id = world.enrolled()
    body = assert_refusal(
        client.post(
            f"{API}/participants/{study_id}/withdrawal",
            headers=headers,
            json={"kind": "bored", "reason": "", "effective_date": "5 January"},
        ),
        400,
    )
    assert {"kind", "reason", "effective_date"} <= {p["where"] for p in body["problems"]}
    assert_refusal(client.post(f"{API}/screenings", headers=headers, content=b"{not json"), 400)
    body = assert_refusal(
        client.post(
            f"{API}/screenings",
            headers=headers,
            json={"site": "SEA", "answers": {"age": "forty"}},
        ),
        400,
    )
    assert len(world.as_("coord").participants()) == 1


def test_an_unknown_route_or_method_gets_the_error_shape(client: TestClient) -> None:
    headers = bearer(token(client, "coord"))
    assert_refusal(client.get(f"{API}/nothing", headers=headers), 404)
    assert_refusal(client.delete(f"{API}/participants", headers=headers), 405)


REFERENCE_ROUTES = [
    ("GET", "/participants/{ref}", None),
    ("GET", "/participants/{ref}/schedule", None),
    ("POST", "/participants/{ref}/screening", {"answers": {"age": 50}, "reason": "misheard"}),
    ("GET", "/participants/{ref}/visits/baseline", None),
    (
        "POST",
        "/participants/{ref}/visits/baseline/rdq/edit",
        {"answers": {"rdq_01": 0}, "reason": "read back"},
    ),
    ("GET", "/participants/{ref}/plan", None),
    ("POST", "/participants/{ref}/consent", {"version": "1.0", "consent_date": "2026-01-05"}),
    ("POST", "/participants/{ref}/enrol", None),
    (
        "POST",
        "/participants/{ref}/visits/week_10",
        {"questionnaires": {"bothersomeness": {"bothersomeness": 1}}, "completed_on": "2026-01-05"},
    ),
    ("POST", "/participants/{ref}/randomize", None),
    (
        "POST",
        "/participants/{ref}/sessions",
        {"session_date": "2026-01-05", "minutes": 60, "techniques": [], "body_regions": []},
    ),
    ("GET", "/participants/{ref}/adverse-events", None),
    (
        "POST",
        "/participants/{ref}/adverse-events",
        {
            "description": "a fall",
            "onset_date": "2026-01-05",
            "severity": "mild",
            "serious": False,
            "relatedness": "not_related",
        },
    ),
    (
        "POST",
        "/participants/{ref}/withdrawal",
        {"kind": "lost_to_follow_up", "reason": "no answer", "effective_date": "2026-01-05"},
    ),
]


@pytest.mark.parametrize(("method", "route", "json"), REFERENCE_ROUTES)
def test_another_sites_participant_is_404_on_every_route(
    client: TestClient, world: World, method: str, route: str, json: dict[str, Any] | None
) -> None:
    new_york = world.randomized("NYC", coordinator="coord_nyc")
    # Seattle staff who could otherwise do it: the therapist for sessions and events.
    username = (
        "ther" if any(word in route for word in ("sessions", "adverse", "plan")) else "coord_open"
    )
    headers = bearer(token(client, username))
    path = API + route.format(ref=new_york)
    body = assert_refusal(client.request(method, path, headers=headers, json=json), 404)
    absent = assert_refusal(
        client.request(method, API + route.format(ref="Z99999"), headers=headers, json=json),
        404,
    )
    assert new_york not in str(absent)
    assert body["error"] == absent["error"]
    (view,) = world.as_("coord_nyc").participants()
    assert view.status == "randomized"


def test_a_blinded_assessors_responses_hold_no_arm(client: TestClient, world: World) -> None:
    study_ids = [world.randomized() for _ in range(4)]
    world.clock.advance(70)
    headers = bearer(token(client, "assessor"))
    week_10 = {
        instrument: answers_for(instrument, 1)
        for instrument in world.protocol.visit("week_10").instruments
    }
    week_10["rdq"] = rdq_answers(4)
    week_10["bothersomeness"] = {"bothersomeness": 1}
    responses = [
        client.get(f"{API}/trial", headers=headers),
        client.get(f"{API}/participants", headers=headers),
        client.get(f"{API}/due", headers=headers),
        client.get(f"{API}/participants/{study_ids[0]}", headers=headers),
        client.get(f"{API}/participants/{study_ids[0]}/schedule", headers=headers),
        client.post(
            f"{API}/participants/{study_ids[0]}/visits/week_10",
            headers=headers,
            json={"questionnaires": week_10, "completed_on": world.clock.today.isoformat()},
        ),
        client.get(f"{API}/participants/{study_ids[1]}/adverse-events", headers=headers),
    ]
    assert [response.status_code for response in responses] == [200] * 5 + [201, 403]
    title = world.protocol.trial.title  # names every arm, and so says nothing of any one's
    for response in responses:
        text = response.text.replace(title, "")
        for arm in world.protocol.arms:
            assert f'"{arm.id}"' not in text
            assert arm.label not in text
    recorded = world.as_("coord").schedule(study_ids[0])
    assert [visit.status for visit in recorded if visit.visit == "week_10"] == ["complete"]


def test_the_api_document_lists_only_the_api(client: TestClient) -> None:
    document = client.get(f"{API}/openapi.json").json()
    paths = set(document["paths"])
    assert "/participants/{reference}/randomize" in paths
    assert not any(path.startswith("/sign-in") for path in paths)
    assert "HTTPBearer" in document["components"]["securitySchemes"]
    consent = document["components"]["schemas"]["ConsentIn"]["properties"]
    assert consent["consent_date"]["format"] == "date"
    screening = document["components"]["schemas"]["ScreeningIn"]
    assert screening["additionalProperties"] is False


# ---------------------------------------------------------------------- the schema, fuzzed


# The document is the API's own, served at /api/v1/openapi.json by an app that mounts it
# as create_app does (making it needs no trial); each test then calls its own app.
_mounted = FastAPI()
_mounted.mount(API, create_api(cast(Context, None)))
schema = schemathesis.openapi.from_asgi(f"{API}/openapi.json", _mounted)


@pytest.fixture
def coordinator_token(client: TestClient, world: World) -> str:
    world.randomized()  # a participant to find, among the made-up references
    return token(client, "coord")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_request_makes_a_server_error_and_every_answer_fits_the_schema(
    case: schemathesis.Case[Any], client: TestClient, coordinator_token: str
) -> None:
    case.call_and_validate(
        app=client.app,
        headers=bearer(coordinator_token),
        checks=[not_a_server_error, response_schema_conformance],
    )


def test_the_fuzzed_document_is_the_one_served(client: TestClient) -> None:
    assert client.get(f"{API}/openapi.json").json() == schema.raw_schema


# ---------------------------------------------------------------------- the CLI, over the API


@pytest.fixture
def server(world: World) -> Iterator[str]:
    """The web application served over HTTP on this machine, in a thread."""
    with served(
        create_app(world.url, key_file=world.key_file, clock=world.clock, password_hasher=CHEAP)
    ) as address:
        yield address


def test_the_cli_lists_participants_from_a_server_with_a_token(
    server: str, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    seattle = world.enrolled()
    new_york = world.enrolled("NYC", coordinator="coord_nyc")
    value = world.as_("coord").create_token("laptop", ["view"], 30).token
    runner = CliRunner()
    monkeypatch.delenv("LUMBAR_DB", raising=False)
    listed = runner.invoke(cli_app, ["participants", "--server", server], env={TOKEN_ENV: value})
    assert listed.exit_code == 0, listed.output
    assert seattle in listed.output
    assert new_york not in listed.output
    refused = runner.invoke(
        cli_app, ["participants", "--server", server], env={TOKEN_ENV: "lmb_" + "x" * 43}
    )
    assert refused.exit_code == 2
    assert "token refused" in refused.output
    missing = runner.invoke(cli_app, ["participants", "--server", server], env={TOKEN_ENV: ""})
    assert missing.exit_code == 2
    assert "LUMBAR_TOKEN" in missing.output
