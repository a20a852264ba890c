"""The bounded YAML reader under attack: alias bombs, cycles, depth, size, endless numbers.

Each case is a document that once exhausted the machine or ended in a traceback;
each must now be refused quickly, with bounded memory, by a problem that says why.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from lumbar._declared import (
    MAX_NUMBER_CHARACTERS,
    MAX_YAML_ALIASES,
    MAX_YAML_CHARACTERS,
    MAX_YAML_DEPTH,
    MAX_YAML_VALUES,
    YamlSyntaxError,
    read_text_limited,
    read_yaml,
)
from lumbar.errors import MAX_SHOWN_PROBLEMS, ProtocolError
from lumbar.protocol import load_protocol, parse_protocol

pytestmark = pytest.mark.unit

BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + level)}: &{chr(98 + level)} [{','.join([f'*{chr(97 + level)}'] * 9)}]\n"
    for level in range(8)
)
"""The 342-byte document of the report: nine aliases a level, 9^9 strings expanded."""

DOUBLING = "a0: &a0 [x, y]\n" + "".join(
    f"a{level}: &a{level} [*a{level - 1}, *a{level - 1}]\n" for level in range(1, 20)
)
"""Two aliases a level: few aliases in all (38), yet 2^20 values expanded."""


SECONDS = 5.0
"""A generous bound for "refused at once" on a loaded machine: each attack took from 39 s
to hours (and gigabytes) before, and takes milliseconds now."""


def refused_quickly(text: str) -> tuple[YamlSyntaxError, float, int]:
    """The error reading ``text``, the seconds it took and the peak bytes it allocated."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(YamlSyntaxError) as caught:
            read_yaml(text)
        elapsed = time.perf_counter() - started
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return caught.value, elapsed, peak


def test_a_billion_laughs_is_refused_at_once_with_little_memory() -> None:
    assert len(BILLION_LAUGHS) == 342
    error, elapsed, peak = refused_quickly(BILLION_LAUGHS)
    assert f"more than {MAX_YAML_ALIASES} aliases" in error.problem.rule
    assert elapsed < SECONDS
    assert peak < 2_000_000


def test_few_aliases_that_double_at_every_level_are_refused_by_their_expanded_size() -> None:
    assert DOUBLING.count("*") < MAX_YAML_ALIASES
    error, elapsed, peak = refused_quickly(DOUBLING)
    assert f"more than {MAX_YAML_VALUES:,} values (aliases expanded)" in error.problem.rule
    assert elapsed < SECONDS
    assert peak < 2_000_000


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: [1, {c: *a}]}\n"])
def test_a_recursive_alias_is_a_clear_error_not_a_recursion_error(text: str) -> None:
    error, _elapsed, _peak = refused_quickly(text)
    assert "recursive alias" in error.problem.rule
    assert error.problem.line == 1


def test_a_few_aliases_are_still_read() -> None:
    data, _lines = read_yaml("base: &b {day: 1}\none: *b\ntwo: *b\n")
    assert data == {"base": {"day": 1}, "one": {"day": 1}, "two": {"day": 1}}


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "[" * (MAX_YAML_DEPTH + 1) + "]" * (MAX_YAML_DEPTH + 1) + "\n",
        "".join(" " * level + f"k{level}:\n" for level in range(MAX_YAML_DEPTH + 2)),
        "[" * 5_000 + "]" * 5_000,
        "a: &a " + "[" * 20 + "]" * 20 + "\nb: " + "[" * 20 + "*a" + "]" * 20 + "\n",
    ],
    ids=["flow", "block", "beyond libyaml's own limit", "deep only once an alias is expanded"],
)
def test_nesting_beyond_the_depth_limit_is_refused(text: str) -> None:
    error, elapsed, _peak = refused_quickly(text)
    assert "levels deep" in error.problem.rule or "nesting depth" in error.problem.rule
    assert elapsed < SECONDS


def test_a_text_beyond_the_length_limit_is_refused_before_parsing() -> None:
    text = "a: " + "x" * MAX_YAML_CHARACTERS
    error, elapsed, _peak = refused_quickly(text)
    assert "longer than lumbar reads" in error.problem.rule
    assert elapsed < SECONDS


