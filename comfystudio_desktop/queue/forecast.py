"""ETA: how long a job takes, learned from finished jobs, and when each queued job starts and the queue ends.

Pure functions, no I/O: `run_key` names what a run's time depends on (model, workflow, size, steps);
`estimate_s` picks the best known figure (that exact kind of job, else the model's time per step, else every
model's, else a default); `forecast` lays the queue out on the workers. `run_times.RunTimes` keeps the samples.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from comfystudio_desktop.jobs import Job

__all__ = [
    "DEFAULT_RUN_S",
    "DEFAULT_STEPS",
    "MIN_EXACT_SAMPLES",
    "EstimateSource",
    "JobEta",
    "QueueForecast",
    "RunKey",
    "RunTimeStats",
    "RunningJob",
    "estimate_s",
    "forecast",
    "run_key",
    "running_left_s",
    "steps_of",
]

DEFAULT_STEPS = 20  # a template's usual default; only used to scale a time per step
DEFAULT_RUN_S = 30.0  # nothing learned yet
MIN_EXACT_SAMPLES = 3  # fewer samples of the exact kind: the model's time per step is the better guess
# Generating progress runs from 30 % (submitted) to 95 % (done in ComfyUI); see progress_mapping.
_PROGRESS_START, _PROGRESS_END = 30, 95


class EstimateSource(StrEnum):
    """Where an estimate came from, best first."""

    EXACT = "exact"  # finished jobs of the same model, workflow, size and steps
    MODEL = "model"  # the same model at any size: its time per step
    GLOBAL = "global"  # any model: the time per step
    DEFAULT = "default"  # nothing learned yet


@dataclass(frozen=True, slots=True)
class RunKey:
    """What a run's time depends on."""

    model: str
    workflow: str
    size: str  # "832x1216", or "ar:16:9" when the size follows from the aspect ratio and the model
    steps: int  # 0 = the template's default

    def text(self) -> str:
        """The key as one string (for Redis); fields joined by a character a model name cannot hold."""
        return f"{self.model}|{self.workflow}|{self.size}|{self.steps}"


def run_key(job: Job) -> RunKey:
    """The key of a job."""
    size = f"{job.width}x{job.height}" if job.width is not None and job.height is not None else \
        f"ar:{job.aspect_ratio}"
    return RunKey(model=job.model, workflow=job.workflow, size=size, steps=job.steps or 0)


def steps_of(job: Job) -> int:
    """The steps a job runs, for scaling a time per step (the template's default counts as `DEFAULT_STEPS`)."""
    return (job.steps or DEFAULT_STEPS) * max(1, job.batch_size)


@dataclass(frozen=True, slots=True)
class RunTimeStats:
    """The learned samples a forecast needs: seconds per exact key, seconds per step per model and overall."""

    exact: Mapping[str, Sequence[float]] = field(default_factory=dict)
    model_rates: Mapping[str, Sequence[float]] = field(default_factory=dict)
    global_rates: Sequence[float] = ()


def estimate_s(job: Job, stats: RunTimeStats) -> tuple[float, EstimateSource]:
    """Seconds `job` will take to run on ComfyUI, and where the figure came from."""
    exact = stats.exact.get(run_key(job).text(), ())
    if len(exact) >= MIN_EXACT_SAMPLES:
        return statistics.median(exact), EstimateSource.EXACT
    rates = stats.model_rates.get(job.model, ())
    if rates:
        return statistics.median(rates) * steps_of(job), EstimateSource.MODEL
    if exact:
        return statistics.median(exact), EstimateSource.EXACT
    if stats.global_rates:
        return statistics.median(stats.global_rates) * steps_of(job), EstimateSource.GLOBAL
    return DEFAULT_RUN_S, EstimateSource.DEFAULT


@dataclass(frozen=True, slots=True)
class RunningJob:
    """A claimed job: on which worker, and how far it got (0-100, as the record's progress)."""

    job: Job
    worker: str
    progress: int


@dataclass(frozen=True, slots=True)
class JobEta:
    """When one job starts and ends (for a running one `start` is when it was looked at)."""

    job_id: str
    start: datetime
    finish: datetime
    estimate_s: float  # the whole run
    source: EstimateSource

    @property
    def left_s(self) -> float:
        """Seconds from its start to its end (for a running job: the time left)."""
        return (self.finish - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class QueueForecast:
    """Starts and ends of every running and queued job, and when the whole queue is done (None: nothing to do)."""

    now: datetime
    running: tuple[JobEta, ...]
    queued: tuple[JobEta, ...]
    finish: datetime | None
    workers: int

    def eta(self, job_id: str) -> JobEta | None:
        """The forecast for one job, or None if it is neither running nor queued."""
        return next((e for e in (*self.running, *self.queued) if e.job_id == job_id), None)


def running_left_s(estimate: float, progress: int) -> float:
    """A running job's time left from its estimate and progress (below 30 % it has not started generating)."""
    done = (min(max(progress, _PROGRESS_START), _PROGRESS_END) - _PROGRESS_START) / (_PROGRESS_END - _PROGRESS_START)
    return estimate * (1.0 - done)


def forecast(now: datetime, running: Sequence[RunningJob], queued: Sequence[Job], stats: RunTimeStats, *,
             workers: int = 0, not_before: datetime | None = None) -> QueueForecast:
    """Lay the queue out: each worker runs its claimed jobs one after another on its ComfyUI (most advanced
    first), then queued jobs go, in queue order, to whichever worker is free first.

    `workers` is how many workers take jobs (0: as many as hold jobs now, at least one); `not_before` delays every
    queued start (the queue is paused until then, e.g. outside the active hours).
    """
    free_at: dict[str, datetime] = {}
    running_etas: list[JobEta] = []
    by_worker: dict[str, list[RunningJob]] = {}
    for item in running:
        by_worker.setdefault(item.worker, []).append(item)
    for worker, items in sorted(by_worker.items()):
        at = now
        for item in sorted(items, key=lambda r: -r.progress):
            whole, source = estimate_s(item.job, stats)
            end = at + timedelta(seconds=running_left_s(whole, item.progress))
            running_etas.append(JobEta(item.job.job_id, at, end, whole, source))
            at = end
        free_at[worker] = at
    count = max(workers, len(free_at), 1)
    slots = sorted(free_at.values()) + [now] * (count - len(free_at))
    start_floor = max(now, not_before) if not_before is not None else now
    queued_etas: list[JobEta] = []
    for job in queued:
        index = min(range(len(slots)), key=lambda i: slots[i])
        start = max(slots[index], start_floor)
        whole, source = estimate_s(job, stats)
        end = start + timedelta(seconds=whole)
        queued_etas.append(JobEta(job.job_id, start, end, whole, source))
        slots[index] = end
    ends = [eta.finish for eta in (*running_etas, *queued_etas)]
    return QueueForecast(now=now, running=tuple(running_etas), queued=tuple(queued_etas),
                         finish=max(ends) if ends else None, workers=count)
