"""Benchmark: ``lumbar demo`` end to end, each phase's share, and its analysis against R.

Run by hand from the repository root (it is not a test; about 2 minutes)::

    .venv/bin/python bench/demo.py
    .venv/bin/python bench/demo.py --runs 3 --peer-runs 3
    .venv/bin/python bench/demo.py --no-r

What is measured:

- the demo: ``.venv/bin/lumbar demo --out DIR --replace`` (the default 401
  participants and seed) as a subprocess, so interpreter start-up and imports
  count: the wall time, the phases the demo prints on its ``Timings:`` line
  (create, simulate, analyse, report; 0.1 s resolution) with each one's share,
  "start-up/other" = wall - the demo's own total, and the demo process's peak
  memory (``ru_maxrss`` of the children, read before any other child runs). The
  target: under 60 s of wall time on this machine.
- the peer: R analysing the same data. The demo's trial is exported as the
  statistician sees it (``lumbar export --as statistician``), and
  bench/demo_peer.R runs on that CSV the pre-specified analysis of both primary
  outcomes that lumbar's analysis runs: ANCOVA at each visit (lm + emmeans), the
  unstructured MMRM (nlme::gls + emmeans, Satterthwaite df), the GEE
  (geepack::geeglm, exchangeable) and multiple imputation (mice, m = 20, pmm,
  within each arm) with the pooled ANCOVA. R times each part itself.
- lumbar on the same work: the same four estimators called in this process on
  the same CSV, timed per part, so the ratio compares like with like. The demo's
  analyse phase does more than these four models (it reads the trial from
  SQLite, and adds Table 1, CONSORT counts, responder and tipping-point analyses,
  treatment and safety summaries, and verifies the audit trail); its ratio to R
  is shown too.

As a check that both sides analysed the same data with the same models, R's
estimates are compared with the tables of the demo's report (report/tables/),
and lumbar's in-process estimates with the same tables.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from common import machine, run_r

from lumbar.analysis import TrialData, ancova, gee, mmrm, multiple_imputation
from lumbar.analysis.plan import Settings, primary_outcome_columns
from lumbar.demo import DEMO_PROTOCOL
from lumbar.protocol import shipped_protocol

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEER_SCRIPT = HERE / "demo_peer.R"
LUMBAR = Path(sys.executable).parent / "lumbar"
"""The venv's console script, so the demo runs as a user starts it."""
TARGET_SECONDS = 60.0
"""Issue 5: ``lumbar demo`` with the default 401 participants end to end, on this machine."""
PHASES = ("create", "simulate", "analyse", "report")
PARTS = ("read", "prep", "ancova", "mmrm", "gee", "imputation")
MODELS = ("ancova", "mmrm", "gee", "imputation")
MODEL_NAMES = {"ancova": "ANCOVA", "mmrm": "MMRM", "gee": "GEE", "imputation": "MI"}
CHECK_VISIT = "week_10"
TIMINGS = re.compile(r"Timings: ((?:[a-z]+ [0-9.]+ s(?:, )?)+)")
PHASE = re.compile(r"([a-z]+) ([0-9.]+) s")


@dataclass
class DemoRun:
    """One ``lumbar demo`` subprocess: its wall time and the phases it printed."""

    wall: float
    phases: dict[str, float]
    summary: str


@dataclass
class Analysis:
    """One side's timed analysis: seconds per part per run, the last run's contrasts."""

    runs: list[dict[str, float]] = field(default_factory=list)
    estimates: dict[str, dict[str, pd.DataFrame]] = field(default_factory=dict)
    failed: str = ""
    load_seconds: float = math.nan
    versions: str = ""
    warnings: list[str] = field(default_factory=list)

    def median(self, part: str) -> float:
        return statistics.median(run[part] for run in self.runs) if self.runs else math.nan

    def total(self, parts: tuple[str, ...] = PARTS) -> float:
        if not self.runs:
            return math.nan
        return statistics.median(sum(run[part] for part in parts) for run in self.runs)


@dataclass(frozen=True)
class Plan:
    """What the pre-specified analysis of the demo's protocol fits (from the protocol)."""

    outcomes: tuple[str, ...]
    visits: tuple[str, ...]
    baseline_visit: str
    reference: str
    covariates: tuple[str, ...]
    settings: Settings
    iterations: int = 10
    donors: int = 5
    """lumbar's multiple_imputation defaults (src/lumbar/analysis/imputation.py)."""


def demo_plan(seed: int) -> Plan:
    protocol = shipped_protocol(DEMO_PROTOCOL)
    return Plan(
        outcomes=tuple(column for column, _, _ in primary_outcome_columns(protocol)),
        visits=tuple(visit.id for visit in protocol.follow_up_visits),
        baseline_visit=protocol.baseline.id,
        reference=protocol.analysis.reference_arm,
        covariates=tuple(protocol.analysis.covariates),
        settings=Settings(seed=seed),  # what lumbar demo analyses with (src/lumbar/demo.py)
    )


