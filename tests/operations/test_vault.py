"""Direct identifiers: sealed at rest, opened only for those allowed, never copied elsewhere.

Also the vault key: a wrong or exposed key is refused, a key file is never
overwritten, and a sealed value does not open outside the place it was sealed for.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import secrets
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import select, update

from lumbar.errors import AccessError, StoreError
from lumbar.operations import Trial
from lumbar.store.schema import AuditHead, AuditRecord, Base, Identity, Participant
from lumbar.store.vault import KEY_ENV, Keys, Vault, create_key_file, load_keys
from tests.operations.world import World, answers_for, eligible_answers, rdq_answers

NAME = "Zebulon Quixote-Marchetti"
CONTACT = "zq.marchetti@example.org, +1 206 555 0143"
NEW_CONTACT = "17 Larkspur Lane, Walla Walla"
BIRTH = dt.date(1971, 3, 14)
SECRETS = (NAME, CONTACT, NEW_CONTACT, BIRTH.isoformat())
NO_IDENTITY = ("ther", "assessor", "stat", "stat_open", "monitor")
"""Users whose role lacks the ``identity`` permission."""

integration = pytest.mark.integration
unit = pytest.mark.unit


# ---------------------------------------------------------------------- helpers


def ready(world: World, coord: Trial) -> tuple[str, str]:
    """A new SEA participant, identified, enrolled, with a complete baseline: (screening, study)."""
    screening = coord.screen("SEA", eligible_answers(world.protocol)).screening_number
    coord.record_identity(screening, name=NAME, contact=CONTACT, birth_date=BIRTH)
    coord.consent(screening, "1.0", world.clock.today)
    study_id = coord.enrol(screening)
    for instrument in world.protocol.baseline.instruments:
        answers = rdq_answers(8) if instrument == "rdq" else answers_for(instrument, 1)
        coord.record_questionnaire(
            study_id, "baseline", instrument, answers, completed_on=world.clock.today
        )
    return screening, study_id


def head(trial: Trial) -> tuple[int, str]:
    with trial.db.read() as session:
        row = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one()
        return row.seq, row.hash


def last_record(trial: Trial) -> AuditRecord:
    with trial.db.read() as session:
        return session.execute(
            select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(1)
        ).scalar_one()


def database_dump(trial: Trial) -> tuple[str, bytes]:
    """Every value of every table: as text, and every binary value concatenated."""
    texts: list[str] = []
    binary: list[bytes] = []
    with trial.db.read() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        binary.append(bytes(value))
                    else:
                        texts.append(repr(value))
    return "\n".join(texts), b"".join(binary)


def leaks(where: str | bytes) -> list[str]:
    """The identifiers found in ``where``."""
    if isinstance(where, bytes):
        return [secret for secret in SECRETS if secret.encode("utf-8") in where]
    return [secret for secret in SECRETS if secret in where]


def audit_text(trial: Trial) -> str:
    with trial.db.read() as session:
        return "\n".join(
            repr((r.actor, r.action, r.entity, r.entity_id, r.old, r.new, r.reason))
            for r in session.execute(select(AuditRecord).order_by(AuditRecord.seq)).scalars()
        )


# ---------------------------------------------------------------------- at rest, and who opens


@integration
def test_identifiers_are_sealed_at_rest_and_opened_only_for_coordinators_and_admins(
    world: World,
) -> None:
    coord = world.as_("coord")
    screening, study_id = ready(world, coord)
    coord.record_identity(study_id, contact=NEW_CONTACT)

    with coord.db.read() as session:
        identity = session.execute(select(Identity)).scalar_one()
    sealed = [identity.name_sealed, identity.contact_sealed, identity.birth_date_sealed]
    assert all(value is not None and len(value) > 28 for value in sealed)
    assert leaks(b"".join(value for value in sealed if value is not None)) == []
    text, binary = database_dump(coord)
    assert study_id in text  # the dump does see the data
    assert leaks(text) == []
    assert leaks(binary) == []
    if coord.db.backend == "sqlite":
        path = coord.db.sqlite_path
        assert path is not None
        files = [Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")]
        raw = b"".join(f.read_bytes() for f in files if f.exists())
        assert study_id.encode() in raw
        assert leaks(raw) == []

    for user in ("coord", "admin", "coord_open"):
        trial = world.as_(user)
        for reference in (study_id, screening):
            view = trial.identity(reference)
            assert (view.name, view.contact, view.birth_date) == (NAME, NEW_CONTACT, BIRTH)
            record = last_record(trial)
            assert (record.actor, record.action, record.entity, record.entity_id) == (
                user,
                "identity.read",
                "participant",
                study_id,
            )
            assert (record.old, record.new, record.reason) == (None, None, None)

    before = head(coord)
    for user in NO_IDENTITY:
        trial = world.as_(user)
        with pytest.raises(AccessError, match="may not record or open identifiers"):
            trial.identity(study_id)
        with pytest.raises(AccessError, match="may not record or open identifiers"):
            trial.record_identity(study_id, name="Someone Else")
    assert head(coord) == before


@integration
def test_identifiers_appear_nowhere_but_the_vault(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")  # SQL, parameters and rows
    coord, stat = world.as_("coord"), world.as_("stat")
    _, study_id = ready(world, coord)
    coord.record_identity(study_id, contact=NEW_CONTACT)
    coord.randomize(study_id)
    assert coord.identity(study_id).name == NAME
    coord.report_adverse_event(
        study_id,
        "soreness",
        world.clock.today,
        severity="mild",
        serious=False,
        relatedness="possible",
    )
    coord.withdraw(study_id, "discontinued_treatment", "moved away", world.clock.today)
    stat.export(tmp_path / "data.csv", "csv")
    stat.export(tmp_path / "data.parquet", "parquet")
    frames = [world.as_(user).dataset() for user in ("stat", "stat_open", "admin")]
    listings = [world.as_(user).participants() for user in ("coord", "admin", "monitor")]
    assert all(len(frame) == 4 for frame in frames)
    assert all(len(listing) == 1 for listing in listings)

    audit = audit_text(coord)
    assert '"fields":["name","contact","birth_date"]' in audit
    assert leaks(audit) == []
    for frame in frames:
        assert leaks(frame.to_csv()) == []
    assert leaks((tmp_path / "data.csv").read_bytes()) == []
    assert leaks((tmp_path / "data.parquet").read_bytes()) == []
    assert leaks(pd.read_parquet(tmp_path / "data.parquet").to_csv()) == []
    assert leaks(repr(listings)) == []

    logged = caplog.text + "\n".join(repr(r.args) for r in caplog.records)
    assert "INSERT INTO identity" in logged  # the log did capture the database traffic
    assert leaks(logged) == []


# ---------------------------------------------------------------------- the key


@integration
def test_a_wrong_or_exposed_key_is_refused(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    other = tmp_path / "other.key"
    create_key_file(other)
    with pytest.raises(StoreError, match="does not belong to this trial"):
        Trial.open(world.url, "admin", key_file=other)

    right = world.key_file.read_text(encoding="ascii").strip()
    wrong = Keys.new().text()
    monkeypatch.setenv(KEY_ENV, wrong)  # the environment wins over the right key file
    with pytest.raises(StoreError, match="does not belong to this trial"):
        Trial.open(world.url, "admin", key_file=world.key_file)
    monkeypatch.setenv(KEY_ENV, right)
    opened = Trial.open(world.url, "admin", key_file=other)
    assert [site.code for site in opened.sites()] == ["NYC", "SEA"]
    monkeypatch.delenv(KEY_ENV)

    for mode in (0o640, 0o604, 0o660, 0o644):
        world.key_file.chmod(mode)
        with pytest.raises(StoreError, match="readable by others"):
            Trial.open(world.url, "admin", key_file=world.key_file)
    world.key_file.chmod(0o600)
    assert Trial.open(world.url, "admin", key_file=world.key_file).sites()

    before = world.key_file.read_bytes()
    with pytest.raises(StoreError, match="already exists"):
        create_key_file(world.key_file)
    assert world.key_file.read_bytes() == before
    assert world.key_file.stat().st_mode & 0o777 == 0o600


@integration
def test_a_sealed_value_moved_to_another_place_does_not_open(world: World) -> None:
    coord = world.as_("coord")
    first, second = (coord.enrol(_consented(world, coord)) for _ in range(2))
    coord.record_identity(first, name="Ada Example", contact="ada@example.org")
    coord.record_identity(second, name="Bo Example", contact="bo@example.org")
    with coord.db.read() as session:
        ids = {
            str(study_id): number
            for study_id, number in session.execute(select(Participant.study_id, Participant.id))
        }
        sealed = {
            row.participant_id: (row.name_sealed, row.contact_sealed)
            for row in session.execute(select(Identity)).scalars()
        }

    def put(participant: str, **values: Any) -> None:
        with coord.db.engine.begin() as connection:
            connection.execute(
                update(Identity).where(Identity.participant_id == ids[participant]).values(values)
            )

    # Another participant's name, copied into the second's row.
    put(second, name_sealed=sealed[ids[first]][0])
    before = head(coord)
    with pytest.raises(StoreError, match=f"identity:{ids[second]}:name"):
        coord.identity(second)
    assert head(coord) == before  # a failed opening is not recorded as a reading
    assert coord.identity(first).name == "Ada Example"

    # The participant's own contact, copied into the name.
    put(second, name_sealed=sealed[ids[second]][1])
    with pytest.raises(StoreError, match="cannot be opened"):
        coord.identity(second)

    put(second, name_sealed=sealed[ids[second]][0])
    assert coord.identity(second).name == "Bo Example"


def _consented(world: World, coord: Trial) -> str:
    screening = coord.screen("SEA", eligible_answers(world.protocol)).screening_number
    coord.consent(screening, "1.0", world.clock.today)
    return screening


# ---------------------------------------------------------------------- Vault and load_key


def _key() -> bytes:
    return secrets.token_bytes(32)


@unit
def test_a_sealed_text_opens_with_its_key_and_context_only() -> None:
    vault = Vault(_key())
    for text in ("Ada Example", "", "Zoë Ørsted-Ñúñez 🙂"):
        sealed = vault.seal(text, "identity:1:name")
        assert vault.open(sealed, "identity:1:name") == text
        if text:
            assert text.encode() not in sealed
    sealed = vault.seal("Ada Example", "identity:1:name")
    assert sealed != vault.seal("Ada Example", "identity:1:name")  # a fresh nonce each time
    for context in ("identity:2:name", "identity:1:contact", ""):
        with pytest.raises(StoreError, match="cannot be opened"):
            vault.open(sealed, context)
    with pytest.raises(StoreError, match="cannot be opened"):
        Vault(_key()).open(sealed, "identity:1:name")
    for broken in (b"", sealed[:20], sealed[:-1], b"\x02" + sealed[1:]):
        with pytest.raises(StoreError):
            vault.open(broken, "identity:1:name")


@unit
def test_changing_any_byte_of_a_sealed_value_is_detected() -> None:
    vault = Vault(_key())
    sealed = vault.seal("1971-03-14", "identity:7:birth_date")
    for index in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[index] ^= 0x01
        with pytest.raises(StoreError):
            vault.open(bytes(tampered), "identity:7:birth_date")


@unit
def test_the_key_check_tells_the_right_key_from_a_wrong_one() -> None:
    key = _key()
    check = Vault(key).key_check()
    Vault(key).confirm(check)
    with pytest.raises(StoreError, match="does not belong to this trial"):
        Vault(_key()).confirm(check)
    for length in (0, 16, 31, 33):
        with pytest.raises(StoreError, match="must be 32 bytes"):
            Vault(bytes(length))


@unit
def test_codes_are_stable_distinct_and_depend_on_the_key() -> None:
    key = _key()
    vault = Vault(key)
    code = vault.code("structural")
    assert code == vault.code("structural") == Vault(key).code("structural")
    assert len(code) == 64
    assert int(code, 16) >= 0
    assert "structural" not in code
    assert vault.code("relaxation") != code
    assert Vault(_key()).code("structural") != code


def _keys_text(**keys: bytes) -> str:
    return " ".join(
        f"{name}: {base64.urlsafe_b64encode(key).decode()}" for name, key in keys.items()
    )


@unit
def test_the_keys_come_from_the_environment_before_the_key_file(tmp_path: Path) -> None:
    from_file, from_env = Keys.new(), Keys.new()
    key_file = tmp_path / "trial.key"
    create_key_file(key_file, from_file)
    encoded = from_env.text()
    assert load_keys(key_file, {KEY_ENV: encoded}) == from_env
    assert load_keys(None, {KEY_ENV: encoded}) == from_env
    one_line = " ".join(line for line in encoded.splitlines() if not line.startswith("#"))
    assert load_keys(None, {KEY_ENV: one_line}) == from_env
    assert load_keys(key_file, {}) == from_file
    assert load_keys(key_file, {KEY_ENV: ""}) == from_file  # set but empty: not set
    with pytest.raises(StoreError, match="no keys"):
        load_keys(None, {})
    with pytest.raises(StoreError, match="cannot read the key file"):
        load_keys(tmp_path / "missing.key", {})


@unit
def test_a_key_file_may_hold_some_of_the_keys(tmp_path: Path) -> None:
    """A statistician's copy without the identity key: the others still load."""
    keys = Keys.new()
    partial = Keys(randomization=keys.randomization, audit=keys.audit)
    assert load_keys(None, {KEY_ENV: partial.text()}) == partial
    assert partial.vault("identity") is None
    vault = partial.vault("audit")
    assert vault is not None
    assert vault.name == "audit"


