"""The demo's accounts: one of each role, with a random password, that sign in to the pages."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lumbar.demo import (
    ACCOUNTS_BANNER,
    DEMO_ADDRESS,
    demo_accounts,
    synthetic_trial,
    write_accounts,
)
from lumbar.operations.vocabulary import ROLES
from lumbar.web.app import create_app
from tests.web.conftest import hidden

pytestmark = pytest.mark.integration


def test_the_demo_s_accounts_sign_in_to_the_web_pages(tmp_path: Path) -> None:
    made = synthetic_trial(tmp_path / "demo", participants=30, seed=7)
    accounts = demo_accounts(made)
    assert sorted(account.role for account in accounts) == sorted(ROLES)
    assert len({account.password for account in accounts}) == len(accounts)
    written = write_accounts(accounts, tmp_path / "demo" / "accounts.txt", made.database)
    assert written.stat().st_mode & 0o777 == 0o600
    text = written.read_text()
    assert text.startswith(ACCOUNTS_BANNER)
    assert f"lumbar serve --db {made.database}" in text
    assert DEMO_ADDRESS in text
    # What a new user does: serve the trial as `lumbar serve` would, and sign in.
    app = create_app(made.url)  # the key file beside the database, as `lumbar serve` finds it
    with TestClient(app, follow_redirects=False) as browser:
        for account in accounts:
            assert account.password in text
            form = browser.get("/sign-in")
            signed_in = browser.post(
                "/sign-in",
                data={
                    "username": account.username,
                    "password": account.password,
                    "csrf": hidden(form.text, "csrf"),
                    "next": "/",
                },
            )
            assert signed_in.status_code == 303, (account.username, signed_in.text)
            dashboard = browser.get("/")
            assert dashboard.status_code == 200
            assert f'{account.username} <span class="role">({account.role})' in dashboard.text
            assert "SYNTHETIC DATA" in dashboard.text
            browser.post("/sign-out", data={"csrf": hidden(dashboard.text, "csrf")})
