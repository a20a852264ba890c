"""The instruments lumbar ships, declared as data.

Item labels are lumbar's own short descriptions of what each item asks about.
Where an instrument's wording is owned by its authors (the Roland-Morris
questionnaire, the PEG), lumbar does not ship it: a user with the right to use
it loads it from a file (see :mod:`lumbar.instruments.wording`). Numbers that
say how much change matters carry their published source; a number that is a
lumbar assumption says so in its source text.
"""

from __future__ import annotations

from lumbar.instruments.model import (
    Gate,
    Instrument,
    Item,
    MeasurementProperties,
    Option,
    Reference,
    Response,
    Score,
)

__all__ = ["CATALOGUE"]

# Sources, cited once (see ../../docs/instruments.md for the full references).
OSTELO_2008 = (
    "Ostelo RW et al. Interpreting change scores for pain and functional status in low "
    "back pain. Spine 2008;33(1):90-94"
)
DAVIDSON_KEATING_2002 = (
    "Davidson M, Keating JL. A comparison of five low back disability questionnaires. "
    "Phys Ther 2002;82(1):8-24"
)
STRATFORD_1996 = (
    "Stratford PW et al. Sensitivity to change of the Roland-Morris Back Pain "
    "Questionnaire: part 1. Phys Ther 1996;76(4):359-365 (4-5 points at 90% confidence)"
)
CHERKIN_2011 = (
    "Cherkin DC et al. A comparison of the effects of 2 types of massage and usual care on "
    "chronic low back pain. Ann Intern Med 2011;155(1):1-9"
)
ROLAND_MORRIS_1983 = (
    "Roland M, Morris R. A study of the natural history of back pain. Part I: development "
    "of a reliable and sensitive measure of disability in low-back pain. Spine 1983;8(2):141-144"
)
KREBS_2009 = (
    "Krebs EE et al. Development and initial validation of the PEG, a three-item scale "
    "assessing pain intensity and interference. J Gen Intern Med 2009;24(6):733-738"
)
LUMBAR_WORDING = "lumbar's own wording (MIT licence, like the rest of lumbar)"
OWNED_WORDING = (
    "The published wording belongs to the instrument's authors and is not shipped. lumbar "
    "ships short descriptions in its own words; load the wording you are entitled to use "
    "with a wording file (lumbar instruments show NAME --wording FILE)."
)


def _yes_no() -> Response:
    return Response(
        kind="choice", options=(Option(code=1, label="yes"), Option(code=0, label="no"))
    )


def _rating(low: str, high: str) -> Response:
    return Response(kind="integer", minimum=0, maximum=10, low_anchor=low, high_anchor=high)


def _days(maximum: int) -> Response:
    return Response(kind="integer", minimum=0, maximum=maximum, unit="days")


def _choices(*labels: str, first_code: int = 1) -> Response:
    return Response(
        kind="choice",
        options=tuple(
            Option(code=first_code + index, label=label) for index, label in enumerate(labels)
        ),
    )


_RDQ_LABELS = (
    "stays at home most of the time because of the back",
    "shifts position often to get the back comfortable",
    "walks more slowly than usual",
    "has stopped doing usual jobs around the house",
    "needs a handrail to go upstairs",
    "lies down to rest more often",
    "needs to hold on to something to get out of a soft chair",
    "asks other people to do things for them",
    "gets dressed more slowly than usual",
    "stands only for short periods",
    "avoids bending or kneeling",
    "finds it hard to get up from a chair",
    "back hurts nearly all the time",
    "finds it hard to turn over in bed",
    "appetite is reduced by the back pain",
    "has trouble putting on socks or stockings",
    "walks only short distances",
    "sleeps worse because of the back",
    "needs someone's help to get dressed",
    "sits down for most of the day",
    "avoids heavy jobs around the house",
    "is more irritable with people than usual",
    "goes upstairs more slowly than usual",
    "stays in bed most of the time",
)

