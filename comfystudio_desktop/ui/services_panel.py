"""The Services panel: one row per supervised service (state, restarts, last exit, uptime) with its buttons.

A thin view: it shows the `ServiceState` snapshots it is given (`update_state`, connected by the caller to a signal
that carries the watchdog's on_change callbacks onto the GUI thread) and turns clicks into signals carrying the
service name. It never calls the watchdog itself.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QHideEvent, QPalette, QShowEvent
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QPushButton, QWidget

from comfystudio_desktop.supervise.service_state import Remedy, ServiceState, State, describe_duration
from comfystudio_desktop.ui.theme import error_color

__all__ = ["DEFAULT_TITLES", "WORKER_TITLE", "ServicesPanel", "exit_text", "state_text"]

DEFAULT_TITLES = {"redis-server": "Job queue (redis-server)", "comfyui": "ComfyUI"}
#: The window's own worker thread, supervised like a process (a row the window adds to the defaults).
WORKER_TITLE = "Worker (in this window)"
_COLUMNS = ("Service", "State", "Restarts", "Last exit", "Uptime")
_TOOLTIP_LINES = 12
_STOPPABLE = (State.STARTING, State.RUNNING, State.RESTARTING, State.HUNG)


def state_text(state: ServiceState, elapsed_s: float = 0.0) -> str:
    """What the State column says, `elapsed_s` after the snapshot was taken (for the restart countdown)."""
    kind = state.state
    if kind is State.RESTARTING and state.restart_in_s is not None:
        return f"restarting in {math.ceil(max(0.0, state.restart_in_s - elapsed_s))} s"
    if kind is State.FATAL:
        return "FATAL"
    if kind is State.EXTERNAL:
        answer = {True: "answering", False: "not answering", None: "checking"}[state.healthy]
        return f"external, {answer}"
    if kind is State.RUNNING and state.healthy is False:
        return "running, not answering"
    return kind.value


def exit_text(code: int | None) -> str:
    """The Last exit column: '', '3', or 'killed (SIGKILL)' for a POSIX signal."""
    if code is None:
        return ""
    if code < 0:
        try:
            return f"killed ({signal.Signals(-code).name})"
        except ValueError:
            return f"killed (signal {-code})"
    return str(code)


@dataclass
class _Row:
    """The widgets of one service and the snapshot they show."""

    title: QLabel
    state: QLabel
    restarts: QLabel
    last_exit: QLabel
    uptime: QLabel
    detail: QLabel
    restart: QPushButton
    stop: QPushButton
    open_log: QPushButton
    repair: QPushButton
    snapshot: ServiceState | None = None
    received_at: float = 0.0


class ServicesPanel(QWidget):
    """Rows for the app's services, in the order they are first seen (or given as `titles`)."""

    restart_requested = Signal(str)
    stop_requested = Signal(str)
    open_log_requested = Signal(str)
    repair_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, titles: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(parent)
        self._titles = dict(DEFAULT_TITLES if titles is None else titles)
        self._clock = clock
        self._rows: dict[str, _Row] = {}
        self._grid = QGridLayout(self)
        for column, heading in enumerate(_COLUMNS):
            label = QLabel(f"<b>{heading}</b>", self)
            self._grid.addWidget(label, 0, column)
        self._grid.setColumnStretch(len(_COLUMNS), 1)
        self._grid.setRowStretch(1000, 1)
        for name in self._titles:
            self._row(name)
        # Countdowns and uptimes move on between snapshots, while the panel is shown (showEvent/hideEvent).
        self._ticker = QTimer(self)
        self._ticker.setInterval(1000)
        self._ticker.timeout.connect(self.refresh)

    def showEvent(self, event: QShowEvent) -> None:
        """Catch up on the time that passed while hidden, then tick every second."""
        self.refresh()
        self._ticker.start()
        super().showEvent(event)

    def hideEvent(self, event: QHideEvent) -> None:
        """No ticking while nobody sees the panel (and none left running once it closes)."""
        self._ticker.stop()
        super().hideEvent(event)

    # -- input --------------------------------------------------------------------------------------------------

    @Slot(object)
    def update_state(self, state: ServiceState) -> None:
        """Show a new snapshot of one service (GUI thread only)."""
        row = self._row(state.name)
        row.snapshot, row.received_at = state, self._clock()
        self._render(row)

    @Slot()
    def refresh(self) -> None:
        """Move countdowns and uptimes on (the panel's timer calls this every second)."""
        for row in self._rows.values():
            if row.snapshot is not None:
                self._render_times(row)

    # -- what tests and the window read -------------------------------------------------------------------------

    def names(self) -> list[str]:
        """The services shown, in row order."""
        return list(self._rows)

    def cell(self, name: str, column: str) -> str:
        """The text of one cell: a column title from `_COLUMNS`, or "Detail" for the message under the row."""
        row = self._rows[name]
        labels = {"Service": row.title, "State": row.state, "Restarts": row.restarts, "Last exit": row.last_exit,
                  "Uptime": row.uptime, "Detail": row.detail}
        return labels[column].text()

    def button(self, name: str, action: str) -> QPushButton:
        """One of a row's buttons: "restart", "stop", "open_log" or "repair"."""
        row = self._rows[name]
        buttons = {"restart": row.restart, "stop": row.stop, "open_log": row.open_log, "repair": row.repair}
        return buttons[action]

    # -- rows ---------------------------------------------------------------------------------------------------

    def _row(self, name: str) -> _Row:
        if name in self._rows:
            return self._rows[name]
        grid_row = 1 + 2 * len(self._rows)
        labels = [QLabel(self) for _ in _COLUMNS]
        labels[0].setText(self._titles.get(name, name))
        for column, label in enumerate(labels):
            self._grid.addWidget(label, grid_row, column)
        buttons = QWidget(self)
        box = QHBoxLayout(buttons)
        box.setContentsMargins(0, 0, 0, 0)
        restart, stop, open_log, repair = (QPushButton(text, buttons) for text in
                                           ("Restart", "Stop", "Open log", "Repair queue file…"))
        for button, action, emit in ((restart, "restart", self.restart_requested),
                                     (stop, "stop", self.stop_requested),
                                     (open_log, "open_log", self.open_log_requested),
                                     (repair, "repair", self.repair_requested)):
            button.setObjectName(f"{name}-{action}")
            button.clicked.connect(lambda _checked=False, signal_=emit: signal_.emit(name))
            box.addWidget(button)
        repair.setToolTip("Back up the queue's append-only file, cut its damaged end, and start Redis again")
        repair.hide()
        self._grid.addWidget(buttons, grid_row, len(_COLUMNS))
        detail = QLabel(self)
        detail.setWordWrap(True)
        detail.setTextFormat(Qt.TextFormat.PlainText)
        detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        detail.hide()
        self._grid.addWidget(detail, grid_row + 1, 1, 1, len(_COLUMNS))
        row = _Row(labels[0], labels[1], labels[2], labels[3], labels[4], detail, restart, stop, open_log, repair)
        self._rows[name] = row
        return row

    def _render(self, row: _Row) -> None:
        state = row.snapshot
        assert state is not None
        external = state.state is State.EXTERNAL
        row.restarts.setText("" if external else str(state.restarts))
        row.last_exit.setText(exit_text(state.last_exit_code))
        self._render_times(row)
        problem = state.state in (State.FATAL, State.HUNG, State.RESTARTING) or (external and state.healthy is False)
        row.detail.setText(state.message if problem else "")
        row.detail.setVisible(problem and bool(state.message))
        self._colour(row.state, state.state is State.FATAL)
        self._colour(row.detail, state.state is State.FATAL)
        lines = state.last_log_lines[-_TOOLTIP_LINES:]
        row.state.setToolTip("\n".join(lines))
        row.restart.setText("Check now" if external else "Restart")
        row.stop.setVisible(not external)
        row.stop.setEnabled(state.state in _STOPPABLE)
        row.open_log.setVisible(not external)
        row.repair.setVisible(state.state is State.FATAL and state.remedy is Remedy.REPAIR_AOF)

    def _render_times(self, row: _Row) -> None:
        state = row.snapshot
        assert state is not None
        elapsed = max(0.0, self._clock() - row.received_at)
        row.state.setText(state_text(state, elapsed))
        up = state.state in (State.STARTING, State.RUNNING, State.HUNG) and state.uptime_s is not None
        row.uptime.setText(describe_duration((state.uptime_s or 0.0) + elapsed) if up else "")

    def _colour(self, label: QLabel, error: bool) -> None:
        palette = self.palette()
        if error:
            palette.setColor(QPalette.ColorRole.WindowText, error_color(palette))
        label.setPalette(palette)
