"""Malformed protocols are refused with the field, the rule and the line of every problem.

Each case starts from the shipped reference protocol, breaks one thing, writes
the result to a file and checks the error names the field path and the rule,
and points at a line that holds that field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lumbar.cli import app
from lumbar.errors import Problem, ProtocolError
from lumbar.protocol import load_protocol, parse_protocol

pytestmark = pytest.mark.unit

Data = dict[str, Any]


@dataclass(frozen=True)
class Case:
    name: str
    mutate: Callable[[Data], None]
    where: str
    rule: str
    line_holds: str | None = None
    """Text the problem's line must contain (None: only check a line is given)."""


def _set(path: str, value: Any) -> Callable[[Data], None]:
    """Mutation setting a dotted path (list indexes as numbers): 'arms.1.sessions.planned'."""

    def mutate(data: Data) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _delete(path: str) -> Callable[[Data], None]:
    def mutate(data: Data) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[int(last) if last.isdigit() else last]

    return mutate


def _append(path: str, value: Any) -> Callable[[Data], None]:
    def mutate(data: Data) -> None:
        node: Any = data
        for part in path.split("."):
            node = node[int(part)] if part.isdigit() else node[part]
        node.append(value)

    return mutate


def _all_secondary(data: Data) -> None:
    for outcome in data["outcomes"]:
        outcome["role"] = "secondary"


