"""Answer files to fill in for a protocol: screening, and a visit's questionnaires.

:func:`screening_template` writes every eligibility question of a protocol as a
YAML key with a blank value (not answered) below a comment with its label and
allowed answers; questions the analysis adjusts for or randomization stratifies
by are marked, since randomization refuses without them. Filled in, the file
goes to ``lumbar screening add --answers``. :func:`visit_template` does the same
for every questionnaire a visit collects, one mapping per instrument, for
``lumbar questionnaire visit --answers``.

>>> from lumbar.protocol import shipped_protocol
>>> template = screening_template(shipped_protocol("massage-clbp"))
>>> for line in template.splitlines()[8:14]:
...     print(line)
# Is a member of the participating health plan: yes or no
health_plan_member:
<BLANKLINE>
# Age in years: a whole number from 0 to 120 years (needed before randomization: the analysis
#   adjusts for it)
age:
"""

from __future__ import annotations

from collections.abc import Mapping

from lumbar.errors import Problem, ProtocolError
from lumbar.instruments import INSTRUMENTS, Instrument
from lumbar.instruments.template import FILL_IN, comment, header_lines, item_lines
from lumbar.protocol.model import Protocol, Question

__all__ = ["allowed_screening_answers", "screening_template", "visit_template"]


def screening_template(protocol: Protocol) -> str:
    """A fillable YAML file with every eligibility question of ``protocol``."""
    needed = randomization_questions(protocol)
    lines = [
        f"# Screening answers for {protocol.id} (protocol {protocol.version})",
        *comment(protocol.trial.title),
        "#",
        f"# {FILL_IN}",
        "# yes/no questions take yes or no; a choice takes one of the ids listed.",
        "# Then: lumbar screening add --site SITE --answers FILE",
        "# Answers given later: lumbar screening update NUMBER --answers FILE --reason WHY",
    ]
    for question in protocol.eligibility.questions:
        text = f"{question.label}: {allowed_screening_answers(question)}"
        if question.id in needed:
            text += f" (needed before randomization: {needed[question.id]})"
        lines += ["", *comment(text), f"{question.id}:"]
    return "\n".join(lines) + "\n"


def allowed_screening_answers(question: Question) -> str:
    """The answers a screening question accepts, in words."""
    if question.type == "yes_no":
        return "yes or no"
    if question.type == "choice":
        choices = [f"{choice.id} ({choice.label})" for choice in question.choices]
        return "one of " + ", ".join(choices)
    return question.expected().removeprefix("give ")


def randomization_questions(protocol: Protocol) -> dict[str, str]:
    """Screening questions randomization needs answered, with why."""
    questions = {question.id for question in protocol.eligibility.questions}
    needed = {
        covariate: "the analysis adjusts for it"
        for covariate in protocol.analysis.covariates
        if covariate in questions
    }
    for factor in protocol.randomization.strata:
        if factor.question is not None:
            needed[factor.question] = "randomization is stratified by it"
    return needed


def visit_template(
    protocol: Protocol, visit_id: str, instruments: Mapping[str, Instrument] | None = None
) -> str:
    """A fillable YAML file with every questionnaire of one visit, by instrument.

    ``instruments`` may replace registry instruments by name (to show licensed wording).
    """
    try:
        visit = protocol.visit(visit_id)
    except KeyError:
        raise ProtocolError(
            "unknown visit",
            [
                Problem(
                    "visit",
                    f"is not a visit of {protocol.id}",
                    visit_id,
                    "the visits are: " + ", ".join(v.id for v in protocol.visits),
                )
            ],
        ) from None
    lines = [
        *comment(f"{visit.label} questionnaires of {protocol.id}: " + ", ".join(visit.instruments)),
        f"# {FILL_IN}",
        f"# Then: lumbar questionnaire visit STUDY_ID {visit.id} --answers FILE",
    ]
    strata = {
        factor.baseline_score.instrument: factor.label
        for factor in protocol.randomization.strata
        if factor.baseline_score is not None and visit.id == protocol.baseline.id
    }
    for name in visit.instruments:
        instrument = (instruments or {}).get(name) or INSTRUMENTS.get(name)
        lines += ["", *header_lines(instrument)]
        if name in strata:
            lines += comment(
                f"Needed before randomization: randomization is stratified by {strata[name]}."
            )
        lines += [f"{name}:", *item_lines(instrument, "  ")]
    return "\n".join(lines) + "\n"
