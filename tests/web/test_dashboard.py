"""The dashboard: recruitment over time, by site and stratum, and follow-up by visit.

The counts come from one operation (``Trial.progress``), scoped to the user's sites
and with no arm; the page shows them.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient

from lumbar.operations import Principal, Trial
from tests.operations.world import World, answers_for, rdq_answers

pytestmark = pytest.mark.integration


def follow_up(world: World, study_id: str, visit: str) -> None:
    trial = world.as_("coord" if study_id.startswith("SEA") else "coord_nyc")
    answers = {
        instrument: rdq_answers(4) if instrument == "rdq" else answers_for(instrument, 1)
        for instrument in world.protocol.visit(visit).instruments
    }
    trial.record_visit(study_id, visit, answers, completed_on=world.clock.today)
    trial.close()


def test_progress_counts_randomizations_and_visits_at_the_user_s_sites_only(
    world: World,
) -> None:
    seattle = [world.randomized("SEA"), world.randomized("SEA", rdq_yes=20)]
    world.randomized("NYC", coordinator="coord_nyc")
    world.clock.advance(70)  # week 10 is due
    follow_up(world, seattle[0], "week_10")
    mine = world.as_("coord").progress()
    everyone = world.as_("stat").progress()
    assert mine.total == 2
    assert everyone.total == 3
    assert mine.by("site") == {"SEA": 2}
    assert everyone.by("site") == {"NYC": 1, "SEA": 2}
    assert sum(mine.by("stratum").values()) == 2
    assert len(mine.by("stratum")) == 2  # a low and a high baseline RDQ
    month = (world.clock.today - dt.timedelta(days=70)).strftime("%Y-%m")
    assert mine.by_month() == [(month, 2, 2)]
    week_10 = dict(mine.visits)["week_10"]
    assert week_10.get("complete") == 1
    assert week_10.get("due", 0) + week_10.get("overdue", 0) == 1
    assert mine.planned == world.protocol.trial.planned_participants


def test_the_dashboard_shows_recruitment_against_the_plan_and_follow_up_by_visit(
    coordinator: TestClient, world: World
) -> None:
    for _ in range(2):
        world.randomized("SEA")
    world.randomized("NYC", coordinator="coord_nyc")
    text = coordinator.get("/").text
    planned = world.protocol.trial.planned_participants
    assert f"Randomized: <strong>2</strong> of {planned} planned" in text
    assert "Randomized by month" in text
    assert "Randomized by stratum" in text
    assert re.search(r"<th scope=\"row\">SEA</th><td class=\"num\">2</td>", text)
    assert ">NYC<" not in text  # another site's counts are not the coordinator's
    assert "week 10" in text
    context = coordinator.app.state.context  # type: ignore[attr-defined]
    arms = {arm.id for arm in Trial(context, Principal.operator("stat")).protocol.arms}
    main = text.split("<main", 1)[1]
    assert not any(arm in main for arm in arms)


def test_the_dashboard_counts_participants_by_site_and_status_as_the_list_shows_them(
    coordinator: TestClient, world: World
) -> None:
    for _ in range(2):
        world.randomized("SEA")
    world.randomized("NYC", coordinator="coord_nyc")
    coord = world.as_("coord")
    coord.screen("SEA", {"age": 50})  # incomplete
    statuses = sorted(view.status for view in coord.participants())
    assert statuses == ["incomplete", "randomized", "randomized"]
    coord.close()
    text = coordinator.get("/").text
    row = '<td class="num">1</td><td class="num">2</td></tr>'
    assert '<th scope="col">incomplete</th><th scope="col">randomized</th></tr>' in text
    assert f'<tr><th scope="row">SEA</th>{row}' in text
    assert f'<tfoot><tr><th scope="row">All</th>{row}</tfoot>' in text
