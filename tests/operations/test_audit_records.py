"""Listing the audit trail for review: each filter narrows, pages go newest first."""

from __future__ import annotations

import datetime as dt

import pytest

from lumbar.errors import AccessError, OperationError
from tests.operations.world import World

pytestmark = pytest.mark.integration


def test_records_come_newest_first_in_pages(world: World) -> None:
    monitor = world.as_("monitor")
    first = monitor.audit_records(limit=3)
    second = monitor.audit_records(offset=3, limit=3)
    seqs = [record.seq for record in first.records + second.records]
    assert seqs == sorted(seqs, reverse=True)
    assert len(set(seqs)) == 6
    assert first.more


def test_each_filter_narrows_the_records(world: World) -> None:
    study_id = world.enrolled()
    other = world.enrolled("NYC", "coord_nyc")
    world.clock.advance(3)
    admin = world.as_("admin")
    admin.set_active("coord_nyc", False, "left the study")
    stat = world.as_("stat")

    by_actor = stat.audit_records(actor="coord_nyc", limit=500).records
    assert by_actor
    assert {record.actor for record in by_actor} == {"coord_nyc"}

    by_action = stat.audit_records(action="staff.deactivate").records
    assert [(record.action, record.entity_id) for record in by_action] == [
        ("staff.deactivate", "coord_nyc")
    ]
    assert by_action[0].reason == "left the study"
    family = stat.audit_records(action="staff", limit=500).records
    assert {record.action for record in family} >= {"staff.add", "staff.deactivate"}
    assert all(record.action.startswith("staff.") for record in family)

    later = stat.audit_records(since=world.clock.today, limit=500).records
    assert [record.action for record in later] == ["staff.deactivate"]
    earlier = stat.audit_records(until=world.clock.today - dt.timedelta(days=1), limit=500)
    assert "staff.deactivate" not in {record.action for record in earlier.records}

    about = stat.audit_records(participant=study_id, limit=500).records
    assert {record.action for record in about} >= {"screening.record", "participant.enrol"}
    assert all(other not in (record.entity_id, record.new or "") for record in about)
    assert all(other not in (record.new or "") for record in about)


def test_a_role_without_the_audit_permission_is_refused(world: World) -> None:
    with pytest.raises(AccessError):
        world.as_("coord").audit_records()


def test_dates_in_the_wrong_order_are_refused_at_the_field(world: World) -> None:
    with pytest.raises(OperationError) as raised:
        world.as_("monitor").audit_records(since=dt.date(2026, 2, 1), until=dt.date(2026, 1, 1))
    assert raised.value.problems[0].where == "until"


def test_staff_bound_to_some_sites_are_refused_the_records(world: World) -> None:
    admin = world.as_("admin")
    admin.add_staff("monitor_nyc", "monitor", ["NYC"])
    with pytest.raises(AccessError):
        world.as_("monitor_nyc").audit_records()
