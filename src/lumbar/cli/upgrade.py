"""``lumbar upgrade``: bring a trial database an older lumbar made up to this lumbar's schema."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lumbar.cli._common import app
from lumbar.cli.trial import As, Db, KeyFile, _actor

__all__ = ["upgrade_command"]


@app.command("upgrade")
def upgrade_command(
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
    backup_file: Annotated[
        Path | None,
        typer.Option(
            "--backup",
            help="Where the backup made first goes (a new file; default: beside a SQLite "
            "file, else in this folder, named DB.REVISION-<UTC time>.backup).",
        ),
    ] = None,
) -> None:
    """Upgrade the trial database to this lumbar's schema, backing it up first (admins).

    Refused while the trial is open anywhere (a command running, the web server), naming
    who, and nothing opens it until the upgrade ends. The backup is checked, then the
    audit trail is checked, the migrations run, and the upgrade is recorded in the audit
    trail (it needs the audit key), all in one transaction: a failure changes nothing.
    A database already at this lumbar's schema is left alone.
    """
    from lumbar.operations import upgrade

    upgraded = upgrade(db, actor=_actor(actor), key_file=key_file, backup_file=backup_file)
    typer.echo(f"backed up {upgraded.database} to {upgraded.backup} and checked it")
    typer.echo(
        f"upgraded trial {upgraded.trial_id} from schema revision {upgraded.from_revision} "
        f"to {upgraded.to_revision}; recorded in the audit trail"
    )
    if upgraded.rows_imaged:
        typer.echo(f"{upgraded.rows_imaged} data rows rewritten by the migrations, re-imaged")
