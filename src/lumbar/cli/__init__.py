"""The ``lumbar`` command: a thin shell over operations, analysis and report.

Commands parse arguments, call one function of the packages below, and draw
the result. Commands on a trial take ``--db`` (or ``LUMBAR_DB``), ``--as`` (or
``LUMBAR_USER``) and ``--key-file`` (or ``LUMBAR_KEY_FILE``; or the key itself in
``LUMBAR_KEY``). Site staff's commands (:data:`~lumbar.cli._common.SERVER_COMMANDS`) take
``--server URL`` instead (or ``LUMBAR_SERVER``): they go through the server's JSON API
with the token in ``LUMBAR_TOKEN`` (:mod:`lumbar.cli.remote`). The reference is generated
from ``--help`` into docs/cli.md.

Start-up is kept light: a command module imports what its command runs (pandas, SciPy,
matplotlib, the database) inside the command, so ``lumbar --version`` and the commands
that do not analyse load none of it (tests/test_startup.py; bench/cli.py times it).
"""

from __future__ import annotations

from typing import Annotated

import typer

from lumbar import PROTOCOL_FORMAT, __version__
from lumbar.cli import (
    analysis,
    design,
    followup,
    meta,
    reference,
    report,
    trial,
    upgrade,
    users,
    web,
    worker,
)
from lumbar.cli._common import EXIT_REFUSED, app

__all__ = [
    "EXIT_REFUSED",
    "analysis",
    "app",
    "design",
    "followup",
    "main",
    "meta",
    "reference",
    "report",
    "trial",
    "upgrade",
    "users",
    "web",
    "worker",
]


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"lumbar {__version__} (protocol format {PROTOCOL_FORMAT})")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Show the version and exit.", callback=_show_version, is_eager=True
        ),
    ] = False,
) -> None:
    """lumbar runs randomized trials of treatments for chronic low back pain."""


def main() -> None:
    """Entry point of the ``lumbar`` console script."""
    app()