RDQ_MAX_MISSING = 2
"""lumbar's rule, not the authors': up to 2 of 24 items missing are prorated.

The questionnaire was designed as a checklist (an unticked statement scores 0),
so its authors give no rule for unanswered items. lumbar asks each item as
yes/no, so a blank is truly missing; prorating a few keeps the participant's
score without guessing which way the blanks went, and the score is flagged
as prorated.
"""

RDQ = Instrument(
    name="rdq",
    title="Roland-Morris Disability Questionnaire (24 items)",
    measures="back-related physical function (disability)",
    recall_period="today",
    description=(
        "24 statements about how back pain limits daily life; each one the participant says "
        "applies to them today scores 1. Total 0-24, higher means more disability. A "
        "co-primary outcome of the reference trial."
    ),
    items=tuple(
        Item(id=f"rdq_{number:02d}", label=label, response=_yes_no())
        for number, label in enumerate(_RDQ_LABELS, start=1)
    ),
    scores=(
        Score(
            id="total",
            label="RDQ total (0-24)",
            method="sum",
            items=tuple(f"rdq_{number:02d}" for number in range(1, 25)),
            max_missing=RDQ_MAX_MISSING,
            direction="higher_is_worse",
        ),
    ),
    properties=MeasurementProperties(
        minimal_important_change=Reference(value=5, source=OSTELO_2008),
        minimal_important_percent=Reference(value=30, source=OSTELO_2008),
        small_change=Reference(
            value=2,
            source=CHERKIN_2011 + " (the 2-point difference taken as clinically meaningful)",
        ),
        meaningful_group_difference=Reference(value=2, source=CHERKIN_2011),
        reliability=Reference(
            value=0.53, source=DAVIDSON_KEATING_2002 + " (ICC over ~6 weeks, stable patients)"
        ),
        sem=Reference(value=3.7, source=DAVIDSON_KEATING_2002),
        minimal_detectable_change=Reference(value=5, source=STRATFORD_1996),
    ),
    citation=ROLAND_MORRIS_1983,
    licence=OWNED_WORDING,
)

BOTHERSOMENESS = Instrument(
    name="bothersomeness",
    title="Back pain bothersomeness (0-10)",
    measures="how much low back pain has bothered the participant",
    recall_period="past week",
    description=(
        "One 0-10 rating of how bothersome low back pain has been during the past week; higher "
        "is worse. A co-primary outcome of the reference trial."
    ),
    items=(
        Item(
            id="bothersomeness",
            label="how bothersome low back pain has been during the past week",
            response=_rating("not at all bothersome", "extremely bothersome"),
        ),
    ),
    scores=(
        Score(
            id="score",
            label="Bothersomeness (0-10)",
            method="item",
            items=("bothersomeness",),
            direction="higher_is_worse",
        ),
    ),
    properties=MeasurementProperties(
        minimal_important_change=Reference(
            value=2,
            source=OSTELO_2008 + " (MIC for 0-10 pain ratings, applied here by analogy: "
            "a lumbar assumption)",
        ),
        minimal_important_percent=Reference(value=30, source=OSTELO_2008),
        meaningful_group_difference=Reference(value=1.5, source=CHERKIN_2011),
    ),
    citation=CHERKIN_2011,
    licence=LUMBAR_WORDING,
)

PAIN_INTENSITY = Instrument(
    name="pain_intensity",
    title="Average low back pain intensity (0-10)",
    measures="pain intensity",
    recall_period="past week",
    description="One 0-10 numeric rating of average low back pain in the past week.",
    items=(
        Item(
            id="pain_intensity",
            label="average low back pain during the past week",
            response=_rating("no pain", "worst pain imaginable"),
        ),
    ),
    scores=(
        Score(
            id="score",
            label="Pain intensity (0-10)",
            method="item",
            items=("pain_intensity",),
            direction="higher_is_worse",
        ),
    ),
    properties=MeasurementProperties(
        minimal_important_change=Reference(value=2, source=OSTELO_2008),
        minimal_important_percent=Reference(value=30, source=OSTELO_2008),
    ),
    citation=OSTELO_2008,
    licence=LUMBAR_WORDING,
)

