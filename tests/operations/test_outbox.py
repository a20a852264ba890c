"""A serious adverse event is queued, in its own unit of work, as a notice for the monitors."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

import lumbar.operations.safety
from lumbar.errors import AccessError, OperationError
from lumbar.operations.context import Unit
from lumbar.operations.outbox import queue_serious_adverse_event
from lumbar.store.schema import AdverseEvent, AuditRecord, OutboxMessage, Participant
from tests.operations.test_access import snapshot
from tests.operations.world import World

pytestmark = pytest.mark.integration


def _event(world: World, study_id: str, *, serious: bool, description: str = "fainted") -> int:
    coordinator = world.as_("coord" if study_id.startswith("SEA") else "coord_nyc")
    event = coordinator.report_adverse_event(
        study_id,
        description,
        world.clock.today,
        severity="severe",
        serious=serious,
        relatedness="possible",
    )
    coordinator.close()
    return event.id


def test_a_serious_event_is_queued_for_the_monitors_of_its_site_and_nothing_else_is(
    world: World,
) -> None:
    seattle = world.randomized("SEA")
    new_york = world.randomized("NYC", coordinator="coord_nyc")
    admin = world.as_("admin")
    admin.add_staff("monitor_sea", "monitor", ["SEA"])
    admin.add_staff("monitor_nyc", "monitor", ["NYC"])
    _event(world, seattle, serious=False)
    serious = _event(world, seattle, serious=True, description="admitted to hospital overnight")
    assert admin.notifications() != []

    everywhere = world.as_("monitor").notifications()
    (notice,) = everywhere
    assert (notice.kind, notice.site, notice.study_id) == ("serious_adverse_event", "SEA", seattle)
    assert notice.subject == f"adverse_event:{serious}"
    assert notice.details == {
        "adverse_event": serious,
        "onset_date": world.clock.today.isoformat(),
        "severity": "severe",
    }
    assert (notice.status, notice.acknowledged_by) == ("queued", None)
    # The notice carries no free text: the description can reveal the arm.
    assert "hospital" not in repr(notice)
    assert world.as_("monitor_sea").notifications() == everywhere
    assert world.as_("monitor_nyc").notifications() == []  # another site's
    # A monitor who joins the site later finds the notice waiting.
    admin.add_staff("monitor_late", "monitor", ["SEA"])
    assert world.as_("monitor_late").notifications(waiting=True) == everywhere
    # Roles it is not addressed to may not read notifications at all.
    for user in ("coord", "ther", "assessor", "stat"):
        with pytest.raises(AccessError):
            world.as_(user).notifications()
    assert new_york  # the other site's participant has no notice
    with world.as_("admin").db.read() as session:
        actions = session.execute(select(AuditRecord.action).order_by(AuditRecord.seq)).scalars()
        assert list(actions).count("notification.queue") == 1


def test_acknowledging_a_notice_is_done_once_audited_and_only_at_the_monitors_sites(
    world: World,
) -> None:
    seattle = world.randomized("SEA")
    admin = world.as_("admin")
    admin.add_staff("monitor_sea", "monitor", ["SEA"])
    admin.add_staff("monitor_nyc", "monitor", ["NYC"])
    _event(world, seattle, serious=True)
    (notice,) = world.as_("monitor_sea").notifications()

    # Another site's monitor cannot acknowledge it, and learns nothing of it.
    before = snapshot(admin)
    with pytest.raises(OperationError) as caught:
        world.as_("monitor_nyc").acknowledge_notification(notice.id)
    assert caught.value.summary == "unknown notification"
    assert seattle not in str(caught.value)
    assert snapshot(admin) == before

    done = world.as_("monitor_sea").acknowledge_notification(notice.id)
    assert (done.status, done.acknowledged_by) == ("acknowledged", "monitor_sea")
    assert done.acknowledged_at == world.clock()
    assert world.as_("monitor").notifications(waiting=True) == []
    assert world.as_("monitor").notifications()[0].acknowledged_by == "monitor_sea"

    before = snapshot(admin)
    with pytest.raises(OperationError) as again:
        world.as_("monitor").acknowledge_notification(notice.id)
    assert again.value.problems[0].rule == "is already acknowledged"
    assert snapshot(admin) == before
    records = admin.audit_records(action="notification.acknowledge").records
    assert any(r.actor == "monitor_sea" and r.entity == "outbox" for r in records)
    assert admin.verify_audit().intact


def test_an_event_and_its_notice_are_stored_together_or_not_at_all(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    seattle = world.randomized("SEA")
    real = queue_serious_adverse_event

    def queue_then_fail(unit: Unit, *args: Any) -> OutboxMessage:
        real(unit, *args)
        raise OperationError("the notice could not be queued", [])

    monkeypatch.setattr(lumbar.operations.safety, "queue_serious_adverse_event", queue_then_fail)
    admin = world.as_("admin")
    before = snapshot(admin)
    with pytest.raises(OperationError):
        _event(world, seattle, serious=True)
    assert snapshot(admin) == before
    monkeypatch.setattr(lumbar.operations.safety, "queue_serious_adverse_event", real)
    event = _event(world, seattle, serious=True)
    with admin.db.read() as session:
        (message,) = session.execute(select(OutboxMessage)).scalars()
        participant = session.get(Participant, message.participant_id)
        assert participant is not None
        assert participant.study_id == seattle
        assert session.get(AdverseEvent, event) is not None
