"""The jobs table's columns: default widths that fit a 1280×720 window, which are shown, and a menu to choose.

Widths come from the font (`column_widths`, a pure function of a text-measuring callable) so numbers are never
elided: the seed column fits the largest seed ComfyUI accepts. The prompt column takes whatever is left.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QByteArray, QPoint, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QHeaderView, QMenu, QTableView

from comfystudio_desktop.jobs import SEED_MAX
from comfystudio_desktop.ui.job_columns import HEADERS, Column

__all__ = ["ALWAYS_SHOWN", "HIDDEN_BY_DEFAULT", "JobsHeader", "column_widths"]

#: Shown unless the user asks for them (the header's menu); the failure reason shows in the prompt cell.
HIDDEN_BY_DEFAULT: frozenset[Column] = frozenset({Column.CREATED, Column.WAIT, Column.RUN, Column.ERROR})
#: Never hidden: the table would say nothing without them.
ALWAYS_SHOWN: frozenset[Column] = frozenset({Column.PROMPT})
_PAD = 18  # the style's cell margins, both sides
# The widest text each column shows; numbers must never be cut.
_WIDEST = {
    Column.STATUS: "Processing" + "M",  # the pill's padding
    Column.SEED: str(SEED_MAX),
    Column.SIZE: "1024×1024 ×16",
    Column.CREATED: "2026-12-31 23:59",
    Column.WAIT: "59 min 59 s",
    Column.RUN: "59 min 59 s",
}
_FIXED = {Column.PROGRESS: 96, Column.THUMBNAIL: 72, Column.MODEL: 120, Column.ERROR: 240, Column.PROMPT: 200}


def column_widths(advance: Callable[[str], int]) -> dict[Column, int]:
    """Each column's default width, given `advance(text)`, the pixel width of a text in the table's font."""
    widths = dict(_FIXED)
    for column, text in _WIDEST.items():
        widths[column] = max(advance(text), advance(HEADERS[column])) + _PAD
    return widths


class JobsHeader:
    """Sets up the table's horizontal header and its show/hide menu; the layout is saved with the window."""

    def __init__(self, table: QTableView) -> None:
        self.table = table
        self.header: QHeaderView = table.horizontalHeader()
        self.header.setObjectName("jobsHeader")
        self.header.setStretchLastSection(False)
        self.header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.header.setSectionResizeMode(Column.PROMPT, QHeaderView.ResizeMode.Stretch)
        self.header.setMinimumSectionSize(24)
        self.header.setSectionsMovable(True)
        self.header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.header.customContextMenuRequested.connect(self._on_header_custom_context_menu_requested)
        self.reset()

    def reset(self) -> None:
        """The default layout: widths from the font, the usual columns shown, in their natural order."""
        metrics = self.table.fontMetrics()
        for column, width in column_widths(metrics.horizontalAdvance).items():
            if column is not Column.PROMPT:
                self.header.resizeSection(column, width)
        for column in Column:
            self.header.moveSection(self.header.visualIndex(column), column)
            self.header.setSectionHidden(column, column in HIDDEN_BY_DEFAULT)

    def save_state(self) -> QByteArray:
        """The layout now: widths, order, hidden columns, sort (for `restore`)."""
        return self.header.saveState()

    def restore(self, state: object) -> bool:
        """Apply a layout saved by `QHeaderView.saveState` (False, and the default kept, if it does not fit)."""
        if not isinstance(state, QByteArray) or not self.header.restoreState(state):
            self.reset()
            return False
        if self.header.count() != len(Column) or self.header.isSectionHidden(Column.PROMPT):
            self.reset()
            return False
        self.header.setSectionResizeMode(Column.PROMPT, QHeaderView.ResizeMode.Stretch)
        return True

    def menu(self) -> QMenu:
        """A checkable entry per column (the prompt cannot be hidden), and "Reset columns"."""
        menu = QMenu(self.table)
        for column in Column:
            action = QAction(HEADERS[column], menu, checkable=True)
            action.setChecked(not self.header.isSectionHidden(column))
            action.setEnabled(column not in ALWAYS_SHOWN)
            action.toggled.connect(lambda shown, c=column: self.header.setSectionHidden(c, not shown))
            menu.addAction(action)
        menu.addSeparator()
        reset = QAction("Reset columns", menu)
        reset.triggered.connect(self.reset)
        menu.addAction(reset)
        return menu

    def _on_header_custom_context_menu_requested(self, pos: QPoint) -> None:
        self.menu().popup(self.header.mapToGlobal(pos))
