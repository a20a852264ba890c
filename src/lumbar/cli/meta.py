"""``lumbar meta``: pool published studies (and, optionally, this trial's own result).

The command reads a study table (a CSV/Parquet file, or the shipped dataset of
massage trials), turns it into effect sizes with :func:`lumbar.synthesis.studies.read_studies`
(rows that lack the numbers are set aside, each with its reason), pools them with
:func:`lumbar.synthesis.meta_analysis`, and probes the result: subgroups, leave-one-out,
cumulative pooling and Egger's test (:func:`lumbar.synthesis.review`). With
``--with-trial`` the trial of ``--db`` is analysed as its protocol pre-specifies
(:func:`lumbar.application.trial_evidence`) and its ANCOVA difference joins the published
studies, so the pooled estimate can be shown before and after. The files written to
``--out`` are listed in :mod:`lumbar.application.evidence` (:func:`write_review`).

The command imports the synthesis (pandas, SciPy, matplotlib) when it runs.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lumbar.cli._common import app, console, echo_table, option_names, print_synthetic
from lumbar.cli.trial import As, Db, KeyFile, open_trial
from lumbar.errors import Problem, SynthesisError
from lumbar.formatting import number, p_sentence, p_value

if TYPE_CHECKING:
    import pandas as pd

    from lumbar.application import TrialEvidence
    from lumbar.synthesis import Review

__all__ = ["MEASURES", "METHODS", "meta_command"]

MEASURES = ("MD", "SMD", "RR", "OR", "RD")
"""lumbar.synthesis.MEASURES, named here so that ``lumbar --help`` need not import the
synthesis (tests/test_startup.py checks they agree)."""
METHODS = ("FE", "DL", "REML", "PM", "ML")
"""lumbar.synthesis.METHODS, likewise."""
SHIPPED_NAME = "massage_lbp"
"""lumbar.synthesis.SHIPPED: the shipped study table's name."""

NAMES = (
    "study",
    "n1",
    "mean1",
    "sd1",
    "n2",
    "mean2",
    "sd2",
    "events1",
    "events2",
    "effect",
    "lower",
    "upper",
    "se",
    "outcome",
    "this_trial",
)
"""lumbar's column names that --column can map a table's own names to."""

OPTIONS = {"subgroup": "--subgroup", "order_by": "--order-by", "level": "--level"}
"""The option for each parameter of this command the synthesis names in a problem (the
shared ones, such as measure and method, are in lumbar.cli._common.FLAGS)."""


# ---------------------------------------------------------------------- inputs


def _mapping(pairs: list[str] | None) -> dict[str, str]:
    """``--column ours=theirs`` pairs as a mapping, refusing names lumbar does not use."""
    mapping: dict[str, str] = {}
    problems = []
    for pair in pairs or []:
        ours, separator, theirs = pair.partition("=")
        ours, theirs = ours.strip(), theirs.strip()
        if not separator or not ours or not theirs:
            problems.append(
                Problem("--column", "must be written NAME=YOURS", pair, "e.g. --column sd1=s1")
            )
        elif ours not in NAMES:
            problems.append(
                Problem(
                    f"--column {pair}",
                    "maps a name lumbar does not use",
                    ours,
                    "lumbar's names: " + ", ".join(NAMES),
                )
            )
        else:
            mapping[ours] = theirs
    if problems:
        raise SynthesisError("cannot map the columns", problems)
    return mapping


def _their_names(
    error: SynthesisError, columns: dict[str, str], available: pd.Index
) -> SynthesisError:
    """The same problems, naming the file's own column beside lumbar's (after --column), and
    saying how to map a required column the file lacks."""
    problems = []
    for problem in error.problems:
        name = problem.where.rpartition(": ")[2]
        if name in columns:
            where = f"{problem.where} (your column {columns[name]!r})"
            problems.append(replace(problem, where=where))
        elif problem.where in NAMES and problem.where not in available and not problem.hint:
            problems.append(replace(problem, hint=f"map yours with --column {name}=YOURS"))
        else:
            problems.append(problem)
    return SynthesisError(error.summary, problems)


