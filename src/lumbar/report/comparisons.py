"""The sections of a report that compare the arms: only for a reader who may see them.

Each function builds one :class:`~lumbar.report.page.Section` of a
``"comparison"`` report (:attr:`lumbar.report.content.ReportContent.kind`): the
primary analysis and the MMRM of each outcome, the responder analysis, treatment
received, adverse events, the missing-data sensitivity analyses and where the trial
moves the published evidence. A blinded reader's report has none of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pandas as pd

from lumbar.analysis.plan import OutcomeAnalysis
from lumbar.analysis.responders import Definition
from lumbar.formatting import SYNTHETIC, interval, number, p_value, percent
from lumbar.report.figures import (
    attendance_figure,
    contrast_figure,
    responder_curve_figure,
    tipping_point_figure,
    trajectory_figure,
)
from lumbar.report.forest import review_forest
from lumbar.report.page import (
    Page,
    Section,
    axis_label,
    ci_text,
    count_share,
    frame_table,
    outcome_name,
    score_direction,
    score_of,
)

__all__ = [
    "comparison_sections",
    "evidence_section",
    "outcome_section",
    "responder_section",
    "safety_section",
    "sensitivity_section",
    "treatment_section",
]


def comparison_sections(page: Page) -> list[Section]:
    """Every section that compares the arms, in reading order."""
    analysis = page.content.analysis
    parts = [outcome_section(page, outcome) for outcome in analysis.outcomes]
    parts += [
        responder_section(page, outcome)
        for outcome in analysis.outcomes
        if outcome.responders is not None
    ]
    parts += [treatment_section(page), safety_section(page), sensitivity_section(page)]
    if page.content.evidence:
        parts.append(evidence_section(page))
    return parts


def outcome_section(page: Page, outcome: OutcomeAnalysis) -> Section:
    name = outcome_name(outcome.outcome)
    found = score_of(outcome.outcome)
    instrument = found[0].name if found else outcome.outcome
    section = Section(f"outcome-{outcome.outcome}", found[0].title if found else outcome.outcome)
    primary = page.primary_visit
    rows = []
    for arm in page.arms:
        lsmean = next(e for e in outcome.ancova.lsmeans if e.visit == primary and e.arm == arm)
        row = {
            "arm": page.label(arm),
            "n": str(lsmean.n),
            "adjusted mean (SE)": f"{number(lsmean.estimate)} ({number(lsmean.se)})",
            "difference (95% CI)": "reference",
            "p": "",
        }
        if arm != page.reference:
            contrast = outcome.ancova.contrast(primary, arm)
            row["difference (95% CI)"] = (
                f"{number(contrast.estimate)} ({interval(contrast.lower, contrast.upper)})"
            )
            row["p"] = p_value(contrast.p)
        rows.append(row)
    section.table(
        frame_table(
            pd.DataFrame(rows),
            f"Primary analysis: {name} at {page.visit_labels[primary]} (ANCOVA)",
            outcome.ancova.method_text,
        ),
        f"tables/{outcome.outcome}_ancova.csv",
    )
    for note in outcome.notes:
        section.text(f"Note: {note}")
    mmrm_rows = []
    for estimate in outcome.mmrm.contrasts:
        mmrm_rows.append(
            {
                "visit": page.visit_labels.get(str(estimate.visit), estimate.visit),
                "arm": page.label(str(estimate.arm)),
                "difference": number(estimate.estimate),
                "95% CI": interval(estimate.lower, estimate.upper),
                "df": number(estimate.df, 1),
                "p": p_value(estimate.p),
            }
        )
    section.table(
        frame_table(
            pd.DataFrame(mmrm_rows),
            f"{name} at every visit (MMRM): each arm minus {page.label(page.reference)}",
            outcome.mmrm.method_text,
        ),
        f"tables/{outcome.outcome}_mmrm.csv",
    )
    properties = page.content.protocol.thresholds_for(instrument)
    meaningful = properties.meaningful_group_difference
    lower_is_better = score_direction(outcome.outcome) == "higher_is_worse"
    forest = contrast_figure(
        outcome.mmrm.to_frame(),
        arms=page.arms,
        reference=page.reference,
        labels=page.labels,
        visit_labels={v: page.visit_labels[v] for v in outcome.visits},
        meaningful=None if meaningful is None else meaningful.value,
        lower_is_better=lower_is_better,
        title=f"{name}: differences from {page.label(page.reference)} (MMRM)",
        name=f"{outcome.outcome}_differences",
    )
    page.show(section, forest)
    trajectory = trajectory_figure(
        page.content.tidy,
        outcome.outcome,
        arms=page.arms,
        reference=page.reference,
        labels=page.labels,
        weeks=page.content.weeks,
        title=f"{name} by week",
        axis_label=axis_label(outcome.outcome),
        name=f"{outcome.outcome}_trajectory",
    )
    page.show(section, trajectory)
    return section


def responder_section(page: Page, outcome: OutcomeAnalysis) -> Section:
    result = outcome.responders
    assert result is not None
    name = outcome_name(outcome.outcome)
    found = score_of(outcome.outcome)
    instrument = found[0].name if found else outcome.outcome
    primary = page.primary_visit
    section = Section(
        f"responders-{outcome.outcome}", f"{name}: who improved by an amount that matters?"
    )
    properties = page.content.protocol.thresholds_for(instrument)
    reliable_points = None
    if "reliable" in result.sem_used:
        reliable_points = 1.96 * math.sqrt(2) * result.sem_used["reliable"]
    section.text(debate(page, outcome, properties, reliable_points))
    counts = result.counts[result.counts["visit"] == primary]
    comparisons = {(c.definition, c.arm): c for c in result.comparisons if c.visit == primary}
    rows = []
    for definition in result.definitions:
        row: dict[str, str] = {"definition of improved": definition.label}
        for arm in page.arms:
            record = counts[(counts["definition"] == definition.name) & (counts["arm"] == arm)]
            if record.empty:
                row[page.label(arm)] = "-"
                continue
            item = record.iloc[0]
            row[page.label(arm)] = (
                f"{int(item['improved'])}/{int(item['n'])} ({percent(item['share_improved'])})"
            )
        for arm in page.arms[1:]:
            comparison = comparisons.get((definition.name, arm))
            if comparison is None:
                continue
            nnt = comparison.nnt_interval.replace("NNT (benefit) ", "").replace(
                "NNT (harm) ", "harm "
            )
            row[f"{page.label(arm)} vs {page.label(page.reference)}"] = (
                f"{percent(comparison.risk_difference)} "
                f"({percent(comparison.rd_lower)} to {percent(comparison.rd_upper)}); "
                f"NNT {nnt}"
            )
        rows.append(row)
    frame = pd.DataFrame(rows)
    section.table(
        frame_table(
            frame,
            f"Improved at {page.visit_labels[primary]}, under each definition",
            "Each arm: improved / with the visit (%). Each comparison: difference in the "
            "share improved (95% CI); number needed to treat (95% CI). " + result.method_text,
        ),
        page.csv(f"{outcome.outcome}_responders_side_by_side", frame),
    )
    thresholds = _curve_thresholds(result.definitions, properties, reliable_points)
    curve = result.curve[result.curve["visit"] == primary]
    figure = responder_curve_figure(
        curve,
        arms=page.arms,
        reference=page.reference,
        labels=page.labels,
        thresholds=thresholds,
        title=f"{name}: cumulative improvement at {page.visit_labels[primary]}",
        axis_label=f"improvement from baseline in {axis_label(outcome.outcome)}",
        name=f"{outcome.outcome}_responder_curve",
    )
    page.show(section, figure)
    return section


def debate(
    page: Page, outcome: OutcomeAnalysis, properties: Any, reliable_points: float | None
) -> str:
    """The "group difference vs measurement error" explanation, with this trial's numbers."""
    primary = page.primary_visit
    explanation = []
    group = properties.meaningful_group_difference
    if group is not None and len(page.arms) > 1:
        differences = ", ".join(
            f"{page.label(arm)} by {abs(outcome.ancova.contrast(primary, arm).estimate):.1f}"
            for arm in page.arms[1:]
        )
        explanation.append(
            f"The protocol calls a difference of {group.value:g} points between the arms' "
            f"means meaningful ({group.source}). Here the arms differed from "
            f"{page.label(page.reference)} at {page.visit_labels[primary]} as follows: "
            f"{differences} points."
        )
    if properties.sem is not None:
        detectable = properties.minimal_detectable_change
        explanation.append(
            "But a difference between group means is not a change in one person. One "
            "person's score has a standard error of measurement of about "
            f"{properties.sem.value:g} points ({properties.sem.source})"
            + (
                f", so a change smaller than about {detectable.value:g} points cannot be "
                f"told apart from measurement error ({detectable.source})"
                if detectable is not None
                else ""
            )
            + "."
        )
    if reliable_points is not None:
        explanation.append(
            "A reliable change (Jacobson and Truax) needs an improvement of at least "
            f"{reliable_points:.1f} points with the reliability used here."
        )
    explanation.append(
        "The table counts each arm's participants as improved under every definition side "
        "by side, and the curve shows the whole distribution: read the share of each arm "
        "at any threshold you prefer."
    )
    return " ".join(explanation)


