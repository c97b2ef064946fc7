"""The History dock: the `HistoryView` beside the jobs table, searched when first shown, refreshed as jobs end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import QDockWidget, QWidget

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import JobEvent
from comfystudio_desktop.queue.history import History, StarOutcome
from comfystudio_desktop.queue.history_entry import HistoryEntry
from comfystudio_desktop.ui.history_model import HistoryModel
from comfystudio_desktop.ui.history_view import HistoryView, output_file
from comfystudio_desktop.ui.queue_control import Starred

__all__ = ["HistoryDock"]

_REFRESH_AFTER_MS = 1_000  # jobs ending in a burst refresh the results once


class HistoryDock(QDockWidget):
    """A dock holding the history search; it reads Redis only once it is shown."""

    def __init__(self, history: Callable[[], History | None], home: Home, parent: QWidget | None = None) -> None:
        super().__init__("History", parent)
        self.setObjectName("historyDock")
        self.model = HistoryModel(history, self._locate, parent=self)
        self.view = HistoryView(self.model, home.outputs, self)
        self.setWidget(self.view)
        self._outputs = home.outputs
        self._searched = False
        self._refresh = QTimer(self)
        self._refresh.setSingleShot(True)
        self._refresh.setInterval(_REFRESH_AFTER_MS)
        self._refresh.timeout.connect(self._on_refresh_timeout)

    def showEvent(self, event: QShowEvent) -> None:
        """Search the first time the dock is shown."""
        super().showEvent(event)
        if not self._searched:
            self._searched = True
            self.view.search()

    def on_job_event(self, event: JobEvent) -> None:
        """A job that ended will be in the history: refresh the results soon if they are shown."""
        if event.status.is_terminal and self._searched and self.isVisible():
            self._refresh.start()

    def on_starred(self, starred: Starred) -> None:
        """Show a star change."""
        if starred.outcome is not StarOutcome.NOT_IN_HISTORY:
            self.model.set_favourite(starred.job_id, starred.outcome is StarOutcome.STARRED)

    def _on_refresh_timeout(self) -> None:
        self.model.refresh()

    def _locate(self, entry: HistoryEntry) -> Path | None:
        return output_file(entry, self._outputs)
