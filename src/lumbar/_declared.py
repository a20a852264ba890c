"""Declared data: frozen pydantic models read from YAML with line-precise errors.

Protocols and wording files are written by people in YAML. When one is wrong,
the error must say the file, the line, the field, the value received, the rule
and what to do, for every mistake at once. This module holds the pieces both
kinds of file share:

- :class:`Frozen`, the base of every declared model (immutable, unknown fields refused);
- :func:`read_yaml`, which parses YAML, refuses duplicate keys (PyYAML would
  silently keep the last one) and records the line of every node; it is the one
  YAML reader for protocols, wording and answers, and refuses a document beyond
  the ``MAX_YAML_*`` limits (length, values, aliases, depth, a number's length)
  before building it, so no file can exhaust the machine;
- :func:`problems_from_validation`, which turns pydantic's errors into
  :class:`~lumbar.errors.Problem` objects with paths, lines and hints.
"""

from __future__ import annotations

import os
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Strict, ValidationError
from pydantic_core import PydanticCustomError

from lumbar.errors import Problem

__all__ = [
    "MAX_NUMBER_CHARACTERS",
    "MAX_YAML_ALIASES",
    "MAX_YAML_CHARACTERS",
    "MAX_YAML_DEPTH",
    "MAX_YAML_VALUES",
    "RULE_ERROR",
    "Flag",
    "Frozen",
    "Identifier",
    "LineMap",
    "Number",
    "Path",
    "Text",
    "Whole",
    "YamlSyntaxError",
    "find_by_id",
    "format_number",
    "format_path",
    "problems_from_validation",
    "read_text_limited",
    "read_yaml",
    "refuse",
]

Path = tuple[str | int, ...]

RULE_ERROR = "lumbar_rule"


def refuse(rule: str, hint: str) -> PydanticCustomError:
    """An error for a model validator to raise: the broken rule and what to do.

    Raise it (rather than ValueError) inside a validator so the loader can show
    the hint beside the rule.
    """
    return PydanticCustomError(RULE_ERROR, "{rule}", {"rule": rule, "hint": hint})


_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,47}")


def _check_identifier(value: str) -> str:
    if not _IDENTIFIER.fullmatch(value):
        raise refuse(
            "must be an identifier: a lowercase letter, then up to 47 lowercase letters, "
            "digits or underscores (it becomes a column name in the dataset)",
            "rename it, e.g. 'Pain Score' -> pain_score",
        )
    return value


def _check_text(value: str) -> str:
    if not value.strip():
        raise refuse("must not be empty", "write the text")
    return value


Identifier = Annotated[str, AfterValidator(_check_identifier)]
"""A name that becomes a column or key: ``[a-z][a-z0-9_]*``, at most 48 characters."""

Text = Annotated[str, AfterValidator(_check_text)]
"""Human text that must say something."""

Whole = Annotated[int, Strict()]
"""A whole number as written: ``"10"``, ``10.0`` and ``true`` are refused, not converted."""

Number = Annotated[float, Strict()]
"""A finite number as written (a whole number is fine); ``"0.05"`` is refused, not converted."""

Flag = Annotated[bool, Strict()]
"""true or false as written; ``"yes"`` and ``1`` are refused, not converted."""


class Frozen(BaseModel):
    """Base of declared models: immutable, validated once, unknown fields refused."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        validate_default=False,
        allow_inf_nan=False,
    )


# ---------------------------------------------------------------- YAML with lines


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser when PyYAML was built with it (about 10x faster), else the pure one."""


class YamlSyntaxError(Exception):
    """YAML that cannot be parsed, or that uses a feature declared files may not use."""

    def __init__(self, problem: Problem):
        self.problem = problem
        super().__init__(problem.describe())


@dataclass
class LineMap:
    """The 1-based line of every node in a YAML document, by path."""

    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """The line of the node at ``path``, or of its nearest ancestor that exists."""
        current: Path = tuple(path)
        while True:
            if current in self.lines:
                return self.lines[current]
            if not current:
                return None
            current = current[:-1]