# ---------------------------------------------------------------------------- the demo


def run_demo(out: Path, timeout: float) -> DemoRun:
    """``lumbar demo --out out --replace`` in a subprocess; its wall time and phases."""
    command = [str(LUMBAR), "demo", "--out", str(out), "--replace"]
    started = time.perf_counter()
    finished = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT
    )
    wall = time.perf_counter() - started
    if finished.returncode != 0:
        tail = " / ".join(finished.stderr.strip().splitlines()[-3:])
        raise SystemExit(f"lumbar demo failed ({finished.returncode}): {tail}")
    text = " ".join(finished.stdout.split())  # the console wraps long lines: join them
    found = TIMINGS.search(text)
    if found is None:
        raise SystemExit("lumbar demo printed no 'Timings: ...' line:\n" + finished.stdout)
    phases = {name: float(value) for name, value in PHASE.findall(found.group(1))}
    summary = re.search(r"Screened .*? lost to follow-up\.", text)
    return DemoRun(wall, phases, summary.group(0) if summary else "")


def export(out: Path, path: Path) -> int:
    """The demo trial's de-identified dataset, as its statistician exports it; rows written."""
    database = out / "trial.db"
    command = [
        str(LUMBAR),
        "export",
        "--db",
        str(database),
        "--as",
        "statistician",
        "--key-file",
        str(out / "trial.db.key"),
        "--out",
        str(path),
    ]
    finished = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if finished.returncode != 0:
        raise SystemExit(f"lumbar export failed: {finished.stderr.strip()}")
    return len(pd.read_csv(path))


# ---------------------------------------------------------------------------- lumbar, in process


def time_lumbar(path: Path, plan: Plan, repeats: int) -> Analysis:
    """lumbar's four estimators on the exported CSV, timed per part like demo_peer.R."""
    outcome = Analysis()
    settings = plan.settings
    fits: dict[str, Callable[[TrialData], pd.DataFrame]] = {
        "ancova": lambda data: ancova(data, alpha=settings.alpha).to_frame(),
        "mmrm": lambda data: mmrm(
            data, covariance=settings.covariance, alpha=settings.alpha
        ).to_frame(),
        "gee": lambda data: gee(data, alpha=settings.alpha).to_frame(),
        "imputation": lambda data: multiple_imputation(
            data,
            m=settings.imputations,
            method=settings.imputation_method,
            iterations=plan.iterations,
            donors=plan.donors,
            seed=settings.seed,
            alpha=settings.alpha,
        ).to_frame(),
    }
    for _ in range(repeats):
        seconds = dict.fromkeys(PARTS, 0.0)
        mark = time.perf_counter()
        tidy = pd.read_csv(path)
        seconds["read"] = time.perf_counter() - mark
        for name in plan.outcomes:
            mark = time.perf_counter()
            data = TrialData.from_tidy(
                tidy,
                name,
                reference=plan.reference,
                covariates=plan.covariates,
                baseline_visit=plan.baseline_visit,
                visits=plan.visits,
            )
            seconds["prep"] += time.perf_counter() - mark
            outcome.estimates[name] = {}
            for model, fit in fits.items():
                mark = time.perf_counter()
                outcome.estimates[name][model] = fit(data)
                seconds[model] += time.perf_counter() - mark
        outcome.runs.append(seconds)
    return outcome


# ---------------------------------------------------------------------------- R


def time_r(path: Path, plan: Plan, repeats: int, directory: Path, timeout: float) -> Analysis:
    """bench/demo_peer.R on the exported CSV; R times each part itself."""
    outcome = Analysis()
    spec = {
        "data": str(path),
        "outcomes": list(plan.outcomes),
        "visits": list(plan.visits),
        "reference": plan.reference,
        "covariates": list(plan.covariates),
        "imputations": plan.settings.imputations,
        "iterations": plan.iterations,
        "donors": plan.donors,
        "seed": plan.settings.seed,
        "repeats": repeats,
    }
    spec_path = directory / "peer.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    reply, failure = run_r([str(PEER_SCRIPT), str(spec_path)], timeout)
    if reply is None:
        outcome.failed = failure
        return outcome
    if "versions" in reply:
        versions = reply["versions"]
        outcome.versions = (
            versions.pop("r")
            + ", "
            + ", ".join(f"{name} {version}" for name, version in versions.items())
        )
    if not reply["ok"]:
        outcome.failed = f"R failed: {reply['error']}"
        return outcome
    outcome.load_seconds = float(reply["load_seconds"])
    outcome.runs = [{part: float(run[part]) for part in PARTS} for run in reply["seconds"]]
    outcome.estimates = {
        name: {model: pd.DataFrame(rows) for model, rows in models.items()}
        for name, models in reply["estimates"].items()
    }
    outcome.warnings = list(reply["warnings"])
    return outcome


