"""``lumbar power``: sample size and power for the pre-specified analysis, analytic or simulated.

The command imports the design package (NumPy, SciPy, numba) when it runs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from lumbar import __version__
from lumbar.cli._common import app, console, echo_table, error_console
from lumbar.errors import DesignError, Problem

if TYPE_CHECKING:
    from lumbar.design import (
        PowerCalculation,
        ProtocolDefaults,
        Scenario,
        SimulatedPower,
    )

__all__ = ["DEFAULT_ALPHA", "DEFAULT_POWER", "power_command"]

DEFAULT_ALPHA = 0.05
"""lumbar.design.DEFAULT_ALPHA, named here so that ``lumbar --help`` need not import the
design package (tests/test_startup.py checks they agree)."""
DEFAULT_POWER = 0.80
"""lumbar.design.DEFAULT_POWER, likewise."""

POWER_FORMAT = 1
"""Version of power.json's layout."""

DEFAULT_SEED = 20110705
DEFAULT_TRIALS = 10_000
CURVE_POINTS = 9

OPTIONS = {
    "difference": "--difference",
    "sd": "--sd",
    "baseline_correlation": "--correlation",
    "alpha": "--alpha",
    "power": "--power",
    "dropout": "--dropout",
    "arms": "--arms",
    "allocation_ratio": "--ratio",
    "multiplicity": "--bonferroni",
    "method": "--method",
    "n_per_arm": "--n",
    "trials": "--trials",
    "seed": "--seed",
    "outcome": "--outcome",
    "missing": "--missing",
    "arm_names": "--protocol",
}
"""The option the user typed for each name the design package reports a problem with."""


def _translated(error: DesignError) -> DesignError:
    """The same problems, named by the command-line options instead of the argument names."""
    problems = []
    for problem in error.problems:
        name = problem.where.rsplit(": ", 1)[-1]
        where = OPTIONS.get(name, problem.where)
        problems.append(
            Problem(where, problem.rule, problem.received, problem.hint)
            if problem.has_value
            else Problem(where, problem.rule, hint=problem.hint)
        )
    return DesignError(error.summary, problems)


def _label(difference: float, sd: float, correlation: float | None, dropout: float) -> str:
    parts = [f"difference {difference:g}", f"SD {sd:g}"]
    if correlation is not None:
        parts.append(f"r {correlation:g}")
    parts.append(f"dropout {100 * dropout:g}%")
    return ", ".join(parts)


def _grid(low: int, high: int, points: int) -> list[int]:
    if high <= low:
        return [low]
    return sorted({round(low + (high - low) * index / (points - 1)) for index in range(points)})


