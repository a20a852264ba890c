"""A refusal from the server becomes the error the operation raises, shown the same way."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lumbar.cli.remote import _refusal
from lumbar.errors import AccessError, AnswerError, LumbarError, OperationError, Problem

pytestmark = pytest.mark.unit

UNKNOWN = Problem("participant", "is not a participant at your sites", "S00007", "check the id")


def _body(summary: str, problems: list[dict[str, Any]]) -> bytes:
    return json.dumps({"error": summary, "problems": problems}).encode()


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, AnswerError),
        (401, AccessError),
        (403, AccessError),
        (404, OperationError),
        (409, OperationError),
    ],
)
def test_each_status_becomes_the_operations_error_with_its_problems(
    status: int, kind: type[LumbarError]
) -> None:
    sent = {
        "where": UNKNOWN.where,
        "rule": UNKNOWN.rule,
        "received": "S00007",
        "hint": UNKNOWN.hint,
    }
    error = _refusal(status, _body("unknown participant", [sent]))
    assert type(error) is kind
    assert str(error) == str(kind("unknown participant", [UNKNOWN]))


def test_a_refusal_the_operation_gave_without_problems_shows_only_its_summary() -> None:
    bare = {"where": "", "rule": "randomized already", "received": None, "hint": ""}
    error = _refusal(409, _body("randomized already", [bare]))
    assert str(error) == str(OperationError("randomized already"))


def test_a_problem_without_a_received_value_shows_none() -> None:
    sent = {"where": "reason", "rule": "is required", "received": None, "hint": "say why"}
    error = _refusal(409, _body("no reason", [sent]))
    assert str(error) == str(
        OperationError("no reason", [Problem("reason", "is required", hint="say why")])
    )


def test_an_answer_that_is_not_the_error_shape_names_the_status() -> None:
    assert str(_refusal(502, b"<html>bad gateway</html>")) == "the server answered 502"