def _source(studies: Path | None, shipped: bool) -> tuple[pd.DataFrame, str, str]:
    """The study table, a name for it, and the sha256 of its bytes."""
    from lumbar.application import read_table
    from lumbar.synthesis import shipped_studies

    if shipped == (studies is not None):
        raise SynthesisError(
            "which studies?",
            [
                Problem(
                    "STUDIES",
                    "give a study file or --shipped, not both or neither",
                    hint="e.g. lumbar meta --shipped --outcome RDQ",
                )
            ],
        )
    if studies is None:
        data = resources.files("lumbar.synthesis").joinpath("data", f"{SHIPPED_NAME}.csv")
        digest = hashlib.sha256(data.read_bytes()).hexdigest()
        return shipped_studies(), f"shipped:{SHIPPED_NAME}", digest
    frame = read_table(studies, "the studies")
    return frame, studies.name, hashlib.sha256(studies.read_bytes()).hexdigest()


def _only_outcome(
    frame: pd.DataFrame, column: str, outcome: str | None, implied: bool
) -> pd.DataFrame:
    """The rows of one outcome: pooling several outcomes together is refused."""
    if column not in frame.columns:
        if outcome is not None and not implied:
            raise SynthesisError(
                "cannot choose the outcome",
                [
                    Problem(
                        "--outcome",
                        f"needs a column {column!r} in the studies",
                        outcome,
                        "map yours with --column outcome=YOURS, or leave --outcome out",
                    )
                ],
            )
        return frame
    values = frame[column].astype(str)
    available = sorted(set(values[frame[column].notna()]))
    if outcome is None:
        if len(available) > 1:
            raise SynthesisError(
                "the studies hold several outcomes",
                [
                    Problem(
                        "--outcome",
                        "is needed: one outcome is pooled at a time",
                        hint="one of: " + ", ".join(available),
                    )
                ],
            )
        return frame
    chosen = values.str.casefold() == outcome.casefold()
    if not chosen.any():
        raise SynthesisError(
            "no study has this outcome",
            [Problem("--outcome", "matches no row", outcome, "one of: " + ", ".join(available))],
        )
    return frame[chosen.to_numpy()].reset_index(drop=True)


def _trial(
    db: str | None, actor: str | None, key_file: Path | None, outcome: str | None, measure: str
) -> TrialEvidence:
    """This trial's result as study rows (--with-trial), as --as may see it."""
    from lumbar.application import trial_evidence

    trial = open_trial(db, actor, key_file)
    try:
        with option_names({"outcome": "--outcome"}):
            return trial_evidence(trial, outcome=outcome, measure=measure)
    finally:
        trial.close()


# ---------------------------------------------------------------------- the terminal


def _interval(run: Review, low: float, high: float) -> str:
    return f"{number(run.shown(low), run.digits)} to {number(run.shown(high), run.digits)}"


def _print(run: Review) -> None:
    from scipy import stats

    from lumbar.report.forest import AXIS_NAMES

    screen = console()
    if run.synthetic:
        print_synthetic("this trial's rows come from simulated participants")
    for study, reason in run.excluded:
        screen.print(f"set aside: {study} \N{EM DASH} {reason}", markup=False)
    effects = run.table.effects
    z = float(stats.norm.ppf(1 - run.alpha / 2))
    percent = f"{100 * run.level:g}%"
    rows = []
    for index in run.display_order():
        low = effects.yi[index] - z * effects.sei[index]
        high = effects.yi[index] + z * effects.sei[index]
        row = [
            effects.studies[index],
            number(run.shown(effects.yi[index]), run.digits),
            _interval(run, low, high),
            f"{run.model.weights[index]:.1f}",
        ]
        if run.groups is not None:
            row.insert(1, run.groups[index])
        rows.append(row)
    headers = ["study", run.measure, f"{percent} CI", "weight %"]
    if run.groups is not None:
        headers.insert(1, run.subgroup.variable if run.subgroup else "subgroup")
    echo_table(f"Studies ({AXIS_NAMES[run.measure].lower()})", headers, rows)
    pooled = []
    models = [("published studies only", run.before)] if run.before is not None else []
    models.append((run.model_label, run.model))
    for label, result in models:
        assert result is not None
        low, high = result.prediction or (math.nan, math.nan)
        pooled.append(
            (
                label,
                result.k,
                number(run.shown(result.estimate), run.digits),
                _interval(run, result.pooled.lower, result.pooled.upper),
                p_value(result.pooled.p),
                f"{result.tau2:.4g}",
                f"{result.i2:.1f}",
                f"{result.q:.2f} ({result.q_df}, {p_value(result.q_p)})",
                _interval(run, low, high),
            )
        )
    echo_table(
        "Pooled estimate" + (" before and after adding this trial" if run.before else ""),
        (
            "model",
            "k",
            run.measure,
            f"{percent} CI",
            "p",
            "tau^2",
            "I^2 %",
            "Q (df, p)",
            "prediction interval",
        ),
        pooled,
    )
    screen.print(run.model.method_text, markup=False)
    if run.subgroup is not None:
        _print_subgroups(run)
    for note in run.notes:
        screen.print(f"note: {note}", markup=False)


