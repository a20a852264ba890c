"""Every route of the staff pages, tried as every role at every site: nothing leaks.

The operations decide who may see what (tests/operations/test_scope_matrix.py holds
them to it); this walks the web's routes to prove the pages add no hole: another site's
participant is answered 404 whatever the route, no route fails with a server error, a
blinded user's pages never name an arm, and no POST is accepted without the CSRF token.
A route with a path parameter this test does not know fails it, so new pages are walked.
A participant's survey and consent pages (tests/web/test_survey.py, test_consent.py) are
walked with a forged link.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from lumbar.operations import Principal, Trial
from tests.operations.world import World, answers_for, eligible_answers, rdq_answers
from tests.web.conftest import PASSWORD, set_password, sign_in

pytestmark = pytest.mark.integration

USERS = ("admin", "coord", "coord_nyc", "coord_open", "ther", "assessor", "stat", "monitor")
SITE_OF = {"coord": "SEA", "coord_open": "SEA", "ther": "SEA", "assessor": "SEA"}
SITE_OF["coord_nyc"] = "NYC"
UNBLINDED = {"coord_open", "ther", "stat_open"}
"""Who may see arms in the test world."""


@dataclass(frozen=True)
class Person:
    study_id: str
    screening_number: str


def _randomized(trial: Trial, world: World, site: str) -> Person:
    screening = trial.screen(site, eligible_answers(world.protocol))
    trial.consent(screening.screening_number, "1.0", world.clock.today)
    study_id = trial.enrol(screening.screening_number)
    for instrument in world.protocol.baseline.instruments:
        answers = rdq_answers(6) if instrument == "rdq" else answers_for(instrument, 1)
        trial.record_questionnaire(
            study_id, "baseline", instrument, answers, completed_on=world.clock.today
        )
    trial.randomize(study_id)
    trial.report_adverse_event(
        study_id, "sore back", world.clock.today, severity="severe", serious=True,
        relatedness="possible",
    )  # fmt: skip
    return Person(study_id, screening.screening_number)


def _arm_words(world: World) -> set[str]:
    words: set[str] = set()
    for arm in world.protocol.arms:
        words |= {arm.id.lower(), arm.label.lower()}
    return words


def _values(world: World, person: Person) -> dict[str, str]:
    """What each path parameter is filled with, for a route about ``person``."""
    follow_up = world.protocol.visits[1]
    return {
        "reference": person.study_id,
        "study_id": person.study_id,
        "ref": person.study_id,
        "screening_number": person.screening_number,
        "visit": follow_up.id,
        "instrument": follow_up.instruments[0],
        "event_id": "1",
        "id": "1",
        "token_id": "1",
        "notification_id": "1",
        "kind": "figures",
        "name": "consort.svg",
        "grant_id": "1",
        "username": "monitor",
        "code": "SEA",
        "token": "lms_" + "A" * 43,  # a forged link: the survey and consent pages refuse it
    }


ABOUT_A_PARTICIPANT = {"reference", "study_id", "ref", "screening_number"}


@dataclass(frozen=True)
class Route:
    path: str
    methods: frozenset[str]


def _routes(client: TestClient) -> list[Route]:
    """Every page route of the application (the JSON API under /api has its own walk)."""
    found: list[Route] = []

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            if isinstance(route, APIRoute):
                found.append(Route(prefix + route.path, frozenset(route.methods or ())))
            elif hasattr(route, "original_router"):  # an included router (FastAPI >= 0.120)
                walk(route.original_router.routes, prefix + route.include_context.prefix)

    walk(client.app.routes, "")  # type: ignore[attr-defined]
    return found


def _fill(route: Route, values: dict[str, str]) -> str:
    names = set(re.findall(r"{(\w+)(?::\w+)?}", route.path))
    unknown = names - set(values)
    assert not unknown, f"{route.path}: add a value for {sorted(unknown)} to this test"
    return re.sub(r"{(\w+)(?::\w+)?}", lambda found: values[found.group(1)], route.path)


def test_every_page_as_every_role_at_every_site_leaks_nothing(
    client: TestClient, world: World
) -> None:
    context = client.app.state.context  # type: ignore[attr-defined]
    admin = Trial(context, Principal.operator("admin"))
    people = {site: _randomized(admin, world, site) for site in ("SEA", "NYC")}
    for user in USERS:
        set_password(client, user)
    arm_words = _arm_words(world)
    routes = _routes(client)
    assert any(route.path == "/participants/{reference}" for route in routes)
    assert any(route.path == "/follow-up" for route in routes)  # the follow-up dashboard
    assert any(route.path.endswith("/invitations/{visit}/revoke") for route in routes)
    for user in USERS:
        client.cookies.clear()
        assert sign_in(client, user, PASSWORD).status_code == 303  # type: ignore[attr-defined]
        home = SITE_OF.get(user)
        at_home: dict[tuple[str, str], int] = {}
        """Each route's status for a participant the user may see (their own site's)."""
        for site, person in sorted(people.items(), key=lambda item: item[0] != (home or "SEA")):
            values = _values(world, person)
            other_site = home is not None and site != home
            for route in routes:
                path = _fill(route, values)
                about_participant = bool(
                    set(re.findall(r"{(\w+)", route.path)) & ABOUT_A_PARTICIPANT
                )
                for method in route.methods:
                    if method == "GET":
                        response = client.get(path)
                    elif method == "POST":
                        response = client.post(path, data={})
                    else:
                        continue
                    where = (user, method, path)
                    assert response.status_code < 500, where
                    if path in ("/survey/thanks", "/consent/thanks"):
                        assert response.status_code == 200, where  # says only "thank you"
                    elif path.startswith(("/survey/", "/consent/lms_", "/rate/")):
                        # A participant's page takes no staff session, only a link: a
                        # forged one is refused (404; 429 once this address tried many).
                        assert response.status_code in (404, 429), where
                    elif method == "POST" and path != "/sign-in":
                        # No CSRF token was sent: nothing is accepted.
                        assert response.status_code in (403, 422), where
                    if not other_site:
                        at_home[route.path, method] = response.status_code
                    elif about_participant and method == "GET":
                        # Another site's participant is unknown, unless the role may not
                        # use the page at all (refused alike for their own participants).
                        refused_alike = response.status_code == 403 == at_home[route.path, method]
                        assert response.status_code == 404 or refused_alike, where
                        assert person.study_id not in response.text, where
                    if user not in UNBLINDED and response.status_code == 200:
                        text = response.text.replace(world.protocol.trial.title, "").lower()
                        revealed = {word for word in arm_words if word in text}
                        assert not revealed, (*where, revealed)
        client.cookies.clear()
