"""The report's figures, drawn with matplotlib: each returned as a :class:`Figure` to save.

Every figure takes plain tables (DataFrames of results) and labels, so the same
function draws the demo's report and any trial's. Colours follow the Okabe-Ito
palette, which readers with colour-vision deficiency can tell apart; the
reference arm is always grey. SVG output is deterministic (no dates, fixed ids),
so a report re-made from the same data is byte-identical.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib as mpl

mpl.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure as MplFigure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Polygon, Rectangle
from matplotlib.text import Text
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator
from matplotlib.transforms import blended_transform_factory
from scipy import stats

from lumbar.analysis.consort import ArmFlow, ConsortFlow

__all__ = [
    "Figure",
    "arm_colours",
    "attendance_figure",
    "consort_figure",
    "contrast_figure",
    "forest_figure",
    "funnel_figure",
    "power_figure",
    "responder_curve_figure",
    "tipping_point_figure",
    "trajectory_figure",
]

REFERENCE_COLOUR = "#6b6b6b"
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
"""Okabe & Ito, Color Universal Design (2008): distinguishable with colour-vision deficiency."""

mpl.rcParams.update(
    {
        "svg.fonttype": "none",  # text stays text: searchable, small, crisp
        "svg.hashsalt": "lumbar",  # stable element ids
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.color": "#e6e6e6",
        "grid.linewidth": 0.6,
        "axes.axisbelow": True,
        "legend.frameon": False,
    }
)


@dataclass(frozen=True)
class Figure:
    """A drawn figure: its file stem, a caption, and the figure to save."""

    name: str
    caption: str
    figure: MplFigure

    def svg(self) -> str:
        """The figure as SVG text, without the XML prolog (ready to inline in HTML)."""
        buffer = io.StringIO()
        self.figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
        text = buffer.getvalue()
        return text[text.index("<svg") :]

    def png(self, dpi: int = 160) -> bytes:
        buffer = io.BytesIO()
        self.figure.savefig(
            buffer, format="png", dpi=dpi, metadata={"Software": None}, bbox_inches="tight"
        )
        return buffer.getvalue()

    def close(self) -> None:
        plt.close(self.figure)


def arm_colours(arms: Sequence[str], reference: str) -> dict[str, str]:
    """A fixed colour per arm: grey for the reference, the palette in order for the others."""
    colours = {reference: REFERENCE_COLOUR}
    others = [arm for arm in arms if arm != reference]
    for index, arm in enumerate(others):
        colours[arm] = PALETTE[index % len(PALETTE)]
    return colours


def _label(labels: Mapping[str, str], arm: str) -> str:
    return labels.get(arm, arm)


# ---------------------------------------------------------------------- outcomes over time


def trajectory_figure(
    tidy: pd.DataFrame,
    column: str,
    *,
    arms: Sequence[str],
    reference: str,
    labels: Mapping[str, str],
    weeks: Mapping[str, float],
    title: str,
    axis_label: str,
    name: str,
    alpha: float = 0.05,
) -> Figure:
    """Observed mean and (1 - alpha) t-interval of ``column`` per arm at each visit, by week."""
    colours = arm_colours(arms, reference)
    figure, axes = plt.subplots(figsize=(6.4, 3.6))
    offsets = np.linspace(-0.6, 0.6, len(arms)) if len(arms) > 1 else np.zeros(1)
    for offset, arm in zip(offsets, arms, strict=True):
        rows = tidy[tidy["arm"].astype(str) == arm]
        xs, means, lows, highs = [], [], [], []
        for visit, week in weeks.items():
            values = (
                pd.to_numeric(rows.loc[rows["visit"] == visit, column], errors="coerce")
                .dropna()
                .to_numpy(dtype=float)
            )
            if len(values) < 2:
                continue
            mean = float(values.mean())
            half = float(stats.t.ppf(1 - alpha / 2, len(values) - 1)) * float(
                values.std(ddof=1) / math.sqrt(len(values))
            )
            xs.append(week + offset)
            means.append(mean)
            lows.append(mean - half)
            highs.append(mean + half)
        if not xs:
            continue
        axes.errorbar(
            xs,
            means,
            yerr=[np.subtract(means, lows), np.subtract(highs, means)],
            color=colours[arm],
            marker="o",
            markersize=4,
            linewidth=1.6,
            capsize=3,
            label=_label(labels, arm),
        )
    axes.set_xticks(list(weeks.values()))
    axes.set_xlabel("weeks since randomization")
    axes.set_ylabel(axis_label)
    axes.set_title(title, loc="left", fontsize=10)
    axes.legend(loc="best")
    figure.tight_layout()
    return Figure(
        name,
        f"{title}: observed mean and {100 * (1 - alpha):.0f}% confidence interval per arm at "
        "each visit (participants with the visit; arms offset slightly to be readable).",
        figure,
    )


def contrast_figure(
    table: pd.DataFrame,
    *,
    arms: Sequence[str],
    reference: str,
    labels: Mapping[str, str],
    visit_labels: Mapping[str, str],
    meaningful: float | None,
    lower_is_better: bool,
    title: str,
    name: str,
) -> Figure:
    """A forest plot of arm - reference differences (``visit``, ``arm``, ``estimate``, CI)."""
    colours = arm_colours(arms, reference)
    others = [arm for arm in arms if arm != reference]
    visits = [visit for visit in visit_labels if visit in set(table["visit"])]
    figure, axes = plt.subplots(figsize=(6.4, 0.5 + 0.42 * len(visits) * len(others)))
    ticks, tick_labels = [], []
    y = 0.0
    for visit in visits:
        for arm in others:
            row = table[(table["visit"] == visit) & (table["arm"] == arm)]
            if row.empty:
                continue
            record = row.iloc[0]
            axes.plot([record["lower"], record["upper"]], [y, y], color=colours[arm], linewidth=2.2)
            axes.plot(record["estimate"], y, "o", color=colours[arm], markersize=5)
            ticks.append(y)
            tick_labels.append(f"{visit_labels[visit]}: {_label(labels, arm)}")
            y -= 1
        y -= 0.5
    axes.axvline(0, color="#333333", linewidth=0.8)
    if meaningful is not None:
        edge = -meaningful if lower_is_better else meaningful
        axes.axvline(edge, color="#999999", linewidth=0.8, linestyle="--")
        axes.annotate(
            f"meaningful difference ({edge:+g})",
            (edge, 1),
            xycoords=("data", "axes fraction"),
            ha="center",
            va="bottom",
            fontsize=8,
            color="#555555",
        )
    axes.set_yticks(ticks, tick_labels)
    axes.grid(axis="y", visible=False)
    better = "favours treatment" if lower_is_better else "favours reference"
    axes.set_xlabel(f"difference from {_label(labels, reference)} (negative {better})")
    axes.set_title(title, loc="left", fontsize=10, pad=14)
    figure.tight_layout()
    return Figure(
        name,
        f"{title}: each arm minus {_label(labels, reference)}, with confidence intervals; "
        "the dashed line marks the difference the protocol calls meaningful.",
        figure,
    )


# ---------------------------------------------------------------------- responders


def responder_curve_figure(
    curve: pd.DataFrame,
    *,
    arms: Sequence[str],
    reference: str,
    labels: Mapping[str, str],
    thresholds: Sequence[tuple[float, str]],
    title: str,
    axis_label: str,
    name: str,
) -> Figure:
    """Share of each arm improving by at least x, for every x (one visit's ``curve`` rows)."""
    colours = arm_colours(arms, reference)
    figure, axes = plt.subplots(figsize=(6.4, 3.8))
    for arm in arms:
        rows = curve[curve["arm"] == arm].sort_values("threshold")
        if rows.empty:
            continue
        axes.step(
            rows["threshold"],
            100 * rows["share"],
            where="post",
            color=colours[arm],
            linewidth=1.8,
            label=_label(labels, arm),
        )
    for value, text in thresholds:
        axes.axvline(value, color="#444444", linewidth=0.8, linestyle=(0, (4, 3)))
        axes.annotate(
            textwrap.fill(text, 24),  # long labels wrap, so they stay inside the axes
            (value, 98),
            xytext=(3, 0),
            textcoords="offset points",
            fontsize=7.5,
            color="#333333",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1.0},
            rotation=90,
            va="top",
            ha="left",
        )
    axes.set_ylim(0, 102)
    axes.set_xlabel(axis_label)
    axes.set_ylabel("participants improving at least this much (%)")
    axes.set_title(title, loc="left", fontsize=10)
    axes.legend(loc="lower left")
    figure.tight_layout()
    return Figure(
        name,
        f"{title}. Each step line is one arm; a vertical line is one definition of "
        "'improved'. Where a line crosses the curves shows the share of each arm "
        "counted as improved by that definition.",
        figure,
    )