def _print_subgroups(run: Review) -> None:
    analysis = run.subgroup
    assert analysis is not None
    rows = [
        (
            name,
            result.k,
            number(run.shown(result.estimate), run.digits),
            _interval(run, result.pooled.lower, result.pooled.upper),
            f"{result.tau2:.4g}",
            f"{result.i2:.1f}",
        )
        for name, result in analysis.results.items()
    ]
    percent = f"{100 * run.level:g}%"
    echo_table(
        f"Subgroups by {analysis.variable}",
        ("subgroup", "k", run.measure, f"{percent} CI", "tau^2", "I^2 %"),
        rows,
    )
    screen = console()
    screen.print(
        f"Test for subgroup differences (Q-between): Q = {analysis.q_between:.2f} on "
        f"{analysis.q_between_df} df, {p_sentence(analysis.q_between_p)}",
        markup=False,
    )
    moderator = analysis.moderator_test
    if moderator is not None and moderator.qm is not None:
        statistic = "F" if moderator.hksj else "QM"
        screen.print(
            f"Moderator test (meta-regression, one tau^2): {statistic} = {moderator.qm:.2f} on "
            f"{moderator.qm_df} df, {p_sentence(moderator.qm_p)}",
            markup=False,
        )
    else:
        screen.print("Moderator test: not done (no more studies than subgroups).", markup=False)


# ---------------------------------------------------------------------- the command


