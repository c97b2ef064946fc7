"""The jobs table's queue actions: Move to top / bottom, Ctrl+Up / Ctrl+Down, a priority per row.

They act on the selected rows that are queued and call one `QueueControl` function each; the table shows the new
order when the queue's event stream announces it.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu

from comfystudio_desktop.jobs import JobStatus
from comfystudio_desktop.queue.ordering import Priority
from comfystudio_desktop.ui.jobs_view import JobsView
from comfystudio_desktop.ui.queue_control import QueueControl, RunOrder

__all__ = ["PRIORITY_WORDS", "QueueActions"]

#: How each priority is named in menus and the prompt panel.
PRIORITY_WORDS: dict[Priority, str] = {Priority.HIGH: "High", Priority.NORMAL: "Normal", Priority.LOW: "Low"}


class QueueActions(QObject):
    """Adds the queue actions to a `JobsView` (keys on its table, a section in its context menu)."""

    def __init__(self, view: JobsView, control: QueueControl) -> None:
        super().__init__(view)
        self.view = view
        self.control = control
        self.top_action = self._action("Move to top", "Ctrl+Home",
                                       lambda: self.control.move_to_end(self._ids(), top=True))
        self.bottom_action = self._action("Move to bottom", "Ctrl+End",
                                          lambda: self.control.move_to_end(self._ids(), top=False))
        self.up_action = self._action("Move up", "Ctrl+Up", lambda: self.control.step(self._ids(), up=True))
        self.down_action = self._action("Move down", "Ctrl+Down", lambda: self.control.step(self._ids(), up=False))
        self.priority_actions: dict[Priority, QAction] = {}
        for level, word in PRIORITY_WORDS.items():
            act = QAction(word, self, checkable=True)
            act.triggered.connect(lambda _=False, level=level: self.control.set_priority(self._ids(), level))
            self.priority_actions[level] = act
        view.menu_extensions.append(self.add_to_menu)
        view.table.selectionModel().selectionChanged.connect(self._on_selection_changed)
        control.order_changed.connect(self._on_control_order_changed)
        self._update()

    def _action(self, text: str, shortcut: str, slot: Callable[[], None]) -> QAction:
        act = QAction(text, self.view)
        act.setShortcut(QKeySequence(shortcut))
        act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        act.triggered.connect(slot)
        self.view.table.addAction(act)
        return act

    def _ids(self) -> list[str]:
        """The selected jobs that are waiting, in view order."""
        return [r.job_id for r in self.view.selected_records() if r.status == JobStatus.QUEUED]

    def add_to_menu(self, menu: QMenu) -> None:
        """The context menu's queue section (shown when a queued row is selected)."""
        self._update()
        if not self._ids():
            return
        menu.addSeparator()
        for act in (self.top_action, self.up_action, self.down_action, self.bottom_action):
            menu.addAction(act)
        priority = menu.addMenu("Priority")
        for act in self.priority_actions.values():
            priority.addAction(act)

    def _update(self) -> None:
        ids = self._ids()
        for act in (self.top_action, self.bottom_action, self.up_action, self.down_action):
            act.setEnabled(bool(ids))
        levels = {level for job_id, level in self.control.order.jobs if job_id in set(ids)}
        for level, act in self.priority_actions.items():
            act.setEnabled(bool(ids))
            act.setChecked(levels == {level})

    def _on_selection_changed(self) -> None:
        self._update()

    def _on_control_order_changed(self, order: RunOrder) -> None:
        words = ((job_id, "" if level is Priority.NORMAL else PRIORITY_WORDS[level].lower())
                 for job_id, level in order.jobs)
        self.view.model.set_run_order(words)
        self._update()
