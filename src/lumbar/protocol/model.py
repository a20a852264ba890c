"""The trial protocol as data: a frozen, validated model.

A :class:`Protocol` is read from YAML (:mod:`lumbar.protocol.loading`) or built
in Python; either way it is checked in two passes. Pydantic checks the shape of
every field (types, ranges, required fields, unknown fields); then
:func:`lumbar.protocol.rules.check_protocol` checks everything that relates one
part to another (an outcome's visit exists and collects its instrument, block
sizes fit the allocation ratio, eligibility rules ask existing questions with
fitting values...). Both passes report every problem with its path, so a loader
can point at the line.

Sections of a protocol file, in order: ``lumbar_protocol`` (the format version),
``trial``, ``arms``, ``vocabulary``, ``eligibility``, ``visits``,
``randomization``, ``outcomes``, ``analysis``, and the optional ``access``,
``messages``, ``session_rating`` and ``consent``. ``docs/protocol.md`` describes each field.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from numbers import Real
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from lumbar import PROTOCOL_FORMAT
from lumbar._declared import (
    Flag,
    Frozen,
    Identifier,
    Number,
    Text,
    Whole,
    find_by_id,
    format_number,
    refuse,
)
from lumbar.instruments import INSTRUMENTS, Instrument, MeasurementProperties
from lumbar.protocol.consent import ConsentDocument, ConsentPlan, ConsentQuestion
from lumbar.protocol.messages import ParticipantMessages
from lumbar.protocol.rules import RATING_MAXIMUM, RATING_MINIMUM, check_protocol

__all__ = [
    "PROTOCOL_FORMAT",
    "RATING_MAXIMUM",
    "RATING_MINIMUM",
    "Access",
    "AnalysisPlan",
    "Arm",
    "Condition",
    "ConsentDocument",
    "ConsentPlan",
    "ConsentQuestion",
    "Eligibility",
    "OutOfWindowRule",
    "Outcome",
    "ParticipantMessages",
    "Protocol",
    "Question",
    "Randomization",
    "Rule",
    "RuleCategory",
    "ScalarValue",
    "ScoreSource",
    "SessionPlan",
    "SessionRating",
    "StratumFactor",
    "StratumLevel",
    "Term",
    "TrialInfo",
    "Visit",
    "VisitTiming",
    "Vocabulary",
    "Window",
    "WindowStatus",
]


_SLUG = re.compile(r"[a-z][a-z0-9-]{0,62}")


def _check_slug(value: str) -> str:
    if not _SLUG.fullmatch(value):
        raise refuse(
            "must be a short name of lowercase letters, digits and hyphens, starting with a letter",
            "for example massage-clbp",
        )
    return value


Slug = Annotated[str, AfterValidator(_check_slug)]


def _check_format(value: int) -> int:
    if value != PROTOCOL_FORMAT:
        raise refuse(
            f"this lumbar reads protocol format {PROTOCOL_FORMAT}",
            f"write 'lumbar_protocol: {PROTOCOL_FORMAT}', or use the lumbar version the file "
            "was written for",
        )
    return value


ScalarValue = bool | int | float | str
"""An answer value a rule compares with: true/false, a number, or a choice id."""


class Term(Frozen):
    """An entry of a controlled vocabulary: a stable id and a label."""

    id: Identifier
    label: Text
    description: str = ""


class TrialInfo(Frozen):
    """Who the trial is: a stable id, a title and the protocol version."""

    id: Slug
    title: Text
    version: Text
    registration: str = ""
    description: str = ""
    sources: tuple[Text, ...] = ()
    planned_participants: Whole | None = Field(
        default=None, ge=1, description="the planned number of participants randomized"
    )


class SessionPlan(Frozen):
    """The treatment sessions an arm plans: how many, how often, how long."""

    planned: Whole = Field(ge=0, description="number of sessions; 0 for usual care")
    interval_days: Whole | None = Field(
        default=None, ge=1, description="days between sessions (7 = weekly)"
    )
    minutes: Whole | None = Field(default=None, ge=1, description="minutes per session")
    first_session_minutes: Whole | None = Field(
        default=None, ge=1, description="minutes of the first session, when longer"
    )

    @model_validator(mode="after")
    def _consistent(self) -> SessionPlan:
        given = [
            name
            for name in ("interval_days", "minutes", "first_session_minutes")
            if getattr(self, name) is not None
        ]
        if self.planned == 0 and given:
            raise refuse(
                f"an arm with no planned sessions cannot set {', '.join(given)}",
                "remove them, or plan sessions",
            )
        if self.planned > 0:
            absent = [name for name in ("interval_days", "minutes") if getattr(self, name) is None]
            if absent:
                raise refuse(
                    f"planned sessions need {' and '.join(absent)}",
                    "add interval_days (7 for weekly) and minutes per session",
                )
        first, usual = self.first_session_minutes, self.minutes
        if first is not None and usual is not None and first < usual:
            raise refuse(
                f"first_session_minutes ({first}) may not be shorter than minutes ({usual})",
                "give the first session's length, or remove first_session_minutes when it is "
                "as long as the others",
            )
        return self

    @property
    def frequency(self) -> str:
        if self.planned == 0 or self.interval_days is None:
            return "none"
        if self.interval_days == 7:
            return "weekly"
        if self.interval_days == 1:
            return "daily"
        return f"every {self.interval_days} days"


class Arm(Frozen):
    """One arm of the trial."""

    id: Identifier
    label: Text
    description: Text
    control: Flag = False
    sessions: SessionPlan
    techniques: tuple[Identifier, ...] = Field(
        default=(), description="techniques therapists may log in this arm (vocabulary ids)"
    )
    home_care: tuple[Text, ...] = Field(
        default=(), description="home-care advice therapists may give in this arm"
    )

    @model_validator(mode="after")
    def _techniques_fit_sessions(self) -> Arm:
        if self.sessions.planned > 0 and not self.techniques:
            raise refuse(
                "an arm with planned sessions must list the techniques therapists may log",
                "add techniques: [...] with ids from vocabulary.techniques",
            )
        if self.sessions.planned == 0 and self.techniques:
            raise refuse(
                "an arm with no planned sessions cannot list techniques",
                "remove techniques, or plan sessions",
            )
        return self


class Vocabulary(Frozen):
    """The controlled terms a therapist picks from when logging a session."""

    techniques: tuple[Term, ...] = ()
    body_regions: tuple[Term, ...] = ()


QuestionType = Literal["integer", "number", "yes_no", "choice"]


class Question(Frozen):
    """A screening question whose answer eligibility rules and strata use."""

    id: Identifier
    label: Text
    type: QuestionType
    minimum: Number | None = None
    maximum: Number | None = None
    unit: str = ""
    choices: tuple[Term, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Question:
        if self.type == "choice" and len(self.choices) < 2:
            raise refuse(
                "a choice question needs at least two choices",
                "add choices: [{id: ..., label: ...}, ...], or use type yes_no",
            )
        if self.type != "choice" and self.choices:
            raise refuse(
                f"a {self.type} question has no choices", "remove choices, or use type choice"
            )
        if self.type in ("yes_no", "choice") and (
            self.minimum is not None or self.maximum is not None
        ):
            raise refuse(
                f"a {self.type} question has no minimum or maximum", "remove minimum and maximum"
            )
        if (
            self.minimum is not None
            and self.maximum is not None
            and not self.minimum < self.maximum
        ):
            raise refuse(
                f"minimum ({format_number(self.minimum)}) must be below maximum "
                f"({format_number(self.maximum)})",
                "swap or correct the bounds",
            )
        if self.type == "integer":
            for bound in (self.minimum, self.maximum):
                if bound is not None and not float(bound).is_integer():
                    raise refuse(
                        f"an integer question needs whole-number bounds, got {bound}",
                        "round the bound, or use type number",
                    )
        return self

    @property
    def choice_ids(self) -> tuple[str, ...]:
        return tuple(choice.id for choice in self.choices)

    @property
    def is_numeric(self) -> bool:
        return self.type in ("integer", "number")

    def problem_with(self, value: object) -> str | None:
        """Why ``value`` cannot be an answer to this question, or None when it can.

        None (not answered) is always acceptable.
        """
        if value is None:
            return None
        if self.type == "yes_no":
            return None if isinstance(value, bool) else "must be true (yes) or false (no)"
        if self.type == "choice":
            if isinstance(value, str) and value in self.choice_ids:
                return None
            return f"must be one of the choices of question {self.id}"
        if isinstance(value, bool) or not isinstance(value, Real):
            return "must be a number"
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any float, so beyond any plausible answer
            return "must be a number of a plausible size"
        if not math.isfinite(number):
            return "must be a finite number"
        if self.type == "integer" and not number.is_integer():
            return "must be a whole number"
        if self.minimum is not None and number < self.minimum:
            return f"must be at least {format_number(self.minimum)}"
        if self.maximum is not None and number > self.maximum:
            return f"must be at most {format_number(self.maximum)}"
        return None

    def expected(self) -> str:
        """The answers this question takes, in words."""
        if self.type == "yes_no":
            return "answer true (yes) or false (no)"
        if self.type == "choice":
            return "the choices are: " + ", ".join(self.choice_ids)
        bounds = []
        if self.minimum is not None:
            bounds.append(f"from {format_number(self.minimum)}")
        if self.maximum is not None:
            bounds.append(f"to {format_number(self.maximum)}")
        kind = "a whole number" if self.type == "integer" else "a number"
        unit = f" {self.unit}" if self.unit else ""
        return " ".join([f"give {kind}", *bounds]) + unit


_COMPARISONS = ("is", "in", "between", "at_least", "at_most")


class Condition(Frozen):
    """A test over screening answers, written as data.

    A leaf names a ``question`` and one comparison::

        {question: age, between: [20, 64]}
        {question: pain_frequency, in: [half_the_days, every_day]}
        {question: cancer, is: true}
        {question: age, at_least: 20}

    and ``all``, ``any`` and ``not`` combine conditions. A condition whose
    question is unanswered is *unknown*, and unknowns combine by three-valued
    logic (``any`` with one true member is true even if others are unknown).
    """

    question: Identifier | None = None
    is_: ScalarValue | None = Field(default=None, alias="is")
    in_: tuple[ScalarValue, ...] | None = Field(default=None, alias="in")
    between: tuple[Number, Number] | None = None
    at_least: Number | None = None
    at_most: Number | None = None
    all: tuple[Condition, ...] | None = None
    any: tuple[Condition, ...] | None = None
    not_: Condition | None = Field(default=None, alias="not")

    @model_validator(mode="after")
    def _one_form(self) -> Condition:
        forms = [
            name
            for name, value in (
                ("question", self.question),
                ("all", self.all),
                ("any", self.any),
                ("not", self.not_),
            )
            if value is not None
        ]
        if len(forms) != 1:
            raise refuse(
                "a condition is one of {question: ..., <comparison>: ...}, {all: [...]}, "
                f"{{any: [...]}} or {{not: ...}}; this one has {forms or 'none of them'}",
                "split it into separate conditions combined with all or any",
            )
        comparisons = self.comparisons()
        if self.question is not None:
            if len(comparisons) != 1:
                raise refuse(
                    "a condition on a question needs exactly one comparison out of "
                    f"{', '.join(_COMPARISONS)}; it has {comparisons or 'none'}",
                    "for a range write between: [low, high]; to combine tests use all: [...]",
                )
        elif comparisons:
            raise refuse(
                f"'{comparisons[0]}' needs a question", "add question: <id of a screening question>"
            )
        for name, members in (("all", self.all), ("any", self.any)):
            if members is not None and not members:
                raise refuse(
                    f"'{name}' needs at least one condition", "add conditions or remove it"
                )
        if self.in_ is not None and not self.in_:
            raise refuse("'in' needs at least one value", "list the answers that match")
        if self.between is not None and self.between[0] > self.between[1]:
            low, high = self.between
            raise refuse(
                f"'between' needs [low, high] with low <= high, got [{format_number(low)}, "
                f"{format_number(high)}]",
                "swap the two numbers",
            )
        return self

    def comparisons(self) -> list[str]:
        present = {
            "is": self.is_,
            "in": self.in_,
            "between": self.between,
            "at_least": self.at_least,
            "at_most": self.at_most,
        }
        return [name for name, value in present.items() if value is not None]

    def questions(self) -> set[str]:
        """Every question this condition reads."""
        if self.question is not None:
            return {self.question}
        found: set[str] = set()
        for member in (*(self.all or ()), *(self.any or ()), *([self.not_] if self.not_ else [])):
            found |= member.questions()
        return found


RuleCategory = Literal[
    "chronicity",
    "diagnosis",
    "demographic",
    "red_flag",
    "specific_cause",
    "comorbidity",
    "treatment_history",
    "practical",
]
"""Why a rule exists; CONSORT diagrams group reasons for exclusion by it.

