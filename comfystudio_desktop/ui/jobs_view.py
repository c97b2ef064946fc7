"""The jobs table: filter bar, QTableView over JobsTableModel, and the actions of its context menu and keys."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QModelIndex, QPoint, Qt, Signal
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLineEdit,
    QMenu,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from comfystudio_desktop.jobs import Job, JobRecord, JobStatus
from comfystudio_desktop.ui.job_delegate import JobDelegate
from comfystudio_desktop.ui.jobs_filter import JobsFilterProxy
from comfystudio_desktop.ui.jobs_header import JobsHeader
from comfystudio_desktop.ui.jobs_model import Column, JobIdRole, JobsTableModel
from comfystudio_desktop.ui.output_drag import start_file_drag
from comfystudio_desktop.worker.job_outputs import output_names

__all__ = ["STATUS_FILTERS", "JobsView"]

STATUS_FILTERS: dict[str, set[JobStatus] | None] = {
    "All jobs": None,
    "Active": {JobStatus.QUEUED, JobStatus.PROCESSING},
    "Finished": {JobStatus.FINISHED},
    "Failed": {JobStatus.FAILED},
    "Cancelled": {JobStatus.CANCELLED},
}


class _JobsTable(QTableView):
    """The table; dragging selected rows drags their output files into other apps."""

    def __init__(self, drag_paths: Callable[[], list[Path]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._drag_paths = drag_paths
        self.setAccessibleName("Jobs")

    def startDrag(self, supportedActions: Qt.DropAction) -> None:  # noqa: N803 - Qt's name
        """Drag the selected jobs' images as files (nothing when none has an image)."""
        start_file_drag(self, self._drag_paths())


