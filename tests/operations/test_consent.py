"""Electronic consent: the declared document, the typed name, the digest, consenting again."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from lumbar.errors import AccessError, OperationError
from lumbar.operations.authentication import SurveyLinkRefusedError
from lumbar.operations.consent import CONSENT_LINK_DAYS, normalise_name
from lumbar.operations.consent_link import ConsentLink, authenticate_consent
from lumbar.protocol import shipped_consent_documents, shipped_protocol
from lumbar.store.schema import AuditRecord, Consent, ConsentToken
from tests.operations.world import World, amended_world, eligible_answers

pytestmark = pytest.mark.integration

YES = {"understood": True, "voluntary": True, "contact_follow_up": True, "future_studies": False}
NAME = "Zoë  Exämple-Smith"


def screened(world: World, site: str = "SEA", coordinator: str = "coord") -> str:
    """An eligible person at ``site`` with a name in the vault, not yet consented."""
    trial = world.as_(coordinator)
    number = trial.screen(site, eligible_answers(world.protocol)).screening_number
    trial.record_identity(number, name=NAME)
    trial.close()
    return number


def consent_rows(world: World) -> list[Consent]:
    trial = world.as_("coord")
    with trial.db.read() as session:
        rows = list(session.execute(select(Consent).order_by(Consent.id)).scalars())
    trial.close()
    return rows


def test_names_compare_without_case_accents_or_spacing() -> None:
    assert normalise_name("  ZOE exAmple-smith ") == normalise_name(NAME)
    assert normalise_name("Zoe Example") != normalise_name(NAME)


def test_a_matching_typed_name_stores_one_verified_consent(world: World) -> None:
    number = screened(world)
    coord = world.as_("coord")
    document = coord.consent_document()
    assert document.version == "1.0"
    assert "EXAMPLE CONSENT DOCUMENT" in document.text
    record = coord.record_electronic_consent(number, "1.0", YES, "zoe example-SMITH")
    assert (record.method, record.taken_by, record.verified) == ("site", "coord", True)
    (row,) = consent_rows(world)
    assert row.document_sha256 == world.protocol.consent.documents[0].sha256  # type: ignore[union-attr]
    assert row.answers == YES
    assert row.name_sealed is not None
    assert b"Smith" not in row.name_sealed
    history = coord.consents(number)
    assert [(c.version, c.method, c.verified) for c in history] == [("1.0", "site", True)]
    assert coord.enrol(number).startswith("SEA-")  # an electronic consent enrols
    # The typed name is an identifier: no audit value holds it.
    with coord.db.read() as session:
        text = " ".join(
            f"{r.old} {r.new} {r.reason}" for r in session.execute(select(AuditRecord)).scalars()
        )
    assert "Smith" not in text
    assert "smith" not in text.lower()
    coord.close()


@pytest.mark.parametrize(
    ("version", "answers", "typed", "field"),
    [
        ("1.0", YES, "Someone Else", "typed_name"),
        ("1.0", {**YES, "voluntary": False}, NAME, "voluntary"),
        ("1.0", {k: v for k, v in YES.items() if k != "understood"}, NAME, "understood"),
        ("9.9", YES, NAME, "version"),
    ],
)
def test_a_wrong_name_answer_or_version_is_refused_and_stores_nothing(
    world: World, version: str, answers: dict[str, Any], typed: str, field: str
) -> None:
    number = screened(world)
    coord = world.as_("coord")
    with pytest.raises(OperationError) as refused:
        coord.record_electronic_consent(number, version, answers, typed)
    assert field in [problem.where for problem in refused.value.problems]
    assert typed not in str(refused.value)  # the typed name is never echoed
    assert consent_rows(world) == []
    coord.close()


def test_a_changed_document_file_is_refused(world: World, tmp_path: Path) -> None:
    folder = tmp_path / "documents"
    shutil.copytree(shipped_consent_documents(), folder)
    (file,) = folder.glob("*.txt")
    file.write_bytes(file.read_bytes().replace(b"voluntary", b"required"))
    world.consent_documents = folder
    number = screened(world)
    coord = world.as_("coord")
    with pytest.raises(OperationError, match="does not match the protocol") as refused:
        coord.record_electronic_consent(number, "1.0", YES, NAME)
    assert refused.value.problems[0].where == "document"
    with pytest.raises(OperationError, match="does not match the protocol"):
        coord.consent_document()
    assert consent_rows(world) == []
    coord.close()


def test_a_changed_row_no_longer_verifies(world: World) -> None:
    number = screened(world)
    coord = world.as_("coord")
    coord.record_electronic_consent(number, "1.0", YES, NAME)
    assert coord.verify_consents().intact
    with coord.db.write() as session:  # someone edits the database behind lumbar's back
        session.execute(update(Consent).values(answers={**YES, "future_studies": True}))
    assert [c.verified for c in coord.consents(number)] == [False]
    check = coord.verify_consents()
    assert check.checked == 1
    assert check.failed == ((number, consent_rows(world)[0].id),)
    coord.close()
    monitor = world.as_("monitor")
    assert not monitor.verify_audit().intact  # the trail's row images see it too
    monitor.close()


def test_paper_consent_must_name_a_declared_version(world: World) -> None:
    number = screened(world)
    coord = world.as_("coord")
    with pytest.raises(OperationError, match="unknown consent version"):
        coord.consent(number, "2.1", world.clock.today)
    coord.consent(number, "1.0", world.clock.today)
    assert [(c.method, c.verified) for c in coord.consents(number)] == [("paper", None)]
    coord.close()


def test_another_sites_participant_is_not_found(world: World) -> None:
    number = screened(world, "NYC", "coord_nyc")
    coord = world.as_("coord")
    with pytest.raises(OperationError, match="unknown participant"):
        coord.record_electronic_consent(number, "1.0", YES, NAME)
    with pytest.raises(OperationError, match="unknown participant"):
        coord.consents(number)
    coord.close()


def test_a_therapist_may_not_record_consent(world: World) -> None:
    number = screened(world)
    therapist = world.as_("ther")
    with pytest.raises(AccessError):
        therapist.record_electronic_consent(number, "1.0", YES, NAME)
    therapist.close()


# ---------------------------------------------------------------------- a new version


def enrolled_with_name(world: World, site: str = "SEA", coordinator: str = "coord") -> str:
    number = screened(world, site, coordinator)
    trial = world.as_(coordinator)
    trial.consent(number, "1.0", world.clock.today)
    study_id = trial.enrol(number)
    trial.close()
    return study_id


def test_a_new_version_asks_those_enrolled_to_consent_again(
    database_url: str, tmp_path: Path
) -> None:
    world = amended_world(database_url, tmp_path)
    first = enrolled_with_name(world)
    second = enrolled_with_name(world)
    gone = enrolled_with_name(world)
    other = enrolled_with_name(world, "NYC", "coord_nyc")
    coord = world.as_("coord")
    coord.withdraw(gone, "withdrew_consent", "moved", world.clock.today)
    assert coord.reconsent_due() == []  # 2.0 is not in effect yet
    world.clock.advance(31)
    due = coord.reconsent_due()
    assert [(d.study_id, d.consented_version, d.due_version, d.link) for d in due] == [
        (first, "1.0", "2.0", None),
        (second, "1.0", "2.0", None),
    ]
    assert other not in {d.study_id for d in due}  # another site's participant
    coord.record_electronic_consent(first, "2.0", {"understood": True}, NAME)
    link = coord.issue_consent_link(second)
    assert [(d.study_id, d.link) for d in coord.reconsent_due()] == [(second, "sent")]

    principal = authenticate_consent(world_context(coord), link.token)
    phone = ConsentLink(world_context(coord), principal)
    assert phone.open().version == "2.0"
    with pytest.raises(OperationError, match="does not match"):
        phone.submit({"understood": True}, "Not The Name")
    phone.submit({"understood": True}, NAME.upper())
    assert coord.reconsent_due() == []
    history = coord.consents(second)
    assert [(c.version, c.method, c.taken_by, c.verified) for c in history] == [
        ("1.0", "paper", "coord", None),
        ("2.0", "participant_link", None, True),
    ]
    with pytest.raises(SurveyLinkRefusedError) as used:
        authenticate_consent(world_context(coord), link.token)
    assert used.value.reason == "used"
    nyc = world.as_("coord_nyc")
    assert [d.study_id for d in nyc.reconsent_due()] == [other]
    nyc.close()
    coord.close()


def world_context(trial: Any) -> Any:
    return trial.context


def test_consent_links_forged_expired_revoked_change_nothing(
    database_url: str, tmp_path: Path
) -> None:
    world = amended_world(database_url, tmp_path)
    study_id = enrolled_with_name(world)
    world.clock.advance(31)
    coord = world.as_("coord")
    context = coord.context
    first = coord.issue_consent_link(study_id)
    assert len(first.token) > 40
    assert first.token.startswith("lmc_")
    second = coord.issue_consent_link(study_id)  # revokes the first
    forged = second.token[:-4] + ("AAAA" if not second.token.endswith("AAAA") else "BBBB")
    for token, reason in ((first.token, "revoked"), (forged, "forged"), ("lmc_short", "forged")):
        with pytest.raises(SurveyLinkRefusedError) as refused:
            authenticate_consent(context, token)
        assert refused.value.reason == reason
    principal = authenticate_consent(context, second.token)
    world.clock.advance(CONSENT_LINK_DAYS)
    with pytest.raises(SurveyLinkRefusedError) as expired:
        ConsentLink(context, principal).submit({"understood": True}, NAME)
    assert expired.value.reason == "expired"
    assert [link.status for link in coord.consent_links(study_id)] == ["revoked", "expired"]
    third = coord.issue_consent_link(study_id)
    assert coord.revoke_consent_link(study_id) == 1
    with pytest.raises(SurveyLinkRefusedError):
        authenticate_consent(context, third.token)
    with coord.db.read() as session:
        assert session.execute(select(func.count()).select_from(ConsentToken)).scalar_one() == 3
        assert session.execute(select(func.count()).select_from(Consent)).scalar_one() == 1
        hashes = session.execute(select(ConsentToken.token_hash)).scalars().all()
    assert third.token not in hashes
    assert hashlib.sha256(third.token.encode()).hexdigest() in hashes
    coord.close()


def test_a_link_to_a_version_no_longer_in_effect_opens_nothing(
    database_url: str, tmp_path: Path
) -> None:
    world = amended_world(database_url, tmp_path, third=True)
    study_id = enrolled_with_name(world)
    world.clock.advance(31)
    coord = world.as_("coord")
    link = coord.issue_consent_link(study_id)
    assert link.version == "2.0"
    world.clock.advance(10)  # 3.0 takes effect before the link is used
    principal = authenticate_consent(coord.context, link.token)
    with pytest.raises(SurveyLinkRefusedError, match="survey link refused") as refused:
        ConsentLink(coord.context, principal).submit({"understood": True}, NAME)
    assert refused.value.reason == "revoked"
    assert [c.version for c in coord.consents(study_id)] == ["1.0"]
    assert coord.issue_consent_link(study_id).version == "3.0"
    coord.close()


def test_only_the_version_in_effect_is_consented_to(database_url: str, tmp_path: Path) -> None:
    world = amended_world(database_url, tmp_path)
    number = screened(world)
    coord = world.as_("coord")
    with pytest.raises(OperationError, match="not the version in effect"):
        coord.record_electronic_consent(number, "2.0", {"understood": True}, NAME)
    world.clock.advance(31)
    with pytest.raises(OperationError, match="not the version in effect"):
        coord.record_electronic_consent(number, "1.0", YES, NAME)
    assert consent_rows(world) == []
    assert coord.consent_document().version == "2.0"
    coord.close()


def test_the_example_document_matches_the_shipped_protocol() -> None:
    protocol = shipped_protocol("massage-clbp")
    assert protocol.consent is not None
    for document in protocol.consent.documents:
        data = (shipped_consent_documents() / document.file).read_bytes()
        assert hashlib.sha256(data).hexdigest() == document.sha256
        assert b"synthetic" in data.lower()
    assert protocol.consent.current(dt.date(2026, 1, 1)) is protocol.consent.documents[-1]
