"""Identities: passwords, second factors, API tokens and survey links, on SQLite and PostgreSQL.

Each promise of lumbar.operations.authentication (and of the credentials and survey
services built on it) has a test here that fails when the promise is broken. Tests
hash with cheap argon2id parameters (given to the Context, as a server would give
its own), except the one that checks lumbar's own parameters.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from typing import Literal

import pyotp
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from lumbar.errors import AccessError, LumbarError, OperationError
from lumbar.operations import (
    Context,
    Principal,
    Survey,
    SurveyPrincipal,
    Trial,
    authenticate_password,
    authenticate_survey,
    authenticate_token,
)
from lumbar.operations.authentication import LOCKOUT_DURATION, SIGN_IN_FAILED
from lumbar.store.schema import (
    ApiToken,
    AuditRecord,
    Base,
    LoginFailure,
    Questionnaire,
    Staff,
)
from tests.operations.world import World, answers_for, rdq_answers

pytestmark = pytest.mark.integration

CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
"""argon2id at its smallest: these tests check behaviour, not hashing cost."""
PASSWORD = "four unrelated words here"
OTHER = "another long pass phrase"


@pytest.fixture
def context(world: World) -> Iterator[Context]:
    opened = Context.open(
        world.url, key_file=world.key_file, clock=world.clock, password_hasher=CHEAP
    )
    yield opened
    opened.close()


def operator(context: Context, username: str) -> Trial:
    return Trial(context, Principal.operator(username))


def minutes(world: World, count: float) -> None:
    world.clock.now += dt.timedelta(minutes=count)


def refused(call: object, *args: object, **kwargs: object) -> LumbarError:
    assert callable(call)
    with pytest.raises(LumbarError) as caught:
        call(*args, **kwargs)
    return caught.value


def everything(context: Context) -> str:
    """Every row of every table, as one text."""
    with context.db.read() as session:
        return "\n".join(
            repr(tuple(row))
            for table in Base.metadata.sorted_tables
            for row in session.execute(select(table))
        )


def audit_records(context: Context, action: str) -> list[AuditRecord]:
    with context.db.read() as session:
        return list(
            session.execute(
                select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.seq)
            ).scalars()
        )


def staff_row(context: Context, username: str) -> Staff:
    with context.db.read() as session:
        return session.execute(select(Staff).where(Staff.username == username)).scalar_one()


def code_at(secret: str, now: dt.datetime) -> str:
    return pyotp.TOTP(secret).at(now)


# ---------------------------------------------------------------------- passwords


def test_a_password_is_kept_as_an_argon2id_hash_and_nowhere_in_clear(
    world: World, context: Context
) -> None:
    operator(context, "coord").set_password(PASSWORD)
    stored = staff_row(context, "coord").password_hash
    assert stored is not None
    assert stored.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert PASSWORD not in everything(context)
    (record,) = audit_records(context, "staff.password")
    assert (record.actor, record.entity_id) == ("coord", "coord")

    principal = authenticate_password(context, "coord", PASSWORD)
    assert principal == Principal("coord", "web")
    assert Trial(context, principal).participants() == []


def test_a_hash_with_old_parameters_is_replaced_with_lumbars_at_the_next_sign_in(
    world: World, context: Context
) -> None:
    operator(context, "coord").set_password(PASSWORD)  # cheap parameters: "old"
    default = Context.open(world.url, key_file=world.key_file, clock=world.clock)
    try:
        assert authenticate_password(default, "coord", PASSWORD).username == "coord"
    finally:
        default.close()
    upgraded = staff_row(context, "coord").password_hash
    assert upgraded is not None
    assert upgraded.startswith("$argon2id$v=19$m=65536,t=3,p=4$")  # RFC 9106, low memory
    (login,) = audit_records(context, "login")
    assert login.new is not None
    assert '"rehashed":true' in login.new.replace(" ", "")
    assert authenticate_password(context, "coord", PASSWORD).username == "coord"


def test_every_wrong_answer_gets_the_same_message(world: World, context: Context) -> None:
    admin = operator(context, "admin")
    admin.set_password(PASSWORD, "coord")
    admin.set_password(PASSWORD, "monitor")
    admin.set_active("monitor", False, "left the study")

    wrong_password = refused(authenticate_password, context, "coord", OTHER)
    unknown_user = refused(authenticate_password, context, "nobody", PASSWORD)
    deactivated = refused(authenticate_password, context, "monitor", PASSWORD)
    no_password = refused(authenticate_password, context, "stat", PASSWORD)
    for error in (wrong_password, unknown_user, deactivated, no_password):
        assert isinstance(error, AccessError)
        assert error.summary == SIGN_IN_FAILED
        assert str(error) == str(wrong_password)
    assert "nobody" not in str(unknown_user)
    # The audit trail, for the admin and monitor only, says which it was.
    failures = [record.new or "" for record in audit_records(context, "login.failed")]
    assert ["wrong password" in failures[0], "unknown user" in failures[1]] == [True, True]
    assert "deactivated" in failures[2]
    assert "no password set" in failures[3]


class CountingHasher(PasswordHasher):
    """The cheap hasher, counting the hashes it checks."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.checked: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.checked.append(hash if isinstance(hash, str) else hash.decode())
        return super().verify(hash, password)