def tipping_point_figure(
    table: pd.DataFrame,
    *,
    visit: str,
    arms: Sequence[str],
    reference: str,
    labels: Mapping[str, str],
    title: str,
    name: str,
) -> Figure:
    """Pooled difference and CI against delta at one visit (rows of the tipping-point table)."""
    colours = arm_colours(arms, reference)
    figure, axes = plt.subplots(figsize=(6.4, 3.4))
    rows = table[table["visit"] == visit]
    others = [arm for arm in arms if arm != reference]
    shift = 0.015 * (rows["delta"].max() - rows["delta"].min() or 1)
    for index, arm in enumerate(others):
        mine = rows[rows["arm"] == arm].sort_values("delta")
        x = mine["delta"] + (index - (len(others) - 1) / 2) * shift
        axes.errorbar(
            x,
            mine["estimate"],
            yerr=[mine["estimate"] - mine["lower"], mine["upper"] - mine["estimate"]],
            color=colours[arm],
            marker="o",
            markersize=3.5,
            linewidth=1.2,
            capsize=2,
            label=_label(labels, arm),
        )
    axes.axhline(0, color="#333333", linewidth=0.8)
    axes.set_xlabel("delta: points added to every imputed value in the treatment arms")
    axes.set_ylabel(f"difference from {_label(labels, reference)}")
    axes.set_title(title, loc="left", fontsize=10)
    axes.legend(loc="best")
    figure.tight_layout()
    return Figure(
        name,
        f"{title}: the pooled difference and its interval as the imputed values of treated "
        "participants are made worse by delta; the conclusion tips where the interval "
        "first reaches zero.",
        figure,
    )


# ---------------------------------------------------------------------- treatment


