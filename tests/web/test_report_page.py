"""The trial report, made and read in the browser, with its own sandboxed policy."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from lumbar.web.report import REPORT_SECURITY_POLICY
from tests.operations.world import World
from tests.web.conftest import hidden, set_password, sign_in

pytestmark = pytest.mark.integration


def signed_in_as(client: TestClient, username: str) -> TestClient:
    client.cookies.clear()
    set_password(client, username)
    assert sign_in(client, username).status_code == 303  # type: ignore[attr-defined]
    return client


def make(client: TestClient, imputations: str) -> object:
    token = hidden(client.get("/report").text, "csrf")
    return client.post("/report", data={"csrf": token, "imputations": imputations})


def arm_words(world: World) -> set[str]:
    return {word for arm in world.protocol.arms for word in (arm.id, arm.label.lower())}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_statistician_makes_and_reads_the_report_and_others_may_not(
    client: TestClient, world: World
) -> None:
    for _ in range(6):
        world.randomized()
    browser = signed_in_as(client, "stat_open")
    assert "Make the report" in browser.get("/report").text
    assert browser.get("/report/view").status_code == 404  # none made yet
    wrong = make(browser, "many")
    assert wrong.status_code == 422  # type: ignore[attr-defined]
    assert 'id="imputations-error"' in wrong.text  # type: ignore[attr-defined]
    made = make(browser, "2")
    assert made.status_code == 303, made.text  # type: ignore[attr-defined]
    page = browser.get("/report?made=1")
    assert "Read the report" in page.text
    assert "with 2 imputations" in page.text

    report = browser.get("/report/view")
    assert report.status_code == 200
    assert report.headers["content-security-policy"] == REPORT_SECURITY_POLICY
    assert "script-src" not in REPORT_SECURITY_POLICY  # no script runs in it
    assert "<style>" in report.text
    assert "<script" not in report.text
    figures = re.findall(r'href="figures/([^"]+\.svg)"', report.text)
    assert figures
    figure = browser.get(f"/report/figures/{figures[0]}")
    assert figure.status_code == 200
    assert figure.headers["content-type"].startswith("image/svg+xml")
    assert figure.headers["content-security-policy"] == REPORT_SECURITY_POLICY
    for wrong_name in ("..%2F..%2Ftrial.db", ".hidden.svg", "report.html", "x.exe"):
        assert browser.get(f"/report/figures/{wrong_name}").status_code == 404
    assert browser.get("/report/secrets/x.csv").status_code == 404
    # The staff pages keep their own strict policy.
    assert "sandbox" not in browser.get("/report").headers["content-security-policy"]

    # Roles that may not read the dataset may not make or read a report either.
    coordinator = signed_in_as(client, "coord")
    assert coordinator.get("/report").status_code == 403
    assert coordinator.get("/report/view").status_code == 403
    assert "Report</a>" not in coordinator.get("/").text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_blinded_statisticians_report_names_no_arm_and_an_unblinded_one_goes_with_the_access(
    client: TestClient, world: World
) -> None:
    for _ in range(6):
        world.randomized()
    blinded = signed_in_as(client, "stat")
    assert make(blinded, "2").status_code == 303  # type: ignore[attr-defined]
    html = blinded.get("/report/view").text.replace(world.protocol.trial.title, "TITLE")
    assert 'id="blinded-banner"' in html
    # Outside the protocol's own description of the design, no arm is named.
    html = re.sub(r'<section id="protocol">.*?</section>', "", html, flags=re.DOTALL).lower()
    assert not {word for word in arm_words(world) if word.lower() in html}
    assert "you are blinded" in blinded.get("/report").text

    unblinded = signed_in_as(client, "stat_open")
    assert make(unblinded, "2").status_code == 303  # type: ignore[attr-defined]
    assert unblinded.get("/report/view").status_code == 200
    admin = world.as_("admin")
    admin.revoke("stat_open", "unblinded", "left the unblinded team")
    admin.close()
    # A report made while they saw arms is not shown to them any more.
    assert unblinded.get("/report/view").status_code == 404
    assert "Read the report" not in unblinded.get("/report").text