def test_an_unknown_name_costs_the_same_hash_check_as_a_known_one(world: World) -> None:
    counting = CountingHasher()
    context = Context.open(
        world.url, key_file=world.key_file, clock=world.clock, password_hasher=counting
    )
    try:
        operator(context, "admin").set_password(PASSWORD, "coord")
        for username in ("coord", "nobody", "stat"):  # known; unknown; without a password
            counting.checked.clear()
            refused(authenticate_password, context, username, OTHER)
            assert len(counting.checked) == 1, username
            assert counting.checked[0].startswith("$argon2id$v=19$m=8,t=1,p=1$")
    finally:
        context.close()


def test_password_rules_name_the_field_and_the_rule_and_store_nothing(
    world: World, context: Context
) -> None:
    coord = operator(context, "coord")
    before = everything(context)
    cases = {
        "short pass": "must be at least 12 characters long (it has 10)",
        "i am coord, trust me": "must not contain the user name",
        "Password1234": "is one of the most common passwords",
    }
    for password, rule in cases.items():
        error = refused(coord.set_password, password)
        assert isinstance(error, OperationError)
        assert [problem.where for problem in error.problems] == ["password"]
        assert rule in error.problems[0].rule
        assert password not in str(error)
    assert everything(context) == before


def test_only_an_admin_sets_another_users_password(world: World, context: Context) -> None:
    error = refused(operator(context, "coord").set_password, PASSWORD, "stat")
    assert isinstance(error, AccessError)
    assert "may not manage staff" in str(error)
    assert staff_row(context, "stat").password_hash is None
    operator(context, "admin").set_password(PASSWORD, "stat")
    assert authenticate_password(context, "stat", PASSWORD).username == "stat"
    (record,) = audit_records(context, "staff.password")
    assert (record.actor, record.entity_id) == ("admin", "stat")


# ---------------------------------------------------------------------- rate limit


def test_five_failures_lock_the_name_for_fifteen_minutes(world: World, context: Context) -> None:
    operator(context, "coord").set_password(PASSWORD)
    start = world.clock.now
    for _ in range(4):
        assert refused(authenticate_password, context, "coord", OTHER).summary == SIGN_IN_FAILED
        minutes(world, 1)
    locking = refused(authenticate_password, context, "coord", OTHER)
    locked_until = world.clock.now + LOCKOUT_DURATION
    assert locking.summary == "sign-in locked"
    assert f"until {locked_until:%Y-%m-%d %H:%M} UTC" in str(locking)

    minutes(world, 14)
    right_but_locked = refused(authenticate_password, context, "coord", PASSWORD)
    assert right_but_locked.summary == "sign-in locked"
    assert f"until {locked_until:%Y-%m-%d %H:%M} UTC" in str(right_but_locked)

    minutes(world, 1)
    assert world.clock.now - start == dt.timedelta(minutes=19)
    assert authenticate_password(context, "coord", PASSWORD).username == "coord"
    with context.db.read() as session:
        left = session.execute(select(LoginFailure).where(LoginFailure.username == "coord")).all()
    assert left == []  # a success clears the count


