"""Administration pages: own account, staff and sites, the audit trail, exports.

Each workflow is done through the pages by a role that may, then checked through the
operations; roles that may not are answered 403; free text comes back escaped.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import httpx
import pyotp
import pytest
from fastapi.testclient import TestClient

from lumbar.operations import Principal, Trial, create_trial
from lumbar.protocol import shipped_protocol
from lumbar.web.app import create_app
from tests.operations.world import Clock, World
from tests.web.conftest import CHEAP, PASSWORD, hidden, set_password, sign_in

pytestmark = pytest.mark.integration

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def as_(client: TestClient, username: str) -> TestClient:
    """The browser, signed in as ``username``."""
    set_password(client, username)
    response = sign_in(client, username)
    assert isinstance(response, httpx.Response)
    assert response.status_code == 303, response.text
    return client


def operator(client: TestClient, username: str = "admin") -> Trial:
    """The trial as ``username`` through the operations, to check what the pages did."""
    return Trial(client.app.state.context, Principal.operator(username))  # type: ignore[attr-defined]


def post(client: TestClient, path: str, form_page: str, data: dict[str, str]) -> httpx.Response:
    """Post a form with the CSRF token of the page that shows it."""
    token = hidden(client.get(form_page).text, "csrf")
    response: httpx.Response = client.post(path, data={"csrf": token, **data})
    return response


def arm_words(world: World) -> list[str]:
    return [word for arm in world.protocol.arms for word in (arm.id, arm.label)]


def main(html: str) -> str:
    """The page's own content (the header carries the trial's title, which may name arms)."""
    return html.split('<main id="main">', 1)[1].split("</main>", 1)[0]


# ---------------------------------------------------------------------- own account


def test_the_account_page_shows_role_sites_and_blinding(client: TestClient) -> None:
    page = as_(client, "coord").get("/account")
    assert page.status_code == 200
    assert "coordinator" in page.text
    assert "SEA" in page.text
    assert "you are blinded" in page.text


def test_changing_one_s_password_needs_the_current_one_and_signs_out(
    client: TestClient, world: World
) -> None:
    as_(client, "coord")
    wrong = post(
        client,
        "/account/password",
        "/account",
        {
            "current": "not my password at all",
            "password": "a new pass phrase here",
            "confirm": "a new pass phrase here",
        },
    )
    assert wrong.status_code == 422
    assert 'aria-describedby="password-current-error"' in wrong.text
    world.clock.now += dt.timedelta(minutes=1)
    changed = post(
        client,
        "/account/password",
        "/account",
        {
            "current": PASSWORD,
            "password": "a new pass phrase here",
            "confirm": "a new pass phrase here",
        },
    )
    assert changed.status_code == 303
    assert client.get("/account").status_code == 303  # signed out
    assert sign_in(client, "coord", "a new pass phrase here").status_code == 303  # type: ignore[attr-defined]


def test_a_password_against_the_rules_is_refused_at_the_field(client: TestClient) -> None:
    as_(client, "coord")
    response = post(
        client,
        "/account/password",
        "/account",
        {"current": PASSWORD, "password": "short", "confirm": "short"},
    )
    assert response.status_code == 422
    assert 'id="password-password-error"' in response.text
    assert client.get("/account").status_code == 200  # still signed in: nothing changed


def test_a_second_factor_is_enrolled_and_confirmed_through_the_pages(
    client: TestClient, world: World
) -> None:
    as_(client, "coord")
    shown = post(client, "/account/totp", "/account", {})
    assert shown.status_code == 200
    secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', shown.text)
    assert secret is not None
    assert "otpauth://totp/" in shown.text
    assert secret.group(1) not in client.get("/account").text  # shown once
    code = pyotp.TOTP(secret.group(1)).at(world.clock.now)
    confirmed = post(client, "/account/totp/confirm", "/account", {"code": code})
    assert confirmed.status_code == 303
    assert operator(client, "coord").me().second_factor


def test_a_new_token_is_shown_once_then_listed_without_it(client: TestClient) -> None:
    as_(client, "stat")
    made = post(
        client,
        "/account/tokens",
        "/account",
        {"name": SCRIPT, "permission.dataset": "1", "days": "30"},
    )
    assert made.status_code == 200
    token = re.search(r'<code class="secret">([^<]+)</code>', made.text)
    assert token is not None
    assert SCRIPT not in made.text
    assert ESCAPED in made.text
    listed = client.get("/account")
    assert token.group(1) not in listed.text
    assert ESCAPED in listed.text
    assert SCRIPT not in listed.text
    (view,) = operator(client, "stat").tokens()
    assert view.permissions == ("dataset",)
    assert view.state == "active"
    revoked = post(client, f"/account/tokens/{view.id}/revoke", "/account", {})
    assert revoked.status_code == 303
    assert operator(client, "stat").tokens()[0].state == "revoked"


def test_a_token_beyond_one_s_role_is_refused_and_none_is_made(client: TestClient) -> None:
    as_(client, "coord")
    response = post(
        client,
        "/account/tokens",
        "/account",
        {"name": "x", "permission.dataset": "1", "days": "30"},
    )
    assert response.status_code == 403
    bad_days = post(
        client, "/account/tokens", "/account", {"name": "x", "permission.view": "1", "days": "9999"}
    )
    assert bad_days.status_code == 422
    assert 'id="token-expires_in_days-error"' in bad_days.text
    assert operator(client, "coord").tokens() == ()


# ---------------------------------------------------------------------- administration


def test_an_admin_adds_a_site_through_the_page(client: TestClient) -> None:
    as_(client, "admin")
    response = post(client, "/admin/sites", "/admin/sites", {"code": "BOS", "name": SCRIPT})
    assert response.status_code == 303
    assert ("BOS", SCRIPT) in {(site.code, site.name) for site in operator(client).sites()}
    page = client.get("/admin/sites")
    assert ESCAPED in page.text
    assert SCRIPT not in page.text
    bad = post(client, "/admin/sites", "/admin/sites", {"code": "bad code", "name": "x"})
    assert bad.status_code == 422
    assert 'id="site-code-error"' in bad.text
    assert "bad code" in bad.text  # the input is kept


def test_an_admin_adds_a_member_of_staff_who_sees_arms_with_a_reason(
    client: TestClient,
) -> None:
    as_(client, "admin")
    response = post(
        client,
        "/admin/staff",
        "/admin/staff",
        {
            "username": "dsmb",
            "role": "statistician",
            "all_sites": "1",
            "unblinded": "yes",
            "reason": SCRIPT,
        },
    )
    assert response.status_code == 303
    (member,) = [view for view in operator(client).staff() if view.username == "dsmb"]
    assert member.unblinded
    assert member.sites == ("*",)
    grants = [grant for grant in operator(client).grants() if grant.username == "dsmb"]
    assert grants[0].reason == SCRIPT
    for path in ("/admin/staff", "/admin/staff/dsmb"):
        page = client.get(path)
        assert ESCAPED in page.text
        assert SCRIPT not in page.text


def test_adding_staff_without_a_site_is_refused_at_the_field_and_nothing_stored(
    client: TestClient,
) -> None:
    as_(client, "admin")
    response = post(
        client, "/admin/staff", "/admin/staff", {"username": "newbie", "role": "coordinator"}
    )
    assert response.status_code == 422
    assert 'id="add-sites-error"' in response.text
    assert 'value="newbie"' in response.text
    assert "newbie" not in {view.username for view in operator(client).staff()}


def test_a_deactivated_user_s_session_ends_at_their_next_request(
    client: TestClient, world: World
) -> None:
    set_password(client, "coord")
    coordinator = TestClient(client.app, follow_redirects=False)
    assert sign_in(coordinator, "coord").status_code == 303  # type: ignore[attr-defined]
    assert coordinator.get("/").status_code == 200
    as_(client, "admin")
    response = post(
        client, "/admin/staff/coord/active", "/admin/staff/coord", {"active": "0", "reason": SCRIPT}
    )
    assert response.status_code == 303
    assert not next(view for view in operator(client).staff() if view.username == "coord").active
    assert coordinator.get("/").status_code == 303  # sent to sign in
    audit = client.get("/audit", params={"action": "staff.deactivate"})
    assert ESCAPED in audit.text
    assert SCRIPT not in audit.text


def test_an_admin_sets_a_password_resets_a_second_factor_and_signs_someone_out(
    client: TestClient, world: World
) -> None:
    coord = operator(client, "coord")
    coord.confirm_totp(pyotp.TOTP(coord.enrol_totp().secret).at(world.clock.now))
    as_(client, "admin")
    page = "/admin/staff/coord"
    assert (
        post(
            client,
            "/admin/staff/coord/password",
            page,
            {"password": "another pass phrase entirely"},
        ).status_code
        == 303
    )
    assert (
        post(client, "/admin/staff/coord/totp-reset", page, {"reason": "lost phone"}).status_code
        == 303
    )
    assert (
        post(client, "/admin/staff/coord/sessions-end", page, {"reason": SCRIPT}).status_code == 303
    )
    member = next(view for view in operator(client).staff() if view.username == "coord")
    assert member.password
    assert not member.second_factor
    actions = [record.action for record in operator(client).audit_records(actor="admin").records]
    assert {"staff.password", "staff.totp_reset", "staff.sessions_end"} <= set(actions)
    empty = post(client, "/admin/staff/coord/sessions-end", page, {"reason": " "})
    assert empty.status_code == 422
    assert 'id="sessions-reason-error"' in empty.text


def test_grants_are_given_countersigned_and_revoked_through_the_pages(
    client: TestClient,
) -> None:
    operator(client).add_staff("admin2", "admin", all_sites=True)
    as_(client, "admin")
    given = post(
        client,
        "/admin/staff/monitor/grant",
        "/admin/staff/monitor",
        {"kind": "unblinded", "reason": SCRIPT},
    )
    assert given.status_code == 303
    grant = next(g for g in operator(client).grants() if g.username == "monitor")
    assert grant.waiting
    assert grant.reason == SCRIPT
    for path in ("/admin/staff", "/admin/staff/monitor"):
        shown = client.get(path).text
        assert ESCAPED in shown
        assert SCRIPT not in shown
    client.post("/sign-out", data={"csrf": hidden(client.get("/").text, "csrf")})
    as_(client, "admin2")
    signed = post(client, f"/admin/grants/{grant.id}/countersign", "/admin/staff", {})
    assert signed.status_code == 303
    assert (
        next(g for g in operator(client).grants() if g.id == grant.id).countersigned_by == "admin2"
    )
    taken = post(
        client,
        "/admin/staff/monitor/revoke",
        "/admin/staff/monitor",
        {"kind": "unblinded", "reason": "done"},
    )
    assert taken.status_code == 303
    assert not next(v for v in operator(client).staff() if v.username == "monitor").unblinded


def test_an_admin_revokes_someone_else_s_token(client: TestClient) -> None:
    made = operator(client, "stat").create_token("laptop", ["dataset"], 30)
    as_(client, "admin")
    page = client.get("/admin/staff/stat")
    assert "laptop" in page.text
    assert made.token not in page.text
    response = post(client, f"/admin/staff/stat/tokens/{made.id}/revoke", "/admin/staff/stat", {})
    assert response.status_code == 303
    assert operator(client, "stat").tokens()[0].state == "revoked"


def test_a_member_of_staff_who_does_not_exist_is_not_found(client: TestClient) -> None:
    as_(client, "admin")
    assert client.get("/admin/staff/nobody").status_code == 404


@pytest.mark.parametrize("username", ["coord", "monitor", "stat"])
def test_administration_is_refused_to_other_roles(client: TestClient, username: str) -> None:
    as_(client, username)
    for path in ("/admin/staff", "/admin/sites", "/admin/staff/coord"):
        assert client.get(path).status_code == 403, path
    response = post(client, "/admin/sites", "/account", {"code": "BOS", "name": "Boston"})
    assert response.status_code == 403
    assert "BOS" not in {site.code for site in operator(client).sites()}


def test_a_form_post_without_csrf_is_refused(client: TestClient) -> None:
    as_(client, "admin")
    response = client.post("/admin/sites", data={"code": "BOS", "name": "Boston"})
    assert response.status_code == 403
    assert "BOS" not in {site.code for site in operator(client).sites()}
    assert client.post("/account/tokens", data={"name": "x", "days": "1"}).status_code == 403


# ---------------------------------------------------------------------- audit trail


@pytest.mark.parametrize("username", ["monitor", "stat"])
def test_the_audit_trail_is_read_and_verified_by_monitor_and_statistician(
    client: TestClient, world: World, username: str
) -> None:
    study_id = world.randomized()
    as_(client, username)
    page = client.get("/audit")
    assert page.status_code == 200
    assert "participant.randomize" in page.text
    assert "Verify now" in page.text
    about = client.get("/audit", params={"participant": study_id})
    assert "participant.randomize" in about.text
    verified = client.get("/audit", params={"verify": "1"})
    assert "Intact." in verified.text
    for word in arm_words(world):
        assert word not in main(page.text)
        assert word not in main(about.text)


def test_each_audit_filter_narrows_the_records(client: TestClient, world: World) -> None:
    study_id = world.enrolled()
    other = world.enrolled("NYC", "coord_nyc")
    world.clock.advance(2)
    operator(client).set_active("coord_nyc", False, "moved away")
    as_(client, "monitor")

    def rows(**filters: str) -> str:
        response = client.get("/audit", params=filters)
        assert response.status_code == 200
        return response.text.split("<tbody>")[1] if "<tbody>" in response.text else ""

    assert "coord_nyc" in rows()
    assert "staff.deactivate" in rows()
    assert "<td>coord_nyc</td>" not in rows(actor="coord")
    assert "<td>coord</td>" in rows(actor="coord")
    assert "screening.record" not in rows(action="staff")
    assert "staff.deactivate" in rows(action="staff")
    today = world.clock.today.isoformat()
    assert "screening.record" not in rows(since=today)
    assert "staff.deactivate" in rows(since=today)
    assert "staff.deactivate" not in rows(
        until=(world.clock.today - dt.timedelta(days=1)).isoformat()
    )
    assert other not in rows(participant=study_id)
    assert "participant.enrol" in rows(participant=study_id)
    bad = client.get("/audit", params={"since": "not a date"})
    assert bad.status_code == 422
    assert 'id="filters-since-error"' in bad.text


def test_the_audit_trail_pages_newest_first(client: TestClient) -> None:
    as_(client, "monitor")
    for number in range(60):
        operator(client).add_site(f"S{number}", f"Site {number}")
    first = client.get("/audit")
    second = client.get("/audit", params={"page": "2"})
    seqs_first = [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', first.text)]
    seqs_second = [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', second.text)]
    assert len(seqs_first) == 50
    assert seqs_first == sorted(seqs_first, reverse=True)
    assert max(seqs_second) < min(seqs_first)
    assert "Older records" in first.text


@pytest.mark.parametrize("username", ["coord", "assessor", "ther"])
def test_the_audit_trail_is_refused_to_roles_without_the_audit_permission(
    client: TestClient, username: str
) -> None:
    as_(client, username)
    assert client.get("/audit").status_code == 403
    assert client.get("/audit", params={"since": "nonsense"}).status_code == 403


def test_a_monitor_bound_to_one_site_is_refused_the_audit_records(client: TestClient) -> None:
    operator(client).add_staff("monitor_nyc", "monitor", ["NYC"])
    as_(client, "monitor_nyc")
    response = client.get("/audit")
    assert response.status_code == 403
    assert "all sites" in response.text


# ---------------------------------------------------------------------- exports


def test_a_statistician_downloads_the_dataset_without_arms_or_identifiers(
    client: TestClient, world: World
) -> None:
    study_id = world.randomized()
    operator(client, "coord").record_identity(
        study_id, name="Jane Roe", contact="jane@example.org", birth_date=dt.date(1980, 5, 17)
    )
    as_(client, "stat")
    assert client.get("/exports").status_code == 200
    response = post(client, "/exports/dataset", "/exports", {})
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment;")
    assert response.headers["content-type"].startswith("text/csv")
    text = response.text
    assert text.splitlines()[0].startswith("participant,site,arm,")
    assert study_id in text
    for identifier in ("Jane Roe", "jane@example.org", "1980-05-17", "name", "contact", "birth"):
        assert identifier not in text
    for word in arm_words(world):
        assert word not in text
    synthetic = client.app.state.context.synthetic  # type: ignore[attr-defined]
    assert ("synthetic" in response.headers["content-disposition"]) is synthetic
    assert "dataset.export" in {
        record.action for record in operator(client).audit_records(actor="stat").records
    }


@pytest.mark.parametrize("username", ["coord", "monitor", "assessor"])
def test_exports_are_refused_to_roles_without_the_dataset_permission(
    client: TestClient, username: str
) -> None:
    as_(client, username)
    assert client.get("/exports").status_code == 403
    assert post(client, "/exports/dataset", "/account", {}).status_code == 403


def test_a_synthetic_trial_s_dataset_is_labelled_synthetic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'synthetic.db'}"
    clock = Clock()
    key_file = tmp_path / "synthetic.key"
    protocol = shipped_protocol("massage-clbp")
    create_trial(protocol, url, admin="admin", key_file=key_file, synthetic=True, clock=clock)
    app = create_app(url, key_file=key_file, clock=clock, password_hasher=CHEAP)
    with TestClient(app, follow_redirects=False) as client:
        as_(client, "admin")
        page = client.get("/exports")
        assert "Synthetic data." in page.text
        response = post(client, "/exports/dataset", "/exports", {})
        assert response.status_code == 200
        assert "-synthetic-dataset-" in response.headers["content-disposition"]