@app.command("power")
def power_command(
    difference: Annotated[
        list[float] | None,
        typer.Option(
            help="Difference in mean outcome to detect, treatment minus reference arm, in outcome "
            "points (e.g. 2 RDQ points). Repeat for several scenarios. Default with --protocol: "
            "the protocol's meaningful between-arm difference."
        ),
    ] = None,
    sd: Annotated[
        list[float] | None,
        typer.Option(
            help="Standard deviation of the outcome in each arm (e.g. 5 for the RDQ). Repeat for "
            "several scenarios."
        ),
    ] = None,
    correlation: Annotated[
        list[float] | None,
        typer.Option(
            help="Correlation between the outcome and its baseline value, for the ANCOVA adjusted "
            "for baseline (e.g. 0.55). Without it: a t test without baseline adjustment, as R's "
            "power.t.test. Repeat for several scenarios."
        ),
    ] = None,
    dropout: Annotated[
        list[float] | None,
        typer.Option(
            help="Share of randomized participants without a follow-up outcome, from 0 to below 1 "
            "(e.g. 0.12). Randomized numbers are analysed numbers / (1 - dropout), rounded up. "
            "Repeat for several scenarios.  [default: 0]"
        ),
    ] = None,
    power: Annotated[
        float, typer.Option(help="Target power of each comparison, between 0 and 1.")
    ] = DEFAULT_POWER,
    alpha: Annotated[
        float | None,
        typer.Option(
            help="Significance level, between 0 and 1 (two-sided unless --one-sided).  "
            f"[default: {DEFAULT_ALPHA:g}, or the protocol's]"
        ),
    ] = None,
    arms: Annotated[
        int | None,
        typer.Option(
            help="Number of arms; each treatment arm is compared with the reference arm "
            "(arms - 1 comparisons).  [default: 2, or the protocol's]"
        ),
    ] = None,
    bonferroni: Annotated[
        bool,
        typer.Option(
            "--bonferroni",
            help="Test each comparison at alpha / (arms - 1), so the chance of any false positive "
            "stays at most alpha.",
        ),
    ] = False,
    ratio: Annotated[
        float | None,
        typer.Option(
            help="Allocation ratio: participants in each treatment arm per participant in the "
            "reference arm (2 for 2:1).  [default: 1, or the protocol's]"
        ),
    ] = None,
    one_sided: Annotated[
        bool, typer.Option("--one-sided", help="One-sided tests in the direction of --difference.")
    ] = False,
    method: Annotated[
        Literal["borm", "exact"],
        typer.Option(
            help="ANCOVA power: borm (t test with SD x sqrt(1 - r^2), plus one participant per "
            "arm; Borm et al., J Clin Epidemiol 2007) or exact (noncentral t averaged over the "
            "chance baseline imbalance)."
        ),
    ] = "borm",
    n: Annotated[
        int | None,
        typer.Option(
            "--n",
            help="Instead of a sample size, the power when this many are randomized to the "
            "reference arm (and --ratio times as many to each treatment arm).",
        ),
    ] = None,
    simulate: Annotated[
        bool,
        typer.Option(
            "--simulate",
            help="Also simulate trials and analyse each with the ANCOVA, over a range of sizes "
            "(needs --correlation).",
        ),
    ] = False,
    trials: Annotated[
        int, typer.Option(help="Simulated trials per scenario and size.")
    ] = DEFAULT_TRIALS,
    seed: Annotated[int, typer.Option(help="Seed of the simulation.")] = DEFAULT_SEED,
    missing: Annotated[
        Literal["mcar", "baseline"],
        typer.Option(
            help="How simulated follow-up outcomes go missing: mcar (completely at random) or "
            "baseline (more often when worse at baseline; missing at random)."
        ),
    ] = "mcar",
    n_from: Annotated[
        int | None,
        typer.Option(help="Smallest size per arm on the power curve.  [default: half the answer]"),
    ] = None,
    n_to: Annotated[
        int | None,
        typer.Option(help="Largest size per arm on the power curve.  [default: 1.5 x the answer]"),
    ] = None,
    points: Annotated[int, typer.Option(help="Sizes on the power curve.")] = CURVE_POINTS,
    protocol: Annotated[
        str | None,
        typer.Option(
            help="A shipped protocol's name (e.g. massage-clbp) or a protocol file: its arms, "
            "allocation ratio, alpha and meaningful difference become the defaults."
        ),
    ] = None,
    outcome: Annotated[
        str | None,
        typer.Option(
            help="With --protocol: the outcome whose meaningful difference to use.  "
            "[default: the first primary outcome that has one]"
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for power.json, CSV tables and the power curve (power_curve.png/.svg)."
        ),
    ] = None,
) -> None:
    """Sample size (or power) for the pre-specified analysis, with an optional simulation.

    The ANCOVA adjusted for baseline (give --correlation) or the unadjusted t test;
    any number of arms, each compared with the reference arm; unequal allocation;
    dropout. Repeating --difference, --sd, --correlation or --dropout gives one
    scenario per combination. --simulate checks the answer by simulating trials and
    analysing each one.

    Example (the textbook case, 64 per arm): lumbar power --difference 0.5 --sd 1
    """
    try:
        _run(
            difference=difference,
            sd=sd,
            correlation=correlation,
            dropout=dropout,
            power=power,
            alpha=alpha,
            arms=arms,
            bonferroni=bonferroni,
            ratio=ratio,
            one_sided=one_sided,
            method=method,
            n=n,
            simulate=simulate,
            trials=trials,
            seed=seed,
            missing=missing,
            n_from=n_from,
            n_to=n_to,
            points=points,
            protocol_name=protocol,
            outcome=outcome,
            out=out,
        )
    except DesignError as error:
        raise _translated(error) from None