CASES = [
    Case("unknown section", _set("arm", []), "arm", "is not a field", "arm:"),
    Case("missing section", _delete("visits"), "visits", "is required"),
    Case(
        "sessions not a number",
        _set("arms.1.sessions.planned", "ten"),
        "arms[1].sessions.planned",
        "must be a whole number",
        "planned",
    ),
    Case(
        "negative sessions",
        _set("arms.1.sessions.planned", -1),
        "arms[1].sessions.planned",
        "greater than or equal to 0",
        "planned",
    ),
    Case("bad trial id", _set("trial.id", "Massage CLBP"), "trial.id", "lowercase letters", "id:"),
    Case("one arm only", lambda d: d.update(arms=d["arms"][:1]), "arms", "needs at least 2"),
    Case(
        "duplicate arm id",
        _set("arms.2.id", "structural"),
        "arms[2].id",
        "arm ids must be unique",
        "structural",
    ),
    Case(
        "technique not in vocabulary",
        _append("arms.1.techniques", "reiki"),
        "arms[1].techniques[8]",
        "must be a technique of vocabulary.techniques",
        "reiki",
    ),
    Case(
        "sessions without interval",
        _delete("arms.1.sessions.interval_days"),
        "arms[1].sessions",
        "planned sessions need interval_days",
        "sessions",
    ),
    Case(
        "usual care with techniques",
        _set("arms.0.techniques", ["effleurage"]),
        "arms[0]",
        "no planned sessions cannot list techniques",
    ),
    Case(
        "duplicate question",
        _set("eligibility.questions.3.id", "age"),
        "eligibility.questions[3].id",
        "question ids must be unique",
    ),
    Case(
        "rule on unknown question",
        _set("eligibility.inclusion.1.when.question", "agee"),
        "eligibility.inclusion[1].when.question",
        "must be one of eligibility.questions",
        "agee",
    ),
    Case(
        "numeric comparison on yes/no",
        _set("eligibility.exclusion.0.when", {"question": "cancer", "between": [0, 1]}),
        "eligibility.exclusion[0].when.between",
        "compares numbers",
    ),
    Case(
        "choice not offered",
        _set("eligibility.inclusion.2.when.all.1.in", ["daily"]),
        "eligibility.inclusion[2].when.all[1].in",
        "must be one of the choices of question pain_frequency",
    ),
    Case(
        "yes/no rule with a number",
        _set("eligibility.exclusion.0.when.is", 1),
        "eligibility.exclusion[0].when.is",
        "must be true (yes) or false (no)",
    ),
    Case(
        "two comparisons",
        _set("eligibility.inclusion.1.when", {"question": "age", "at_least": 20, "at_most": 64}),
        "eligibility.inclusion[1].when",
        "exactly one comparison",
    ),
    Case(
        "between reversed",
        _set("eligibility.inclusion.1.when.between", [64, 20]),
        "eligibility.inclusion[1].when",
        "low <= high",
    ),
    Case(
        "unknown rule category",
        _set("eligibility.exclusion.0.category", "redflag"),
        "eligibility.exclusion[0].category",
        "'red_flag'",
        "redflag",
    ),
    Case(
        "rule id used twice",
        _set("eligibility.exclusion.3.id", "health_plan"),
        "eligibility.exclusion[3].id",
        "unique across inclusion and exclusion",
    ),
    Case(
        "baseline not on day 0",
        _set("visits.0.day", 3),
        "visits[0].day",
        "must be on day 0",
        "day",
    ),
    Case(
        "visits out of order",
        _set("visits.2.day", 60),
        "visits[2].day",
        "in order of day",
        "day",
    ),
    Case(
        "overlapping windows",
        _set("visits.1.window.after", 100),
        "visits[2].window",
        "overlaps the window of week_10",
    ),
    Case(
        "baseline after randomization",
        _set("visits.0.window.after", 3),
        "visits[0].window.after",
        "window.after must be 0",
    ),
    Case(
        "unknown instrument",
        _append("visits.1.instruments", "oswestry"),
        "visits[1].instruments[7]",
        "is not a known instrument",
        "oswestry",
    ),
    Case(
        "instrument twice at a visit",
        _append("visits.1.instruments", "rdq"),
        "visits[1].instruments[7]",
        "is listed twice at visit week_10",
    ),
    Case(
        "ratio misses an arm",
        _delete("randomization.ratio.relaxation"),
        "randomization.ratio",
        "must give every arm a share; missing: relaxation",
    ),
    Case(
        "ratio names an unknown arm",
        _set("randomization.ratio.placebo", 1),
        "randomization.ratio.placebo",
        "is not an arm",
        "placebo",
    ),
    Case(
        "block size does not fit the ratio",
        _set("randomization.block_sizes", [3, 4]),
        "randomization.block_sizes[1]",
        "multiple of the ratio's total (3)",
    ),
    Case(
        "cutpoints and levels disagree",
        _set("randomization.strata.0.cutpoints", [8, 16]),
        "randomization.strata[0].levels",
        "2 cutpoints make 3 levels",
    ),
    Case(
        "stratum score not collected at baseline",
        _set("randomization.strata.0.baseline_score.instrument", "global_improvement"),
        "randomization.strata[0].baseline_score.instrument",
        "collected at the baseline visit",
        "global_improvement",
    ),
    Case(
        "categorical stratum leaves an answer out",
        _set(
            "randomization.strata.0",
            {
                "id": "sex",
                "label": "Sex",
                "question": "sex",
                "levels": [
                    {"id": "female", "label": "Female", "values": ["female"]},
                    {"id": "other", "label": "Other", "values": ["unknown"]},
                ],
            },
        ),
        "randomization.strata[0].levels[1].values",
        "must be one of the choices of question sex",
    ),
    Case(
        "outcome not collected at its visit",
        _set("outcomes.0.instrument", "pain_intensity"),
        "outcomes[0].visit",
        "does not collect pain_intensity",
    ),
    Case(
        "outcome with an unknown score",
        _set("outcomes.0.score", "mean"),
        "outcomes[0].score",
        "is not a score of rdq",
    ),
    Case("no primary outcome", _all_secondary, "outcomes", "role: primary"),
    Case(
        "unknown reference arm",
        _set("analysis.reference_arm", "placebo"),
        "analysis.reference_arm",
        "must be one of the arms",
        "reference_arm",
    ),
    Case(
        "covariate is not a question",
        _set("analysis.covariates", ["age", "bmi"]),
        "analysis.covariates[1]",
        "must be a screening question",
    ),
    Case(
        "threshold beyond the scale",
        _set("analysis.thresholds.rdq.minimal_important_change.value", 30),
        "analysis.thresholds.rdq.minimal_important_change.value",
        "larger than the whole range of any rdq score (24 points)",
    ),
    Case(
        "reliability above 1",
        _set("analysis.thresholds.rdq.reliability", {"value": 1.5, "source": "guess"}),
        "analysis.thresholds.rdq.reliability",
        "must be between 0 and 1, got 1.5",
    ),
    Case(
        "threshold without a source",
        _delete("analysis.thresholds.rdq.small_change.source"),
        "analysis.thresholds.rdq.small_change.source",
        "is required",
        "small_change",
    ),
    Case(
        "alpha too large",
        _set("analysis.alpha", 0.7),
        "analysis.alpha",
        "less than 0.5",
        "alpha",
    ),
    Case(
        "thresholds for an instrument not collected",
        _set("analysis.thresholds.peg", {}),
        "analysis.thresholds.peg",
        "does not collect",
    ),
    Case(
        "identifier with a trailing newline",
        _set("arms.1.id", "structural\n"),
        "arms[1].id",
        "must be an identifier",
    ),
    Case(
        "not a number in a range",
        _set("eligibility.inclusion.1.when.between", [float("nan"), 64]),
        "eligibility.inclusion[1].when.between[0]",
        "finite number",
    ),
    Case(
        "quoted number",
        _set("visits.1.day", "70"),
        "visits[1].day",
        "must be a whole number",
        "day",
    ),
    Case(
        "quoted yes for true",
        _set("arms.0.control", "yes"),
        "arms[0].control",
        "must be true or false",
        "control",
    ),
    Case(
        "first session shorter than the others",
        _set("arms.1.sessions.first_session_minutes", 30),
        "arms[1].sessions",
        "may not be shorter than minutes (60)",
    ),
    Case(
        "range outside the question's bounds",
        _set("eligibility.inclusion.1.when.between", [200, 640]),
        "eligibility.inclusion[1].when.between",
        "must be at most 120",
    ),
    Case(
        "cutpoint beyond the score",
        _set("randomization.strata.0.cutpoints", [30]),
        "randomization.strata[0].cutpoints[0]",
        "leaves a level no participant can fall in",
    ),
    Case(
        "no inclusion rule",
        _set("eligibility.inclusion", []),
        "eligibility.inclusion",
        "too few entries: needs at least 1",
    ),
    Case(
        "technique listed twice",
        _append("arms.2.techniques", "holding"),
        "arms[2].techniques[6]",
        "is listed twice for arm relaxation",
    ),
    Case(
        "value listed twice in 'in'",
        _set("eligibility.inclusion.2.when.all.1.in", ["every_day", "every_day"]),
        "eligibility.inclusion[2].when.all[1].in[1]",
        "is listed twice",
    ),
    Case(
        "format version as true",
        _set("lumbar_protocol", True),
        "lumbar_protocol",
        "must be a whole number",
    ),
    Case(
        "format version from the future",
        _set("lumbar_protocol", 2),
        "lumbar_protocol",
        "reads protocol format 1",
        "lumbar_protocol",
    ),
    Case(
        "message channel unknown",
        _set("messages.channel", "pigeon"),
        "messages.channel",
        "'email' or 'sms'",
        "channel",
    ),
    Case(
        "reminders out of order",
        _set("messages.reminders_after_days", [14, 7]),
        "messages.reminders_after_days[1]",
        "later than the one before",
    ),
    Case(
        "reminder after the window closes",
        _set("messages.reminders_after_days", [7, 40]),
        "messages.reminders_after_days",
        "would come after it closes",
        "reminders_after_days",
    ),
    Case(
        "last reminder before the window opens",
        _set("messages.last_days_before_close", 30),
        "messages.last_days_before_close",
        "before it opens",
        "last_days_before_close",
    ),
]


