"""Commands that follow participants up: questionnaires, treatment sessions, adverse events,
withdrawals.

Each command opens the trial as the user named by ``--as`` (or ``LUMBAR_USER``),
calls one operation, and prints what it did (the shared options and
:func:`~lumbar.cli.trial.open_trial` are in :mod:`lumbar.cli.trial`).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperCommand

from lumbar.cli._common import app, echo_table, parse_answers, parse_date
from lumbar.cli.trial import (
    REFERENCE_PROTOCOL,
    AnswerPairs,
    AnswersFile,
    As,
    DateOption,
    Db,
    KeyFile,
    ProtocolOption,
    Reference,
    Server,
    open_trial,
    protocol_of,
    staff_trial,
    today_of,
)
from lumbar.errors import InstrumentError, LumbarError, Problem
from lumbar.operations import OUTCOMES, RELATEDNESS, SEVERITIES, SOURCES, WITHDRAWAL_KINDS

if TYPE_CHECKING:  # typer ships click as a private module; only its types are needed here
    from typer._click import Context as ClickContext
    from typer._click import HelpFormatter

    from lumbar.instruments import Instrument
    from lumbar.operations import QuestionnaireView
    from lumbar.protocol import Protocol

__all__ = [
    "ae_app",
    "econsent_app",
    "invite_app",
    "questionnaire_app",
    "rating_link_app",
    "session_app",
]

questionnaire_app = typer.Typer(
    help="Record and correct questionnaires.", no_args_is_help=True, rich_markup_mode=None
)
session_app = typer.Typer(
    help="Log treatment sessions.", no_args_is_help=True, rich_markup_mode=None
)
ae_app = typer.Typer(help="Adverse events.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(questionnaire_app, name="questionnaire")
app.add_typer(session_app, name="session")
app.add_typer(ae_app, name="ae")
invite_app = typer.Typer(
    help="Participants' survey links: a follow-up visit's questionnaires, answered on their phone.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(invite_app, name="invite")
econsent_app = typer.Typer(
    help="Electronic consent: the declared documents, who must consent again, consent links "
    "to their phone, and the check of each consent's digest.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(econsent_app, name="econsent")
rating_link_app = typer.Typer(
    help="Participants' session-rating links: their rating before each treatment session, "
    "given on their phone.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
session_app.add_typer(rating_link_app, name="rating-link")


# ---------------------------------------------------------------- questionnaires


@questionnaire_app.command("add")
def questionnaire_add(
    reference: Reference,
    visit: Annotated[str, typer.Argument(help="The visit id, e.g. baseline or week_10.")],
    instrument: Annotated[str, typer.Argument(help="The instrument, e.g. rdq.")],
    answers: AnswersFile = None,
    answer: AnswerPairs = None,
    completed: DateOption = None,
    source: Annotated[
        str, typer.Option(help="One of: " + ", ".join(SOURCES) + ".")
    ] = "staff_entry",
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
    server: Server = None,
) -> None:
    """Record a completed questionnaire (checked and scored before it is stored)."""
    trial = staff_trial(db, actor, key_file, server)
    view = trial.record_questionnaire(
        reference,
        visit,
        instrument,
        parse_answers(answers, answer or []),
        completed_on=parse_date(completed, "--completed", today_of(trial)),
        source=source,
    )
    _echo_questionnaire(view)


@questionnaire_app.command("template")
def questionnaire_template_command(
    instrument: Annotated[
        str | None, typer.Argument(help="The instrument, e.g. rdq (or give --visit).")
    ] = None,
    visit: Annotated[
        str | None,
        typer.Option(help="Every questionnaire of this visit of the trial, e.g. baseline."),
    ] = None,
    wording: Annotated[
        list[Path] | None,
        typer.Option(help="A wording file with licensed item texts to show (repeat)."),
    ] = None,
    protocol: ProtocolOption = None,
    db: Db = None,
) -> None:
    """Print a file to fill in with every item of a questionnaire and its allowed answers.

    For one INSTRUMENT the file goes to 'lumbar questionnaire add --answers FILE'; for
    --visit, every questionnaire the visit collects (from the trial's protocol, or
    --protocol) goes to 'lumbar questionnaire visit --answers FILE'. Labels are lumbar's
    own; licensed wording is shown only from a wording file you give.
    """
    if (instrument is None) == (visit is None):
        raise InstrumentError(
            "which questionnaire?",
            [
                Problem(
                    "instrument",
                    "give an instrument or --visit, not both",
                    hint="e.g. 'lumbar questionnaire template rdq' or '--visit baseline'",
                )
            ],
        )
    from lumbar.instruments import INSTRUMENTS
    from lumbar.instruments.template import questionnaire_template
    from lumbar.protocol.template import visit_template

    worded = _worded(wording or [])
    if instrument is not None:
        shown = worded.get(instrument) or INSTRUMENTS.get(instrument)
        _only_wording_for(worded, [shown.name])
        typer.echo(questionnaire_template(shown), nl=False)
        return
    assert visit is not None
    loaded = protocol_of(protocol, db)
    if visit in {v.id for v in loaded.visits}:
        _only_wording_for(worded, loaded.visit(visit).instruments)
    typer.echo(visit_template(loaded, visit, worded), nl=False)


def _worded(files: list[Path]) -> dict[str, Instrument]:
    from lumbar.instruments import INSTRUMENTS, apply_wording, load_wording

    worded = {}
    for file in files:
        wording = load_wording(file)
        worded[wording.instrument] = apply_wording(INSTRUMENTS.get(wording.instrument), wording)
    return worded


def _only_wording_for(worded: dict[str, Instrument], names: tuple[str, ...] | list[str]) -> None:
    unused = sorted(set(worded) - set(names))
    if unused:
        raise InstrumentError(
            "a wording file is for another questionnaire",
            [
                Problem(
                    "wording",
                    "is for an instrument this file does not hold",
                    name,
                    "the instruments are: " + ", ".join(names),
                )
                for name in unused
            ],
        )


@questionnaire_app.command("visit")
def questionnaire_visit(
    reference: Reference,
    visit: Annotated[str, typer.Argument(help="The visit id, e.g. week_10.")],
    answers: Annotated[
        Path,
        typer.Option(
            "--answers", help="A YAML or JSON file mapping each instrument to its answers."
        ),
    ],
    completed: DateOption = None,
    source: Annotated[
        str, typer.Option(help="One of: " + ", ".join(SOURCES) + ".")
    ] = "staff_entry",
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
    server: Server = None,
) -> None:
    """Record a visit's questionnaires together: every one is stored, or none."""
    trial = staff_trial(db, actor, key_file, server)
    views = trial.record_visit(
        reference,
        visit,
        parse_answers(answers, []),
        completed_on=parse_date(completed, "--completed", today_of(trial)),
        source=source,
    )
    for view in views:
        _echo_questionnaire(view)


