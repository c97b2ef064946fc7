"""The worker's side of the result cache: the key of a prepared job, and reusing a cached job's files."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from comfystudio_desktop.file_replace import replace_file
from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job
from comfystudio_desktop.queue.result_cache import CachedResult, cache_key, file_digest
from comfystudio_desktop.worker.job_outputs import output_names

__all__ = ["job_cache_key", "reuse_outputs"]

log = logging.getLogger(__name__)


def job_cache_key(job: Job, graph: Mapping[str, Any], max_bytes: int) -> str:
    """The cache key of `job` filled as `graph`; "" when an input image cannot be read (the run reports it)."""
    inputs: dict[str, bytes] = {}
    for slot, source in job.images.items():
        try:
            with open(source, "rb") as fh:
                data = fh.read(max_bytes + 1)
        except OSError:
            return ""
        if len(data) > max_bytes:
            return ""
        inputs[slot] = data
    return cache_key(graph, job.job_id, inputs)


def reuse_outputs(hit: CachedResult, job_id: str, home: Home) -> tuple[str, ...] | None:
    """Copy a cached job's outputs to `job_id`'s names; None (nothing left behind) if any file is gone or changed."""
    sources: list[Path] = []
    for output in hit.outputs:
        path = home.resolve_inside_storage(f"outputs/{output.name}")
        try:
            if path.stat().st_size != output.size or file_digest(path) != output.sha256:
                log.info("Cached output %r changed since; running job %r", output.name, job_id)
                return None
        except OSError:
            log.info("Cached output %r is gone; running job %r", output.name, job_id)
            return None
        sources.append(path)
    names = tuple(output_names(job_id, len(sources)))
    for source, name in zip(sources, names, strict=True):
        target = home.resolve_inside_storage(f"outputs/{name}")
        if source == target:
            continue
        tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
        try:
            shutil.copyfile(source, tmp)
            replace_file(tmp, target)
        except OSError as exc:  # gone between the check and the copy, or the disk is full: run it instead
            log.warning("Cached output %r not copied (%s); running job %r", source.name, exc, job_id)
            tmp.unlink(missing_ok=True)
            return None
    log.info("Job %r: %d output(s) reused from job %r", job_id, len(names), hit.job_id)
    return names
