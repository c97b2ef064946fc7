"""Batch syntax: a prompt matrix, a seed range, a list of models, a list of prompts (text lines or CSV).

Pure functions; every failure is a `BatchSyntaxError` with one clear line. Matrix syntax: `{a|b|c}` is a choice,
`\\{`, `\\}`, `\\|` and `\\\\` are the literal characters; choices do not nest, and what a choice inserts is
never read as syntax again (one pass), so no text can smuggle more choices in. A batch is capped at
`MAX_BATCH_JOBS` jobs, checked before anything is expanded.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from comfystudio_desktop.jobs import SEED_MAX

__all__ = [
    "MAX_BATCH_JOBS",
    "BatchSyntaxError",
    "MatrixPart",
    "batch_size_check",
    "expand_matrix",
    "matrix_count",
    "new_batch_id",
    "parse_matrix",
    "parse_models",
    "parse_seed_range",
    "prompts_from_csv",
]

MAX_BATCH_JOBS = 1_000
_SEED_RANGE_RE = re.compile(r"([0-9]{1,20})(?:-([0-9]{1,20}))?")
_ESCAPABLE = "{}|\\"


class BatchSyntaxError(ValueError):
    """Batch text that cannot be expanded; the message says where and why."""


def new_batch_id() -> str:
    """A fresh batch id (letters, digits and '-', as a job id)."""
    return f"batch-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True, slots=True)
class MatrixPart:
    """A piece of a matrix: literal text (one option) or a choice (several)."""

    options: tuple[str, ...]


def parse_matrix(text: str) -> tuple[MatrixPart, ...]:
    """Split `text` into literal parts and choices; `BatchSyntaxError` for unbalanced or nested braces."""
    parts: list[MatrixPart] = []
    literal: list[str] = []
    options: list[str] | None = None  # inside braces: the options so far
    current: list[str] = []
    chars = iter(enumerate(text))
    for index, char in chars:
        if char == "\\":
            following = next(chars, None)
            if following is None or following[1] not in _ESCAPABLE:
                raise BatchSyntaxError(f"matrix: '\\' at {index + 1} must escape one of {{ }} | \\")
            (current if options is not None else literal).append(following[1])
        elif char == "{":
            if options is not None:
                raise BatchSyntaxError(f"matrix: '{{' at {index + 1} inside a choice (choices do not nest)")
            if literal:
                parts.append(MatrixPart(("".join(literal),)))
                literal = []
            options, current = [], []
        elif char == "}":
            if options is None:
                raise BatchSyntaxError(f"matrix: '}}' at {index + 1} closes no choice (write \\}} for the character)")
            options.append("".join(current))
            parts.append(MatrixPart(tuple(options)))
            options = None
        elif char == "|" and options is not None:
            options.append("".join(current))
            current = []
        else:
            (current if options is not None else literal).append(char)
    if options is not None:
        raise BatchSyntaxError("matrix: a '{' is never closed")
    if literal:
        parts.append(MatrixPart(("".join(literal),)))
    return tuple(parts)


def matrix_count(parts: Sequence[MatrixPart]) -> int:
    """How many prompts the parts expand to (the product of the choices' option counts)."""
    return math.prod(len(part.options) for part in parts)


def expand_matrix(text: str, *, limit: int = MAX_BATCH_JOBS) -> list[str]:
    """Every prompt of the matrix, first choice varying slowest; refused beyond `limit` before expanding."""
    parts = parse_matrix(text)
    count = matrix_count(parts)
    if count > limit:
        raise BatchSyntaxError(f"matrix: makes {count:,} prompts; at most {limit:,} are allowed in one batch")
    return ["".join(choice) for choice in itertools.product(*(part.options for part in parts))]


def parse_seed_range(text: str, *, limit: int = MAX_BATCH_JOBS) -> list[int]:
    """`100-119` (both ends included) or one seed `100`; ascending, within ComfyUI's seed range and `limit`."""
    match = _SEED_RANGE_RE.fullmatch(text)
    if match is None:
        raise BatchSyntaxError(f"--seeds: expected FIRST-LAST such as 100-119, not {text[:40]!r}")
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) is not None else first
    if last < first:
        raise BatchSyntaxError(f"--seeds: {last} is below {first}")
    if last > SEED_MAX:
        raise BatchSyntaxError(f"--seeds: seeds go up to {SEED_MAX}")
    if last - first + 1 > limit:
        raise BatchSyntaxError(f"--seeds: {last - first + 1:,} seeds; at most {limit:,} are allowed in one batch")
    return list(range(first, last + 1))


def parse_models(text: str) -> list[str]:
    """`a,b,c` → the model names, in order, without blanks or repeats (each is validated with the job)."""
    names: list[str] = []
    for raw in text.split(","):
        name = raw.strip()
        if name and name not in names:
            names.append(name)
    if not names:
        raise BatchSyntaxError("--models: no model names given")
    return names


def prompts_from_csv(text: str) -> list[str]:
    """The `prompt` column of CSV text (header row first; other columns are ignored); blank prompts skipped."""
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise BatchSyntaxError(f"CSV: {exc}") from exc
    if not rows:
        raise BatchSyntaxError("CSV: empty file")
    header = [cell.strip().lower() for cell in rows[0]]
    if "prompt" not in header:
        raise BatchSyntaxError("CSV: no 'prompt' column in the first row")
    column = header.index("prompt")
    prompts = [row[column].strip() for row in rows[1:] if len(row) > column and row[column].strip()]
    if not prompts:
        raise BatchSyntaxError("CSV: the 'prompt' column is empty")
    if len(prompts) > MAX_BATCH_JOBS:
        raise BatchSyntaxError(f"CSV: {len(prompts):,} prompts; at most {MAX_BATCH_JOBS:,} are allowed in one batch")
    return prompts


def batch_size_check(*counts: int, limit: int = MAX_BATCH_JOBS) -> int:
    """The number of jobs of a batch made of every combination of the given counts; refused beyond `limit`."""
    total = math.prod(counts)
    if total > limit:
        raise BatchSyntaxError(f"the batch makes {total:,} jobs ({' x '.join(str(c) for c in counts)}); "
                               f"at most {limit:,} are allowed")
    return total