@questionnaire_app.command("edit")
def questionnaire_edit(
    reference: Reference,
    visit: Annotated[str, typer.Argument(help="The visit id.")],
    instrument: Annotated[str, typer.Argument(help="The instrument.")],
    reason: Annotated[str, typer.Option(help="Why the answers or the date change.")],
    answers: AnswersFile = None,
    answer: AnswerPairs = None,
    completed: Annotated[
        str | None,
        typer.Option(
            help="The corrected completion date, YYYY-MM-DD; the window status follows it."
        ),
    ] = None,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
    server: Server = None,
) -> None:
    """Correct a questionnaire's answers or date; the old values stay in the audit trail.

    A corrected date (--completed) is checked like a new one, and the questionnaire's
    window status follows it.
    """
    trial = staff_trial(db, actor, key_file, server)
    view = trial.edit_questionnaire(
        reference,
        visit,
        instrument,
        parse_answers(answers, answer or []),
        reason,
        completed_on=None if completed is None else parse_date(completed, "--completed", None),
    )
    _echo_questionnaire(view)


@questionnaire_app.command("list")
def questionnaire_list(
    reference: Reference,
    visit: Annotated[str, typer.Argument(help="The visit id, e.g. baseline or week_10.")],
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
    server: Server = None,
) -> None:
    """The questionnaires recorded for a participant at one visit, with their scores."""
    views = staff_trial(db, actor, key_file, server).questionnaires(reference, visit)
    for view in views:
        _echo_questionnaire(view)
    if not views:
        typer.echo(f"{reference} {visit}: no questionnaire recorded")


