"""The worker's decisions as table tests: how a run begins, re-attaches, what it does next, how it ends."""

from __future__ import annotations

import json

import pytest

from comfystudio_desktop.comfy.comfy_errors import ComfyError, ComfyUnavailable, ComfyValidationError
from comfystudio_desktop.comfy.job_tracker import JobOutcome
from comfystudio_desktop.jobs import Job, JobRecord, JobStatus
from comfystudio_desktop.queue.job_queue import Lease
from comfystudio_desktop.worker.job_inputs import JobInputError
from comfystudio_desktop.worker.job_run import Phase, WorkerRun
from comfystudio_desktop.worker.run_decisions import (
    COMFY_RETRY,
    Begin,
    Completed,
    Failed,
    PausedForMemory,
    Reattach,
    Step,
    WaitForComfy,
    cache_candidate,
    comfy_run_seconds,
    completion,
    how_to_begin,
    needs_history,
    never_submitted,
    next_step,
    preparation_failed,
    reattach_verdict,
    run_time_to_learn,
)


def _record(*, rerun_required: bool = False, comfy_prompt_id: str = "") -> JobRecord:
    return JobRecord(job_id="j", status=JobStatus.PROCESSING, rerun_required=rerun_required,
                     comfy_prompt_id=comfy_prompt_id)


@pytest.mark.parametrize(("attempts", "record", "begin"), [
    (0, None, Begin.SUBMIT),
    (0, _record(), Begin.SUBMIT),
    (1, None, Begin.REATTACH),
    (0, _record(comfy_prompt_id="j"), Begin.REATTACH),
    (3, _record(comfy_prompt_id="j"), Begin.REATTACH),
    (0, _record(rerun_required=True), Begin.AFRESH),
    (2, _record(rerun_required=True, comfy_prompt_id="j"), Begin.AFRESH),  # a user's retry wins over re-attaching
])
def test_how_a_claimed_run_begins(attempts: int, record: JobRecord | None, begin: Begin) -> None:
    assert how_to_begin(attempts, record) is begin


@pytest.mark.parametrize(("outcome", "in_history", "in_queue", "verdict"), [
    (JobOutcome.SUCCESS, True, False, Reattach.COLLECT),
    (JobOutcome.ERROR, True, False, Reattach.RUN_AFRESH),
    (JobOutcome.INTERRUPTED, True, False, Reattach.RUN_AFRESH),
    (None, True, False, Reattach.RUN_AFRESH),  # an entry without a status: not a success to collect
    (None, False, True, Reattach.FOLLOW),
    (None, False, False, Reattach.SUBMIT),  # ComfyUI forgot it (restarted): submit it again
])
def test_reattach_verdicts(outcome: JobOutcome | None, in_history: bool, in_queue: bool, verdict: Reattach) -> None:
    assert reattach_verdict(outcome, in_history=in_history, in_queue=in_queue) is verdict


def _run(phase: Phase, *, lost: bool = False, cancelled: bool = False, next_attempt_at: float = 0.0) -> WorkerRun:
    run = WorkerRun(lease=Lease(job=Job(prompt="p"), token="t", worker_id="w", attempts=0), phase=phase,
                    next_attempt_at=next_attempt_at)
    if lost:
        run.flags.lease_lost.set()
    if cancelled:
        run.flags.cancel_requested.set()
    return run


@pytest.mark.parametrize(("run", "now", "step"), [
    (_run(Phase.SUBMITTED, lost=True, cancelled=True), 0.0, Step.DROP),  # a lost lease is not ours to cancel
    (_run(Phase.FINISHING, cancelled=True), 0.0, Step.CANCEL),
    (_run(Phase.WAITING_COMFY, next_attempt_at=10.0), 9.9, Step.WAIT),
    (_run(Phase.WAITING_COMFY, next_attempt_at=10.0), 10.0, Step.PREPARE),
    (_run(Phase.SUBMITTED), 0.0, Step.CHECK),
    (_run(Phase.FINISHING), 0.0, Step.RECORD_FINISH),
    (_run(Phase.PREPARING), 0.0, Step.WAIT),
])
def test_next_step(run: WorkerRun, now: float, step: Step) -> None:
    assert next_step(run, now) is step


@pytest.mark.parametrize(("outcome", "has_images", "needed"), [
    (None, False, True),
    (None, True, True),
    (JobOutcome.SUCCESS, False, True),  # the images were in messages we missed
    (JobOutcome.SUCCESS, True, False),
    (JobOutcome.ERROR, False, False),
    (JobOutcome.INTERRUPTED, False, False),
])
def test_when_history_must_be_read(outcome: JobOutcome | None, has_images: bool, needed: bool) -> None:
    assert needs_history(outcome, has_images) is needed


