"""Prompt files (.txt, .csv) and prompt lines: a total parser (prompts or one clear error) and round trips."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comfystudio_desktop.batch_expansion import MAX_BATCH_JOBS, BatchSyntaxError
from comfystudio_desktop.prompt_lists import (
    MAX_PROMPT_FILE_BYTES,
    prompt_lines,
    prompts_from_file,
    read_prompt_file,
)

# A prompt as the list keeps it: one line, stripped, not blank, not a comment.
_line_prompt = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=40) \
    .map(lambda t: " ".join(t.split())).filter(lambda t: bool(t) and not t.startswith("#"))


@given(st.binary(max_size=2048), st.sampled_from(["a.txt", "b.csv", "C.CSV"]))
def test_any_bytes_give_prompts_or_one_clear_error(data: bytes, name: str) -> None:
    try:
        prompts = prompts_from_file(data, name)
    except BatchSyntaxError as exc:
        message = str(exc)
        assert message.startswith(f"{name}: ") and "\n" not in message
        return
    assert 1 <= len(prompts) <= MAX_BATCH_JOBS
    assert all(isinstance(p, str) and p == p.strip() and p for p in prompts)


@given(st.text(max_size=2000), st.sampled_from(["a.txt", "b.csv"]))
def test_any_text_gives_prompts_or_one_clear_error(text: str, name: str) -> None:
    try:
        prompts = prompts_from_file(text.encode("utf-8", "surrogatepass"), name)
    except BatchSyntaxError:
        return
    assert all("\x00" not in p and p.strip() == p and p for p in prompts)


@given(st.lists(_line_prompt, min_size=1, max_size=50), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_txt_lines_round_trip(prompts: list[str], newline: str, bom: bool) -> None:
    data = ("\ufeff" * bom + newline.join(prompts) + newline).encode()
    assert prompts_from_file(data, "list.txt") == prompts
    assert prompt_lines(newline.join(prompts)) == prompts


@given(st.lists(st.tuples(_line_prompt, _line_prompt), min_size=1, max_size=30), st.booleans())
def test_csv_prompt_column_round_trips(rows: list[tuple[str, str]], prompt_first: bool) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Prompt", "note"] if prompt_first else ["note", " prompt "])
    for prompt, note in rows:
        writer.writerow([prompt, note] if prompt_first else [note, prompt])
    assert prompts_from_file(out.getvalue().encode(), "shots.csv") == [p for p, _ in rows]


@given(st.lists(_line_prompt.filter(lambda p: p.strip().lower() != "prompt"), min_size=1, max_size=30))
def test_csv_without_a_prompt_header_gives_its_first_column(prompts: list[str]) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    for prompt in prompts:
        writer.writerow([prompt, "other"])
    assert prompts_from_file(out.getvalue().encode(), "plain.csv") == prompts


def test_a_multiline_cell_becomes_one_line() -> None:
    assert prompts_from_file(b'prompt\n"a fox,\n  in snow"\n', "x.csv") == ["a fox, in snow"]


@pytest.mark.parametrize(("data", "name", "expected"), [
    (b"", "e.txt", "e.txt: no prompts in the file"),
    (b"prompt\n", "e.csv", "e.csv: no prompts in the file"),
    (b"\xff\xfeh\x00i\x00", "u16.txt", "u16.txt: not UTF-8 text (byte 1)"),
    (b"ok\n\x00", "nul.txt", "nul.txt: not a text file (it holds NUL characters)"),
    (b"p\n" * (MAX_BATCH_JOBS + 1), "many.txt", "many.txt: 1,001 prompts; at most 1,000 are allowed in one batch"),
    (b"x" * (MAX_PROMPT_FILE_BYTES + 1), "big.txt", "big.txt: larger than 1024 KB"),
])
def test_bad_files_say_why(data: bytes, name: str, expected: str) -> None:
    with pytest.raises(BatchSyntaxError) as caught:
        prompts_from_file(data, name)
    assert str(caught.value) == expected


def test_reading_a_file_reads_no_more_than_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    with path.open("wb") as fh:
        fh.truncate(MAX_PROMPT_FILE_BYTES * 64)  # sparse: a large file costs nothing to make
    with pytest.raises(BatchSyntaxError, match=r"^huge\.txt: larger than"):
        read_prompt_file(path)


@pytest.mark.parametrize("name", ["missing.txt", "folder.csv", "image.png"])
def test_unreadable_paths_are_one_error(tmp_path: Path, name: str) -> None:
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(BatchSyntaxError, match=rf"^{name.replace('.', '[.]')}: "):
        read_prompt_file(tmp_path / name)