def attendance_figure(
    attendance: pd.DataFrame,
    *,
    arms: Sequence[str],
    reference: str,
    labels: Mapping[str, str],
    name: str,
) -> Figure:
    """Participants by number of sessions attended, one bar group per arm with sessions."""
    colours = arm_colours(arms, reference)
    shown = [arm for arm in arms if attendance[attendance["arm"] == arm]["sessions"].max() > 0]
    figure, axes = plt.subplots(figsize=(6.4, 3.2))
    width = 0.8 / max(len(shown), 1)
    for index, arm in enumerate(shown):
        rows = attendance[attendance["arm"] == arm]
        axes.bar(
            rows["sessions"] + (index - (len(shown) - 1) / 2) * width,
            rows["participants"],
            width=width,
            color=colours[arm],
            label=_label(labels, arm),
        )
    axes.set_xlabel("sessions attended")
    axes.set_ylabel("participants")
    if len(attendance):
        axes.set_xticks(range(int(attendance["sessions"].max()) + 1))
    axes.set_title("Treatment sessions attended", loc="left", fontsize=10)
    axes.legend(loc="upper left")
    figure.tight_layout()
    return Figure(
        name,
        "Number of treatment sessions each allocated participant attended, per arm.",
        figure,
    )


# ---------------------------------------------------------------------- study design


def power_figure(
    curves: pd.DataFrame, *, target: float, title: str, name: str, x_label: str
) -> Figure:
    """Power against sample size (columns ``n``, ``power``, ``scenario``, optional ``lower``/
    ``upper`` for simulation intervals)."""
    figure, axes = plt.subplots(figsize=(6.4, 3.6))
    for index, (scenario, group) in enumerate(curves.groupby("scenario", sort=False)):
        rows = group.sort_values("n")
        colour = PALETTE[index % len(PALETTE)]
        axes.plot(rows["n"], 100 * rows["power"], color=colour, linewidth=1.8, label=scenario)
        if {"lower", "upper"} <= set(rows.columns) and rows["lower"].notna().any():
            axes.fill_between(
                rows["n"], 100 * rows["lower"], 100 * rows["upper"], color=colour, alpha=0.15
            )
    axes.axhline(100 * target, color="#444444", linewidth=0.8, linestyle="--")
    axes.set_ylim(0, 101)
    axes.set_xlabel(x_label)
    axes.set_ylabel("power (%)")
    axes.set_title(title, loc="left", fontsize=10)
    axes.legend(loc="lower right")
    figure.tight_layout()
    return Figure(
        name,
        f"{title}; the dashed line marks the target power of {100 * target:.0f}%.",
        figure,
    )


# ---------------------------------------------------------------------- CONSORT

_LINE = 0.165  # inches per line of 8-point text
_CHAR = 0.062  # inches per character, on average, of 8-point sans-serif


def _box(
    axes: Axes, x: float, top: float, width: float, lines: Sequence[str], *, bold: int = 1
) -> float:
    """Draw a box of wrapped lines with its top-left at (x, top); return its bottom."""
    wrapped: list[tuple[str, bool]] = []
    per_line = max(int((width - 0.16) / _CHAR), 12)
    for index, line in enumerate(lines):
        indent = "   " if line.startswith("- ") else ""
        for piece_index, piece in enumerate(
            textwrap.wrap(line, per_line, subsequent_indent=indent) or [""]
        ):
            wrapped.append((piece, index < bold and piece_index >= 0))
    height = 0.12 + _LINE * len(wrapped)
    axes.add_patch(
        FancyBboxPatch(
            (x, top - height),
            width,
            height,
            boxstyle="square,pad=0",
            linewidth=0.8,
            edgecolor="#333333",
            facecolor="white",
        )
    )
    for index, (text, bold_line) in enumerate(wrapped):
        axes.text(
            x + 0.08,
            top - 0.06 - _LINE * (index + 0.5),
            text,
            fontsize=8,
            va="center",
            ha="left",
            fontweight="bold" if bold_line else "normal",
        )
    return top - height


def _arrow(axes: Axes, start: tuple[float, float], end: tuple[float, float]) -> None:
    axes.add_patch(
        FancyArrowPatch(
            start, end, arrowstyle="-|>", mutation_scale=9, linewidth=0.8, color="#333333"
        )
    )


def _enrolment(
    axes: Axes, flow: ConsortFlow, centre: float, width: float, reasons_shown: int
) -> float:
    """The assessed, excluded and randomized boxes; return the randomized box's bottom."""
    bottom = _box(axes, centre - 1.45, -0.2, 2.9, [f"Assessed for eligibility (n={flow.assessed})"])
    reasons = [f"- {reason.text} (n={reason.count})" for reason in flow.reasons[:reasons_shown]]
    if len(flow.reasons) > reasons_shown:
        rest = sum(reason.count for reason in flow.reasons[reasons_shown:])
        reasons.append(f"- other criteria (n={rest})")
    excluded_lines = [
        f"Excluded (n={flow.excluded})",
        f"- Not meeting eligibility criteria (n={flow.not_meeting_criteria})",
        *[f"   {line}" for line in reasons],
        f"- Declined to participate (n={flow.declined})",
        f"- Screening not completed (n={flow.incomplete_screening})",
        f"- Other reasons (n={flow.other})",
    ]
    side_x = centre + 0.45
    side_bottom = _box(axes, side_x, bottom - 0.25, width - side_x - 0.1, excluded_lines)
    randomized_top = side_bottom - 0.3
    axes.plot([centre, centre], [bottom, randomized_top], color="#333333", linewidth=0.8)
    middle = (bottom + side_bottom) / 2 + 0.2
    _arrow(axes, (centre, middle), (side_x, middle))
    _arrow(axes, (centre, randomized_top + 0.02), (centre, randomized_top))
    return _box(axes, centre - 1.1, randomized_top, 2.2, [f"Randomized (n={flow.randomized})"])


