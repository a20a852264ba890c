"""The protocol model: the shipped reference trial, identity (hash), immutability, lookups."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from lumbar.errors import ProtocolError
from lumbar.protocol import (
    Protocol,
    load_protocol,
    parse_protocol,
    resolve_protocol,
    shipped_protocol,
    shipped_protocol_names,
)

pytestmark = pytest.mark.unit


def test_reference_trial_ships_with_lumbar() -> None:
    assert "massage-clbp" in shipped_protocol_names()


def test_reference_trial_has_the_published_design(reference: Protocol) -> None:
    # Cherkin et al. 2011: three arms, ten weekly sessions, follow-up at 10, 26, 52 weeks.
    assert [arm.id for arm in reference.arms] == ["usual_care", "structural", "relaxation"]
    assert [arm.control for arm in reference.arms] == [True, False, False]
    for arm_id in ("structural", "relaxation"):
        sessions = reference.arm(arm_id).sessions
        assert (sessions.planned, sessions.interval_days, sessions.frequency) == (10, 7, "weekly")
    assert reference.arm("usual_care").sessions.planned == 0
    assert [visit.day for visit in reference.visits] == [0, 70, 182, 364]
    assert [(o.instrument, o.visit) for o in reference.primary_outcomes] == [
        ("rdq", "week_10"),
        ("bothersomeness", "week_10"),
    ]
    assert reference.analysis.reference_arm == "usual_care"
    assert reference.analysis.covariates == ("age", "sex")
    assert reference.randomization.ratio == {"usual_care": 1, "structural": 1, "relaxation": 1}


def test_reference_eligibility_has_red_flags_specific_causes_and_nih_chronicity(
    reference: Protocol,
) -> None:
    categories = {rule.category for rule in reference.eligibility.exclusion}
    assert {"red_flag", "specific_cause", "comorbidity", "treatment_history"} <= categories
    chronic = next(r for r in reference.eligibility.inclusion if r.category == "chronicity")
    assert chronic.when.questions() == {"pain_duration", "pain_frequency"}


def test_hash_ignores_formatting_comments_key_order_and_written_defaults(
    reference: Protocol, reference_data: dict[str, Any], write_protocol: Callable[..., Path]
) -> None:
    # Re-dump with sorted keys, no comments, flow style everywhere, and write a default out.
    reference_data["arms"][1]["control"] = False
    reference_data["analysis"]["alpha"] = 0.05
    text = yaml.safe_dump(reference_data, sort_keys=True, default_flow_style=True, width=1000)
    reformatted = parse_protocol(text)
    assert reformatted.content_hash == reference.content_hash
    assert reformatted == reference


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("trial", "version"), "1.1"),
        (("visits", 1, "window", "after"), 20),
        (("randomization", "block_sizes"), [3, 9]),
        (("arms", 1, "label"), "Structural massage therapy"),
    ],
)
def test_hash_changes_with_any_change_of_content(
    reference: Protocol, reference_data: dict[str, Any], path: tuple[Any, ...], value: Any
) -> None:
    node: Any = reference_data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    changed = Protocol.model_validate(reference_data)
    assert changed.content_hash != reference.content_hash


def test_hash_is_pinned_for_the_shipped_protocol(reference: Protocol) -> None:
    # A change to the shipped file or to hashing must be deliberate: update this value
    # (and say so in the changelog) when the reference protocol really changes.
    assert reference.content_hash == (
        "33e6901eed73587f644c479bc68c3af5bb7f99d0d69fee1cfc31f41c270b4017"
    )


def test_protocol_is_frozen(reference: Protocol) -> None:
    with pytest.raises(pydantic.ValidationError):
        reference.trial.version = "2"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        reference.arms[0].label = "Other"  # type: ignore[misc]


def test_model_validate_runs_the_cross_checks(reference_data: dict[str, Any]) -> None:
    reference_data["analysis"]["reference_arm"] = "placebo"
    with pytest.raises(ProtocolError, match=r"analysis\.reference_arm"):
        Protocol.model_validate(reference_data)


def test_json_round_trip_gives_the_same_protocol(reference: Protocol) -> None:
    again = Protocol.model_validate_json(reference.model_dump_json(by_alias=True))
    assert again == reference
    assert again.content_hash == reference.content_hash


def test_thresholds_merge_protocol_over_instrument_defaults(reference: Protocol) -> None:
    rdq = reference.thresholds_for("rdq")
    assert rdq.minimal_important_change is not None
    assert rdq.minimal_important_change.value == 5
    assert rdq.small_change is not None
    assert rdq.small_change.value == 2
    # Not set by the protocol: the instrument's published default shows through.
    assert rdq.reliability is not None
    assert rdq.reliability.value == pytest.approx(0.53)
    assert "Davidson" in rdq.reliability.source


def test_lookups(reference: Protocol) -> None:
    assert reference.baseline.id == "baseline"
    assert [visit.id for visit in reference.follow_up_visits] == ["week_10", "week_26", "week_52"]
    assert reference.visit("week_26").earliest_day == 161
    assert reference.question("age").type == "integer"
    assert [instrument.name for instrument in reference.instruments()][:2] == [
        "rdq",
        "bothersomeness",
    ]
    with pytest.raises(KeyError):
        reference.arm("placebo")


def test_resolve_takes_a_name_or_a_path(
    reference: Protocol, reference_data: dict[str, Any], write_protocol: Callable[..., Path]
) -> None:
    assert resolve_protocol("massage-clbp") == reference
    path = write_protocol(reference_data)
    assert resolve_protocol(str(path)) == reference
    assert load_protocol(path) == reference


def test_unknown_shipped_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ProtocolError, match="massage-clbp"):
        shipped_protocol("massage")


def test_reference_messages_are_planned_inside_each_window(reference: Protocol) -> None:
    # The reference protocol's addition: invitation, reminders after 7 and 14 days, and a
    # last one 3 days before the window closes. Week 10's window is days 63 to 91.
    assert reference.messages is not None
    assert reference.messages.channel == "email"
    week_10 = reference.visit("week_10")
    planned = [(m.id, m.day) for m in reference.messages.plan(week_10)]
    assert planned == [("invitation", 63), ("reminder_1", 70), ("reminder_2", 77), ("last", 88)]
    for visit in reference.follow_up_visits:
        for message in reference.messages.plan(visit):
            assert visit.timing(message.day).window == "in_window"


def test_the_reference_protocol_adds_a_per_session_rating(reference: Protocol) -> None:
    rating = reference.session_rating
    assert rating is not None
    assert rating.instruments == ("bothersomeness", "pain_intensity")
    assert rating.required is False
    assert "Addition to the published design" in rating.note


@pytest.mark.parametrize(
    ("change", "where", "rule"),
    [
        ({"instruments": ["rdq"]}, "session_rating.instruments[0]", "single-item 0-10 rating"),
        ({"instruments": ["nothing"]}, "session_rating.instruments[0]", "single-item 0-10"),
        (
            {"instruments": ["pain_intensity", "pain_intensity"]},
            "session_rating.instruments[1]",
            "listed twice",
        ),
    ],
)
def test_a_session_rating_names_single_item_0_to_10_ratings_once(
    reference_data: dict[str, Any], change: dict[str, Any], where: str, rule: str
) -> None:
    reference_data["session_rating"] |= change
    with pytest.raises(ProtocolError) as caught:
        Protocol.model_validate(reference_data)
    assert [(p.where, rule in p.rule) for p in caught.value.problems] == [(where, True)]


def test_a_session_rating_needs_an_arm_with_sessions(reference_data: dict[str, Any]) -> None:
    for arm in reference_data["arms"]:
        arm["sessions"] = {"planned": 0}
        arm.pop("techniques", None)
        arm.pop("home_care", None)
    with pytest.raises(ProtocolError, match="needs an arm with planned sessions"):
        Protocol.model_validate(reference_data)