def _run(
    *,
    difference: list[float] | None,
    sd: list[float] | None,
    correlation: list[float] | None,
    dropout: list[float] | None,
    power: float,
    alpha: float | None,
    arms: int | None,
    bonferroni: bool,
    ratio: float | None,
    one_sided: bool,
    method: Literal["borm", "exact"],
    n: int | None,
    simulate: bool,
    trials: int,
    seed: int,
    missing: Literal["mcar", "baseline"],
    n_from: int | None,
    n_to: int | None,
    points: int,
    protocol_name: str | None,
    outcome: str | None,
    out: Path | None,
) -> None:
    from lumbar.design import Scenario, power_ancova, sample_size_ancova

    defaults = None
    if protocol_name is not None:
        defaults = _protocol_defaults(protocol_name, outcome)
    elif outcome is not None:
        raise DesignError(
            "--outcome needs a protocol",
            [Problem("--outcome", "is used only with --protocol", outcome, "add --protocol")],
        )
    differences = difference or ([defaults.difference] if defaults else [])
    sds = sd or []
    problems = _input_problems(
        differences, sds, correlation, simulate, trials, seed, points, n_from, n_to
    )
    if problems:
        raise DesignError("cannot compute the power", problems)
    arm_count = arms if arms is not None else (len(defaults.arms) if defaults else 2)
    settings: dict[str, Any] = {
        "alpha": alpha if alpha is not None else (defaults.alpha if defaults else DEFAULT_ALPHA),
        "two_sided": not one_sided,
        "arms": arm_count,
        "allocation_ratio": ratio
        if ratio is not None
        else (defaults.allocation_ratio if defaults else 1.0),
        "multiplicity": "bonferroni" if bonferroni else "none",
        "method": method,
    }
    correlations: list[float | None] = list(correlation) if correlation else [None]
    combinations = list(itertools.product(differences, sds, correlations, dropout or [0.0]))
    labels = [_label(*combination) for combination in combinations]
    results: list[PowerCalculation] = []
    for d, s, r, lost in combinations:
        common = {"baseline_correlation": r, "dropout": lost, **settings}
        if n is None:
            results.append(sample_size_ancova(d, s, power=power, **common))
        else:
            results.append(power_ancova(n, d, s, **common))
    if defaults is not None:
        _protocol_note(defaults, arms is None)
    _print_analytic(results, labels, n is None)
    sizes = [result.randomized_reference for result in results]
    low = n_from if n_from is not None else max(2, math.floor(min(sizes) / 2))
    high = n_to if n_to is not None else max(low, math.ceil(1.5 * max(sizes)))
    grid = sorted(set(_grid(low, high, points)) | {size for size in sizes if low <= size <= high})
    simulation = None
    if simulate:
        arm_names = defaults.arms if defaults is not None and arms is None else None
        scenarios = [
            Scenario.uniform(
                label,
                difference=d,
                sd=s,
                baseline_correlation=float(r if r is not None else 0.0),
                dropout=lost,
                arms=arm_count,
                missing=missing,
            )
            for label, (d, s, r, lost) in zip(labels, combinations, strict=True)
        ]
        simulation = _simulate(scenarios, grid, trials, seed, settings, arm_names)
        _print_simulation(simulation, results, labels)
    if out is not None:
        written = _write(out, results, labels, simulation, grid, defaults, power)
        console().print(f"wrote {len(written)} files to {out}/", markup=False)


def _protocol_defaults(protocol_name: str, outcome: str | None) -> ProtocolDefaults:
    from lumbar.design import protocol_defaults
    from lumbar.protocol import resolve_protocol

    return protocol_defaults(resolve_protocol(protocol_name), outcome)


