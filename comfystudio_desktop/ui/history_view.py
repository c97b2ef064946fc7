"""`HistoryView`: search the lasting history (words, model, seed, date, status, favourites) as a table or gallery.

Both views show one `HistoryModel`, so a search, a selection's actions and the stars apply to either. Actions are
announced as signals (the window runs them): star, open, show in folder, load parameters, run again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QModelIndex, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QStackedWidget,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from comfystudio_desktop.jobs import Job, JobStatus
from comfystudio_desktop.queue.history_entry import HistoryEntry
from comfystudio_desktop.ui.gallery_view import GalleryView
from comfystudio_desktop.ui.history_model import EntryRole, HistoryColumn, HistoryModel, SearchDone
from comfystudio_desktop.ui.history_search import Period, SearchError, SearchForm, history_query

__all__ = ["HistoryView", "StarRequest", "output_file"]

_STATUSES: tuple[tuple[str, JobStatus | None], ...] = (
    ("Any status", None), ("Finished", JobStatus.FINISHED), ("Failed", JobStatus.FAILED),
    ("Cancelled", JobStatus.CANCELLED))
_TYPING_PAUSE_MS = 250


@dataclass(frozen=True, slots=True)
class StarRequest:
    """Star (`on`) or unstar an ended job."""

    job_id: str
    on: bool


def output_file(entry: HistoryEntry, outputs_dir: Path) -> Path | None:
    """The entry's first output image in the outputs folder, if it is still there (a bare name: never outside)."""
    name = entry.outputs[0] if entry.outputs else entry.image_url.rpartition("outputs/")[2]
    if not name:
        return None
    path = outputs_dir / Path(name).name
    return path if path.is_file() else None


