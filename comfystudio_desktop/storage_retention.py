"""Retention of stored images: outputs are kept `output_retention_days`, inputs `input_retention_hours`.

Inputs are the copies the worker keeps (`storage/inputs/upload_{job_id}_{slot}.png`) and the images dropped or
pasted into the window (`storage/dropped/`). A file that a queued or running job still needs is never removed,
however old it is, and neither is the output of a favourite (`keep_job_ids`: the history's starred jobs).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import JobRecord
from comfystudio_desktop.settings import Settings

__all__ = ["DROPPED_FOLDER", "SweepReport", "in_use", "sweep"]

log = logging.getLogger(__name__)
DROPPED_FOLDER = "dropped"


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one sweep removed."""

    outputs: int = 0
    inputs: int = 0
    bytes_freed: int = 0


def in_use(active: Iterable[JobRecord]) -> tuple[set[str], set[Path]]:
    """The job ids and image paths that queued or running jobs still need."""
    job_ids: set[str] = set()
    paths: set[Path] = set()
    for record in active:
        if record.status.is_terminal:
            continue
        job_ids.add(record.job_id)
        if record.job is not None:
            paths.update(Path(p).resolve() for p in record.job.images.values())
    return job_ids, paths


def sweep(home: Home, settings: Settings, *, active_job_ids: Collection[str] = (),
          active_paths: Collection[Path] = (), keep_job_ids: Collection[str] = (),
          now: float | None = None) -> SweepReport:
    """Delete stored images past their retention; keep whatever an active job needs and favourites' outputs."""
    now = time.time() if now is None else now
    output_cutoff = now - settings.output_retention_days * 86_400
    input_cutoff = now - settings.input_retention_hours * 3_600
    outputs = freed = inputs = 0
    kept = {*active_job_ids, *keep_job_ids}
    for path in _files(home.outputs):
        if path.stem in kept or _batch_job_id(path) in kept:
            continue
        size = _remove_if_older(path, output_cutoff)
        if size is not None:
            outputs, freed = outputs + 1, freed + size
    for path in [*_files(home.inputs), *_files(home.storage / DROPPED_FOLDER)]:
        if path.resolve() in active_paths or _input_job_id(path) in active_job_ids:
            continue
        size = _remove_if_older(path, input_cutoff)
        if size is not None:
            inputs, freed = inputs + 1, freed + size
    report = SweepReport(outputs=outputs, inputs=inputs, bytes_freed=freed)
    if outputs or inputs:
        log.info("Storage clean-up: removed %d output(s) and %d input(s), %.1f MB", outputs, inputs,
                 freed / 2**20)
    return report


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.is_file() and not p.is_symlink()]


def _batch_job_id(path: Path) -> str:
    """`{job_id}_{n}.png` (a batch's later images) -> job id, or "" (ids may hold '_' themselves)."""
    head, sep, tail = path.stem.rpartition("_")
    return head if sep and tail.isdigit() and tail.isascii() else ""


def _input_job_id(path: Path) -> str:
    """`upload_{job_id}_{slot}.png` -> job id (job ids contain no '_' beyond what they were given)."""
    name = path.stem
    if not name.startswith("upload_"):
        return ""
    return name.removeprefix("upload_").rsplit("_", 1)[0]


def _remove_if_older(path: Path, cutoff: float) -> int | None:
    try:
        stat = path.stat()
        if stat.st_mtime >= cutoff:
            return None
        path.unlink()
    except FileNotFoundError:
        return None
    except OSError as exc:  # e.g. open in an image viewer on Windows: try again next time
        log.warning("Could not remove %s: %s", path, exc)
        return None
    return stat.st_size
