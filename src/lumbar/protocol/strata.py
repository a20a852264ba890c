"""Strata: which randomization stratum a participant falls in. Pure functions."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping

from lumbar.errors import AnswerError, Problem
from lumbar.instruments import Scores
from lumbar.protocol.eligibility import check_screening_answers
from lumbar.protocol.model import Protocol, Randomization, StratumFactor

__all__ = ["all_strata", "assign_stratum", "stratum_key"]


def all_strata(randomization: Randomization) -> tuple[dict[str, str], ...]:
    """Every stratum (one level of each factor), in a stable order.

    With no factors there is one stratum, the empty mapping.
    """
    factors = randomization.strata
    combinations = itertools.product(*(factor.levels for factor in factors))
    return tuple(
        {factor.id: level.id for factor, level in zip(factors, combination, strict=True)}
        for combination in combinations
    )


def stratum_key(levels: Mapping[str, str]) -> str:
    """A stable text key for a stratum: ``factor=level`` pairs joined by ``;``.

    The stratum of a trial without factors has the key ``all``.
    """
    if not levels:
        return "all"
    return ";".join(f"{factor}={level}" for factor, level in levels.items())


def assign_stratum(
    protocol: Protocol,
    screening_answers: Mapping[str, object],
    baseline_scores: Mapping[str, Scores],
) -> dict[str, str]:
    """The level of every stratification factor for one participant.

    ``baseline_scores`` maps an instrument name to its scored baseline answers.
    Raises :class:`AnswerError` when an answer or score the strata need is missing.
    """
    answers = check_screening_answers(protocol.eligibility, screening_answers)
    levels: dict[str, str] = {}
    problems: list[Problem] = []
    for factor in protocol.randomization.strata:
        value = _factor_value(factor, answers, baseline_scores)
        if value is None:
            problems.append(_missing(factor))
            continue
        levels[factor.id] = _level_of(factor, value)
    if problems:
        raise AnswerError("the stratum cannot be decided", problems)
    return levels


def _factor_value(
    factor: StratumFactor,
    answers: Mapping[str, object],
    baseline_scores: Mapping[str, Scores],
) -> object:
    if factor.question is not None:
        return answers.get(factor.question)
    source = factor.baseline_score
    assert source is not None
    scores = baseline_scores.get(source.instrument)
    if scores is None:
        return None
    value = scores.primary if source.score is None else scores[source.score]
    return value.value


def _level_of(factor: StratumFactor, value: object) -> str:
    if factor.cutpoints:
        assert isinstance(value, int | float)
        return factor.levels[bisect.bisect_right(factor.cutpoints, value)].id
    for level in factor.levels:
        for accepted in level.values:
            same_kind = isinstance(accepted, bool) == isinstance(value, bool)
            if same_kind and accepted == value:
                return level.id
    raise AssertionError(f"protocol checks guarantee a level for {value!r}")  # pragma: no cover


def _missing(factor: StratumFactor) -> Problem:
    if factor.question is not None:
        return Problem(
            f"stratification factor {factor.id}",
            f"needs the answer to screening question {factor.question}",
            hint="record the answer before randomizing",
        )
    source = factor.baseline_score
    assert source is not None
    return Problem(
        f"stratification factor {factor.id}",
        f"needs the baseline {source.instrument} score",
        hint="complete the baseline questionnaire before randomizing",
    )
