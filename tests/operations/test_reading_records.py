"""Reading back what is recorded about a participant: questionnaires with their edit
history, and treatment sessions (each through the user's scope)."""

from __future__ import annotations

import pytest

from lumbar.errors import AccessError, OperationError
from tests.operations.world import World

pytestmark = pytest.mark.integration


def treated(world: World) -> str:
    """A participant randomized to an arm with sessions (the list decides which arm)."""
    for _ in range(10):
        study_id = world.randomized()
        if world.protocol.arm(world.arm(study_id)).sessions.planned:
            return study_id
    raise AssertionError("ten participants in a row without sessions")


def test_a_recorded_questionnaire_reads_back_with_its_answers_scores_and_edit_history(
    world: World,
) -> None:
    study_id = world.enrolled()
    world.with_baseline(study_id, rdq_yes=8)
    coord = world.as_("coord")
    coord.edit_questionnaire(study_id, "baseline", "rdq", {"rdq_20": 1}, "paper form misread")
    recorded = coord.questionnaire(study_id, "baseline", "rdq")
    assert recorded is not None
    assert recorded.answers["rdq_20"] == 1
    assert recorded.view.scores["total"] == 9
    (edit,) = recorded.edits
    assert edit.by == "coord"
    assert edit.reason == "paper form misread"
    assert edit.old["answers"] == {"rdq_20": 0}
    assert edit.new["answers"] == {"rdq_20": 1}
    baseline = coord.questionnaires(study_id, "baseline")
    assert [view.instrument for view in baseline] == list(world.protocol.baseline.instruments)
    for view in baseline:  # each with its own scores
        one = coord.questionnaire(study_id, "baseline", view.instrument)
        assert one is not None
        assert view.scores == one.view.scores
    assert baseline[0].scores != baseline[1].scores
    assert coord.questionnaires(study_id) == baseline  # every visit: the baseline is all so far
    coord.close()


def test_a_questionnaire_not_recorded_reads_as_none_and_another_sites_as_unknown(
    world: World,
) -> None:
    study_id = world.enrolled()
    coord = world.as_("coord")
    assert coord.questionnaire(study_id, "baseline", "rdq") is None
    assert coord.questionnaires(study_id, "baseline") == []
    coord.close()
    world.with_baseline(study_id)
    other = world.as_("coord_nyc")
    with pytest.raises(OperationError, match="unknown participant"):
        other.questionnaire(study_id, "baseline", "rdq")
    other.close()


def test_the_therapist_reads_back_the_sessions_a_blinded_user_may_not(world: World) -> None:
    study_id = treated(world)
    ther = world.as_("ther")
    plan = ther.treatment_plan(study_id)
    ther.log_session(
        study_id, world.clock.today, 45, plan.techniques[:1], ["low_back"], notes="tender"
    )
    (session,) = ther.sessions(study_id)
    assert (session.number, session.minutes, session.therapist) == (1, 45, "ther")
    assert session.techniques == plan.techniques[:1]
    assert session.notes == "tender"
    ther.close()
    blinded = world.as_("coord")
    with pytest.raises(AccessError):
        blinded.sessions(study_id)
    blinded.close()


def test_one_participants_adverse_events_are_listed_for_an_unblinded_user(world: World) -> None:
    first, second = world.enrolled(), world.enrolled()
    coord = world.as_("coord")
    for study_id in (first, second):
        coord.report_adverse_event(
            study_id,
            "headache",
            world.clock.today,
            severity="mild",
            serious=False,
            relatedness="unlikely",
        )
    coord.close()
    unblinded = world.as_("coord_open")
    assert [event.study_id for event in unblinded.adverse_events(first)] == [first]
    assert len(unblinded.adverse_events()) == 2
    unblinded.close()
    other = world.as_("coord_nyc")
    with pytest.raises(AccessError):
        other.adverse_events(first)  # blinded first; unblinded at NYC it would be unknown
    other.close()