def _echo_questionnaire(view: QuestionnaireView) -> None:
    """A stored questionnaire's scores, and a warning when it is outside its visit's window."""
    scores = ", ".join(f"{name} {value}" for name, value in view.scores.items())
    typer.echo(f"{view.study_id} {view.visit} {view.instrument}: {scores}")
    if view.flag is not None:
        typer.echo(f"  warning: {view.flag}")


# ---------------------------------------------------------------- treatment and safety


class _SessionLogCommand(TyperCommand):
    """``session log``: its help lists each arm's techniques and the body regions."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        # --help is handled while parsing, before --db has a value: keep the words.
        ctx.meta["lumbar.args"] = list(args)
        return super().parse_args(ctx, args)

    def format_epilog(self, ctx: ClickContext, formatter: HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        protocol, source = _help_protocol(ctx.meta.get("lumbar.args"))
        with formatter.section(f"Techniques by arm ({source})"):
            formatter.write_dl(
                [(arm.id, ", ".join(arm.techniques) or "no sessions") for arm in protocol.arms]
            )
        with formatter.section("Body regions"):
            formatter.write_text(", ".join(term.id for term in protocol.vocabulary.body_regions))
        advice = [(arm.id, "; ".join(arm.home_care)) for arm in protocol.arms if arm.home_care]
        if advice:
            with formatter.section("Home-care advice by arm"):
                formatter.write_dl(advice)
        rating = protocol.session_rating
        if rating is not None:
            with formatter.section("Ratings before a session (--rating NAME=VALUE, 0-10)"):
                formatter.write_text(
                    ", ".join(rating.instruments)
                    + ("; every one is required" if rating.required else "; each may be left out")
                )


def _help_protocol(args: list[str] | None) -> tuple[Protocol, str]:
    """The protocol a help text shows, and where it comes from.

    The trial's own, from --db in ``args`` or LUMBAR_DB (or lumbar.db here), when
    one can be read; otherwise the shipped reference protocol. Without ``args``
    (the generated reference) the environment is not read, so the docs are the
    same everywhere.
    """
    from lumbar.operations import read_protocol
    from lumbar.protocol import shipped_protocol

    reference = shipped_protocol(REFERENCE_PROTOCOL)
    if args is None:
        return reference, (
            f"the shipped protocol {REFERENCE_PROTOCOL}; with --db or LUMBAR_DB, the trial's own"
        )
    db = os.environ.get("LUMBAR_DB") or None
    for position, word in enumerate(args):
        if word == "--db" and position + 1 < len(args):
            db = args[position + 1]
        elif word.startswith("--db="):
            db = word.removeprefix("--db=")
    try:
        return read_protocol(db), f"the trial in {db or 'lumbar.db'}"
    except LumbarError:
        return reference, (
            f"no trial in {db or 'lumbar.db'}: the shipped protocol {REFERENCE_PROTOCOL}"
        )


@session_app.command("log", cls=_SessionLogCommand)
def session_log(
    reference: Reference,
    minutes: Annotated[int, typer.Option(help="Length of the session.")],
    technique: Annotated[list[str], typer.Option(help="A technique used (repeat).")],
    region: Annotated[list[str], typer.Option(help="A body region treated (repeat).")],
    date: DateOption = None,
    home_care: Annotated[
        list[str] | None, typer.Option(help="Home-care advice given (repeat).")
    ] = None,
    notes: Annotated[str, typer.Option(help="Notes (no identifiers, please).")] = "",
    rating: Annotated[
        list[str] | None,
        typer.Option(
            help="A 0-10 rating the participant gave before the session, as name=value "
            "(repeat; e.g. bothersomeness=6).",
            metavar="NAME=VALUE",
        ),
    ] = None,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
    server: Server = None,
) -> None:
    """Log a treatment session you gave.

    Techniques must be those of the participant's arm ('lumbar session plan STUDY_ID'
    shows it); the lists below are the protocol's, and so are the ratings asked before
    a session.
    """
    ratings = {
        name: value
        for name, value in parse_answers(None, rating or [], "--rating").items()
        if value is not None
    }
    trial = staff_trial(db, actor, key_file, server)
    number = trial.log_session(
        reference,
        parse_date(date, "--date", today_of(trial)),
        minutes,
        technique,
        region,
        home_care=home_care or [],
        notes=notes,
        ratings=ratings,
    )
    typer.echo(f"{reference}: session {number} logged")


@session_app.command("plan")
def session_plan(
    reference: Reference,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
    server: Server = None,
) -> None:
    """A participant's arm and what its sessions may record (unblinded users only)."""
    plan = staff_trial(db, actor, key_file, server).treatment_plan(reference)
    typer.echo(f"{plan.study_id}: {plan.arm} ({plan.arm_label})")
    typer.echo(f"  sessions: {plan.attended} of {plan.planned} logged")
    if plan.stopped:
        typer.echo("  stopped treatment or left the trial: no more sessions are logged")
    if plan.planned:
        typer.echo("  techniques: " + ", ".join(plan.techniques))
        typer.echo("  body regions: " + ", ".join(plan.body_regions))
    if plan.home_care:
        typer.echo("  home care: " + "; ".join(plan.home_care))
    if plan.planned and plan.ratings:
        required = "required" if plan.ratings_required else "each may be left out"
        typer.echo(f"  ratings before a session (0-10, {required}): " + ", ".join(plan.ratings))