``red_flag``: signs of serious pathology (cancer, fracture, infection, neurological
deficit); ``specific_cause``: a specific cause of back pain the trial does not study
(stenosis, sciatica, spondylolisthesis...); ``comorbidity``: another condition that
makes the treatment unsafe or the outcome unreadable; ``treatment_history``: recent
surgery or treatment; ``practical``: consent, language, travel, litigation;
``chronicity``, ``diagnosis`` and ``demographic``: who the trial is about.
"""


class Rule(Frozen):
    """An eligibility rule: an inclusion must hold; an exclusion excludes when it holds."""

    id: Identifier
    label: Text
    category: RuleCategory
    when: Condition


class Eligibility(Frozen):
    """Screening questions and the inclusion and exclusion rules over their answers."""

    questions: tuple[Question, ...]
    inclusion: tuple[Rule, ...] = Field(min_length=1)
    exclusion: tuple[Rule, ...] = ()


class Window(Frozen):
    """How many days before and after its target day a visit may be completed."""

    before: Whole = Field(ge=0)
    after: Whole = Field(ge=0)


class Visit(Frozen):
    """A scheduled visit: its target day from randomization, its window, its instruments."""

    id: Identifier
    label: Text
    day: Whole = Field(description="target day, counted from randomization (baseline is day 0)")
    window: Window
    instruments: tuple[Identifier, ...] = Field(min_length=1)

    @property
    def earliest_day(self) -> int:
        return self.day - self.window.before

    @property
    def latest_day(self) -> int:
        return self.day + self.window.after

    def timing(self, day: int) -> VisitTiming:
        """Where ``day`` (days from randomization) falls against this visit's window."""
        window: WindowStatus = "in_window"
        if day < self.earliest_day:
            window = "early"
        elif day > self.latest_day:
            window = "late"
        return VisitTiming(window, day - self.day)


