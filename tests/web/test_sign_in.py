"""Signing in to the staff pages: sessions on the server, CSRF, headers, time-outs.

Each promise of lumbar.web's security has a test here that fails when it is broken.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from lumbar.errors import AccessError
from lumbar.operations import Principal, Trial, authenticate_password
from lumbar.operations.authentication import SESSION_ABSOLUTE, SESSION_IDLE
from lumbar.protocol import shipped_protocol
from lumbar.protocol.model import Access
from lumbar.store.schema import AuditRecord, WebSession
from lumbar.web.app import create_app
from lumbar.web.base import CONTENT_SECURITY_POLICY, SESSION_COOKIE
from tests.operations.world import World, build_world
from tests.web.conftest import CHEAP, PASSWORD, hidden, set_password, sign_in

pytestmark = pytest.mark.integration

WRONG = "the user name, the password or the code is wrong, or the account is not active"
"""What every failed sign-in is told, whatever was wrong."""


def actions(client: TestClient) -> list[str]:
    context = client.app.state.context  # type: ignore[attr-defined]
    with context.db.read() as session:
        return list(session.execute(select(AuditRecord.action).order_by(AuditRecord.seq)).scalars())


def test_a_page_without_a_session_sends_the_browser_to_sign_in(client: TestClient) -> None:
    response = client.get("/participants")
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in?next=%2Fparticipants"


def test_the_right_password_starts_a_server_side_session_in_an_http_only_strict_cookie(
    client: TestClient,
) -> None:
    set_password(client, "coord")
    response = sign_in(client, "coord")
    assert response.status_code == 303  # type: ignore[attr-defined]
    cookie = response.headers["set-cookie"]  # type: ignore[attr-defined]
    assert cookie.startswith(f"{SESSION_COOKIE}=lmw_")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" not in cookie  # served over plain HTTP here
    context = client.app.state.context  # type: ignore[attr-defined]
    token = cookie.split(";")[0].split("=", 1)[1]
    with context.db.read() as session:
        stored = session.execute(select(WebSession)).scalar_one()
    assert token not in (stored.token_hash, stored.prefix)  # only a digest is kept
    dashboard = client.get("/")
    assert dashboard.status_code == 200
    assert "coord" in dashboard.text
    assert "coordinator" in dashboard.text
    assert actions(client)[-2:] == ["login", "session.start"]


@pytest.mark.parametrize(
    ("username", "password"), [("coord", "wrong password here"), ("nobody", PASSWORD)]
)
def test_a_wrong_password_or_unknown_name_gets_the_same_answer_and_no_session(
    client: TestClient, username: str, password: str
) -> None:
    set_password(client, "coord")
    response = sign_in(client, username, password)
    assert response.status_code == 401  # type: ignore[attr-defined]
    assert WRONG in response.text  # type: ignore[attr-defined]
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")  # type: ignore[attr-defined]
    assert client.get("/").status_code == 303
    assert actions(client)[-1] == "login.failed"


def test_the_sign_in_form_needs_its_csrf_value(client: TestClient) -> None:
    set_password(client, "coord")
    client.get("/sign-in")
    response = client.post(
        "/sign-in",
        data={"username": "coord", "password": PASSWORD, "csrf": "forged", "next": "/"},
    )
    assert response.status_code == 403
    assert client.get("/").status_code == 303


def test_a_second_factor_is_required_once_confirmed(client: TestClient, world: World) -> None:
    set_password(client, "coord")
    context = client.app.state.context  # type: ignore[attr-defined]
    coord = Trial(context, Principal.operator("coord"))
    enrolment = coord.enrol_totp()
    totp = pyotp.TOTP(enrolment.secret)
    coord.confirm_totp(totp.at(world.clock.now))
    world.clock.now += dt.timedelta(seconds=30)
    assert sign_in(client, "coord").status_code == 401  # type: ignore[attr-defined]
    response = sign_in(client, "coord", code=totp.at(world.clock.now))
    assert response.status_code == 303  # type: ignore[attr-defined]
    assert client.get("/").status_code == 200


def test_signing_out_ends_the_session_on_the_server(coordinator: TestClient) -> None:
    token = coordinator.cookies[SESSION_COOKIE]
    page = coordinator.get("/")
    response = coordinator.post("/sign-out", data={"csrf": hidden(page.text, "csrf")})
    assert response.status_code == 303
    coordinator.cookies.set(SESSION_COOKIE, token)  # the old cookie, kept by an attacker
    assert coordinator.get("/").status_code == 303
    assert actions(coordinator)[-1] == "session.end"


def test_a_form_post_without_the_session_s_csrf_token_is_refused(
    coordinator: TestClient,
) -> None:
    assert coordinator.post("/sign-out", data={}).status_code == 403
    assert coordinator.post("/sign-out", data={"csrf": "0" * 64}).status_code == 403
    assert coordinator.get("/").status_code == 200  # still signed in


def test_a_session_ends_after_the_idle_limit(coordinator: TestClient, world: World) -> None:
    world.clock.now += SESSION_IDLE - dt.timedelta(minutes=1)
    assert coordinator.get("/").status_code == 200  # activity keeps it alive
    world.clock.now += SESSION_IDLE - dt.timedelta(minutes=1)
    assert coordinator.get("/").status_code == 200
    world.clock.now += SESSION_IDLE
    response = coordinator.get("/")
    assert response.status_code == 303
    assert "ended=1" in response.headers["location"]
    assert actions(coordinator)[-1] == "session.end"


def test_a_session_ends_at_the_absolute_limit_however_active(
    coordinator: TestClient, world: World
) -> None:
    step = SESSION_IDLE - dt.timedelta(minutes=5)
    elapsed = dt.timedelta()
    while elapsed + step < SESSION_ABSOLUTE:
        world.clock.now += step
        elapsed += step
        assert coordinator.get("/").status_code == 200
    world.clock.now += step
    assert coordinator.get("/").status_code == 303


def test_an_administrator_can_sign_someone_out_everywhere(coordinator: TestClient) -> None:
    context = coordinator.app.state.context  # type: ignore[attr-defined]
    ended = Trial(context, Principal.operator("admin")).end_sessions("coord", "laptop stolen")
    assert ended == 1
    assert coordinator.get("/").status_code == 303


def test_a_password_change_ends_older_sessions(coordinator: TestClient, world: World) -> None:
    world.clock.now += dt.timedelta(minutes=1)
    set_password(coordinator, "coord", "a brand new pass phrase")
    assert coordinator.get("/").status_code == 303


def test_deactivation_ends_the_session(coordinator: TestClient) -> None:
    context = coordinator.app.state.context  # type: ignore[attr-defined]
    Trial(context, Principal.operator("admin")).set_active("coord", False, "left the study")
    assert coordinator.get("/").status_code == 303


def test_every_response_carries_the_security_headers(coordinator: TestClient) -> None:
    for path in ("/", "/sign-in", "/participants", "/no-such-page"):
        response = coordinator.get(path)
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
        assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
    # A browser's own request for an icon is answered (no 404 in its console).
    assert coordinator.get("/favicon.ico").status_code == 204


def test_the_next_page_after_sign_in_stays_on_this_site(client: TestClient) -> None:
    set_password(client, "coord")
    for target, expected in (
        ("/participants", "/participants"),
        ("//evil.example", "/"),
        ("https://evil.example", "/"),
    ):
        page = client.get("/sign-in")
        response = client.post(
            "/sign-in",
            data={
                "username": "coord",
                "password": PASSWORD,
                "csrf": hidden(page.text, "csrf"),
                "next": target,
            },
        )
        assert response.headers["location"] == expected


def test_the_synthetic_label_is_on_every_page_of_a_synthetic_trial(
    coordinator: TestClient,
) -> None:
    context = coordinator.app.state.context  # type: ignore[attr-defined]
    for path in ("/", "/participants", "/sign-in"):
        text = coordinator.get(path).text
        assert ("SYNTHETIC DATA" in text) is context.synthetic


def test_a_blinded_assessor_s_dashboard_leaves_the_adverse_events_out(
    client: TestClient,
) -> None:
    set_password(client, "assessor")
    sign_in(client, "assessor")
    page = client.get("/")
    assert page.status_code == 200
    assert "not shown to your role" in page.text  # the blinded assessor sees no events


@pytest.fixture
def strict(database_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, World]]:
    """A trial whose protocol requires a second factor of admins and the unblinded."""
    shipped = shipped_protocol("massage-clbp")
    protocol = shipped.model_copy(update={"access": Access(second_factor=("admin", "unblinded"))})
    world = build_world(database_url, tmp_path, protocol=protocol)
    app = create_app(world.url, key_file=world.key_file, clock=world.clock, password_hasher=CHEAP)
    with TestClient(app, follow_redirects=False) as browser:
        yield browser, world


def test_a_role_the_protocol_requires_a_second_factor_of_must_enrol_one_before_anything_else(
    strict: tuple[TestClient, World],
) -> None:
    client, world = strict
    set_password(client, "coord_open")  # an unblinded coordinator
    assert sign_in(client, "coord_open").status_code == 303  # type: ignore[attr-defined]
    for path in ("/", "/participants", "/account", "/audit"):
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/account/second-factor"
    page = client.get("/account/second-factor")
    assert page.status_code == 200
    started = client.post("/account/second-factor/start", data={"csrf": hidden(page.text, "csrf")})
    secret = re.search(r"<dt>Secret</dt><dd><code>([A-Z2-7]+)</code>", started.text)
    assert secret is not None
    assert client.get("/").status_code == 303  # not before it is confirmed
    confirmed = client.post(
        "/account/second-factor/confirm",
        data={
            "csrf": hidden(page.text, "csrf"),
            "code": pyotp.TOTP(secret.group(1)).at(world.clock.now),
        },
    )
    assert confirmed.status_code == 303
    assert client.get("/").status_code == 200
    assert "login" in actions(client)


def test_the_operations_refuse_a_principal_whose_second_factor_is_due(
    strict: tuple[TestClient, World],
) -> None:
    client, _ = strict
    context = client.app.state.context  # type: ignore[attr-defined]
    set_password(client, "admin")
    principal = authenticate_password(context, "admin", PASSWORD)
    assert principal.second_factor_due
    with pytest.raises(AccessError, match="second factor needed"):
        Trial(context, principal).participants()
    Trial(context, principal).enrol_totp()  # the one thing allowed


def test_a_blinded_role_the_protocol_does_not_name_signs_in_with_a_password(
    strict: tuple[TestClient, World],
) -> None:
    client, _ = strict
    set_password(client, "coord")  # blinded coordinator: not named by the protocol
    assert sign_in(client, "coord").status_code == 303  # type: ignore[attr-defined]
    assert client.get("/").status_code == 200