# Limits on what a declared file may hold. A protocol, a wording file or an answers
# file is written by a person; these bounds are far above any such file (the shipped
# protocol is 17 kB, 733 values, 8 levels deep) and far below what would exhaust the
# machine, so a hostile or broken file is refused in well under a second, with
# bounded memory, before anything is built from it.

MAX_YAML_CHARACTERS = 1_000_000
"""Longest YAML text read: about 60 times the shipped protocol."""

MAX_YAML_VALUES = 50_000
"""Most values (mappings, lists, keys and scalars, aliases expanded) in one document:
about 70 times the shipped protocol. Bounds time and memory whatever aliases do."""

MAX_YAML_DEPTH = 32
"""Deepest nesting of lists and mappings: four times the shipped protocol's 8."""

MAX_YAML_ALIASES = 50
"""Most aliases (``*name``) in one document. A few save repetition; a "billion laughs"
document needs many to grow exponentially."""

MAX_NUMBER_CHARACTERS = 40
"""Longest number read, in characters. 40 digits exceed every rule's range (and a float's
precision) many times over; longer ones are refused before Python converts them (a
5,000-digit integer would otherwise hit Python's int-conversion limit or take time)."""

_NUMBER_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})


def read_text_limited(path: str | os.PathLike[str]) -> str:
    """The UTF-8 text of a file, refused unread beyond :data:`MAX_YAML_CHARACTERS`.

    Raises OSError or UnicodeDecodeError as :meth:`pathlib.Path.read_text` does, and
    :class:`YamlSyntaxError` when the file is too large.
    """
    with open(path, "rb") as file:
        # UTF-8 uses at most 4 bytes a character.
        data = file.read(4 * MAX_YAML_CHARACTERS + 1)
    text = data.decode("utf-8")
    _check_length(text)
    return text


def _check_length(text: str) -> None:
    if len(text) > MAX_YAML_CHARACTERS:
        raise YamlSyntaxError(
            Problem(
                where="document",
                rule=f"is longer than lumbar reads (at most {MAX_YAML_CHARACTERS:,} characters)",
                hint="this is far longer than any protocol, wording or answers file; "
                "check that it is the right file",
            )
        )


def read_yaml(text: str) -> tuple[Any, LineMap]:
    """Parse YAML text into plain Python values and the line of every node.

    Raises :class:`YamlSyntaxError` for a syntax error, a duplicate key, a
    non-text key, a custom tag, or a document beyond the limits above (length,
    values, depth, aliases, a number's length, an alias inside itself).
    """
    _check_length(text)
    try:
        _check_events(text)
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        line = mark.line + 1 if mark is not None else None
        problem = Problem(
            where="YAML syntax",
            rule=str(error.problem or error),
            hint="check indentation (spaces, not tabs), colons and quotes near this line",
            line=line,
        )
        raise YamlSyntaxError(problem) from None
    except yaml.YAMLError as error:
        raise YamlSyntaxError(Problem(where="YAML syntax", rule=str(error))) from None
    except RecursionError:  # PyYAML's pure-Python composer, without libyaml's depth limit
        raise YamlSyntaxError(_too_deep(None)) from None
    lines = LineMap()
    if node is None:
        return None, lines
    _Measure().total(node)
    constructor = yaml.SafeLoader("")
    return _build(node, (), lines, constructor), lines


def _check_events(text: str) -> None:
    """Count what the text writes (values, aliases, depth) from the parser's events, and
    stop at the first limit passed: before any node is composed, so memory stays small
    (composing a 1 MB list of numbers would hold half a million nodes)."""
    values = aliases = depth = 0
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_YAML_ALIASES:
                raise YamlSyntaxError(
                    Problem(
                        where="document",
                        rule=f"uses more than {MAX_YAML_ALIASES} aliases (*name)",
                        hint="write the repeated sections out in full",
                        line=_line(event.start_mark),
                    )
                )
        elif isinstance(event, yaml.ScalarEvent):
            values += 1
        elif isinstance(event, yaml.CollectionStartEvent):
            values += 1
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise YamlSyntaxError(_too_deep(_line(event.start_mark)))
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        if values > MAX_YAML_VALUES:
            raise YamlSyntaxError(_too_many(_line(event.start_mark)))