WindowStatus = Literal["in_window", "early", "late"]
"""Where a completion date falls against its visit's window: inside it, before it opens,
or after it closes."""


@dataclass(frozen=True)
class VisitTiming:
    """A questionnaire's completion day against its visit: the window status and the days
    from the target day (negative: before it)."""

    window: WindowStatus
    days_from_target: int

    @property
    def outside(self) -> bool:
        return self.window != "in_window"


class StratumLevel(Frozen):
    """One level of a stratification factor.

    For a factor read from a choice or yes/no question, ``values`` lists the
    answers that fall in this level; for a numeric factor the factor's
    ``cutpoints`` decide and ``values`` stays empty.
    """

    id: Identifier
    label: Text
    values: tuple[ScalarValue, ...] = ()


class ScoreSource(Frozen):
    """A baseline score used as a stratification factor."""

    instrument: Identifier
    score: Identifier | None = None


class StratumFactor(Frozen):
    """A stratification factor, read from a screening answer or a baseline score.

    A numeric factor is cut at ``cutpoints``: level 1 holds values below the
    first cutpoint, level k values from cutpoint k-1 up to (not including)
    cutpoint k, and the last level values from the last cutpoint up.
    """

    id: Identifier
    label: Text
    question: Identifier | None = None
    baseline_score: ScoreSource | None = None
    cutpoints: tuple[Number, ...] = ()
    levels: tuple[StratumLevel, ...] = Field(min_length=2)

    @model_validator(mode="after")
    def _one_source(self) -> StratumFactor:
        if (self.question is None) == (self.baseline_score is None):
            raise refuse(
                "a stratification factor needs exactly one of question, baseline_score",
                "read the factor from a screening question or from a baseline score, not both",
            )
        if list(self.cutpoints) != sorted(set(self.cutpoints)):
            raise refuse(
                "cutpoints must be strictly increasing",
                "list each cutpoint once, smallest first",
            )
        return self