@unit
def test_a_malformed_key_is_refused(tmp_path: Path) -> None:
    malformed = [
        "identity: %%%notbase64%%%",
        _keys_text(identity=bytes(16)),
        _keys_text(identity=bytes(33)),
        "audit: " + base64.urlsafe_b64encode(bytes(32)).decode()[:-4],
    ]
    key_file = tmp_path / "trial.key"
    for text in malformed:
        with pytest.raises(StoreError, match="must be URL-safe base64 of 32 random bytes"):
            load_keys(None, {KEY_ENV: text})
        key_file.write_text(text, "ascii")
        key_file.chmod(0o600)
        with pytest.raises(StoreError, match="must be URL-safe base64 of 32 random bytes"):
            load_keys(key_file, {})
    not_keys = {
        base64.urlsafe_b64encode(bytes(32)).decode(): "must hold lines",
        "ключ": "must hold lines",
        "": "must hold lines",
        _keys_text(vault=bytes(32)): "unknown key 'vault'",
        _keys_text(audit=bytes(32)) + " " + _keys_text(audit=bytes(32)): "the audit key twice",
    }
    for text, words in not_keys.items():
        with pytest.raises(StoreError, match=words):
            load_keys(None, {KEY_ENV: text or " x "})


@unit
def test_a_key_file_that_is_not_text_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "trial.key"
    key_file.write_bytes("ключ".encode() + b"\xff\n")
    key_file.chmod(0o600)
    with pytest.raises(StoreError, match="the key file"):
        load_keys(key_file, {})


@unit
def test_a_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    key_file = tmp_path / "trial.key"
    keys = create_key_file(key_file)
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert load_keys(key_file, {}) == keys
    with pytest.raises(StoreError, match="is never overwritten"):
        create_key_file(key_file)
    assert load_keys(key_file, {}) == keys
    os.chmod(key_file, 0o640)
    with pytest.raises(StoreError, match="readable by others"):
        load_keys(key_file, {})
