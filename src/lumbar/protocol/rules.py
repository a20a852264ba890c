"""The rules that tie one part of a protocol to another.

Pydantic checks each field on its own; these checks need the whole protocol:
ids are unique, references resolve, the schedule is ordered and its windows do
not overlap, block sizes fit the allocation ratio, eligibility rules ask
existing questions with values that fit, strata partition their source, and
outcomes are collected where they are measured. Every problem carries its path
so the loader can name the line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from lumbar._declared import Path, format_number, format_path
from lumbar.errors import Problem, ProtocolError
from lumbar.instruments import INSTRUMENTS, Instrument, MeasurementProperties

if TYPE_CHECKING:
    from lumbar.protocol.model import Condition, Protocol, Question, StratumFactor

__all__ = ["RATING_MAXIMUM", "RATING_MINIMUM", "check_protocol"]

RATING_MINIMUM = 0
RATING_MAXIMUM = 10
"""A per-session rating is one 0-10 numeric rating: the instruments that qualify are the
registry's single-item 0-10 ratings (bothersomeness, pain_intensity)."""


_NO_VALUE = object()


class _Problems:
    def __init__(self) -> None:
        self.found: list[Problem] = []

    def add(self, path: Path, rule: str, hint: str, received: object = _NO_VALUE) -> None:
        """Record a broken rule; ``hint`` says what to do, and is required."""
        if received is _NO_VALUE:
            self.found.append(Problem(format_path(path), rule, hint=hint, path=path))
        else:
            self.found.append(Problem(format_path(path), rule, received, hint, path=path))

    def unique(self, path: Path, ids: Sequence[str], what: str) -> None:
        counts = Counter(ids)
        for index, identifier in enumerate(ids):
            if counts[identifier] > 1 and ids.index(identifier) != index:
                self.add(
                    (*path, index, "id"),
                    f"{what} ids must be unique; {identifier!r} is used {counts[identifier]} times",
                    "give each one its own id",
                    identifier,
                )


def check_protocol(protocol: Protocol) -> None:
    """Raise :class:`ProtocolError` listing every cross-reference problem of ``protocol``."""
    problems = _Problems()
    _check_arms(protocol, problems)
    questions = _check_eligibility(protocol, problems)
    _check_visits(protocol, problems)
    _check_randomization(protocol, questions, problems)
    _check_outcomes(protocol, problems)
    _check_analysis(protocol, questions, problems)
    _check_messages(protocol, problems)
    _check_session_rating(protocol, problems)
    if problems.found:
        raise ProtocolError("the protocol is not valid", problems.found)


def _check_messages(protocol: Protocol, problems: _Problems) -> None:
    """Reminders come in order, and every message of every follow-up visit falls inside
    that visit's window (a message after the window closes would invite an answer that
    no longer counts)."""
    messages = protocol.messages
    if messages is None:
        return
    days = messages.reminders_after_days
    for index, day in enumerate(days):
        if day < 1 or (index > 0 and day <= days[index - 1]):
            problems.add(
                ("messages", "reminders_after_days", index),
                "reminders are counted in days after the window opens, each at least 1 and "
                "later than the one before",
                "list them in increasing order, e.g. [7, 14]",
                day,
            )
    for visit in protocol.follow_up_visits:
        length = visit.latest_day - visit.earliest_day
        if days and days[-1] > length:
            problems.add(
                ("messages", "reminders_after_days"),
                f"the window of {visit.id} is {length} days long, so a reminder {days[-1]} "
                "days after it opens would come after it closes",
                f"keep every reminder within {length} days",
                days[-1],
            )
        last = messages.last_days_before_close
        if last is not None and last > length:
            problems.add(
                ("messages", "last_days_before_close"),
                f"the window of {visit.id} is {length} days long, so {last} days before it "
                "closes is before it opens",
                f"give at most {length} days",
                last,
            )


