"""Export jobs to a portable archive and import one into this home (format and checks: `archive_format.py`).

Import is all-or-nothing for the archive's content: every member is checked and every image is staged in a folder
of our own under storage before anything reaches Redis or the storage folders; one bad member fails the whole
import with one `ArchiveError`. It is idempotent by job id: a job this home knows already (queued, running, or in
the history) is left as it is. Unfinished jobs are queued again (attempts reset), ended ones go into the history
with their outputs copied into storage.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import tempfile
import time
import zipfile
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import redis

from comfystudio_desktop.home import Home
from comfystudio_desktop.images import ImageValidationError, load_image_file
from comfystudio_desktop.jobs import Job, JobStatus, now_iso
from comfystudio_desktop.queue.archive_format import (
    FORMAT,
    JOBS,
    MANIFEST,
    VERSION,
    ArchivedJob,
    ArchiveError,
    ArchiveLimits,
    archive_size_ok,
    input_member,
    read_archive,
    read_member,
)
from comfystudio_desktop.queue.history import History, HistoryQuery
from comfystudio_desktop.queue.history_entry import HistoryEntry, time_ms
from comfystudio_desktop.queue.job_queue import STATUS_PREFIX, JobQueue, SubmitOutcome
from comfystudio_desktop.storage_retention import DROPPED_FOLDER

__all__ = ["ArchiveError", "ArchiveLimits", "ExportReport", "ImportReport", "export_archive", "import_archive"]

log = logging.getLogger(__name__)
_PAGE = 1_000


@dataclass(frozen=True, slots=True)
class ExportReport:
    """What an export wrote."""

    jobs: int
    inputs: int
    outputs: int


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did, per job: queued again, added to the history, or left alone (known already)."""

    queued: int
    to_history: int
    already_known: int
    outputs_copied: int


# -- export ------------------------------------------------------------------------------------------------
def export_archive(path: Path, queue: JobQueue, home: Home, *, statuses: Collection[JobStatus] = (),
                   with_outputs: bool = False) -> ExportReport:
    """Write the jobs (of `statuses`, or all) of the queue and the history to a zip at `path`, atomically.

    An unfinished job whose input image is gone or no longer valid fails the export (it could not run after an
    import); an ended job's missing images are left out.
    """
    jobs = [j for j in _known_jobs(queue) if not statuses or j.status in statuses]
    inputs = outputs = 0
    fd, temp = tempfile.mkstemp(prefix=".export-", suffix=".zip", dir=path.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(temp, "w", zipfile.ZIP_DEFLATED) as zf:
            lines = []
            for listed in jobs:
                archived = _with_inputs(listed, zf)
                inputs += len(archived.inputs)
                kept = tuple(n for n in archived.outputs if with_outputs and _add_output(zf, home, n))
                outputs += len(kept)
                lines.append(json.dumps(replace(archived, outputs=kept).to_line(), ensure_ascii=False,
                                        separators=(",", ":")))
            zf.writestr(JOBS, "\n".join(lines) + "\n")
            zf.writestr(MANIFEST, json.dumps({"format": FORMAT, "version": VERSION, "created_at": now_iso(),
                                              "jobs": len(jobs)}))
        os.replace(temp, path)
    finally:
        Path(temp).unlink(missing_ok=True)
    log.info("Exported %d job(s) to %r (%d inputs, %d outputs)", len(jobs), str(path), inputs, outputs)
    return ExportReport(jobs=len(jobs), inputs=inputs, outputs=outputs)


def _known_jobs(queue: JobQueue) -> list[ArchivedJob]:
    """Every job of the queue and the history, by id (the queue's record wins: it is the newer)."""
    found: dict[str, ArchivedJob] = {}
    history = History(queue.conn)
    history.sync()
    offset = 0
    while page := history.search(HistoryQuery(offset=offset, limit=_PAGE)).entries:
        for entry in page:
            found[entry.job_id] = ArchivedJob(job=entry.job, status=entry.status, ended_ms=entry.ended_ms,
                                              seed_used=entry.seed_used, error=entry.error,
                                              image_url=entry.image_url, outputs=entry.outputs)
        offset += len(page)
    for record in queue.jobs():
        if record.job is not None:
            found[record.job_id] = ArchivedJob(job=record.job, status=record.status,
                                               ended_ms=time_ms(record.finished_at) if record.finished_at else None,
                                               seed_used=record.seed_used, error=record.error,
                                               image_url=record.image_url, outputs=record.outputs)
    return sorted(found.values(), key=lambda j: (j.job.created_at, j.job.job_id))


def _with_inputs(archived: ArchivedJob, zf: zipfile.ZipFile) -> ArchivedJob:
    members: dict[str, str] = {}
    for slot, source in archived.job.images.items():
        try:
            data, info = load_image_file(source)
        except ImageValidationError as exc:
            if archived.status.is_terminal:
                continue  # an ended job's input may be cleaned up already: the job still goes to the history
            raise ArchiveError(f"job {archived.job.job_id!r}: its {slot} image: {exc}") from exc
        member = input_member(archived.job.job_id, slot, info.extension)
        zf.writestr(zipfile.ZipInfo(member, date_time=(2000, 1, 1, 0, 0, 0)), data, zipfile.ZIP_STORED)
        members[slot] = member
    return replace(archived, inputs=members)


def _add_output(zf: zipfile.ZipFile, home: Home, name: str) -> bool:
    try:
        source = home.resolve_inside_storage(f"outputs/{name}")
        data, _info = load_image_file(source)
    except (ValueError, ImageValidationError) as exc:
        log.warning("Export leaves out output %r: %s", name, exc)
        return False
    zf.writestr(zipfile.ZipInfo(f"outputs/{name}", date_time=(2000, 1, 1, 0, 0, 0)), data, zipfile.ZIP_STORED)
    return True


# -- import ------------------------------------------------------------------------------------------------
def import_archive(path: Path, queue: JobQueue, home: Home, limits: ArchiveLimits | None = None) -> ImportReport:
    """Check the archive at `path` completely, then add its jobs this home does not know. Raises `ArchiveError`."""
    limits = limits if limits is not None else ArchiveLimits()
    archive_size_ok(path, limits)
    staging = home.storage / f".import-{secrets.token_hex(8)}"
    staging.mkdir(parents=True)
    try:
        try:
            with zipfile.ZipFile(path) as zf:
                jobs, images = read_archive(zf, limits)
                for name, info in images.items():  # staged from the checked bytes: the file may change under us
                    (staging / name.replace("/", "__")).write_bytes(read_member(zf, info, limits.max_image_bytes))
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError) as exc:
            raise ArchiveError(f"{path.name!r} is not a readable zip archive: {exc}") from exc
        return _add_jobs(jobs, staging, queue, home)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # ours: created above


