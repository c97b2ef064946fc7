"""The system-tray icon: queue state at a glance, a small menu, and notifications when jobs end."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QIcon
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from comfystudio_desktop.ui.resources_path import icon_path
from comfystudio_desktop.ui.window_summary import TrayState

__all__ = ["TrayController", "TrayState"]

log = logging.getLogger(__name__)


class TrayController(QObject):
    """Owns the tray menu always (so it can be driven and tested anywhere) and the icon where a tray exists."""

    show_requested = Signal()
    pause_toggled = Signal(bool)
    open_outputs_requested = Signal()
    quit_requested = Signal()
    notification_clicked = Signal(str)  # job id

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.menu = QMenu()
        self.show_action = QAction("Show ComfyStudio", self.menu)
        self.pause_action = QAction("Pause queue", self.menu, checkable=True)
        self.outputs_action = QAction("Open outputs folder", self.menu)
        self.quit_action = QAction("Quit", self.menu)
        self.menu.addAction(self.show_action)
        self.menu.addAction(self.pause_action)
        self.menu.addAction(self.outputs_action)
        self.menu.addSeparator()
        self.menu.addAction(self.quit_action)
        self.show_action.triggered.connect(self.show_requested)
        self.pause_action.toggled.connect(self._on_pause_action_toggled)
        self.outputs_action.triggered.connect(self.open_outputs_requested)
        self.quit_action.triggered.connect(self.quit_requested)
        self._icons = {state: QIcon(str(icon_path(f"tray-{state.value}.png"))) for state in TrayState}
        self.state = TrayState.IDLE
        self.tooltip = "ComfyStudio"
        self._state_text = "ComfyStudio"
        self.summary = ""  # the Monitor's one-line summary, shown under the state
        self.outlook = ""  # the queue's ETA or pause, from QueueOutlook
        self._last_job = ""
        self.icon: QSystemTrayIcon | None = None
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.icon = QSystemTrayIcon(self._icons[TrayState.IDLE], self)
            self.icon.setContextMenu(self.menu)
            self.icon.activated.connect(self._on_icon_activated)
            self.icon.messageClicked.connect(self._on_icon_message_clicked)
            self.icon.show()
        else:
            log.info("No system tray on this desktop; running without a tray icon")

    @property
    def available(self) -> bool:
        """True when an icon is really shown (close-to-tray needs it)."""
        return self.icon is not None

    def set_state(self, state: TrayState, queued: int, running: int, problem: str = "") -> None:
        """Update the icon and tooltip."""
        self.state = state
        self._state_text = f"ComfyStudio — {queued} queued, {running} running" + (f"\n{problem}" if problem else "")
        self._show_tooltip()
        if self.icon is not None:
            self.icon.setIcon(self._icons[state])

    def set_summary(self, summary: str) -> None:
        """Show the Monitor's summary line under the state."""
        self.summary = summary
        self._show_tooltip()

    def set_outlook(self, line: str) -> None:
        """Show the queue's outlook ("Queue running · done ≈ 14:32", "Queue paused until 22:00") in the tooltip."""
        self.outlook = line
        self._show_tooltip()

    def _show_tooltip(self) -> None:
        self.tooltip = "\n".join(part for part in (self._state_text, self.outlook, self.summary) if part)
        if self.icon is not None:
            self.icon.setToolTip(self.tooltip)

    def set_paused(self, paused: bool) -> None:
        """Reflect the queue's pause state in the menu (without re-emitting)."""
        self.pause_action.blockSignals(True)
        self.pause_action.setChecked(paused)
        self.pause_action.setText("Resume queue" if paused else "Pause queue")
        self.pause_action.blockSignals(False)

    def notify(self, title: str, message: str, job_id: str, *, error: bool = False) -> None:
        """A desktop notification; clicking it emits `notification_clicked(job_id)`."""
        self._last_job = job_id
        if self.icon is not None and QSystemTrayIcon.supportsMessages():
            kind = QSystemTrayIcon.MessageIcon.Warning if error else QSystemTrayIcon.MessageIcon.Information
            self.icon.showMessage(title, message, kind, 8000)

    def hide(self) -> None:
        """Remove the icon (on quit)."""
        if self.icon is not None:
            self.icon.hide()

    def _on_pause_action_toggled(self, checked: bool) -> None:
        self.pause_action.setText("Resume queue" if checked else "Pause queue")
        self.pause_toggled.emit(checked)

    def _on_icon_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.show_requested.emit()

    def _on_icon_message_clicked(self) -> None:
        if self._last_job:
            self.notification_clicked.emit(self._last_job)
