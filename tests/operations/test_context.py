"""One context, many principals: a request-sized Trial costs no database work to make."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from lumbar.errors import AccessError
from lumbar.operations import Context, Principal, Trial
from tests.operations.world import World

pytestmark = pytest.mark.integration


def test_a_trial_over_an_open_context_reads_nothing_until_it_is_used(world: World) -> None:
    context = Context.open(world.url, key_file=world.key_file, clock=world.clock)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(context.db.engine, "before_cursor_execute", count)
    try:
        engine, protocol = context.db.engine, context.protocol
        trials = [Trial(context, Principal(name, "web")) for name in ("coord", "stat") * 500]
        assert statements == []  # no engine, key or protocol read again
        assert all(t.db.engine is engine and t.protocol is protocol for t in trials)
        assert [p.site for p in trials[0].participants()] == []
        assert len(statements) <= 4  # the user's scope, the sites and the participants
        trials[0].close()  # a shared context stays open for the next request
        assert trials[1].participants() == []
    finally:
        event.remove(context.db.engine, "before_cursor_execute", count)
        context.close()


def test_each_unit_loads_the_principal_afresh(world: World) -> None:
    context = Context.open(world.url, key_file=world.key_file, clock=world.clock)
    try:
        coord = Trial(context, Principal("coord", "web"))
        assert coord.participants() == []
        Trial(context, Principal("admin", "web")).set_active("coord", False, "left")
        with pytest.raises(AccessError, match="not an active member of staff"):
            coord.participants()
    finally:
        context.close()