class HistoryView(QWidget):
    """Search bar over a history table and a gallery of the same results."""

    star_requested = Signal(StarRequest)
    load_requested = Signal(object)  # Job
    rerun_requested = Signal(list)  # Jobs
    open_requested = Signal(str)  # image path
    show_in_folder_requested = Signal(str)  # image path

    def __init__(self, model: HistoryModel, outputs_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.outputs_dir = outputs_dir
        self._build_search_bar()
        self.table = QTableView(self)
        self.table.setObjectName("historyTable")
        self.table.setAccessibleName("History")
        self.table.setModel(model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(40)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)  # 100,000 rows: no sizing
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(HistoryColumn.PROMPT, QHeaderView.ResizeMode.Stretch)
        for column, width in ((HistoryColumn.IMAGE, 48), (HistoryColumn.STAR, 28), (HistoryColumn.MODEL, 140),
                              (HistoryColumn.SEED, 90), (HistoryColumn.STATUS, 80), (HistoryColumn.ENDED, 120)):
            header.resizeSection(column, width)
        self.gallery = GalleryView(model, parent=self)
        self.gallery.setSelectionModel(self.table.selectionModel())
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.table)
        self.stack.addWidget(self.gallery)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._bar)
        layout.addWidget(self.message)
        layout.addWidget(self.stack, 1)
        self._make_actions()
        self._connect()

    def _build_search_bar(self) -> None:
        self.words = QLineEdit(self)
        self.words.setPlaceholderText("Prompt words…")
        self.words.setAccessibleName("Prompt words")
        self.words.setClearButtonEnabled(True)
        self.model_filter = QLineEdit(self)
        self.model_filter.setPlaceholderText("Model")
        self.model_filter.setAccessibleName("Model")
        self.seed_filter = QLineEdit(self)
        self.seed_filter.setPlaceholderText("Seed")
        self.seed_filter.setAccessibleName("Seed")
        self.seed_filter.setMaximumWidth(110)
        self.status_filter = QComboBox(self)
        self.status_filter.setAccessibleName("Status")
        for label, status in _STATUSES:
            self.status_filter.addItem(label, status)
        self.period_filter = QComboBox(self)
        self.period_filter.setAccessibleName("Ended")
        for period in Period:
            self.period_filter.addItem(period.label, period)
        self.favourites_filter = QCheckBox("★ only", self)
        self.favourites_filter.setToolTip("Only favourites (starred jobs are never cleaned up)")
        self.gallery_button = QToolButton(self)
        self.gallery_button.setText("Gallery")
        self.gallery_button.setCheckable(True)
        self.gallery_button.setToolTip("Show the results as a thumbnail grid")
        self.count = QLabel(self)
        self.message = QLabel(self)
        self.message.setObjectName("historyMessage")
        self.message.hide()
        self._typing = QTimer(self)
        self._typing.setSingleShot(True)
        self._typing.setInterval(_TYPING_PAUSE_MS)
        self._bar = QHBoxLayout()
        for widget, stretch in ((self.words, 3), (self.model_filter, 1), (self.seed_filter, 0),
                                (self.status_filter, 0), (self.period_filter, 0), (self.favourites_filter, 0),
                                (self.count, 0), (self.gallery_button, 0)):
            self._bar.addWidget(widget, stretch)

    def _make_actions(self) -> None:
        def action(text: str, shortcut: str | None, slot: object) -> QAction:
            act = QAction(text, self)
            if shortcut:
                act.setShortcut(QKeySequence(shortcut))
                act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            act.triggered.connect(slot)
            self.table.addAction(act)
            self.gallery.addAction(act)
            return act

        self.star_action = action("Star", "Ctrl+D", self._on_star_action_triggered)
        self.open_action = action("Open image", "Return", self._on_open_action_triggered)
        self.folder_action = action("Show in folder", None, self._on_folder_action_triggered)
        self.load_action = action("Load parameters into the prompt panel", "Ctrl+L", self._on_load_action_triggered)
        self.rerun_action = action("Run again", "Ctrl+Shift+R", self._on_rerun_action_triggered)

    def _connect(self) -> None:
        self.words.textChanged.connect(self._typing.start)
        self.model_filter.textChanged.connect(self._typing.start)
        self.seed_filter.textChanged.connect(self._typing.start)
        self.words.returnPressed.connect(self.search)
        self._typing.timeout.connect(self.search)
        self.status_filter.currentIndexChanged.connect(self.search)
        self.period_filter.currentIndexChanged.connect(self.search)
        self.favourites_filter.toggled.connect(self.search)
        self.gallery_button.toggled.connect(self._on_gallery_button_toggled)
        self.model.search_done.connect(self._on_model_search_done)
        for view in (self.table, self.gallery):
            view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
            view.customContextMenuRequested.connect(self._on_view_context_menu_requested)
            view.doubleClicked.connect(self._on_view_double_clicked)
        self.table.selectionModel().selectionChanged.connect(self._update_actions)

    # -- searching -------------------------------------------------------------------------------------------
    def form(self) -> SearchForm:
        """What the search bar holds."""
        status = self.status_filter.currentData()
        period = self.period_filter.currentData()
        return SearchForm(words=self.words.text(), model=self.model_filter.text(), seed=self.seed_filter.text(),
                          status=status if isinstance(status, JobStatus) else None,
                          period=period if isinstance(period, Period) else Period.ANY,
                          favourites=self.favourites_filter.isChecked())

    def search(self) -> None:
        """Run the search the bar describes (or say what is wrong with it)."""
        self._typing.stop()
        try:
            query = history_query(self.form(), now_ms=int(time.time() * 1000))
        except SearchError as exc:
            self.message.setText(str(exc))
            self.message.show()
            return
        self.message.hide()
        self.count.setText("Searching…")
        self.model.set_query(query)

    def _on_model_search_done(self, done: SearchDone) -> None:
        about = "" if done.exact else "about "
        self.count.setText(f"{about}{done.total:,} job{'s' if done.total != 1 else ''}")
        self._update_actions()

    # -- selection and actions -------------------------------------------------------------------------------
    def selected_entries(self) -> list[HistoryEntry]:
        """The selected rows' entries that are read, top to bottom."""
        rows = sorted({i.row() for i in self.table.selectionModel().selectedIndexes()})
        return [e for e in (self.model.entry(r) for r in rows) if e is not None]

    def select_job(self, job_id: str) -> bool:
        """Select a job's row if its page is read; False otherwise."""
        row = self.model.row_of(job_id)
        if row < 0:
            return False
        self.table.selectRow(row)
        return True

    def _one(self) -> HistoryEntry | None:
        entries = self.selected_entries()
        return entries[0] if len(entries) == 1 else None

    def _update_actions(self) -> None:
        one = self._one()
        entries = self.selected_entries()
        self.star_action.setEnabled(bool(entries))
        self.star_action.setText("Unstar" if entries and all(e.favourite for e in entries) else "Star")
        has_image = one is not None and output_file(one, self.outputs_dir) is not None
        self.open_action.setEnabled(has_image)
        self.folder_action.setEnabled(has_image)
        self.load_action.setEnabled(one is not None)
        self.rerun_action.setEnabled(bool(entries))

    def context_menu(self) -> QMenu:
        """The menu shown on right-click."""
        self._update_actions()
        menu = QMenu(self)
        for act in (self.star_action, self.open_action, self.folder_action):
            menu.addAction(act)
        menu.addSeparator()
        for act in (self.load_action, self.rerun_action):
            menu.addAction(act)
        return menu

    def _on_view_context_menu_requested(self, pos: QPoint) -> None:
        view = self.gallery if self.stack.currentWidget() is self.gallery else self.table
        self.context_menu().popup(view.viewport().mapToGlobal(pos))

    def _on_view_double_clicked(self, index: QModelIndex) -> None:
        if index.column() == HistoryColumn.STAR and self.stack.currentWidget() is self.table:
            entry = index.data(EntryRole)
            if isinstance(entry, HistoryEntry):
                self.star_requested.emit(StarRequest(entry.job_id, not entry.favourite))
            return
        if self.open_action.isEnabled():
            self.open_action.trigger()

    def _on_star_action_triggered(self) -> None:
        entries = self.selected_entries()
        on = not all(e.favourite for e in entries)
        for entry in entries:
            if entry.favourite != on:
                self.star_requested.emit(StarRequest(entry.job_id, on))

    def _on_open_action_triggered(self) -> None:
        one = self._one()
        path = output_file(one, self.outputs_dir) if one is not None else None
        if path is not None:
            self.open_requested.emit(str(path))

    def _on_folder_action_triggered(self) -> None:
        one = self._one()
        path = output_file(one, self.outputs_dir) if one is not None else None
        if path is not None:
            self.show_in_folder_requested.emit(str(path))

    def _on_load_action_triggered(self) -> None:
        one = self._one()
        if one is not None:
            self.load_requested.emit(one.job)

    def _on_rerun_action_triggered(self) -> None:
        jobs: list[Job] = [e.job for e in self.selected_entries()]
        if jobs:
            self.rerun_requested.emit(jobs)

    def _on_gallery_button_toggled(self, on: bool) -> None:
        self.stack.setCurrentWidget(self.gallery if on else self.table)
