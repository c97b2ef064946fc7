"""The window's queue-control actions: reorder, priority, the run order shown, favourites, archives.

One named function per user action (`move_to_end`, `step`, `drop`, `set_priority`, `star`, `export`, `import_`),
each run as an `Operation` off the GUI thread; results come back as typed signals. Nothing here changes the jobs
table directly: a move is announced on the queue's event stream like every other change, and the run order the
table shows is re-read (coalesced) whenever an event may have changed it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from comfystudio_desktop.batch_expansion import new_batch_id
from comfystudio_desktop.jobs import JobEvent, JobStatus
from comfystudio_desktop.queue.archive import ExportReport, ImportReport, export_archive, import_archive
from comfystudio_desktop.queue.connection import RedisUnavailable
from comfystudio_desktop.queue.history import History, StarOutcome
from comfystudio_desktop.queue.job_batches import JobBatches
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.queue.ordering import MoveOutcome, Priority, QueueOrder
from comfystudio_desktop.ui.app_controller import AppController
from comfystudio_desktop.ui.operations import Operation
from comfystudio_desktop.ui.queue_moves import QueueMove, drop_order, moves_for, step_order, to_end_order
from comfystudio_desktop.ui.refresh_coalescer import RefreshCoalescer
from comfystudio_desktop.ui.status_values import Problem

__all__ = ["ArchiveDone", "ArchiveFailed", "QueueControl", "RunOrder", "Starred"]

log = logging.getLogger(__name__)
_ORDER_MIN_INTERVAL_S = 0.2


@dataclass(frozen=True, slots=True)
class RunOrder:
    """The queued jobs in the order they will run, with their priorities."""

    jobs: tuple[tuple[str, Priority], ...]

    def ids(self) -> list[str]:
        """The job ids in run order."""
        return [job_id for job_id, _ in self.jobs]


@dataclass(frozen=True, slots=True)
class Starred:
    """A job's star changed (or could not: `outcome` NOT_IN_HISTORY)."""

    job_id: str
    outcome: StarOutcome


@dataclass(frozen=True, slots=True)
class ArchiveDone:
    """An export or import finished; `path` is the archive."""

    path: Path
    report: ExportReport | ImportReport


@dataclass(frozen=True, slots=True)
class ArchiveFailed:
    """An export or import failed, with one message for the user."""

    path: Path
    exporting: bool
    message: str


