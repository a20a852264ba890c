"""A trial among the published studies: its own result as study rows, pooled before and after.

Synthesis knows studies, not trials (it imports nothing of the analysis); this module
joins them. :func:`trial_rows` turns a trial's pre-specified ANCOVA into study rows,
:func:`place_in_evidence` pools each primary outcome's published studies without
and with them (the report's evidence section), :func:`trial_evidence` reads and
analyses a trial for ``lumbar meta --with-trial``, and :func:`write_review` writes a
review's files.

Files :func:`write_review` writes (``lumbar meta --out``):

``results.json`` (``lumbar_meta`` format :data:`META_FORMAT`)
    ``lumbar_version``; ``synthetic``; ``inputs`` (source file and its sha256, measure,
    method, hksj, level, outcome, subgroup, order_by, the column mapping,
    treatment/comparator names, higher_is_better, with_trial); ``trial`` (null, or the
    trial's id, protocol version and hash, outcome column, visit, and its study rows);
    ``excluded`` (each set-aside row: study, reason); ``studies`` (the studies.csv rows);
    ``model`` (:meth:`MetaResult.to_dict` of the model shown: with the trial when added);
    ``display`` (the pooled estimate, CI and prediction interval on the scale shown:
    ratios exponentiated); ``before_after`` (null, or ``before``: published studies only,
    ``after``: with the trial, and ``change`` in the pooled estimate); ``subgroups``
    (:meth:`SubgroupAnalysis.to_dict`: each subgroup's model, Q-between, the moderator
    test); ``leave_one_out``, ``cumulative`` (lists of rows, as the CSVs); ``egger``
    (:meth:`EggerTest.to_dict`, with its note when k < 10); ``notes`` (analyses not done,
    and why); ``files``.
``studies.csv``
    one row per pooled study: ``yi``, ``vi``, ``sei`` on the pooled scale (log ratios for
    RR and OR), ``estimate``, ``ci_lower``, ``ci_upper`` on the scale shown, ``weight``
    (percent), then the input columns.
``pooled.csv``, ``leave_one_out.csv``, ``cumulative.csv`` (with an order), ``subgroups.csv``
(with a subgroup)
    estimates on the pooled scale, with ``exp_*`` columns added for ratios.
``forest.png``/``.svg``, ``funnel.png``/``.svg``
    the forest plot (weights, subgroup diamonds, prediction interval, this trial's rows
    highlighted) and the funnel plot.

Every CSV starts with ``#`` lines of provenance (read with ``comment="#"``); when the trial
is synthetic the first says so (:func:`lumbar.formatting.synthetic_stamp`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lumbar import __version__
from lumbar.analysis.plan import (
    Settings,
    TrialAnalysis,
    analyze_trial,
    arms_hidden,
    primary_outcome_columns,
)
from lumbar.errors import AccessError, Problem, SynthesisError
from lumbar.formatting import SYNTHETIC
from lumbar.operations import Trial
from lumbar.protocol import Protocol
from lumbar.report import Evidence, ResultsFolder
from lumbar.report.figures import Figure
from lumbar.synthesis import Review, review
from lumbar.synthesis.studies import OUTCOME_NAMES, SHORT_TERM_WEEKS

__all__ = [
    "META_FORMAT",
    "TrialEvidence",
    "place_in_evidence",
    "trial_evidence",
    "trial_rows",
    "write_review",
]

META_FORMAT = 1
"""Version of meta results.json's layout (the module docstring lists its keys)."""

BLINDED_RULE = (
    "is blinded: a trial is placed among the studies by its arms' treatments, which a "
    "blinded user may not see"
)


def _blinded(summary: str) -> AccessError:
    return AccessError(
        summary,
        [
            Problem(
                "actor",
                BLINDED_RULE,
                hint="ask a statistician granted unblinded access, or leave the trial out",
            )
        ],
    )