def _add_jobs(jobs: list[ArchivedJob], staging: Path, queue: JobQueue, home: Home) -> ImportReport:
    known = _known_ids(queue, [j.job.job_id for j in jobs])
    new = [j for j in jobs if j.job.job_id not in known]
    dropped = home.storage / DROPPED_FOLDER
    dropped.mkdir(parents=True, exist_ok=True)
    home.outputs.mkdir(parents=True, exist_ok=True)
    to_queue: list[Job] = []
    entries: list[HistoryEntry] = []
    copied = 0
    for archived in new:
        images = dict(archived.job.images)
        for slot, member in archived.inputs.items():
            target = dropped / f"import_{member.rpartition('/')[2]}"
            os.replace(staging / member.replace("/", "__"), target)
            images[slot] = str(target.resolve())
        job = replace(archived.job, images=images, attempts=0).validate()
        if not archived.status.is_terminal:
            to_queue.append(job)
            continue
        for name in archived.outputs:
            staged, target = staging / f"outputs__{name}", home.outputs / name
            if staged.exists() and not target.exists():
                os.replace(staged, target)
                copied += 1
        entries.append(HistoryEntry(job=job, status=archived.status,
                                    ended_ms=archived.ended_ms if archived.ended_ms is not None else _now_ms(),
                                    seed_used=archived.seed_used, image_url=archived.image_url,
                                    outputs=archived.outputs, error=archived.error))
    outcomes = queue.submit_many(to_queue) if to_queue else []
    History(queue.conn).add(entries)
    report = ImportReport(queued=sum(o is not SubmitOutcome.DUPLICATE for o in outcomes), to_history=len(entries),
                          already_known=len(jobs) - len(new) + sum(o is SubmitOutcome.DUPLICATE for o in outcomes),
                          outputs_copied=copied)
    log.info("Imported %s", report)
    return report


def _known_ids(queue: JobQueue, ids: Iterable[str]) -> set[str]:
    wanted = list(ids)

    def fetch(c: redis.Redis) -> list[object]:
        pipe = c.pipeline(transaction=False)
        for job_id in wanted:
            pipe.exists(STATUS_PREFIX + job_id)
            pipe.hexists("cs:history", job_id)
        return list(pipe.execute())

    flags = queue.conn.call(fetch) if wanted else []
    return {job_id for i, job_id in enumerate(wanted) if flags[2 * i] or flags[2 * i + 1]}


def _now_ms() -> int:
    return int(time.time() * 1000)
