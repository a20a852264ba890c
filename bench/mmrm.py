"""Benchmark: lumbar's MMRM against nlme::gls and statsmodels MixedLM on the same data.

Run by hand from the repository root (it is not a test)::

    .venv/bin/python bench/mmrm.py
    .venv/bin/python bench/mmrm.py --cases 200x4,1000x10 --repeats 5 --no-r

For each case (participants x visits) it simulates one two-arm trial (numpy,
fixed seed): a baseline covariate, an unstructured-looking true covariance
(visit SDs rising from 4 to 6, correlation 0.3 + 0.7 * 0.6^lag), a treatment
effect growing to -6 points at the last visit, and monotone dropout that
depends on the last observed outcome (missing at random), about 20% gone by
the last visit. The data go to one temporary CSV that every tool reads.

Timed, each as "the model fit, given the data in memory":

- lumbar: ``mmrm(data, covariance="unstructured")`` on a ``TrialData`` already
  built (``TrialData.from_frame`` is timed separately and shown as "prep").
  This includes lumbar's LS means and Satterthwaite df, which the peers skip.
- nlme::gls (via Rscript, bench/mmrm_gls.R): the ``gls(...)`` call alone, with
  corSymm + varIdent, REML, as tests/reference/mmrm.R fits it (nlme's default
  control). The same model as lumbar's: the REML log-likelihood and the
  treatment - control difference at the last visit should agree.
- statsmodels MixedLM: random intercept per participant, the same fixed
  effects, REML (formula + fit). The nearest Python model, but a different
  covariance model, so only its time is comparable.

Each tool gets one untimed warm-up fit on the first 50 participants. A case is
repeated up to ``--repeats`` times per tool, stopping once that tool's runs
pass ``--budget`` seconds; the median is reported. gls runs in a subprocess
killed after ``--gls-timeout`` seconds.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from common import machine, run_r

from lumbar.analysis import Columns, TrialData, mmrm

HERE = Path(__file__).resolve().parent
GLS_SCRIPT = HERE / "mmrm_gls.R"
DEFAULT_CASES = "200x4,1000x10,20000x4"
TARGET_CASE = (1000, 10)
TARGET_RATIO = 50.0
MATCH_RELATIVE = 1e-4
"""Largest relative difference in REML logLik and arm difference counted as "the same"."""
WARM_UP_PARTICIPANTS = 50
CONTROL, TREATMENT = "control", "treatment"
MIXEDLM_FORMULA = "y ~ 0 + C(visit) + C(visit):C(arm) + C(visit):baseline"


@dataclass(frozen=True)
class Case:
    participants: int
    visits: int

    @property
    def label(self) -> str:
        return f"{self.participants}x{self.visits}"

    @property
    def last_visit(self) -> str:
        return visit_name(self.visits - 1)


@dataclass
class Timing:
    """One tool's runs on one case: seconds per run, its estimates, or why it has none."""

    seconds: list[float] = field(default_factory=list)
    loglik: float = math.nan
    difference: float = math.nan
    se: float = math.nan
    note: str = ""
    failed: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else math.nan

    def describe(self) -> str:
        if self.failed:
            return self.failed
        runs = ", ".join(f"{s:.3g}" for s in self.seconds)
        text = f"median {self.median:.3g} s over {len(self.seconds)} run(s) [{runs}]"
        if not math.isnan(self.loglik):
            text += (
                f"; REML logLik {self.loglik:.6f}; difference at last visit "
                f"{self.difference:.6f} (SE {self.se:.6f})"
            )
        return text + (f"; {self.note}" if self.note else "")


@dataclass
class CaseResult:
    case: Case
    observations: int
    dropout: float
    prep: Timing
    lumbar: Timing
    gls: Timing
    mixedlm: Timing


# ---------------------------------------------------------------------------- data


def visit_name(index: int) -> str:
    return f"v{index + 1:02d}"


