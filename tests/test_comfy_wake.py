"""ComfyUI answering again wakes every run waiting for it, whatever its back-off (pure decision)."""

from __future__ import annotations

import time

from comfystudio_desktop.jobs import Job
from comfystudio_desktop.queue.job_queue import Lease
from comfystudio_desktop.worker.job_run import Phase, WorkerRun
from comfystudio_desktop.worker.run_decisions import COMFY_RETRY
from comfystudio_desktop.worker.run_preparation import RunPreparer


def _run(phase: Phase, failures: int) -> WorkerRun:
    run = WorkerRun(lease=Lease(job=Job(prompt="p"), token="t", worker_id="w", attempts=0), phase=phase)
    run.comfy_failures = failures
    run.next_attempt_at = time.monotonic() + COMFY_RETRY.delay(failures)
    return run


def test_waiting_runs_are_due_at_once_and_start_their_back_off_afresh() -> None:
    waiting = [_run(Phase.WAITING_COMFY, failures) for failures in (1, 6, 40)]
    submitted = _run(Phase.SUBMITTED, 3)
    due_before = submitted.next_attempt_at
    RunPreparer.comfy_answered([*waiting, submitted])
    now = time.monotonic()
    assert all(run.next_attempt_at <= now and run.comfy_failures == 0 for run in waiting)
    assert (submitted.next_attempt_at, submitted.comfy_failures) == (due_before, 3)  # not waiting: untouched