def _find(problems: tuple[Problem, ...], where: str, rule: str) -> Problem:
    for problem in problems:
        if problem.where == where and rule in problem.rule:
            return problem
    listed = "\n".join(f"  {problem.where}: {problem.rule}" for problem in problems)
    raise AssertionError(f"no problem at {where!r} with rule {rule!r}; got:\n{listed}")


def test_there_are_at_least_twenty_distinct_malformations() -> None:
    assert len({case.name for case in CASES}) == len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_malformed_protocol_names_field_rule_and_line(
    case: Case, reference_data: Data, write_protocol: Callable[[Data], Path]
) -> None:
    case.mutate(reference_data)
    path = write_protocol(reference_data)
    with pytest.raises(ProtocolError) as caught:
        load_protocol(path)
    error = caught.value
    assert error.source == str(path)
    problem = _find(error.problems, case.where, case.rule)
    assert problem.line is not None
    assert problem.hint, "every problem says what to do"
    if case.line_holds is not None:
        line_text = path.read_text().splitlines()[problem.line - 1]
        assert case.line_holds in line_text, f"line {problem.line} is {line_text!r}"
    message = str(error)
    assert f"{path}:{problem.line}: {case.where}" in message


@pytest.mark.parametrize("case", CASES[:5], ids=[case.name for case in CASES[:5]])
def test_protocol_check_exits_2_with_the_problem(
    case: Case, reference_data: Data, write_protocol: Callable[[Data], Path]
) -> None:
    case.mutate(reference_data)
    path = write_protocol(reference_data)
    result = CliRunner().invoke(app, ["protocol", "check", str(path)])
    assert result.exit_code == 2
    assert case.where in result.output
    assert case.rule in result.output


def test_every_problem_is_reported_at_once(
    reference_data: Data, write_protocol: Callable[[Data], Path]
) -> None:
    _set("analysis.reference_arm", "placebo")(reference_data)
    _append("visits.1.instruments", "oswestry")(reference_data)
    _set("randomization.block_sizes", [4])(reference_data)
    with pytest.raises(ProtocolError) as caught:
        load_protocol(write_protocol(reference_data))
    wheres = {problem.where for problem in caught.value.problems}
    assert {
        "analysis.reference_arm",
        "visits[1].instruments[7]",
        "randomization.block_sizes[0]",
    } <= wheres


