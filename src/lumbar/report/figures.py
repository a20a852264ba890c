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
from dataclasses import dataclass, replace

import matplotlib as mpl

mpl.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure as MplFigure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from scipy import stats

from lumbar.analysis.consort import ArmFlow, ConsortFlow
from lumbar.formatting import SYNTHETIC, SYNTHETIC_COLOUR

__all__ = [
    "Figure",
    "arm_colours",
    "attendance_figure",
    "consort_figure",
    "contrast_figure",
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

    def marked(self) -> Figure:
        """The figure marked as made from synthetic data: the mark in its lower right corner,
        and its caption saying so (every synthetic figure is marked here, one way)."""
        self.figure.text(
            0.995,
            0.005,
            SYNTHETIC,
            ha="right",
            va="bottom",
            fontsize=7.5,
            fontweight="bold",
            color=SYNTHETIC_COLOUR,
        )
        return replace(self, caption=f"{self.caption} {SYNTHETIC}.")


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
    if len(arms) == 1:  # every arm counted together (a blinded reader): under the centre
        lefts = [centre - column / 2]
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