def test_failures_count_within_the_window_and_a_success_resets_them(
    world: World, context: Context
) -> None:
    operator(context, "coord").set_password(PASSWORD)
    for _ in range(4):
        refused(authenticate_password, context, "coord", OTHER)
    authenticate_password(context, "coord", PASSWORD)
    for _ in range(4):
        refused(authenticate_password, context, "coord", OTHER)
    minutes(world, 16)  # the four fall out of the window
    for _ in range(4):
        assert refused(authenticate_password, context, "coord", OTHER).summary == SIGN_IN_FAILED
    assert refused(authenticate_password, context, "coord", OTHER).summary == "sign-in locked"
    # An admin setting a new password lifts the lock.
    operator(context, "admin").set_password(OTHER, "coord")
    assert authenticate_password(context, "coord", OTHER).username == "coord"


def test_an_unknown_name_locks_like_a_known_one(world: World, context: Context) -> None:
    for _ in range(4):
        assert refused(authenticate_password, context, "nobody", OTHER).summary == SIGN_IN_FAILED
    assert refused(authenticate_password, context, "nobody", OTHER).summary == "sign-in locked"


def test_failed_and_locked_attempts_are_audited_without_the_password(
    world: World, context: Context
) -> None:
    operator(context, "coord").set_password(PASSWORD)
    for _ in range(5):
        refused(authenticate_password, context, "coord", OTHER)
    refused(authenticate_password, context, "coord", PASSWORD)
    failed = audit_records(context, "login.failed")
    locked = audit_records(context, "login.locked")
    assert len(failed) == 5
    assert len(locked) == 1
    for record in failed + locked:
        assert (record.entity, record.entity_id, record.origin) == ("login", "coord", "web")
        assert record.actor == "lumbar"  # nobody is proven yet
    assert '"failures":5' in (failed[-1].new or "").replace(" ", "")
    text = everything(context)
    assert OTHER not in text
    assert PASSWORD not in text
    assert operator(context, "admin").verify_audit().intact


# ---------------------------------------------------------------------- second factor


def test_a_confirmed_second_factor_is_required_and_no_code_counts_twice(
    world: World, context: Context
) -> None:
    coord = operator(context, "coord")
    coord.set_password(PASSWORD)
    enrolment = coord.enrol_totp()
    assert enrolment.uri.startswith("otpauth://totp/")
    assert "secret=" + enrolment.secret in enrolment.uri
    sealed = staff_row(context, "coord").totp_sealed
    assert sealed is not None
    assert enrolment.secret.encode() not in sealed
    assert enrolment.secret not in everything(context)
    # Not yet confirmed: the password alone still signs in.
    assert authenticate_password(context, "coord", PASSWORD).username == "coord"

    wrong = refused(coord.confirm_totp, "000000")
    assert [problem.where for problem in wrong.problems] == ["code"]
    coord.confirm_totp(code_at(enrolment.secret, world.clock.now))
    assert staff_row(context, "coord").totp_active

    without_code = refused(authenticate_password, context, "coord", PASSWORD)
    assert without_code.summary == SIGN_IN_FAILED
    replayed = code_at(enrolment.secret, world.clock.now)  # the code used to confirm
    assert refused(authenticate_password, context, "coord", PASSWORD, replayed).summary == (
        SIGN_IN_FAILED
    )
    minutes(world, 0.5)
    fresh = code_at(enrolment.secret, world.clock.now)
    assert authenticate_password(context, "coord", PASSWORD, fresh).username == "coord"
    again = refused(authenticate_password, context, "coord", PASSWORD, fresh)
    assert again.summary == SIGN_IN_FAILED
    minutes(world, 0.5)
    assert authenticate_password(
        context, "coord", PASSWORD, code_at(enrolment.secret, world.clock.now)
    )
    minutes(world, 0.5)
    stale = code_at(enrolment.secret, world.clock.now - dt.timedelta(seconds=90))
    assert refused(authenticate_password, context, "coord", PASSWORD, stale).summary == (
        SIGN_IN_FAILED
    )
    kinds = [record.new or "" for record in audit_records(context, "login.failed")]
    assert sum("code used before" in kind for kind in kinds) == 2
    assert sum("wrong or missing code" in kind for kind in kinds) == 2

    # Enrolling again is refused while it is on; an admin resets it (a lost phone).
    assert "already signs in with a second factor" in str(refused(coord.enrol_totp))
    operator(context, "admin").reset_totp("coord", "lost phone")
    minutes(world, 1)
    assert authenticate_password(context, "coord", PASSWORD).username == "coord"


