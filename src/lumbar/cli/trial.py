"""Commands that run a trial: init, sites, screening to follow-up, audit, backup.

Each command opens the trial as the user named by ``--as`` (or ``LUMBAR_USER``),
calls one operation, and prints what it did. Dates are written YYYY-MM-DD and
default to today.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lumbar.cli._common import app, echo_table, parse_answers, parse_date
from lumbar.errors import MAX_SHOWN_PROBLEMS, AccessError, OperationError, Problem
from lumbar.operations import (
    EXPORT_FORMATS,
)

# The operations, protocols and instruments are imported where a command uses them, so a
# command loads only what it runs (lumbar.operations above reads only its vocabulary).
if TYPE_CHECKING:  # typer ships click as a private module; only its types are needed here
    from lumbar.cli.remote import ServerTrial
    from lumbar.operations import Trial
    from lumbar.protocol import Protocol

__all__ = ["open_trial", "protocol_of", "staff_trial", "today_of"]

site_app = typer.Typer(help="Add and list sites.", no_args_is_help=True, rich_markup_mode=None)
screening_app = typer.Typer(
    help="Screen people against the eligibility rules.", no_args_is_help=True, rich_markup_mode=None
)
identity_app = typer.Typer(
    help="Record and open direct identifiers (encrypted in the vault).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
randomization_app = typer.Typer(
    help="Check the concealed allocation list.", no_args_is_help=True, rich_markup_mode=None
)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True, rich_markup_mode=None)
for sub, name in (
    (site_app, "site"),
    (screening_app, "screening"),
    (identity_app, "identity"),
    (randomization_app, "randomization"),
    (audit_app, "audit"),
):
    app.add_typer(sub, name=name)

Db = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="LUMBAR_DB",
        help="The trial database: a SQLite file (default lumbar.db) or postgresql://...",
    ),
]
As = Annotated[
    str | None, typer.Option("--as", envvar="LUMBAR_USER", help="Your user name in the trial.")
]
KeyFile = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        envvar="LUMBAR_KEY_FILE",
        help="The trial's key file (default: beside a SQLite file, else ./lumbar.key; "
        "or set LUMBAR_KEY).",
    ),
]
Server = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="LUMBAR_SERVER",
        help="A lumbar server's address (https://...): go through its API as the owner of "
        "the token in LUMBAR_TOKEN instead of opening the database (not with --db; --as "
        "and --key-file are not used).",
    ),
]
Reference = Annotated[
    str, typer.Argument(help="A study id (SEA-0001) or screening number (S00001).")
]
DateOption = Annotated[str | None, typer.Option(help="YYYY-MM-DD; today when not given.")]
AnswersFile = Annotated[
    Path | None, typer.Option("--answers", help="A YAML or JSON file mapping names to answers.")
]
AnswerPairs = Annotated[
    list[str] | None,
    typer.Option("--answer", help="One answer as name=value (repeat the option)."),
]


ProtocolOption = Annotated[
    str | None,
    typer.Option(
        "--protocol",
        help="A shipped protocol's name or a protocol file, instead of the trial's own protocol.",
    ),
]

REFERENCE_PROTOCOL = "massage-clbp"
"""The shipped protocol help texts show when no trial can be read."""


def open_trial(db: str | None, actor: str | None, key_file: Path | None) -> Trial:
    """The trial of ``--db``, opened as ``--as``."""
    from lumbar.operations import Trial

    return Trial.open(db, _actor(actor), key_file=key_file)


def staff_trial(
    db: str | None, actor: str | None, key_file: Path | None, server: str | None
) -> Trial | ServerTrial:
    """The trial of ``--db`` opened as ``--as``, or with ``--server`` the trial on that
    server as the owner of the token in LUMBAR_TOKEN (site staff's commands take either)."""
    if not server:
        return open_trial(db, actor, key_file)
    if db:
        raise OperationError(
            "the database or a server?",
            [
                Problem(
                    "--server",
                    "cannot be given with --db (or LUMBAR_DB): a command opens the database "
                    "or asks a server, not both",
                    server,
                    "leave out --db (unset LUMBAR_DB), or leave out --server (unset LUMBAR_SERVER)",
                )
            ],
        )
    from lumbar.cli.remote import ServerTrial

    return ServerTrial(server)


def _actor(actor: str | None) -> str:
    if not actor:
        raise AccessError(
            "who are you?",
            [Problem("actor", "is required", hint="give your user name (or set LUMBAR_USER)")],
        )
    return actor


def protocol_of(protocol: str | None, db: str | None) -> Protocol:
    """``--protocol`` when given, else the protocol of the trial in ``--db`` (no user needed)."""
    from lumbar.operations import read_protocol
    from lumbar.protocol import resolve_protocol

    return resolve_protocol(protocol) if protocol is not None else read_protocol(db)


def today_of(trial: Trial | ServerTrial) -> dt.date:
    return trial.clock().date()


# ---------------------------------------------------------------- creating the trial


@app.command("init")
def init(
    protocol: Annotated[str, typer.Argument(help="A protocol file, or a shipped protocol's name.")],
    admin: Annotated[str, typer.Option(help="User name of the first administrator.")] = "admin",
    seed: Annotated[
        int | None, typer.Option(help="Seed for the allocation list (random when not given).")
    ] = None,
    allocation_list: Annotated[
        Path | None,
        typer.Option(help="Use a statistician's list (CSV: stratum, position, block, arm)."),
    ] = None,
    synthetic: Annotated[
        bool, typer.Option(help="Mark the trial's data as synthetic (for demos and tests).")
    ] = False,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Create a trial database from a protocol, with its concealed allocation list and its keys."""
    from lumbar.operations import create_trial
    from lumbar.protocol import resolve_protocol

    loaded = resolve_protocol(protocol)
    created = create_trial(
        loaded,
        db,
        admin=admin,
        key_file=key_file,
        seed=seed,
        allocation_csv=allocation_list,
        synthetic=synthetic,
    )
    typer.echo(f"created trial {loaded.id} (protocol {loaded.version}) in {created.url}")
    typer.echo(f"allocation list: {created.slots} slots, {created.allocation_source}, sealed")
    if created.key_file is not None:
        typer.echo(
            f"keys: {created.key_file} (owner-only: identity, randomization and audit keys). "
            "Back it up apart from the database: without the identity key identifiers cannot "
            "be read, without the randomization key no one can be randomized or unblinded, "
            "without the audit key nothing can be written."
        )
    typer.echo(f"first user: {admin} (admin). Next: lumbar site add CODE NAME --as {admin}")


# ---------------------------------------------------------------- sites


@site_app.command("add")
def site_add(
    code: Annotated[str, typer.Argument(help="1 to 8 capitals or digits; starts study ids.")],
    name: Annotated[str, typer.Argument(help="The site's name.")],
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Add a site."""
    site = open_trial(db, actor, key_file).add_site(code, name)
    typer.echo(f"added site {site.code} ({site.name})")


@site_app.command("list")
def site_list(
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """List the sites."""
    echo_table(
        "Sites",
        ("code", "name"),
        [(s.code, s.name) for s in open_trial(db, actor, key_file).sites()],
    )


# ---------------------------------------------------------------- screening to enrolment


@screening_app.command("add")
def screening_add(
    site: Annotated[str, typer.Option(help="The site screening the person.")],
    answers: AnswersFile = None,
    answer: AnswerPairs = None,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
    server: Server = None,
) -> None:
    """Screen a person: record the answers and the verdict with every reason."""
    result = staff_trial(db, actor, key_file, server).screen(
        site, parse_answers(answers, answer or [])
    )
    typer.echo(f"{result.screening_number}: {result.status}")
    for reason in result.reasons:
        typer.echo(f"  {reason}")
    if result.unanswered:
        typer.echo("  still to ask: " + ", ".join(result.unanswered))


@screening_app.command("template")
def screening_template_command(
    protocol: ProtocolOption = None,
    db: Db = None,
) -> None:
    """Print a file to fill in with every eligibility question and its allowed answers.

    The questions are the trial's (--db or LUMBAR_DB), or those of --protocol. Fill in
    the answers and pass the file to 'lumbar screening add --answers FILE'.
    """
    from lumbar.protocol.template import screening_template

    typer.echo(screening_template(protocol_of(protocol, db)), nl=False)


@screening_app.command("update")
def screening_update(
    reference: Reference,
    reason: Annotated[str, typer.Option(help="Why the answers change.")],
    answers: AnswersFile = None,
    answer: AnswerPairs = None,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
    server: Server = None,
) -> None:
    """Add or correct screening answers before enrolment (a reason is required)."""
    result = staff_trial(db, actor, key_file, server).update_screening(
        reference, parse_answers(answers, answer or []), reason
    )
    typer.echo(f"{result.screening_number}: {result.status}")
    for reason_text in result.reasons:
        typer.echo(f"  {reason_text}")
    if result.unanswered:
        typer.echo("  still to ask: " + ", ".join(result.unanswered))


@identity_app.command("set")
def identity_set(
    reference: Reference,
    name: Annotated[str | None, typer.Option(help="Full name.")] = None,
    contact: Annotated[str | None, typer.Option(help="Phone, e-mail or address.")] = None,
    birth_date: Annotated[str | None, typer.Option(help="Date of birth, YYYY-MM-DD.")] = None,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Seal a person's name, contact details or date of birth in the vault."""
    born = None if birth_date is None else parse_date(birth_date, "--birth-date")
    open_trial(db, actor, key_file).record_identity(
        reference, name=name, contact=contact, birth_date=born
    )
    typer.echo(f"identifiers of {reference} sealed")


@identity_app.command("show")
def identity_show(
    reference: Reference,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Open a person's identifiers (the opening is audited)."""
    opened = open_trial(db, actor, key_file).identity(reference)
    typer.echo(f"name: {opened.name or '-'}")
    typer.echo(f"contact: {opened.contact or '-'}")
    typer.echo(f"date of birth: {opened.birth_date or '-'}")


@app.command("consent")
def consent(
    reference: Reference,
    version: Annotated[str, typer.Option(help="The consent form's version.")],
    date: DateOption = None,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
    server: Server = None,
) -> None:
    """Record an eligible person's consent (you are recorded as who took it)."""
    trial = staff_trial(db, actor, key_file, server)
    day = parse_date(date, "--date", today_of(trial))
    trial.consent(reference, version, day)
    typer.echo(f"{reference}: consent version {version} on {day}")


@app.command("enrol")
def enrol(
    reference: Reference,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
    server: Server = None,
) -> None:
    """Enrol an eligible, consented person; prints their study id."""
    typer.echo(staff_trial(db, actor, key_file, server).enrol(reference))


@app.command("participants")
def participants(
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
    server: Server = None,
) -> None:
    """List everyone screened at your sites and where they stand."""
    rows = [
        (p.screening_number, p.study_id, p.site, p.status)
        for p in staff_trial(db, actor, key_file, server).participants()
    ]
    echo_table("Participants", ("screening", "study id", "site", "status"), rows)


# ---------------------------------------------------------------- randomization


@app.command("randomize")
def randomize(
    reference: Reference,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
    server: Server = None,
) -> None:
    """Randomize an enrolled participant whose baseline is complete."""
    assignment = staff_trial(db, actor, key_file, server).randomize(reference)
    arm = assignment.arm or "randomized (arm concealed: you are blinded)"
    typer.echo(
        f"{assignment.study_id}: {arm} (stratum {assignment.stratum}, {assignment.randomized_on})"
    )


@app.command("unblind")
def unblind(
    reference: Reference,
    reason: Annotated[str, typer.Option(help="Why unblinding is needed (recorded).")],
    confirm: Annotated[
        str,
        typer.Option(
            help="The participant's study id again, to confirm the blind is broken on purpose."
        ),
    ],
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Emergency unblinding of one participant (needs the emergency_unblind grant; audited).

    Only this participant's arm is shown, and only to you.
    """
    arm = open_trial(db, actor, key_file).unblind(reference, reason, confirm=confirm)
    typer.echo(f"{reference}: {arm}")


@randomization_app.command("verify")
def randomization_verify(
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Check the sealed list against its fingerprint and seed, and every assignment against it."""
    report = open_trial(db, actor, key_file).verify_randomization()
    typer.echo(
        f"allocation list ({report.source}): {report.strata} strata, {report.slots} slots, "
        f"{report.used} used"
    )
    if report.valid:
        typer.echo("valid: blocks whole and in ratio, list unchanged, slots taken in order")
        return
    for problem in report.problems:
        typer.echo("  " + problem.describe())
    raise typer.Exit(1)


# ---------------------------------------------------------------- schedule


@app.command("schedule")
def schedule(
    reference: Reference,
    on: DateOption = None,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
    server: Server = None,
) -> None:
    """A participant's follow-up visits and where each stands."""
    trial = staff_trial(db, actor, key_file, server)
    rows = [
        (
            s.visit,
            s.target,
            f"{s.opens} to {s.closes}",
            s.status,
            s.completed_on,
            "yes" if s.out_of_window else "",
        )
        for s in trial.schedule(reference, parse_date(on, "--on", today_of(trial)))
    ]
    echo_table(
        f"Schedule of {reference}",
        ("visit", "target", "window", "status", "completed", "out of window"),
        rows,
    )


@app.command("due")
def due(
    site: Annotated[str | None, typer.Option(help="Only this site.")] = None,
    on: DateOption = None,
    missed: Annotated[
        bool, typer.Option(help="Also list visits whose window closed without them.")
    ] = False,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
    server: Server = None,
) -> None:
    """Who is due or overdue for a follow-up visit, by site (--missed: and who missed one)."""
    trial = staff_trial(db, actor, key_file, server)
    rows = [
        (s.site, s.study_id, s.visit, s.status, s.target, s.closes)
        for s in trial.due(site, parse_date(on, "--on", today_of(trial)), missed=missed)
    ]
    echo_table(
        "Due or overdue", ("site", "study id", "visit", "status", "target", "window closes"), rows
    )


@app.command("follow-up")
def follow_up(
    on: DateOption = None,
    within: Annotated[
        int,
        typer.Option(min=0, max=90, help="List open windows closing within this many days."),
    ] = 7,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
    server: Server = None,
) -> None:
    """Completion of each follow-up visit (complete of due, by site; by arm only for an
    unblinded user) and whom to call: open windows closing soon or with no reminder left.

    Due means the visit's window has opened. The list of whom to call names no contact:
    open the participant's identifiers for that (audited).
    """
    trial = staff_trial(db, actor, key_file, server)
    board = trial.follow_up(parse_date(on, "--on", today_of(trial)), within)
    groups = [("all", board.completion), ("site", board.by_site)]
    if board.by_arm is not None:
        groups.append(("arm", board.by_arm))
    echo_table(
        f"Completion on {board.on.isoformat()} (complete of due)",
        ("by", "group", "visit", "due", "complete", "rate"),
        [
            (
                by,
                row.label,
                row.visit,
                row.due,
                row.complete,
                "" if row.rate is None else f"{100 * row.rate:.1f}%",
            )
            for by, rows in groups
            for row in rows
        ],
    )
    if board.by_arm is None:
        typer.echo("By arm: not shown (you are blinded).")
    echo_table(
        f"Whom to call (windows closing within {board.closing_within} days, or no reminder left)",
        ("site", "study id", "visit", "closes", "days left", "link", "last message"),
        [
            (
                call.site,
                call.study_id,
                call.visit,
                call.closes,
                call.days_left,
                call.link or "none",
                " ".join(
                    part
                    for part in (
                        call.last_message,
                        call.last_message_status,
                        call.last_message_reason and f"({call.last_message_reason})",
                    )
                    if part
                ),
            )
            for call in board.to_call
        ],
    )


# ---------------------------------------------------------------- data out, audit, backup


@app.command("export")
def export(
    out: Annotated[Path, typer.Option(help="The file to write.")],
    file_format: Annotated[
        str, typer.Option("--format", help="One of: " + ", ".join(EXPORT_FORMATS) + ".")
    ] = "csv",
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Write the de-identified tidy dataset (one row per participant and visit)."""
    rows = open_trial(db, actor, key_file).export(out, file_format)
    typer.echo(f"wrote {rows} rows to {out}")


@audit_app.command("verify")
def audit_verify(
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Check the keyed audit chain and every data table against it (exit 1 on any finding).

    Names each record changed, deleted, inserted or forged, a head reset or a rollback to
    an older copy, and each data row added, deleted or changed outside lumbar. Needs
    only the audit key. Keep the head it prints somewhere outside the database.
    """
    report = open_trial(db, actor, key_file).verify_audit()
    typer.echo(f"{report.records} records; head {report.head_seq} {report.head_hash}")
    if report.intact:
        typer.echo(
            "intact: every record carries its keyed link and follows the one before it; "
            f"all {report.rows_checked} data rows are as the trail recorded them"
        )
        return
    shown = report.findings[:MAX_SHOWN_PROBLEMS]
    for finding in shown:
        where = f"record {finding.seq}" if finding.seq else "data"
        typer.echo(f"  {where}: {finding.kind}: {finding.detail}")
    if len(report.findings) > len(shown):
        typer.echo(f"  ... and {len(report.findings) - len(shown)} more findings")
    raise typer.Exit(1)


@app.command("backup")
def backup_command(
    target: Annotated[Path, typer.Argument(help="The backup file to create.")],
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Make a consistent, checked copy of the trial database while it is in use (admins).

    The copy is owner-only (0600). It is checked as a restore would check it (a lumbar
    trial, its keys, the audit trail); a copy that fails is kept as TARGET.failed
    and the command exits with status 2.
    """
    from lumbar.operations import backup

    backup(db, target, actor=_actor(actor), key_file=key_file)
    typer.echo(
        f"backup written to {target} and checked (the keys are not in it: keep the key file safe)"
    )


@app.command("restore")
def restore_command(
    source: Annotated[Path, typer.Argument(help="A file 'lumbar backup' made.")],
    replace: Annotated[
        bool, typer.Option(help="Replace the trial database (the replaced one is kept).")
    ] = False,
    other_trial: Annotated[
        bool,
        typer.Option(
            "--other-trial", help="Allow replacing the trial with a backup of another trial."
        ),
    ] = False,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Restore a backup into the trial database, check it, and record who restored it (admins).

    The backup is checked before anything is touched: a lumbar trial of a known schema,
    opened by its keys, its audit trail intact, and (with --replace) a backup of
    the same trial unless --other-trial. Refused while the trial is open anywhere (a
    command running, the web server), naming who. SQLite: written beside the database
    and swapped in at once; the replaced file is kept as DB.replaced-<UTC time>.
    PostgreSQL: a new database (created), an empty one, or with --replace restored
    beside and swapped by renaming; the replaced database is kept as
    NAME_replaced_<UTC time>. You must be an admin of the trial being replaced, or else
    of the trial in the backup. A restore that fails leaves nothing behind.
    """
    from lumbar.operations import restore

    restored = restore(
        source,
        db,
        actor=_actor(actor),
        key_file=key_file,
        replace=replace,
        other_trial=other_trial,
    )
    typer.echo(
        f"restored trial {restored.trial_id} from {source} into {restored.database}; "
        "the keys open it"
    )
    if restored.kept is not None:
        typer.echo(f"the replaced database is kept as {restored.kept}")
    state = "intact" if restored.audit_intact else "NOT intact: run 'lumbar audit verify'"
    typer.echo(f"audit trail: {restored.audit_records} records, {state}")