def test_a_large_file_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as file:
        file.truncate(200 * MAX_YAML_CHARACTERS)  # 200 MB of zeros, sparse on disk
    tracemalloc.start()
    try:
        with pytest.raises(YamlSyntaxError, match="longer than lumbar reads"):
            read_text_limited(path)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * MAX_YAML_CHARACTERS
    with pytest.raises(ProtocolError, match="cannot read the protocol file"):
        load_protocol(path)


@pytest.mark.parametrize("number", ["1" * 5_000, "-" + "9" * 4_000, "1" * 41, "1." + "5" * 60])
def test_a_number_longer_than_any_rule_needs_is_refused_before_conversion(number: str) -> None:
    error, elapsed, _peak = refused_quickly(f"lumbar_protocol: 1\nanalysis:\n  alpha: {number}\n")
    assert error.problem.where == "analysis.alpha"
    assert error.problem.line == 3
    assert f"at most {MAX_NUMBER_CHARACTERS}" in error.problem.rule
    assert elapsed < SECONDS


def test_an_impossible_date_is_a_problem_not_a_value_error() -> None:
    error, _elapsed, _peak = refused_quickly("start: 2024-13-45\n")
    assert error.problem.where == "start"
    assert "month must be in 1..12" in error.problem.rule


def test_a_number_as_long_as_allowed_is_read() -> None:
    number = "9" * MAX_NUMBER_CHARACTERS
    assert read_yaml(f"n: {number}\n")[0] == {"n": int(number)}


def test_the_shipped_protocol_is_far_within_every_limit(reference_text: str) -> None:
    _data, lines = read_yaml(reference_text)
    assert len(reference_text) * 50 < MAX_YAML_CHARACTERS
    assert len(lines.lines) * 50 < MAX_YAML_VALUES
    assert max(len(path) for path in lines.lines) * 3 < MAX_YAML_DEPTH


def test_thousands_of_unknown_keys_are_refused_fast_with_a_screenful_and_a_count(
    reference_text: str,
) -> None:
    unknown = 20_000
    text = reference_text + "".join(f"unknown_{index}: 1\n" for index in range(unknown))
    started = time.perf_counter()
    with pytest.raises(ProtocolError) as caught:
        parse_protocol(text, "big.yaml")
    elapsed = time.perf_counter() - started
    message = str(caught.value)
    assert elapsed < SECONDS
    assert f"({unknown:,} problems)" in message
    assert message.count("is not a field of this section") == MAX_SHOWN_PROBLEMS
    assert message.endswith(
        f"... and {unknown - MAX_SHOWN_PROBLEMS:,} more not shown; fix these and check again"
    )
    assert len(message.splitlines()) < 3 * MAX_SHOWN_PROBLEMS


def test_the_report_s_oversized_protocol_is_refused_at_once(
    reference_text: str, tmp_path: Path
) -> None:
    path = tmp_path / "oversized.yaml"
    path.write_text(reference_text + "".join(f"unknown_{n}: 1\n" for n in range(300_000)))
    assert path.stat().st_size > 4_900_000
    started = time.perf_counter()
    with pytest.raises(ProtocolError) as caught:
        load_protocol(path)
    assert time.perf_counter() - started < SECONDS
    assert len(str(caught.value).splitlines()) < 5


def test_a_maximal_text_of_small_values_is_refused_without_composing_it() -> None:
    text = "a: [" + "1," * (MAX_YAML_CHARACTERS // 2 - 4) + "1]"
    assert len(text) <= MAX_YAML_CHARACTERS
    error, _elapsed, peak = refused_quickly(text)  # tracemalloc slows each allocation
    assert f"more than {MAX_YAML_VALUES:,} values" in error.problem.rule
    assert peak < 20_000_000
    started = time.perf_counter()
    with pytest.raises(YamlSyntaxError):
        read_yaml(text)
    assert time.perf_counter() - started < SECONDS
