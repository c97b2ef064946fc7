"""Retention: old outputs and inputs go, what an active job needs stays."""

from __future__ import annotations

import os
import time
from pathlib import Path

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobRecord, JobStatus
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.storage_retention import DROPPED_FOLDER, in_use, sweep

DAY = 86_400


def _file(path: Path, age_s: float, now: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * 10)
    os.utime(path, (now - age_s, now - age_s))
    return path


def test_sweep_keeps_recent_and_active_files(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").create()
    now = time.time()
    settings = Settings(output_retention_days=30, input_retention_hours=24)
    old_output = _file(home.outputs / "done_job.png", 31 * DAY, now)
    old_batch = _file(home.outputs / "done_job_2.png", 31 * DAY, now)
    new_output = _file(home.outputs / "fresh.png", 1 * DAY, now)
    active_output = _file(home.outputs / "running-job.png", 40 * DAY, now)
    old_input = _file(home.inputs / "upload_done_job_input.png", 2 * DAY, now)
    active_input = _file(home.inputs / "upload_queued-job_source.png", 2 * DAY, now)
    dropped_in_use = _file(home.storage / DROPPED_FOLDER / "pasted-1.png", 3 * DAY, now)
    dropped_old = _file(home.storage / DROPPED_FOLDER / "pasted-2.png", 3 * DAY, now)
    dropped_new = _file(home.storage / DROPPED_FOLDER / "pasted-3.png", 3600, now)

    records = [
        JobRecord(job_id="queued-job", status=JobStatus.QUEUED,
                  job=Job(prompt="x", job_id="queued-job", images={"source": str(dropped_in_use)})),
        JobRecord(job_id="running-job", status=JobStatus.PROCESSING),
        JobRecord(job_id="done_job", status=JobStatus.FINISHED),
    ]
    job_ids, paths = in_use(records)
    assert job_ids == {"queued-job", "running-job"}
    report = sweep(home, settings, active_job_ids=job_ids, active_paths=paths, now=now)
    assert (report.outputs, report.inputs, report.bytes_freed) == (2, 2, 40)
    assert not old_output.exists() and not old_batch.exists() and not old_input.exists() and not dropped_old.exists()
    for kept in (new_output, active_output, active_input, dropped_in_use, dropped_new):
        assert kept.exists(), kept