def treatment_section(page: Page) -> Section:
    section = Section("treatment", "Treatment received")
    treatment = page.content.treatment
    if treatment is None:
        section.text(
            "Hidden: session records reveal arms, and this report was made by a blinded "
            "user. An unblinded statistician's report includes adherence and techniques."
        )
        return section
    rows = []
    for arm, item in treatment.adherence.iterrows():
        planned = int(item["planned"])
        rows.append(
            {
                "arm": page.label(str(arm)),
                "allocated": str(int(item["allocated"])),
                "planned sessions": str(planned) if planned else "none",
                "started": f"{int(item['started'])}" if planned else "-",
                f"completed (>= {100 * treatment.adequate_share:.0f}%)": (
                    count_share(int(item["completed"]), int(item["allocated"])) if planned else "-"
                ),
                "sessions, median [IQR]": (
                    f"{number(item['sessions_median'], 0)} "
                    f"[{number(item['sessions_q1'], 0)}, {number(item['sessions_q3'], 0)}]"
                    if planned
                    else "-"
                ),
                "minutes: first / all sessions": (
                    f"{number(item['first_minutes_mean'], 0)} / {number(item['minutes_mean'], 0)}"
                    if planned
                    else "-"
                ),
            }
        )
    frame = pd.DataFrame(rows)
    section.table(
        frame_table(frame, "Adherence", treatment.method_text),
        page.csv("adherence", treatment.adherence_frame()),
    )
    figure = attendance_figure(
        treatment.attendance,
        arms=page.arms,
        reference=page.reference,
        labels=page.labels,
        name="attendance",
    )
    page.show(section, figure)
    content = treatment.content
    page.csv("session_content", content)
    for kind, title in (
        ("technique", "Techniques"),
        ("body_region", "Body regions treated"),
        ("home_care", "Home-care advice"),
    ):
        rows = []
        for _, item in content[content["kind"] == kind].iterrows():
            rows.append(
                {
                    "arm": page.label(str(item["arm"])),
                    kind.replace("_", " "): str(item["item"]).replace("_", " "),
                    "sessions": (f"{int(item['sessions'])} ({percent(item['share_of_sessions'])})"),
                    "participants": (
                        f"{int(item['participants'])} ({percent(item['share_of_participants'])})"
                    ),
                }
            )
        if rows:
            section.table(
                frame_table(pd.DataFrame(rows), f"{title}, per arm"),
                "tables/session_content.csv",
            )
    return section