class QueueControl(QObject):
    """Reorders and re-prioritises queued jobs, follows the run order, stars jobs, exports and imports archives."""

    order_changed = Signal(RunOrder)
    starred = Signal(Starred)
    archive_done = Signal(ArchiveDone)
    archive_failed = Signal(ArchiveFailed)

    def __init__(self, controller: AppController, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.order = RunOrder(())
        self._order_reader: QueueOrder | None = None
        self._history: History | None = None
        self._refresh = RefreshCoalescer(self._read_order, controller.spawn, min_interval_s=_ORDER_MIN_INTERVAL_S)
        controller.job_event.connect(self._on_controller_job_event)
        controller.records_loaded.connect(self.request_order)

    # -- the run order ---------------------------------------------------------------------------------------
    def request_order(self) -> None:
        """Re-read the run order soon (coalesced)."""
        if self.controller.runtime is not None:
            self._refresh.request()

    def _on_controller_job_event(self, event: JobEvent) -> None:
        # A job that is queued (submitted, moved, requeued) or one that was (claimed, cancelled) changes the order.
        if event.status is JobStatus.QUEUED or any(job_id == event.job_id for job_id, _ in self.order.jobs):
            self.request_order()

    async def _read_order(self) -> None:
        reader = self._reader()
        if reader is None:
            return
        try:
            order = await asyncio.to_thread(reader.order)
        except RedisUnavailable as exc:
            log.warning("Run order unavailable: %s", exc)
            return
        if order != self.order.jobs:
            self.order = RunOrder(order)
            self.order_changed.emit(self.order)

    def _reader(self) -> QueueOrder | None:
        runtime = self.controller.runtime
        if runtime is None:
            return None
        if self._order_reader is None or self._order_reader.queue is not runtime.queue:
            self._order_reader = QueueOrder(runtime.queue)
        return self._order_reader

    # -- user actions: one function each ---------------------------------------------------------------------
    def move_to_end(self, job_ids: Sequence[str], *, top: bool) -> None:
        """Move to top / Move to bottom: the selected queued jobs, in their order."""
        order = self.order.ids()
        self._apply(moves_for(to_end_order(order, job_ids, top=top), job_ids), "top" if top else "bottom")

    def step(self, job_ids: Sequence[str], *, up: bool) -> None:
        """Ctrl+Up / Ctrl+Down: each selected queued job one place earlier or later."""
        order = self.order.ids()
        self._apply(moves_for(step_order(order, job_ids, up=up), job_ids), "up" if up else "down")

    def drop(self, job_ids: Sequence[str], target: str, *, after: bool) -> None:
        """Dragged queued rows dropped just before (or after) the queued job `target`."""
        order = self.order.ids()
        self._apply(moves_for(drop_order(order, job_ids, target, after=after), job_ids), "drop")

    def set_priority(self, job_ids: Sequence[str], level: Priority) -> None:
        """Give the selected queued jobs a priority (each goes to the end of that priority's jobs)."""
        reader = self._reader()
        if reader is None:
            return
        run = partial(_set_priorities, reader, tuple(job_ids), level)
        self.controller.spawn(Operation(run, f"priority {level.label} for {len(job_ids)} job(s)")
                              .success(self._on_moves_done).run())

    def _apply(self, moves: Sequence[QueueMove], what: str) -> None:
        reader = self._reader()
        if reader is None or not moves:
            return
        self.controller.spawn(Operation(partial(_apply_moves, reader, tuple(moves)), f"move {what}")
                              .success(self._on_moves_done).run())

    def _on_moves_done(self, outcomes: tuple[MoveOutcome, ...]) -> None:
        if any(o is MoveOutcome.NOT_QUEUED for o in outcomes):
            self.controller.problem.emit(Problem("A job started or ended meanwhile and was not moved."))
        self.request_order()

    def cancel_batch(self, batch_id: str) -> None:
        """Cancel every job of a batch that has not ended."""
        queue = self._queue()
        if queue is not None:
            work = partial(JobBatches(queue).cancel, batch_id)
            self.controller.spawn(Operation(work, f"cancel batch {batch_id!r}").run())

    def rerun_batch(self, batch_id: str) -> None:
        """Run a whole batch again as a new batch (new job ids, the same order)."""
        queue = self._queue()
        if queue is not None:
            work = partial(JobBatches(queue).rerun, batch_id, new_batch_id())
            self.controller.spawn(Operation(work, f"run batch {batch_id!r} again").run())

    def star(self, job_id: str, *, on: bool) -> None:
        """Star (favourite) or unstar an ended job: a starred job's entry and output are never cleaned up."""
        history = self.history()
        if history is None:
            return
        work: Callable[[str], StarOutcome] = history.star if on else history.unstar
        self.controller.spawn(Operation(partial(work, job_id), f"{'star' if on else 'unstar'} {job_id!r}")
                              .success(lambda outcome: self.starred.emit(Starred(job_id, outcome))).run())

    def export(self, path: Path, *, with_outputs: bool = False) -> None:
        """File → Export queue…: every job of the queue and the history into the archive at `path`."""
        queue = self._queue()
        if queue is None:
            return
        work = partial(export_archive, path, queue, self.controller.home, with_outputs=with_outputs)
        self._archive(Operation(work, f"export to {str(path)!r}"), path, exporting=True)

    def import_(self, path: Path) -> None:
        """File → Import queue… (or an archive dropped on the window): add the archive's jobs this home lacks."""
        queue = self._queue()
        if queue is None:
            return
        work = partial(import_archive, path, queue, self.controller.home)
        self._archive(Operation(work, f"import {str(path)!r}"), path, exporting=False)

    def _archive(self, operation: Operation[ExportReport] | Operation[ImportReport], path: Path, *,
                 exporting: bool) -> None:
        def done(report: ExportReport | ImportReport) -> None:
            self.archive_done.emit(ArchiveDone(path, report))
            if not exporting:
                self.request_order()

        def failed(error: Exception) -> None:
            self.archive_failed.emit(ArchiveFailed(path, exporting, _one_line(error)))

        self.controller.spawn(operation.success(done).failure(failed).run())

    def history(self) -> History | None:
        """The lasting history of the queue's Redis (None before the queue is open)."""
        queue = self._queue()
        if queue is None:
            return None
        if self._history is None or self._history.conn is not queue.conn:
            self._history = History(queue.conn)
        return self._history

    def _queue(self) -> JobQueue | None:
        runtime = self.controller.runtime
        return runtime.queue if runtime is not None else None


def _apply_moves(reader: QueueOrder, moves: tuple[QueueMove, ...]) -> tuple[MoveOutcome, ...]:
    return tuple(reader.move(m.job_id, m.where, m.anchor) for m in moves)


def _set_priorities(reader: QueueOrder, job_ids: tuple[str, ...], level: Priority) -> tuple[MoveOutcome, ...]:
    return tuple(reader.set_priority(job_id, level) for job_id in job_ids)


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    if isinstance(error, OSError) and error.strerror:
        name = f" {error.filename!r}" if error.filename else ""
        text = f"{error.strerror}{name}"
    return text or type(error).__name__
