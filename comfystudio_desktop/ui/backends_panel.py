"""The Backends panel: one row per backend (state, current job, loaded model, VRAM, jobs done, median time).

A thin view over `BackendView` snapshots read from Redis (every window sees every backend, wherever its worker
runs). The Enable/Disable button emits a typed request; `BackendsFeed` reads the views in the background and
carries out the requests. Which backends have which model also goes to the models combo (`holders_changed`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDockWidget,
    QHBoxLayout,
    QMainWindow,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from comfystudio_desktop.queue.routing import BackendRegistry, BackendState, BackendView

if TYPE_CHECKING:
    from comfystudio_desktop.ui.app_controller import AppController
    from comfystudio_desktop.ui.model_combo import ModelCombo

__all__ = ["BackendToggle", "BackendsFeed", "BackendsPanel", "BackendsSnapshot", "install_backends_dock",
           "row_texts"]

_COLUMNS = ("Backend", "State", "Current job", "Loaded model", "VRAM", "Jobs done", "Median")
_GIB = 1024 ** 3
NameRole = Qt.ItemDataRole.UserRole + 1
EnabledRole = Qt.ItemDataRole.UserRole + 2


@dataclass(frozen=True, slots=True)
class BackendToggle:
    """The user asks to enable or disable a backend."""

    name: str
    enabled: bool


@dataclass(frozen=True, slots=True)
class BackendsSnapshot:
    """Every backend as Redis knows it now."""

    views: tuple[BackendView, ...]

    def holders(self) -> dict[str, tuple[str, ...]]:
        """model → the backends that are up and have it."""
        out: dict[str, list[str]] = {}
        for view in self.views:
            if view.state is BackendState.UP:
                for model in view.models:
                    out.setdefault(model, []).append(view.name)
        return {model: tuple(names) for model, names in out.items()}


def row_texts(view: BackendView) -> tuple[str, ...]:
    """The texts of a backend's row, in column order."""
    state = str(view.state) if view.enabled else f"{view.state}, disabled"
    vram = f"{view.vram_free / _GIB:.1f} / {view.vram_total / _GIB:.1f} GiB free" if view.vram_total > 0 else ""
    median = f"{view.median_s:.1f} s" if view.median_s is not None else ""
    return (view.name, state, view.current_job, view.loaded_model, vram, str(view.jobs_done), median)


class BackendsPanel(QWidget):
    """The table and its Enable/Disable button; `toggle_requested(BackendToggle)` on a click."""

    toggle_requested = Signal(BackendToggle)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = QStandardItemModel(0, len(_COLUMNS), self)
        self.model.setHorizontalHeaderLabels(list(_COLUMNS))
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.toggle_button = QPushButton("Disable", self)
        self.toggle_button.setEnabled(False)
        self.toggle_button.clicked.connect(self._on_toggle_button_clicked)
        self.table.selectionModel().selectionChanged.connect(self._on_table_selection_changed)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.toggle_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addLayout(buttons)

    def show_snapshot(self, snapshot: BackendsSnapshot) -> None:
        """Show these backends (rows updated in place; the selection kept by name)."""
        selected = self._selected_name()
        self.model.setRowCount(len(snapshot.views))
        for row, view in enumerate(snapshot.views):
            for column, text in enumerate(row_texts(view)):
                item = cast(QStandardItem | None, self.model.item(row, column))  # None in a new row
                if item is None:
                    item = QStandardItem()
                    self.model.setItem(row, column, item)
                if item.text() != text:
                    item.setText(text)
                item.setData(view.name, NameRole)
                item.setData(view.enabled, EnabledRole)
            self.model.item(row, 0).setToolTip(f"{view.url}\n{len(view.models)} models")
        if selected is not None:
            for row, view in enumerate(snapshot.views):
                if view.name == selected:
                    self.table.selectRow(row)
        self._update_button()

    def _selected_name(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return str(rows[0].data(NameRole)) if rows else None

    def _update_button(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        self.toggle_button.setEnabled(bool(rows))
        self.toggle_button.setText("Enable" if rows and not rows[0].data(EnabledRole) else "Disable")

    @Slot()
    def _on_table_selection_changed(self) -> None:
        self._update_button()

    @Slot()
    def _on_toggle_button_clicked(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self.toggle_requested.emit(BackendToggle(str(rows[0].data(NameRole)), not bool(rows[0].data(EnabledRole))))


class BackendsFeed(QObject):
    """Reads the backends from Redis every `interval_ms` off the GUI thread; `snapshot_ready` with the result.

    `spawn` runs a coroutine on the window's event loop (the controller's `spawn`); `registry` is None until the
    queue is open.
    """

    snapshot_ready = Signal(BackendsSnapshot)

    def __init__(self, spawn: Callable[[Coroutine[Any, Any, Any]], object], configured: Iterable[str] = (), *,
                 interval_ms: int = 2000, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.registry: BackendRegistry | None = None
        self._spawn = spawn
        self._configured = tuple(configured)
        self._busy = False
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._on_timer_timeout)

    def start(self, registry: BackendRegistry) -> None:
        """Begin reading from `registry`."""
        self.registry = registry
        self._timer.start()
        self._on_timer_timeout()

    def stop(self) -> None:
        """Stop reading."""
        self._timer.stop()

    def toggle(self, request: BackendToggle) -> None:
        """Enable or disable a backend (in Redis, where every worker sees it at its next claim)."""
        registry = self.registry
        if registry is None:
            return

        async def apply() -> None:
            await asyncio.to_thread(registry.set_enabled, request.name, request.enabled)
            await self._read()

        self._spawn(apply())

    @Slot()
    def _on_timer_timeout(self) -> None:
        if not self._busy and self.registry is not None:
            self._busy = True
            self._spawn(self._read())

    async def _read(self) -> None:
        registry = self.registry
        try:
            if registry is not None:
                views = await asyncio.to_thread(registry.views, self._configured)
                self.snapshot_ready.emit(BackendsSnapshot(tuple(views)))
        finally:
            self._busy = False


def install_backends_dock(window: QMainWindow, controller: AppController, combo: ModelCombo) -> QDockWidget:
    """The Backends dock (hidden until the user shows it), fed from Redis once the queue is open.

    With backends configured it starts visible, and the models combo says which backends have each model.
    """
    panel = BackendsPanel()
    dock = QDockWidget("Backends", window)
    dock.setObjectName("backendsDock")
    dock.setWidget(panel)
    window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
    configured = controller.settings.backends
    dock.setVisible(bool(configured))
    feed = BackendsFeed(controller.spawn, (b.name for b in configured), parent=dock)
    feed.snapshot_ready.connect(panel.show_snapshot)
    if configured:
        feed.snapshot_ready.connect(lambda snapshot: combo.set_holders(snapshot.holders()))
    panel.toggle_requested.connect(feed.toggle)

    def on_ready() -> None:
        if controller.runtime is not None:
            feed.start(BackendRegistry(controller.runtime.queue.conn))

    controller.ready.connect(on_ready)
    return dock