def safety_section(page: Page) -> Section:
    section = Section("safety", "Adverse events")
    safety = page.content.safety
    if safety is None:
        section.text("Hidden: adverse-event records reveal arms to a blinded user.")
        return section
    rows = []
    for arm, item in safety.by_arm.iterrows():
        rows.append(
            {
                "arm": page.label(str(arm)),
                "allocated": str(int(item["allocated"])),
                "participants with an event": (
                    f"{int(item['participants_with_event'])} "
                    f"({percent(item['share_with_event'], 1)})"
                ),
                "events": str(int(item["events"])),
                "mild / moderate / severe": (
                    f"{int(item['mild'])} / {int(item['moderate'])} / {int(item['severe'])}"
                ),
                "related to treatment": str(int(item["related_events"])),
                "serious (participants)": (
                    f"{int(item['serious_events'])} ({int(item['participants_with_serious'])})"
                ),
            }
        )
    section.table(
        frame_table(pd.DataFrame(rows), "Adverse events by arm", safety.method_text),
        page.csv("adverse_events", safety.to_frame()),
    )
    return section


def sensitivity_section(page: Page) -> Section:
    section = Section("sensitivity", "Missing data and sensitivity analyses")
    for outcome in page.content.analysis.outcomes:
        name = outcome_name(outcome.outcome)
        rows = []
        for visit in outcome.visits:
            for arm in page.arms[1:]:
                row = {
                    "visit": page.visit_labels.get(visit, visit),
                    "arm": page.label(arm),
                    "ANCOVA, complete cases": ci_text(outcome.ancova.contrast(visit, arm)),
                    "MMRM (missing at random)": ci_text(outcome.mmrm.contrast(visit, arm)),
                }
                if outcome.imputation is not None:
                    pooled = outcome.imputation.contrast(visit, arm)
                    row[f"multiple imputation (m={outcome.imputation.m})"] = (
                        f"{number(pooled.estimate)} ({interval(pooled.lower, pooled.upper)})"
                    )
                if outcome.gee is not None:
                    row["GEE (protocol)"] = ci_text(outcome.gee.contrast(visit, arm))
                window = outcome.window.sensitivity if outcome.window is not None else None
                if window is not None:
                    for method, result in (("ANCOVA", window.ancova), ("MMRM", window.mmrm)):
                        try:
                            shown = ci_text(result.contrast(visit, arm))
                        except KeyError:  # no value at this visit once they are left out
                            shown = "not estimable"
                        row[f"{method}, without out-of-window values"] = shown
                rows.append(row)
        notes = [outcome.mmrm.method_text]
        if outcome.imputation is not None:
            notes.append(outcome.imputation.method_text)
        if outcome.gee is not None:
            notes.append(outcome.gee.method_text)
        notes.extend(outcome.notes)
        frame = pd.DataFrame(rows)
        section.table(
            frame_table(
                frame,
                f"{name}: the difference from {page.label(page.reference)} by each method",
                " ".join(notes),
            ),
            page.csv(f"{outcome.outcome}_methods_side_by_side", frame),
        )
        if outcome.tipping_point is not None:
            tipping = outcome.tipping_point
            lines = []
            for key, value in tipping.tipping_points.items():
                visit, arm = key.split("/", 1)
                if visit != page.primary_visit:
                    continue
                if not tipping.significant_without_delta[key]:
                    text = "not significant even without a shift"
                elif value is None:
                    text = (
                        "still significant with the largest shift tried "
                        f"({max(tipping.table['delta']):g} points)"
                    )
                else:
                    text = f"no longer significant from a shift of {value:g} points"
                lines.append(f"{page.label(arm)}: {text}")
            section.text(
                f"{name}, tipping point at {page.visit_labels[page.primary_visit]}: "
                + "; ".join(lines)
                + ". "
                + tipping.method_text
            )
            figure = tipping_point_figure(
                tipping.table,
                visit=page.primary_visit,
                arms=page.arms,
                reference=page.reference,
                labels=page.labels,
                title=(
                    f"{name}: tipping-point analysis at {page.visit_labels[page.primary_visit]}"
                ),
                name=f"{outcome.outcome}_tipping_point",
            )
            page.show(section, figure)
    return section


