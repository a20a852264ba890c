"""A small trial world for operation tests: the reference protocol, two sites, one user per role.

The ``world`` fixture is registered in tests/operations/conftest.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lumbar.instruments import INSTRUMENTS
from lumbar.operations import Trial, create_trial
from lumbar.protocol import Protocol, shipped_consent_documents, shipped_protocol

START = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


class Clock:
    """A clock tests move by hand."""

    def __init__(self, start: dt.datetime = START):
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, days: int) -> None:
        self.now += dt.timedelta(days=days)

    @property
    def today(self) -> dt.date:
        return self.now.date()


def eligible_answers(protocol: Protocol, **overrides: Any) -> dict[str, Any]:
    answers: dict[str, Any] = {
        q.id: False for q in protocol.eligibility.questions if q.type == "yes_no"
    }
    answers.update(
        health_plan_member=True,
        recent_primary_care_visit=True,
        nonspecific_diagnosis=True,
        physician_willing=True,
        near_therapist=True,
        age=45,
        sex="female",
        pain_duration="years_1_to_5",
        pain_frequency="every_day",
    )
    answers.update(overrides)
    return answers


def answers_for(instrument: str, level: int = 0) -> dict[str, Any]:
    """Complete answers: choice items take their option at ``level``, numbers ``level``."""
    definition = INSTRUMENTS.get(instrument)
    answers: dict[str, Any] = {}
    for item in definition.items:
        if item.only_if is not None:
            continue
        response = item.response
        if response.kind == "choice":
            codes = [option.code for option in response.options]
            answers[item.id] = codes[min(level, len(codes) - 1)]
        else:
            answers[item.id] = min(float(level), response.highest)
            if response.kind == "integer":
                answers[item.id] = int(answers[item.id])
    if instrument == "disability_days":
        answers["bed_days"] = min(answers["bed_days"], answers["restricted_days"])
    return answers


def rdq_answers(yes: int) -> dict[str, Any]:
    return {f"rdq_{n:02d}": 1 if n <= yes else 0 for n in range(1, 25)}


@dataclass
class World:
    url: str
    key_file: Path
    clock: Clock
    protocol: Protocol
    consent_documents: Path | None = None

    def as_(self, username: str) -> Trial:
        return Trial.open(
            self.url,
            username,
            key_file=self.key_file,
            clock=self.clock,
            consent_documents=self.consent_documents,
        )

    def arm(self, study_id: str) -> str:
        """The arm a participant was randomized to, as an unblinded statistician sees it."""
        trial = self.as_("stat_open")
        arm = trial.assignment(study_id).arm
        trial.close()
        assert arm is not None
        return arm

    def enrolled(self, site: str = "SEA", coordinator: str = "coord", **answers: Any) -> str:
        trial = self.as_(coordinator)
        screening = trial.screen(site, eligible_answers(self.protocol, **answers))
        trial.consent(screening.screening_number, "1.0", self.clock.today)
        study_id = trial.enrol(screening.screening_number)
        trial.close()
        return study_id

    def with_baseline(
        self, study_id: str, rdq_yes: int = 8, coordinator: str = "coord", bother: int = 1
    ) -> None:
        trial = self.as_(coordinator)
        for instrument in self.protocol.baseline.instruments:
            answers = rdq_answers(rdq_yes) if instrument == "rdq" else answers_for(instrument, 1)
            if instrument == "bothersomeness":
                answers = {"bothersomeness": bother}
            trial.record_questionnaire(
                study_id, "baseline", instrument, answers, completed_on=self.clock.today
            )
        trial.close()

    def randomized(self, site: str = "SEA", rdq_yes: int = 8, coordinator: str = "coord") -> str:
        study_id = self.enrolled(site, coordinator)
        self.with_baseline(study_id, rdq_yes, coordinator)
        trial = self.as_(coordinator)
        trial.randomize(study_id)
        trial.close()
        return study_id


STAFF = [
    ("coord", "coordinator", ["SEA"], False),
    ("coord_nyc", "coordinator", ["NYC"], False),
    ("coord_open", "coordinator", ["SEA"], True),
    ("ther", "therapist", ["SEA"], None),
    ("assessor", "outcome_assessor", ["SEA"], False),
    ("stat", "statistician", [], False),
    ("stat_open", "statistician", [], True),
    ("monitor", "monitor", [], False),
]


def build_world(
    database_url: str,
    tmp_path: Path,
    *,
    synthetic: bool = False,
    protocol: Protocol | None = None,
) -> World:
    protocol = protocol or shipped_protocol("massage-clbp")
    key_file = tmp_path / "trial.key"
    clock = Clock()
    create_trial(
        protocol,
        database_url,
        admin="admin",
        key_file=key_file,
        seed=20260105,
        clock=clock,
        synthetic=synthetic,
    )
    built = World(database_url, key_file, clock, protocol, shipped_consent_documents())
    admin = built.as_("admin")
    admin.add_site("SEA", "Seattle")
    admin.add_site("NYC", "New York")
    for username, role, sites, unblinded in STAFF:
        admin.add_staff(
            username,
            role,
            sites,
            all_sites=not sites,
            unblinded=unblinded,
            reason="needs arms for this test" if unblinded is not False else None,
        )
    admin.grant("coord", "emergency_unblind", "the site's emergency contact")
    admin.close()
    return built


def amended_world(database_url: str, tmp_path: Path, *, third: bool = False) -> World:
    """The reference trial with a version 2.0 of the consent document, effective in 30 days
    (``third``: and a version 3.0, effective in 40 days)."""
    folder = tmp_path / "documents"
    shutil.copytree(shipped_consent_documents(), folder)
    text = b"EXAMPLE CONSENT DOCUMENT, version 2.0 (synthetic): a new visit is added.\n"
    (folder / "consent-2.0.txt").write_bytes(text)
    reference = shipped_protocol("massage-clbp")
    data = reference.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    data["consent"]["documents"].append(
        {
            "version": "2.0",
            "effective": "2026-02-04",
            "file": "consent-2.0.txt",
            "sha256": hashlib.sha256(text).hexdigest(),
            "questions": [{"id": "understood", "text": "I have read it.", "required": True}],
        }
    )
    if third:
        (folder / "consent-3.0.txt").write_bytes(text.replace(b"2.0", b"3.0"))
        data["consent"]["documents"].append(
            {
                "version": "3.0",
                "effective": "2026-02-14",
                "file": "consent-3.0.txt",
                "sha256": hashlib.sha256(text.replace(b"2.0", b"3.0")).hexdigest(),
            }
        )
    world = build_world(database_url, tmp_path, protocol=Protocol.model_validate(data))
    world.consent_documents = folder
    return world
