"""Dead letters in the window: a status-bar count that opens a dialog listing them, with requeue and clear.

Every queue call runs off the GUI thread (`run_in_background`); results come back to slots on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from comfystudio_desktop.jobs import Job
from comfystudio_desktop.queue.dead_letters import DeadLetter
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.ui.background_tasks import run_in_background

__all__ = ["DeadLetterIndicator", "DeadLettersDialog"]

log = logging.getLogger(__name__)
QueueProvider = Callable[[], JobQueue | None]
_POLL_MS = 5_000
_PREVIEW_CHARS = 200


class DeadLettersDialog(QDialog):
    """A table of dead letters (time, reason, entry) with the selected one's full text below it."""

    count_changed = Signal(int)

    def __init__(self, queue: QueueProvider, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Rejected jobs (dead letters)")
        self.resize(900, 520)
        self._queue = queue
        self._letters: list[DeadLetter] = []
        self._busy = False
        self.table = QTableWidget(0, 3, self)
        self.table.setHorizontalHeaderLabels(["Time", "Reason", "Entry"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(True)
        self.raw_view = QPlainTextEdit(self)
        self.raw_view.setReadOnly(True)
        self.raw_view.setPlaceholderText("Select a row to see what arrived")
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(self.table)
        splitter.addWidget(self.raw_view)
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.requeue_button = QPushButton("Requeue selected", self)
        self.requeue_button.setToolTip("Validate the entry again and queue it as a job")
        self.clear_button = QPushButton("Clear all", self)
        self.refresh_button = QPushButton("Refresh", self)
        for button in (self.requeue_button, self.clear_button, self.refresh_button):
            buttons.addButton(button, QDialogButtonBox.ButtonRole.ActionRole)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)
        layout.addWidget(self.message)
        layout.addWidget(buttons)
        buttons.rejected.connect(self.reject)
        self.requeue_button.clicked.connect(self._on_requeue_button_clicked)
        self.clear_button.clicked.connect(self._on_clear_button_clicked)
        self.refresh_button.clicked.connect(self.refresh)
        self.table.itemSelectionChanged.connect(self._on_table_selection_changed)
        self._update_buttons()

    @property
    def letters(self) -> list[DeadLetter]:
        """The dead letters shown now, oldest first."""
        return list(self._letters)

    def refresh(self) -> None:
        """Read the dead letters again (in the background)."""
        queue = self._queue()
        if queue is None:
            self.message.setText("The queue is not connected yet.")
            return
        run_in_background(queue.dead_letters, self._on_loaded)

    def requeue(self, index: int) -> None:
        """Validate dead letter `index` again and queue it (in the background)."""
        queue = self._queue()
        if queue is not None:
            self._set_busy(True)
            run_in_background(lambda: queue.requeue_dead(index), self._on_requeued)

    def clear_all(self) -> None:
        """Drop every dead letter (in the background)."""
        queue = self._queue()
        if queue is not None:
            self._set_busy(True)
            run_in_background(queue.clear_dead, self._on_cleared)

    def _on_loaded(self, outcome: list[DeadLetter] | Exception) -> None:
        if isinstance(outcome, Exception):
            self.message.setText(f"Could not read the dead letters: {outcome}")
            return
        self._letters = outcome
        self.table.setRowCount(len(outcome))
        for row, letter in enumerate(outcome):
            raw = letter.raw if len(letter.raw) <= _PREVIEW_CHARS else letter.raw[:_PREVIEW_CHARS] + "…"
            for column, text in enumerate((letter.at, letter.reason, raw.replace("\n", "⏎"))):
                item = QTableWidgetItem(text)
                item.setToolTip(text if column < 2 else "")
                self.table.setItem(row, column, item)
        self.table.resizeColumnToContents(0)
        self._on_table_selection_changed()
        self._set_busy(False)
        self.count_changed.emit(len(outcome))

    def _on_requeued(self, outcome: Job | Exception) -> None:
        if isinstance(outcome, Job):
            self.message.setText(f"Queued as job {outcome.job_id}.")
        else:
            self.message.setText(f"Not queued: {outcome}")
        self.refresh()

    def _on_cleared(self, outcome: int | Exception) -> None:
        self.message.setText(f"Could not clear: {outcome}" if isinstance(outcome, Exception)
                             else f"Cleared {outcome} dead letter(s).")
        self.refresh()

    def _on_requeue_button_clicked(self) -> None:
        row = self.table.currentRow()
        if row >= 0:
            self.requeue(row)

    def _on_clear_button_clicked(self) -> None:
        self.clear_all()

    def _on_table_selection_changed(self) -> None:
        row = self.table.currentRow()
        if 0 <= row < len(self._letters):
            letter = self._letters[row]
            note = f"\n\n[only the first part of {letter.size} bytes was kept]" if letter.truncated else ""
            self.raw_view.setPlainText(letter.raw + note)
        else:
            self.raw_view.clear()
        self._update_buttons()

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.requeue_button.setEnabled(not self._busy and self.table.currentRow() >= 0)
        self.clear_button.setEnabled(not self._busy and bool(self._letters))


class DeadLetterIndicator(QToolButton):
    """The status bar's dead-letter count; hidden while there are none, opens the dialog when clicked."""

    def __init__(self, queue: QueueProvider, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._queue = queue
        self._reading = False
        self.count = 0
        self.dialog: DeadLettersDialog | None = None
        self.setAutoRaise(True)
        self.setToolTip("Entries of comfy_jobs that could not become jobs; click to look at them")
        self.hide()
        self.clicked.connect(self.open_dialog)
        self._timer = QTimer(self)
        self._timer.setInterval(_POLL_MS)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()

    def refresh(self) -> None:
        """Read the count again (in the background; one read at a time)."""
        queue = self._queue()
        if queue is None or self._reading:
            return
        self._reading = True
        run_in_background(queue.dead_count, self._on_counted)

    def set_count(self, count: int) -> None:
        """Show `count` (hidden at 0)."""
        self.count = count
        self.setText(f"⚠ {count} rejected")
        self.setVisible(count > 0)

    def open_dialog(self) -> None:
        """Show the dead-letters dialog (one per window) and load it."""
        if self.dialog is None:
            self.dialog = DeadLettersDialog(self._queue, self.window())
            self.dialog.count_changed.connect(self.set_count)
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.refresh()

    def _on_counted(self, outcome: int | Exception) -> None:
        self._reading = False
        if isinstance(outcome, Exception):
            log.debug("Dead-letter count unavailable: %s", outcome)
            return
        self.set_count(outcome)