def test_refused_entries_do_not_also_count_as_too_few(
    reference_data: Data, write_protocol: Callable[[Data], Path]
) -> None:
    # Two of three arms are wrong: the two errors are listed, not "too few arms" as well.
    _set("arms.1.sessions.planned", 10.0)(reference_data)
    _set("arms.2.control", "yes")(reference_data)
    with pytest.raises(ProtocolError) as caught:
        load_protocol(write_protocol(reference_data))
    assert [problem.where for problem in caught.value.problems] == [
        "arms[1].sessions.planned",
        "arms[2].control",
    ]


def test_a_union_value_gives_one_problem_naming_every_kind(
    reference_data: Data, write_protocol: Callable[[Data], Path]
) -> None:
    _set("eligibility.exclusion.0.when.is", float("nan"))(reference_data)
    with pytest.raises(ProtocolError) as caught:
        load_protocol(write_protocol(reference_data))
    (problem,) = caught.value.problems
    assert problem.where == "eligibility.exclusion[0].when.is"
    assert problem.rule == "must be one of: true or false; a finite number; text"


def test_every_broken_threshold_is_reported(
    reference_data: Data, write_protocol: Callable[[Data], Path]
) -> None:
    _set("analysis.thresholds.rdq.small_change.value", -2)(reference_data)
    _set("analysis.thresholds.rdq.minimal_important_percent.value", 300)(reference_data)
    with pytest.raises(ProtocolError) as caught:
        load_protocol(write_protocol(reference_data))
    assert {problem.where for problem in caught.value.problems} == {
        "analysis.thresholds.rdq.small_change",
        "analysis.thresholds.rdq.minimal_important_percent",
    }


def test_an_answer_listed_twice_in_a_level_is_refused(
    reference_data: Data, write_protocol: Callable[[Data], Path]
) -> None:
    reference_data["randomization"]["strata"][0] = {
        "id": "sex",
        "label": "Sex",
        "question": "sex",
        "levels": [
            {"id": "female", "label": "Female", "values": ["female", "female"]},
            {"id": "male", "label": "Male", "values": ["male"]},
        ],
    }
    with pytest.raises(ProtocolError) as caught:
        load_protocol(write_protocol(reference_data))
    problem = _find(
        caught.value.problems, "randomization.strata[0].levels[0].values", "is listed twice"
    )
    assert problem.received == "female"


def test_unknown_field_lists_the_fields_allowed_there(
    reference_data: Data, write_protocol: Callable[[Data], Path]
) -> None:
    _set("arms.1.sessions.minuts", 60)(reference_data)
    with pytest.raises(ProtocolError) as caught:
        load_protocol(write_protocol(reference_data))
    problem = _find(caught.value.problems, "arms[1].sessions.minuts", "is not a field")
    assert "minutes" in problem.hint
    assert "interval_days" in problem.hint


# ---------------------------------------------------------------- YAML text itself

YAML_CASES = [
    (
        "duplicate key",
        "lumbar_protocol: 1\ntrial:\n  id: a\n  id: b\n",
        "trial.id",
        "appears twice",
        4,
    ),
    ("bad indentation", "lumbar_protocol: 1\ntrial:\n  id: a\n title: b\n", "YAML syntax", "", 4),
    ("tab indentation", "lumbar_protocol: 1\ntrial:\n\tid: a\n", "YAML syntax", "", 3),
    (
        "merge key",
        "base: &b {id: a}\ntrial:\n  <<: *b\n",
        "trial",
        "merge keys",
        3,
    ),
    ("number as key", "lumbar_protocol: 1\n10: x\n", "document", "keys must be text", 2),
    (
        "python tag",
        "lumbar_protocol: !!python/object:os.system echo\n",
        "lumbar_protocol",
        "",
        1,
    ),
    ("a list, not a mapping", "- a\n- b\n", "document", "must be a mapping of sections", 1),
    ("empty file", "", "document", "must be a mapping of sections", 1),
]


@pytest.mark.parametrize(
    ("text", "where", "rule", "line"),
    [case[1:] for case in YAML_CASES],
    ids=[case[0] for case in YAML_CASES],
)
def test_yaml_errors_name_the_line(text: str, where: str, rule: str, line: int) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_protocol(text, "broken.yaml")
    problem = caught.value.problems[0]
    assert problem.where == where
    assert rule in problem.rule
    assert problem.line == line
    assert str(caught.value).startswith("the protocol is not")
    assert "broken.yaml" in str(caught.value)


def test_missing_file_is_a_protocol_error(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError, match="cannot read the protocol file"):
        load_protocol(tmp_path / "absent.yaml")


def test_file_that_is_not_utf8_is_a_protocol_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("trial: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ProtocolError, match="UTF-8"):
        load_protocol(path)
