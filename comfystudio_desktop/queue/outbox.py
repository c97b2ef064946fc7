"""The outbox: jobs accepted while Redis was unreachable, kept on disk until it is back.

One file per job (`{job_id}.json`), written to a temp name, fsync'ed, then renamed, so a crash leaves either the
whole job or nothing. Delivery is idempotent by job id, so two processes delivering at once enqueue each job once.
A file that cannot be parsed is moved to `rejected/` and logged, never dropped silently.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from comfystudio_desktop.jobs import Job, JobValidationError

__all__ = ["Outbox"]

log = logging.getLogger(__name__)


class Outbox:
    """A folder of jobs waiting for Redis."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

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
        """Jobs waiting, oldest file first."""
        if not self.folder.is_dir():
            return
        files = sorted(self.folder.glob("*.json"), key=lambda p: (_mtime(p), p.name))
        for path in files:
            try:
                job = Job.from_json(path.read_bytes()).validate()
            except FileNotFoundError:
                continue  # another process delivered it meanwhile
            except (OSError, JobValidationError) as exc:
                self._reject(path, str(exc))
                continue
            yield job, path

    def __len__(self) -> int:
        return len(list(self.folder.glob("*.json"))) if self.folder.is_dir() else 0

    def remove(self, path: Path) -> None:
        """Drop a delivered job's file."""
        path.unlink(missing_ok=True)

    def _reject(self, path: Path, error: str) -> None:
        rejected = self.folder / "rejected"
        rejected.mkdir(exist_ok=True)
        try:
            os.replace(path, rejected / path.name)
        except FileNotFoundError:
            return
        log.error("Outbox file %s is unreadable and was moved to %s: %s", path.name, rejected, error)


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
