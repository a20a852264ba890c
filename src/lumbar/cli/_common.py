"""What every command shares: the root app, global options, output, and error translation.

Errors are translated in one place (:class:`LumbarGroup`): a
:class:`~lumbar.errors.LumbarError` prints its message on stderr and exits with
status 2; anything else is a bug and shows a traceback without local variables
(which could hold participants' data).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from lumbar._summary import SummaryTable
from lumbar.errors import LumbarError, OperationError, Problem
from lumbar.formatting import SYNTHETIC, SYNTHETIC_NOTE

__all__ = [
    "EXIT_REFUSED",
    "SERVER_COMMANDS",
    "LumbarGroup",
    "app",
    "console",
    "echo_table",
    "error_console",
    "option_names",
    "parse_answers",
    "parse_date",
    "print_synthetic",
    "print_tables",
]

EXIT_REFUSED = 2
"""Exit status when lumbar refuses input (a LumbarError); usage errors also exit 2."""

_PIPED_WIDTH = 140
"""Columns for output that is not a terminal (a file, a pipe): wide enough for the tables."""


FLAGS = {
    "db": "--db",
    "actor": "--as",
    "key_file": "--key-file",
    "other_trial": "--other-trial",
    "format": "--format",
    "confirm": "--confirm",
    "reason": "--reason",
    "answers": "--answers",
    "measure": "--measure",
    "method": "--method",
    "permissions": "--permission",
    "expires_in_days": "--days",
    "techniques": "--technique",
    "body_regions": "--region",
    "home_care": "--home-care",
    "minutes": "--minutes",
    "session_date": "--date",
}
"""The command line's name for each parameter that operations and store name neutrally."""


def as_flags(error: LumbarError) -> LumbarError:
    """``error`` with each problem's parameter named as the command line's flag."""
    return type(error)(error.summary, [_flagged(p) for p in error.problems], error.source)


def _flagged(problem: Problem) -> Problem:
    if problem.where in FLAGS:
        return dataclasses.replace(problem, where=FLAGS[problem.where])
    if problem.where.startswith("rating_"):  # a session's rating: --rating name=value
        return dataclasses.replace(
            problem, where=f"--rating {problem.where.removeprefix('rating_')}"
        )
    if problem.where.startswith("columns."):  # a column mapping: --column ours=theirs
        ours = problem.where.removeprefix("columns.")
        return dataclasses.replace(problem, where=f"--column {ours}={problem.received}")
    return problem


class LumbarGroup(TyperGroup):
    """The root command group: translates lumbar's errors into exit status 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except LumbarError as error:
            shown = as_flags(error)
            error_console().print(
                f"[bold red]error:[/] {escape(str(shown))}", markup=True, highlight=False
            )
            raise typer.Exit(EXIT_REFUSED) from None


SERVER_COMMANDS = (
    "screening add",
    "screening update",
    "consent",
    "enrol",
    "questionnaire add",
    "questionnaire visit",
    "questionnaire edit",
    "questionnaire list",
    "randomize",
    "session plan",
    "session log",
    "ae add",
    "ae update",
    "ae list",
    "withdraw",
    "schedule",
    "due",
    "follow-up",
    "participants",
)
"""The commands that take ``--server`` (each has its counterpart in the API, lumbar.web.api)."""

app = typer.Typer(
    cls=LumbarGroup,
    name="lumbar",
    help="lumbar runs randomized trials of treatments for chronic low back pain.\n\n"
    "Commands on a trial open its database (--db). Site staff's commands can instead go "
    "through a lumbar server's API with a personal token (--server URL, token in "
    "LUMBAR_TOKEN), so no database credentials are needed: "
    + ", ".join(SERVER_COMMANDS)
    + ". Every other command opens the database.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
)


def console() -> Console:
    out = Console(highlight=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=_PIPED_WIDTH)
    return out


def error_console() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False)


def print_tables(tables: Sequence[SummaryTable]) -> None:
    out = console()
    for summary in tables:
        if not summary.rows:
            out.print(f"{summary.title}: {summary.note or 'none'}", markup=False)
            continue
        table = Table(
            title=summary.title,
            title_justify="left",
            title_style="bold",
            caption=summary.note or None,
            caption_justify="left",
            box=box.SIMPLE_HEAD,
        )
        for column in summary.columns:
            table.add_column(column)
        for row in summary.rows:
            table.add_row(*row)
        out.print(table, markup=False)


def echo_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print rows of values as a table (None shows as '-')."""
    cells = tuple(tuple("-" if value is None else str(value) for value in row) for row in rows)
    print_tables([SummaryTable(title, tuple(columns), cells, note="" if cells else "none")])


