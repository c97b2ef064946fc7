"""Parsing argv: shared options on either side of the subcommand, strict numbers and texts (property-based)."""

from __future__ import annotations

import argparse
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comfystudio_desktop.cli import COMMANDS, build_parser
from comfystudio_desktop.cli_args import finite_float, first_invalid_text, one_line, positive_seconds, shown, strict_int


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize(("argv", "expected"), [
    (["worker", "--comfy-url", "http://127.0.0.1:9"], {"comfy_url": "http://127.0.0.1:9", "command": "worker"}),
    (["--comfy-url", "http://127.0.0.1:9", "worker"], {"comfy_url": "http://127.0.0.1:9"}),
    (["models", "--comfy-url", "http://h:1", "--json"], {"comfy_url": "http://h:1", "json": True}),
    (["services", "--comfy-url", "http://h:1"], {"comfy_url": "http://h:1"}),
    (["submit", "--home", "/h", "--prompt", "x"], {"home": "/h", "prompt": "x"}),
    (["--home", "/h", "submit", "--prompt", "x"], {"home": "/h"}),
    (["status", "abc", "--verbose"], {"verbose": True, "job_id": "abc"}),
    (["--verbose", "jobs"], {"verbose": True}),
    (["jobs", "-v", "--home", "/h"], {"verbose": True, "home": "/h"}),
    (["jobs"], {"verbose": False, "home": None, "comfy_url": None}),
    (["config", "set", "pipeline_depth", "3", "--home", "/h"], {"home": "/h", "key": "pipeline_depth", "value": "3"}),
    (["redis", "status", "--home", "/h", "--json"], {"home": "/h", "json": True}),
    (["worker", "--id", "w1", "--home", "/h", "-v"], {"worker_id": "w1", "home": "/h", "verbose": True}),
])
def test_shared_options_after_the_subcommand(argv: list[str], expected: dict[str, object]) -> None:
    args = vars(parse(*argv))
    assert {key: args[key] for key in expected} == expected


def test_an_option_after_the_subcommand_wins_over_the_one_before() -> None:
    args = parse("--home", "/before", "--comfy-url", "http://a:1", "worker", "--home", "/after")
    assert (args.home, args.comfy_url) == ("/after", "http://a:1")


def test_every_command_takes_home_and_verbose_after_its_name() -> None:
    required = {"submit": ["--prompt", "x"], "status": ["j"], "cancel": ["j"], "retry": ["j"], "redis": ["status"],
                "config": ["list"], "move": ["j", "--top"], "star": ["j"], "unstar": ["j"], "export": ["f.zip"],
                "import": ["f.zip"], "batch": ["status", "b"], "fetch": ["j"]}
    for command in COMMANDS:
        args = parse(command.name, *required.get(command.name, []), "--home", "/h", "--verbose")
        assert (args.home, args.verbose, args.command) == ("/h", True, command.name)


def test_comfy_url_only_where_it_is_used() -> None:
    with pytest.raises(Exception, match="unrecognized arguments"):
        parse("status", "abc", "--comfy-url", "http://a:1")


@given(st.integers(min_value=-(10**39), max_value=10**39))
def test_strict_int_reads_every_plain_integer(value: int) -> None:
    assert strict_int(str(value)) == value


@given(st.text(max_size=30))
def test_strict_int_accepts_only_ascii_digits(text: str) -> None:
    try:
        value = strict_int(text)
    except argparse.ArgumentTypeError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 120
        return
    assert text.lstrip("+-").isascii() and text.lstrip("+-").isdigit() and value == int(text)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_finite_float_reads_finite_numbers(value: float) -> None:
    text = f"{value:.17g}"
    if "e" in text and abs(int(text.split("e")[1])) > 999:
        return
    assert finite_float(text) == float(text)


@given(st.one_of(st.text(max_size=40), st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "0x10",
                                                          "1_0", " 1", "1 ", "١", "--1", ""])))
def test_finite_float_never_returns_nan_or_inf(text: str) -> None:
    try:
        value = finite_float(text)
    except argparse.ArgumentTypeError as exc:
        assert "\n" not in str(exc)
        return
    assert math.isfinite(value)


@given(st.text(max_size=20))
def test_timeouts_are_finite_and_positive(text: str) -> None:
    try:
        value = positive_seconds(text)
    except argparse.ArgumentTypeError:
        return
    assert math.isfinite(value) and value > 0


@given(st.lists(st.text(max_size=10), max_size=5))
def test_invalid_text_is_found(argv: list[str]) -> None:
    bad = [a for a in argv if any(0xD800 <= ord(c) <= 0xDFFF for c in a) or "\x00" in a]
    message = first_invalid_text(argv)
    assert (message is None) == (not bad)


@given(st.text())
def test_messages_are_one_bounded_line(text: str) -> None:
    assert len(shown(text)) <= 60
    line = one_line(f"error: {text}")
    assert "\n" not in line and "\r" not in line and len(line) <= 400