def simulate(case: Case, seed: int) -> pd.DataFrame:
    """Long data, one row per participant and visit; y is NaN after dropout."""
    rng = np.random.default_rng([seed, case.participants, case.visits])
    n, t = case.participants, case.visits
    lag = np.abs(np.subtract.outer(np.arange(t), np.arange(t)))
    sd = np.linspace(4.0, 6.0, t)
    sigma = (0.3 + 0.7 * 0.6**lag) * np.outer(sd, sd)
    arm = rng.permutation(np.arange(n) % 2)  # 1 = treatment, balanced
    baseline = rng.normal(60.0, 12.0, n)
    fraction = np.arange(1, t + 1) / t
    mean = (
        55.0
        - 8.0 * fraction[None, :]
        + 0.6 * (baseline[:, None] - 60.0)
        - 6.0 * fraction[None, :] * arm[:, None]
    )
    errors = rng.multivariate_normal(np.zeros(t), sigma, size=n)
    y = mean + errors
    # Monotone dropout after each visit, likelier after a worse (higher) score: MAR.
    hazard = 1.0 - 0.8 ** (1.0 / max(t - 1, 1)) if t > 1 else 0.0
    present = np.ones(n, dtype=bool)
    observed = np.ones((n, t), dtype=bool)
    for visit in range(1, t):
        z = errors[:, visit - 1] / sd[visit - 1]
        probability = np.clip(hazard * np.exp(0.5 * z - 0.125), 0.0, 0.9)
        present &= rng.random(n) >= probability
        observed[:, visit] = present
    y = np.where(observed, y, np.nan)
    return pd.DataFrame(
        {
            "participant": np.repeat([f"P{i + 1:06d}" for i in range(n)], t),
            "arm": np.repeat(np.where(arm == 1, TREATMENT, CONTROL), t),
            "visit": np.tile([visit_name(v) for v in range(t)], n),
            "baseline": np.repeat(baseline, t),
            "y": y.reshape(-1),
        }
    )


def read_data(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"participant": str, "arm": str, "visit": str})


def first_participants(frame: pd.DataFrame, count: int) -> pd.DataFrame:
    keep = frame["participant"].drop_duplicates().iloc[:count]
    return frame[frame["participant"].isin(keep)]


# ---------------------------------------------------------------------------- timing


def repeat(run: Callable[[], float], repeats: int, budget: float) -> list[float]:
    """Up to ``repeats`` timed runs, stopping once they add up to more than ``budget`` s."""
    seconds: list[float] = []
    while len(seconds) < repeats and sum(seconds) <= budget:
        seconds.append(run())
    return seconds


def columns(case: Case) -> Columns:
    return Columns(
        outcome="y",
        baseline="baseline",
        reference=CONTROL,
        visits=tuple(visit_name(v) for v in range(case.visits)),
    )


def time_lumbar(
    case: Case, frame: pd.DataFrame, repeats: int, budget: float
) -> tuple[Timing, Timing]:
    """(prep, fit): TrialData.from_frame, then mmrm on the prepared data."""
    mapping = columns(case)
    mmrm(TrialData.from_frame(first_participants(frame, WARM_UP_PARTICIPANTS), mapping))
    prep, fit = Timing(), Timing()
    data = TrialData.from_frame(frame, mapping)
    result = None

    def run_prep() -> float:
        started = time.perf_counter()
        TrialData.from_frame(frame, mapping)
        return time.perf_counter() - started

    def run_fit() -> float:
        nonlocal result
        started = time.perf_counter()
        result = mmrm(data, covariance="unstructured")
        return time.perf_counter() - started

    prep.seconds = repeat(run_prep, repeats, budget)
    fit.seconds = repeat(run_fit, repeats, budget)
    assert result is not None
    contrast = result.contrast(case.last_visit, TREATMENT)
    fit.loglik, fit.difference, fit.se = result.loglik, contrast.estimate, contrast.se
    fit.note = f"{result.iterations} iterations, {result.patterns} missingness patterns"
    return prep, fit


def time_mixedlm(case: Case, frame: pd.DataFrame, repeats: int, budget: float) -> Timing:
    """Random-intercept MixedLM, REML, the same fixed effects: formula + fit."""
    rows = frame.dropna(subset=["y"]).reset_index(drop=True)
    name = f"C(visit)[{case.last_visit}]:C(arm)[T.{TREATMENT}]"
    outcome = Timing()
    fitted: Any = None
    caught: set[str] = set()

    def fit(data: pd.DataFrame) -> Any:
        with warnings.catch_warnings(record=True) as raised:
            warnings.simplefilter("always")
            model = smf.mixedlm(MIXEDLM_FORMULA, data, groups=data["participant"])
            value = model.fit(reml=True)
        caught.update(str(w.message).splitlines()[0] for w in raised)
        return value

    def run() -> float:
        nonlocal fitted
        started = time.perf_counter()
        fitted = fit(rows)
        return time.perf_counter() - started

    try:
        fit(first_participants(rows, WARM_UP_PARTICIPANTS))
        caught.clear()
        outcome.seconds = repeat(run, repeats, budget)
    except Exception as error:  # a peer failing is a result, not a crash
        outcome.failed = f"failed: {type(error).__name__}: {error}"
        return outcome
    outcome.loglik = float(fitted.llf)
    outcome.difference = float(fitted.fe_params[name])
    outcome.se = float(fitted.bse_fe[name])
    outcome.note = "random intercept (not unstructured): time only is comparable" + (
        "; warnings: " + " | ".join(sorted(caught)) if caught else ""
    )
    return outcome


