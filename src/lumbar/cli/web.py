"""``lumbar serve``: the staff web application."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lumbar.cli._common import app, console
from lumbar.cli.trial import Db, KeyFile

__all__ = ["serve_command"]


@app.command("serve")
def serve_command(
    db: Db = None,
    key_file: KeyFile = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Worker processes (PostgreSQL only; a SQLite trial is served by one).",
        ),
    ] = 1,
    https: Annotated[
        bool,
        typer.Option(
            "--https",
            help="Served over HTTPS by a reverse proxy in front: Secure cookies and HSTS.",
        ),
    ] = False,
    reports: Annotated[
        Path | None,
        typer.Option(
            help="Folder for the trial reports made in the browser (default: beside a "
            "SQLite trial, else in the system's temporary folder)."
        ),
    ] = None,
    messages: Annotated[
        Path | None,
        typer.Option(
            help="The participants' survey pages in another language: a message catalogue "
            "with the keys of lumbar's messages/en.yaml."
        ),
    ] = None,
    wording: Annotated[
        list[Path] | None,
        typer.Option(help="A wording file with licensed item texts for the survey pages (repeat)."),
    ] = None,
    consent_documents: Annotated[
        Path | None,
        typer.Option(
            help="The folder of the consent document files the protocol's consent section "
            "names (electronic consent shows a document only from here, and only when its "
            "bytes match the declared SHA-256; default: lumbar's own example documents).",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Serve the trial's web pages for staff (sign in with a password and, if set, a code)
    and participants' survey links (/survey/...).

    Each member of staff needs a password ('lumbar user password'). Put a reverse proxy
    with HTTPS in front for anything but this machine, and pass --https.
    """
    import os

    import uvicorn

    from lumbar.errors import OperationError, Problem
    from lumbar.instruments import load_wording
    from lumbar.messages import Catalogue
    from lumbar.store.database import Database
    from lumbar.web.app import server_log_config

    Catalogue.load(messages)  # refused here, with its problems, rather than in a worker
    for path in wording or []:
        load_wording(path)

    database = Database(db)
    if workers > 1 and database.backend == "sqlite":
        raise OperationError(
            "one worker for SQLite",
            [
                Problem(
                    "--workers",
                    "a SQLite trial is served by one worker process",
                    workers,
                    "use PostgreSQL for several workers, or leave --workers out",
                )
            ],
        )
    database.dispose()
    # The factory runs in each worker: each opens the trial itself.
    os.environ["LUMBAR_SERVE_DB"] = database.url
    if key_file is not None:
        os.environ["LUMBAR_SERVE_KEY_FILE"] = str(key_file)
    os.environ["LUMBAR_SERVE_HTTPS"] = "1" if https else ""
    if reports is not None:
        os.environ["LUMBAR_SERVE_REPORTS"] = str(reports.resolve())
    os.environ["LUMBAR_SERVE_MESSAGES"] = str(messages.resolve()) if messages else ""
    os.environ["LUMBAR_SERVE_WORDING"] = os.pathsep.join(str(p.resolve()) for p in wording or [])
    os.environ["LUMBAR_SERVE_CONSENT_DOCUMENTS"] = (
        str(consent_documents.resolve()) if consent_documents else ""
    )
    console().print(
        f"Serving {database.display_url} on http://{host}:{port}/ "
        f"({workers} worker{'s' * (workers != 1)}); stop with Ctrl+C."
    )
    uvicorn.run(
        "lumbar.web.app:from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=https,
        server_header=False,
        log_level="info",
        log_config=server_log_config(),  # no survey token in the access log
    )