class Randomization(Frozen):
    """Stratified permuted blocks: block sizes, allocation ratio and strata factors.

    Within each stratum (a combination of one level of every factor), blocks are
    laid end to end; each block's size is drawn from ``block_sizes`` and it holds
    every arm in proportion to ``ratio``, in a random order.
    """

    method: Literal["permuted_blocks"]
    ratio: dict[Identifier, Annotated[Whole, Field(ge=1)]]
    block_sizes: tuple[Annotated[Whole, Field(ge=1)], ...] = Field(min_length=1)
    strata: tuple[StratumFactor, ...] = ()
    slots_per_stratum: Whole | None = Field(
        default=None,
        ge=1,
        description="length of each stratum's allocation list; trial.planned_participants "
        "when omitted (so one stratum could take the whole trial)",
    )

    @property
    def ratio_total(self) -> int:
        return sum(self.ratio.values())

    @property
    def stratum_count(self) -> int:
        count = 1
        for factor in self.strata:
            count *= len(factor.levels)
        return count


class Outcome(Frozen):
    """A pre-specified outcome: a score of an instrument at a visit."""

    id: Identifier
    label: Text
    role: Literal["primary", "secondary"]
    instrument: Identifier
    score: Identifier | None = Field(
        default=None, description="score id; the instrument's primary score when omitted"
    )
    visit: Identifier