# ---------------------------------------------------------------------------- checks


def report_table(out: Path, outcome: str, model: str) -> pd.DataFrame:
    """A contrast table of the demo's report (its '#' lines are provenance)."""
    return pd.read_csv(out / "report" / "tables" / f"{outcome}_{model}.csv", comment="#")


def differences(table: pd.DataFrame, other: pd.DataFrame) -> pd.Series:
    """|table - other| of the estimates, matched on visit and arm (NaN where unmatched)."""
    keys = ["visit", "arm"]
    joined = table[[*keys, "estimate"]].merge(
        other[[*keys, "estimate"]], on=keys, how="left", suffixes=("", "_other")
    )
    return (joined["estimate"] - joined["estimate_other"]).abs()


def largest(values: list[pd.Series]) -> float:
    """The largest difference, NaN (nothing matched) counting as infinitely large."""
    joined = pd.concat(values)
    return math.inf if joined.isna().any() else float(joined.max())


def agreement(out: Path, plan: Plan, side: Analysis) -> dict[str, float]:
    """Per model, the largest |estimate - the report's| over outcomes, visits and arms."""
    found = {}
    for model in MODELS:
        found[model] = largest(
            [
                differences(report_table(out, name, model), side.estimates[name][model])
                for name in plan.outcomes
            ]
        )
    return found


def imputation_spread(out: Path, plan: Plan, side: Analysis) -> float:
    """The largest |MI estimate - the report's| in units of the report's pooled SE."""
    ratios = []
    for name in plan.outcomes:
        table = report_table(out, name, "imputation")
        ratios.append(differences(table, side.estimates[name]["imputation"]) / table["se"])
    return largest(ratios)


# ---------------------------------------------------------------------------- report


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def seconds_text(value: float, form: str = ".2f") -> str:
    return "-" if math.isnan(value) else format(value, form)


def times(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}x"


def aligned(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def phase_table(runs: list[DemoRun]) -> str:
    walls = [run.wall for run in runs]
    wall = median(walls)
    total = median([run.phases["total"] for run in runs])
    rows = [("phase", "median s", "share of wall", "share of demo total")]
    for name in PHASES:
        value = median([run.phases.get(name, math.nan) for run in runs])
        rows.append((name, f"{value:.1f}", f"{value / wall:.1%}", f"{value / total:.1%}"))
    other = median([run.wall - run.phases["total"] for run in runs])
    rows.append(("start-up/other", f"{other:.1f}", f"{other / wall:.1%}", "-"))
    rows.append(("demo total", f"{total:.1f}", f"{total / wall:.1%}", "100.0%"))
    rows.append(("wall", f"{wall:.1f}", "100.0%", "-"))
    return aligned(rows)


def part_table(lumbar: Analysis, peer: Analysis) -> str:
    rows = [("part (both outcomes)", "lumbar s", "R s", "R/lumbar")]
    for part in PARTS:
        mine, theirs = lumbar.median(part), peer.median(part)
        rows.append(
            (part, seconds_text(mine, ".3f"), seconds_text(theirs, ".3f"), ratio(theirs, mine))
        )
    mine, theirs = lumbar.total(), peer.total()
    rows.append(
        ("total", seconds_text(mine, ".3f"), seconds_text(theirs, ".3f"), ratio(theirs, mine))
    )
    return aligned(rows)


def ratio(peer: float, lumbar: float) -> str:
    return times(peer / lumbar) if lumbar > 0 and not math.isnan(peer) else "-"


def check_table(out: Path, plan: Plan, peer: Analysis) -> str:
    rows = [("outcome", "arm", "lumbar (report)", "R", "|difference|")]
    for name in plan.outcomes:
        table = report_table(out, name, "ancova")
        theirs = peer.estimates[name]["ancova"].set_index(["visit", "arm"])["estimate"]
        at = table[table["visit"] == CHECK_VISIT]
        for arm, estimate in zip(at["arm"].astype(str), at["estimate"].astype(float), strict=True):
            other = float(theirs.get((CHECK_VISIT, arm), math.nan))
            rows.append(
                (name, arm, f"{estimate:.9f}", f"{other:.9f}", f"{abs(estimate - other):.1e}")
            )
    return aligned(rows)


# ---------------------------------------------------------------------------- main


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=1, help="lumbar demo runs (~50 s each)")
    parser.add_argument(
        "--peer-runs", type=int, default=1, help="runs of the analysis, by R and by lumbar"
    )
    parser.add_argument("--no-r", action="store_true", help="skip the R peer")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per subprocess")
    options = parser.parse_args(argv)
    if options.runs < 1 or options.peer_runs < 1:
        parser.error("--runs and --peer-runs must be at least 1")
    return options


