"""The settings dialog: edits the typed Settings, validates them, and says what is wrong next to the field."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from comfystudio_desktop.comfy.unet_parts import PartLists
from comfystudio_desktop.settings import Settings, SettingsError, parse_setting_value, save_settings
from comfystudio_desktop.ui.file_choice_combo import FileChoiceCombo

__all__ = ["SettingsDialog"]


SpinT = TypeVar("SpinT", QSpinBox, QDoubleSpinBox)


def _spin(box: SpinT, low: float, high: float, value: float, suffix: str = "") -> SpinT:
    """A spin box with its range, value and unit set."""
    box.setRange(low, high)  # type: ignore[arg-type]
    box.setValue(value)  # type: ignore[arg-type]
    box.setSuffix(suffix)
    return box


class SettingsDialog(QDialog):
    """Edit and save settings; `result_settings` holds what was saved after `accept()`."""

    def __init__(self, settings: Settings, config_file: Path, parent: QWidget | None = None, *,
                 part_lists: PartLists | None = None) -> None:
        super().__init__(parent)
        self._part_lists = part_lists or PartLists()
        self.setWindowTitle("Settings")
        self.setMinimumWidth(520)
        self._config_file = config_file
        self._original = settings
        self.result_settings: Settings | None = None
        self._errors: dict[str, QLabel] = {}
        self._fields: dict[str, QWidget] = {}

        self.tabs = tabs = QTabWidget(self)
        tabs.tabBar().setAccessibleName("Settings pages")
        tabs.addTab(self._comfy_tab(settings), "ComfyUI")
        tabs.addTab(self._queue_tab(settings), "Queue")
        tabs.addTab(self._storage_tab(settings), "Storage")
        tabs.addTab(self._desktop_tab(settings), "Desktop")
        self.error_label = QLabel(self)
        self.error_label.setObjectName("settingsError")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: palette(bright-text); background: #b3261e; padding: 4px;")
        self.error_label.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._on_buttons_accepted)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(tabs)
        layout.addWidget(self.error_label)
        layout.addWidget(buttons)

    # -- tabs ------------------------------------------------------------------------------------------------
    def _form(self) -> tuple[QWidget, QFormLayout]:
        page = QWidget(self)
        return page, QFormLayout(page)

    def _row(self, form: QFormLayout, name: str, label: str, widget: QWidget, tip: str = "") -> None:
        widget.setObjectName(name)
        widget.setAccessibleName(label or (widget.text() if isinstance(widget, QCheckBox) else name))
        if tip:
            widget.setToolTip(tip)
        error = QLabel(self)
        error.setObjectName(f"{name}Error")
        error.setStyleSheet("color: #d93025;")
        error.hide()
        box = QVBoxLayout()
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(widget)
        box.addWidget(error)
        form.addRow(label, box)
        self._fields[name] = widget
        self._errors[name] = error

    def _line(self, value: str, placeholder: str = "") -> QLineEdit:
        edit = QLineEdit(value)
        edit.setPlaceholderText(placeholder)
        return edit

    def _path_row(self, form: QFormLayout, name: str, label: str, value: str, *, folder: bool) -> None:
        edit = self._line(value, "not set")
        edit.setAccessibleName(label)
        browse = QPushButton("Browse…")
        browse.setAccessibleName(f"Browse for {label}")
        browse.clicked.connect(lambda: self._browse(edit, folder))
        holder = QWidget(self)
        row = QHBoxLayout(holder)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(edit, 1)
        row.addWidget(browse)
        self._row(form, name, label, holder)
        self._fields[name] = edit

    def _browse(self, edit: QLineEdit, folder: bool) -> None:
        if folder:
            chosen = QFileDialog.getExistingDirectory(self, "Choose a folder", edit.text())
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, "Choose a file", edit.text())
        if chosen:
            edit.setText(chosen)

    def _comfy_tab(self, s: Settings) -> QWidget:
        page, form = self._form()
        self._row(form, "comfy_url", "ComfyUI URL", self._line(s.comfy_url, "http://127.0.0.1:8188"))
        mode = QComboBox()
        mode.addItem("External (only watch a running ComfyUI)", "external")
        mode.addItem("Managed (start and supervise ComfyUI)", "managed")
        mode.setCurrentIndex(max(0, mode.findData(s.comfy_mode)))
        self._row(form, "comfy_mode", "Mode", mode)
        self._path_row(form, "comfy_models_dir", "Models folder", s.comfy_models_dir, folder=True)
        self._path_row(form, "comfy_main", "main.py (managed)", s.comfy_main, folder=False)
        self._path_row(form, "comfy_python", "Python (managed)", s.comfy_python, folder=False)
        self._row(form, "comfy_args", "Extra arguments", self._line(" ".join(s.comfy_args), "--lowvram"))
        lists = self._part_lists
        self._file_row(form, "unet_text_encoder", "UNET text encoder",
                       FileChoiceCombo(s.unet_text_encoder, lists.text_encoders),
                       "File in models/text_encoders used with UNET models; Automatic picks one that fits the model")
        self._file_row(form, "unet_vae", "UNET VAE", FileChoiceCombo(s.unet_vae, lists.vaes),
                       "File in models/vae used with UNET models; Automatic picks one that fits the model")
        self._file_row(form, "flux_clip_l", "Flux CLIP-L", FileChoiceCombo(s.flux_clip_l, lists.text_encoders),
                       "The CLIP-L file Flux-style UNET models load beside their T5 encoder")
        port = _spin(QSpinBox(), 0, 65535, s.comfy_port)
        port.setSpecialValueText("any free port")
        self._row(form, "comfy_port", "Port (managed)", port)
        return page

    def _file_row(self, form: QFormLayout, name: str, label: str, combo: FileChoiceCombo, tip: str) -> None:
        self._row(form, name, label, combo, tip)
        note = combo.note()
        if note:  # a warning that stays: the saved file is not (known to be) installed
            self.show_error(name, note, summary=False)

    def _queue_tab(self, s: Settings) -> QWidget:
        page, form = self._form()
        mode = QComboBox()
        mode.addItem("Embedded (the app's own redis-server)", "embedded")
        mode.addItem("External Redis", "external")
        mode.setCurrentIndex(max(0, mode.findData(s.redis_mode)))
        self._row(form, "redis_mode", "Redis", mode)
        self._row(form, "redis_url", "External Redis URL", self._line(s.redis_url, "redis://:password@127.0.0.1:6379/0"))
        self._row(form, "job_timeout_s", "Job timeout", _spin(QDoubleSpinBox(), 1, 86400, s.job_timeout_s, " s"))
        self._row(form, "pipeline_depth", "Pipeline depth", _spin(QSpinBox(), 1, 8, s.pipeline_depth),
                  "Jobs kept submitted to ComfyUI at once, so the GPU never waits for uploads")
        self._row(form, "max_attempts", "Attempts before quarantine", _spin(QSpinBox(), 1, 100, s.max_attempts))
        return page

    def _storage_tab(self, s: Settings) -> QWidget:
        page, form = self._form()
        self._path_row(form, "storage_dir", "Storage folder", s.storage_dir, folder=True)
        self._row(form, "output_retention_days", "Keep outputs",
                  _spin(QSpinBox(), 1, 3650, s.output_retention_days, " days"))
        self._row(form, "input_retention_hours", "Keep inputs",
                  _spin(QSpinBox(), 1, 8760, s.input_retention_hours, " hours"))
        return page

    def _desktop_tab(self, s: Settings) -> QWidget:
        page, form = self._form()
        notifications = QCheckBox("Notify when a job finishes or fails")
        notifications.setChecked(s.notifications)
        self._row(form, "notifications", "", notifications)
        tray = QCheckBox("Closing the window keeps the app running in the tray")
        tray.setChecked(s.close_to_tray)
        self._row(form, "close_to_tray", "", tray)
        theme = QComboBox()
        theme.addItem("Follow the system", "system")
        theme.addItem("Light", "light")
        theme.addItem("Dark", "dark")
        theme.setCurrentIndex(max(0, theme.findData(s.theme)))
        self._row(form, "theme", "Theme", theme)
        return page

    # -- saving ----------------------------------------------------------------------------------------------
    def collect(self) -> Settings:
        """The settings as edited; raises SettingsError naming the first bad field.

        Each field's text goes through `parse_setting_value`, the parser `config set` uses, so the dialog and
        the command line accept and refuse the same values with the same messages.
        """
        values = {name: parse_setting_value(name, self._field_text(widget)) for name, widget in self._fields.items()}
        return self._original.with_changes(**values)

    @staticmethod
    def _field_text(widget: QWidget) -> str:
        if isinstance(widget, QLineEdit):
            return widget.text()
        if isinstance(widget, QComboBox):
            return str(widget.currentData())
        if isinstance(widget, QCheckBox):
            return "true" if widget.isChecked() else "false"
        if isinstance(widget, QSpinBox):
            return str(widget.value())
        assert isinstance(widget, QDoubleSpinBox)
        return repr(widget.value())

    def _on_buttons_accepted(self) -> None:
        for label in self._errors.values():
            label.hide()
        try:
            settings = self.collect()
        except SettingsError as exc:
            self.show_error(exc.field, str(exc))
            return
        save_settings(self._config_file, settings)
        self.result_settings = settings
        self.accept()

    def show_error(self, field_name: str, message: str, *, summary: bool = True) -> None:
        """Show `message` under the field (and at the bottom, in case the field is on another tab)."""
        label = self._errors.get(field_name)
        if label is not None:
            label.setText(message)
            label.show()
        if summary:
            self.error_label.setText(message)
            self.error_label.show()

    def focus_field(self, field_name: str) -> bool:
        """Show the tab holding a field and put the keyboard focus on it; False for an unknown field."""
        widget = self._fields.get(field_name)
        if widget is None:
            return False
        for index in range(self.tabs.count()):
            page = self.tabs.widget(index)
            if page is not None and page.isAncestorOf(widget):
                self.tabs.setCurrentIndex(index)
        widget.setFocus()
        return True