OutOfWindowRule = Literal["include", "exclude"]
"""What the analysis does with follow-up answers completed outside their visit's window."""


class AnalysisPlan(Frozen):
    """Pre-specified analysis settings."""

    reference_arm: Identifier
    covariates: tuple[Identifier, ...] = Field(
        default=(), description="screening questions adjusted for, besides the baseline score"
    )
    alpha: Number = Field(default=0.05, gt=0, lt=0.5)
    thresholds: dict[Identifier, MeasurementProperties] = Field(
        default_factory=dict,
        description="meaningful-change thresholds by instrument; override instrument defaults",
    )
    out_of_window: OutOfWindowRule = Field(
        default="include",
        description="follow-up answers completed outside their visit's window: 'include' "
        "them in the primary analysis and add a sensitivity analysis without them, or "
        "'exclude' them from the primary analysis (kept in the database and the dataset)",
    )


SecondFactorFor = Literal[
    "admin",
    "coordinator",
    "therapist",
    "outcome_assessor",
    "statistician",
    "monitor",
    "unblinded",
]
"""Who a protocol may require a second factor of: a role, or everyone who sees arms."""


class Access(Frozen):
    """How staff sign in to the trial."""

    second_factor: tuple[SecondFactorFor, ...] = Field(
        default=(),
        description="who must sign in to the web pages with a second factor (TOTP): roles, "
        "and 'unblinded' for everyone who sees arms; until they enrol one they may only "
        "enrol it",
    )