def trial_rows(
    analysis: TrialAnalysis,
    protocol: Protocol,
    outcome: str,
    visit: str | None = None,
) -> pd.DataFrame:
    """A trial's own result as study rows: each arm against the reference arm, from the
    pre-specified ANCOVA at ``visit`` (the primary visit by default).

    ``outcome`` is a dataset column (``rdq_total``); the rows use the study table's
    columns, so they can be added to the published studies. A blinded reader's analysis
    (no arms) is refused with an :class:`AccessError`, an analysis without comparisons
    (no follow-up yet) with a :class:`SynthesisError`.
    """
    if analysis.blinded:
        raise _blinded("cannot add a blinded analysis to the evidence")
    if not analysis.compared:
        raise SynthesisError(
            "cannot add this trial to the evidence",
            [Problem("trial", "has no comparison between arms yet", "; ".join(analysis.notes))],
        )
    result = analysis.outcome(outcome)
    chosen = visit or protocol.primary_outcomes[0].visit
    weeks = {item.id: item.day / 7 for item in protocol.visits}[chosen]
    arms = {arm.id: arm for arm in protocol.arms}
    reference_id = str(analysis.reference)
    reference = arms[reference_id]
    instrument = outcome.split("_", 1)[0]
    name = OUTCOME_NAMES.get(instrument, instrument)
    label = "SYNTHETIC " if analysis.synthetic else ""
    rows = []
    for arm in analysis.arms[1:]:
        estimate = result.ancova.contrast(chosen, arm)
        counts = result.ancova.n.get(chosen, {})
        rows.append(
            {
                "study": f"{label}{protocol.id} {arm} ({name}, this trial)",
                "year": None,
                "population": "chronic",
                "massage_type": arm,
                "comparator": reference.label,
                "comparator_type": "inactive" if reference.control else "active",
                "horizon": "short" if weeks <= SHORT_TERM_WEEKS else "long",
                "weeks": round(weeks, 1),
                "outcome": name,
                "n1": counts.get(arm),
                "n2": counts.get(reference_id),
                "effect": estimate.estimate,
                "se": estimate.se,
                "citation": f"this trial ({protocol.trial.title}; protocol {protocol.version})",
                "note": "ANCOVA adjusted as the protocol pre-specifies"
                + (f"; {SYNTHETIC}" if analysis.synthetic else ""),
                "this_trial": True,
            }
        )
    return pd.DataFrame(rows)


def place_in_evidence(
    analysis: TrialAnalysis, protocol: Protocol, studies: pd.DataFrame
) -> tuple[Evidence, ...]:
    """Each primary outcome's published ``studies`` pooled (random effects, REML) without and
    with this trial's result; outcomes no published study can be pooled on are left out."""
    if "outcome" not in studies.columns:
        raise SynthesisError(
            "cannot place the trial among the studies",
            [Problem("outcome", "the studies need an outcome column (e.g. RDQ)", list(studies))],
        )
    found = []
    for result in analysis.outcomes:
        rows = trial_rows(analysis, protocol, result.outcome)
        name = str(rows["outcome"].iloc[0])
        published = studies[studies["outcome"].astype(str) == name]
        try:
            done = review(
                published,
                measure="MD",
                method="REML",
                hksj=False,
                level=0.95,
                columns={},
                trial_rows=rows,
                trial_synthetic=analysis.synthetic,
            )
        except SynthesisError:
            continue  # no published row on this outcome can be pooled
        if done.before is not None:
            found.append(Evidence(result.outcome, name, done))
    return tuple(found)


@dataclass(frozen=True)
class TrialEvidence:
    """A trial's result as study rows, and where it came from."""

    rows: pd.DataFrame
    info: dict[str, Any]
    outcome: str
    """The outcome as the studies name it (``RDQ``)."""
    synthetic: bool


