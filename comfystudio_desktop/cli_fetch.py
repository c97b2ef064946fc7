"""`fetch JOB [--to DIR] [--json]`: a finished job's images on this machine, wherever its worker ran.

Exit 0 with the paths; 2 with one line for an unknown or unfinished job or an unusable `--to`; 1 with one line
("image on gpu-b, unavailable") while no source of the images answers. Imported only when it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
from pathlib import Path

from comfystudio_desktop.cli_args import EXIT_FAILED, EXIT_OK, CommandFailed, shown
from comfystudio_desktop.file_replace import replace_file
from comfystudio_desktop.jobs import JobRecord, JobStatus
from comfystudio_desktop.outputs.fetch import OutputFetcher, Unavailable
from comfystudio_desktop.queue.history import History
from comfystudio_desktop.runtime import Runtime

__all__ = ["cmd_fetch"]



def cmd_fetch(args: argparse.Namespace, rt: Runtime) -> int:
    """Make a finished job's outputs available here (and copy them to `--to`); print their paths."""
    record = rt.queue.status(args.job_id) or _from_history(rt, args.job_id)
    if record is None:
        raise CommandFailed(f"unknown job {shown(args.job_id)}")
    if record.status is not JobStatus.FINISHED:
        raise CommandFailed(f"job {shown(args.job_id)} is {record.status.value}, not finished")
    folder = _folder(args.to) if args.to is not None else None
    result = OutputFetcher(rt.home, rt.settings).fetch(record)
    if isinstance(result, Unavailable):
        print(result.message, file=sys.stderr)
        return EXIT_FAILED
    paths = list(result.paths)
    if folder is not None:
        try:
            paths = [_copy(path, folder) for path in paths]
        except OSError as exc:
            print(f"could not copy into {shown(str(folder), 120)}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_FAILED
    if args.json:
        print(json.dumps({"job_id": record.job_id, "backend": record.backend, "paths": [str(p) for p in paths]}))
    else:
        for path in paths:
            print(path)
    return EXIT_OK


def _from_history(rt: Runtime, job_id: str) -> JobRecord | None:
    """An ended job whose status hash expired (after a day): what the history kept of it."""
    history = History(rt.queue.conn)
    history.sync()
    entry = history.get(job_id)
    if entry is None:
        return None
    return JobRecord(job_id=entry.job_id, status=entry.status, progress=100, image_url=entry.image_url,
                     outputs=entry.outputs, job=entry.job, output_location=entry.output_location)


def _folder(text: str) -> Path:
    """The `--to` folder, made if missing; a usage error if it is a file or cannot be made."""
    if not text or "\0" in text:
        raise CommandFailed("--to needs a folder")
    folder = Path(text)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandFailed(f"--to {shown(text, 120)}: {exc.strerror or exc}") from None
    return folder


def _copy(source: Path, folder: Path) -> Path:
    target = folder / source.name
    tmp = folder / f".{source.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        shutil.copyfile(source, tmp)
        replace_file(tmp, target)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    return target
