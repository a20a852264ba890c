"""The follow-up dashboard's numbers: completion by visit, site and arm, and whom to call.

A small trial built here, its expected counts worked out by hand beside each assertion.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from lumbar.errors import OperationError
from lumbar.operations.transports import FileTransport
from tests.operations.world import World, answers_for, rdq_answers

pytestmark = pytest.mark.integration


def _complete(world: World, study_id: str, visit: str) -> None:
    trial = world.as_("coord" if study_id.startswith("SEA") else "coord_nyc")
    answers = {
        instrument: rdq_answers(4) if instrument == "rdq" else answers_for(instrument, 1)
        for instrument in world.protocol.visit(visit).instruments
    }
    trial.record_visit(study_id, visit, answers, completed_on=world.clock.today)
    trial.close()


def _trial(world: World) -> tuple[str, str, str, str]:
    """Three at Seattle and one at New York, all randomized on day 0; on day 70 (week 10's
    window opened on day 63) the first Seattle participant answers week 10 and the third
    withdraws consent."""
    first, second, third = (world.randomized("SEA") for _ in range(3))
    new_york = world.randomized("NYC", coordinator="coord_nyc")
    world.clock.advance(70)
    _complete(world, first, "week_10")
    coordinator = world.as_("coord")
    coordinator.withdraw(third, "withdrew_consent", "moved away", world.clock.today)
    coordinator.close()
    return first, second, third, new_york


def _rates(completions: object) -> dict[tuple[str, str], tuple[int, int]]:
    return {(c.visit, c.group): (c.complete, c.due) for c in completions}  # type: ignore[attr-defined]


def test_completion_counts_complete_of_due_by_visit_and_site_at_the_user_s_sites(
    world: World,
) -> None:
    first, _second, third, new_york = _trial(world)
    everyone = world.as_("stat").follow_up()
    # week 10: due = first, second (Seattle) and New York's = 3 (the third withdrew before
    # the window closed without answering: no longer expected); complete = first = 1.
    assert _rates(everyone.completion) == {
        ("week_10", "all"): (1, 3),
        ("week_26", "all"): (0, 0),  # opens on day 161
        ("week_52", "all"): (0, 0),
    }
    assert everyone.completion[0].rate == pytest.approx(1 / 3)
    assert everyone.completion[1].rate is None
    assert _rates(everyone.by_site) == {
        ("week_10", "NYC"): (0, 1),
        ("week_10", "SEA"): (1, 2),
        ("week_26", "NYC"): (0, 0),
        ("week_26", "SEA"): (0, 0),
        ("week_52", "NYC"): (0, 0),
        ("week_52", "SEA"): (0, 0),
    }
    # A Seattle coordinator: Seattle's participants only, overall included.
    mine = world.as_("coord").follow_up()
    assert _rates(mine.completion)["week_10", "all"] == (1, 2)
    assert {c.group for c in mine.by_site} == {"SEA"}
    assert new_york not in repr(mine)
    # The day asked about counts: on day 62 week 10's window has not opened.
    before = world.as_("stat").follow_up(on=world.clock.today - dt.timedelta(days=8))
    assert _rates(before.completion)["week_10", "all"] == (0, 0)
    assert third not in {c.study_id for c in everyone.to_call}
    assert first not in repr(mine.to_call)


def test_completion_by_arm_only_for_an_unblinded_user(world: World) -> None:
    first, second, _third, new_york = _trial(world)
    arms = {study_id: world.arm(study_id) for study_id in (first, second, new_york)}
    blinded = world.as_("stat").follow_up()
    assert blinded.by_arm is None
    text = repr(blinded).lower()
    assert not any(arm.id in text or arm.label.lower() in text for arm in world.protocol.arms)
    unblinded = world.as_("stat_open").follow_up()
    assert unblinded.by_arm is not None
    expected: dict[str, list[int]] = {arm.id: [0, 0] for arm in world.protocol.arms}
    for study_id, arm in arms.items():
        expected[arm][1] += 1
        expected[arm][0] += int(study_id == first)
    got = {c.group: [c.complete, c.due] for c in unblinded.by_arm if c.visit == "week_10"}
    assert got == expected
    assert {c.label for c in unblinded.by_arm} == {arm.label for arm in world.protocol.arms}


def test_whom_to_call_lists_open_windows_closing_soon_or_with_no_reminder_left(
    world: World, tmp_path: Path
) -> None:
    first, second, third, new_york = _trial(world)
    # Day 70: week 10 closes on day 91, 21 days away; no message went yet.
    assert world.as_("stat").follow_up().to_call == ()
    admin = world.as_("admin")
    admin.record_identity(second, contact="second@example.org")
    world.clock.advance(18)  # day 88: every message of week 10 is due, the last one included
    admin.send_messages(FileTransport(tmp_path / "out"), link_base="https://t.example/s/")
    admin.close()
    # Within 7 days (3 left): the two still expected and not complete.
    calls = world.as_("stat").follow_up().to_call
    assert [(c.study_id, c.visit, c.days_left) for c in calls] == sorted(
        [(second, "week_10", 3), (new_york, "week_10", 3)]
    )
    by_id = {call.study_id: call for call in calls}
    assert by_id[second].link == "sent"  # the last reminder carried a new link
    assert (by_id[second].last_message, by_id[second].last_message_status) == ("last", "sent")
    assert by_id[new_york].link is None  # no address: nothing went, no link was issued
    assert by_id[new_york].last_message_status == "skipped"
    # Not closing soon by a window of 0 days, but every reminder is used up.
    exhausted = world.as_("stat").follow_up(closing_within=0).to_call
    assert {c.study_id for c in exhausted} == {second, new_york}
    assert all(c.reminders_exhausted and not c.closing_soon for c in exhausted)
    # A site's coordinator is told only of their own site's participants.
    mine = world.as_("coord").follow_up().to_call
    assert [c.study_id for c in mine] == [second]
    assert first not in repr(calls)
    assert third not in repr(calls)
    assert "second@example.org" not in repr(calls)


def test_a_negative_look_ahead_is_refused_naming_it(world: World) -> None:
    with pytest.raises(OperationError) as refused:
        world.as_("coord").follow_up(closing_within=-1)
    assert refused.value.problems[0].where == "closing_within"
