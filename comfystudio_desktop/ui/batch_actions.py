"""Batches in the jobs table: a Batch section in the context menu of a row that belongs to one.

It shows the batch's progress over the rows the table holds, and acts on the whole batch: fold it into one row or
show its rows again, show only its rows (the filter matches batch ids), move its queued jobs to the top, cancel it,
run it again as a new batch.
"""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QMenu

from comfystudio_desktop.ui.batch_folds import BatchSummary, batch_summary
from comfystudio_desktop.ui.jobs_view import JobsView
from comfystudio_desktop.ui.queue_control import QueueControl

__all__ = ["BatchActions"]


class BatchActions(QObject):
    """Adds the Batch section to a `JobsView`'s context menu."""

    def __init__(self, view: JobsView, control: QueueControl) -> None:
        super().__init__(view)
        self.view = view
        self.control = control
        view.menu_extensions.append(self.add_to_menu)

    def selected_batch(self) -> BatchSummary | None:
        """The batch every selected row belongs to, or None."""
        batches = {r.job.batch_id if r.job is not None else "" for r in self.view.selected_records()}
        if len(batches) != 1 or "" in batches:
            return None
        (batch_id,) = batches
        model = self.view.model
        return batch_summary(batch_id, (r for i in model.job_ids() if (r := model.record(i)) is not None))

    def add_to_menu(self, menu: QMenu) -> None:
        """The Batch submenu, when the selection is one batch."""
        batch = self.selected_batch()
        if batch is None:
            return
        sub = menu.addMenu(batch.title)
        model = self.view.model
        if model.is_folded(batch.batch_id):
            sub.addAction("Show its rows", lambda: model.unfold_batch(batch.batch_id))
        else:
            fold = sub.addAction("Fold into one row", lambda: self._fold(batch.batch_id))
            fold.setEnabled(len(batch.job_ids) > 1)
        sub.addAction("Show only this batch", lambda: self._show_only(batch.batch_id))
        top = sub.addAction("Move its queued jobs to the top",
                            lambda: self.control.move_to_end(list(batch.queued), top=True))
        top.setEnabled(bool(batch.queued))
        cancel = sub.addAction("Cancel the batch", lambda: self.control.cancel_batch(batch.batch_id))
        cancel.setEnabled(batch.ended < len(batch.job_ids))
        sub.addAction("Run the batch again", lambda: self.control.rerun_batch(batch.batch_id))

    def _fold(self, batch_id: str) -> None:
        self.view.model.fold_batch(batch_id)
        lead = self.view.model.folded_lead(batch_id)
        if lead is not None:
            self.view.select_job(lead)

    def _show_only(self, batch_id: str) -> None:
        self.view.model.unfold_batch(batch_id)  # its rows are what the user asked to see
        self.view.search.setText(batch_id)