def _input_problems(
    differences: Sequence[float],
    sds: Sequence[float],
    correlation: list[float] | None,
    simulate: bool,
    trials: int,
    seed: int,
    points: int,
    n_from: int | None,
    n_to: int | None,
) -> list[Problem]:
    """What is missing or out of range among the options, before anything is computed."""
    from lumbar.design.assumptions import check_positive_count

    problems: list[Problem] = []
    if not differences:
        problems.append(
            Problem(
                "--difference",
                "is required (or --protocol, whose meaningful difference is used)",
                hint="e.g. --difference 2",
            )
        )
    if not sds:
        problems.append(Problem("--sd", "is required", hint="e.g. --sd 5"))
    if simulate and not correlation:
        problems.append(
            Problem(
                "--correlation",
                "is required with --simulate (the simulated ANCOVA adjusts for baseline)",
                hint="e.g. --correlation 0.5",
            )
        )
    if simulate:
        problems += check_positive_count("--trials", trials, 1, "e.g. 10000")
        problems += check_positive_count("--seed", seed, 0, "e.g. 20110705")
    if points < 2:
        problems.append(Problem("--points", "must be at least 2", points))
    if n_from is not None and n_to is not None and n_from > n_to:
        problems.append(Problem("--n-from", "must not exceed --n-to", (n_from, n_to)))
    return problems


def _protocol_note(defaults: ProtocolDefaults, arms_from_protocol: bool) -> None:
    arms = f"; arms {', '.join(defaults.arms)} (reference first)" if arms_from_protocol else ""
    console().print(
        f"From protocol {defaults.protocol}: outcome {defaults.outcome}, meaningful difference "
        f"{defaults.difference:g} ({defaults.difference_source}){arms}; allocation "
        f"{defaults.allocation_ratio:g}:1; alpha {defaults.alpha:g}. The SD and the correlation "
        "with baseline are assumptions.",
        markup=False,
    )


def _print_analytic(
    results: Sequence[PowerCalculation], labels: Sequence[str], solved: bool
) -> None:
    first = results[0].assumptions
    method = f", {first.method}" if first.adjusted else ""
    sides = "two" if first.two_sided else "one"
    title = (
        f"{'Sample size' if solved else 'Power'}: {first.analysis}{method}, "
        f"alpha {first.alpha_per_comparison:g} {sides}-sided"
    )
    rows = [
        (
            label,
            _count(result.analysed_reference)
            + (
                ""
                if result.analysed_treatment == result.analysed_reference
                else f" / {_count(result.analysed_treatment)}"
            ),
            str(result.randomized_reference)
            + (
                ""
                if result.randomized_treatment == result.randomized_reference
                else f" / {result.randomized_treatment}"
            ),
            result.randomized_total,
            f"{result.power:.4f}",
        )
        for label, result in zip(labels, results, strict=True)
    ]
    echo_table(
        title,
        (
            "scenario",
            "analysed per arm",
            "randomized per arm",
            "randomized total",
            "power",
        ),
        rows,
    )
    console().print(results[0].method_text, markup=False)


def _count(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.1f}"