def print_peer(
    out: Path, plan: Plan, runs: list[DemoRun], lumbar: Analysis, peer: Analysis
) -> None:
    settings = plan.settings
    print(
        f"\nThe analysis against R: both primary outcomes ({', '.join(plan.outcomes)}) at "
        f"{', '.join(plan.visits)}, adjusted for the baseline and {', '.join(plan.covariates)}: "
        f"ANCOVA at each visit, unstructured MMRM, exchangeable GEE, MI (m = "
        f"{settings.imputations}, {settings.imputation_method}, {plan.iterations} iterations, "
        "within each arm) + pooled ANCOVA; lumbar's estimators in this process and "
        "bench/demo_peer.R on the same exported CSV, median over "
        f"{len(lumbar.runs)} run(s) each"
    )
    print(part_table(lumbar, peer))
    if peer.runs:
        print(f"R's package loading ({peer.load_seconds:.2f} s) is not counted.")
    analyse = median([run.phases.get("analyse", math.nan) for run in runs])
    print(
        f"lumbar demo's whole analyse phase: {analyse:.1f} s (0.1 s resolution; it also reads "
        "the trial from SQLite, and makes Table 1, CONSORT counts, responder and tipping-point "
        "analyses, treatment and safety summaries, and the audit check)"
    )
    if not peer.runs:
        print(f"R: {peer.failed}: the ratio against R cannot be measured")
        return
    print(
        f"ratio: R {peer.total():.2f} s for the four models vs lumbar {lumbar.total():.2f} s for "
        f"the same = {ratio(peer.total(), lumbar.total())}; vs the demo's whole analyse phase "
        f"{analyse:.1f} s = {ratio(peer.total(), analyse)}"
    )
    print(f"\nSame data, same models? {CHECK_VISIT} ANCOVA, each arm minus {plan.reference}:")
    print(check_table(out, plan, peer))
    r_found, lumbar_found = agreement(out, plan, peer), agreement(out, plan, lumbar)
    exact = ", ".join(f"{MODEL_NAMES[m]} {r_found[m]:.1e}" for m in ("ancova", "mmrm", "gee"))
    print(
        f"largest |R - report| over outcomes, visits and arms: {exact}; MI "
        f"{imputation_spread(out, plan, peer):.2f} pooled SE (other random draws: "
        "agreement only to Monte Carlo error)"
    )
    print(
        "largest |lumbar in this process - report|: "
        + ", ".join(f"{MODEL_NAMES[m]} {lumbar_found[m]:.1e}" for m in MODELS)
        + " (the exported CSV is the data the demo analysed)"
    )
    if peer.warnings:
        print("R warnings: " + " | ".join(peer.warnings))


def main(argv: list[str] | None = None) -> int:
    options = arguments(argv)
    use_r = not options.no_r and shutil.which("Rscript") is not None
    plan = demo_plan(Settings().seed)
    print(
        f"lumbar demo benchmark: `lumbar demo --out DIR --replace` (default 401 participants, "
        f"seed {plan.settings.seed}) as a subprocess, end to end including interpreter "
        f"start-up; {options.runs} run(s)"
    )
    with tempfile.TemporaryDirectory(prefix="lumbar-bench-demo-") as directory:
        folder = Path(directory)
        out = folder / "demo"
        runs: list[DemoRun] = []
        for index in range(options.runs):
            run = run_demo(out, options.timeout)
            runs.append(run)
            shown = ", ".join(f"{name} {value:.1f} s" for name, value in run.phases.items())
            print(f"  run {index + 1}: wall {run.wall:.1f} s; demo's Timings: {shown}", flush=True)
        # Read before any other child runs: the largest resident set of the demo processes.
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
        print(f"  {runs[-1].summary}")
        print()
        print(phase_table(runs))
        print(f"peak memory (max RSS) of the demo process: {peak:.0f} MiB")

        path = folder / "data.csv"
        rows = export(out, path)
        print(f"\nexported {rows} rows (lumbar export --as statistician)", flush=True)
        lumbar = time_lumbar(path, plan, options.peer_runs)
        if use_r:
            peer = time_r(path, plan, options.peer_runs, folder, options.timeout)
        else:
            peer = Analysis(failed="skipped (--no-r)" if options.no_r else "Rscript not found")
        print_peer(out, plan, runs, lumbar, peer)

    print()
    print("\n".join(machine(peer.versions or peer.failed)))
    wall = median([run.wall for run in runs])
    met = "met" if wall < TARGET_SECONDS else "NOT met"
    print(
        f"target: `lumbar demo` (401 participants) end to end under {TARGET_SECONDS:.0f} s wall "
        f"on this machine: {met} (median wall {wall:.1f} s over {len(runs)} run(s))"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
