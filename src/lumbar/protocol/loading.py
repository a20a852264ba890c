"""Reading protocols: from YAML text, from a file, or by the name of a shipped protocol.

Every problem in a file is reported at once, each with the file, the line, the
field path, the value received, the rule, and what to do.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from lumbar._declared import (
    YamlSyntaxError,
    problems_from_validation,
    read_text_limited,
    read_yaml,
)
from lumbar.errors import Problem, ProtocolError
from lumbar.protocol.model import Protocol

__all__ = [
    "load_protocol",
    "parse_protocol",
    "resolve_protocol",
    "shipped_consent_documents",
    "shipped_protocol",
    "shipped_protocol_names",
    "shipped_text",
]

_SHIPPED = "lumbar.protocol.protocols"


def parse_protocol(text: str, source: str = "<protocol>") -> Protocol:
    """Parse and validate protocol YAML; ``source`` names it in error messages."""
    try:
        data, lines = read_yaml(text)
    except YamlSyntaxError as error:
        raise ProtocolError("the protocol is not valid YAML", [error.problem], source) from None
    if not isinstance(data, dict):
        raise ProtocolError(
            "the protocol is not valid",
            [
                Problem(
                    "document",
                    "must be a mapping of sections (lumbar_protocol, trial, arms, ...)",
                    type(data).__name__,
                    "start from a shipped protocol: lumbar protocol show massage-clbp --yaml",
                    line=1,
                )
            ],
            source,
        )
    try:
        return Protocol.model_validate(data)
    except ValidationError as error:
        problems = problems_from_validation(error, Protocol, lines)
        raise ProtocolError("the protocol is not valid", problems, source) from None
    except ProtocolError as error:
        located = [problem.with_line(lines.line_of(problem.path)) for problem in error.problems]
        raise ProtocolError(error.summary, located, source) from None


def load_protocol(path: str | Path) -> Protocol:
    """Read and validate a protocol file."""
    path = Path(path)
    try:
        text = read_text_limited(path)
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ProtocolError(
            "cannot read the protocol file",
            [Problem("file", reason, hint="check the path, and that the file is UTF-8 text")],
            str(path),
        ) from None
    except YamlSyntaxError as error:
        raise ProtocolError("cannot read the protocol file", [error.problem], str(path)) from None
    return parse_protocol(text, str(path))


def shipped_protocol_names() -> tuple[str, ...]:
    """The names of the protocols that ship with lumbar."""
    folder = resources.files(_SHIPPED)
    return tuple(
        sorted(
            entry.name.removesuffix(".yaml")
            for entry in folder.iterdir()
            if entry.name.endswith(".yaml")
        )
    )


def shipped_consent_documents() -> Path:
    """The folder of the example consent documents the shipped protocols name
    (``lumbar serve --consent-documents`` with this folder shows them)."""
    return Path(str(resources.files(_SHIPPED).joinpath("consent")))


def shipped_text(name: str) -> str:
    """The YAML text of a shipped protocol."""
    if name not in shipped_protocol_names():
        raise ProtocolError(
            "unknown protocol",
            [
                Problem(
                    "protocol",
                    "is not a protocol shipped with lumbar, nor a file",
                    name,
                    "the shipped protocols are: " + ", ".join(shipped_protocol_names()),
                )
            ],
        )
    return resources.files(_SHIPPED).joinpath(f"{name}.yaml").read_text(encoding="utf-8")


def shipped_protocol(name: str) -> Protocol:
    """A protocol that ships with lumbar, by name (e.g. ``massage-clbp``)."""
    return parse_protocol(shipped_text(name), f"{name}.yaml (shipped)")


def resolve_protocol(name_or_path: str) -> Protocol:
    """A shipped protocol by name, or else a protocol file by path."""
    if name_or_path in shipped_protocol_names():
        return shipped_protocol(name_or_path)
    return load_protocol(name_or_path)
