"""Plain tables of text: what a summary says, apart from how a terminal or page draws it.

The protocol and instrument summaries return these; the CLI draws them with
Rich and the report (later) draws them as HTML, so both say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SummaryTable"]


@dataclass(frozen=True)
class SummaryTable:
    """A titled table of text cells, with an optional note under it."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"{self.title}: row {row} does not have {len(self.columns)} cells")

    def as_markdown(self, heading_level: int | None = None) -> str:
        """The table in Markdown, under a heading of ``heading_level`` when given."""
        lines = []
        if heading_level is not None:
            lines += ["#" * heading_level + " " + self.title, ""]
        if self.rows:
            lines.append("| " + " | ".join(self.columns) + " |")
            lines.append("|" + "|".join("---" for _ in self.columns) + "|")
            lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in self.rows]
            lines.append("")
        if self.note:
            lines += [self.note, ""]
        return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
