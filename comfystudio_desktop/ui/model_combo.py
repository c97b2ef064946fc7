"""`ModelCombo`: the model picker, grouped into UNET and Checkpoints, with type-to-filter.

The item data holds the model id exactly as ComfyUI lists it ("sdxl/juggernaut.safetensors"); the label is
the file name and the folder goes into the tooltip. Group headers and the offline note are disabled rows,
so neither the mouse, the keyboard nor the completer can make them current.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QComboBox, QCompleter, QLineEdit, QStyle, QWidget

__all__ = ["GROUP_ORDER", "ModelCombo", "model_label"]

log = logging.getLogger(__name__)

#: Groups shown first, in this order; any other group follows in the order given.
GROUP_ORDER: tuple[str, ...] = ("UNET", "Checkpoints")
OFFLINE_NOTE = "ComfyUI unreachable — showing models found on disk"

ModelIdRole = Qt.ItemDataRole.UserRole
GroupRole = Qt.ItemDataRole.UserRole + 1
_KindRole = Qt.ItemDataRole.UserRole + 2  # "model", "header" or "note"


def model_label(model_id: str) -> tuple[str, str]:
    """Split a model id into (file name, folder); either separator is accepted."""
    parts = re.split(r"[/\\]", model_id)
    return parts[-1], "/".join(parts[:-1])


class _ModelsOnly(QSortFilterProxyModel):
    """The combo's rows minus headers and notes: what the completer searches."""

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        """Accept model rows only."""
        index = self.sourceModel().index(source_row, 0, source_parent)
        return bool(index.data(_KindRole) == "model")


