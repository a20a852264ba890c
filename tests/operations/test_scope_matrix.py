"""Every operation, as every role, at every site: nothing out of site, no arm to the blinded.

The one access scope (lumbar.operations.scope) promises that a user sees only
participants of their own sites, and that a blinded user receives no arm and
nothing that reveals one. This test calls every public operation of ``Trial``
as every user of a two-site trial, against participants of both sites, and
searches everything that comes back (return values, data frames, exported
files, error messages) for the other site's participants and, for blinded
users, for arms, arm labels and the techniques that tell arms apart. A new
operation without a case here fails the test.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from lumbar.errors import LumbarError
from lumbar.operations import Trial
from lumbar.operations.transports import FileTransport
from lumbar.operations.trial import Operation
from tests.operations.world import World, answers_for, eligible_answers, rdq_answers

pytestmark = pytest.mark.integration

USERS = (
    *("admin", "coord", "coord_nyc", "coord_open", "ther", "ther_nyc", "assessor"),
    *("stat", "stat_open", "stat_sea", "monitor_nyc"),
)
SITE_OF = {"coord": "SEA", "coord_open": "SEA", "ther": "SEA", "assessor": "SEA"}
SITE_OF.update(coord_nyc="NYC", ther_nyc="NYC", stat_sea="SEA", monitor_nyc="NYC")
UNBLINDED = {"coord_open", "ther", "ther_nyc", "stat_open"}
CONSENT_QUESTIONS = ("understood", "voluntary", "contact_follow_up", "future_studies")
NOT_OPERATIONS = {"open", "check_key", "close", "protocol", "db", "clock", "authorize"}
"""Members of Trial that are plumbing, not operations on the trial's data."""


@dataclass
class Site:
    """One site's participants, as the test made them."""

    randomized: str
    waiting: str
    screening: str
    event: int
    notification: int
    name: str


def _ready(world: World, trial: Trial, site: str) -> str:
    screening = trial.screen(site, eligible_answers(world.protocol))
    trial.consent(screening.screening_number, "1.0", world.clock.today)
    study_id = trial.enrol(screening.screening_number)
    for instrument in world.protocol.baseline.instruments:
        answers = rdq_answers(6) if instrument == "rdq" else answers_for(instrument, 1)
        trial.record_questionnaire(
            study_id, "baseline", instrument, answers, completed_on=world.clock.today
        )
    return study_id


def _site(world: World, admin: Trial, code: str) -> Site:
    randomized = _ready(world, admin, code)
    admin.randomize(randomized)
    name = f"Person Of {code.title()}"
    admin.record_identity(randomized, name=name)
    event = admin.report_adverse_event(
        randomized, "sore back", world.clock.today, severity="severe", serious=True,
        relatedness="possible",
    )  # fmt: skip
    arm = world.arm(randomized)
    if arm != "usual_care":
        therapist = world.as_(f"ther_{code.lower()}")
        technique = world.protocol.arm(arm).techniques[0]
        therapist.log_session(randomized, world.clock.today, 60, [technique], ["low_back"])
    waiting = _ready(world, admin, code)
    screening = admin.screen(code, {"age": 30}).screening_number
    (notification,) = (n for n in admin.notifications() if n.study_id == randomized)
    return Site(randomized, waiting, screening, event.id, notification.id, name)


