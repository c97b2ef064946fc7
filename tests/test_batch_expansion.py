"""Batch syntax: matrix, seed range, models, CSV prompts — counts, escaping, caps, and total parsers."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comfystudio_desktop.batch_expansion import (
    MAX_BATCH_JOBS,
    BatchSyntaxError,
    batch_size_check,
    expand_matrix,
    parse_models,
    parse_seed_range,
    prompts_from_csv,
)
from comfystudio_desktop.jobs import SEED_MAX


def _escape(text: str) -> str:
    return "".join("\\" + ch if ch in "{}|\\" else ch for ch in text)


def test_the_issue_example() -> None:
    assert expand_matrix("a {red|green|blue} {cube|sphere}") == [
        "a red cube", "a red sphere", "a green cube", "a green sphere", "a blue cube", "a blue sphere"]


@pytest.mark.parametrize(("text", "expected"), [
    ("plain", ["plain"]),
    ("", [""]),
    ("{a|}b", ["ab", "b"]),
    ("x \\{not|a choice\\} y", ["x {not|a choice} y"]),
    ("pipes | outside", ["pipes | outside"]),
    ("{a\\|b|c}", ["a|b", "c"]),
    ("back\\\\slash {1|2}", ["back\\slash 1", "back\\slash 2"]),
])
def test_matrix_table(text: str, expected: list[str]) -> None:
    assert expand_matrix(text) == expected


@pytest.mark.parametrize(("text", "needle"), [
    ("a {b", "never closed"), ("a } b", "closes no choice"), ("{a {b|c}}", "do not nest"),
    ("trailing \\", "must escape"), ("\\n", "must escape"),
])
def test_matrix_errors(text: str, needle: str) -> None:
    with pytest.raises(BatchSyntaxError, match=needle):
        expand_matrix(text)


def test_the_cap_is_checked_before_expanding() -> None:
    huge = "{a|b|c|d|e|f|g|h|i|j}" * 9  # 10**9 prompts: refused at once, not built
    with pytest.raises(BatchSyntaxError, match="1,000,000,000 prompts; at most 1,000"):
        expand_matrix(huge)
    assert len(expand_matrix("{a|b|c|d|e|f|g|h|i|j}" * 3)) == MAX_BATCH_JOBS


_option = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=6)


@given(st.lists(st.lists(_option, min_size=1, max_size=4), min_size=1, max_size=4), st.lists(_option, max_size=5))
def test_count_is_the_product_and_options_are_literal(choices: list[list[str]], literals: list[str]) -> None:
    """Any text in an option (braces, pipes, backslashes included, escaped) comes out as itself: no injection."""
    pieces: list[str] = []
    for index, options in enumerate(choices):
        if index < len(literals):
            pieces.append(_escape(literals[index]))
        pieces.append("{" + "|".join(_escape(option) for option in options) + "}")
    text = "".join(pieces)
    expanded = expand_matrix(text, limit=10**6)
    assert len(expanded) == math.prod(len(options) for options in choices)
    prefixes = [literals[i] if i < len(literals) else "" for i in range(len(choices))]
    expected = ["".join(prefix + option for prefix, option in zip(prefixes, combo, strict=True))
                for combo in itertools.product(*choices)]
    assert expanded == expected


@given(st.text(max_size=40))
def test_matrix_parser_is_total(text: str) -> None:
    try:
        expanded = expand_matrix(text)
    except BatchSyntaxError:
        return
    assert 1 <= len(expanded) <= MAX_BATCH_JOBS


@pytest.mark.parametrize(("text", "expected"), [("100-103", [100, 101, 102, 103]), ("7", [7]), ("0-0", [0])])
def test_seed_range(text: str, expected: list[int]) -> None:
    assert parse_seed_range(text) == expected


@pytest.mark.parametrize(("text", "needle"), [
    ("119-100", "below"), ("1-2000", "at most 1,000"), ("-5", "FIRST-LAST"), ("1..5", "FIRST-LAST"),
    (f"{SEED_MAX}-{SEED_MAX + 1}", "seeds go up to"), ("１-2", "FIRST-LAST"), ("1-2\n", "FIRST-LAST"),
])
def test_seed_range_errors(text: str, needle: str) -> None:
    with pytest.raises(BatchSyntaxError, match=needle):
        parse_seed_range(text)


@given(st.text(max_size=30))
def test_seed_range_parser_is_total(text: str) -> None:
    try:
        seeds = parse_seed_range(text)
    except BatchSyntaxError:
        return
    assert seeds == sorted(seeds) and 1 <= len(seeds) <= MAX_BATCH_JOBS and seeds[0] >= 0 and seeds[-1] <= SEED_MAX


def test_models_and_csv() -> None:
    assert parse_models(" a.safetensors, b/c.safetensors,,a.safetensors ") == ["a.safetensors", "b/c.safetensors"]
    with pytest.raises(BatchSyntaxError):
        parse_models(" , ")
    assert prompts_from_csv('id,Prompt,notes\n1,"a fox, red",x\n2,,y\n3,"two\nlines",z\n') == ["a fox, red",
                                                                                             "two\nlines"]
    for bad, needle in (("", "empty"), ("id,text\n1,a\n", "no 'prompt' column"), ("prompt\n\n", "is empty")):
        with pytest.raises(BatchSyntaxError, match=needle):
            prompts_from_csv(bad)


def test_batch_size_check() -> None:
    assert batch_size_check(10, 10, 10) == 1000
    with pytest.raises(BatchSyntaxError, match="1,001 jobs"):
        batch_size_check(7, 11, 13)