@session_app.command("ratings")
def session_ratings(
    reference: Reference,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """The ratings a participant gave on their phone before sessions, by day: pending (no
    session logged that day yet), attached to the day's session, or superseded by the
    ratings entered on the tablet (unblinded users who see sessions)."""
    trial = open_trial(db, actor, key_file)
    declared = trial.protocol.session_rating
    names = tuple(declared.instruments) if declared is not None else ()
    rows = [
        (
            given.rated_on.isoformat(),
            *(given.ratings.get(name, "-") for name in names),
            given.status,
            given.session or "-",
        )
        for given in trial.given_ratings(reference)
    ]
    echo_table(f"Ratings given on {reference}'s phone", ("day", *names, "status", "session"), rows)


@rating_link_app.command("show")
def rating_link_show(
    reference: Reference,
    base_url: Annotated[
        str, typer.Option(help="The address participants reach 'lumbar serve' at.")
    ] = "http://127.0.0.1:8000",
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Issue a participant's session-rating link and print it, to give them.

    For participants in an arm with sessions, by unblinded staff who log sessions. The
    link is shown this once (only its hash is kept), so each call issues a new one and
    revokes the one before. It opens from randomization to the end of the planned course
    of sessions; a rating given on it is attached to that day's session when it is logged.
    """
    link = open_trial(db, actor, key_file).issue_rating_link(reference)
    typer.echo(f"{base_url.rstrip('/')}/rate/{link.token}")
    typer.echo(
        f"{link.study_id}: last day {(link.expires_at.date() - dt.timedelta(days=1)).isoformat()}",
        err=True,
    )


@rating_link_app.command("revoke")
def rating_link_revoke(
    reference: Reference,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Revoke a participant's session-rating link (it then opens nothing)."""
    open_trial(db, actor, key_file).revoke_rating_link(reference)
    typer.echo(f"{reference}: session-rating link revoked")


@rating_link_app.command("list")
def rating_link_list(
    reference: Reference,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """A participant's session-rating links and where each stands (never the link itself)."""
    rows = [
        (
            link.prefix,
            link.status,
            link.opens_at.date().isoformat(),
            (link.expires_at.date() - dt.timedelta(days=1)).isoformat(),
        )
        for link in open_trial(db, actor, key_file).rating_links(reference)
    ]
    echo_table("Session-rating links", ("prefix", "status", "opens", "last day"), rows)


@app.command("adherence")
def adherence(
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Sessions attended over planned, per randomized participant."""
    rows = [
        (a.study_id, a.arm, a.attended, a.planned, "-" if a.share is None else f"{a.share:.0%}")
        for a in open_trial(db, actor, key_file).adherence()
    ]
    echo_table("Adherence", ("study id", "arm", "attended", "planned", "share"), rows)


@ae_app.command("add")
def ae_add(
    reference: Reference,
    description: Annotated[str, typer.Option(help="What happened.")],
    severity: Annotated[str, typer.Option(help="One of: " + ", ".join(SEVERITIES) + ".")],
    relatedness: Annotated[str, typer.Option(help="One of: " + ", ".join(RELATEDNESS) + ".")],
    serious: Annotated[
        bool, typer.Option("--serious/--not-serious", help="A serious adverse event?")
    ] = False,
    onset: DateOption = None,
    outcome: Annotated[str, typer.Option(help="One of: " + ", ".join(OUTCOMES) + ".")] = "unknown",
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
    server: Server = None,
) -> None:
    """Record an adverse event."""
    trial = staff_trial(db, actor, key_file, server)
    event = trial.report_adverse_event(
        reference,
        description,
        parse_date(onset, "--onset", today_of(trial)),
        severity=severity,
        serious=serious,
        relatedness=relatedness,
        outcome=outcome,
    )
    flag = " SERIOUS" if event.serious else ""
    typer.echo(f"adverse event {event.id} recorded for {event.study_id}{flag}")


@ae_app.command("update")
def ae_update(
    event: Annotated[int, typer.Argument(help="The adverse event's number.")],
    outcome: Annotated[str, typer.Option(help="One of: " + ", ".join(OUTCOMES) + ".")],
    reason: Annotated[str, typer.Option(help="Why it changes.")],
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
    server: Server = None,
) -> None:
    """Record how an adverse event turned out."""
    updated = staff_trial(db, actor, key_file, server).update_adverse_event(
        event, outcome=outcome, reason=reason
    )
    typer.echo(f"adverse event {updated.id}: {updated.outcome}")


@ae_app.command("list")
def ae_list(
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
    server: Server = None,
) -> None:
    """List adverse events at your sites."""
    rows = [
        (
            e.id,
            e.study_id,
            e.onset_date,
            e.severity,
            "yes" if e.serious else "",
            e.relatedness,
            e.outcome,
        )
        for e in staff_trial(db, actor, key_file, server).adverse_events()
    ]
    echo_table(
        "Adverse events",
        ("#", "study id", "onset", "severity", "serious", "related", "outcome"),
        rows,
    )


@app.command("withdraw")
def withdraw(
    reference: Reference,
    kind: Annotated[str, typer.Option(help="One of: " + ", ".join(WITHDRAWAL_KINDS) + ".")],
    reason: Annotated[str, typer.Option(help="The reason given.")],
    date: DateOption = None,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
    server: Server = None,
) -> None:
    """Record a stop of treatment, a withdrawal of consent, or loss to follow-up."""
    trial = staff_trial(db, actor, key_file, server)
    trial.withdraw(reference, kind, reason, parse_date(date, "--date", today_of(trial)))
    typer.echo(f"{reference}: {kind.replace('_', ' ')}")


FollowUpVisit = Annotated[str, typer.Argument(help="The follow-up visit, e.g. week_10.")]


@invite_app.command("show")
def invite_show(
    reference: Reference,
    visit: FollowUpVisit,
    base_url: Annotated[
        str, typer.Option(help="The address participants reach 'lumbar serve' at.")
    ] = "http://127.0.0.1:8000",
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Issue a participant's link to a follow-up visit and print it, to send them.

    The link is shown this once (only its hash is kept), so each call issues a new one and
    revokes the one before. It opens on the first day of the visit's window and expires
    after its last.
    """
    link = open_trial(db, actor, key_file).issue_survey_token(reference, visit)
    typer.echo(f"{base_url.rstrip('/')}/survey/{link.token}")
    typer.echo(
        f"{link.study_id} {link.visit}: opens {link.opens_at.date().isoformat()}, "
        f"last day {(link.expires_at.date() - dt.timedelta(days=1)).isoformat()}",
        err=True,
    )


@invite_app.command("revoke")
def invite_revoke(
    reference: Reference,
    visit: FollowUpVisit,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Revoke a participant's unused link to a follow-up visit (it then opens nothing)."""
    open_trial(db, actor, key_file).revoke_survey_token(reference, visit)
    typer.echo(f"{reference} {visit}: link revoked")


@invite_app.command("list")
def invite_list(
    reference: Reference,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """A participant's survey links and where each stands (never the link itself)."""
    rows = [
        (
            link.visit,
            link.prefix,
            link.status,
            link.opens_at.date().isoformat(),
            (link.expires_at.date() - dt.timedelta(days=1)).isoformat(),
        )
        for link in open_trial(db, actor, key_file).survey_links(reference)
    ]
    echo_table("Survey links", ("visit", "prefix", "status", "opens", "last day"), rows)


# ---------------------------------------------------------------- electronic consent

ConsentDocuments = Annotated[
    Path | None,
    typer.Option(
        help="The folder of the consent document files the protocol's consent section names "
        "(default: lumbar's own example documents).",
        file_okay=False,
    ),
]


@econsent_app.command("document")
def econsent_document(
    version: Annotated[
        str | None, typer.Option(help="The version (default: the one in effect today).")
    ] = None,
    consent_documents: ConsentDocuments = None,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Print a consent document as participants see it, once its bytes are checked against
    the SHA-256 the protocol declares (a changed file is refused)."""
    trial = open_trial(db, actor, key_file)
    trial.context.consent_documents = consent_documents
    document = trial.consent_document(version)
    typer.echo(document.text.rstrip())
    typer.echo("")
    typer.echo(
        f"version {document.version}, in effect from {document.effective.isoformat()}, "
        f"SHA-256 {document.sha256}"
    )
    for question in document.questions:
        typer.echo(
            f"- {question.id}{' (must be yes)' if question.required else ''}: {question.text}"
        )


@econsent_app.command("due")
def econsent_due(
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Who must consent again: enrolled, in follow-up, and consented to a version older than
    the one in effect (at your sites)."""
    rows = [
        (
            row.study_id,
            row.site,
            row.consented_version,
            row.consented_on.isoformat(),
            row.due_version,
            row.link or "-",
        )
        for row in open_trial(db, actor, key_file).reconsent_due()
    ]
    echo_table(
        "Due to consent again",
        ("participant", "site", "consented to", "on", "in effect", "link"),
        rows,
    )


@econsent_app.command("show")
def econsent_show(
    reference: Reference,
    base_url: Annotated[
        str, typer.Option(help="The address participants reach 'lumbar serve' at.")
    ] = "http://127.0.0.1:8000",
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Issue a participant's consent link to the version in effect and print it, to send
    them. Shown this once (only its hash is kept); issuing again revokes the one before."""
    link = open_trial(db, actor, key_file).issue_consent_link(reference)
    typer.echo(f"{base_url.rstrip('/')}/consent/{link.token}")
    typer.echo(
        f"{link.study_id} version {link.version}: expires "
        f"{link.expires_at.strftime('%Y-%m-%d %H:%M')} UTC",
        err=True,
    )


@econsent_app.command("revoke")
def econsent_revoke(
    reference: Reference,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Revoke a participant's unused consent link (it then opens nothing)."""
    open_trial(db, actor, key_file).revoke_consent_link(reference)
    typer.echo(f"{reference}: consent link revoked")


@econsent_app.command("history")
def econsent_history(
    reference: Reference,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """A participant's consents, oldest first, each electronic one checked against its
    digest (never the typed name)."""
    rows = [
        (
            consent.version,
            consent.consent_date.isoformat(),
            consent.method,
            consent.taken_by or "-",
            "-" if consent.verified is None else ("ok" if consent.verified else "CHANGED"),
        )
        for consent in open_trial(db, actor, key_file).consents(reference)
    ]
    echo_table("Consents", ("version", "date", "how", "staff", "digest"), rows)


@econsent_app.command("verify")
def econsent_verify(
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Check the digest of every electronic consent at your sites; exit 1 when any row was
    changed since it was recorded."""
    check = open_trial(db, actor, key_file).verify_consents()
    for reference, consent_id in check.failed:
        typer.echo(f"{reference}: consent {consent_id} does not verify (changed since recorded)")
    typer.echo(f"{check.checked} electronic consents checked, {len(check.failed)} failed")
    if not check.intact:
        raise typer.Exit(1)