def _row(
    axes: Axes,
    lefts: Sequence[float],
    column: float,
    above: Sequence[float],
    lines: Sequence[Sequence[str]],
) -> tuple[float, list[float]]:
    """One box per arm under the boxes ending at ``above``; return the row's top and bottoms."""
    top = min(above) - 0.45
    bottoms = []
    for x, start, text in zip(lefts, above, lines, strict=True):
        _arrow(axes, (x + column / 2, start), (x + column / 2, top))
        bottoms.append(_box(axes, x, top, column, text))
    return top, bottoms


def _allocation_lines(arm: ArmFlow, labels: Mapping[str, str]) -> list[str]:
    received = (
        [
            f"- Received allocated intervention (n={arm.received})",
            f"- Did not receive it (n={arm.not_received})",
        ]
        if arm.received is not None
        else ["- Receipt not shown to blinded users"]
    )
    return [f"Allocated to {labels.get(arm.arm, arm.arm)} (n={arm.allocated})", *received]


def _follow_up_lines(arm: ArmFlow, visit_labels: Mapping[str, str]) -> list[str]:
    lines = [f"Discontinued intervention (n={arm.discontinued})"]
    lines += [f"- {text} (n={count})" for text, count in arm.discontinued_reasons]
    for visit in arm.follow_up:
        lines.append(
            f"{visit_labels.get(visit.visit, visit.visit)}: completed {visit.completed}, "
            f"missed {visit.missed}, lost {visit.lost_to_follow_up}, "
            f"withdrew {visit.withdrew_consent}"
            + (f", pending {visit.pending}" if visit.pending else "")
        )
    return lines


def _analysis_lines(arm: ArmFlow, primary: str) -> list[str]:
    lines = [
        f"Analysed at {primary} (n={arm.analysed})",
        f"- Excluded from this analysis (n={arm.excluded})",
    ]
    lines += [
        f"   - {reason.replace('_', ' ')} (n={count})"
        for reason, count in arm.excluded_from_analysis
        if count
    ]
    return lines


def _stage_bars(axes: Axes, stage_tops: Mapping[str, float], lowest: float) -> None:
    """The blue stage labels down the left side, as in the CONSORT template."""
    edges = [*stage_tops.values(), lowest + 0.2]
    for (stage, start), end in zip(stage_tops.items(), edges[1:], strict=True):
        axes.add_patch(
            FancyBboxPatch(
                (0.08, end + 0.1),
                0.3,
                start - end - 0.2,
                boxstyle="round,pad=0,rounding_size=0.05",
                facecolor="#dbe9f6",
                edgecolor="#7ea6cf",
                linewidth=0.6,
            )
        )
        axes.text(
            0.23, (start + end) / 2, stage, rotation=90, ha="center", va="center", fontsize=8.5
        )


def consort_figure(
    flow: ConsortFlow,
    *,
    labels: Mapping[str, str],
    visit_labels: Mapping[str, str],
    name: str = "consort",
    reasons_shown: int = 8,
) -> Figure:
    """The CONSORT 2010 flow diagram of ``flow``: enrolment, allocation, follow-up, analysis."""
    arms = flow.arms
    column, gap, left = 2.55, 0.25, 0.55
    width = max(left + len(arms) * column + (len(arms) - 1) * gap + 0.1, 8.4)
    figure = plt.figure(figsize=(width, 11))
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, width)
    axes.axis("off")
    centre = left + (width - left) / 2
    bottom = _enrolment(axes, flow, centre, width, reasons_shown)
    lefts = [left + index * (column + gap) for index in range(len(arms))]
    split = bottom - 0.2
    axes.plot([centre, centre], [bottom, split], color="#333333", linewidth=0.8)
    axes.plot(
        [lefts[0] + column / 2, lefts[-1] + column / 2], [split, split], color="#333333", lw=0.8
    )
    allocation_top, allocated = _row(
        axes, lefts, column, [split] * len(arms), [_allocation_lines(a, labels) for a in arms]
    )
    follow_top, followed = _row(
        axes, lefts, column, allocated, [_follow_up_lines(a, visit_labels) for a in arms]
    )
    primary = visit_labels.get(flow.primary_visit, flow.primary_visit)
    analysis_top, analysed = _row(
        axes, lefts, column, followed, [_analysis_lines(a, primary) for a in arms]
    )
    lowest = min(min(analysed) - 0.2, analysis_top - 0.85)
    _stage_bars(
        axes,
        {
            "Enrolment": -0.2,
            "Allocation": allocation_top,
            "Follow-up": follow_top,
            "Analysis": analysis_top,
        },
        lowest,
    )
    axes.set_ylim(lowest, 0)
    figure.set_size_inches(width, -lowest)
    return Figure(
        name,
        "Participant flow (CONSORT 2010), counted from the trial's records. Lost, withdrew "
        "and discontinued counts are cumulative; one person may fail several eligibility "
        "criteria, so the reasons can add up to more than the people excluded.",
        figure,
    )


# ---------------------------------------------------------------------- evidence synthesis