def time_gls(path: Path, repeats: int, budget: float, timeout: float) -> tuple[Timing, str]:
    """nlme::gls in Rscript (bench/mmrm_gls.R); (timing, R and nlme versions)."""
    outcome = Timing()
    reply, failure = run_r([str(GLS_SCRIPT), str(path), str(repeats), str(budget)], timeout)
    if reply is None:
        outcome.failed = failure
        return outcome, ""
    versions = f"{reply['versions']['r']}, nlme {reply['versions']['nlme']}"
    if not reply["ok"]:
        outcome.failed = f"gls failed: {reply['error']}"
        return outcome, versions
    outcome.seconds = [float(s) for s in reply["seconds"]]
    outcome.loglik = float(reply["loglik"])
    outcome.difference = float(reply["difference"])
    outcome.se = float(reply["se"])
    if reply["warnings"]:
        outcome.note = "warnings: " + " | ".join(reply["warnings"])
    return outcome, versions


# ---------------------------------------------------------------------------- report


def relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def ratio(peer: Timing, lumbar: Timing) -> float:
    return peer.median / lumbar.median if peer.seconds and lumbar.seconds else math.nan


def number(value: float, form: str) -> str:
    return "-" if math.isnan(value) else format(value, form)


def times(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}x"


def agreement(result: CaseResult) -> tuple[str, str, str]:
    """(logLik rel. diff, difference rel. diff, verdict) of lumbar against gls."""
    if not result.gls.seconds:
        return "-", "-", "no gls"
    loglik = relative(result.lumbar.loglik, result.gls.loglik)
    difference = relative(result.lumbar.difference, result.gls.difference)
    same = loglik < MATCH_RELATIVE and difference < MATCH_RELATIVE
    return f"{loglik:.1e}", f"{difference:.1e}", "yes" if same else "NO"


