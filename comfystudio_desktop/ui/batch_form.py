"""The prompt panel's batch parts: a prompt box that takes dropped prompt files, checkable models, and the
"Jobs" row (one prompt per line, how many seeds, and a live count of the jobs Generate will queue).

The widgets only collect values; `batch_plan` (Qt-free) turns them into a plan and `prompt_lists` reads files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent, QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPlainTextEdit,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
    QWidgetAction,
)

from comfystudio_desktop.batch_expansion import MAX_BATCH_JOBS
from comfystudio_desktop.prompt_lists import PROMPT_FILE_SUFFIXES
from comfystudio_desktop.ui.model_combo import GROUP_ORDER, model_label

__all__ = ["BatchRow", "ModelChecks", "PromptEdit", "dropped_prompt_file"]

_MODEL_ROLE = Qt.ItemDataRole.UserRole


def dropped_prompt_file(event: QDropEvent | QDragEnterEvent | QDragMoveEvent) -> Path | None:
    """The one local .txt/.csv file being dragged, or None (anything else is ordinary text to drop)."""
    mime = event.mimeData()
    if not mime.hasUrls():
        return None
    urls = mime.urls()
    if len(urls) != 1 or not urls[0].isLocalFile():
        return None
    path = Path(urls[0].toLocalFile())
    return path if path.suffix.lower() in PROMPT_FILE_SUFFIXES else None


class PromptEdit(QPlainTextEdit):
    """The prompt box; a .txt or .csv file dropped on it is announced (not pasted as its path)."""

    file_dropped = Signal(Path)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        """Accept a prompt file; leave anything else to the text box."""
        if dropped_prompt_file(event) is not None:
            event.acceptProposedAction()
            return
        super().dragEnterEvent(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        """Keep accepting a prompt file wherever it moves over the box."""
        if dropped_prompt_file(event) is not None:
            event.acceptProposedAction()
            return
        super().dragMoveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        """A prompt file: emit `file_dropped`; anything else: the text box's own drop."""
        path = dropped_prompt_file(event)
        if path is None:
            super().dropEvent(event)
            return
        event.acceptProposedAction()
        self.file_dropped.emit(path)


class ModelChecks(QToolButton):
    """"Every checked model": a button whose popup lists the models, grouped as in the model combo, to check."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.setAccessibleName("Models for a batch")
        menu = QMenu(self)
        self.list = QListWidget(menu)  # a child of the popup: never part of the window's Tab chain
        self.list.setAccessibleName("Checked models")
        self.list.setMinimumWidth(260)
        holder = QWidgetAction(menu)  # a list in the popup: checking a model keeps it open for the next one
        holder.setDefaultWidget(self.list)
        menu.addAction(holder)
        menu.addSeparator()
        menu.addAction("Uncheck all", self.clear_checks)
        self.setMenu(menu)
        self.list.itemChanged.connect(self._on_list_item_changed)
        self._show_count()

    def set_models(self, models: Mapping[str, Sequence[str]]) -> None:
        """List `models` by group (UNET, Checkpoints, …); models still listed stay checked."""
        kept = set(self.checked_models())
        self.list.blockSignals(True)
        try:
            self.list.clear()
            groups = [g for g in GROUP_ORDER if models.get(g)] + [g for g in models if g not in GROUP_ORDER
                                                                   and models[g]]
            for group in groups:
                header = QListWidgetItem(group, self.list)
                header.setFlags(Qt.ItemFlag.NoItemFlags)
                font = QFont(header.font())
                font.setBold(True)
                header.setFont(font)
                for model_id in sorted(dict.fromkeys(models[group]), key=lambda m: (model_label(m)[0].lower(), m)):
                    item = QListWidgetItem(model_label(model_id)[0], self.list)
                    item.setData(_MODEL_ROLE, model_id)
                    item.setToolTip(model_id)
                    item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
                    item.setCheckState(Qt.CheckState.Checked if model_id in kept else Qt.CheckState.Unchecked)
        finally:
            self.list.blockSignals(False)
        self._show_count()
        self.changed.emit()

    def checked_models(self) -> list[str]:
        """The checked model ids, in list order."""
        return [str(item.data(_MODEL_ROLE)) for item in self._model_items()
                if item.checkState() == Qt.CheckState.Checked]

    def set_checked(self, model_ids: Sequence[str]) -> None:
        """Check exactly `model_ids` (those listed)."""
        wanted = set(model_ids)
        self.list.blockSignals(True)
        try:
            for item in self._model_items():
                checked = str(item.data(_MODEL_ROLE)) in wanted
                item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
        finally:
            self.list.blockSignals(False)
        self._show_count()
        self.changed.emit()

    def clear_checks(self) -> None:
        """Uncheck every model: Generate uses the model chosen in the combo."""
        self.set_checked(())

    def _model_items(self) -> list[QListWidgetItem]:
        items = (self.list.item(row) for row in range(self.list.count()))
        return [item for item in items if item.data(_MODEL_ROLE) is not None]

    def _show_count(self) -> None:
        count = len(self.checked_models())
        self.setText(f"{count} checked" if count else "Batch…")
        self.setToolTip(f"Generate queues one job per checked model ({count} checked)" if count else
                        "Check several models to queue the same job for each of them")

    def _on_list_item_changed(self, _item: QListWidgetItem) -> None:
        self._show_count()
        self.changed.emit()


class BatchRow(QWidget):
    """"One prompt per line", the number of seeds, and the live count of the jobs Generate will queue."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.per_line_check = QCheckBox("One prompt per line", self)
        self.per_line_check.setToolTip("Each line of the prompt box is a job of its own (a dropped .txt or .csv "
                                       "file fills the box this way); {red|green} in a prompt makes one per choice")
        self.seeds_spin = QSpinBox(self)
        self.seeds_spin.setRange(1, MAX_BATCH_JOBS)
        self.seeds_spin.setPrefix("× ")
        self.seeds_spin.setSuffix(" seeds")
        self.seeds_spin.setAccessibleName("Seeds per prompt")
        self.seeds_spin.setToolTip("Run each prompt with this many seeds, counting up from the seed below "
                                   "(with Random, each job picks its own)")
        self.preview = QLabel(self)
        self.preview.setAccessibleName("Jobs to queue")
        controls = QHBoxLayout()
        controls.setContentsMargins(0, 0, 0, 0)
        controls.addWidget(self.per_line_check)
        controls.addStretch(1)
        controls.addWidget(self.seeds_spin)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(controls)
        layout.addWidget(self.preview)
        self.per_line_check.toggled.connect(self.changed)
        self.seeds_spin.valueChanged.connect(self.changed)

    def per_line(self) -> bool:
        """Whether each line of the prompt box is a prompt of its own."""
        return self.per_line_check.isChecked()

    def seed_count(self) -> int:
        """How many seeds each prompt runs with."""
        return self.seeds_spin.value()

    def show_preview(self, text: str) -> None:
        """The count of jobs ("6 jobs · 2 models × 3 prompts"), or "" while the form cannot say."""
        self.preview.setText(text)