def evidence_section(page: Page) -> Section:
    section = Section("evidence", "Where this trial moves the evidence")
    synthetic = f" ({SYNTHETIC}: simulated participants)" if page.content.synthetic else ""
    section.text(
        "Each primary outcome's published trials are pooled by a random-effects "
        "meta-analysis, first without this trial and then with its pre-specified "
        f"result (each massage arm against the reference arm){synthetic}. Rows "
        "without the numbers a pooled analysis needs are listed, not guessed."
    )
    for evidence in page.content.evidence:
        done = evidence.review
        assert done.before is not None  # place_in_evidence keeps reviews with a published pool
        rows = []
        for label, result in (
            ("published trials", done.before),
            ("with this trial", done.model),
        ):
            pooled = result.pooled
            low, high = result.prediction or (math.nan, math.nan)
            rows.append(
                {
                    "pooled": label,
                    "studies": str(result.k),
                    "mean difference (95% CI)": (
                        f"{number(pooled.estimate)} ({interval(pooled.lower, pooled.upper)})"
                    ),
                    "tau\u00b2": number(result.tau2, 3),
                    "I\u00b2": f"{result.i2:.0f}%",
                    "prediction interval": interval(low, high),
                }
            )
        frame = pd.DataFrame(rows)
        section.table(
            frame_table(
                frame,
                f"{evidence.name}: pooled difference from the comparator, before and after",
                done.model.method_text,
            ),
            page.csv(f"{evidence.outcome}_evidence", frame),
        )
        page.csv(f"{evidence.outcome}_evidence_studies", done.studies_frame())
        forest = review_forest(
            done,
            treatment="massage",
            comparator="comparator",
            higher_is_better=False,
            title=f"Massage vs comparator: {evidence.name}",
        )
        forest = replace(forest, name=f"{evidence.outcome}_forest")
        page.show(section, forest)
        if done.excluded:
            section.text(
                "Not pooled (numbers not published): "
                + "; ".join(f"{study} ({reason})" for study, reason in done.excluded)
                + "."
            )
    return section


def _curve_thresholds(
    definitions: Sequence[Definition], properties: Any, reliable_points: float | None
) -> list[tuple[float, str]]:
    """Vertical lines for the responder curve: every threshold in points, labelled."""
    thresholds: list[tuple[float, str]] = [
        (definition.threshold, definition.label)
        for definition in definitions
        if definition.kind == "points"
    ]
    if reliable_points is not None:
        thresholds.append((reliable_points, f"reliable change ({reliable_points:.1f})"))
    if properties.minimal_detectable_change is not None:
        value = properties.minimal_detectable_change.value
        same = [
            index for index, (existing, _) in enumerate(thresholds) if abs(existing - value) < 1e-9
        ]
        if same:
            existing, text = thresholds[same[0]]
            thresholds[same[0]] = (existing, f"{text} = detectable change")
        else:
            thresholds.append((value, f"minimal detectable change ({value:g})"))
    return sorted(thresholds)
