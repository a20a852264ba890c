"""A signed-in browser on the staff web application, over the world of tests/operations."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page

from lumbar.operations import Principal, Trial
from lumbar.web.app import create_app
from tests.operations.world import World, build_world

CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
"""argon2id at its smallest: these tests check behaviour, not hashing cost."""
PASSWORD = "four unrelated words here"


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> World:
    return build_world(database_url, tmp_path)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    app = create_app(
        world.url,
        key_file=world.key_file,
        clock=world.clock,
        password_hasher=CHEAP,
        consent_documents=world.consent_documents,
    )
    with TestClient(app, follow_redirects=False) as browser:
        yield browser


def set_password(client: TestClient, username: str, password: str = PASSWORD) -> None:
    context = client.app.state.context  # type: ignore[attr-defined]
    Trial(context, Principal.operator("admin")).set_password(password, username)


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found is not None, f"no hidden {name} in the page"
    return found.group(1)


def sign_in(client: TestClient, username: str, password: str = PASSWORD, code: str = "") -> object:
    page = client.get("/sign-in")
    return client.post(
        "/sign-in",
        data={
            "username": username,
            "password": password,
            "code": code,
            "csrf": hidden(page.text, "csrf"),
            "next": "/",
        },
    )


@pytest.fixture
def coordinator(client: TestClient) -> TestClient:
    set_password(client, "coord")
    response = sign_in(client, "coord")
    assert response.status_code == 303, response.text  # type: ignore[attr-defined]
    return client


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """``app`` served over HTTP on a free port of this machine, in a thread; its address."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    running = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    for _ in range(200):
        if running.started:
            break
        time.sleep(0.05)
    assert running.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        running.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, driven by Playwright, for one test module (the browser tests)."""
    from playwright.sync_api import sync_playwright

    from tests.web.browser import chromium

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    """A phone-sized tab for a participant's pages in the browser tests, failing the test on
    any failed request or console error (:func:`tests.web.browser.phone_tab`). Modules that
    drive the participant's pages in-process name their own ``phone`` (a TestClient)."""
    from tests.web.browser import phone_tab

    with phone_tab(browser) as tab:
        yield tab