# ---------------------------------------------------------------------- API tokens


def test_a_token_is_limited_to_its_permissions_by_the_scope(world: World, context: Context) -> None:
    created = operator(context, "admin").create_token("nightly export", ["dataset"], 30)
    assert created.token.startswith("lmb_")
    principal = authenticate_token(context, created.token)
    assert principal == Principal("admin", f"token {created.id}", frozenset({"dataset"}))
    api = Trial(context, principal)
    assert len(api.dataset()) == 0  # the token's own permission works

    # An admin may screen and view, but not with a dataset-only token.
    screen = refused(api.screen, "SEA", {"age": 45})
    assert isinstance(screen, AccessError)
    assert "does not carry the permission screen" in str(screen)
    assert "does not carry the permission view" in str(refused(api.participants))
    # Nor manage credentials, whatever it carries.
    wide = operator(context, "admin").create_token("wide", ["dataset", "manage_staff", "view"], 1)
    wide_api = Trial(context, authenticate_token(context, wide.token))
    for call, args in (
        (wide_api.create_token, ("more", ["dataset"], 1)),
        (wide_api.set_password, (OTHER,)),
        (wide_api.set_password, (OTHER, "coord")),
        (wide_api.tokens, ()),
        (wide_api.revoke_token, (created.id,)),
        (wide_api.enrol_totp, ()),
    ):
        assert "needs a password sign-in, not an API token" in str(refused(call, *args))
    assert staff_row(context, "coord").password_hash is None


def test_a_token_carries_only_what_the_role_holds_and_never_emergency_unblinding(
    world: World, context: Context
) -> None:
    coord = operator(context, "coord")  # holds the emergency-unblinding grant
    beyond = refused(coord.create_token, "export", ["view", "dataset"], 30)
    assert isinstance(beyond, AccessError)
    assert [(p.where, p.received) for p in beyond.problems] == [("permissions", "dataset")]
    unknown = refused(coord.create_token, "x", ["emergency_unblind", "view"], 400)
    assert [(p.where, p.received) for p in unknown.problems] == [
        ("permissions", "emergency_unblind"),
        ("expires_in_days", 400),
    ]

    study_id = world.randomized()
    everything_coord_holds = ["consent", "enrol", "identity", "randomize", "screen", "view"]
    token = coord.create_token("all", everything_coord_holds, 30).token
    api = Trial(context, authenticate_token(context, token))
    assert api.schedule(study_id)
    error = refused(api.unblind, study_id, "emergency", confirm=study_id)
    assert "does not carry the permission emergency_unblind" in str(error)


