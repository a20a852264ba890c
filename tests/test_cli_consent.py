"""``lumbar econsent``: the declared document, who must consent again, links, the check."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from lumbar.store.schema import Consent
from tests.clitools import Cli
from tests.operations.world import World, amended_world, eligible_answers

pytestmark = pytest.mark.integration

NAME = "Ada Example"


def enrolled(world: World) -> str:
    coord = world.as_("coord")
    number = coord.screen("SEA", eligible_answers(world.protocol)).screening_number
    coord.record_identity(number, name=NAME)
    coord.consent(number, "1.0", world.clock.today)
    study_id = coord.enrol(number)
    coord.close()
    return study_id


def test_econsent_lists_who_is_due_issues_a_link_and_checks_digests(
    database_url: str, tmp_path: Path
) -> None:
    # The CLI runs on the real clock, long after version 2.0 took effect (2026-02-04).
    world = amended_world(database_url, tmp_path)
    cli = Cli(world.url, world.key_file)
    study_id = enrolled(world)
    assert world.consent_documents is not None
    document = cli(
        "econsent", "document", "--version", "2.0",
        "--consent-documents", str(world.consent_documents), user="coord",
    )  # fmt: skip
    assert "version 2.0" in document
    assert "(must be yes)" in document
    missing = cli("econsent", "document", user="coord", code=2)
    assert "--consent-documents" in missing or "consent documents" in missing

    due = cli("econsent", "due", user="coord")
    assert study_id in due
    assert "2.0" in due
    shown = cli("econsent", "show", study_id, "--base-url", "https://t.example/", user="coord")
    assert "https://t.example/consent/lmc_" in shown
    assert "sent" in cli("econsent", "due", user="coord")
    assert "revoked" in cli("econsent", "revoke", study_id, user="coord")
    cli("econsent", "revoke", study_id, user="coord", code=2)  # nothing left to revoke
    assert "paper" in cli("econsent", "history", study_id, user="coord")
    assert "0 electronic consents checked" in cli("econsent", "verify", user="coord")
    cli("econsent", "due", user="ther", code=2)  # a therapist may not

    coord = world.as_("coord")
    coord.context.clock = lambda: world.clock.now.replace(year=2026, month=3)
    coord.record_electronic_consent(study_id, "2.0", {"understood": True}, NAME)
    with coord.db.write() as session:
        session.execute(update(Consent).where(Consent.method != "paper").values(version="2.1"))
    coord.close()
    checked = cli("econsent", "verify", user="coord", code=1)
    assert "does not verify" in checked
    assert "1 failed" in checked
    assert "CHANGED" in cli("econsent", "history", study_id, user="coord")
    assert NAME not in checked