def _check_arms(protocol: Protocol, problems: _Problems) -> None:
    problems.unique(("arms",), [arm.id for arm in protocol.arms], "arm")
    vocabulary = protocol.vocabulary
    techniques = [term.id for term in vocabulary.techniques]
    problems.unique(("vocabulary", "techniques"), techniques, "technique")
    problems.unique(
        ("vocabulary", "body_regions"), [term.id for term in vocabulary.body_regions], "body region"
    )
    for arm_index, arm in enumerate(protocol.arms):
        for index, technique in enumerate(arm.techniques):
            if technique not in techniques:
                problems.add(
                    ("arms", arm_index, "techniques", index),
                    "must be a technique of vocabulary.techniques",
                    _choose_from(techniques, "add it to vocabulary.techniques, or use one of"),
                    technique,
                )
            elif arm.techniques.index(technique) != index:
                problems.add(
                    ("arms", arm_index, "techniques", index),
                    f"is listed twice for arm {arm.id}",
                    "list each technique once",
                    technique,
                )
    if any(arm.sessions.planned > 0 for arm in protocol.arms) and not vocabulary.body_regions:
        problems.add(
            ("vocabulary", "body_regions"),
            "must list the body regions therapists may log when any arm plans sessions",
            "add body_regions: [{id: low_back, label: Low back}, ...]",
        )


def _check_session_rating(protocol: Protocol, problems: _Problems) -> None:
    rating = protocol.session_rating
    if rating is None:
        return
    if not any(arm.sessions.planned > 0 for arm in protocol.arms):
        problems.add(
            ("session_rating",),
            "needs an arm with planned sessions to rate",
            "remove session_rating, or plan sessions in an arm",
        )
    ratings = [
        name
        for name in INSTRUMENTS.names()
        if _is_rating(INSTRUMENTS.get(name), RATING_MINIMUM, RATING_MAXIMUM)
    ]
    for index, name in enumerate(rating.instruments):
        path = ("session_rating", "instruments", index)
        if name not in ratings:
            problems.add(
                path,
                f"must be a single-item {RATING_MINIMUM}-{RATING_MAXIMUM} rating of the "
                "instrument registry",
                _choose_from(ratings, "use one of"),
                name,
            )
        elif rating.instruments.index(name) != index:
            problems.add(path, "is listed twice", "list each rating once", name)


def _is_rating(instrument: Instrument, minimum: int, maximum: int) -> bool:
    if len(instrument.items) != 1:
        return False
    response = instrument.items[0].response
    return (
        response.kind == "integer" and response.minimum == minimum and response.maximum == maximum
    )


def _check_eligibility(protocol: Protocol, problems: _Problems) -> dict[str, Question]:
    eligibility = protocol.eligibility
    problems.unique(
        ("eligibility", "questions"),
        [question.id for question in eligibility.questions],
        "question",
    )
    for index, question in enumerate(eligibility.questions):
        problems.unique(
            ("eligibility", "questions", index, "choices"),
            [choice.id for choice in question.choices],
            "choice",
        )
    questions = {question.id: question for question in eligibility.questions}
    seen_rules: set[str] = set()
    for section, rules in (
        ("inclusion", eligibility.inclusion),
        ("exclusion", eligibility.exclusion),
    ):
        for index, rule in enumerate(rules):
            if rule.id in seen_rules:
                problems.add(
                    ("eligibility", section, index, "id"),
                    "rule ids must be unique across inclusion and exclusion",
                    "give each rule its own id",
                    rule.id,
                )
            seen_rules.add(rule.id)
            _check_condition(
                rule.when, ("eligibility", section, index, "when"), questions, problems
            )
    return questions


def _check_condition(
    condition: Condition, path: Path, questions: dict[str, Question], problems: _Problems
) -> None:
    for name, members in (("all", condition.all), ("any", condition.any)):
        for index, member in enumerate(members or ()):
            _check_condition(member, (*path, name, index), questions, problems)
    if condition.not_ is not None:
        _check_condition(condition.not_, (*path, "not"), questions, problems)
    if condition.question is None:
        return
    question = _question(questions, condition.question, (*path, "question"), problems)
    if question is None:
        return
    (comparison,) = condition.comparisons()
    if comparison in ("between", "at_least", "at_most") and not question.is_numeric:
        problems.add(
            (*path, comparison),
            f"'{comparison}' compares numbers, but question {question.id} is {question.type}",
            "use 'is' or 'in' for yes/no and choice questions",
        )
        return
    values: Iterable[object]
    if comparison == "is":
        values = [condition.is_]
    elif comparison == "in":
        values = condition.in_ or ()
    elif comparison == "between":
        values = condition.between or ()
    else:
        values = [condition.at_least if comparison == "at_least" else condition.at_most]
    seen: set[tuple[bool, object]] = set()
    for index, value in enumerate(values):
        problem = question.problem_with(value)
        if problem:
            problems.add((*path, comparison), problem, question.expected(), value)
        elif comparison == "in" and _answer_key(value) in seen:
            problems.add((*path, "in", index), "is listed twice", "list each answer once", value)
        seen.add(_answer_key(value))