def test_a_token_is_stored_as_its_digest_expires_and_records_its_use(
    world: World, context: Context
) -> None:
    created = operator(context, "stat").create_token("analysis", ["dataset", "view"], 1)
    with context.db.read() as session:
        row = session.get(ApiToken, created.id)
        assert row is not None
        assert row.token_hash == hashlib.sha256(created.token.encode()).hexdigest()
        assert row.prefix == created.token[:12]
        assert row.last_used_at is None
    assert created.token not in everything(context)

    authenticate_token(context, created.token)
    (view,) = operator(context, "stat").tokens()
    assert (view.last_used_at, view.state) == (world.clock.now, "active")

    world.clock.advance(1)
    expired = refused(authenticate_token, context, created.token)
    assert isinstance(expired, AccessError)
    assert [problem.where for problem in expired.problems] == ["token"]
    (view,) = operator(context, "stat").tokens()
    assert view.state == "expired"
    (record,) = audit_records(context, "token.refused")
    assert (record.entity_id, record.origin) == (str(created.id), f"token {created.id}")
    assert "expired" in (record.new or "")

    tampered = created.token[:-1] + ("A" if created.token[-1] != "A" else "B")
    assert str(refused(authenticate_token, context, tampered)) == str(expired)
    assert str(refused(authenticate_token, context, "lmb_guess")) == str(expired)


def test_a_revoked_token_stops_at_once_and_only_its_owner_or_an_admin_revokes_it(
    world: World, context: Context
) -> None:
    created = operator(context, "stat").create_token("analysis", ["dataset"], 30)
    principal = authenticate_token(context, created.token)
    other = refused(operator(context, "coord").revoke_token, created.id)
    assert other.summary == "unknown token"
    operator(context, "stat").revoke_token(created.id)
    assert refused(authenticate_token, context, created.token).summary == "token refused"
    assert Trial(context, principal).principal.permissions == frozenset({"dataset"})
    second = operator(context, "stat").create_token("again", ["dataset"], 30)
    operator(context, "admin").revoke_token(second.id)
    assert refused(authenticate_token, context, second.token).summary == "token refused"
    states = [view.state for view in operator(context, "admin").tokens("stat")]
    assert states == ["revoked", "revoked"]
    assert [r.actor for r in audit_records(context, "token.revoke")] == ["stat", "admin"]


def test_a_deactivated_users_password_and_tokens_stop_working_at_once(
    world: World, context: Context
) -> None:
    coord = operator(context, "coord")
    coord.set_password(PASSWORD)
    token = coord.create_token("phone", ["view"], 30).token
    signed_in = Trial(context, authenticate_password(context, "coord", PASSWORD))
    by_token = Trial(context, authenticate_token(context, token))
    assert signed_in.participants() == by_token.participants() == []

    operator(context, "admin").set_active("coord", False, "left the study")
    assert refused(authenticate_password, context, "coord", PASSWORD).summary == SIGN_IN_FAILED
    assert refused(authenticate_token, context, token).summary == "token refused"
    for trial in (signed_in, by_token):  # principals already proven are refused too
        error = refused(trial.participants)
        assert isinstance(error, AccessError)
        assert error.summary == "unknown user"

    operator(context, "admin").set_active("coord", True, "back")
    assert authenticate_password(context, "coord", PASSWORD).username == "coord"
    assert authenticate_token(context, token).username == "coord"


# ---------------------------------------------------------------------- survey links


def visit_answers(world: World, visit: str) -> dict[str, dict[str, object]]:
    return {
        instrument: rdq_answers(4) if instrument == "rdq" else answers_for(instrument, 1)
        for instrument in world.protocol.visit(visit).instruments
    }


def test_a_survey_link_opens_its_participants_due_visit_once(
    world: World, context: Context
) -> None:
    study_id = world.randomized()
    world.clock.advance(70)
    coord = operator(context, "coord")
    link = coord.issue_survey_token(study_id, "week_10")
    assert link.token.startswith("lms_")
    assert link.token not in everything(context)

    principal = authenticate_survey(context, link.token)
    assert (principal.study_id, principal.visit) == (study_id, "week_10")
    survey = Survey(context, principal)
    due = survey.due()
    assert due.instruments == world.protocol.visit("week_10").instruments

    views = survey.submit(visit_answers(world, "week_10"))
    assert {view.source for view in views} == {"participant_link"}
    assert survey_status(coord, study_id, "week_10") == "complete"
    with context.db.read() as session:
        rows = session.execute(select(Questionnaire).where(Questionnaire.visit == "week_10"))
        assert {(q.source, q.entered_by) for q in rows.scalars()} == {("participant_link", None)}
    records = audit_records(context, "questionnaire.record")[-len(views) :]
    assert {(r.actor, r.origin) for r in records} == {
        (f"participant:{study_id}", f"survey token {link.id}")
    }
    assert operator(context, "admin").verify_audit().intact

    used = refused(authenticate_survey, context, link.token)
    assert "was used already" in str(used)
    assert "was used already" in str(refused(survey.submit, visit_answers(world, "week_10")))