@app.command("meta")
def meta_command(
    studies: Annotated[
        Path | None,
        typer.Argument(
            help="A CSV/Parquet study table, one row per comparison: study, n1, mean1, sd1, n2, "
            "mean2, sd2 (continuous) or study, events1, n1, events2, n2 (binary), group 1 being "
            "the treatment; or effect with lower and upper (or se). Other names: --column."
        ),
    ] = None,
    measure: Annotated[
        str, typer.Option(help="Effect measure: " + ", ".join(MEASURES) + ".")
    ] = "MD",
    method: Annotated[
        str,
        typer.Option(
            help="Model: FE (common effect), or random effects with tau^2 estimated by DL "
            "(DerSimonian-Laird), REML, PM (Paule-Mandel) or ML."
        ),
    ] = "REML",
    hksj: Annotated[
        bool,
        typer.Option("--hksj", help="Hartung-Knapp-Sidik-Jonkman adjustment (t on k - 1 df)."),
    ] = False,
    subgroup: Annotated[
        str | None,
        typer.Option(help="A column of the studies: pool each subgroup and test the difference."),
    ] = None,
    column: Annotated[
        list[str] | None,
        typer.Option(
            "--column",
            help="Map one of lumbar's column names to the table's own, NAME=YOURS (repeat), "
            "e.g. --column sd1=s1.",
        ),
    ] = None,
    outcome: Annotated[
        str | None,
        typer.Option(
            help="Pool the rows of this outcome (the table's 'outcome' column, e.g. RDQ or "
            "bothersomeness). With --with-trial also the trial's outcome  [default: its first "
            "primary outcome]."
        ),
    ] = None,
    order_by: Annotated[
        str | None,
        typer.Option(help="A column to order the studies by (e.g. year), for cumulative pooling."),
    ] = None,
    level: Annotated[float, typer.Option(help="Confidence level of the intervals shown.")] = 0.95,
    shipped: Annotated[
        bool,
        typer.Option(
            "--shipped", help="Use the shipped dataset of massage trials instead of a file."
        ),
    ] = False,
    treatment: Annotated[str, typer.Option(help="Group 1's name, for the plots.")] = "massage",
    comparator: Annotated[str, typer.Option(help="Group 2's name, for the plots.")] = "comparator",
    higher_is_better: Annotated[
        bool,
        typer.Option(help="Higher values favour the treatment (default: lower values do)."),
    ] = False,
    with_trial: Annotated[
        bool,
        typer.Option(
            "--with-trial",
            help="Add the trial of --db (its pre-specified ANCOVA difference at the primary "
            "visit, as --as may see it unblinded) and show the pooled estimate before and after.",
        ),
    ] = False,
    out: Annotated[
        Path,
        typer.Option(
            help="Folder for results.json, CSV tables (studies, pooled, leave_one_out, "
            "cumulative, subgroups) and the forest and funnel plots (PNG and SVG)."
        ),
    ] = Path("meta"),
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Meta-analysis of published studies, optionally with this trial's own result.

    Rows without the numbers the measure needs are set aside and listed. Ratios (RR, OR)
    are pooled on the log scale and shown exponentiated. Leave-one-out, cumulative pooling
    (with --order-by) and Egger's test are written to --out.

    Example: lumbar meta --shipped --outcome RDQ --measure MD --out meta
    """
    from lumbar.application import write_review
    from lumbar.report.forest import AXIS_NAMES, review_figures
    from lumbar.synthesis import review

    measure, method = measure.upper(), method.upper()
    if not 0 < level < 1:
        raise SynthesisError(
            "cannot run the meta-analysis",
            [Problem("--level", "must be between 0 and 1, e.g. 0.95", level)],
        )
    columns = _mapping(column)
    frame, source, digest = _source(studies, shipped)
    trial = _trial(db, actor, key_file, outcome, measure) if with_trial else None
    chosen = outcome if outcome is not None else (trial.outcome if trial else None)
    frame = _only_outcome(
        frame, columns.get("outcome", "outcome"), chosen, implied=outcome is None or with_trial
    )
    try:
        with option_names(OPTIONS):
            run = review(
                frame,
                measure=measure,
                method=method,
                hksj=hksj,
                level=level,
                columns=columns,
                trial_rows=None if trial is None else trial.rows,
                trial_synthetic=trial is not None and trial.synthetic,
                subgroup=subgroup,
                order_by=order_by,
            )
    except SynthesisError as error:
        raise _their_names(error, columns, frame.columns) from None
    _print(run)
    inputs = {
        "source": source,
        "sha256": digest,
        "measure": measure,
        "method": method,
        "hksj": hksj,
        "level": level,
        "outcome": chosen,
        "subgroup": subgroup,
        "order_by": order_by,
        "columns": columns,
        "treatment": treatment,
        "comparator": comparator,
        "higher_is_better": higher_is_better,
        "with_trial": with_trial,
    }
    stamp = [
        f"# studies {source} sha256 {digest}",
        f"# measure {measure}; method {method}{' + HKSJ' if hksj else ''}; level {level:g}",
    ]
    if trial is not None:
        stamp.append(
            f"# trial {trial.info['id']} protocol sha256 {trial.info['protocol_hash']}; "
            f"data sha256 {trial.info['data_hash']}"
        )
    title = f"{treatment.capitalize()} vs {comparator}: " + (
        chosen if chosen else AXIS_NAMES[measure].lower()
    )
    figures = review_figures(run, treatment, comparator, higher_is_better, title)
    written = write_review(run, out, inputs=inputs, stamp=stamp, figures=figures, trial=trial)
    console().print(
        f"wrote {len(written)} files to {out}/ (results.json, CSV tables, forest and funnel plots)",
        markup=False,
    )