class JobsView(QWidget):
    """Shows every job; actions act on the selected rows and are announced as signals."""

    cancel_requested = Signal(list)  # job ids
    retry_requested = Signal(list)  # job ids
    rerun_requested = Signal(list)  # Jobs
    load_requested = Signal(object)  # Job
    open_requested = Signal(str)  # image path
    show_in_folder_requested = Signal(str)  # image path
    selection_changed = Signal(object)  # JobRecord | None

    def __init__(self, model: JobsTableModel, outputs_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.outputs_dir = outputs_dir
        self.menu_extensions: list[Callable[[QMenu], None]] = []  # sections others add to the context menu
        self.proxy = JobsFilterProxy(self)
        self.proxy.setSourceModel(model)
        self.status_filter = QComboBox(self)
        self.status_filter.setAccessibleName("Show")
        self.status_filter.addItems(list(STATUS_FILTERS))
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Filter by prompt, model or seed…")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Filter jobs")
        self.table = _JobsTable(self.drag_paths, self)
        self.table.setObjectName("jobsTable")
        self.table.setModel(self.proxy)
        self.table.setItemDelegate(JobDelegate(self.table))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(Column.CREATED, Qt.SortOrder.DescendingOrder)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.verticalHeader().setDefaultSectionSize(68)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.setDragEnabled(True)
        self.table.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.columns = JobsHeader(self.table)
        bar = QHBoxLayout()
        bar.addWidget(self.status_filter)
        bar.addWidget(self.search, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.table)
        # The selected job ids (None: to be read from the selection model) and the state the actions were last
        # enabled for: events for unselected jobs arrive thousands of times a second and change nothing here.
        self._selected_ids: list[str] | None = None
        self._actions_state: tuple[object, ...] | None = None
        self._make_actions()
        for signal in (self.proxy.rowsRemoved, self.proxy.modelReset, self.proxy.layoutChanged, model.folds_changed):
            signal.connect(self._on_proxy_rows_moved)
        self.status_filter.currentTextChanged.connect(self._on_status_filter_current_text_changed)
        self.search.textChanged.connect(self.proxy.set_text)
        self.table.customContextMenuRequested.connect(self._on_table_custom_context_menu_requested)
        self.table.doubleClicked.connect(self._on_table_double_clicked)
        self.table.selectionModel().selectionChanged.connect(self._on_selection_changed)

    def _make_actions(self) -> None:
        def action(text: str, shortcut: QKeySequence | QKeySequence.StandardKey | str | None, slot: object) -> QAction:
            act = QAction(text, self)
            if shortcut is not None:
                act.setShortcut(QKeySequence(shortcut))
                act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            act.triggered.connect(slot)
            self.table.addAction(act)
            return act

        self.cancel_action = action("Cancel", QKeySequence.StandardKey.Delete, self._on_cancel_action_triggered)
        self.retry_action = action("Retry", "Ctrl+R", self._on_retry_action_triggered)
        self.rerun_action = action("Run again with the same parameters", "Ctrl+Shift+R",
                                   self._on_rerun_action_triggered)
        self.load_action = action("Load parameters into the prompt panel", "Ctrl+L",
                                  self._on_load_action_triggered)
        self.open_action = action("Open image", "Return", self._on_open_action_triggered)
        self.folder_action = action("Show in folder", None, self._on_folder_action_triggered)
        self.copy_seed_action = action("Copy seed", "Ctrl+Shift+C", self._on_copy_seed_action_triggered)
        self.copy_prompt_action = action("Copy prompt", QKeySequence.StandardKey.Copy,
                                         self._on_copy_prompt_action_triggered)
        self.remove_finished_action = action("Remove finished rows", None, self._on_remove_finished_triggered)
        self._update_actions()

    # -- selection -------------------------------------------------------------------------------------------
    def selected_records(self) -> list[JobRecord]:
        """The selected jobs, in view order; a folded batch's row stands for every job of the batch."""
        return [r for job_id in self._selected_job_ids() if (r := self.model.record(job_id)) is not None]

    def selected_rows(self) -> list[JobRecord]:
        """The records of the selected rows as shown (a folded batch's row is its lead's record), in view order."""
        rows = sorted(self.table.selectionModel().selectedRows(), key=lambda i: i.row())
        return [r for index in rows if (r := self.model.record(str(index.data(JobIdRole)))) is not None]

    def select_job(self, job_id: str) -> bool:
        """Select and show a job's row; False if it is not (visibly) in the table."""
        row = self.model.row_of(job_id)
        if row < 0:
            return False
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        if not index.isValid():
            return False
        self.table.selectRow(index.row())
        self.table.scrollTo(index)
        return True

    def reveal_job(self, job_id: str) -> bool:
        """Select a job's row, clearing the filter (and unfolding its batch) first if they hide the row; False if
        the job is not in the table."""
        if self.select_job(job_id):
            return True
        if self.model.row_of(job_id) < 0:
            return False
        if (batch_id := self.model.folds.batch_of(job_id)) is not None:
            self.model.unfold_batch(batch_id)
        self.search.clear()
        self.status_filter.setCurrentIndex(0)  # "All jobs"
        return self.select_job(job_id)

    def output_path(self, record: JobRecord) -> Path | None:
        """The job's (first) output file, if it exists."""
        if record.outputs:
            name = record.outputs[0]
        elif record.image_url.startswith("outputs/"):
            name = record.image_url.removeprefix("outputs/")
        else:
            return None
        path = self.outputs_dir / Path(name).name  # a bare file name: never a path out of the outputs folder
        return path if path.is_file() else None

    def output_paths(self, record: JobRecord) -> list[Path]:
        """Every output file of the job that exists (a batch has several), in order."""
        names = list(record.outputs)
        if not names and record.image_url.startswith("outputs/"):
            # Events carry the first image only; a batch's others follow the worker's naming.
            batch = record.job.batch_size if record.job is not None else 1
            names = output_names(record.job_id, batch) if batch > 1 else [record.image_url.removeprefix("outputs/")]
        paths = [self.outputs_dir / Path(name).name for name in names]  # bare names: never out of the folder
        return [path for path in paths if path.is_file()]

    def drag_paths(self) -> list[Path]:
        """The files a drag of the selected rows carries: every existing output of each selected job."""
        return [path for record in self.selected_records() for path in self.output_paths(record)]

    def _selected_job_ids(self) -> list[str]:
        if self._selected_ids is None:
            rows = sorted(self.table.selectionModel().selectedRows(), key=lambda i: i.row())
            self._selected_ids = self.model.expand_folded(str(index.data(JobIdRole)) for index in rows)
        return self._selected_ids

    def _update_actions(self, *, force: bool = True) -> None:
        records = [r for job_id in self._selected_job_ids() if (r := self.model.record(job_id)) is not None]
        state = tuple((r.job_id, r.status, r.job is not None, r.seed_used, r.image_url, r.outputs) for r in records)
        if not force and state == self._actions_state:
            return
        self._actions_state = state
        statuses = {r.status for r in records}
        one = records[0] if len(records) == 1 else None
        self.cancel_action.setEnabled(bool(statuses & {JobStatus.QUEUED, JobStatus.PROCESSING}))
        self.retry_action.setEnabled(bool(statuses & {JobStatus.FAILED, JobStatus.CANCELLED}))
        self.rerun_action.setEnabled(any(r.job is not None for r in records))
        self.load_action.setEnabled(one is not None and one.job is not None)
        has_image = one is not None and self.output_path(one) is not None
        self.open_action.setEnabled(has_image)
        self.folder_action.setEnabled(has_image)
        self.copy_seed_action.setEnabled(one is not None and (one.seed_used is not None or one.job is not None))
        self.copy_prompt_action.setEnabled(one is not None and one.job is not None)

    def _on_proxy_rows_moved(self) -> None:
        self._selected_ids = None

    def _on_selection_changed(self) -> None:
        self._selected_ids = None
        self._update_actions()
        records = self.selected_rows()
        self.selection_changed.emit(records[0] if len(records) == 1 else None)

    def refresh_actions(self) -> None:
        """Re-evaluate which actions apply (call after the selected jobs changed state); cheap when they did not."""
        self._update_actions(force=False)

    # -- slots -----------------------------------------------------------------------------------------------
    def _on_status_filter_current_text_changed(self, text: str) -> None:
        self.proxy.set_statuses(STATUS_FILTERS.get(text))

    def _on_table_custom_context_menu_requested(self, pos: QPoint) -> None:
        self._update_actions()
        menu = self.context_menu()
        menu.popup(self.table.viewport().mapToGlobal(pos))

    def context_menu(self) -> QMenu:
        """The menu shown on right-click (built fresh so it reflects the selection)."""
        menu = QMenu(self)
        for act in (self.cancel_action, self.retry_action, self.rerun_action, self.load_action):
            menu.addAction(act)
        menu.addSeparator()
        for act in (self.open_action, self.folder_action, self.copy_seed_action, self.copy_prompt_action):
            menu.addAction(act)
        for extend in self.menu_extensions:
            extend(menu)
        menu.addSeparator()
        menu.addAction(self.remove_finished_action)
        return menu

    def _on_table_double_clicked(self, index: QModelIndex) -> None:
        job_id = str(index.data(JobIdRole))
        batch_id = self.model.folds.led_by(job_id)
        if batch_id is not None:
            self.model.unfold_batch(batch_id)  # a folded batch opens up into its rows
            return
        if self.open_action.isEnabled():
            self.open_action.trigger()

    def _on_cancel_action_triggered(self) -> None:
        ids = [r.job_id for r in self.selected_records() if r.status in (JobStatus.QUEUED, JobStatus.PROCESSING)]
        if ids:
            self.cancel_requested.emit(ids)

    def _on_retry_action_triggered(self) -> None:
        ids = [r.job_id for r in self.selected_records() if r.status in (JobStatus.FAILED, JobStatus.CANCELLED)]
        if ids:
            self.retry_requested.emit(ids)

    def _on_rerun_action_triggered(self) -> None:
        jobs: list[Job] = [r.job for r in self.selected_records() if r.job is not None]
        if jobs:
            self.rerun_requested.emit(jobs)

    def _on_load_action_triggered(self) -> None:
        records = self.selected_records()
        if len(records) == 1 and records[0].job is not None:
            self.load_requested.emit(records[0].job)

    def _selected_image(self) -> Path | None:
        records = self.selected_records()
        return self.output_path(records[0]) if len(records) == 1 else None

    def _on_open_action_triggered(self) -> None:
        path = self._selected_image()
        if path is not None:
            self.open_requested.emit(str(path))

    def _on_folder_action_triggered(self) -> None:
        path = self._selected_image()
        if path is not None:
            self.show_in_folder_requested.emit(str(path))

    def _on_copy_seed_action_triggered(self) -> None:
        records = self.selected_records()
        if len(records) == 1:
            record = records[0]
            seed = record.seed_used if record.seed_used is not None else (record.job.seed if record.job else None)
            if seed is not None:
                QGuiApplication.clipboard().setText(str(seed))

    def _on_copy_prompt_action_triggered(self) -> None:
        records = self.selected_records()
        if len(records) == 1 and records[0].job is not None:
            QGuiApplication.clipboard().setText(records[0].job.prompt)

    def _on_remove_finished_triggered(self) -> None:
        self.model.remove_finished()