_FOREST_ROW = 0.24  # inches per row of the forest plot
_FOREST_FONT = 8.0
_FOREST_GAP = 0.18  # inches between text columns
_FOREST_PLOT = 2.8  # inches for the plot column
_NOTE_CHAR = 0.058  # inches per character, on average, of 7.5-point sans-serif
_SQUARE = 10.0  # points: the side of the heaviest study's square
_HIGHLIGHT = PALETTE[1]  # this trial's rows, in every figure
_HIGHLIGHT_BAND = "#fbeee6"
_INK = "#222222"
_SYNTHETIC = "#b00020"
_RATIO_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)


def _signed(value: float, digits: int = 2) -> str:
    """A number with a true minus sign, as typeset in journals."""
    if not math.isfinite(value):
        return "-"
    text = f"{value:.{digits}f}"
    if float(text) == 0:
        text = text.lstrip("-")  # no "-0.00"
    return text.replace("-", "\N{MINUS SIGN}")


def _flag(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A boolean column (``this_trial``), False where absent or empty."""
    if column not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    values = frame[column]
    return np.array(
        [
            (str(value).strip().lower() in ("true", "1", "yes")) if not pd.isna(value) else False
            for value in values
        ],
        dtype=bool,
    )


def _text_or_none(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    return text if text and text.lower() != "nan" else None


@dataclass(frozen=True)
class _ForestRow:
    kind: str  # "group", "study", "summary", "prediction", "note"
    label: str
    estimate: float = math.nan
    lower: float = math.nan
    upper: float = math.nan
    weight: float = math.nan
    cells: tuple[str, ...] = ()
    highlight: bool = False
    overall: bool = False


def _forest_rows(
    studies: pd.DataFrame, summaries: pd.DataFrame, text_columns: Sequence[tuple[str, str]]
) -> list[_ForestRow | None]:
    """The plot's rows from top to bottom (None: an empty row between blocks)."""
    trial = _flag(studies, "this_trial")
    marked = _flag(summaries, "this_trial")
    grouped = "subgroup" in studies.columns

    def study_row(index: int) -> _ForestRow:
        record = studies.iloc[index]
        cells = tuple(
            "" if _text_or_none(record[column]) is None else str(record[column])
            for _, column in text_columns
        )
        return _ForestRow(
            "study",
            str(record["study"]),
            float(record["estimate"]),
            float(record["lower"]),
            float(record["upper"]),
            float(record["weight"]) if "weight" in studies.columns else math.nan,
            cells,
            bool(trial[index]),
        )

    def summary_rows(index: int, overall: bool) -> list[_ForestRow]:
        record = summaries.iloc[index]
        weight = record.get("weight", math.nan)
        rows = [
            _ForestRow(
                "summary",
                str(record["label"]),
                float(record["estimate"]),
                float(record["lower"]),
                float(record["upper"]),
                float(weight) if weight is not None and not pd.isna(weight) else math.nan,
                highlight=bool(marked[index]),
                overall=overall,
            )
        ]
        low = record.get("prediction_lower", math.nan)
        high = record.get("prediction_upper", math.nan)
        if low is not None and high is not None and not pd.isna(low) and not pd.isna(high):
            rows.append(
                _ForestRow("prediction", "Prediction interval", math.nan, float(low), float(high))
            )
        note = _text_or_none(record.get("note"))
        if note:
            rows.append(_ForestRow("note", note))
        return rows

    groups = (
        summaries["subgroup"].map(_text_or_none)
        if "subgroup" in summaries.columns
        else pd.Series([None] * len(summaries))
    )
    rows: list[_ForestRow | None] = []
    if grouped:
        labels = [str(value) for value in studies["subgroup"]]
        for group in dict.fromkeys(labels):
            rows.append(_ForestRow("group", group))
            rows += [study_row(i) for i, label in enumerate(labels) if label == group]
            for index in np.flatnonzero(groups.to_numpy() == group):
                rows += summary_rows(int(index), overall=False)
            rows.append(None)
    else:
        rows += [study_row(index) for index in range(len(studies))]
        rows.append(None)
    for index in np.flatnonzero(groups.isna().to_numpy()):
        rows += summary_rows(int(index), overall=True)
    while rows and rows[-1] is None:
        rows.pop()
    return rows


def _nice_limits(
    values: Sequence[float], ratio: bool, *, symmetric: bool = False
) -> tuple[tuple[float, float], list[float]]:
    """Axis limits on ticks that enclose ``values`` (a 1-2-5 series on the ratio scale);
    ``symmetric`` centres them on no effect (0, or 1 for ratios), as journals print forests."""
    low, high = min(values), max(values)
    if symmetric:
        reach = max(abs(math.log(low)), abs(math.log(high))) if ratio else max(-low, high)
        low, high = (math.exp(-reach), math.exp(reach)) if ratio else (-reach, reach)
    if ratio:
        below = [tick for tick in _RATIO_TICKS if tick <= low]
        above = [tick for tick in _RATIO_TICKS if tick >= high]
        start = below[-1] if below else low
        end = above[0] if above else high
        ticks = [tick for tick in _RATIO_TICKS if start <= tick <= end]
        if len(ticks) > 7:  # every other one from the end (symmetric limits keep 1), and 1
            kept = set(ticks[::-1][::2]) | ({1} & set(ticks))
            ticks = [tick for tick in ticks if tick in kept]
        return (start, end), ticks
    if high - low <= 0:
        low, high = low - 1, high + 1
    ticks = [
        float(t) for t in MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high)
    ]
    return (ticks[0], ticks[-1]), ticks