def _line(mark: Any) -> int | None:
    return mark.line + 1 if mark is not None else None


def _too_many(line: int | None) -> Problem:
    return Problem(
        where="document",
        rule=f"holds more than {MAX_YAML_VALUES:,} values (aliases expanded)",
        hint="a protocol holds about a thousand; check for aliases (*name) "
        "that repeat large sections, or for a file that is not lumbar's",
        line=line,
    )


def _too_deep(line: int | None) -> Problem:
    return Problem(
        where="document",
        rule=f"nests lists and mappings more than {MAX_YAML_DEPTH} levels deep",
        hint="lumbar files are a few levels deep; check the indentation and brackets",
        line=line,
    )


class _Measure:
    """Sizes a composed document before anything is built from it.

    PyYAML composes an alias as the very node its anchor names, so a document is a
    graph: a few hundred bytes of aliases can stand for billions of values, and an
    alias inside its own anchor is a cycle. Each node is measured once (remembered
    by identity), so measuring takes time in proportion to the text, not to what
    the aliases would expand to.
    """

    def __init__(self) -> None:
        self.measured: dict[int, tuple[int, int]] = {}  # node id -> (values, depth)
        self.open: set[int] = set()

    def total(self, node: yaml.Node) -> None:
        values, _depth = self._measure(node, 0)
        if values > MAX_YAML_VALUES:
            raise YamlSyntaxError(_too_many(1))

    def _measure(self, node: yaml.Node, level: int) -> tuple[int, int]:
        key = id(node)
        if key in self.open:
            raise YamlSyntaxError(
                Problem(
                    where="document",
                    rule="an alias refers to a section that contains it (a recursive alias)",
                    hint="an alias (*name) must not appear inside its own anchor (&name)",
                    line=node.start_mark.line + 1,
                )
            )
        if key in self.measured:  # an alias: the same node again
            values, depth = self.measured[key]
        else:
            self.open.add(key)
            values, depth = self._measure_new(node, level)
            self.open.discard(key)
            self.measured[key] = (values, depth)
        if level + depth > MAX_YAML_DEPTH:
            raise YamlSyntaxError(_too_deep(node.start_mark.line + 1))
        return values, depth

    def _measure_new(self, node: yaml.Node, level: int) -> tuple[int, int]:
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            return 1, 0
        if level + 1 > MAX_YAML_DEPTH:
            raise YamlSyntaxError(_too_deep(node.start_mark.line + 1))
        values, depth = 1, 0
        for child in children:
            child_values, child_depth = self._measure(child, level + 1)
            # Saturate: the total only needs to be known up to the limit.
            values = min(values + child_values, MAX_YAML_VALUES + 1)
            depth = max(depth, child_depth + 1)
        return values, depth


def _check_number(node: yaml.Node, path: Path) -> None:
    if node.tag in _NUMBER_TAGS and len(str(node.value)) > MAX_NUMBER_CHARACTERS:
        raise YamlSyntaxError(
            Problem(
                where=format_path(path) or "document",
                rule=f"a number of {len(str(node.value)):,} characters is longer than lumbar "
                f"reads (at most {MAX_NUMBER_CHARACTERS}); no rule's range needs more",
                received=node.value,
                hint="check the value; write the number as the rule asks",
                line=node.start_mark.line + 1,
                path=path,
            )
        )