def test_a_survey_link_opens_with_its_visit_window_and_closes_with_it(
    world: World, context: Context
) -> None:
    """Issued early, a link refuses to open until the window's first day, changing nothing;
    it expires after the window's last day."""
    study_id = world.randomized()
    link = operator(context, "coord").issue_survey_token(study_id, "week_26")
    week_26 = world.protocol.visit("week_26")
    not_yet = refused(authenticate_survey, context, link.token)
    assert "opens on" in str(not_yet)
    assert "not due yet" in str(not_yet)
    world.clock.advance(week_26.earliest_day)
    survey = Survey(context, authenticate_survey(context, link.token))
    assert survey.due().instruments == week_26.instruments
    world.clock.advance(week_26.latest_day - week_26.earliest_day + 1)
    assert "expired on" in str(refused(authenticate_survey, context, link.token))
    assert "expired on" in str(refused(survey.due))
    closed = refused(operator(context, "coord").issue_survey_token, study_id, "week_26")
    assert closed.summary == "the visit's window has closed"


def test_a_survey_link_reissued_or_revoked_opens_nothing(world: World, context: Context) -> None:
    study_id = world.randomized()
    world.clock.advance(70)
    coord = operator(context, "coord")
    first = coord.issue_survey_token(study_id, "week_10")
    second = coord.issue_survey_token(study_id, "week_10")
    assert "withdrawn by the study team" in str(refused(authenticate_survey, context, first.token))
    survey = Survey(context, authenticate_survey(context, second.token))
    assert [link.status for link in coord.survey_links(study_id)] == ["revoked", "sent"]
    survey.open()
    survey.save("bothersomeness", answers_for("bothersomeness", 1))
    assert [link.status for link in coord.survey_links(study_id)] == ["revoked", "saved"]
    assert coord.revoke_survey_token(study_id, "week_10") == 1
    assert "withdrawn by the study team" in str(refused(survey.due))
    assert refused(coord.revoke_survey_token, study_id, "week_10").summary == "no link to revoke"
    assert len(audit_records(context, "survey_token.revoke")) == 2
    assert len(audit_records(context, "survey_token.open")) == 1


def test_a_survey_saves_answers_as_it_goes_and_refuses_one_at_its_item(
    world: World, context: Context
) -> None:
    study_id = world.randomized()
    world.clock.advance(70)
    link = operator(context, "coord").issue_survey_token(study_id, "week_10")
    survey = Survey(context, authenticate_survey(context, link.token))
    answers = visit_answers(world, "week_10")
    survey.save("rdq", answers["rdq"])
    again = Survey(context, authenticate_survey(context, link.token)).due()
    assert again.saved == {"rdq": answers["rdq"]}
    assert again.instruments == world.protocol.visit("week_10").instruments
    bad = dict(answers["rdq"])
    bad[next(iter(bad))] = 99
    error = refused(survey.save, "rdq", bad)
    assert "rdq" in str(error)
    assert survey.due().saved == {"rdq": answers["rdq"]}
    # A reminder's new link replaces this one and carries what was saved.
    reissued = operator(context, "coord").issue_survey_token(study_id, "week_10")
    assert "withdrawn by the study team" in str(refused(survey.due))
    carried = Survey(context, authenticate_survey(context, reissued.token)).due()
    assert carried.saved == {"rdq": answers["rdq"]}


