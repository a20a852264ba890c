"""Who may do what: roles, site scope and blinding, on SQLite and PostgreSQL.

The issue's rule for blinding: a blinded role never receives an arm through any
operation. Every operation that returns or exposes allocation information is
called as every blinded user, and what it returns (objects, exported files, the
audit trail) is searched for arm ids.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import func, select, update

from lumbar.errors import AccessError, LumbarError, OperationError
from lumbar.operations import Trial
from lumbar.operations.vocabulary import PERMISSIONS, ROLES, WHAT
from lumbar.protocol import Protocol
from lumbar.store.schema import AuditHead, AuditRecord, Base, Staff, Unblinding
from tests.operations.world import World, answers_for, eligible_answers, rdq_answers

pytestmark = pytest.mark.integration

ARM_IDS = ("usual_care", "structural", "relaxation")
USER_OF_ROLE = {
    "admin": "admin",
    "coordinator": "coord",
    "therapist": "ther",
    "outcome_assessor": "assessor",
    "statistician": "stat",
    "monitor": "monitor",
}
BLINDED = ("coord", "assessor", "stat", "monitor", "admin")
ROLE_OF_USER = {user: role for role, user in USER_OF_ROLE.items()}


# ---------------------------------------------------------------------- helpers


def ready(world: World, coord: Trial, site: str = "SEA", rdq_yes: int = 8) -> str:
    """A new participant at ``site``, enrolled with a complete baseline, not yet randomized."""
    screening = coord.screen(site, eligible_answers(world.protocol))
    coord.consent(screening.screening_number, "1.0", world.clock.today)
    study_id = coord.enrol(screening.screening_number)
    for instrument in world.protocol.baseline.instruments:
        answers = rdq_answers(rdq_yes) if instrument == "rdq" else answers_for(instrument, 1)
        coord.record_questionnaire(
            study_id, "baseline", instrument, answers, completed_on=world.clock.today
        )
    return study_id


def head(trial: Trial) -> tuple[int, str]:
    with trial.db.read() as session:
        row = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one()
        return row.seq, row.hash


def snapshot(trial: Trial) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order."""
    with trial.db.read() as session:
        return {
            table.name: [
                tuple(row)
                for row in session.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in Base.metadata.sorted_tables
        }


def audit_text(trial: Trial) -> str:
    """Every column of every audit record, as one text."""
    with trial.db.read() as session:
        records = session.execute(select(AuditRecord).order_by(AuditRecord.seq)).scalars()
        return "\n".join(
            repr(
                (
                    r.seq,
                    r.at,
                    r.actor,
                    r.action,
                    r.entity,
                    r.entity_id,
                    r.old,
                    r.new,
                    r.reason,
                    r.prev_hash,
                    r.hash,
                )
            )
            for r in records
        )


def arms_in(text: str) -> set[str]:
    lowered = text.lower()
    return {arm for arm in ARM_IDS if arm in lowered}


def refusal(operation: Callable[..., object], *args: Any) -> LumbarError:
    """The error ``operation(*args)`` is refused with."""
    with pytest.raises(LumbarError) as caught:
        operation(*args)
    return caught.value


def shape(error: LumbarError, reference: object) -> tuple[object, ...]:
    """An error with the reference it was given left out."""
    return (
        type(error),
        error.summary,
        [
            (p.where, p.rule, p.hint, "<ref>" if p.received == reference else p.received)
            for p in error.problems
        ],
    )


def test_the_arm_ids_searched_for_are_the_protocols(reference: Protocol) -> None:
    assert {arm.id for arm in reference.arms} == set(ARM_IDS)
    assert set(USER_OF_ROLE) == set(ROLES)


# ---------------------------------------------------------------------- permissions


def test_every_permission_refuses_other_roles_naming_those_who_may(
    world: World, tmp_path: Path
) -> None:
    today = world.clock.today
    coord = world.as_("coord")
    screened = coord.screen("SEA", eligible_answers(world.protocol)).screening_number
    consented = coord.screen("SEA", eligible_answers(world.protocol)).screening_number
    coord.consent(consented, "1.0", today)
    bare = coord.screen("SEA", eligible_answers(world.protocol)).screening_number
    coord.consent(bare, "1.0", today)
    bare = coord.enrol(bare)
    waiting = ready(world, coord)
    randomized = ready(world, coord)
    coord.randomize(randomized)
    coord.record_identity(randomized, name="Ada Example")
    event = coord.report_adverse_event(
        randomized, "soreness", today, severity="mild", serious=False, relatedness="possible"
    )
    coord.record_questionnaire(bare, "baseline", "rdq", rdq_answers(3), completed_on=today)

    operations: dict[str, list[Callable[[Trial], object]]] = {
        "manage_sites": [lambda t: t.add_site("BOS", "Boston")],
        "manage_staff": [
            lambda t: t.add_staff("newcomer", "monitor", all_sites=True),
            lambda t: t.staff(),
        ],
        "screen": [
            lambda t: t.screen("SEA", eligible_answers(world.protocol)),
            lambda t: t.update_screening(screened, {"age": 50}, reason="corrected"),
        ],
        "identity": [
            lambda t: t.identity(randomized),
            lambda t: t.record_identity(randomized, contact="555-0100"),
        ],
        "consent": [lambda t: t.consent(screened, "1.0", today)],
        "enrol": [lambda t: t.enrol(consented)],
        "randomize": [lambda t: t.randomize(waiting)],
        "questionnaire": [
            lambda t: t.record_questionnaire(
                bare,
                "baseline",
                "bothersomeness",
                answers_for("bothersomeness", 1),
                completed_on=today,
            ),
            lambda t: t.edit_questionnaire(bare, "baseline", "rdq", {"rdq_20": 1}, "typo"),
        ],
        "session": [
            lambda t: t.log_session(randomized, today, 60, ["effleurage"], ["low_back"]),
            lambda t: t.issue_rating_link(randomized),
            lambda t: t.revoke_rating_link(randomized),
        ],
        "treatment_records": [
            lambda t: t.adherence(),
            lambda t: t.adverse_events(),
            lambda t: t.rating_links(randomized),
            lambda t: t.given_ratings(randomized),
        ],
        "adverse_event": [
            lambda t: t.report_adverse_event(
                randomized, "bruise", today, severity="mild", serious=False, relatedness="possible"
            ),
            lambda t: t.update_adverse_event(event.id, outcome="recovered", reason="call"),
        ],
        "withdraw": [lambda t: t.withdraw(randomized, "withdrew_consent", "moved away", today)],
        "dataset": [lambda t: t.dataset(), lambda t: t.export(tmp_path / "refused.csv")],
        "audit": [lambda t: t.verify_audit()],
        "notifications": [lambda t: t.notifications(), lambda t: t.acknowledge_notification(1)],
        "verify_randomization": [lambda t: t.verify_randomization()],
        "backup": [lambda t: t.authorize("backup")],
        "restore": [lambda t: t.authorize("restore")],
        "upgrade": [lambda t: t.authorize("upgrade")],
    }
    assert set(operations) == set(PERMISSIONS) - {"view"}, "a permission without a check"
    # Every permission but viewing is withheld from some role.
    assert all(len(PERMISSIONS[p]) < len(ROLES) for p in operations)

    users = {role: world.as_(user) for role, user in USER_OF_ROLE.items()}
    before = snapshot(coord)
    refused = 0
    for permission, calls in operations.items():
        allowed = PERMISSIONS[permission]
        for role in sorted(set(ROLES) - allowed):
            for call in calls:
                head_before = head(coord)
                with pytest.raises(AccessError) as caught:
                    call(users[role])
                (problem,) = caught.value.problems
                assert problem.where == f"user {USER_OF_ROLE[role]}"
                assert problem.rule == f"a {role} may not {WHAT[permission]}"
                prefix = "ask someone with the role "
                assert problem.hint.startswith(prefix)
                assert set(problem.hint.removeprefix(prefix).split(" or ")) == allowed
                assert head(coord) == head_before, (permission, role)
                refused += 1
    assert refused > 2 * len(operations)
    assert snapshot(coord) == before
    assert not (tmp_path / "refused.csv").exists()

    # Every role may view.
    for trial in users.values():
        assert len(trial.participants()) == 5
        assert trial.assignment(randomized).study_id == randomized
        assert [s.visit for s in trial.schedule(randomized)] == ["week_10", "week_26", "week_52"]
        assert trial.sites()


def test_an_unknown_or_inactive_user_is_refused(world: World) -> None:
    nobody = world.as_("nobody")
    error = refusal(nobody.participants)
    assert isinstance(error, AccessError)
    assert error.summary == "unknown user"
    assert "nobody" in str(error)

    coord = world.as_("coord")
    assert coord.participants() == []
    with coord.db.engine.begin() as connection:
        connection.execute(update(Staff).where(Staff.username == "coord").values(active=False))
    before = snapshot(coord)
    for operation in (
        coord.participants,
        lambda: coord.screen("SEA", eligible_answers(world.protocol)),
        lambda: coord.add_site("BOS", "Boston"),
    ):
        error = refusal(operation)
        assert isinstance(error, AccessError)
        assert error.summary == "unknown user"
        assert "is not an active member of staff" in str(error)
        assert "'coord'" in str(error)
    assert snapshot(coord) == before
    assert world.as_("coord_open").participants() == []  # others still work


# ---------------------------------------------------------------------- site scope


def test_another_sites_participants_are_as_if_they_did_not_exist(world: World) -> None:
    today = world.clock.today
    coord, nyc = world.as_("coord"), world.as_("coord_nyc")
    seattle = ready(world, coord)
    coord.randomize(seattle)
    new_york = ready(world, nyc, "NYC")
    nyc.randomize(new_york)
    nyc_waiting = ready(world, nyc, "NYC")
    nyc.record_identity(new_york, name="Nora Newyorker")
    nyc_event = nyc.report_adverse_event(
        new_york, "soreness", today, severity="mild", serious=False, relatedness="possible"
    )
    nyc_screening = next(v.screening_number for v in nyc.participants() if v.study_id == new_york)
    world.clock.advance(64)  # the week-10 window is open for both
    today = world.clock.today

    # Lists leave them out.
    assert [(v.study_id, v.site) for v in coord.participants()] == [(seattle, "SEA")]
    assert coord.participant_counts() == {"SEA": {"randomized": 1}}
    assert [s.study_id for s in coord.due()] == [seattle]
    assert {s.study_id for s in world.as_("monitor").due()} == {seattle, new_york}
    coord_open = world.as_("coord_open")  # adherence and adverse events need an unblinded user
    assert [a.study_id for a in coord_open.adherence()] == [seattle]
    assert coord_open.adverse_events() == []
    assert nyc.assignment(new_york).study_id == new_york  # their own coordinator sees them

    before = snapshot(coord)
    by_reference: dict[str, Callable[[str], object]] = {
        "participant": coord.participant,
        "schedule": coord.schedule,
        "assignment": coord.assignment,
        "record_questionnaire": lambda ref: coord.record_questionnaire(
            ref, "week_10", "rdq", rdq_answers(4), completed_on=today
        ),
        "randomize": coord.randomize,
        "identity": coord.identity,
        "record_identity": lambda ref: coord.record_identity(ref, name="Someone Else"),
        "unblind": lambda ref: coord.unblind(ref, "emergency", confirm=ref),
        "report_adverse_event": lambda ref: coord.report_adverse_event(
            ref, "bruise", today, severity="mild", serious=False, relatedness="possible"
        ),
        "withdraw": lambda ref: coord.withdraw(ref, "withdrew_consent", "moved", today),
        "update_screening": lambda ref: coord.update_screening(ref, {"age": 40}, "typo"),
    }
    cases = [(new_york, "NYC-0099"), (nyc_waiting, "NYC-0098"), (nyc_screening, "S09999")]
    for name, operation in by_reference.items():
        for hidden, unknown in cases:
            seen, missing = refusal(operation, hidden), refusal(operation, unknown)
            assert shape(seen, hidden) == shape(missing, unknown), name
            assert str(seen).replace(hidden, "<id>") == str(missing).replace(unknown, "<id>"), name
            assert seen.summary == "unknown participant", name

    def update_event(event_id: int) -> object:
        return coord.update_adverse_event(event_id, outcome="recovered", reason="call")

    seen, missing = refusal(update_event, nyc_event.id), refusal(update_event, 9999)
    assert shape(seen, nyc_event.id) == shape(missing, 9999)
    assert seen.summary == "unknown adverse event"

    # Nor may a coordinator screen at, or list the visits of, a site not theirs.
    for elsewhere in (
        lambda: coord.screen("NYC", eligible_answers(world.protocol)),
        lambda: coord.due(site="NYC"),
    ):
        error = refusal(elsewhere)
        assert isinstance(error, OperationError)
        assert "is not one of your sites" in str(error)
    assert snapshot(coord) == before
    assert [s.study_id for s in world.as_("coord_open").due(site="SEA")] == [seattle]


# ---------------------------------------------------------------------- blinding


def test_no_blinded_user_receives_an_arm_from_any_operation(world: World, tmp_path: Path) -> None:
    coord, admin = world.as_("coord"), world.as_("admin")
    first, second, third = ready(world, coord), ready(world, coord), ready(world, admin)
    returned = [coord.randomize(first), coord.randomize(second), admin.randomize(third)]
    real = {s: world.arm(s) for s in (first, second, third)}
    assert set(real.values()) == set(ARM_IDS)  # the seed's first block holds every arm
    therapist = world.as_("ther")
    for study_id, arm_id in real.items():
        if arm_id != "usual_care":
            technique = world.protocol.arm(arm_id).techniques[0]
            therapist.log_session(study_id, world.clock.today, 60, [technique], ["low_back"])
    coord.report_adverse_event(
        first, "soreness", world.clock.today, severity="mild", serious=False, relatedness="possible"
    )
    assert coord.unblind(second, "anaphylaxis; physician asks", confirm=second) in ARM_IDS
    coord.withdraw(third, "discontinued_treatment", "moved away", world.clock.today)
    world.clock.advance(64)

    assert [a.arm for a in returned] == [None, None, None]
    assert arms_in(repr(returned)) == set()

    massage = next(s for s, arm in real.items() if arm != "usual_care")
    shown: list[tuple[str, Callable[[Trial], object]]] = [
        ("view", lambda t: [t.assignment(s) for s in real]),
        ("view", lambda t: [t.schedule(s) for s in real]),
        ("view", lambda t: t.due()),
        ("view", lambda t: t.participants()),
        ("audit", lambda t: t.verify_audit()),
    ]
    # What would reveal arms indirectly is refused to blinded users outright.
    withheld: list[tuple[str, Callable[[Trial], object]]] = [
        ("treatment_records", lambda t: t.adherence()),
        ("treatment_records", lambda t: t.adverse_events()),
        ("session", lambda t: t.log_session(massage, world.clock.today, 60, ["holding"], [])),
    ]
    calls = 0
    for user in BLINDED:
        trial = world.as_(user)
        role = ROLE_OF_USER[user]
        outputs: list[str] = []
        for permission, expose in shown:
            if role in PERMISSIONS[permission]:
                outputs.append(repr(expose(trial)))
                calls += 1
        for permission, expose in withheld:
            error = refusal(expose, trial)
            assert isinstance(error, AccessError)
            assert error.summary == (
                "blinded" if role in PERMISSIONS[permission] else "not allowed"
            )
            outputs.append(str(error))
        # What they see is there, with no arm: not even a code that tells arms apart.
        assignments = [trial.assignment(s) for s in real]
        assert [a.arm for a in assignments] == [None, None, None], user
        assert len(trial.due()) == 3, user
        if role in PERMISSIONS["dataset"]:
            frame = trial.dataset()
            assert len(frame) == 12
            assert frame["arm"].isna().all()
            outputs.append(frame.to_csv())
            calls += 1
            for file_format in ("csv", "parquet"):
                path = tmp_path / f"{user}.{file_format}"
                assert trial.export(path, file_format) == 12
                back = pd.read_csv(path) if file_format == "csv" else pd.read_parquet(path)
                assert back["arm"].isna().all()
                outputs.append(back.to_csv())
                outputs.append(path.read_bytes().decode("latin-1"))
                calls += 1
        if role in PERMISSIONS["verify_randomization"]:
            report = trial.verify_randomization()
            assert (report.valid, report.used) == (True, 3)
            outputs.append(repr(report))
            calls += 1
        assert arms_in("\n".join(outputs)) == set(), user
    # Four views for all five; the dataset and two exports for two; both checks for three.
    assert calls == 4 * 5 + 2 * 3 + 3 * 2
    assert therapist.adherence()[0].arm in ARM_IDS  # the same operations do show arms unblinded

    # The audit trail, which monitors and statisticians read, names no arm either.
    text = audit_text(coord)
    assert text.count("participant.randomize") == 3
    assert text.count("arm_code") == 3
    assert "participant.unblind" in text
    assert arms_in(text) == set()


def test_unblinded_users_see_arms_and_blinded_users_no_code_at_all(world: World) -> None:
    coord, coord_open = world.as_("coord"), world.as_("coord_open")
    study_ids = [ready(world, coord) for _ in range(4)]
    returned = {s: coord.randomize(s).arm for s in study_ids}
    opened = ready(world, coord_open)
    opened_arm = coord_open.randomize(opened).arm
    study_ids.append(opened)

    real = {s: coord_open.assignment(s).arm for s in study_ids}
    assert opened_arm == real[opened]
    assert set(real.values()) == set(ARM_IDS)
    assert len(set(real.values())) < len(study_ids)  # some arm holds two participants
    frame = world.as_("stat_open").dataset()
    assert dict(zip(frame["participant"], frame["arm"], strict=True)) == real
    assert {row.study_id: row.arm for row in world.as_("ther").adherence()} == real
    assert {row.study_id: row.arm for row in coord_open.adherence()} == real

    # A shared code (group A, B, C) would be revealed for everyone by one emergency
    # unblinding; blinded users get nothing that groups participants by arm.
    assert set(returned.values()) == {None}
    for user in BLINDED:
        trial = world.as_(user)
        assert {trial.assignment(s).arm for s in study_ids} == {None}, user
    stat_frame = world.as_("stat").dataset()
    assert list(stat_frame["participant"].unique()) == sorted(study_ids)
    assert stat_frame["arm"].isna().all()
    records = world.as_("stat").consort_records()
    assert records["arm"].isna().all()
    assert records["arm_has_sessions"].isna().all()
    assert records["sessions"].isna().all()

    # A therapist is unblinded by default, but may be added blinded.
    world.as_("admin").add_staff("ther_blind", "therapist", ["SEA"], unblinded=False)
    blind_therapist = world.as_("ther_blind")
    assert {blind_therapist.assignment(s).arm for s in study_ids} == {None}
    error = refusal(blind_therapist.adherence)
    assert (type(error), error.summary) == (AccessError, "blinded")


def test_emergency_unblinding_needs_the_grant_a_reason_and_a_confirmation(world: World) -> None:
    coord = world.as_("coord")
    study_id = ready(world, coord)
    assert coord.randomize(study_id).arm is None
    before = snapshot(coord)
    for reason in ("", "   "):
        error = refusal(lambda r: coord.unblind(study_id, r, confirm=study_id), reason)
        assert isinstance(error, OperationError)
        assert "reason for unblinding is required" in str(error)
    for confirm in ("", "yes", "SEA-9999"):
        error = refusal(lambda c: coord.unblind(study_id, "emergency", confirm=c), confirm)
        assert error.summary == "unblinding not confirmed"
        (problem,) = error.problems
        assert (problem.where, problem.received) == ("confirm", confirm)
        assert study_id in problem.hint
    # Without the grant: refused, whatever the role (an admin, an unblinded coordinator too).
    for user in ("admin", "coord_open", "ther", "stat_open"):
        error = refusal(
            lambda t: t.unblind(study_id, "emergency", confirm=study_id), world.as_(user)
        )
        assert isinstance(error, AccessError)
        assert "does not hold the emergency-unblinding grant" in str(error)
    assert snapshot(coord) == before

    reason = "suspected anaphylaxis; the emergency physician needs the treatment"
    arm = coord.unblind(study_id, reason, confirm=study_id)
    assert arm == world.as_("coord_open").assignment(study_id).arm
    assert arm in ARM_IDS
    with coord.db.read() as session:
        record = session.execute(
            select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(1)
        ).scalar_one()
        unblindings = session.execute(select(func.count()).select_from(Unblinding)).scalar_one()
    assert (record.actor, record.action, record.entity, record.entity_id) == (
        "coord",
        "participant.unblind",
        "participant",
        study_id,
    )
    assert record.reason == reason
    assert record.at == world.clock.now
    assert record.origin is not None
    assert record.origin.startswith("cli ")
    assert arms_in(audit_text(coord)) == set()
    assert unblindings == 1
    assert coord.assignment(study_id).arm is None  # one unblinding unblinds no one for good


def test_access_to_arms_is_granted_with_a_reason_never_to_oneself(world: World) -> None:
    admin = world.as_("admin")
    before = snapshot(admin)
    # An account that sees arms needs a reason; so does a grant.
    for make in (
        lambda: admin.add_staff("ther2", "therapist", ["SEA"]),
        lambda: admin.add_staff("stat2", "statistician", all_sites=True, unblinded=True),
        lambda: admin.grant("stat", "unblinded", "  "),
    ):
        error = refusal(make)
        assert error.summary == "a reason is required"
        assert error.problems[0].where == "reason"
    # A blinded admin cannot unblind themselves, in either way.
    for kind in ("unblinded", "emergency_unblind"):
        error = refusal(admin.grant, "admin", kind, "I want to see")
        assert (type(error), error.summary) == (AccessError, "not for yourself")
    error = refusal(admin.grant, "stat", "see_everything", "why not")
    assert error.summary == "unknown grant"
    assert snapshot(admin) == before

    grant = admin.grant("stat", "unblinded", "the DSMB asked for an unblinded look")
    assert (grant.username, grant.kind, grant.granted_by, grant.waiting) == (
        "stat",
        "unblinded",
        "admin",
        True,
    )
    assert next(m for m in admin.staff() if m.username == "stat").unblinded
    # The dashboard lists grants waiting for a second admin first, with their reasons.
    listed = admin.grants()
    assert (grant.id, grant.reason) in {(g.id, g.reason) for g in listed}
    assert all(g.waiting for g in listed)  # nobody countersigned yet
    assert {(g.username, g.kind) for g in listed} >= {
        ("stat", "unblinded"),
        ("ther", "unblinded"),
        ("coord_open", "unblinded"),
        ("stat_open", "unblinded"),
        ("coord", "emergency_unblind"),
    }
    # Only a second admin who neither gave nor received it countersigns.
    error = refusal(admin.countersign, grant.id)
    assert error.summary == "a second person is needed"
    admin.add_staff("admin2", "admin", all_sites=True)
    signed = world.as_("admin2").countersign(grant.id)
    assert (signed.countersigned_by, signed.waiting) == ("admin2", False)
    assert refusal(world.as_("admin2").countersign, grant.id).summary == "already countersigned"
    assert admin.grants()[-1].id == grant.id  # countersigned grants come last

    # Revoking takes effect at once; the history stays.
    admin.revoke("stat", "unblinded", "the look is over")
    assert not next(m for m in admin.staff() if m.username == "stat").unblinded
    assert next(g for g in admin.grants() if g.id == grant.id).revoked


def test_a_deactivated_user_can_do_nothing_at_once(world: World) -> None:
    admin, coord = world.as_("admin"), world.as_("coord")
    assert coord.participants() == []
    error = refusal(admin.set_active, "admin", False, "leaving")
    assert error.summary == "not yourself"
    admin.set_active("coord", False, "left the study team")
    error = refusal(coord.participants)
    assert (type(error), error.summary) == (AccessError, "unknown user")
    assert next(m for m in admin.staff() if m.username == "coord").active is False
    admin.set_active("coord", True, "back from leave")
    assert coord.participants() == []


def test_treatment_session_audit_records_reveal_no_arm(world: World) -> None:
    coord = world.as_("coord")
    arm_id = "usual_care"
    while arm_id == "usual_care":  # the seed's first slot is a massage arm
        study_id = ready(world, coord)
        coord.randomize(study_id)
        arm_id = world.arm(study_id)
    arm = world.protocol.arm(arm_id)
    world.as_("ther").log_session(
        study_id,
        world.clock.today,
        60,
        [arm.techniques[0]],
        ["low_back"],
        home_care=list(arm.home_care),
    )
    others = {t for other in world.protocol.arms if other.id != arm_id for t in other.techniques}
    specific = (set(arm.techniques) | set(arm.home_care)) - others
    text = audit_text(coord)
    assert text.count("session.log") == 1
    assert arms_in(text) == set()
    assert [value for value in specific if value in text] == []