def _question(
    questions: dict[str, Question], question_id: str, path: Path, problems: _Problems
) -> Question | None:
    """The screening question ``question_id``, or None after recording the problem."""
    question = questions.get(question_id)
    if question is None:
        problems.add(
            path,
            "must be one of eligibility.questions",
            _choose_from(list(questions), "add the question, or use one of"),
            question_id,
        )
    return question


def _check_visits(protocol: Protocol, problems: _Problems) -> None:
    visits = protocol.visits
    problems.unique(("visits",), [visit.id for visit in visits], "visit")
    baseline = visits[0]
    if baseline.day != 0:
        problems.add(
            ("visits", 0, "day"),
            "the first visit is the baseline and must be on day 0",
            "put the baseline visit first, with day: 0",
            baseline.day,
        )
    if baseline.window.after != 0:
        problems.add(
            ("visits", 0, "window", "after"),
            "the baseline visit is completed before randomization, so its window.after must be 0",
            "set after: 0, and give the days allowed before randomization in before",
            baseline.window.after,
        )
    for index in range(1, len(visits)):
        previous, visit = visits[index - 1], visits[index]
        if visit.day <= previous.day:
            problems.add(
                ("visits", index, "day"),
                f"visits must be in order of day; {visit.id} (day {visit.day}) does not come "
                f"after {previous.id} (day {previous.day})",
                "list visits in the order they happen, each with a later day",
                visit.day,
            )
        elif visit.earliest_day <= previous.latest_day:
            problems.add(
                ("visits", index, "window"),
                f"the window of {visit.id} (days {visit.earliest_day} to {visit.latest_day}) "
                f"overlaps the window of {previous.id} (days {previous.earliest_day} to "
                f"{previous.latest_day})",
                "narrow one of the windows so a completed visit belongs to one visit only",
            )
    for visit_index, visit in enumerate(visits):
        for index, name in enumerate(visit.instruments):
            path: Path = ("visits", visit_index, "instruments", index)
            if name not in INSTRUMENTS:
                problems.add(path, "is not a known instrument", INSTRUMENTS.suggest(name), name)
            elif visit.instruments.index(name) != index:
                problems.add(
                    path, f"is listed twice at visit {visit.id}", "list each instrument once", name
                )


def _check_randomization(
    protocol: Protocol, questions: dict[str, Question], problems: _Problems
) -> None:
    scheme = protocol.randomization
    arm_ids = [arm.id for arm in protocol.arms]
    for arm_id in scheme.ratio:
        if arm_id not in arm_ids:
            problems.add(
                ("randomization", "ratio", arm_id),
                "is not an arm",
                _choose_from(arm_ids, "the arms are"),
                arm_id,
            )
    absent = [arm_id for arm_id in arm_ids if arm_id not in scheme.ratio]
    if absent:
        problems.add(
            ("randomization", "ratio"),
            "must give every arm a share; missing: " + ", ".join(absent),
            "add each missing arm with its share, e.g. " + ", ".join(f"{a}: 1" for a in absent),
        )
    total = scheme.ratio_total
    for index, size in enumerate(scheme.block_sizes):
        if size % total:
            problems.add(
                ("randomization", "block_sizes", index),
                f"each block size must be a multiple of the ratio's total ({total}) so every "
                "block holds the arms in the allocation ratio",
                f"use {total}, {2 * total}, {3 * total}, ...",
                size,
            )
    if len(set(scheme.block_sizes)) != len(scheme.block_sizes):
        problems.add(
            ("randomization", "block_sizes"),
            "block sizes must be distinct",
            "list each block size once",
        )
    problems.unique(
        ("randomization", "strata"),
        [factor.id for factor in scheme.strata],
        "stratification factor",
    )
    for index, factor in enumerate(scheme.strata):
        _check_factor(protocol, factor, ("randomization", "strata", index), questions, problems)