def test_a_survey_sends_what_was_saved_only_when_every_screen_is_saved(
    world: World, context: Context
) -> None:
    study_id = world.randomized()
    world.clock.advance(70)
    link = operator(context, "coord").issue_survey_token(study_id, "week_10")
    survey = Survey(context, authenticate_survey(context, link.token))
    answers = visit_answers(world, "week_10")
    instruments = world.protocol.visit("week_10").instruments
    for instrument in instruments[:-1]:
        due = survey.save(instrument, answers[instrument])
        assert due.instruments == instruments
        assert due.saved == survey.due().saved  # what saving returns is what is stored
    assert survey.submit_saved() is None  # one screen still to answer: nothing changes
    with context.db.read() as session:
        assert (
            session.execute(select(Questionnaire).where(Questionnaire.visit == "week_10")).all()
            == []
        )
    assert len(audit_records(context, "survey_token.use")) == 0
    survey.save(instruments[-1], answers[instruments[-1]])
    views = survey.submit_saved()
    assert views is not None
    assert sorted(view.instrument for view in views) == sorted(instruments)
    assert {view.source for view in views} == {"participant_link"}
    assert "was used already" in str(refused(survey.submit_saved))
    assert len(audit_records(context, "survey_token.use")) == 1


def survey_status(trial: Trial, study_id: str, visit: str) -> str:
    return next(s.status for s in trial.schedule(study_id) if s.visit == visit)


def test_a_survey_link_opens_no_other_participant_and_nothing_else(
    world: World, context: Context
) -> None:
    mine, theirs = world.randomized(), world.randomized()
    world.clock.advance(70)
    coord = operator(context, "coord")
    link = coord.issue_survey_token(mine, "week_10")
    principal = authenticate_survey(context, link.token)
    forged = SurveyPrincipal(link.id, principal.participant_id + 1, theirs, "week_10")
    for claimed in (
        forged,
        SurveyPrincipal(link.id, principal.participant_id, mine, "week_26"),
        SurveyPrincipal(link.id + 1, principal.participant_id, mine, "week_10"),
    ):
        error = refused(Survey(context, claimed).due)
        assert isinstance(error, AccessError)
        assert "is not a valid survey link" in str(error)
        assert refused(Survey(context, claimed).submit, visit_answers(world, "week_10"))
    assert survey_status(coord, theirs, "week_10") == "due"

    # Answers for another visit's or no instrument are refused, and the link stays unused.
    survey = Survey(context, principal)
    partial = visit_answers(world, "week_10")
    partial.pop("rdq")
    assert "is due and has no answers" in str(refused(survey.submit, partial))
    assert survey.due().instruments == world.protocol.visit("week_10").instruments

    # A survey link is no API token, and an API token no survey link.
    assert refused(authenticate_token, context, link.token).summary == "token refused"
    api = coord.create_token("x", ["view"], 1).token
    assert "is not a valid survey link" in str(refused(authenticate_survey, context, api))


def test_survey_links_are_issued_only_for_a_follow_up_still_open(
    world: World, context: Context
) -> None:
    waiting = world.enrolled()
    study_id = world.randomized()
    coord = operator(context, "coord")
    assert "randomize first" in str(refused(coord.issue_survey_token, waiting, "week_10"))
    assert "follow-up visits" in str(refused(coord.issue_survey_token, study_id, "baseline"))
    other_site = refused(operator(context, "coord_nyc").issue_survey_token, study_id, "week_10")
    assert other_site.summary == "unknown participant"
    statistician = refused(operator(context, "stat").issue_survey_token, study_id, "week_10")
    assert isinstance(statistician, AccessError)

    world.clock.advance(70)
    link = coord.issue_survey_token(study_id, "week_10")
    principal = authenticate_survey(context, link.token)
    coord.withdraw(study_id, "withdrew_consent", "moved away", world.clock.today)
    closed = refused(Survey(context, principal).due)
    assert closed.summary == "the survey is closed"
    assert "withdrew" in str(refused(coord.issue_survey_token, study_id, "week_26"))