class _ForestText:
    """The text columns of a forest plot: drawn once, measured, then placed side by side."""

    def __init__(self, figure: MplFigure, axes: Axes, headers: Sequence[str]) -> None:
        self.figure = figure
        self.axes = axes
        self.inches = blended_transform_factory(figure.dpi_scale_trans, axes.transData)
        self.left: list[list[Text]] = [[] for _ in headers]
        self.right: list[list[Text]] = [[], []]
        self.headers = list(headers)

    def add(self, side: str, column: int, y: float, text: str, **style: Any) -> None:
        options: dict[str, Any] = {
            "fontsize": _FOREST_FONT,
            "va": "center",
            "transform": self.inches,
            "color": _INK,
        }
        options.update(style)
        drawn = self.axes.text(0, y, text, **options)
        (self.left if side == "left" else self.right)[column].append(drawn)

    def place(self) -> tuple[float, float]:
        """Set every column's x (inches); return where the plot starts and the total width."""
        renderer = self.figure.canvas.get_renderer()  # type: ignore[attr-defined]  # Agg's

        def width(texts: Sequence[Text]) -> float:
            spans = [text.get_window_extent(renderer).width for text in texts]
            return max(spans, default=0.0) / self.figure.dpi

        def place(columns: Sequence[Sequence[Text]], x: float) -> float:
            for texts in columns:
                span = width(texts)
                for text in texts:
                    text.set_x(x + (span if text.get_horizontalalignment() == "right" else 0))
                x += span + _FOREST_GAP
            return x

        plot_left = place(self.left, 0.1)
        end = place(self.right, plot_left + _FOREST_PLOT + _FOREST_GAP)
        return plot_left, end - _FOREST_GAP + 0.1


def _forest_texts(
    layout: _ForestText,
    rows: Sequence[_ForestRow | None],
    positions: Sequence[float],
    right_headers: Sequence[str],
    digits: int,
) -> None:
    for column, header in enumerate(layout.headers):
        layout.add("left", column, 0, header, fontweight="bold", ha="right" if column else "left")
    for column, header in enumerate(right_headers):
        layout.add("right", column, 0, header, fontweight="bold", ha="right" if column else "left")
    for row, y in zip(rows, positions, strict=True):
        if row is None:
            continue
        colour = _HIGHLIGHT if row.highlight else _INK
        bold = "bold" if row.kind in ("group", "summary") or row.highlight else "normal"
        italic = "italic" if row.kind in ("prediction", "note") else "normal"
        layout.add(
            "left",
            0,
            y,
            row.label,
            color=colour,
            fontweight=bold,
            fontstyle=italic,
            fontsize=_FOREST_FONT - (0.5 if row.kind == "note" else 0),
        )
        for column, cell in enumerate(row.cells, start=1):
            layout.add("left", column, y, cell, ha="right", color=colour)
        if row.kind in ("study", "summary", "prediction"):
            interval = f"[{_signed(row.lower, digits)}, {_signed(row.upper, digits)}]"
            estimate = _signed(row.estimate, digits)
            text = interval if row.kind == "prediction" else f"{estimate} {interval}"
            weight = "bold" if row.kind == "summary" else "normal"
            layout.add("right", 0, y, text, color=colour, fontweight=weight, fontstyle=italic)
        if math.isfinite(row.weight):
            layout.add("right", 1, y, f"{row.weight:.1f}%", ha="right", color=colour)


def _forest_axis(axes: Axes, rows: Sequence[_ForestRow | None], ratio: bool) -> None:
    """Limits and ticks of the plot column, on ticks that enclose every interval drawn."""
    values = [1.0 if ratio else 0.0] + [
        value
        for row in rows
        if row is not None and row.kind in ("study", "summary", "prediction")
        for value in (row.lower, row.upper)
        if math.isfinite(value)
    ]
    if ratio:
        axes.set_xscale("log")
    limits, ticks = _nice_limits(values, ratio, symmetric=True)
    axes.set_xlim(*limits)
    axes.xaxis.set_major_locator(FixedLocator(ticks))
    axes.xaxis.set_major_formatter(
        FuncFormatter(lambda value, _: f"{value:g}".replace("-", "\N{MINUS SIGN}"))
    )
    axes.xaxis.set_minor_locator(NullLocator())
    axes.grid(False)
    axes.set_facecolor("none")
    for side in ("left", "top", "right"):
        axes.spines[side].set_visible(False)
    axes.spines["bottom"].set_linewidth(0.8)
    axes.set_yticks([])
    axes.tick_params(axis="x", labelsize=_FOREST_FONT, length=3)


