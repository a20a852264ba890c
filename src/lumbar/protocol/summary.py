"""A protocol summarised as tables: arms, schedule, eligibility, randomization, outcomes."""

from __future__ import annotations

from lumbar._declared import format_number
from lumbar._summary import SummaryTable
from lumbar.instruments import INSTRUMENTS
from lumbar.protocol.eligibility import describe_condition
from lumbar.protocol.model import Arm, Protocol, Rule, StratumFactor

__all__ = ["summarize_protocol"]


def summarize_protocol(protocol: Protocol) -> tuple[SummaryTable, ...]:
    """Every table of a protocol summary, in reading order."""
    return (
        _trial(protocol),
        _arms(protocol),
        _schedule(protocol),
        _instruments_by_visit(protocol),
        _rules(protocol, "inclusion"),
        _rules(protocol, "exclusion"),
        _randomization(protocol),
        _outcomes(protocol),
        _analysis(protocol),
    )


def _trial(protocol: Protocol) -> SummaryTable:
    trial = protocol.trial
    rows = [
        ("id", trial.id),
        ("title", trial.title),
        ("protocol version", trial.version),
        ("registration", trial.registration or "-"),
        ("content hash", protocol.content_hash),
    ]
    return SummaryTable("Trial", ("field", "value"), tuple(rows))


def _sessions(arm: Arm) -> str:
    plan = arm.sessions
    if plan.planned == 0:
        return "none"
    text = f"{plan.planned} x {plan.minutes} min, {plan.frequency}"
    if plan.first_session_minutes is not None:
        text += f" (first {plan.first_session_minutes} min)"
    return text


def _arms(protocol: Protocol) -> SummaryTable:
    ratio = protocol.randomization.ratio
    rows = tuple(
        (
            arm.id,
            arm.label,
            "yes" if arm.control else "",
            str(ratio.get(arm.id, "-")),
            _sessions(arm),
            ", ".join(arm.techniques) or "-",
        )
        for arm in protocol.arms
    )
    return SummaryTable(
        "Arms", ("arm", "label", "control", "ratio", "sessions", "techniques"), rows
    )


def _schedule(protocol: Protocol) -> SummaryTable:
    rows = tuple(
        (
            visit.id,
            visit.label,
            str(visit.day),
            f"{visit.earliest_day} to {visit.latest_day}",
            ", ".join(visit.instruments),
        )
        for visit in protocol.visits
    )
    return SummaryTable(
        "Visit schedule",
        ("visit", "label", "target day", "window (days)", "instruments"),
        rows,
        note="Days count from randomization; the baseline is completed before it.",
    )


def _instruments_by_visit(protocol: Protocol) -> SummaryTable:
    rows = tuple(
        (
            instrument.name,
            *("x" if instrument.name in visit.instruments else "" for visit in protocol.visits),
        )
        for instrument in protocol.instruments()
    )
    return SummaryTable(
        "Instruments per visit", ("instrument", *(visit.id for visit in protocol.visits)), rows
    )


def _rules(protocol: Protocol, kind: str) -> SummaryTable:
    rules: tuple[Rule, ...] = getattr(protocol.eligibility, kind)
    questions = {question.id: question for question in protocol.eligibility.questions}
    rows = tuple(
        (rule.id, rule.category, rule.label, describe_condition(rule.when, questions))
        for rule in rules
    )
    title = (
        "Inclusion rules (all must hold)"
        if kind == "inclusion"
        else "Exclusion rules (any excludes)"
    )
    return SummaryTable(title, ("rule", "category", "label", "condition"), rows)


def _factor_source(factor: StratumFactor) -> str:
    if factor.question is not None:
        return f"screening question {factor.question}"
    assert factor.baseline_score is not None
    score = (
        factor.baseline_score.score
        or INSTRUMENTS.get(factor.baseline_score.instrument).primary_score.id
    )
    return f"baseline {factor.baseline_score.instrument} {score}"


def _factor_levels(factor: StratumFactor) -> str:
    if factor.cutpoints:
        bounds = [format_number(cut) for cut in factor.cutpoints]
        parts = [f"{factor.levels[0].id} (< {bounds[0]})"]
        for index, level in enumerate(factor.levels[1:], start=1):
            if index < len(bounds):
                parts.append(f"{level.id} ({bounds[index - 1]} to < {bounds[index]})")
            else:
                parts.append(f"{level.id} (>= {bounds[index - 1]})")
        return ", ".join(parts)
    return ", ".join(
        f"{level.id} ({', '.join(_answer(value) for value in level.values)})"
        for level in factor.levels
    )


def _answer(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _randomization(protocol: Protocol) -> SummaryTable:
    scheme = protocol.randomization
    ratio = ":".join(str(scheme.ratio[arm.id]) for arm in protocol.arms if arm.id in scheme.ratio)
    method = "stratified permuted blocks" if scheme.strata else "permuted blocks"
    rows = [
        ("method", method),
        ("allocation ratio", f"{ratio} ({', '.join(scheme.ratio)})"),
        ("block sizes", ", ".join(str(size) for size in scheme.block_sizes)),
        ("strata", str(scheme.stratum_count)),
    ]
    rows.extend(
        (f"factor {factor.id}", f"{_factor_source(factor)}: {_factor_levels(factor)}")
        for factor in scheme.strata
    )
    return SummaryTable("Randomization", ("field", "value"), tuple(rows))


def _outcomes(protocol: Protocol) -> SummaryTable:
    rows = []
    for outcome in protocol.outcomes:
        instrument = INSTRUMENTS.get(outcome.instrument)
        score = instrument.score(outcome.score)
        low, high = instrument.score_range(score.id)
        rows.append(
            (
                outcome.id,
                outcome.role,
                f"{instrument.name}.{score.id}",
                outcome.visit,
                f"{format_number(low)}-{format_number(high)}",
                score.direction.replace("_", " "),
            )
        )
    return SummaryTable(
        "Outcomes", ("outcome", "role", "score", "visit", "range", "direction"), tuple(rows)
    )


def _analysis(protocol: Protocol) -> SummaryTable:
    plan = protocol.analysis
    rows = [
        ("reference arm", plan.reference_arm),
        ("covariates", ", ".join(("baseline score", *plan.covariates))),
        ("alpha", format_number(plan.alpha)),
    ]
    for name in plan.thresholds:
        overrides = plan.thresholds[name].set_fields()
        for field, reference in protocol.thresholds_for(name).set_fields().items():
            origin = "protocol" if field in overrides else "instrument default"
            rows.append(
                (
                    f"{name} {field.replace('_', ' ')}",
                    f"{format_number(reference.value)} [{origin}] {reference.source}",
                )
            )
    return SummaryTable("Pre-specified analysis", ("setting", "value"), tuple(rows))
