"""The worker's decisions as pure functions: what a run does next, and what came of preparing it.

The Consumer and the RunPreparer are the I/O shell: they read Redis and ComfyUI, ask these functions, and apply the
typed outcome they return. Every decision here is a table test (tests/test_run_decisions.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

from comfystudio_desktop.backoff import Backoff
from comfystudio_desktop.comfy.comfy_errors import (
    ComfyError,
    ComfyUnavailable,
    ComfyValidationError,
    encode_node_errors,
)
from comfystudio_desktop.comfy.job_tracker import JobOutcome
from comfystudio_desktop.comfy.out_of_memory import is_out_of_memory
from comfystudio_desktop.jobs import Job, JobRecord
from comfystudio_desktop.worker.job_inputs import JobInputError
from comfystudio_desktop.worker.job_run import Phase, WorkerRun

__all__ = [
    "COMFY_RETRY",
    "Begin",
    "Completed",
    "Failed",
    "PausedForMemory",
    "Preparation",
    "Reattach",
    "Reattached",
    "ReusedResult",
    "Step",
    "Submitted",
    "WaitForComfy",
    "cache_candidate",
    "comfy_run_seconds",
    "completion",
    "how_to_begin",
    "needs_history",
    "never_submitted",
    "next_prompt_id",
    "next_step",
    "preparation_failed",
    "reattach_verdict",
    "run_time_to_learn",
]

#: Wait before the next try to reach ComfyUI for a job: 1, 2, 4 ... seconds, capped at 30.
COMFY_RETRY = Backoff(initial=1.0, factor=2.0, maximum=30.0)
_MAX_DETAILS_CHARS = 4000


# -- outcomes of preparing a run -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Submitted:
    """The workflow is in ComfyUI's queue under the run's prompt id."""


@dataclass(frozen=True, slots=True)
class Reattached:
    """The run follows the prompt an earlier attempt submitted; `finished`: it already ended, collect it now."""

    finished: bool


@dataclass(frozen=True, slots=True)
class WaitForComfy:
    """ComfyUI is unreachable: keep the job and try again after `delay_s`."""

    delay_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class Failed:
    """The job fails for a reason a retry cannot fix; `details` go to the log only."""

    error: str
    node_errors: str = ""
    details: str = ""


@dataclass(frozen=True, slots=True)
class Completed:
    """The prompt ended well and saved images: copy them and finish the job."""


@dataclass(frozen=True, slots=True)
class PausedForMemory:
    """ComfyUI ran out of memory: pause the whole queue, then hand the job back without counting the attempt."""

    error: str


@dataclass(frozen=True, slots=True)
class ReusedResult:
    """An identical finished job's outputs are copied to this job's names (`outputs`): finish it without ComfyUI."""

    outputs: tuple[str, ...]


Preparation = Submitted | Reattached | WaitForComfy | Failed


def preparation_failed(exc: JobInputError | ComfyError, comfy_failures: int) -> WaitForComfy | Failed:
    """What an error raised while preparing a run means, after `comfy_failures` earlier tries to reach ComfyUI."""
    if isinstance(exc, ComfyUnavailable):
        return WaitForComfy(COMFY_RETRY.delay(comfy_failures + 1), str(exc))
    if isinstance(exc, ComfyValidationError):
        node_errors = encode_node_errors(exc.node_errors)
        return Failed(str(exc), node_errors, details=json.dumps(exc.details)[:_MAX_DETAILS_CHARS])
    if isinstance(exc, JobInputError):
        return Failed(str(exc))
    return Failed(f"{type(exc).__name__}: {exc}")


# -- the result cache -----------------------------------------------------------------------------------------
def cache_candidate(result_cache: bool, job: Job, attempts: int) -> bool:
    """Whether a claimed run is looked up in the result cache at all: the setting is on, the job did not opt out,
    its seed is fixed (a random seed never repeats a result) and it is the job's first attempt."""
    return result_cache and not job.no_cache and job.seed >= 0 and attempts == 0


def never_submitted(record: JobRecord | None) -> bool:
    """True when no earlier run of the job went to ComfyUI: a run that did is re-attached to, never reused."""
    return record is not None and not record.comfy_prompt_id and not record.rerun_required


# -- how a claimed run begins ----------------------------------------------------------------------------------
class Begin(StrEnum):
    """How a claimed run starts."""

    SUBMIT = "submit"  # never submitted: check, upload, fill and submit
    REATTACH = "reattach"  # an earlier attempt may have submitted it: look for that prompt first
    AFRESH = "afresh"  # the user retried it: stop what runs of the old prompt, submit under a new prompt id