def _forest_marks(
    axes: Axes, rows: Sequence[_ForestRow | None], positions: Sequence[float], null: float
) -> None:
    """Squares and lines for studies, diamonds for pooled estimates, bars for predictions."""
    bottom = positions[-1] - 0.5
    axes.plot([null, null], [-0.5, bottom], color=_INK, lw=0.8, zorder=1)
    overall = [row for row in rows if row is not None and row.kind == "summary" and row.overall]
    if overall:
        pooled = overall[-1].estimate
        axes.plot([pooled, pooled], [-0.5, bottom], color="#8c8c8c", lw=0.7, ls=(0, (2, 2)))
    weights = [r.weight for r in rows if r is not None and r.kind == "study"]
    heaviest = max((w for w in weights if math.isfinite(w)), default=0.0)
    for row, y in zip(rows, positions, strict=True):
        if row is None:
            continue
        colour = _HIGHLIGHT if row.highlight else _INK
        if row.kind == "study":
            axes.plot([row.lower, row.upper], [y, y], color=colour, lw=0.9, zorder=2)
            share = row.weight / heaviest if heaviest > 0 and math.isfinite(row.weight) else 0.3
            axes.plot(
                row.estimate,
                y,
                marker="s",
                markersize=max(3.0, _SQUARE * math.sqrt(share)),
                color=_HIGHLIGHT if row.highlight else PALETTE[0],
                markeredgecolor=colour,
                markeredgewidth=0.5,
                zorder=3,
            )
        elif row.kind == "summary":
            half = 0.32 if row.overall else 0.26
            fill = _HIGHLIGHT if row.highlight else (_INK if row.overall else "#a6a6a6")
            corners = [
                (row.lower, y),
                (row.estimate, y + half),
                (row.upper, y),
                (row.estimate, y - half),
            ]
            axes.add_patch(
                Polygon(corners, closed=True, facecolor=fill, edgecolor=_INK, lw=0.6, zorder=3)
            )
        elif row.kind == "prediction":
            axes.plot([row.lower, row.upper], [y, y], color=PALETTE[0], lw=2.4)
            for end in (row.lower, row.upper):
                axes.plot([end, end], [y - 0.2, y + 0.2], color=PALETTE[0], lw=0.9)


def _forest_footer(
    axes: Axes,
    null: float,
    favours: tuple[str, str],
    axis_label: str,
    notes: Sequence[str],
    under: Any,
) -> None:
    """Under the axis: which side favours which arm, what is plotted, then the notes."""
    for text, side, shift in ((favours[0], "right", -4), (favours[1], "left", 4)):
        axes.annotate(
            text,
            (null, 0),
            xycoords=("data", "axes fraction"),
            xytext=(shift, -19),
            textcoords="offset points",
            ha=side,
            va="top",
            fontsize=_FOREST_FONT,
        )
    axes.annotate(
        axis_label,
        (0.5, 0),
        xycoords="axes fraction",
        xytext=(0, -31),
        textcoords="offset points",
        ha="center",
        va="top",
        fontsize=_FOREST_FONT,
        color="#444444",
    )
    for index, note in enumerate(notes):
        axes.annotate(
            note,
            (0.1, 0),
            xycoords=under,
            xytext=(0, -48 - 11.5 * index),
            textcoords="offset points",
            ha="left",
            va="top",
            fontsize=_FOREST_FONT - 0.5,
        )


def forest_figure(
    studies: pd.DataFrame,
    summaries: pd.DataFrame,
    *,
    ratio: bool,
    effect_label: str,
    axis_label: str,
    favours: tuple[str, str],
    title: str,
    name: str = "forest",
    notes: Sequence[str] = (),
    text_columns: Sequence[tuple[str, str]] = (),
    level: float = 0.95,
    digits: int = 2,
    synthetic: bool = False,
) -> Figure:
    """A forest plot of a meta-analysis, laid out as journals print one.

    ``studies`` has one row per study: ``study``, ``estimate``, ``lower``, ``upper`` (on
    the scale shown: ratios already exponentiated), ``weight`` (percent), and optionally
    ``subgroup`` (studies are grouped under headings, in order of appearance) and
    ``this_trial`` (rows highlighted). ``summaries`` has one row per pooled estimate:
    ``label``, ``estimate``, ``lower``, ``upper``, optionally ``subgroup`` (empty for an
    overall estimate, drawn at the bottom), ``prediction_lower``/``prediction_upper``
    (drawn as a bar under the diamond), ``note`` (a line under it), ``weight`` and
    ``this_trial``. ``text_columns`` are (header, column of ``studies``) shown between the
    labels and the plot; ``favours`` labels the left and right of the no-effect line;
    ``notes`` go under the axis; numbers are shown with ``digits`` decimals. Ratios are drawn
    on a log axis with the no-effect line at 1; a square's area is proportional to the study's
    weight.
    """
    rows = _forest_rows(studies, summaries, text_columns)
    null = 1.0 if ratio else 0.0
    count = len(rows) + 1  # and the header row
    figure = plt.figure(figsize=(8.0, 0.45 + count * _FOREST_ROW))
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    axes.set_ylim(-count + 0.5, 0.5)
    positions = [-float(number) for number in range(1, len(rows) + 1)]
    percent = f"{100 * level:g}%"
    layout = _ForestText(figure, axes, ["Study", *(header for header, _ in text_columns)])
    headers = [f"{effect_label} [{percent} CI]", "Weight"]
    _forest_texts(layout, rows, positions, headers, digits)
    plot_left, total = layout.place()
    # The notes wrap to the width of the table above them.
    lines = [
        line
        for note in notes
        for line in textwrap.wrap(note, max(int((total - 0.3) / _NOTE_CHAR), 40))
    ]
    footer = 0.75 + 0.16 * len(lines)
    height = 0.45 + count * _FOREST_ROW + footer
    figure.set_size_inches(total, height)
    axes.set_position(
        (plot_left / total, footer / height, _FOREST_PLOT / total, count * _FOREST_ROW / height)
    )
    inches = layout.inches
    for row, y in zip(rows, positions, strict=True):
        if row is not None and row.highlight:  # a band behind this trial's rows
            band = Rectangle((0.02, y - 0.5), total - 0.04, 1.0, transform=inches, zorder=0)
            band.set(facecolor=_HIGHLIGHT_BAND, edgecolor="none", clip_on=False)
            axes.add_patch(band)
    axes.plot([0.02, total - 0.02], [-0.5, -0.5], transform=inches, color=_INK, lw=0.6)
    axes.lines[-1].set_clip_on(False)
    _forest_axis(axes, rows, ratio)
    if positions:
        _forest_marks(axes, rows, positions, null)
    under = blended_transform_factory(figure.dpi_scale_trans, axes.transAxes)
    _forest_footer(axes, null, favours, axis_label, lines, under)
    axes.text(0.1, 0.95, title, transform=inches, fontsize=10, fontweight="bold", va="bottom")
    if synthetic:
        axes.text(total - 0.1, 0.95, "SYNTHETIC DATA", transform=inches, fontsize=9, ha="right")
        axes.texts[-1].set(fontweight="bold", color=_SYNTHETIC, va="bottom")
    caption = (
        f"{title}: each study's {effect_label} with its {percent} confidence interval (a "
        "square's area is proportional to the study's weight); diamonds are pooled estimates."
    )
    if any(row is not None and row.kind == "prediction" for row in rows):
        caption += " The bar under a diamond is the prediction interval for a new study."
    if _flag(studies, "this_trial").any():
        caption += " Highlighted rows are this trial's own result."
    return Figure(name, caption + (" SYNTHETIC DATA." if synthetic else ""), figure)