PEG = Instrument(
    name="peg",
    title="PEG: pain, enjoyment of life, general activity (3 items)",
    measures="pain intensity and interference",
    recall_period="past week",
    description=(
        "Three 0-10 ratings: average pain, how much pain interfered with enjoyment of life, "
        "and with general activity. The score is their mean, 0-10, higher is worse."
    ),
    items=(
        Item(
            id="peg_pain",
            label="average pain in the past week",
            response=_rating("no pain", "pain as bad as one can imagine"),
        ),
        Item(
            id="peg_enjoyment",
            label="how much pain interfered with enjoyment of life",
            response=_rating("does not interfere", "completely interferes"),
        ),
        Item(
            id="peg_activity",
            label="how much pain interfered with general activity",
            response=_rating("does not interfere", "completely interferes"),
        ),
    ),
    scores=(
        Score(
            id="mean",
            label="PEG mean (0-10)",
            method="mean",
            items=("peg_pain", "peg_enjoyment", "peg_activity"),
            max_missing=0,
            direction="higher_is_worse",
        ),
    ),
    citation=KREBS_2009,
    licence=OWNED_WORDING,
)

DISABILITY_DAYS = Instrument(
    name="disability_days",
    title="Days of restricted activity and bed rest (past 4 weeks)",
    measures="back-related disability days",
    recall_period="past 4 weeks",
    description=(
        "Counts of days in the past 4 weeks on which back pain made the participant cut down "
        "usual activities, and, of those, days spent in bed for most of the day."
    ),
    items=(
        Item(
            id="restricted_days",
            label="days the participant cut down usual activities because of back pain",
            response=_days(28),
        ),
        Item(
            id="bed_days",
            label="days the participant stayed in bed most of the day because of back pain",
            response=_days(28),
            at_most_item="restricted_days",
        ),
    ),
    scores=(
        Score(
            id="restricted_days",
            label="Restricted-activity days (0-28)",
            method="item",
            items=("restricted_days",),
            direction="higher_is_worse",
        ),
        Score(
            id="bed_days",
            label="Bed-rest days (0-28)",
            method="item",
            items=("bed_days",),
            direction="higher_is_worse",
        ),
    ),
    citation=CHERKIN_2011 + " (disability days, as listed in the trial protocol)",
    licence=LUMBAR_WORDING,
)

_TAKES_MEDICATION = Gate(item="any_medication", equals=1, skipped_value=0)

MEDICATION_USE = Instrument(
    name="medication_use",
    title="Medication for back pain (past week)",
    measures="medication use",
    recall_period="past week",
    description=(
        "Whether the participant took any medication for back pain in the past week and, if "
        "so, which kinds. 'classes' counts the kinds taken (0-4)."
    ),
    items=(
        Item(
            id="any_medication",
            label="took any medication for back pain in the past week",
            response=_yes_no(),
        ),
        Item(
            id="non_opioid_analgesic",
            label="took a non-opioid pain reliever (paracetamol, anti-inflammatory)",
            response=_yes_no(),
            only_if=_TAKES_MEDICATION,
        ),
        Item(
            id="opioid",
            label="took an opioid pain reliever",
            response=_yes_no(),
            only_if=_TAKES_MEDICATION,
        ),
        Item(
            id="muscle_relaxant",
            label="took a muscle relaxant",
            response=_yes_no(),
            only_if=_TAKES_MEDICATION,
        ),
        Item(
            id="other_medication",
            label="took another medication for back pain",
            response=_yes_no(),
            only_if=_TAKES_MEDICATION,
        ),
    ),
    scores=(
        Score(
            id="any",
            label="Any medication (0 = no, 1 = yes)",
            method="item",
            items=("any_medication",),
            direction="higher_is_worse",
        ),
        Score(
            id="classes",
            label="Kinds of medication taken (0-4)",
            method="sum",
            items=("non_opioid_analgesic", "opioid", "muscle_relaxant", "other_medication"),
            max_missing=0,
            direction="higher_is_worse",
        ),
    ),
    citation=CHERKIN_2011 + " (medication use, as listed in the trial protocol)",
    licence=LUMBAR_WORDING,
)

