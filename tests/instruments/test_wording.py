"""Licensed wording: loaded from the user's file, checked against the instrument, never shipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from lumbar.errors import InstrumentError
from lumbar.instruments import INSTRUMENTS, apply_wording, get_instrument, load_wording

pytestmark = pytest.mark.unit


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "wording.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def _peg_file(tmp_path: Path, items: dict[str, str], instrument: str = "peg") -> Path:
    lines = "".join(f"  {key}: {text}\n" for key, text in items.items())
    return _write(
        tmp_path,
        f"lumbar_wording: 1\ninstrument: {instrument}\nlanguage: en\n"
        f"source: Licensed to our clinic\nitems:\n{lines}",
    )


PEG_TEXTS = {"peg_pain": "Text A", "peg_enjoyment": "Text B", "peg_activity": "Text C"}


def test_wording_replaces_labels_when_applied(tmp_path: Path) -> None:
    wording = load_wording(_peg_file(tmp_path, PEG_TEXTS))
    peg = apply_wording(get_instrument("peg"), wording)
    assert [peg.text_of(item.id) for item in peg.items] == ["Text A", "Text B", "Text C"]
    # The registry's instrument is untouched: wording lives only in the user's copy.
    assert get_instrument("peg").wording is None
    assert get_instrument("peg").text_of("peg_pain") == "average pain in the past week"


def test_every_item_needs_a_text(tmp_path: Path) -> None:
    texts = dict(PEG_TEXTS)
    del texts["peg_activity"]
    with pytest.raises(InstrumentError, match="missing: peg_activity"):
        load_wording(_peg_file(tmp_path, texts))


def test_unknown_items_are_refused_with_their_line(tmp_path: Path) -> None:
    with pytest.raises(InstrumentError) as caught:
        load_wording(_peg_file(tmp_path, PEG_TEXTS | {"peg_sleep": "Text D"}))
    problem = caught.value.problems[0]
    assert problem.where == "items.peg_sleep"
    assert problem.line == 9


def test_unknown_instrument_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InstrumentError, match="did you mean peg"):
        load_wording(_peg_file(tmp_path, PEG_TEXTS, instrument="pegg"))


def test_missing_source_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "lumbar_wording: 1\ninstrument: peg\nlanguage: en\nitems: {}\n")
    with pytest.raises(InstrumentError) as caught:
        load_wording(path)
    assert any(p.where == "source" and p.rule == "is required" for p in caught.value.problems)


def test_invalid_yaml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InstrumentError, match="not valid YAML"):
        load_wording(_write(tmp_path, "items: [unclosed\n"))


def test_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InstrumentError, match="cannot read the wording file"):
        load_wording(tmp_path / "absent.yaml")


def test_wording_for_another_instrument_cannot_be_applied(tmp_path: Path) -> None:
    wording = load_wording(_peg_file(tmp_path, PEG_TEXTS))
    with pytest.raises(InstrumentError, match="must be rdq"):
        apply_wording(get_instrument("rdq"), wording)


def test_no_shipped_instrument_carries_wording() -> None:
    assert all(instrument.wording is None for instrument in INSTRUMENTS)
