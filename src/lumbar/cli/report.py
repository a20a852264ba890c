"""``lumbar report`` (any trial) and ``lumbar demo`` (a synthetic trial, end to end).

Both import the analysis and the report (pandas, SciPy, matplotlib) when they run.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lumbar.cli._common import app, console, option_names, print_synthetic
from lumbar.cli.trial import As, Db, KeyFile, open_trial

if TYPE_CHECKING:
    from lumbar.demo import DemoResult
    from lumbar.report import ReportContent, ReportFiles

__all__ = ["demo_command", "report_command"]

Imputations = Annotated[int, typer.Option(help="Number of imputations.")]


@app.command("report")
def report_command(
    out: Annotated[Path, typer.Option(help="Folder for report.html, figures/ and tables/.")] = Path(
        "report"
    ),
    pdf: Annotated[
        bool, typer.Option(help="Also write report.pdf (needs the optional 'pdf' extra).")
    ] = False,
    imputations: Imputations = 20,
    seed: Annotated[int, typer.Option(help="Seed for the imputations.")] = 20110705,
    studies: Annotated[
        str | None,
        typer.Option(
            help="Published studies for an evidence section: a CSV file with an outcome "
            "column (see 'lumbar meta'), or 'shipped' for lumbar's massage trials."
        ),
    ] = None,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Write the trial report: flow, Table 1, the pre-specified analysis, responders, safety.

    Reads the trial as --as may: a blinded user's report shows all participants together
    (no arm, no difference between arms, no sessions or adverse events). A trial without
    follow-up yet gets an enrolment and baseline report: the flow so far, Table 1, and
    the visits due. With --studies, an evidence section pools the published studies
    without and with this trial's result.
    """
    from lumbar.analysis.plan import Settings
    from lumbar.application import published_studies, run_report

    published = None if studies is None else published_studies(studies)
    trial = open_trial(db, actor, key_file)
    try:
        with option_names({"pdf": "--pdf"}):
            run = run_report(
                trial,
                out,
                settings=Settings(imputations=imputations, seed=seed),
                studies=published,
                pdf=pdf,
            )
    finally:
        trial.close()
    _summary(run.content, run.files)


@app.command("demo")
def demo_command(
    participants: Annotated[int, typer.Option(help="Participants to randomize.")] = 401,
    seed: Annotated[int, typer.Option(help="Seed of the simulation and the analysis.")] = 20110705,
    out: Annotated[Path, typer.Option(help="Folder for the demo trial and its report.")] = Path(
        "lumbar-demo"
    ),
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace an earlier demo in the folder.")
    ] = False,
) -> None:
    """Run the reference trial on SYNTHETIC participants, analyse it, and write its report.

    Every write goes through lumbar's operations (screening, consent, concealed
    randomization, sessions, questionnaires, audit trail) on a fresh SQLite trial in --out.
    It ends with an account of each role for the staff web pages (random passwords, kept in
    --out/accounts.txt) and how to open them: lumbar serve --db <out>/trial.db.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from lumbar.demo import run_demo

    screen = console()
    print_synthetic(
        f"simulating the massage-clbp trial with {participants} participants (seed {seed}) "
        f"in {out}/"
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=screen,
        transient=False,
    ) as bars:
        trial_task = bars.add_task("simulated days", total=1, status="")
        steps = bars.add_task("analysis and report", total=4, status="waiting")

        def progress(status: str, day: int, days: int) -> None:
            bars.update(trial_task, completed=day, total=days, status=status)

        def phase(name: str) -> None:
            if name in ("analysing", "writing the report"):
                bars.update(trial_task, completed=bars.tasks[trial_task].total, status="done")
                bars.update(steps, advance=2 if name == "analysing" else 1, status=name)

        with option_names({"participants": "--participants", "out": "--out"}):
            result = run_demo(
                out,
                participants=participants,
                seed=seed,
                replace_existing=replace,
                progress=progress,
                phase=phase,
            )
        bars.update(steps, completed=4, status="done")
    simulation = result.simulation
    arms = ", ".join(f"{arm} {count}" for arm, count in sorted(simulation.by_arm.items()))
    screen.print(
        f"Screened {simulation.screened}, randomized {simulation.randomized} ({arms}); "
        f"{simulation.sessions} sessions, {simulation.questionnaires} questionnaires, "
        f"{simulation.adverse_events} adverse events, {simulation.lost} lost to follow-up."
    )
    if result.audit is not None:
        state = "intact" if result.audit.intact else "BROKEN"
        screen.print(f"Audit trail: {result.audit.records} records, {state}.")
    screen.print(
        "Timings: "
        + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.timings.items())
    )
    _summary(result.content, result.report)
    screen.print(
        f"The trial database is {result.database}; try "
        f"'{_launcher()} participants --db {result.database} --as coordinator'."
    )
    if result.accounts_file is not None:
        _open_in_browser(result)


def _open_in_browser(result: DemoResult) -> None:
    """End the demo by telling the user how to open the trial in the staff web pages."""
    from lumbar.demo import DEMO_ADDRESS

    screen = console()
    screen.print()
    screen.print("[bold]Open the demo trial in a browser[/bold]")
    screen.print(f"  1. start the web pages:  {_launcher()} serve --db {result.database}")
    screen.print(
        f"  2. open {DEMO_ADDRESS} and sign in as any of these (one account for each role):"
    )
    lines = [f"     {'role':<18}{'user name':<15}password"]
    lines += [
        f"     {account.role.replace('_', ' '):<18}{account.username:<15}{account.password}"
        for account in result.accounts
    ]
    screen.print("     SYNTHETIC DEMO ACCOUNTS", style="bold")
    screen.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)
    screen.print(
        f"  (kept in {result.accounts_file}, readable by you only; for this synthetic trial only)"
    )
    opened = result.open_follow_up
    if opened is not None:
        screen.print()
        screen.print("[bold]Answer a follow-up as a participant would, on a phone[/bold]")
        screen.print(
            f"  The synthetic participant {opened.study_id}, randomized after the simulated "
            f"trial (not in its report), has their {opened.visit} questionnaires due "
            f"({opened.opens.isoformat()} to {opened.last_day.isoformat()})."
        )
        screen.print(
            f"  1. with the web pages started (above), issue their link:\n"
            f"     {_launcher()} invite show {opened.study_id} {opened.visit} "
            f"--db {result.database} --as coordinator",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        screen.print(
            "  2. open the address it prints, in a phone-sized browser window, and answer."
        )


def _launcher() -> str:
    """How the user can call lumbar again: 'lumbar' when it is on PATH, else the path they ran
    (``make demo`` runs .venv/bin/lumbar without activating the environment)."""
    if shutil.which("lumbar"):
        return "lumbar"
    ran = Path(sys.argv[0])
    return os.path.relpath(ran) if ran.name == "lumbar" and ran.exists() else "lumbar"


def _summary(content: ReportContent, files: ReportFiles) -> None:
    from lumbar.report import glance

    screen = console()
    if content.synthetic:
        print_synthetic()
    for note in (*content.analysis.notes, *content.notes):
        screen.print(f"  {note}", markup=False)
    for sentence in glance(content):
        screen.print(f"  {sentence}")
    screen.print(f"Report: {files.html.resolve().as_uri()}")
    if files.pdf is not None:
        screen.print(f"PDF: {files.pdf}")
    screen.print(
        f"{len(files.tables)} tables (CSV) and {len(files.figures)} figure files beside it."
    )
