"""One job in the worker's hands: its lease, where it stands, and what it is waiting for."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum

from comfystudio_desktop.comfy.job_tracker import JobTracker
from comfystudio_desktop.queue.job_queue import Lease

__all__ = ["Phase", "RunFlags", "WorkerRun"]


class Phase(StrEnum):
    """Where a run is between claim and finish."""

    PREPARING = "preparing"  # claimed; inputs, template and ComfyUI not yet done
    WAITING_COMFY = "waiting_comfy"  # ComfyUI unreachable; retried with backoff
    SUBMITTED = "submitted"  # in ComfyUI's queue or running; followed by its events
    FINISHING = "finishing"  # outputs written; the queue must still record it (Redis may be down)


@dataclass
class RunFlags:
    """Set by the heartbeat thread, read by the worker loop."""

    cancel_requested: threading.Event = field(default_factory=threading.Event)
    lease_lost: threading.Event = field(default_factory=threading.Event)


@dataclass
class WorkerRun:
    """Mutable state of one claimed job; owned by the worker loop's thread."""

    lease: Lease
    phase: Phase = Phase.PREPARING
    flags: RunFlags = field(default_factory=RunFlags)
    tracker: JobTracker | None = None
    seed_used: int = -1
    submitted_at: float = 0.0  # monotonic
    next_attempt_at: float = 0.0  # monotonic, for WAITING_COMFY
    comfy_failures: int = 0
    last_history_poll: float = 0.0
    # ComfyUI's prompt id for this run: the job id, or for a run the user retried `{job_id}-r{n}`, so that the earlier
    # run's messages, history and interrupts can never be mistaken for this one's.
    prompt_id: str = ""
    reattached: bool = False  # followed after a worker crash: its messages went to the old worker's socket
    progress: int = 0
    image_url: str = ""
    outputs: tuple[str, ...] = ()
    cache_key: str = ""  # the result cache's key of this run's filled graph ("" = not cached)
    from_cache: bool = False  # finished with a copy of a cached result
    location: str = ""  # where the outputs live (OutputLocation JSON), recorded with the finish
    claimed_at: float = field(default_factory=time.monotonic)  # for the learned run times (ETA)
    ran_s: float = 0.0  # how long ComfyUI took, once it ended

    def __post_init__(self) -> None:
        self.prompt_id = self.prompt_id or self.lease.job_id
        self.progress = max(self.progress, self.lease.progress)  # never below what an earlier attempt reached

    @property
    def job_id(self) -> str:
        """The job id."""
        return self.lease.job_id