def funnel_figure(
    studies: pd.DataFrame,
    *,
    pooled: float,
    ratio: bool,
    axis_label: str,
    title: str,
    name: str = "funnel",
    level: float = 0.95,
    synthetic: bool = False,
) -> Figure:
    """A funnel plot: each study's effect against its standard error (the y axis inverted,
    larger studies at the top), with the pooled estimate and its pseudo-confidence region
    ``pooled +/- z x SE`` (Sterne & Egger, J Clin Epidemiol 2001;54:1046).

    ``studies`` has ``estimate`` and ``se`` on the pooled scale (log ratios for RR and OR,
    drawn exponentiated on a log axis) and optionally ``this_trial`` (highlighted).
    """
    trial = _flag(studies, "this_trial")
    estimate = studies["estimate"].to_numpy(dtype=float)
    se = studies["se"].to_numpy(dtype=float)
    z = float(stats.norm.ppf(0.5 + level / 2))
    top = float(se.max()) * 1.1 if len(se) else 1.0
    depth = np.linspace(0, top, 50)
    edges = (pooled - z * depth, pooled + z * depth)

    def shown(values: np.ndarray) -> np.ndarray:
        return np.exp(values) if ratio else values

    figure, axes = plt.subplots(figsize=(4.8, 3.8))
    axes.fill_betweenx(depth, shown(edges[0]), shown(edges[1]), color="#f0f0f0", zorder=0)
    for edge in edges:
        axes.plot(shown(edge), depth, color="#777777", lw=0.8, ls="--")
    centre = float(shown(np.array([pooled]))[0])
    axes.axvline(centre, color=_INK, lw=0.9, label="pooled estimate")
    axes.axvline(1.0 if ratio else 0.0, color="#aaaaaa", lw=0.7, ls=":")
    axes.scatter(
        shown(estimate[~trial]),
        se[~trial],
        s=24,
        color=PALETTE[0],
        edgecolor="white",
        linewidth=0.5,
        zorder=3,
        label="published studies" if trial.any() else "studies",
    )
    if trial.any():
        axes.scatter(
            shown(estimate[trial]),
            se[trial],
            s=36,
            marker="D",
            color=_HIGHLIGHT,
            edgecolor="white",
            linewidth=0.5,
            zorder=4,
            label="this trial",
        )
    values = [*shown(estimate), *shown(edges[0][-1:]), *shown(edges[1][-1:])]
    if ratio:
        axes.set_xscale("log")
    limits, ticks = _nice_limits(values, ratio)
    axes.set_xlim(*limits)
    axes.xaxis.set_major_locator(FixedLocator(ticks))
    axes.xaxis.set_major_formatter(
        FuncFormatter(lambda value, _: f"{value:g}".replace("-", "\N{MINUS SIGN}"))
    )
    axes.xaxis.set_minor_locator(NullLocator())
    axes.set_ylim(top, 0)
    axes.set_xlabel(axis_label)
    axes.set_ylabel("standard error")
    axes.set_title(title, loc="left", fontsize=10)
    if synthetic:
        axes.text(0.0, 1.09, "SYNTHETIC DATA", transform=axes.transAxes, ha="left", va="bottom")
        axes.texts[-1].set(fontsize=8.5, fontweight="bold", color=_SYNTHETIC)
    axes.legend(loc="best", fontsize=7.5)
    figure.tight_layout()
    return Figure(
        name,
        f"{title}: each study's effect against its standard error; the solid line is the "
        f"pooled estimate and the dashed lines its pseudo {100 * level:g}% confidence limits. "
        "Asymmetry can mean small-study effects (publication bias among them) or heterogeneity."
        + (" SYNTHETIC DATA." if synthetic else ""),
        figure,
    )
