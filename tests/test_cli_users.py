"""``lumbar user``: passwords, second factors and API tokens from the command line."""

from __future__ import annotations

import re

import pyotp
import pytest

from lumbar.errors import AccessError
from lumbar.operations import Context, authenticate_password, authenticate_token
from tests.clitools import Cli

pytestmark = pytest.mark.integration

PASSWORD = "a long enough pass phrase"


def signs_in(cli: Cli, username: str, password: str) -> bool:
    context = Context.open(cli.url, key_file=cli.key_file)
    try:
        return authenticate_password(context, username, password).username == username
    except AccessError:
        return False
    finally:
        context.close()


def test_passwd_asks_twice_without_echo_or_reads_a_pipe(cli: Cli) -> None:
    assert "password of carol set" in cli(
        "user", "passwd", user="carol", input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert signs_in(cli, "carol", PASSWORD)
    mismatch = cli("user", "passwd", user="carol", input=f"{PASSWORD}\nsomething else!\n", code=1)
    assert "do not match" in mismatch
    assert PASSWORD not in mismatch  # hidden input is not echoed
    assert signs_in(cli, "carol", PASSWORD)

    refused = cli("user", "passwd", "--password-stdin", user="carol", input="too short\n", code=2)
    assert "password: must be at least 12 characters long" in refused


def test_only_an_admin_sets_another_users_password(cli: Cli) -> None:
    refused = cli(
        "user", "passwd", "tom", "--password-stdin", user="carol", input=f"{PASSWORD}\n", code=2
    )
    assert "may not manage staff" in refused
    assert "password of tom set" in cli(
        "user", "passwd", "tom", "--password-stdin", input=f"{PASSWORD}\n"
    )
    assert signs_in(cli, "tom", PASSWORD)
    assert "tom" in cli("user", "list")


def test_totp_enrol_then_confirm_turns_the_second_factor_on(cli: Cli) -> None:
    cli("user", "passwd", "--password-stdin", user="carol", input=f"{PASSWORD}\n")
    enrolled = cli("user", "totp", "enrol", user="carol")
    match = re.search(r"secret: ([A-Z2-7]{32})", enrolled)
    assert match is not None
    assert "otpauth://totp/" in enrolled
    wrong = cli("user", "totp", "confirm", "123", user="carol", code=2)
    assert "code: is not the app's current 6-digit code" in wrong
    cli("user", "totp", "confirm", pyotp.TOTP(match.group(1)).now(), user="carol")
    listed = cli("user", "list")
    assert re.search(r"carol .* password \+ code", listed)
    assert not signs_in(cli, "carol", PASSWORD)  # a code is needed now
    cli("user", "totp", "reset", "carol", "--reason", "lost phone")
    assert signs_in(cli, "carol", PASSWORD)


def test_token_create_list_and_revoke(cli: Cli) -> None:
    created = cli(
        "user", "token", "create", "--name", "nightly", "--permission", "dataset",
        "--permission", "view", "--days", "30", user="sam",
    )  # fmt: skip
    match = re.search(r"token (\d+) \(nightly\): (lmb_\S+)", created)
    assert match is not None
    number, token = match.groups()
    context = Context.open(cli.url, key_file=cli.key_file)
    try:
        principal = authenticate_token(context, token)
        assert principal.permissions == frozenset({"dataset", "view"})
        listed = cli("user", "token", "list", user="sam")
        assert "nightly" in listed
        assert "active" in listed
        assert token not in listed
        assert token[:12] in listed
        assert "is not one of your tokens" in cli(
            "user", "token", "revoke", number, user="carol", code=2
        )
        assert f"token {number} revoked" in cli("user", "token", "revoke", number, user="sam")
        assert "revoked" in cli("user", "token", "list", "--user", "sam")
        with pytest.raises(AccessError):
            authenticate_token(context, token)
    finally:
        context.close()


def test_token_errors_name_the_flags(cli: Cli) -> None:
    refused = cli(
        "user", "token", "create", "--name", "x", "--permission", "bogus", "--days", "0",
        user="carol", code=2,
    )  # fmt: skip
    assert "--permission: is not a permission (received 'bogus')" in refused
    assert "--days: must be from 1 to 366 days (received 0)" in refused
    beyond = cli(
        "user", "token", "create", "--name", "x", "--permission", "dataset", user="carol", code=2
    )
    assert "a coordinator does not hold it" in beyond