GLOBAL_IMPROVEMENT = Instrument(
    name="global_improvement",
    title="Global rating of change (7 points)",
    measures="participant's overall judgement of change in back pain since entering the trial",
    recall_period="since entering the trial",
    description=(
        "One rating of how the back problem has changed since the participant entered the "
        "trial, from 1 (very much better) through 4 (no change) to 7 (very much worse)."
    ),
    items=(
        Item(
            id="global_change",
            label="how the back problem has changed since entering the trial",
            response=_choices(
                "very much better",
                "much better",
                "a little better",
                "no change",
                "a little worse",
                "much worse",
                "very much worse",
            ),
        ),
    ),
    scores=(
        Score(
            id="rating",
            label="Global change (1 = very much better ... 7 = very much worse)",
            method="item",
            items=("global_change",),
            direction="higher_is_worse",
        ),
    ),
    citation=CHERKIN_2011 + " (global rating of improvement at 10, 26 and 52 weeks)",
    licence=LUMBAR_WORDING,
)

SATISFACTION = Instrument(
    name="satisfaction",
    title="Satisfaction with care for back pain (5 points)",
    measures="satisfaction with back care",
    recall_period="care received so far",
    description=(
        "One rating of satisfaction with the care received for back pain, from 1 (very "
        "dissatisfied) to 5 (very satisfied); higher is better."
    ),
    items=(
        Item(
            id="satisfaction",
            label="how satisfied the participant is with the care received for back pain",
            response=_choices(
                "very dissatisfied",
                "somewhat dissatisfied",
                "neither satisfied nor dissatisfied",
                "somewhat satisfied",
                "very satisfied",
            ),
        ),
    ),
    scores=(
        Score(
            id="rating",
            label="Satisfaction (1-5)",
            method="item",
            items=("satisfaction",),
            direction="higher_is_better",
        ),
    ),
    citation=CHERKIN_2011 + " (satisfaction with back care, as listed in the trial protocol)",
    licence=LUMBAR_WORDING,
)

LIFESTYLE = Instrument(
    name="lifestyle",
    title="Sleep and exercise (past week)",
    measures="lifestyle covariates",
    recall_period="past week",
    description=(
        "Average hours of sleep per night and the number of days with at least 30 minutes of "
        "exercise in the past week; covariates, not outcomes."
    ),
    items=(
        Item(
            id="sleep_hours",
            label="average hours of sleep per night in the past week",
            response=Response(kind="decimal", minimum=0, maximum=24, step=0.5, unit="hours"),
        ),
        Item(
            id="exercise_days",
            label="days in the past week with at least 30 minutes of exercise",
            response=_days(7),
        ),
    ),
    scores=(
        Score(
            id="sleep_hours",
            label="Sleep per night (hours)",
            method="item",
            items=("sleep_hours",),
            direction="none",
        ),
        Score(
            id="exercise_days",
            label="Exercise days (0-7)",
            method="item",
            items=("exercise_days",),
            direction="none",
        ),
    ),
    citation=CHERKIN_2011 + " (exercise, as listed in the trial protocol); sleep: lumbar",
    licence=LUMBAR_WORDING,
)

CATALOGUE: tuple[Instrument, ...] = (
    RDQ,
    BOTHERSOMENESS,
    PAIN_INTENSITY,
    PEG,
    DISABILITY_DAYS,
    MEDICATION_USE,
    GLOBAL_IMPROVEMENT,
    SATISFACTION,
    LIFESTYLE,
)