class SessionRating(Frozen):
    """The brief rating taken before each treatment session, trial-wide.

    Each listed instrument is a single-item 0-10 rating of the registry; the therapist
    (or the participant on the therapist's tablet) records one value of each when the
    session is logged. Trial-wide rather than per arm: the ratings are compared between
    arms, so every arm with sessions collects the same ones; an arm without sessions
    has nothing to rate.
    """

    instruments: tuple[Identifier, ...] = Field(
        min_length=1,
        description="single-item 0-10 ratings of the instrument registry, asked before each "
        "session (e.g. bothersomeness, pain_intensity)",
    )
    required: Flag = Field(
        default=False,
        description="a session is logged only with every rating given; otherwise a rating "
        "may be left out (not asked, or declined)",
    )
    note: str = Field(
        default="",
        description="why the rating is collected, or how it departs from the published design",
    )


class Protocol(Frozen):
    """A whole trial protocol. Immutable; has a stable content hash.

    Construct with :func:`lumbar.protocol.load_protocol` (from YAML) or
    ``Protocol.model_validate(mapping)``; both run every check, and a broken
    rule raises :class:`~lumbar.errors.ProtocolError`.
    """

    lumbar_protocol: Annotated[Whole, AfterValidator(_check_format)] = Field(
        description="protocol file format version"
    )
    trial: TrialInfo
    arms: tuple[Arm, ...] = Field(min_length=2)
    vocabulary: Vocabulary = Vocabulary()
    eligibility: Eligibility
    visits: tuple[Visit, ...] = Field(min_length=2)
    randomization: Randomization
    outcomes: tuple[Outcome, ...] = Field(min_length=1)
    analysis: AnalysisPlan
    access: Access = Access()
    messages: ParticipantMessages | None = Field(
        default=None,
        description="invitations and reminders sent to participants for their follow-up "
        "visits; none when absent",
    )
    session_rating: SessionRating | None = Field(
        default=None, description="the rating taken before each treatment session, if any"
    )
    consent: ConsentPlan | None = Field(
        default=None,
        description="the consent documents for electronic consent; none when absent "
        "(consent is recorded on paper: a version and a date)",
    )

    @model_validator(mode="after")
    def _cross_checks(self) -> Protocol:
        check_protocol(self)
        return self

    # ----------------------------------------------------------------- lookups

    @property
    def id(self) -> str:
        return self.trial.id

    @property
    def version(self) -> str:
        return self.trial.version

    def arm(self, arm_id: str) -> Arm:
        return find_by_id(self.arms, arm_id)

    def visit(self, visit_id: str) -> Visit:
        return find_by_id(self.visits, visit_id)

    def question(self, question_id: str) -> Question:
        return find_by_id(self.eligibility.questions, question_id)

    @property
    def baseline(self) -> Visit:
        """The visit on day 0, completed before randomization."""
        return self.visits[0]

    @property
    def follow_up_visits(self) -> tuple[Visit, ...]:
        return self.visits[1:]

    @property
    def primary_outcomes(self) -> tuple[Outcome, ...]:
        return tuple(outcome for outcome in self.outcomes if outcome.role == "primary")

    def instruments(self) -> tuple[Instrument, ...]:
        """Every instrument the schedule collects, in order of first use."""
        names: dict[str, None] = {}
        for visit in self.visits:
            names.update(dict.fromkeys(visit.instruments))
        return tuple(INSTRUMENTS.get(name) for name in names)

    @property
    def slots_per_stratum(self) -> int | None:
        """How long each stratum's allocation list is, when the protocol says."""
        return self.randomization.slots_per_stratum or self.trial.planned_participants

    def thresholds_for(self, instrument_name: str) -> MeasurementProperties:
        """The instrument's published properties, overridden by this protocol's thresholds."""
        defaults = INSTRUMENTS.get(instrument_name).properties
        overrides = self.analysis.thresholds.get(instrument_name)
        return defaults if overrides is None else defaults.merged(overrides)

    # ----------------------------------------------------------------- identity

    def canonical_json(self) -> str:
        """The protocol's content as canonical JSON: sorted keys, no whitespace.

        Formatting, comments and key order of the YAML file do not change it, nor
        does writing out a field's default value (or a later lumbar adding a field
        with a default); any change of content does.
        """
        content = self.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @property
    def content_hash(self) -> str:
        """SHA-256 of :meth:`canonical_json`, in hex: the protocol's stable identity."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()