def _check_factor(
    protocol: Protocol,
    factor: StratumFactor,
    path: Path,
    questions: dict[str, Question],
    problems: _Problems,
) -> None:
    problems.unique((*path, "levels"), [level.id for level in factor.levels], "level")
    numeric: bool
    if factor.question is not None:
        question = _question(questions, factor.question, (*path, "question"), problems)
        if question is None:
            return
        numeric = question.is_numeric
        bounds = (question.minimum, question.maximum)
    else:
        source = factor.baseline_score
        assert source is not None
        instrument = _instrument_at(protocol, source.instrument, protocol.baseline.id)
        if instrument is None:
            problems.add(
                (*path, "baseline_score", "instrument"),
                f"must be an instrument collected at the baseline visit ({protocol.baseline.id})",
                _choose_from(list(protocol.baseline.instruments), "the baseline collects"),
                source.instrument,
            )
            return
        if not _has_score(instrument, source.score):
            problems.add(
                (*path, "baseline_score", "score"),
                f"is not a score of {instrument.name}",
                _choose_from([score.id for score in instrument.scores], "the scores are"),
                source.score,
            )
            return
        numeric = True
        bounds = instrument.score_range(source.score)
    if numeric:
        _check_numeric_factor(factor, bounds, path, problems)
    else:
        assert factor.question is not None
        _check_categorical_factor(factor, questions[factor.question], path, problems)


def _check_numeric_factor(
    factor: StratumFactor,
    bounds: tuple[float | None, float | None],
    path: Path,
    problems: _Problems,
) -> None:
    if not factor.cutpoints:
        problems.add(
            (*path, "cutpoints"),
            "a factor read from a number needs cutpoints",
            "for two levels split at 12 write cutpoints: [12]",
        )
        return
    if len(factor.levels) != len(factor.cutpoints) + 1:
        problems.add(
            (*path, "levels"),
            f"{len(factor.cutpoints)} cutpoints make {len(factor.cutpoints) + 1} levels, "
            f"but {len(factor.levels)} are listed",
            "list one level more than there are cutpoints",
        )
    low, high = bounds
    for index, cut in enumerate(factor.cutpoints):
        # A level holds values from its cutpoint up, so a cutpoint at or below the
        # lowest possible value, or above the highest, leaves a level nobody can reach.
        if (low is not None and cut <= low) or (high is not None and cut > high):
            problems.add(
                (*path, "cutpoints", index),
                "leaves a level no participant can fall in: values run from "
                f"{_bound(low)} to {_bound(high)}",
                "put every cutpoint above the lowest possible value and at most the highest",
                cut,
            )
    for index, level in enumerate(factor.levels):
        if level.values:
            problems.add(
                (*path, "levels", index, "values"),
                "levels of a numeric factor are set by cutpoints, not values",
                "remove values",
            )


def _check_categorical_factor(
    factor: StratumFactor, question: Question, path: Path, problems: _Problems
) -> None:
    if factor.cutpoints:
        problems.add(
            (*path, "cutpoints"),
            f"question {question.id} is {question.type}; only numeric factors take cutpoints",
            "remove cutpoints and list each level's values",
        )
    seen: dict[tuple[bool, object], str] = {}
    for index, level in enumerate(factor.levels):
        if not level.values:
            problems.add(
                (*path, "levels", index, "values"),
                "must list the answers that fall in this level",
                question.expected(),
            )
        for value in level.values:
            problem = question.problem_with(value)
            if problem:
                problems.add(
                    (*path, "levels", index, "values"), problem, question.expected(), value
                )
            elif _answer_key(value) in seen:
                other = seen[_answer_key(value)]
                rule = (
                    "is listed twice in this level"
                    if other == level.id
                    else f"is already in level {other}; levels may not overlap"
                )
                problems.add(
                    (*path, "levels", index, "values"),
                    rule,
                    "put each answer in one level only",
                    value,
                )
            else:
                seen[_answer_key(value)] = level.id
    answers: list[object] = (
        [True, False] if question.type == "yes_no" else list(question.choice_ids)
    )
    uncovered = [answer for answer in answers if _answer_key(answer) not in seen]
    if uncovered and len(seen) > 0:
        problems.add(
            (*path, "levels"),
            "every answer must fall in a level; not covered: "
            + ", ".join(repr(answer) for answer in uncovered),
            "add the missing answers to a level's values",
        )