def parse_date(text: str | None, option: str, today: dt.date | None = None) -> dt.date:
    """A date written YYYY-MM-DD, or today when not given."""
    if text is None:
        return today or dt.date.today()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise OperationError(
            "not a date",
            [Problem(option, "must be a date written YYYY-MM-DD", text, "e.g. 2026-03-01")],
        ) from None


def parse_answers(
    file: Path | None, pairs: Sequence[str], option: str = "--answer"
) -> dict[str, Any]:
    """Answers from a YAML/JSON mapping file and ``name=value`` pairs (pairs win).

    Values are read as YAML scalars: ``45`` is a number, ``true`` is yes, ``female`` is text.
    Both are read by the same bounded reader as protocols (no alias bombs, no endless
    numbers, see :func:`lumbar._declared.read_yaml`).
    """
    from lumbar._declared import YamlSyntaxError, read_text_limited, read_yaml  # startup

    answers: dict[str, Any] = {}
    if file is not None:
        try:
            loaded, _lines = read_yaml(read_text_limited(file))
        except (OSError, UnicodeDecodeError) as error:
            raise OperationError(
                "cannot read the answers",
                [Problem(str(file), str(error), hint="give a YAML or JSON mapping")],
            ) from None
        except YamlSyntaxError as error:
            raise OperationError("cannot read the answers", [error.problem], str(file)) from None
        if not isinstance(loaded, dict):
            raise OperationError(
                "cannot read the answers",
                [
                    Problem(
                        str(file), "must be a mapping of names to answers", type(loaded).__name__
                    )
                ],
            )
        answers.update(loaded)
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name:
            raise OperationError(
                "not an answer",
                [Problem(option, "must be written name=value", pair, "e.g. age=45")],
            )
        name = name.strip()
        try:
            answers[name] = None if value == "" else read_yaml(value)[0]
        except YamlSyntaxError as error:
            syntax = error.problem.where == "YAML syntax"
            rule = f"is not a YAML value: {error.problem.rule}" if syntax else error.problem.rule
            raise OperationError(
                "not an answer",
                [
                    Problem(
                        f"{option} {name}",
                        rule,
                        value,
                        "write one value, e.g. age=45, sex=female or smoker=true; "
                        "quote text that holds [ ] { } : or #",
                    )
                ],
            ) from None
    return answers


@contextmanager
def option_names(options: Mapping[str, str]) -> Iterator[None]:
    """Within the block, a problem that names a parameter (``outcome``) names the option
    the user typed (``--outcome``) instead: the layers below the CLI name parameters."""
    try:
        yield
    except LumbarError as error:
        if not any(problem.where in options for problem in error.problems):
            raise
        problems = [
            replace(problem, where=options.get(problem.where, problem.where))
            for problem in error.problems
        ]
        raise type(error)(error.summary, problems, error.source) from None


def print_synthetic(text: str = SYNTHETIC_NOTE) -> None:
    """The synthetic-data line that opens a command's output on synthetic data."""
    out = console()
    if text.startswith(SYNTHETIC):
        out.print(f"[bold red]{SYNTHETIC}[/]{escape(text.removeprefix(SYNTHETIC))}")
    else:
        out.print(f"[bold red]{SYNTHETIC}[/]: {escape(text)}")