def trial_evidence(
    trial: Trial, *, outcome: str | None = None, measure: str = "MD"
) -> TrialEvidence:
    """Analyse ``trial`` as pre-specified (ANCOVA and MMRM only) and give its result as study
    rows for the primary outcome ``outcome`` (its column or instrument; the first primary
    outcome by default). Refused for a blinded user and for a measure other than MD."""
    if measure != "MD":
        raise SynthesisError(
            "cannot add this trial",
            [
                Problem(
                    "measure",
                    "must be MD when the trial is added: the trial adds its ANCOVA mean difference",
                    measure,
                    "use MD",
                )
            ],
        )
    protocol = trial.protocol
    columns = primary_outcome_columns(protocol)
    if outcome is None:
        column = columns[0][0]
    else:
        wanted = outcome.casefold()
        found = [c for c, instrument, _ in columns if wanted in (c.casefold(), instrument)]
        if not found:
            raise SynthesisError(
                "cannot add this trial",
                [
                    Problem(
                        "outcome",
                        "is not a primary outcome of the trial",
                        outcome,
                        "one of: " + ", ".join(f"{i} ({c})" for c, i, _ in columns),
                    )
                ],
            )
        column = found[0]
    tidy = trial.dataset()
    if arms_hidden(tidy):
        raise _blinded("cannot add a blinded analysis to the evidence")
    analysis = analyze_trial(
        protocol,
        tidy,
        trial.consort_records(),
        Settings(include_gee=False, include_imputation=False),
        outcome=column,
    )
    rows = trial_rows(analysis, protocol, column)
    info = {
        "id": protocol.id,
        "protocol_version": protocol.version,
        "protocol_hash": protocol.content_hash,
        "outcome_column": column,
        "visit": protocol.primary_outcomes[0].visit,
        "synthetic": analysis.synthetic,
        "data_hash": analysis.outcome(column).provenance.data_hash,
        "rows": rows.to_dict(orient="records"),
    }
    return TrialEvidence(rows, info, str(rows["outcome"].iloc[0]), analysis.synthetic)


def write_review(
    run: Review,
    out: Path,
    *,
    inputs: Mapping[str, Any],
    stamp: Sequence[str],
    figures: Sequence[Figure],
    trial: TrialEvidence | None,
) -> list[Path]:
    """A review's files into ``out`` (the module docstring lists them); ``stamp`` lines go
    at the top of every CSV, after the synthetic note and lumbar's version."""
    folder = ResultsFolder(out, synthetic=run.synthetic, stamp=stamp)
    studies = run.studies_frame()
    tables = {"studies": studies, "pooled": run.pooled_frame()}
    if run.leave_one_out is not None:
        tables["leave_one_out"] = run.with_ratios(run.leave_one_out)
    if run.cumulative is not None:
        tables["cumulative"] = run.with_ratios(run.cumulative)
    if run.subgroup is not None:
        tables["subgroups"] = run.with_ratios(run.subgroup.to_frame())
    for name, table in tables.items():
        folder.table(name, table)
    for figure in figures:
        folder.figure(figure)
    low, high = run.model.prediction or (math.nan, math.nan)
    before_after = None
    if run.trial_rows is not None:
        before_after = {
            "before": None if run.before is None else run.before.to_dict(),
            "after": run.model.to_dict(),
            "change": None if run.before is None else run.model.estimate - run.before.estimate,
        }
    document = {
        "lumbar_meta": META_FORMAT,
        "lumbar_version": __version__,
        "synthetic": run.synthetic,
        "inputs": dict(inputs),
        "trial": None if trial is None else trial.info,
        "excluded": [{"study": study, "reason": reason} for study, reason in run.excluded],
        "studies": studies.to_dict(orient="records"),
        "model": run.model.to_dict(),
        "display": {
            "scale": "ratio (exponentiated)" if run.ratio else "difference",
            "estimate": run.shown(run.model.estimate),
            "lower": run.shown(run.model.pooled.lower),
            "upper": run.shown(run.model.pooled.upper),
            "prediction_lower": run.shown(low),
            "prediction_upper": run.shown(high),
        },
        "before_after": before_after,
        "subgroups": None if run.subgroup is None else run.subgroup.to_dict(),
        "leave_one_out": None
        if run.leave_one_out is None
        else tables["leave_one_out"].to_dict(orient="records"),
        "cumulative": None
        if run.cumulative is None
        else tables["cumulative"].to_dict(orient="records"),
        "egger": None if run.egger is None else run.egger.to_dict(),
        "notes": run.notes,
        "files": ["results.json", *(path.name for path in folder.written)],
    }
    written = folder.written
    return [folder.json("results.json", document), *written]