def _operations(world: World, target: Site, tmp_path: Path) -> dict[str, Callable[[Trial], object]]:
    """One call of every operation, aimed at ``target``'s participants."""
    today = world.clock.today
    protocol = world.protocol
    return {
        "about": lambda t: t.about(),
        "verify_audit": lambda t: t.verify_audit(),
        "audit_records": lambda t: t.audit_records(limit=500),
        "add_site": lambda t: t.add_site("ZZZ", "Nowhere"),
        "sites": lambda t: t.sites(),
        "add_staff": lambda t: t.add_staff("newbie", "monitor", all_sites=True),
        "staff": lambda t: t.staff(),
        "me": lambda t: t.me(),
        "progress": lambda t: t.progress(),
        "follow_up": lambda t: t.follow_up(),
        "grant": lambda t: t.grant("monitor", "unblinded", "test"),
        "revoke": lambda t: t.revoke("monitor", "unblinded", "test"),
        "countersign": lambda t: t.countersign(1),
        "grants": lambda t: t.grants(),
        "set_active": lambda t: t.set_active("monitor", False, "test"),
        "screen": lambda t: t.screen("SEA", eligible_answers(protocol)),
        "screening": lambda t: t.screening(target.screening),
        "update_screening": lambda t: t.update_screening(target.screening, {"age": 31}, "typo"),
        "record_identity": lambda t: t.record_identity(target.randomized, contact="555-0100"),
        "identity": lambda t: t.identity(target.randomized),
        "consent": lambda t: t.consent(target.screening, "1.0", today),
        "enrol": lambda t: t.enrol(target.screening),
        "consent_document": lambda t: t.consent_document(),
        "record_electronic_consent": lambda t: t.record_electronic_consent(
            target.waiting, "1.0", dict.fromkeys(CONSENT_QUESTIONS, True), target.name
        ),
        "consents": lambda t: t.consents(target.randomized),
        "verify_consents": lambda t: t.verify_consents(),
        "reconsent_due": lambda t: t.reconsent_due(),
        "issue_consent_link": lambda t: t.issue_consent_link(target.randomized),
        "revoke_consent_link": lambda t: t.revoke_consent_link(target.randomized),
        "consent_links": lambda t: t.consent_links(target.randomized),
        "participants": lambda t: t.participants(),
        "participant": lambda t: t.participant(target.randomized),
        "participant_counts": lambda t: t.participant_counts(),
        "record_questionnaire": lambda t: t.record_questionnaire(
            target.randomized, "week_10", "rdq", rdq_answers(3), completed_on=today
        ),
        "record_visit": lambda t: t.record_visit(
            target.randomized,
            "week_10",
            {"bothersomeness": answers_for("bothersomeness", 2)},
            completed_on=today,
        ),
        "edit_questionnaire": lambda t: t.edit_questionnaire(
            target.randomized, "baseline", "rdq", {"rdq_24": 1}, "misread"
        ),
        "questionnaires": lambda t: t.questionnaires(target.randomized),
        "questionnaire": lambda t: t.questionnaire(target.randomized, "baseline", "rdq"),
        "randomize": lambda t: t.randomize(target.waiting),
        "withdraw": lambda t: t.withdraw(target.waiting, "withdrew_consent", "moved", today),
        "unblind": lambda t: t.unblind(target.randomized, "emergency", confirm=target.randomized),
        "assignment": lambda t: t.assignment(target.randomized),
        "verify_randomization": lambda t: t.verify_randomization(),
        "schedule": lambda t: t.schedule(target.randomized),
        "due": lambda t: t.due(missed=True),
        "log_session": lambda t: t.log_session(
            target.randomized, today, 60, ["effleurage"], ["low_back"]
        ),
        "treatment_plan": lambda t: t.treatment_plan(target.randomized),
        "adherence": lambda t: t.adherence(),
        "sessions_table": lambda t: t.sessions_table(),
        "sessions": lambda t: t.sessions(target.randomized),
        "report_adverse_event": lambda t: t.report_adverse_event(
            target.randomized,
            "bruise",
            today,
            severity="mild",
            serious=False,
            relatedness="unlikely",
        ),
        "update_adverse_event": lambda t: t.update_adverse_event(
            target.event, outcome="recovered", reason="call"
        ),
        "adverse_events": lambda t: t.adverse_events(),
        "adverse_event_table": lambda t: t.adverse_event_table(),
        "notifications": lambda t: t.notifications(),
        "acknowledge_notification": lambda t: t.acknowledge_notification(target.notification),
        "participant_messages": lambda t: t.participant_messages(target.randomized),
        "plan_messages": lambda t: t.plan_messages(),
        "send_messages": lambda t: t.send_messages(
            FileTransport(tmp_path / "messages"), link_base="https://trial.example.org/s/"
        ),
        "set_password": lambda t: t.set_password("a long passphrase for the matrix"),
        "enrol_totp": lambda t: t.enrol_totp(),
        "confirm_totp": lambda t: t.confirm_totp("000000"),
        "reset_totp": lambda t: t.reset_totp("monitor", "lost phone"),
        "end_sessions": lambda t: t.end_sessions("monitor", "lost laptop"),
        "create_token": lambda t: t.create_token("matrix", ["view"], 1),
        "revoke_token": lambda t: t.revoke_token(1),
        "tokens": lambda t: t.tokens(),
        "issue_survey_token": lambda t: t.issue_survey_token(target.randomized, "week_10"),
        "revoke_survey_token": lambda t: t.revoke_survey_token(target.randomized, "week_10"),
        "survey_links": lambda t: t.survey_links(target.randomized),
        "issue_rating_link": lambda t: t.issue_rating_link(target.randomized),
        "revoke_rating_link": lambda t: t.revoke_rating_link(target.randomized),
        "rating_links": lambda t: t.rating_links(target.randomized),
        "given_ratings": lambda t: t.given_ratings(target.randomized),
        "dataset": lambda t: t.dataset(),
        "export": lambda t: _exported(t, tmp_path),
        "consort_records": lambda t: t.consort_records(),
    }


