"""The command line over a lumbar server's JSON API, for staff who hold a token, not the database.

::

    export LUMBAR_TOKEN=lmb_...            # from 'lumbar user token create'
    lumbar participants --server https://trial.example

The token is read from ``LUMBAR_TOKEN`` only (never a flag, so it stays out of the
shell's history and the process list). A refusal from the server arrives in the API's
one error shape and becomes the same :class:`~lumbar.errors.LumbarError` the command
would have raised against the database, so the command line shows it the same way.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

from lumbar.errors import AccessError, OperationError, Problem, StoreError

__all__ = ["TOKEN_ENV", "get_json"]

TOKEN_ENV = "LUMBAR_TOKEN"
_TIMEOUT_SECONDS = 30
_API = "/api/v1"


def get_json(server: str, path: str) -> Any:
    """``GET`` one API path on ``server`` with the token of ``LUMBAR_TOKEN``; its JSON body."""
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
    request = urllib.request.Request(
        server.rstrip("/") + _API + path,
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
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


def _refusal(status: int, body: bytes) -> OperationError:
    """The server's refusal as the error the operation itself raises."""
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
        ]
    except (ValueError, KeyError, TypeError):
        summary, problems = f"the server answered {status}", []
    if status in (401, 403):
        return AccessError(summary, problems)
    return OperationError(summary, problems)
