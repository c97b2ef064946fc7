"""Strict parsers for command-line values: exact forms (`fullmatch`), finite numbers, valid text.

Each raises `argparse.ArgumentTypeError` (or returns an error message) with a short sentence; user text in a
message is shown with `shown()` so a newline or a megabyte of input cannot break or flood the error line.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Sequence
from datetime import datetime

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "MAX_SHOWN_CHARS",
    "CommandFailed",
    "date_ms",
    "finite_float",
    "first_invalid_text",
    "one_line",
    "positive_seconds",
    "shown",
    "strict_int",
]

#: A command's exit codes: done; failed (a job failed, a check did not pass); refused (bad input, one line).
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
MAX_SHOWN_CHARS = 60
_MAX_LINE_CHARS = 400
_INT_RE = re.compile(r"[+-]?[0-9]{1,40}")
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]{1,40}(?:\.[0-9]{0,40})?|\.[0-9]{1,40})(?:[eE][+-]?[0-9]{1,3})?")


class CommandFailed(Exception):
    """A well-understood refusal (unknown job, nothing to do): one line, exit 2."""


def shown(text: object, limit: int = MAX_SHOWN_CHARS) -> str:
    """`text` as a repr, cut to about `limit` characters: safe to put in a message or a log line."""
    value = repr(text)
    return value if len(value) <= limit else value[: limit - 4] + "…" + value[-3:]


def one_line(message: str) -> str:
    """Make `message` a single, bounded line (control characters escaped)."""
    text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for ch in message)
    return text if len(text) <= _MAX_LINE_CHARS else text[: _MAX_LINE_CHARS - 1] + "…"


def strict_int(text: str) -> int:
    """A decimal integer written with ASCII digits only (no '_', no spaces, no other scripts' digits)."""
    if not _INT_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {shown(text)}")
    return int(text)


def finite_float(text: str) -> float:
    """A finite decimal number (nan, inf and hex forms are refused)."""
    if not _FLOAT_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected a number, got {shown(text)}")
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {shown(text)}")
    return value


def positive_seconds(text: str) -> float:
    """A finite duration greater than zero, in seconds (at most ten years)."""
    value = finite_float(text)
    if not 0 < value <= 10 * 365 * 86400:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {shown(text)}")
    return value


def first_invalid_text(argv: Sequence[object]) -> str | None:
    """The message for the first argument that is not valid Unicode text, or None.

    POSIX hands Python undecodable argv bytes as lone surrogates (surrogateescape); they cannot be stored, logged
    or sent anywhere as text, so they are refused at the door.
    """
    for index, arg in enumerate(argv, start=1):
        if not isinstance(arg, str):
            return f"argument {index} is not text"
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return f"argument {index} is not valid UTF-8 text: {shown(arg)}"
        if "\x00" in arg:
            return f"argument {index} contains a NUL character"
    return None


_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2})?)?")


def date_ms(text: str) -> int:
    """`YYYY-MM-DD` or `YYYY-MM-DD HH:MM[:SS]`, local time, as epoch milliseconds."""
    if not _DATE_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD or YYYY-MM-DD HH:MM, got {shown(text)}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a real date: {shown(text)}") from exc
    return int(moment.astimezone().timestamp() * 1000)