def _exported(trial: Trial, folder: Path) -> str:
    path = folder / f"export-{trial.principal.username}.csv"
    trial.export(path)
    return path.read_text(encoding="utf-8")


def _text(result: object) -> str:
    if isinstance(result, pd.DataFrame):
        return result.to_csv()
    return repr(result)


def _forbidden_arm_words(world: World) -> set[str]:
    """Words that reveal an arm: ids, labels, and techniques only one arm uses."""
    words = {"group a", "group b", "group c"}
    for arm in world.protocol.arms:
        words |= {arm.id.lower(), arm.label.lower()}
        others = {
            t for other in world.protocol.arms if other.id != arm.id for t in other.techniques
        }
        words |= {t.lower() for t in set(arm.techniques) - others}
    return words


def test_every_operation_as_every_role_at_every_site_leaks_nothing(
    world: World, tmp_path: Path
) -> None:
    admin = world.as_("admin")
    for code in ("SEA", "NYC"):
        admin.add_staff(f"ther_{code.lower()}", "therapist", [code], reason="gives the massage")
    admin.add_staff("stat_sea", "statistician", ["SEA"])  # a site-bound reader of the dataset
    admin.add_staff("monitor_nyc", "monitor", ["NYC"])
    sites = {code: _site(world, admin, code) for code in ("SEA", "NYC")}
    world.clock.advance(70)  # week 10 is due
    arm_words = _forbidden_arm_words(world)

    public = {
        name
        for name, member in inspect.getmembers(Trial)
        if not name.startswith("_") and name not in NOT_OPERATIONS
        and (inspect.isfunction(member) or isinstance(member, property | Operation))
    }  # fmt: skip
    for code, target in sites.items():
        operations = _operations(world, target, tmp_path)
        assert set(operations) == public, "an operation without a case in this test"
        other = sites["NYC" if code == "SEA" else "SEA"]
        for user in USERS:
            trial = world.as_(user)
            home = SITE_OF.get(user)  # None: every site
            hidden: set[str] = set() if home is None else {
                value
                for site_code, site in sites.items()
                if site_code != home
                for value in (site.randomized, site.waiting, site.screening, site.name)
            }  # fmt: skip
            for name, call in operations.items():
                try:
                    shown = _text(call(trial))
                    refused = False
                except LumbarError as error:
                    shown, refused = str(error), True
                leaked = {value for value in hidden if value in shown}
                if refused:
                    # A refusal may repeat the id the user typed, nothing else of the site.
                    leaked -= {target.randomized, target.waiting, target.screening}
                assert not leaked, (user, name, code, leaked)
                if user not in UNBLINDED and name != "unblind":
                    # The protocol's own title names the arms; it says nothing of anyone's.
                    text = shown.replace(world.protocol.trial.title, "").lower()
                    revealed = {word for word in arm_words if word in text}
                    assert not revealed, (user, name, code, revealed)
            trial.close()
        assert other  # both sites were tried as targets