class ModelCombo(QComboBox):
    """A combo of models grouped by kind, searchable by typing, with an offline state."""

    #: The selected model id changed ("" when none is selected).
    model_changed = Signal(str)
    #: The user asked for the model list to be fetched again.
    refresh_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._items = QStandardItemModel(self)
        self._holders: dict[str, tuple[str, ...]] | None = None  # model → backends, with several backends
        self.setModel(self._items)
        self._line = QLineEdit(self)
        self.setLineEdit(self._line)
        self.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(18)
        self.setMaxVisibleItems(20)
        self._online = True
        self._wanted = ""  # a model asked for before it was listed; selected when it appears
        self._last_row = -1
        self._emitted = ""
        self._line.setPlaceholderText("Type to search models")
        self._line.editingFinished.connect(self._on_line_editing_finished)

        self._filter = _ModelsOnly(self)
        self._filter.setSourceModel(self._items)
        completer = QCompleter(self._filter, self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        completer.setMaxVisibleItems(15)
        self.setCompleter(completer)  # QComboBox maps a chosen completion back through the filter to its row

        warning = self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
        self._offline_action = QAction(warning, f"{OFFLINE_NOTE}. Click to try again.", self)
        self._offline_action.triggered.connect(self.refresh_requested)
        self._line.addAction(self._offline_action, QLineEdit.ActionPosition.TrailingPosition)
        self._offline_action.setVisible(False)  # after addAction: the line edit's button follows later changes only

        self.refresh_action = QAction("Refresh model list", self)
        self.refresh_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Refresh))
        self.refresh_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.refresh_action.triggered.connect(self.refresh_requested)
        self.addAction(self.refresh_action)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)

        self.currentIndexChanged.connect(self._on_self_current_index_changed)
        self.set_models({}, online=True)

    def set_models(self, models: Mapping[str, Sequence[str]], online: bool) -> None:
        """Show `models` ({"UNET": [...], "Checkpoints": [...]}); keep the selection if it still exists.

        `online` False means the list comes from scanning the models folder because ComfyUI is unreachable.
        """
        previous = self.current_model()
        wanted = self._wanted or previous
        self._online = online
        self._offline_action.setVisible(not online)
        self.blockSignals(True)
        try:
            self._rebuild(models)
            row = self._row_of(wanted) if wanted else self._first_model_row()
            self.setCurrentIndex(row)
            self._last_row = row
        finally:
            self.blockSignals(False)
        # A model that vanished (e.g. while ComfyUI restarts) is selected again when it comes back.
        self._wanted = "" if row >= 0 else wanted
        if row < 0 and wanted:
            log.info("Model %s is not listed; no model selected", wanted)
        self.setToolTip(self._tooltip())
        self._emit_if_changed()

    def is_online(self) -> bool:
        """False while the list comes from the disk scan."""
        return self._online

    def models(self) -> list[str]:
        """All listed model ids, in display order."""
        return [self._items.item(r).data(ModelIdRole) for r in range(self._items.rowCount()) if self._is_model(r)]

    def current_model(self) -> str:
        """The selected model id, or "" when none is selected."""
        row = self.currentIndex()
        return str(self.itemData(row, ModelIdRole)) if self._is_model(row) else ""

    def current_group(self) -> str:
        """The group ("UNET", "Checkpoints") of the selected model, or ""."""
        row = self.currentIndex()
        return str(self.itemData(row, GroupRole)) if self._is_model(row) else ""

    def group_of(self, model_id: str) -> str:
        """The group ("UNET", "Checkpoints") `model_id` is listed in, or "" if it is not listed."""
        row = self._row_of(model_id)
        return str(self.itemData(row, GroupRole)) if row >= 0 else ""

    def set_current_model(self, model_id: str) -> bool:
        """Select `model_id`; if it is not listed (yet), remember it for the next `set_models` and return False."""
        row = self._row_of(model_id)
        if row < 0:
            self._wanted = model_id
            return False
        self._wanted = ""
        self.setCurrentIndex(row)
        return True

    def _rebuild(self, models: Mapping[str, Sequence[str]]) -> None:
        self._items.clear()
        if not self._online:
            self._items.appendRow(self._note_item("Offline — models found on disk", italic=True))
        groups = [g for g in GROUP_ORDER if models.get(g)] + [g for g in models if g not in GROUP_ORDER and models[g]]
        for group in groups:
            self._items.appendRow(self._header_item(group))
            names = sorted(dict.fromkeys(models[group]), key=lambda m: (model_label(m)[0].lower(), m))
            clashes = Counter(model_label(m)[0] for m in names)
            for model_id in names:
                self._items.appendRow(self._model_item(model_id, group, clashes))
        if not groups:
            text = "No models found on disk" if not self._online else "No models listed by ComfyUI"
            self._items.appendRow(self._note_item(text, italic=True))
        self._show_holders()

    def set_holders(self, holders: Mapping[str, Sequence[str]]) -> None:
        """Show which backends have each model (several backends configured); a model none has says so."""
        self._holders = {model: tuple(names) for model, names in holders.items()}
        self._show_holders()

    def _show_holders(self) -> None:
        holders = self._holders
        if holders is None:
            return  # one ComfyUI: nothing to say
        for row in range(self._items.rowCount()):
            item = self._items.item(row)
            if item is None or item.data(_KindRole) != "model":
                continue
            _name, folder = model_label(str(item.data(ModelIdRole)))
            names = holders.get(str(item.data(ModelIdRole)), ())
            where = f"Backends: {', '.join(names)}" if names else "No backend has this model now"
            item.setToolTip(f"{f'Folder: {folder}/' if folder else 'Folder: (top level)'}\n{where}")

    def _header_item(self, group: str) -> QStandardItem:
        item = QStandardItem(group)
        item.setFlags(Qt.ItemFlag.NoItemFlags)
        font = item.font()
        font.setBold(True)
        item.setFont(font)
        item.setData("header", _KindRole)
        item.setAccessibleText(f"{group} models")
        return item

    def _note_item(self, text: str, *, italic: bool) -> QStandardItem:
        item = QStandardItem(text)
        item.setFlags(Qt.ItemFlag.NoItemFlags)
        font = item.font()
        font.setItalic(italic)
        item.setFont(font)
        item.setToolTip(OFFLINE_NOTE if not self._online else text)
        item.setData("note", _KindRole)
        return item

    @staticmethod
    def _model_item(model_id: str, group: str, clashes: Counter[str]) -> QStandardItem:
        name, folder = model_label(model_id)
        # Two files of the same name in different folders: say which is which in the label too.
        label = f"{name} ({folder})" if clashes[name] > 1 and folder else name
        item = QStandardItem(label)
        item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        item.setData(model_id, ModelIdRole)
        item.setData(group, GroupRole)
        item.setData("model", _KindRole)
        item.setToolTip(f"Folder: {folder}/" if folder else "Folder: (top level)")
        return item

    def _tooltip(self) -> str:
        current = self.current_model()
        lines = [current] if current else ["No model selected"]
        if not self._online:
            lines.append(OFFLINE_NOTE)
        lines.append("Type to search; F5 or right-click to refresh the list.")
        return "\n".join(lines)

    def _is_model(self, row: int) -> bool:
        return 0 <= row < self._items.rowCount() and self._items.item(row).data(_KindRole) == "model"

    def _row_of(self, model_id: str) -> int:
        for row in range(self._items.rowCount()):
            if self._is_model(row) and self._items.item(row).data(ModelIdRole) == model_id:
                return row
        return -1

    def _first_model_row(self) -> int:
        return next((r for r in range(self._items.rowCount()) if self._is_model(r)), -1)

    def _emit_if_changed(self) -> None:
        current = self.current_model()
        if current != self._emitted:
            self._emitted = current
            self.model_changed.emit(current)

    def _on_self_current_index_changed(self, row: int) -> None:
        if row >= 0 and not self._is_model(row):
            # A header or note became current (e.g. Enter on text equal to "UNET"): undo it.
            self.setCurrentIndex(self._last_row)
            return
        self._last_row = row
        if row >= 0:
            self._wanted = ""
        self.setToolTip(self._tooltip())
        self._emit_if_changed()

    def _on_line_editing_finished(self) -> None:
        """Typed text that names no model: select a unique case-insensitive match, else show the selection."""
        text = self._line.text().strip().lower()
        rows = [r for r in range(self._items.rowCount()) if self._is_model(r) and self.itemText(r).lower() == text]
        if len(rows) == 1:
            self.setCurrentIndex(rows[0])
        row = self.currentIndex()
        self._line.setText(self.itemText(row) if self._is_model(row) else "")