def _build(node: yaml.Node, path: Path, lines: LineMap, constructor: yaml.SafeLoader) -> Any:
    lines.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlSyntaxError(
                    Problem(
                        where=format_path(path) or "document",
                        rule="merge keys (<<) are not allowed in lumbar files",
                        hint="write the fields out in full",
                        line=key_node.start_mark.line + 1,
                    )
                )
            _check_number(key_node, path)
            key = constructor.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise YamlSyntaxError(
                    Problem(
                        where=format_path(path) or "document",
                        rule="keys must be text",
                        received=key,
                        hint="quote the key, for example '\"10\": ...'",
                        line=key_node.start_mark.line + 1,
                    )
                )
            if key in result:
                raise YamlSyntaxError(
                    Problem(
                        where=format_path((*path, key)),
                        rule=f"the key {key!r} appears twice in the same mapping",
                        hint="remove one of them; YAML would silently keep only the last",
                        line=key_node.start_mark.line + 1,
                    )
                )
            result[key] = _build(value_node, (*path, key), lines, constructor)
            # A person looks for a field at its key, not where its value starts.
            lines.lines[(*path, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(item, (*path, index), lines, constructor)
            for index, item in enumerate(node.value)
        ]
    _check_number(node, path)
    try:
        return constructor.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as error:
        raise YamlSyntaxError(
            Problem(
                where=format_path(path) or "document",
                rule=str(error.problem),
                hint="lumbar files use plain YAML values: text, numbers, true/false, lists, maps",
                line=node.start_mark.line + 1,
                path=path,
            )
        ) from None
    except (ValueError, OverflowError) as error:  # a date such as 2024-13-45
        raise YamlSyntaxError(
            Problem(
                where=format_path(path) or "document",
                rule=f"cannot be read as a {node.tag.rsplit(':', 1)[-1]}: {error}",
                received=node.value,
                hint="correct the value, or quote it to make it text",
                line=node.start_mark.line + 1,
                path=path,
            )
        ) from None


# ---------------------------------------------------------------- validation errors


class _HasId(typing.Protocol):
    @property
    def id(self) -> str: ...


_Entry = typing.TypeVar("_Entry", bound=_HasId)


def find_by_id(entries: Iterable[_Entry], identifier: str) -> _Entry:
    """The entry whose ``id`` is ``identifier``; KeyError when there is none."""
    for entry in entries:
        if entry.id == identifier:
            return entry
    raise KeyError(identifier)


def format_number(value: float) -> str:
    """``20.0`` -> ``20``; ``0.5`` -> ``0.5``: numbers as a person would write them."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def format_path(path: Sequence[str | int]) -> str:
    """``("arms", 1, "sessions")`` -> ``arms[1].sessions``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


# pydantic error type -> (rule, what to do), for errors pydantic raises itself.
_KNOWN_ERRORS = {
    "int_type": ("must be a whole number", "write a whole number without quotes, e.g. 10"),
    "int_parsing": ("must be a whole number", "write a whole number without quotes, e.g. 10"),
    "int_from_float": ("must be a whole number", "write a whole number, e.g. 10"),
    "float_type": ("must be a number", "write a number without quotes, e.g. 0.05"),
    "float_parsing": ("must be a number", "write a number without quotes, e.g. 0.05"),
    "finite_number": ("must be a finite number", "write a finite number (not .nan or .inf)"),
    "bool_type": ("must be true or false", "write true or false without quotes"),
    "bool_parsing": ("must be true or false", "write true or false without quotes"),
    "string_type": (
        "must be text",
        "quote the value if YAML reads it as a number, a date or true/false",
    ),
    "list_type": ("must be a list", "write [a, b] or one '- item' line per entry"),
    "tuple_type": ("must be a list", "write [a, b] or one '- item' line per entry"),
    "dict_type": ("must be a mapping of names to values", "write 'name: value' lines"),
    "model_type": ("must be a mapping of fields", "write 'field: value' lines"),
    "model_attributes_type": ("must be a mapping of fields", "write 'field: value' lines"),
    "literal_error": (None, "use one of the values listed"),
    "too_long": (None, "remove entries"),
    "greater_than": (None, "raise the value"),
    "greater_than_equal": (None, "raise the value"),
    "less_than": (None, "lower the value"),
    "less_than_equal": (None, "lower the value"),
}


def problems_from_validation(
    error: ValidationError,
    model: type[BaseModel],
    lines: LineMap | None = None,
    prefix: Path = (),
) -> list[Problem]:
    """Translate pydantic's errors into Problems with a path, a line and a hint.

    One problem per place: the errors pydantic gives for each member of a union
    (``is: .nan`` is neither true/false, a number nor text) become one problem,
    and "too few entries" is dropped where entries were only refused for errors
    of their own, which are listed.
    """
    problems: list[Problem] = []
    for detail in error.errors(include_url=False):
        location = (*prefix, *_clean_location(detail["loc"]))
        problems.append(_problem(detail, location, model, prefix, lines))
    failed_inside = {
        problem.path[:depth] for problem in problems for depth in range(len(problem.path))
    }
    problems = [
        problem
        for problem in problems
        if not (problem.rule.startswith(_TOO_SHORT) and problem.path in failed_inside)
    ]
    return _merge_same_place(problems)


_TOO_SHORT = "too few entries"


def _problem(
    detail: Any, location: Path, model: type[BaseModel], prefix: Path, lines: LineMap | None
) -> Problem:
    where = format_path(location) or "document"
    line = lines.line_of(location) if lines is not None else None
    kind = detail["type"]
    if kind == "missing":
        hint = f"add '{location[-1]}' here" if location else "add the missing field"
        return Problem(where, "is required", hint=hint, line=line, path=location)
    if kind == "extra_forbidden":
        allowed = sorted(_fields_at(model, location[len(prefix) : -1]))
        hint = "check the spelling; the fields here are: " + ", ".join(allowed)
        return Problem(where, "is not a field of this section", hint=hint, line=line, path=location)
    context = detail.get("ctx") or {}
    received = detail.get("input")
    if kind == RULE_ERROR:
        rule, hint = str(context["rule"]), str(context["hint"])
        if isinstance(received, dict):
            # A rule over a whole section: the section itself is no useful "received".
            return Problem(where, rule, hint=hint, line=line, path=location)
    elif kind == "too_short":
        rule = f"{_TOO_SHORT}: needs at least {context.get('min_length')}"
        hint = "add entries"
    elif kind in _KNOWN_ERRORS:
        known_rule, hint = _KNOWN_ERRORS[kind]
        rule = known_rule or _lowered(str(detail["msg"]))
    else:
        rule = _lowered(str(detail["msg"]))
        hint = "correct the value as the rule says"
    return Problem(where, rule, received, hint, line, path=location)


def _merge_same_place(problems: list[Problem]) -> list[Problem]:
    merged: dict[Path, Problem] = {}
    for problem in problems:
        earlier = merged.get(problem.path)
        if earlier is None or not problem.path:
            merged[problem.path or (len(merged),)] = problem
            continue
        kinds = earlier.rule.removeprefix("must be one of: ").removeprefix("must be ")
        kind = problem.rule.removeprefix("must be ")
        if kind in kinds.split("; "):
            continue
        rule = f"must be one of: {kinds}; {kind}"
        merged[problem.path] = Problem(
            earlier.where,
            rule,
            earlier.received,
            "write a value of one of these kinds",
            earlier.line,
            earlier.path,
        )
    return list(merged.values())


def _lowered(message: str) -> str:
    for noise in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(noise)
    return message[:1].lower() + message[1:]


_UNION_MEMBERS = {"bool", "int", "float", "str"}


def _clean_location(location: Sequence[str | int]) -> Path:
    # pydantic adds the tag of a union member or a function validator's name to
    # some locations; a person reading the error knows only their file's keys.
    cleaned: list[str | int] = []
    for index, part in enumerate(location):
        if isinstance(part, str) and (
            part.startswith("function-")
            or part in {"tagged-union", "union"}
            or (part in _UNION_MEMBERS and index == len(location) - 1)
        ):
            continue
        cleaned.append(part)
    return tuple(cleaned)


def _fields_at(model: type[BaseModel], location: Sequence[str | int]) -> list[str]:
    """The field names (as written in files) of the model found at ``location``."""
    current: Any = model
    for part in location:
        current = _step(current, part)
        if current is None:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [info.alias or name for name, info in current.model_fields.items()]
    return []


def _step(annotation: Any, part: str | int) -> Any:
    """Follow one path step through a model or container annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if not isinstance(part, str):
            return None
        for name, info in annotation.model_fields.items():
            if part in (name, info.alias):
                return _unwrap(info.annotation)
        return None
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin in (tuple, list) and arguments:
        return _unwrap(arguments[0])
    if origin in (dict, Mapping) and len(arguments) == 2:
        return _unwrap(arguments[1])
    return None


def _unwrap(annotation: Any) -> Any:
    """Strip ``Optional``/``Annotated`` to the model or container inside."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return _unwrap(members[0])
    return annotation
