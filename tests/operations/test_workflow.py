"""A coordinator runs the reference trial: screening to follow-up, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import make_url

from lumbar.errors import AccessError, AnswerError, OperationError
from tests.operations.world import World, answers_for, eligible_answers, rdq_answers

pytestmark = pytest.mark.integration


def test_screening_stores_the_verdict_and_every_reason(world: World) -> None:
    coord = world.as_("coord")
    eligible = coord.screen("SEA", eligible_answers(world.protocol))
    assert (eligible.screening_number, eligible.status) == ("S00001", "eligible")
    refused = coord.screen(
        "SEA", eligible_answers(world.protocol, age=70, cancer=True, sciatica=True)
    )
    assert refused.status == "ineligible"
    assert set(refused.reasons) == {
        "does not meet: Aged 20 to 64",
        "excluded: Cancer",
        "excluded: Sciatica",
    }
    partial = coord.screen("SEA", {"age": 50})
    assert partial.status == "incomplete"
    assert "cancer" in partial.unanswered
    statuses = {view.screening_number: view.status for view in coord.participants()}
    assert statuses == {"S00001": "eligible", "S00002": "ineligible", "S00003": "incomplete"}


def test_screening_can_be_completed_later_with_a_reason(world: World) -> None:
    coord = world.as_("coord")
    partial = coord.screen("SEA", {"age": 50})
    rest = eligible_answers(world.protocol)
    with pytest.raises(OperationError, match="reason"):
        coord.update_screening(partial.screening_number, rest, reason=" ")
    done = coord.update_screening(partial.screening_number, rest, reason="second call")
    assert done.status == "eligible"


def test_invalid_screening_answers_store_nothing(world: World) -> None:
    coord = world.as_("coord")
    with pytest.raises(AnswerError, match="screening question age"):
        coord.screen("SEA", eligible_answers(world.protocol, age="forty"))
    assert coord.participants() == []


def test_enrolment_needs_eligibility_and_consent(world: World) -> None:
    coord = world.as_("coord")
    ineligible = coord.screen("SEA", eligible_answers(world.protocol, age=19))
    with pytest.raises(OperationError, match="only eligible people are consented"):
        coord.consent(ineligible.screening_number, "1.0", world.clock.today)
    eligible = coord.screen("SEA", eligible_answers(world.protocol))
    with pytest.raises(OperationError, match="enrolment needs consent"):
        coord.enrol(eligible.screening_number)
    coord.consent(eligible.screening_number, "1.0", world.clock.today)
    assert coord.enrol(eligible.screening_number) == "SEA-0001"
    with pytest.raises(OperationError, match="already enrolled"):
        coord.enrol(eligible.screening_number)


def test_consent_dates_are_checked(world: World) -> None:
    coord = world.as_("coord")
    screening = coord.screen("SEA", eligible_answers(world.protocol))
    tomorrow = world.clock.today + dt.timedelta(days=1)
    with pytest.raises(OperationError, match="must not be after today"):
        coord.consent(screening.screening_number, "1.0", tomorrow)
    with pytest.raises(OperationError, match="must not be before the screening date"):
        coord.consent(screening.screening_number, "1.0", world.clock.today - dt.timedelta(days=1))


def test_about_describes_the_trial_without_passwords(world: World) -> None:
    info = world.as_("coord").about()
    assert (info.id, info.protocol_hash) == (world.protocol.id, world.protocol.content_hash)
    assert info.sites == (("SEA", "Seattle"),)  # only the coordinator's own site
    assert not info.synthetic
    assert len(world.as_("monitor").about().sites) == 2
    password = make_url(world.url).password
    if password:
        assert str(password) not in info.database


def test_study_ids_count_per_site(world: World) -> None:
    assert world.enrolled("SEA") == "SEA-0001"
    assert world.enrolled("NYC", coordinator="coord_nyc") == "NYC-0001"
    assert world.enrolled("SEA") == "SEA-0002"


def test_randomization_needs_the_whole_baseline(world: World) -> None:
    study_id = world.enrolled()
    coord = world.as_("coord")
    coord.record_questionnaire(
        study_id, "baseline", "rdq", rdq_answers(10), completed_on=world.clock.today
    )
    with pytest.raises(OperationError, match="missing: bothersomeness"):
        coord.randomize(study_id)


def test_a_participant_is_randomized_once(world: World) -> None:
    study_id = world.randomized()
    coord = world.as_("coord")
    with pytest.raises(OperationError, match="randomized once only"):
        coord.randomize(study_id)


def test_stratum_follows_the_baseline_score(world: World) -> None:
    low = world.randomized(rdq_yes=5)
    high = world.randomized(rdq_yes=15)
    coord = world.as_("coord")
    assert coord.assignment(low).stratum == "baseline_rdq=rdq_under_12"
    assert coord.assignment(high).stratum == "baseline_rdq=rdq_12_or_more"


def test_questionnaires_are_validated_scored_and_deduplicated(world: World) -> None:
    study_id = world.enrolled()
    coord = world.as_("coord")
    with pytest.raises(AnswerError, match="rdq: item rdq_01"):
        coord.record_questionnaire(
            study_id,
            "baseline",
            "rdq",
            rdq_answers(3) | {"rdq_01": 2},
            completed_on=world.clock.today,
        )
    with pytest.raises(OperationError, match="is not collected at baseline"):
        coord.record_questionnaire(
            study_id,
            "baseline",
            "global_improvement",
            {"global_change": 2},
            completed_on=world.clock.today,
        )
    with pytest.raises(OperationError, match="unknown source"):
        coord.record_questionnaire(
            study_id,
            "baseline",
            "rdq",
            rdq_answers(3),
            completed_on=world.clock.today,
            source="fax",
        )
    view = coord.record_questionnaire(
        study_id, "baseline", "rdq", rdq_answers(3), completed_on=world.clock.today, source="paper"
    )
    assert view.scores == {"total": 3.0}
    with pytest.raises(OperationError, match="already recorded"):
        coord.record_questionnaire(
            study_id, "baseline", "rdq", rdq_answers(4), completed_on=world.clock.today
        )


def test_an_edit_needs_a_reason_and_keeps_the_old_value_in_the_audit(world: World) -> None:
    study_id = world.enrolled()
    coord = world.as_("coord")
    coord.record_questionnaire(
        study_id, "baseline", "rdq", rdq_answers(3), completed_on=world.clock.today
    )
    with pytest.raises(OperationError, match="reason"):
        coord.edit_questionnaire(study_id, "baseline", "rdq", {"rdq_10": 1}, reason="")
    edited = coord.edit_questionnaire(
        study_id, "baseline", "rdq", {"rdq_10": 1}, reason="transcription error on paper form"
    )
    assert edited.scores == {"total": 4.0}
    from sqlalchemy import select

    from lumbar.store.schema import AuditRecord

    with coord.db.read() as session:
        record = session.execute(
            select(AuditRecord).where(AuditRecord.action == "questionnaire.edit")
        ).scalar_one()
    assert record.reason == "transcription error on paper form"
    assert record.old is not None
    assert record.new is not None
    assert '"rdq_10":0' in record.old
    assert '"total":3.0' in record.old
    assert '"rdq_10":1' in record.new
    assert '"total":4.0' in record.new


def test_follow_up_comes_after_randomization(world: World) -> None:
    study_id = world.enrolled()
    world.with_baseline(study_id)
    coord = world.as_("coord")
    with pytest.raises(OperationError, match="follow-up visits come after randomization"):
        coord.record_questionnaire(
            study_id,
            "week_10",
            "bothersomeness",
            {"bothersomeness": 3},
            completed_on=world.clock.today,
        )
    coord.randomize(study_id)
    with pytest.raises(OperationError, match="baseline is completed before randomization"):
        coord.record_questionnaire(
            study_id, "baseline", "rdq", rdq_answers(1), completed_on=world.clock.today
        )


def test_schedule_statuses_move_with_time_and_flag_out_of_window(world: World) -> None:
    study_id = world.randomized()
    coord = world.as_("coord")

    def status(visit: str) -> str:
        return next(s.status for s in coord.schedule(study_id) if s.visit == visit)

    assert status("week_10") == "upcoming"
    world.clock.advance(64)  # day 64: the week-10 window opened on day 63
    assert status("week_10") == "due"
    assert [s.study_id for s in coord.due()] == [study_id]
    world.clock.advance(10)  # day 74: past the target day 70
    assert status("week_10") == "overdue"
    world.clock.advance(30)  # day 104: the window closed on day 91
    assert status("week_10") == "missed"
    assert coord.due() == []
    for instrument in world.protocol.visit("week_10").instruments:
        answers = rdq_answers(4) if instrument == "rdq" else answers_for(instrument, 1)
        coord.record_questionnaire(
            study_id, "week_10", instrument, answers, completed_on=world.clock.today
        )
    visit = next(s for s in coord.schedule(study_id) if s.visit == "week_10")
    assert (visit.status, visit.out_of_window) == ("complete", True)


def test_due_lists_only_your_sites(world: World) -> None:
    seattle = world.randomized("SEA")
    world.randomized("NYC", coordinator="coord_nyc")
    world.clock.advance(65)
    assert [s.study_id for s in world.as_("coord").due()] == [seattle]
    assert len(world.as_("monitor").due()) == 2
    assert [s.site for s in world.as_("monitor").due()] == ["NYC", "SEA"]


def test_sessions_are_checked_against_the_arm_and_count_towards_adherence(world: World) -> None:
    study_ids = [world.randomized() for _ in range(6)]
    arms = {study_id: world.arm(study_id) for study_id in study_ids}
    massage = next(s for s in study_ids if arms[s] != "usual_care")
    usual = next(s for s in study_ids if arms[s] == "usual_care")
    arm = world.protocol.arm(arms[massage])
    therapist = world.as_("ther")
    with pytest.raises(OperationError, match="arm without treatment sessions"):
        therapist.log_session(usual, world.clock.today, 60, ["effleurage"], ["low_back"])
    with pytest.raises(OperationError) as caught:
        therapist.log_session(massage, world.clock.today, 0, ["reiki"], ["spleen"])
    wheres = {problem.where for problem in caught.value.problems}
    assert {"minutes", "techniques", "body_regions"} <= wheres
    number = therapist.log_session(
        massage,
        world.clock.today,
        90,
        [arm.techniques[0]],
        ["low_back", "buttocks"],
        home_care=list(arm.home_care),
        notes="first session",
    )
    assert number == 1
    rows = {row.study_id: row for row in therapist.adherence()}
    assert (rows[massage].attended, rows[massage].planned) == (1, 10)
    assert rows[usual].planned == 0
    table = world.as_("stat_open").sessions_table()
    assert len(table) == 1
    session = table.iloc[0]
    assert (session["participant"], session["arm"], session["day"]) == (massage, arms[massage], 0)
    assert session["techniques"] == [arm.techniques[0]]
    assert "notes" not in table.columns  # free text stays out of analysis tables
    with pytest.raises(AccessError, match="blinded"):
        world.as_("stat").sessions_table()


def test_adverse_events_and_withdrawals(world: World) -> None:
    study_id = world.randomized()
    coord = world.as_("coord")
    with pytest.raises(OperationError) as caught:
        coord.report_adverse_event(
            study_id,
            "soreness",
            world.clock.today,
            severity="awful",
            serious=False,
            relatedness="maybe",
        )
    assert {p.where for p in caught.value.problems} == {"severity", "relatedness"}
    event = coord.report_adverse_event(
        study_id,
        "increased back pain after session",
        world.clock.today,
        severity="moderate",
        serious=False,
        relatedness="probable",
    )
    updated = coord.update_adverse_event(event.id, outcome="recovered", reason="phone follow-up")
    assert updated.outcome == "recovered"
    events = world.as_("stat_open").adverse_event_table()
    assert events.to_dict("records") == [
        {
            "participant": study_id,
            "arm": world.as_("coord_open").assignment(study_id).arm,
            "onset_day": 0,
            "severity": "moderate",
            "serious": False,
            "relatedness": "probable",
            "outcome": "recovered",
        }
    ]
    with pytest.raises(AccessError, match="blinded"):
        world.as_("monitor").adverse_event_table()
    coord.withdraw(study_id, "lost_to_follow_up", "no answer to five calls", world.clock.today)
    with pytest.raises(OperationError, match="already has"):
        coord.withdraw(study_id, "withdrew_consent", "asked", world.clock.today)
    world.clock.advance(70)
    assert {s.status for s in coord.schedule(study_id)} == {"withdrawn"}
    assert [view.status for view in coord.participants()] == ["lost_to_follow_up"]


def test_dataset_has_one_row_per_participant_and_visit(world: World) -> None:
    study_id = world.randomized(rdq_yes=10)
    coord = world.as_("coord")
    world.clock.advance(70)
    coord.record_questionnaire(
        study_id, "week_10", "rdq", rdq_answers(6), completed_on=world.clock.today
    )
    frame = world.as_("stat").dataset()
    assert len(frame) == 4
    assert list(frame["visit"]) == ["baseline", "week_10", "week_26", "week_52"]
    week10 = frame[frame["visit"] == "week_10"].iloc[0]
    assert week10["rdq_total"] == 6
    assert week10["rdq_total_baseline"] == 10
    assert week10["day"] == 70
    assert week10["age"] == 45
    assert week10["sex"] == "female"
    assert week10["stratum_baseline_rdq"] == "rdq_under_12"
    assert not bool(week10["synthetic"])
    assert frame["arm"].str.startswith("group ").all()  # the statistician is blinded


def test_a_visit_is_recorded_whole_or_not_at_all(world: World) -> None:
    study_id = world.enrolled()
    coord = world.as_("coord")
    good = {"rdq": rdq_answers(5), "bothersomeness": {"bothersomeness": 6}}
    with pytest.raises(AnswerError, match="bothersomeness: item bothersomeness"):
        coord.record_visit(
            study_id,
            "baseline",
            {**good, "bothersomeness": {"bothersomeness": 11}},
            completed_on=world.clock.today,
        )
    # The failed attempt stored nothing: rdq can still be recorded.
    views = coord.record_visit(study_id, "baseline", good, completed_on=world.clock.today)
    assert [view.instrument for view in views] == ["rdq", "bothersomeness"]
    with pytest.raises(OperationError, match="already recorded"):
        coord.record_visit(
            study_id, "baseline", {"rdq": rdq_answers(1)}, completed_on=world.clock.today
        )


def test_one_participant_and_the_counts_agree_with_the_list(world: World) -> None:
    coord = world.as_("coord")
    today = world.clock.today
    for answers in (eligible_answers(world.protocol), {"age": 50}):
        coord.screen("SEA", answers)
    coord.screen("SEA", eligible_answers(world.protocol, age=70))
    consented = coord.screen("SEA", eligible_answers(world.protocol)).screening_number
    coord.consent(consented, "1.0", today)
    coord.consent(consented, "1.0", today)  # two consents: still one participant
    world.enrolled()
    for kinds in (
        (),
        ("discontinued_treatment",),
        ("withdrew_consent",),
        ("discontinued_treatment", "lost_to_follow_up"),
    ):
        study_id = world.randomized()
        for kind in kinds:
            coord.withdraw(study_id, kind, "moved away", today)
    world.enrolled("NYC", "coord_nyc")  # another site's: neither listed nor counted
    listed = coord.participants()
    assert {view.status for view in listed} == {
        *("eligible", "incomplete", "ineligible", "consented", "enrolled", "randomized"),
        *("discontinued_treatment", "withdrew_consent", "lost_to_follow_up"),
    }
    for view in listed:
        assert coord.participant(view.screening_number) == view
        if view.study_id is not None:
            assert coord.participant(view.study_id) == view
    counts: dict[str, dict[str, int]] = {}
    for view in listed:
        counts.setdefault(view.site, {}).setdefault(view.status, 0)
        counts[view.site][view.status] += 1
    assert coord.participant_counts() == counts
    with pytest.raises(OperationError, match="unknown participant"):
        coord.participant("NYC-0001")
