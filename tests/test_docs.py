"""Docs that cannot drift: generated references are current, and every name is documented."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import BaseModel

from lumbar._docs import cli_reference, instruments_reference
from lumbar.cli import app
from lumbar.instruments import INSTRUMENTS
from lumbar.protocol import Protocol

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@pytest.mark.parametrize(
    ("name", "generate"), [("cli.md", cli_reference), ("instruments.md", instruments_reference)]
)
def test_generated_docs_are_current(name: str, generate: typing.Callable[[], str]) -> None:
    committed = (DOCS / name).read_text(encoding="utf-8")
    assert committed == generate().rstrip() + "\n", f"docs/{name} is stale: run `make docs`"


def _commands(command: Any, path: str) -> list[tuple[str, Any]]:
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, f"{path} {name}")
    return found


@pytest.mark.parametrize(("path", "command"), _commands(typer.main.get_command(app), "lumbar"))
def test_every_command_has_help_and_a_reference_entry(path: str, command: Any) -> None:
    assert (command.help or "").strip(), f"{path} has no help text"
    assert f"## `{path}`" in (DOCS / "cli.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", INSTRUMENTS.names())
def test_every_instrument_has_a_reference_entry(name: str) -> None:
    assert f"## `{name}`" in (DOCS / "instruments.md").read_text(encoding="utf-8")


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[type[BaseModel]]:
    if model in seen:
        return seen
    seen.add(model)
    for info in model.model_fields.values():
        for inner in _model_types(info.annotation):
            _models(inner, seen)
    return seen


def _model_types(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    for argument in typing.get_args(annotation):
        found += _model_types(argument)
    return found


def _field_names() -> set[str]:
    names = set()
    for model in _models(Protocol, set()):
        for name, info in model.model_fields.items():
            names.add(info.alias or name)
    return names


@pytest.mark.parametrize("field", sorted(_field_names()))
def test_every_protocol_field_is_documented(field: str) -> None:
    text = (DOCS / "protocol.md").read_text(encoding="utf-8")
    assert re.search(rf"`{re.escape(field)}`", text), f"docs/protocol.md does not mention `{field}`"


def test_readme_shows_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme
    assert "make test" in readme
