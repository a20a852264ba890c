"""Run a SYNTHETIC trial through the real operations API, day by day.

Every synthetic person is screened, consented, enrolled, questioned, randomized,
treated and followed up by calling :class:`lumbar.operations.Trial` exactly as
staff would, on a clock the simulator moves forward: the audit trail, the
checks and the concealed randomization all run for real. Every participant is
marked synthetic, and so is the trial.

The staff the simulator uses: ``coordinator`` (unblinded: the simulator must
know each arm to simulate its outcomes), ``assessor`` (a blinded outcome
assessor who sends participants their survey links and records the follow-up
questionnaires answered by telephone), ``therapist1``... and
``statistician`` (unblinded, so the demo's report names the arms).
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lumbar.instruments import INSTRUMENTS
from lumbar.operations import Survey, Trial, authenticate_survey
from lumbar.protocol import Protocol
from lumbar.simulate.assumptions import DEFAULT_ASSUMPTIONS, Assumptions

__all__ = [
    "SimulationSummary",
    "SyntheticClock",
    "baseline_scores",
    "expected_differences",
    "follow_up_scores",
    "join_now",
    "populate_staff",
    "simulate_trial",
]

Progress = Callable[[str, int, int], None]
"""Called as progress(status, day, days): a status line, the simulated day and the expected
length of the trial in days (recruitment plus the last visit's window)."""

VISITS_MODELLED = 3
"""The outcome model has a mean per follow-up visit: the reference trial's three."""


class SyntheticClock:
    """The simulation's clock, moved forward event by event."""

    def __init__(self, start: dt.datetime):
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class SimulationSummary:
    screened: int = 0
    ineligible: int = 0
    declined: int = 0
    randomized: int = 0
    by_arm: dict[str, int] = field(default_factory=dict)
    sessions: int = 0
    adverse_events: int = 0
    lost: int = 0
    questionnaires: int = 0
    by_link: int = 0
    """Follow-up visits the participant answered through their survey link."""
    operations: int = 0


@dataclass
class _Person:
    """A synthetic person's latent values, drawn once so the arm alone changes the outcome."""

    number: int
    answers: dict[str, Any]
    eligible: bool
    declines: bool
    rdq: float
    bother: float
    noise: np.ndarray  # (2, visits): standardized follow-up noise for rdq and bothersomeness
    lost_before: int | None  # index of the first follow-up visit missed for good
    extras: np.random.Generator
    study_id: str = ""
    arm: str = ""
    randomized_on: dt.date | None = None


def populate_staff(admin: Trial, assumptions: Assumptions = DEFAULT_ASSUMPTIONS) -> list[str]:
    """Add the simulator's site and staff; return the therapists' user names."""
    admin.add_site("SEA", "Seattle (synthetic)")
    admin.add_staff(
        "coordinator",
        "coordinator",
        ["SEA"],
        unblinded=True,
        reason="synthetic trial: the simulator must know each arm to simulate its outcomes",
    )
    admin.add_staff("assessor", "outcome_assessor", ["SEA"])
    admin.add_staff(
        "statistician",
        "statistician",
        all_sites=True,
        unblinded=True,
        reason="synthetic trial: the demo's report names the arms",
    )
    therapists = [f"therapist{number}" for number in range(1, assumptions.therapists + 1)]
    for name in therapists:
        admin.add_staff(name, "therapist", ["SEA"], reason="delivers the synthetic massage")
    return therapists


def simulate_trial(
    protocol: Protocol,
    open_as: Callable[[str], Trial],
    clock: SyntheticClock,
    *,
    assumptions: Assumptions = DEFAULT_ASSUMPTIONS,
    seed: int = 20110705,
    progress: Progress | None = None,
) -> SimulationSummary:
    """Recruit, treat and follow a synthetic trial to its last visit; return what happened."""
    rng = np.random.default_rng(seed)
    therapists = populate_staff(open_as("admin"), assumptions)
    runner = _Runner(protocol, open_as, clock, assumptions, rng, therapists, progress)
    return runner.run()


def join_now(
    protocol: Protocol,
    coordinator: Trial,
    clock: SyntheticClock,
    *,
    assumptions: Assumptions = DEFAULT_ASSUMPTIONS,
    seed: int = 20110705,
) -> str:
    """One more synthetic person screened, consented, enrolled, questioned at baseline and
    randomized by ``coordinator`` at ``clock``'s time (the clock ``coordinator`` was opened
    with); returns their study id. Nothing of their follow-up is done: it is left to them."""
    rng = np.random.default_rng(seed)
    runner = _Runner(protocol, lambda user: coordinator, clock, assumptions, rng, [], None)
    number = 0
    while runner.summary.randomized == 0:
        number += 1
        person = runner._person(number)
        if person.eligible and not person.declines:
            runner._screen(person, None)
    return person.study_id


class _Runner:
    def __init__(
        self,
        protocol: Protocol,
        open_as: Callable[[str], Trial],
        clock: SyntheticClock,
        assumptions: Assumptions,
        rng: np.random.Generator,
        therapists: list[str],
        progress: Progress | None,
    ):
        self.protocol = protocol
        self.clock = clock
        self.assumptions = assumptions
        self.rng = rng
        self.coordinator = open_as("coordinator")
        self.assessor = open_as("assessor")
        self.therapists = [open_as(name) for name in therapists]
        self.progress = progress or (lambda phase, done, total: None)
        self.summary = SimulationSummary()
        self.queue: list[tuple[dt.datetime, int, str, _Person, Any]] = []
        self.sequence = 0
        self.pending = 0  # screenings scheduled that will end in a randomization
        self.start = clock.now
        last = protocol.follow_up_visits[-1]
        self.expected_days = assumptions.recruitment_days + last.day + last.window.after
        if len(protocol.follow_up_visits) != VISITS_MODELLED:
            raise ValueError("the simulator models a protocol with three follow-up visits")

    # ------------------------------------------------------------------ the event loop

    def _schedule(self, when: dt.datetime, kind: str, person: _Person, detail: Any = None) -> None:
        self.sequence += 1
        heapq.heappush(self.queue, (when, self.sequence, kind, person, detail))

    def run(self) -> SimulationSummary:
        target = self.assumptions.participants
        expected_screens = target / (
            self.assumptions.eligible_share * (1 - self.assumptions.declined_share)
        )
        spacing = self.assumptions.recruitment_days * 86400 / expected_screens
        number = 0
        next_screen = self.start
        while self.summary.randomized < target or self.queue:
            if self.summary.randomized + self.pending < target and (
                not self.queue or next_screen <= self.queue[0][0]
            ):
                number += 1
                person = self._person(number)
                if person.eligible and not person.declines:
                    self.pending += 1
                self._schedule(next_screen, "screen", person)
                next_screen += dt.timedelta(seconds=float(self.rng.exponential(spacing)))
                continue
            when, _, kind, person, detail = heapq.heappop(self.queue)
            self.clock.now = when
            getattr(self, f"_{kind}")(person, detail)
            self.summary.operations += 1
            if kind in ("screen", "visit"):
                day = (self.clock.now - self.start).days
                status = (
                    f"recruiting: {self.summary.randomized}/{target} randomized"
                    if self.summary.randomized < target
                    else f"following up: {self.summary.questionnaires} questionnaires"
                )
                self.progress(status, day, max(day, self.expected_days))
        return self.summary

    # ------------------------------------------------------------------ people

    def _person(self, number: int) -> _Person:
        a, rng = self.assumptions, self.rng
        eligible = bool(rng.random() < a.eligible_share)
        age = int(np.clip(round(rng.normal(a.age_mean, a.age_sd)), 20, 64))
        answers = _eligible_answers(
            self.protocol, age, "female" if rng.random() < a.female_share else "male"
        )
        if not eligible:
            _make_ineligible(self.protocol, answers, rng, a)
        noise = rng.multivariate_normal(
            np.zeros(2 * VISITS_MODELLED), a.noise_correlation()
        ).reshape(2, VISITS_MODELLED)
        lost_before = None
        for index, share in enumerate(a.lost_by_visit):
            if rng.random() < share:
                lost_before = index
                break
        declines = bool(rng.random() < a.declined_share)
        baseline = baseline_scores(a, rng.standard_normal((2, 1)))
        return _Person(
            number=number,
            answers=answers,
            eligible=eligible,
            declines=declines,
            rdq=float(baseline[0][0]),
            bother=float(baseline[1][0]),
            noise=noise,
            lost_before=lost_before,
            extras=np.random.default_rng(rng.integers(2**63)),
        )

    # ------------------------------------------------------------------ events

    def _screen(self, person: _Person, _: Any) -> None:
        coordinator = self.coordinator
        self.summary.screened += 1
        if person.eligible and not person.declines:
            self.pending -= 1
        screening = coordinator.screen("SEA", person.answers, synthetic=True)
        if screening.status != "eligible":
            self.summary.ineligible += 1
            return
        if person.declines:
            self.summary.declined += 1
            return
        today = self.clock.now.date()
        coordinator.consent(screening.screening_number, "1.0", today)
        person.study_id = coordinator.enrol(screening.screening_number)
        baseline = self.protocol.baseline
        coordinator.record_visit(
            person.study_id,
            baseline.id,
            {name: self._answers(person, name, None) for name in baseline.instruments},
            completed_on=today,
            source="staff_entry",
        )
        assignment = coordinator.randomize(person.study_id)
        assert assignment.arm is not None, "the simulator's coordinator sees arms"
        person.arm = assignment.arm
        person.randomized_on = today
        self.summary.randomized += 1
        self.summary.by_arm[person.arm] = self.summary.by_arm.get(person.arm, 0) + 1
        self.summary.questionnaires += len(baseline.instruments)
        self._plan_follow_up(person)

    def _plan_follow_up(self, person: _Person) -> None:
        a, rng = self.assumptions, person.extras
        arm = self.protocol.arm(person.arm)
        start = self.clock.now
        visits = self.protocol.follow_up_visits
        lost = person.lost_before
        if lost is not None and arm.sessions.planned and rng.random() > a.massage_lost_factor:
            lost = None  # massage arms lose fewer
        lost_on: float = math.inf
        if lost is not None:
            previous = visits[lost - 1].day if lost else 14
            lost_on = int(rng.integers(previous + 1, visits[lost].day))
            self._schedule(start + dt.timedelta(days=lost_on), "withdraw", person, None)
        if arm.sessions.planned and rng.random() >= a.never_start:
            interval = arm.sessions.interval_days or 7
            attended = [
                k
                for k in range(arm.sessions.planned)
                if rng.random() < a.attendance and 3 + interval * k < lost_on
            ]
            for k in attended:
                day = start + dt.timedelta(days=3 + interval * k, hours=float(rng.uniform(0, 6)))
                self._schedule(day, "session", person, k)
            if attended and rng.random() < a.adverse_event_share:
                k = attended[int(rng.integers(len(attended)))]
                self._schedule(
                    start + dt.timedelta(days=4 + interval * k), "adverse_event", person, False
                )
        serious_on = int(rng.integers(20, 300))
        if rng.random() < a.serious_event_share and serious_on < lost_on:
            self._schedule(start + dt.timedelta(days=serious_on), "adverse_event", person, True)
        for index, visit in enumerate(visits):
            if lost is not None and index >= lost:
                return
            offset = float(
                np.clip(
                    rng.normal(0, a.visit_timing_sd_days), -visit.window.before, visit.window.after
                )
            )
            self._schedule(
                start + dt.timedelta(days=visit.day + offset, hours=2), "visit", person, index
            )

    def _session(self, person: _Person, number: int) -> None:
        arm = self.protocol.arm(person.arm)
        rng = person.extras
        therapist = self.therapists[person.number % len(self.therapists)]
        techniques = list(
            rng.choice(
                arm.techniques,
                size=min(len(arm.techniques), int(rng.integers(2, 5))),
                replace=False,
            )
        )
        regions = [
            "low_back",
            *rng.choice(
                ["buttocks", "hips", "upper_back", "thighs"],
                size=int(rng.integers(0, 3)),
                replace=False,
            ),
        ]
        minutes = (
            (arm.sessions.first_session_minutes or 60)
            if number == 0
            else (arm.sessions.minutes or 60)
        )
        home_care = list(arm.home_care[:1]) if arm.home_care and rng.random() < 0.5 else []
        therapist.log_session(
            person.study_id,
            self.clock.now.date(),
            int(minutes - rng.integers(0, 10)),
            [str(t) for t in techniques],
            [str(r) for r in regions],
            home_care=home_care,
            ratings=self._session_ratings(person, number),
        )
        self.summary.sessions += 1

    def _session_ratings(self, person: _Person, number: int) -> dict[str, int]:
        """The 0-10 ratings the person gives before session ``number`` (0 is the first).

        The latent bothersomeness moves in a straight line from baseline to its week-10
        value over the first ten weeks, so the early sessions show the arm's response
        building up; pain intensity follows it a little lower. Each rating adds its own
        noise from a generator seeded by the person's latent draws and the session, so the
        ratings take nothing from the draws of the rest of the simulation.
        """
        declared = self.protocol.session_rating
        if declared is None or person.randomized_on is None:
            return {}
        week_10 = self.protocol.follow_up_visits[0].day
        day = (self.clock.now.date() - person.randomized_on).days
        _, bother_at_week_10 = self._scores(person, 0)
        share = min(max(day / week_10, 0.0), 1.0)
        latent = person.bother + (bother_at_week_10 - person.bother) * share
        seed = [*np.frombuffer(person.noise.tobytes(), dtype=np.uint32).tolist(), number]
        rng = np.random.default_rng(seed)
        shift = {"pain_intensity": -0.5}
        return {
            name: int(np.clip(round(latent + shift.get(name, 0.0) + rng.normal(0, 0.8)), 0, 10))
            for name in declared.instruments
        }

    def _adverse_event(self, person: _Person, serious: bool) -> None:
        if serious:
            self.coordinator.report_adverse_event(
                person.study_id,
                "hospital admission unrelated to back pain (synthetic)",
                self.clock.now.date(),
                severity="severe",
                serious=True,
                relatedness="not_related",
                outcome="recovered",
            )
        else:
            self.coordinator.report_adverse_event(
                person.study_id,
                "increased back pain for a day after a session (synthetic)",
                self.clock.now.date(),
                severity="mild" if person.extras.random() < 0.7 else "moderate",
                serious=False,
                relatedness="probable",
                outcome="recovered",
            )
        self.summary.adverse_events += 1

    def _withdraw(self, person: _Person, _: Any) -> None:
        self.coordinator.withdraw(
            person.study_id,
            "lost_to_follow_up",
            "did not answer calls (synthetic)",
            self.clock.now.date(),
        )
        self.summary.lost += 1

    def _visit(self, person: _Person, index: int) -> None:
        """The follow-up visit's questionnaires: most through the participant's own link (the
        assessor issues it and the participant answers it, both on the visit's day, through
        the same :class:`~lumbar.operations.Survey` as the phone pages), the rest by
        telephone, entered by the blinded assessor."""
        visit = self.protocol.follow_up_visits[index]
        answers = {name: self._answers(person, name, index) for name in visit.instruments}
        if self._answers_by_link(person, index):
            link = self.assessor.issue_survey_token(person.study_id, visit.id)
            context = self.assessor.context
            Survey(context, authenticate_survey(context, link.token)).submit(answers)
            self.summary.by_link += 1
        else:
            self.assessor.record_visit(
                person.study_id,
                visit.id,
                answers,
                completed_on=self.clock.now.date(),
                source="staff_entry",
            )
        self.summary.questionnaires += len(visit.instruments)

    def _answers_by_link(self, person: _Person, index: int) -> bool:
        """Whether the person answers follow-up visit ``index`` through their link: drawn from
        a generator of its own (seeded like the session ratings), so the choice takes nothing
        from the draws of the rest of the simulation and the outcomes stay those of the seed."""
        seed = [*np.frombuffer(person.noise.tobytes(), dtype=np.uint32).tolist(), 1000 + index]
        return bool(np.random.default_rng(seed).random() < self.assumptions.link_share)

    # ------------------------------------------------------------------ outcomes

    def _scores(self, person: _Person, index: int | None) -> tuple[float, float]:
        """RDQ and bothersomeness at baseline (index None) or a follow-up visit."""
        if index is None:
            return person.rdq, person.bother
        rdq, bother = follow_up_scores(
            self.assumptions,
            person.arm,
            index,
            np.array([person.rdq]),
            np.array([person.bother]),
            person.noise[:, index : index + 1],
        )
        return float(rdq[0]), float(bother[0])

    def _answers(self, person: _Person, instrument: str, index: int | None) -> dict[str, Any]:
        rdq, bother = self._scores(person, index)
        rng = person.extras
        improvement = (person.rdq - rdq) / 24 if index is not None else 0.0
        if instrument == "rdq":
            items = [item.id for item in INSTRUMENTS.get("rdq").items]
            yes = set(rng.choice(items, size=round(rdq), replace=False))
            return {item: int(item in yes) for item in items}
        if instrument == "bothersomeness":
            return {"bothersomeness": round(bother)}
        if instrument == "satisfaction":
            massage = index is not None and bool(self.protocol.arm(person.arm).sessions.planned)
            level = 3 + 4 * improvement + (0.8 if massage else 0) + rng.normal(0, 0.8)
            return {"satisfaction": int(np.clip(round(level), 1, 5))}
        if instrument == "disability_days":
            restricted = int(np.clip(rng.poisson(max(rdq, 0.1) / 2), 0, 28))
            return {"restricted_days": restricted, "bed_days": int(rng.binomial(restricted, 0.15))}
        if instrument == "medication_use":
            takes = bool(rng.random() < 0.25 + rdq / 40)
            if not takes:
                return {"any_medication": 0}
            kinds = {
                k: int(rng.random() < p)
                for k, p in (
                    ("non_opioid_analgesic", 0.8),
                    ("opioid", 0.1),
                    ("muscle_relaxant", 0.15),
                    ("other_medication", 0.1),
                )
            }
            return {"any_medication": 1, **kinds}
        if instrument == "lifestyle":
            sleep = float(np.clip(round(rng.normal(7 - bother / 10, 0.9) * 2) / 2, 3, 10))
            return {"sleep_hours": sleep, "exercise_days": int(rng.integers(0, 6))}
        if instrument == "global_improvement":
            rating = 4 - 12 * improvement + rng.normal(0, 0.9)
            return {"global_change": int(np.clip(round(rating), 1, 7))}
        raise ValueError(f"the simulator does not know instrument {instrument}")


def baseline_scores(assumptions: Assumptions, draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latent baseline RDQ and bothersomeness from standard normal ``draws`` of shape (2, n)."""
    a = assumptions
    rdq = np.clip(a.rdq_baseline_mean + a.rdq_baseline_sd * draws[0], 2, 24)
    bother = np.clip(a.bother_baseline_mean + a.bother_baseline_sd * draws[1], 1, 10)
    return rdq, bother


def follow_up_scores(
    assumptions: Assumptions,
    arm: str,
    index: int,
    rdq: np.ndarray,
    bother: np.ndarray,
    noise: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Latent RDQ and bothersomeness at follow-up visit ``index`` (before rounding).

    ``rdq`` and ``bother`` are the latent baseline values, ``noise`` the standardized
    deviations (rows: RDQ, bothersomeness). Each outcome is its arm's mean at the visit
    plus a regression on its own baseline (correlation ``baseline_correlation``), clipped
    to the scale; the questionnaire answers round it.
    """
    a = assumptions
    rho = a.baseline_correlation
    rdq_mean = (
        a.rdq_baseline_mean
        + a.rdq_usual_care_change[index]
        + a.rdq_effect.get(arm, (0.0,) * len(a.lost_by_visit))[index]
    )
    bother_mean = (
        a.bother_baseline_mean
        + a.bother_usual_care_change[index]
        + a.bother_effect.get(arm, (0.0,) * len(a.lost_by_visit))[index]
    )
    rdq_follow_up = (
        rdq_mean
        + rho * a.rdq_sd / a.rdq_baseline_sd * (rdq - a.rdq_baseline_mean)
        + a.rdq_sd * math.sqrt(1 - rho**2) * noise[0]
    )
    bother_follow_up = (
        bother_mean
        + rho * a.bother_sd / a.bother_baseline_sd * (bother - a.bother_baseline_mean)
        + a.bother_sd * math.sqrt(1 - rho**2) * noise[1]
    )
    return np.clip(rdq_follow_up, 0, 24), np.clip(bother_follow_up, 0, 10)


def expected_differences(
    protocol: Protocol,
    assumptions: Assumptions = DEFAULT_ASSUMPTIONS,
    *,
    draws: int = 400_000,
    seed: int = 1,
) -> pd.DataFrame:
    """The effects the simulator builds in, on the scale the questionnaires record.

    The assumptions' effects are shifts of a latent score; the recorded scores are
    clipped to their scales and rounded, which shrinks the effects a little. This
    returns, per outcome column, follow-up visit and arm, the difference in expected
    recorded score from the reference arm, by Monte Carlo over ``draws`` people: the
    target an unbiased analysis of a simulated trial estimates.
    """
    rng = np.random.default_rng(seed)
    baseline = baseline_scores(assumptions, rng.standard_normal((2, draws)))
    visits = len(assumptions.lost_by_visit)
    noise = rng.multivariate_normal(
        np.zeros(2 * visits), assumptions.noise_correlation(), size=draws
    ).T.reshape(2, visits, draws)
    reference = protocol.analysis.reference_arm
    rows = []
    for index, visit in enumerate(protocol.follow_up_visits[:visits]):
        means = {}
        for arm in protocol.arms:
            rdq, bother = follow_up_scores(
                assumptions, arm.id, index, baseline[0], baseline[1], noise[:, index]
            )
            means[arm.id] = (np.round(rdq).mean(), np.round(bother).mean())
        for arm in protocol.arms:
            if arm.id == reference:
                continue
            for position, column in enumerate(("rdq_total", "bothersomeness_score")):
                rows.append(
                    {
                        "outcome": column,
                        "visit": visit.id,
                        "arm": arm.id,
                        "difference": float(means[arm.id][position] - means[reference][position]),
                        "latent_difference": float(
                            (assumptions.rdq_effect, assumptions.bother_effect)[position].get(
                                arm.id, (0.0,) * visits
                            )[index]
                        ),
                    }
                )
    return pd.DataFrame(rows)


def _eligible_answers(protocol: Protocol, age: int, sex: str) -> dict[str, Any]:
    answers: dict[str, Any] = {
        q.id: False for q in protocol.eligibility.questions if q.type == "yes_no"
    }
    for rule in protocol.eligibility.inclusion:
        if rule.when.question is not None and rule.when.is_ is True:
            answers[rule.when.question] = True
    answers.update(age=age, sex=sex, pain_duration="years_1_to_5", pain_frequency="every_day")
    return answers


def _make_ineligible(
    protocol: Protocol,
    answers: dict[str, Any],
    rng: np.random.Generator,
    assumptions: Assumptions,
) -> None:
    rules = {
        rule.id: rule for rule in (*protocol.eligibility.inclusion, *protocol.eligibility.exclusion)
    }
    chosen = assumptions.ineligibility_weights
    names = [name for name in chosen if name in rules and chosen[name] > 0]
    if not names:
        raise ValueError(
            "assumption ineligibility_weights: none of its rules is in the protocol "
            f"(the protocol's rules: {', '.join(sorted(rules))})"
        )
    weights = np.array([chosen[name] for name in names])
    count = 2 if rng.random() < assumptions.second_reason_share and len(names) > 1 else 1
    for name in rng.choice(names, size=count, replace=False, p=weights / weights.sum()):
        rule = rules[str(name)]
        if rule.id == "adult_under_65":
            answers["age"] = int(rng.choice([18, 19, 66, 70, 75]))
        elif rule.id == "chronic_low_back_pain":
            answers["pain_duration"] = "months_1_to_3"
        elif rule.when.question is not None:
            answers[rule.when.question] = (
                not bool(rule.when.is_) if rule in protocol.eligibility.inclusion else True
            )