@pytest.mark.parametrize(("outcome", "has_images", "error", "verdict"), [
    (None, False, "", None),
    (JobOutcome.SUCCESS, True, "", Completed()),
    (JobOutcome.SUCCESS, False, "", Failed("ComfyUI finished the workflow but saved no image")),
    (JobOutcome.INTERRUPTED, True, "", Failed("interrupted in ComfyUI")),
    (JobOutcome.ERROR, False, "KSampler: expected 4 channels", Failed("KSampler: expected 4 channels")),
    (JobOutcome.ERROR, False, "", Failed("ComfyUI reported an error")),
    # Out of memory is the machine's state, not the job's fault: the queue pauses and the job waits.
    (JobOutcome.ERROR, False, "KSampler: out of memory", PausedForMemory("KSampler: out of memory")),
    (JobOutcome.ERROR, False, "KSampler: OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
     PausedForMemory("KSampler: OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")),
    (JobOutcome.ERROR, False, "VAEDecode: Allocation on device 0 would exceed allowed memory.",
     PausedForMemory("VAEDecode: Allocation on device 0 would exceed allowed memory.")),
    (JobOutcome.INTERRUPTED, False, "out of memory", Failed("interrupted in ComfyUI")),  # the user stopped it
    (JobOutcome.SUCCESS, True, "out of memory", Completed()),
])
def test_completion(outcome: JobOutcome | None, has_images: bool, error: str,
                    verdict: Completed | Failed | PausedForMemory | None) -> None:
    assert completion(outcome, has_images=has_images, error=error) == verdict


def test_validation_error_fails_with_node_errors_and_logs_details() -> None:
    body = {
        "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation"},
        "node_errors": {"4": {"class_type": "CheckpointLoaderSimple", "errors": [
            {"type": "value_not_in_list", "message": "Value not in list", "details": "ckpt_name: 'x' not in []"}]}},
    }
    exc = ComfyValidationError("POST", "/prompt", json.dumps(body), body)
    outcome = preparation_failed(exc, comfy_failures=3)
    assert isinstance(outcome, Failed)
    assert outcome.error == str(exc) and "CheckpointLoaderSimple" in outcome.node_errors
    assert "value_not_in_list" in outcome.details


@pytest.mark.parametrize(("exc", "failures", "outcome"), [
    (ComfyUnavailable("http://127.0.0.1:1", "refused"), 0, WaitForComfy(COMFY_RETRY.delay(1), "")),
    (ComfyUnavailable("http://127.0.0.1:1", "refused"), 5, WaitForComfy(COMFY_RETRY.delay(6), "")),
    (JobInputError("image 'a.png' is gone"), 2, Failed("image 'a.png' is gone")),
    (ComfyError("bad reply"), 0, Failed("ComfyError: bad reply")),
])
def test_preparation_failures(exc: ComfyError | JobInputError, failures: int,
                              outcome: WaitForComfy | Failed) -> None:
    got = preparation_failed(exc, failures)
    if isinstance(outcome, WaitForComfy):
        assert got == WaitForComfy(outcome.delay_s, str(exc))
    else:
        assert got == outcome


@pytest.mark.parametrize(("enabled", "job", "attempts", "looked_up"), [
    (True, Job(prompt="p", seed=7), 0, True),
    (True, Job(prompt="p", seed=0), 0, True),
    (False, Job(prompt="p", seed=7), 0, False),  # the `result_cache` setting is off
    (True, Job(prompt="p", seed=7, no_cache=True), 0, False),  # `submit --no-cache`
    (True, Job(prompt="p", seed=-1), 0, False),  # a random seed never repeats a result
    (True, Job(prompt="p", seed=7), 1, False),  # a second attempt re-attaches to the first one's prompt
])
def test_which_claims_are_looked_up_in_the_result_cache(enabled: bool, job: Job, attempts: int,
                                                        looked_up: bool) -> None:
    assert cache_candidate(enabled, job, attempts) is looked_up


@pytest.mark.parametrize(("record", "fresh"), [
    (_record(), True),
    (None, False),  # no record (cancelled and expired meanwhile): nothing to finish
    (_record(comfy_prompt_id="j"), False),  # an earlier run went to ComfyUI: re-attach to it instead
    (_record(rerun_required=True), False),  # the user retried it: it runs afresh
])
def test_only_never_submitted_jobs_reuse_a_result(record: JobRecord | None, fresh: bool) -> None:
    assert never_submitted(record) is fresh


@pytest.mark.parametrize(("now", "claimed_at", "last_end", "seconds"), [
    (10.0, 4.0, 0.0, 6.0),  # the first run: from its claim
    (10.0, 4.0, 7.0, 3.0),  # pipelined behind another run: from when ComfyUI ended that one
    (10.0, 8.0, 7.0, 2.0),  # claimed after the previous run ended: from its claim
])
def test_comfy_run_seconds(now: float, claimed_at: float, last_end: float, seconds: float) -> None:
    assert comfy_run_seconds(now, claimed_at, last_end) == seconds


@pytest.mark.parametrize(("ran_s", "executed", "from_cache", "reattached", "learned"), [
    (3.5, True, False, False, 3.5),
    (3.5, False, False, False, None),  # ComfyUI took every node from its own cache
    (3.5, True, True, False, None),  # reused from the result cache
    (3.5, True, False, True, None),  # re-attached after a crash: not timed from its start
    (0.0, True, False, False, None),
    (-1.0, True, False, False, None),
])
def test_which_run_times_are_learned(ran_s: float, executed: bool, from_cache: bool, reattached: bool,
                                     learned: float | None) -> None:
    assert run_time_to_learn(ran_s, executed=executed, from_cache=from_cache, reattached=reattached) == learned