def table(results: list[CaseResult]) -> str:
    header = (
        "case",
        "obs",
        "lumbar s",
        "gls s",
        "MixedLM s",
        "gls/lumbar",
        "MixedLM/lumbar",
        "logLik rel.diff",
        "arm diff rel.diff",
        "same as gls",
    )
    rows = [header]
    for result in results:
        loglik, difference, verdict = agreement(result)
        rows.append(
            (
                result.case.label,
                str(result.observations),
                number(result.lumbar.median, ".3f"),
                number(result.gls.median, ".3f"),
                number(result.mixedlm.median, ".3f"),
                times(ratio(result.gls, result.lumbar)),
                times(ratio(result.mixedlm, result.lumbar)),
                loglik,
                difference,
                verdict,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    rule = "-" * len(lines[0])
    return "\n".join([lines[0], rule, *lines[1:]])


def prep_line(results: list[CaseResult]) -> str:
    """The ratios again with lumbar's data preparation (TrialData.from_frame) counted."""
    parts = []
    for result in results:
        total = Timing(seconds=[result.prep.median + result.lumbar.median])
        parts.append(
            f"{result.case.label} gls {times(ratio(result.gls, total))}, "
            f"MixedLM {times(ratio(result.mixedlm, total))}"
        )
    return "with lumbar's TrialData.from_frame counted too: " + "; ".join(parts)


def target_line(results: list[CaseResult]) -> str:
    label = f"{TARGET_CASE[0]:,}x{TARGET_CASE[1]}"
    wanted = [r for r in results if (r.case.participants, r.case.visits) == TARGET_CASE]
    head = f"target: lumbar >= {TARGET_RATIO:.0f}x faster than gls at {label}"
    if not wanted:
        return f"{head}: not measured (case not run)"
    found = wanted[0]
    value = ratio(found.gls, found.lumbar)
    if math.isnan(value):
        return f"{head}: not measured (gls: {found.gls.failed or 'skipped'})"
    _, _, verdict = agreement(found)
    met = "met" if value >= TARGET_RATIO else "not met"
    return f"{head}: {met} (ratio {value:.1f}x; estimates the same as gls: {verdict})"


# ---------------------------------------------------------------------------- main


def parse_cases(text: str) -> list[Case]:
    cases = []
    for item in text.split(","):
        participants, _, visits = item.strip().lower().partition("x")
        case = Case(int(participants), int(visits))
        if case.participants < 4 or case.visits < 1:
            raise argparse.ArgumentTypeError(f"bad case {item!r}: need >= 4 participants")
        cases.append(case)
    return cases


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--cases", type=parse_cases, default=parse_cases(DEFAULT_CASES))
    parser.add_argument("--repeats", type=int, default=5, help="most timed runs per tool")
    parser.add_argument(
        "--budget", type=float, default=60.0, help="stop repeating once a tool's runs pass this"
    )
    parser.add_argument("--gls-timeout", type=float, default=600.0, help="seconds per case")
    parser.add_argument("--no-r", action="store_true", help="skip nlme::gls")
    parser.add_argument("--no-mixedlm", action="store_true", help="skip statsmodels MixedLM")
    parser.add_argument("--seed", type=int, default=20240611)
    return parser.parse_args(argv)


def run_case(
    case: Case, options: argparse.Namespace, directory: Path, use_r: bool
) -> tuple[CaseResult, str]:
    path = directory / f"mmrm_{case.label}.csv"
    simulate(case, options.seed).to_csv(path, index=False)
    frame = read_data(path)
    observed = frame["y"].notna()
    last = frame["visit"] == case.last_visit
    dropout = 1.0 - float(observed[last].mean())
    print(
        f"\n{case.label}: {case.participants} participants x {case.visits} visits, "
        f"{int(observed.sum())} observed rows, {dropout:.1%} missing at the last visit",
        flush=True,
    )
    prep, lumbar = time_lumbar(case, frame, options.repeats, options.budget)
    print(f"  lumbar prep  {prep.describe()}", flush=True)
    print(f"  lumbar fit   {lumbar.describe()}", flush=True)
    versions = ""
    if use_r:
        gls, versions = time_gls(path, options.repeats, options.budget, options.gls_timeout)
    else:
        gls = Timing(failed="skipped (--no-r or Rscript not found)")
    print(f"  nlme::gls    {gls.describe()}", flush=True)
    if options.no_mixedlm:
        mixedlm = Timing(failed="skipped (--no-mixedlm)")
    else:
        mixedlm = time_mixedlm(case, frame, options.repeats, options.budget)
    print(f"  MixedLM      {mixedlm.describe()}", flush=True)
    result = CaseResult(case, int(observed.sum()), dropout, prep, lumbar, gls, mixedlm)
    return result, versions


def main(argv: list[str] | None = None) -> int:
    options = arguments(argv)
    use_r = not options.no_r and shutil.which("Rscript") is not None
    if not options.no_r and not use_r:
        print("Rscript not found: nlme::gls is skipped")
    print(
        "lumbar MMRM benchmark: unstructured covariance, REML; times are the model fit "
        "given the data in memory (lumbar: mmrm() incl. LS means and Satterthwaite df; "
        "gls: the gls() call; MixedLM: formula + fit)"
    )
    results: list[CaseResult] = []
    r_version = "not used (--no-r)" if options.no_r else "Rscript not found"
    with tempfile.TemporaryDirectory(prefix="lumbar-bench-") as directory:
        for case in options.cases:
            result, versions = run_case(case, options, Path(directory), use_r)
            results.append(result)
            r_version = versions or r_version
    print()
    print("\n".join(machine(r_version)))
    print(
        f"seed {options.seed}; up to {options.repeats} runs per tool and case "
        f"(fewer once a tool's runs pass {options.budget:.0f} s), median shown"
    )
    print()
    print(table(results))
    print(
        f"same as gls: REML logLik and treatment - control at the last visit within "
        f"{MATCH_RELATIVE:g} relative. MixedLM is a random-intercept model (a different "
        "covariance), so only its time is comparable."
    )
    print(prep_line(results))
    print(target_line(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
