"""``lumbar analyze``: the pre-specified analysis, of a trial database or of any long data file.

Like every command that analyses, it imports the analysis (pandas, SciPy,
statsmodels) when it runs, not when ``lumbar`` starts (tests/test_startup.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from lumbar.cli._common import app, option_names
from lumbar.cli.trial import As, Db, KeyFile, open_trial
from lumbar.errors import AnalysisError, Problem
from lumbar.formatting import number

if TYPE_CHECKING:
    from lumbar.analysis.plan import OutcomeAnalysis, TrialAnalysis

__all__ = ["COVARIANCES", "analyze_command"]

COVARIANCES = ("unstructured", "compound_symmetry", "ar1", "toeplitz")
"""The MMRM covariance structures (lumbar.analysis.STRUCTURES; tests/test_startup.py checks
they agree), named here so that ``lumbar --help`` need not import the analysis."""

OPTIONS = {
    "outcome": "--outcome",
    "participant": "--id",
    "arm": "--arm",
    "visit": "--visit",
    "baseline": "--baseline",
    "covariates": "--covariates",
    "reference": "--reference",
    "visits": "--visits",
    "baseline_visit": "--baseline-visit",
    "covariance": "--covariance",
    "alpha": "--alpha",
    "imputations": "--imputations",
}
"""The option for each parameter the analysis names in a problem."""


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


@app.command("analyze")
def analyze_command(
    data: Annotated[
        Path | None,
        typer.Argument(help="A long CSV/Parquet file (one row per participant and visit)."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for results.json and the CSV tables.")] = Path(
        "results"
    ),
    outcome: Annotated[
        str | None, typer.Option(help="Outcome column (with --db: a score column, e.g. rdq_total).")
    ] = None,
    arm: Annotated[str, typer.Option(help="Arm column.")] = "arm",
    participant: Annotated[str, typer.Option("--id", help="Participant column.")] = "participant",
    visit: Annotated[str, typer.Option(help="Visit column.")] = "visit",
    baseline: Annotated[
        str | None, typer.Option(help="Baseline column (none: models without baseline).")
    ] = None,
    covariates: Annotated[
        str | None, typer.Option(help="Covariate columns, comma-separated.")
    ] = None,
    reference: Annotated[str | None, typer.Option(help="The reference (control) arm.")] = None,
    visits: Annotated[
        str | None, typer.Option(help="Post-baseline visits in time order, comma-separated.")
    ] = None,
    baseline_visit: Annotated[
        str | None, typer.Option(help="The visit value that marks baseline rows (left out).")
    ] = None,
    covariance: Annotated[
        str, typer.Option(help="MMRM covariance: " + ", ".join(COVARIANCES) + ".")
    ] = "unstructured",
    robust: Annotated[bool, typer.Option(help="HC3 standard errors for the ANCOVA.")] = False,
    higher_is_better: Annotated[
        bool, typer.Option(help="Higher outcome values are better (default: worse).")
    ] = False,
    imputations: Annotated[int, typer.Option(help="Number of imputations.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed for the imputations.")] = 20110705,
    alpha: Annotated[float, typer.Option(help="Two-sided significance level.")] = 0.05,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Run the pre-specified analysis: ANCOVA, MMRM, GEE, multiple imputation, responders.

    Give a long data file with its column names, or --db (with --as) to analyse a trial
    with its protocol's pre-specified settings.
    """
    from lumbar.analysis import Columns, TrialData
    from lumbar.analysis.plan import Settings, analyze
    from lumbar.application import read_table, run_analysis, write_outcome_analyses

    direction: Literal["higher_is_worse", "higher_is_better"] = (
        "higher_is_better" if higher_is_better else "higher_is_worse"
    )
    base = Settings(
        alpha=alpha,
        covariance=covariance,
        robust=robust,
        direction=direction,
        imputations=imputations,
        seed=seed,
    )
    if data is None and db is None:
        raise AnalysisError(
            "nothing to analyse",
            [
                Problem(
                    "DATA",
                    "give a data file, or --db for a trial",
                    hint="see lumbar analyze --help",
                )
            ],
        )
    if data is not None:
        if outcome is None:
            raise AnalysisError(
                "no outcome",
                [Problem("--outcome", "is required with a data file", hint="--outcome rdq")],
            )
        columns = Columns(
            outcome=outcome,
            participant=participant,
            arm=arm,
            visit=visit,
            baseline=baseline,
            covariates=_split(covariates),
            reference=reference,
            baseline_visit=baseline_visit,
            visits=_split(visits) or None,
        )
        with option_names(OPTIONS):
            trial_data = TrialData.from_frame(read_table(data), columns)
            analyses = [analyze(trial_data, base)]
        files = write_outcome_analyses(analyses, out, source={"file": data.name})
    else:
        trial = open_trial(db, actor, key_file)
        try:
            with option_names(OPTIONS):
                run = run_analysis(trial, out, base, outcome=outcome)
        finally:
            trial.close()
        analyses = list(run.analysis.outcomes)
        files = run.files
        _notes(run.analysis)
    for analysis in analyses:
        _summary(analysis)
    typer.echo(f"wrote {len(files)} files to {out}/ (results.json and CSV tables)")


def _notes(analysis: TrialAnalysis) -> None:
    for note in analysis.notes:
        typer.echo(f"note: {note}")
    if not analysis.compared:
        summary = analysis.summary
        for row in summary.rows:
            typer.echo(
                f"{row.outcome} at {row.visit}, all participants: n {row.n} of "
                f"{row.expected} expected, mean {number(row.mean)} (SD {number(row.sd)})"
            )


def _summary(analysis: OutcomeAnalysis) -> None:
    typer.echo(str(analysis.mmrm))
    for note in analysis.notes:
        typer.echo(f"note: {note}")