def _check_outcomes(protocol: Protocol, problems: _Problems) -> None:
    problems.unique(("outcomes",), [outcome.id for outcome in protocol.outcomes], "outcome")
    if not protocol.primary_outcomes:
        problems.add(
            ("outcomes",),
            "at least one outcome must have role: primary",
            "set role: primary on the outcome the trial is powered for",
        )
    visit_ids = [visit.id for visit in protocol.visits]
    for index, outcome in enumerate(protocol.outcomes):
        path: Path = ("outcomes", index)
        if outcome.instrument not in INSTRUMENTS:
            problems.add(
                (*path, "instrument"),
                "is not a known instrument",
                INSTRUMENTS.suggest(outcome.instrument),
                outcome.instrument,
            )
            continue
        instrument = INSTRUMENTS.get(outcome.instrument)
        if not _has_score(instrument, outcome.score):
            problems.add(
                (*path, "score"),
                f"is not a score of {instrument.name}",
                _choose_from([score.id for score in instrument.scores], "the scores are"),
                outcome.score,
            )
        if outcome.visit not in visit_ids:
            problems.add(
                (*path, "visit"),
                "is not a visit",
                _choose_from(visit_ids, "the visits are"),
                outcome.visit,
            )
        elif outcome.instrument not in protocol.visit(outcome.visit).instruments:
            problems.add(
                (*path, "visit"),
                f"visit {outcome.visit} does not collect {outcome.instrument}",
                f"add {outcome.instrument} to that visit's instruments",
                outcome.visit,
            )


def _check_analysis(
    protocol: Protocol, questions: dict[str, Question], problems: _Problems
) -> None:
    plan = protocol.analysis
    arm_ids = [arm.id for arm in protocol.arms]
    if plan.reference_arm not in arm_ids:
        problems.add(
            ("analysis", "reference_arm"),
            "must be one of the arms",
            _choose_from(arm_ids, "the arms are"),
            plan.reference_arm,
        )
    for index, covariate in enumerate(plan.covariates):
        if covariate not in questions:
            problems.add(
                ("analysis", "covariates", index),
                "must be a screening question (eligibility.questions)",
                _choose_from(list(questions), "the questions are"),
                covariate,
            )
        elif plan.covariates.index(covariate) != index:
            problems.add(
                ("analysis", "covariates", index),
                "is listed twice",
                "list each covariate once",
                covariate,
            )
    collected = {name for visit in protocol.visits for name in visit.instruments}
    for name, thresholds in plan.thresholds.items():
        path: Path = ("analysis", "thresholds", name)
        if name not in collected:
            problems.add(
                path,
                "thresholds are given for an instrument the schedule does not collect",
                _choose_from(sorted(collected), "the schedule collects"),
                name,
            )
            continue
        _check_thresholds(INSTRUMENTS.get(name), thresholds, path, problems)


def _check_thresholds(
    instrument: Instrument, thresholds: MeasurementProperties, path: Path, problems: _Problems
) -> None:
    # An instrument may have several scores; a threshold may be meant for any of them.
    width = max(high - low for low, high in map(instrument.score_range, _score_ids(instrument)))
    in_points = (
        "minimal_important_change",
        "small_change",
        "meaningful_group_difference",
        "sem",
        "reference_sd",
        "minimal_detectable_change",
    )
    for name, reference in thresholds.set_fields().items():
        if name in in_points and reference.value > width:
            problems.add(
                (*path, name, "value"),
                f"is larger than the whole range of any {instrument.name} score "
                f"({format_number(width)} points)",
                "give the threshold in the score's points",
                reference.value,
            )


def _instrument_at(protocol: Protocol, name: str, visit_id: str) -> Instrument | None:
    if name in INSTRUMENTS and name in protocol.visit(visit_id).instruments:
        return INSTRUMENTS.get(name)
    return None


def _answer_key(value: object) -> tuple[bool, object]:
    """Equal answers share a key; yes/no never equals a number (True == 1 in Python)."""
    return isinstance(value, bool), value


def _score_ids(instrument: Instrument) -> list[str]:
    return [score.id for score in instrument.scores]


def _bound(value: float | None) -> str:
    return "unbounded" if value is None else format_number(value)


def _has_score(instrument: Instrument, score_id: str | None) -> bool:
    return score_id is None or any(score.id == score_id for score in instrument.scores)


def _choose_from(options: Sequence[str], lead: str) -> str:
    if not options:
        return "none are defined yet: add the one you mean first"
    return f"{lead}: {', '.join(options)}"
