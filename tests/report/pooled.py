"""Checks that a report gives a blinded reader nothing per arm and no comparison of arms."""

from __future__ import annotations

import json
import re

from lumbar.protocol import Protocol
from lumbar.report import ReportFiles

COMPARISONS = (
    "difference from",
    "differences from",
    " vs ",
    "minus",
    "group A",
    "group B",
    "NNT",
    "risk difference",
    "reference arm",
    "contrast",
    "lsmeans",
)
"""Words that only a comparison of arms (or the masked group codes of old) would put in a report."""


def arm_words(protocol: Protocol) -> list[str]:
    """Every arm id and label of ``protocol``."""
    return [word for arm in protocol.arms for word in (arm.id, arm.label)]


def assert_nothing_per_arm(files: ReportFiles, protocol: Protocol) -> None:
    """No arm id or label, and no comparison, in the results, the tables, the figures or the
    page (outside the protocol section and the trial's title, which describe the design)."""
    results = (files.html.parent / "tables" / "results.json").read_text("utf-8")
    document = json.loads(results)
    assert document["outcomes"] == {}
    assert document["blinded"] is True
    assert document["compared"] is False
    for path in [*files.tables, *(p for p in files.figures if p.suffix == ".svg")]:
        text = path.read_text("utf-8").replace(protocol.trial.title, "TITLE")
        for word in arm_words(protocol):
            assert word.casefold() not in text.casefold(), (path.name, word)
        for word in COMPARISONS:
            assert word.casefold() not in text.casefold(), (path.name, word)
    html = files.html.read_text("utf-8").replace(protocol.trial.title, "TITLE")
    html = re.sub(r'<section id="protocol">.*?</section>', "", html, flags=re.DOTALL)
    for word in arm_words(protocol):
        assert word.casefold() not in html.casefold(), word
    for word in COMPARISONS:
        assert word.casefold() not in html.casefold(), word
    for section in ("outcome-", "responders-", "treatment", "safety", "sensitivity", "evidence"):
        assert f'<section id="{section}' not in html, section
    for section in ("overview", "consort", "baseline", "follow-up", "outcomes-pooled", "missing"):
        assert f'<section id="{section}">' in html, section
    names = {path.name for path in files.figures}
    assert names == {"consort.svg", "consort.png"}
