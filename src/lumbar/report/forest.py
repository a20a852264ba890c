"""Forest and funnel plots of a meta-analysis, and the figures of a whole review.

:func:`forest_figure` and :func:`funnel_figure` draw any pooled analysis;
:func:`review_figures` draws them for a :class:`~lumbar.synthesis.Review`, as
``lumbar meta`` writes them and the report's evidence section shows them.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure as MplFigure
from matplotlib.patches import Polygon, Rectangle
from matplotlib.text import Text
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator
from matplotlib.transforms import blended_transform_factory
from scipy import stats

from lumbar.formatting import SYNTHETIC, number, p_sentence
from lumbar.report.figures import PALETTE, Figure
from lumbar.synthesis import MetaResult, Review
from lumbar.synthesis.review import MODEL_NAMES

__all__ = [
    "AXIS_NAMES",
    "forest_figure",
    "funnel_figure",
    "heterogeneity_text",
    "review_figures",
    "review_forest",
]

AXIS_NAMES = {
    "MD": "Mean difference",
    "SMD": "Standardized mean difference (Hedges' g)",
    "RR": "Risk ratio",
    "OR": "Odds ratio",
    "RD": "Risk difference",
}


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
_RATIO_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)


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
            interval = f"[{number(row.lower, digits)}, {number(row.upper, digits)}]"
            estimate = number(row.estimate, digits)
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
    caption = (
        f"{title}: each study's {effect_label} with its {percent} confidence interval (a "
        "square's area is proportional to the study's weight); diamonds are pooled estimates."
    )
    if any(row is not None and row.kind == "prediction" for row in rows):
        caption += " The bar under a diamond is the prediction interval for a new study."
    if _flag(studies, "this_trial").any():
        caption += " Highlighted rows are this trial's own result."
    return Figure(name, caption, figure)


def funnel_figure(
    studies: pd.DataFrame,
    *,
    pooled: float,
    ratio: bool,
    axis_label: str,
    title: str,
    name: str = "funnel",
    level: float = 0.95,
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
    axes.legend(loc="best", fontsize=7.5)
    figure.tight_layout()
    return Figure(
        name,
        f"{title}: each study's effect against its standard error; the solid line is the "
        f"pooled estimate and the dashed lines its pseudo {100 * level:g}% confidence limits. "
        "Asymmetry can mean small-study effects (publication bias among them) or heterogeneity.",
        figure,
    )


def heterogeneity_text(result: MetaResult) -> str:
    interval = ""
    if result.tau2_interval is not None:
        low, high = result.tau2_interval
        interval = f" [{low:.3g}, {high:.3g}]"
    return (
        f"\N{GREEK SMALL LETTER TAU}\N{SUPERSCRIPT TWO} = {result.tau2:.3g}{interval}; "
        f"I\N{SUPERSCRIPT TWO} = {result.i2:.0f}%; Q = {result.q:.2f} on {result.q_df} df "
        f"({p_sentence(result.q_p)})"
    )


def _review_notes(run: Review) -> list[str]:
    model = run.model
    statistic = "z" if model.df is None else f"t({model.df})"
    value = number(model.pooled.statistic)
    notes = [
        f"{'With this trial' if run.trial_rows is not None else 'Heterogeneity'}: "
        f"{heterogeneity_text(model)}",
        f"Test for overall effect: {statistic} = {value} ({p_sentence(model.pooled.p)})",
    ]
    if run.before is not None:
        notes.insert(0, f"Published studies only: {heterogeneity_text(run.before)}")
    if run.subgroup is not None:
        analysis = run.subgroup
        notes.append(
            f"Test for subgroup differences: Q = {analysis.q_between:.2f} on "
            f"{analysis.q_between_df} df ({p_sentence(analysis.q_between_p)})"
        )
    if run.excluded:
        notes.append(
            f"Set aside for want of the numbers an {run.measure} needs: "
            + ", ".join(study for study, _ in run.excluded)
        )
    if run.synthetic:
        notes.append(f"{SYNTHETIC}: this trial's rows come from simulated participants.")
    return notes


def _summaries(run: Review) -> pd.DataFrame:
    records: list[dict[str, Any]] = []
    if run.subgroup is not None and run.groups is not None:
        weights = pd.Series(run.model.weights).groupby(run.groups).sum()
        for name, result in run.subgroup.results.items():
            records.append(
                {
                    "label": f"Subtotal (k = {result.k})",
                    "subgroup": name,
                    "estimate": result.estimate,
                    "lower": result.pooled.lower,
                    "upper": result.pooled.upper,
                    "note": heterogeneity_text(result) if result.k > 1 else None,
                    "weight": float(weights[name]),
                }
            )
    overall = [(run.before, "Published studies", False)] if run.before is not None else []
    label = MODEL_NAMES[run.model.method] + (" + HKSJ" if run.model.hksj else "")
    if run.trial_rows is not None:
        label = run.model_label[0].upper() + run.model_label[1:]
    overall.append((run.model, label, run.trial_rows is not None))
    for result, name, highlight in overall:
        assert result is not None
        low, high = result.prediction or (math.nan, math.nan)
        records.append(
            {
                "label": f"{name} (k = {result.k})",
                "subgroup": None,
                "estimate": result.estimate,
                "lower": result.pooled.lower,
                "upper": result.pooled.upper,
                "prediction_lower": low,
                "prediction_upper": high,
                "weight": 100.0 if result is run.model else math.nan,
                "this_trial": highlight,
            }
        )
    frame = pd.DataFrame(records)
    for name in ("estimate", "lower", "upper", "prediction_lower", "prediction_upper"):
        if name in frame.columns:
            frame[name] = [run.shown(float(v)) for v in frame[name]]
    return frame


def _arm_counts(rows: pd.DataFrame, binary: bool) -> list[tuple[str, list[str]]]:
    """Text columns of per-arm numbers: n (continuous) or events/n (binary), where given."""

    def whole(value: Any) -> str:
        number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
        return "" if pd.isna(number) else f"{number:.0f}"

    found = []
    for arm in ("1", "2"):
        if f"n{arm}" not in rows.columns:
            continue
        counts = [whole(v) for v in rows[f"n{arm}"]]
        if binary and f"events{arm}" in rows.columns:
            events = [whole(v) for v in rows[f"events{arm}"]]
            counts = [f"{e}/{n}" if e and n else "" for e, n in zip(events, counts, strict=True)]
        if any(counts):
            found.append((arm, counts))
    return found


def review_figures(
    run: Review, treatment: str, comparator: str, higher_is_better: bool, title: str
) -> list[Figure]:
    """The forest and funnel plots of a review."""
    studies = run.studies_frame()
    funnel = funnel_figure(
        pd.DataFrame(
            {"estimate": studies["yi"], "se": studies["sei"], "this_trial": studies["this_trial"]}
        ),
        pooled=run.model.estimate,
        ratio=run.ratio,
        axis_label=AXIS_NAMES[run.measure] + (" (log scale)" if run.ratio else ""),
        title="Funnel plot: " + title.split(": ", 1)[-1],
        level=run.level,
    )
    return [review_forest(run, treatment, comparator, higher_is_better, title), funnel]


def review_forest(
    run: Review, treatment: str, comparator: str, higher_is_better: bool, title: str
) -> Figure:
    """The forest plot of a review: studies, pooled diamonds, prediction intervals."""
    studies = run.studies_frame()
    shown = pd.DataFrame(
        {
            "study": studies["study"],
            "estimate": studies["estimate"],
            "lower": studies["ci_lower"],
            "upper": studies["ci_upper"],
            "weight": studies["weight"],
            "this_trial": studies["this_trial"],
        }
    )
    if run.groups is not None:
        shown["subgroup"] = studies["subgroup"]
    binary = run.measure in ("RR", "OR", "RD")
    names = {"1": treatment, "2": comparator}
    text_columns = []
    for arm, counts in _arm_counts(studies, binary):
        column = f"arm{arm}"
        shown[column] = counts
        text_columns.append(
            (f"{names[arm].capitalize()} ({'events/n' if binary else 'n'})", column)
        )
    sides = (f"favours {treatment}", f"favours {comparator}")
    if higher_is_better:
        sides = (sides[1], sides[0])
    axis = AXIS_NAMES[run.measure] + (
        " (log scale)" if run.ratio else f" ({treatment} \N{MINUS SIGN} {comparator})"
    )
    forest = forest_figure(
        shown,
        _summaries(run),
        ratio=run.ratio,
        effect_label=run.measure,
        axis_label=axis,
        favours=sides,
        title=title,
        notes=_review_notes(run),
        text_columns=text_columns,
        level=run.level,
        digits=run.digits,
    )
    return forest
