"""The whole clean-up the retention settings ask for: old outputs and inputs, and the history entries with them.

Never removes what a queued or running job needs, nor a favourite's entry or output.
"""

from __future__ import annotations

from comfystudio_desktop.home import Home
from comfystudio_desktop.queue.history import History
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.storage_retention import SweepReport, in_use, sweep

__all__ = ["clean_up_storage"]


def clean_up_storage(queue: JobQueue, home: Home, settings: Settings, *, now: float | None = None) -> SweepReport:
    """File ended jobs into the history, prune it to the output retention, then sweep the storage folders."""
    history = History(queue.conn)
    history.sync()
    history.prune(settings.output_retention_days, now=now)
    job_ids, paths = in_use(queue.jobs())
    return sweep(home, settings, active_job_ids=job_ids, active_paths=paths, keep_job_ids=history.favourite_ids(),
                 now=now)