def how_to_begin(attempts: int, record: JobRecord | None) -> Begin:
    """Decide from the job's earlier attempts and its record in Redis."""
    if record is not None and record.rerun_required:
        return Begin.AFRESH
    if attempts > 0 or (record is not None and bool(record.comfy_prompt_id)):
        return Begin.REATTACH
    return Begin.SUBMIT


class Reattach(StrEnum):
    """What to do with the prompt an earlier attempt submitted."""

    COLLECT = "collect"  # it finished well: collect its outputs
    RUN_AFRESH = "run_afresh"  # it failed or was interrupted: run the job again under a new prompt id
    FOLLOW = "follow"  # still queued or running in ComfyUI: follow it
    SUBMIT = "submit"  # ComfyUI does not know it: submit it


def reattach_verdict(outcome: JobOutcome | None, *, in_history: bool, in_queue: bool) -> Reattach:
    """Decide from ComfyUI's history (`outcome` of the entry, if `in_history`) and queue."""
    if in_history:
        return Reattach.COLLECT if outcome is JobOutcome.SUCCESS else Reattach.RUN_AFRESH
    return Reattach.FOLLOW if in_queue else Reattach.SUBMIT


def next_prompt_id(job_id: str, previous: str) -> str:
    """The prompt id for the next run of a job: `{job_id}-r2`, `-r3`, ... after `previous`."""
    prefix = f"{job_id}-r"
    number = int(previous[len(prefix):]) + 1 if previous.startswith(prefix) and previous[len(prefix):].isdigit() else 2
    return f"{prefix}{number}"


# -- a run in flight -------------------------------------------------------------------------------------------
class Step(StrEnum):
    """What the worker loop does with a run on this pass."""

    DROP = "drop"  # the lease was lost: another attempt owns the job
    CANCEL = "cancel"  # the user cancelled it
    PREPARE = "prepare"  # ComfyUI was away and the back-off is over: try again
    CHECK = "check"  # submitted: check for a timeout and poll ComfyUI's history when due
    RECORD_FINISH = "record_finish"  # outputs stored: record the finish in Redis (again, if Redis was down)
    WAIT = "wait"  # nothing to do now


def next_step(run: WorkerRun, now: float) -> Step:
    """Decide from the run's flags (set by the heartbeat), its phase and the monotonic `now`."""
    if run.flags.lease_lost.is_set():
        return Step.DROP
    if run.flags.cancel_requested.is_set():
        return Step.CANCEL
    if run.phase is Phase.WAITING_COMFY and now >= run.next_attempt_at:
        return Step.PREPARE
    if run.phase is Phase.SUBMITTED:
        return Step.CHECK
    if run.phase is Phase.FINISHING:
        return Step.RECORD_FINISH
    return Step.WAIT


def needs_history(outcome: JobOutcome | None, has_images: bool) -> bool:
    """True when ComfyUI's history must be read to end a run: its end (or its images) came in messages we missed."""
    return outcome is None or (outcome is JobOutcome.SUCCESS and not has_images)


def completion(outcome: JobOutcome | None, *, has_images: bool,
               error: str) -> Completed | Failed | PausedForMemory | None:
    """How a prompt that ComfyUI ended becomes the job's end; None while its end is not known yet.

    Running out of memory is the machine's state, not the job's fault: it pauses the queue instead of failing.
    """
    if outcome is None:
        return None
    if outcome is JobOutcome.SUCCESS:
        return Completed() if has_images else Failed("ComfyUI finished the workflow but saved no image")
    if outcome is JobOutcome.INTERRUPTED:
        return Failed("interrupted in ComfyUI")
    if is_out_of_memory("", error):
        return PausedForMemory(error)
    return Failed(error or "ComfyUI reported an error")


# -- learned run times (the ETA) -------------------------------------------------------------------------------
def comfy_run_seconds(now: float, claimed_at: float, last_comfy_end: float) -> float:
    """How long ComfyUI worked on a run that ended at `now` (monotonic): it runs one worker's submitted jobs in
    turn, so a run counts from the later of its claim and the end of the worker's run before it."""
    return now - max(claimed_at, last_comfy_end)


def run_time_to_learn(ran_s: float, *, executed: bool, from_cache: bool, reattached: bool) -> float | None:
    """The seconds a finished run teaches the forecast; None for a run that did not really run on ComfyUI.

    `executed`: ComfyUI ran nodes for it (not every node taken from ComfyUI's own cache). A run reused from the
    result cache or re-attached after a crash was not timed from its start.
    """
    if from_cache or reattached or not executed or ran_s <= 0:
        return None
    return ran_s
