"""The outbox: jobs accepted while Redis was unreachable, kept on disk until it is back.

One file per job (`{job_id}.json`), written to a temp name, fsync'ed, then renamed, so a crash leaves either the
whole job or nothing. Delivery is idempotent by job id, so two processes delivering at once enqueue each job once.
A file that is not a valid job (bad JSON or types, binary junk, a folder, unreadable) is moved to `rejected/` with a
`.reason.txt` beside it and logged, never dropped silently and never in the way of the other files.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from comfystudio_desktop.jobs import Job, JobValidationError

__all__ = ["MAX_FILE_BYTES", "REJECTED_FOLDER", "Outbox"]

log = logging.getLogger(__name__)
REJECTED_FOLDER = "rejected"
MAX_FILE_BYTES = 256 * 1024  # a job's JSON is at most a few dozen KiB


class Outbox:
    """A folder of jobs waiting for Redis."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._unmovable: set[Path] = set()  # bad files that could not be moved aside: skipped, logged once

    def put(self, job: Job) -> Path:
        """Persist `job` durably (fsync of the file and, where possible, the folder)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / f"{job.job_id}.json"
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".job-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(job.to_json())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(self.folder)
        return target

    def pending(self) -> Iterator[tuple[Job, Path]]:
        """Jobs waiting, oldest file first. A file that is not a valid job is moved to `rejected/`, never raised."""
        for path in self._files():
            if path in self._unmovable:
                continue
            try:
                job = _read_job(path)
            except FileNotFoundError:
                continue  # another process delivered it meanwhile
            except Exception as exc:  # noqa: BLE001 - whatever is wrong with this one file, it must not block the others
                self._reject(path, _describe(exc))
                continue
            yield job, path

    def _files(self) -> list[Path]:
        try:
            files = list(self.folder.glob("*.json")) if self.folder.is_dir() else []
        except OSError as exc:
            log.error("Outbox folder %r cannot be listed: %s", str(self.folder), exc)
            return []
        return sorted(files, key=lambda p: (_mtime(p), p.name))

    def __len__(self) -> int:
        return len(self._files())

    def remove(self, path: Path) -> None:
        """Drop a delivered job's file (if that fails it is delivered again later, which changes nothing)."""
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("Delivered outbox file %r could not be removed: %s", path.name, exc)

    def _reject(self, path: Path, reason: str) -> None:
        """Move a bad file to `rejected/` with `NAME.reason.txt` beside it; if it cannot be moved, skip it."""
        rejected = self.folder / REJECTED_FOLDER
        try:
            rejected.mkdir(exist_ok=True)
            target = _free_name(rejected, path.name)
            os.replace(path, target)
        except FileNotFoundError:
            return
        except OSError as exc:
            self._unmovable.add(path)
            log.error("Outbox file %r is not a valid job (%s) and cannot be moved aside: %s; skipping it",
                      path.name, reason, exc)
            return
        try:
            reason_file = target.with_name(target.name + ".reason.txt")
            reason_file.write_text(reason + "\n", encoding="utf-8", errors="backslashreplace")
        except OSError as exc:
            log.warning("Could not write the reason for rejected outbox file %r: %s", target.name, exc)
        log.error("Outbox file %r is not a valid job and was moved to %r: %s", path.name, str(rejected), reason)


def _read_job(path: Path) -> Job:
    """The job in one outbox file: a regular file (not a link, folder or device) of sane size, strictly parsed."""
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode):
        raise JobValidationError("file", "not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise JobValidationError("file", f"{info.st_size} bytes is more than a job can take")
    return Job.from_json(path.read_bytes())


def _describe(exc: Exception) -> str:
    if isinstance(exc, JobValidationError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"cannot read it: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def _free_name(folder: Path, name: str) -> Path:
    """`folder/name`, or `name.1`, `name.2` ... if a file of that name was rejected before."""
    target = folder / name
    number = 1
    while target.exists() or target.is_symlink():
        target = folder / f"{name}.{number}"
        number += 1
    return target


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _fsync_dir(folder: Path) -> None:
    # Directory fsync makes the rename durable on POSIX; Windows cannot open a directory for it.
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