def _simulate(
    scenarios: Sequence[Scenario],
    grid: Sequence[int],
    trials: int,
    seed: int,
    settings: dict[str, Any],
    arm_names: Sequence[str] | None,
) -> SimulatedPower:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from lumbar.design import simulate_power

    with Progress(
        TextColumn("simulating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=error_console(),
        transient=True,
    ) as bars:
        task = bars.add_task("points", total=len(scenarios) * len(grid))

        def progress(done: int, total: int) -> None:
            bars.update(task, completed=done, total=total)

        return simulate_power(
            scenarios,
            grid,
            trials=trials,
            seed=seed,
            alpha=settings["alpha"],
            two_sided=settings["two_sided"],
            multiplicity=settings["multiplicity"],
            allocation_ratio=settings["allocation_ratio"],
            arm_names=arm_names,
            progress=progress,
        )


def _print_simulation(
    simulation: SimulatedPower, results: Sequence[PowerCalculation], labels: Sequence[str]
) -> None:
    by_label = dict(zip(labels, results, strict=True))
    rows = []
    for point in simulation.points:
        analytic = "-"
        if point.comparison not in ("all", "any"):
            assumptions = by_label[point.scenario].assumptions
            analytic = f"{_analytic_power(assumptions, point.n):.4f}"
        rows.append(
            (
                point.scenario,
                point.n,
                point.comparison,
                f"{point.power:.4f}",
                f"{point.lower:.4f} to {point.upper:.4f}",
                analytic,
            )
        )
    method = results[0].assumptions.method
    echo_table(
        f"Simulated power ({simulation.trials:,} trials per point, seed {simulation.seed})",
        (
            "scenario",
            "randomized per arm",
            "comparison",
            "power",
            "95% interval",
            f"analytic ({method})",
        ),
        rows,
    )
    console().print(simulation.method_text, markup=False)


def _analytic_power(assumptions: Any, n: int) -> float:
    from lumbar.design import power_ancova

    try:
        return power_ancova(
            n,
            assumptions.difference,
            assumptions.sd,
            baseline_correlation=assumptions.baseline_correlation,
            alpha=assumptions.alpha,
            two_sided=assumptions.two_sided,
            arms=assumptions.arms,
            allocation_ratio=assumptions.allocation_ratio,
            dropout=assumptions.dropout,
            multiplicity=assumptions.multiplicity,
            method=assumptions.method,
        ).power
    except DesignError:
        return math.nan  # too small for the analytic formula (e.g. Borm's n - 1 per arm)


def _write(
    out: Path,
    results: Sequence[PowerCalculation],
    labels: Sequence[str],
    simulation: SimulatedPower | None,
    grid: Sequence[int],
    defaults: ProtocolDefaults | None,
    target: float,
) -> list[Path]:
    import pandas as pd

    from lumbar.design import power_curve
    from lumbar.report import ResultsFolder
    from lumbar.report.figures import power_figure

    stamp = []
    if simulation is not None:
        stamp.append(f"# seed {simulation.seed}; {simulation.trials} trials per point")
    folder = ResultsFolder(out, synthetic=False, stamp=stamp)
    analytic = pd.concat(
        [
            result.to_frame().assign(scenario=label)
            for label, result in zip(labels, results, strict=True)
        ],
        ignore_index=True,
    )
    analytic = analytic[["scenario", *[c for c in analytic.columns if c != "scenario"]]]
    if simulation is not None:
        curve = simulation.curve()
        curve_title = f"Simulated power ({simulation.trials:,} trials per point)"
    else:
        curve = pd.concat(
            [
                power_curve(
                    result.assumptions,
                    [size for size in grid if _fits(result, size)],
                    scenario=label,
                )
                for label, result in zip(labels, results, strict=True)
            ],
            ignore_index=True,
        )
        curve_title = f"Power of the {results[0].assumptions.analysis}"
    document: dict[str, Any] = {
        "lumbar_power": POWER_FORMAT,
        "lumbar_version": __version__,
        "protocol": None
        if defaults is None
        else {
            "id": defaults.protocol,
            "outcome": defaults.outcome,
            "difference": defaults.difference,
            "difference_source": defaults.difference_source,
            "arms": list(defaults.arms),
        },
        "analytic": [
            {"scenario": label, **result.to_dict()}
            for label, result in zip(labels, results, strict=True)
        ],
        "simulation": simulation.to_dict() if simulation is not None else None,
    }
    folder.json("power.json", document)
    folder.table("sample_size", analytic)
    if simulation is not None:
        folder.table("simulated_power", simulation.to_frame())
    folder.table("power_curve", curve)
    figure = power_figure(
        curve,
        target=target,
        title=curve_title,
        name="power_curve",
        x_label="participants randomized per arm"
        if results[0].assumptions.allocation_ratio == 1
        else "participants randomized to the reference arm",
    )
    folder.figure(figure)
    return folder.written


def _fits(result: PowerCalculation, size: int) -> bool:
    return not math.isnan(_analytic_power(result.assumptions, size))
