"""Jobs from the command line: one from `submit`'s options, or a batch from `submit --from FILE`.

A batch file holds one prompt per line, or JSON objects (one per line) with any job fields; blank lines and
lines starting with `#` are skipped. The batch is all or nothing: the first bad line is a `BatchError` naming its
line number and nothing is submitted. Qt-free and Pillow-free unless a job carries images.
"""

from __future__ import annotations

import json
import stat
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from comfystudio_desktop.cli_args import shown
from comfystudio_desktop.jobs import Job, JobValidationError
from comfystudio_desktop.workflow_slots import slot_problems

__all__ = ["MAX_BATCH_BYTES", "BatchError", "ImageCheck", "check_images", "jobs_from_lines", "read_batch_lines"]

MAX_BATCH_BYTES = 64 * 1024 * 1024
#: Checks one image file (raises on a bad one); returns the absolute path to store in the job.
ImageCheck = Callable[[str, str], str]


class BatchError(ValueError):
    """A batch file (or one of its lines) cannot be submitted; the message names the line."""


def read_batch_lines(source: str) -> list[bytes]:
    """The raw lines of `source` (a path, or `-` for stdin); a pipe or process substitution is fine here."""
    if source == "-":
        data = sys.stdin.buffer.read(MAX_BATCH_BYTES + 1)
    else:
        path = Path(source)
        try:
            if stat.S_ISDIR(path.stat().st_mode):
                raise BatchError(f"--from {shown(source)} is a folder")
            with path.open("rb") as fh:
                data = fh.read(MAX_BATCH_BYTES + 1)
        except OSError as exc:
            raise BatchError(f"--from {shown(source)}: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise BatchError(f"--from {shown(source)}: {exc}") from exc
    if len(data) > MAX_BATCH_BYTES:
        raise BatchError(f"--from: more than {MAX_BATCH_BYTES // (1024 * 1024)} MB")
    return data.splitlines()


def jobs_from_lines(lines: Iterable[bytes | str], defaults: Mapping[str, Any],
                    check: Callable[[Job], Job]) -> list[Job]:
    """One validated job per prompt or JSON line; fields a JSON line leaves out come from `defaults`."""
    jobs: list[Job] = []
    for number, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            raise BatchError(f"line {number}: not valid UTF-8") from None
        text = text.strip().removeprefix("\ufeff") if number == 1 else text.strip()
        if not text or text.startswith("#"):
            continue
        try:
            jobs.append(check(_job_from_line(text, defaults)))
        except (JobValidationError, BatchError, ValueError, TypeError) as exc:  # TypeError: a field of a wrong type
            raise BatchError(f"line {number}: {exc}") from exc
        except RecursionError:
            raise BatchError(f"line {number}: JSON nested too deeply") from None
    if not jobs:
        raise BatchError("no prompts in the batch (only blank lines or comments)")
    return jobs


def _job_from_line(text: str, defaults: Mapping[str, Any]) -> Job:
    if not text.startswith("{"):
        return Job.from_dict({**defaults, "prompt": text})
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BatchError(f"not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BatchError("a JSON line must be an object of job fields")
    return Job.from_dict({**defaults, **data})


def check_images(job: Job, wanted_slots: tuple[str, ...] | None, check_file: ImageCheck) -> Job:
    """`job` validated, with the workflow/slot rule applied and each image checked (paths made absolute)."""
    job.validate()
    if wanted_slots is None:
        raise JobValidationError("workflow", f"unknown workflow {shown(job.workflow)}")
    problems = slot_problems(job.workflow, wanted_slots, job.images)
    if problems:
        slot, message = next(iter(problems.items()))
        raise JobValidationError("images", f"{slot}: {message}")
    if not job.images:
        return job
    images = {slot: check_file(slot, path) for slot, path in job.images.items()}
    return Job.from_dict({**job.to_dict(), "images": images}).validate()
