"""Lists of prompts: the lines of a text (one prompt per line) and prompt files (.txt, .csv) dropped on the window.

A file is read through one strict parser: at most `MAX_PROMPT_FILE_BYTES`, UTF-8 (a byte-order mark is allowed),
no NUL characters, at least one prompt and at most `MAX_BATCH_JOBS`. A CSV file gives its `prompt` column when the
first row names one (that row is the header), otherwise its first column. Every failure is one
`BatchSyntaxError` line naming the file, never another exception.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from comfystudio_desktop.batch_expansion import MAX_BATCH_JOBS, BatchSyntaxError

__all__ = ["MAX_PROMPT_FILE_BYTES", "PROMPT_FILE_SUFFIXES", "prompt_lines", "prompts_from_file", "read_prompt_file"]

MAX_PROMPT_FILE_BYTES = 1024 * 1024
PROMPT_FILE_SUFFIXES = (".txt", ".csv")


def prompt_lines(text: str) -> list[str]:
    """One prompt per non-blank line, stripped; lines starting with `#` are comments (as in `submit --from`)."""
    return [line for raw in text.splitlines() if (line := raw.strip()) and not line.startswith("#")]


def read_prompt_file(path: Path) -> list[str]:
    """The prompts of the .txt or .csv file at `path` (see `prompts_from_file`)."""
    if path.suffix.lower() not in PROMPT_FILE_SUFFIXES:
        raise BatchSyntaxError(f"{path.name}: only .txt and .csv files hold prompts")
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_PROMPT_FILE_BYTES + 1)
    except OSError as exc:
        raise BatchSyntaxError(f"{path.name}: {exc.strerror or type(exc).__name__}") from exc
    return prompts_from_file(data, path.name)


def prompts_from_file(data: bytes, name: str) -> list[str]:
    """The prompts held by a file's bytes; `name`'s suffix says whether it is CSV."""
    if len(data) > MAX_PROMPT_FILE_BYTES:
        raise BatchSyntaxError(f"{name}: larger than {MAX_PROMPT_FILE_BYTES // 1024} KB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BatchSyntaxError(f"{name}: not UTF-8 text (byte {exc.start + 1})") from None
    if "\x00" in text:
        raise BatchSyntaxError(f"{name}: not a text file (it holds NUL characters)")
    prompts = _csv_prompts(text, name) if name.lower().endswith(".csv") else prompt_lines(text)
    if not prompts:
        raise BatchSyntaxError(f"{name}: no prompts in the file")
    if len(prompts) > MAX_BATCH_JOBS:
        raise BatchSyntaxError(f"{name}: {len(prompts):,} prompts; at most {MAX_BATCH_JOBS:,} are allowed in one batch")
    return prompts


def _csv_prompts(text: str, name: str) -> list[str]:
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise BatchSyntaxError(f"{name}: not valid CSV ({exc})") from None
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    column = header.index("prompt") if "prompt" in header else 0
    body = rows[1:] if "prompt" in header else rows
    # A cell may span lines; a prompt is one line in the window's list, so its whitespace is folded.
    return [prompt for row in body if len(row) > column and (prompt := " ".join(row[column].split()))]
