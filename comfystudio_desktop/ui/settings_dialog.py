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

from comfystudio_desktop.settings import Settings, SettingsError, save_settings

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

    def __init__(self, settings: Settings, config_file: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(520)
        self._config_file = config_file
        self._original = settings
        self.result_settings: Settings | None = None
        self._errors: dict[str, QLabel] = {}
        self._fields: dict[str, QWidget] = {}

        tabs = QTabWidget(self)
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
        browse = QPushButton("Browse…")
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
        self._row(form, "unet_text_encoder", "UNET text encoder", self._line(s.unet_text_encoder, "template default"),
                  "File in models/text_encoders used with UNET models (e.g. qwen_3_4b.safetensors)")
        self._row(form, "unet_vae", "UNET VAE", self._line(s.unet_vae, "template default"),
                  "File in models/vae used with UNET models (e.g. ae.safetensors)")
        self._row(form, "flux_clip_l", "Flux CLIP-L", self._line(s.flux_clip_l, "template default"))
        port = _spin(QSpinBox(), 0, 65535, s.comfy_port)
        port.setSpecialValueText("any free port")
        self._row(form, "comfy_port", "Port (managed)", port)
        return page

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
        return page

    # -- saving ----------------------------------------------------------------------------------------------
    def collect(self) -> Settings:
        """The settings as edited; raises SettingsError naming the first bad field."""
        f = self._fields

        def text(name: str) -> str:
            widget = f[name]
            assert isinstance(widget, QLineEdit)
            return widget.text().strip()

        def data(name: str) -> str:
            widget = f[name]
            assert isinstance(widget, QComboBox)
            return str(widget.currentData())

        def number(name: str) -> float:
            widget = f[name]
            assert isinstance(widget, QSpinBox | QDoubleSpinBox)
            return widget.value()

        def checked(name: str) -> bool:
            widget = f[name]
            assert isinstance(widget, QCheckBox)
            return widget.isChecked()

        return self._original.with_changes(
            comfy_url=text("comfy_url"), comfy_mode=data("comfy_mode"), comfy_models_dir=text("comfy_models_dir"),
            comfy_main=text("comfy_main"), comfy_python=text("comfy_python"),
            comfy_args=tuple(text("comfy_args").split()), comfy_port=int(number("comfy_port")),
            unet_text_encoder=text("unet_text_encoder"), unet_vae=text("unet_vae"), flux_clip_l=text("flux_clip_l"),
            redis_mode=data("redis_mode"), redis_url=text("redis_url"), job_timeout_s=float(number("job_timeout_s")),
            pipeline_depth=int(number("pipeline_depth")), max_attempts=int(number("max_attempts")),
            storage_dir=text("storage_dir"), output_retention_days=int(number("output_retention_days")),
            input_retention_hours=int(number("input_retention_hours")), notifications=checked("notifications"),
            close_to_tray=checked("close_to_tray"),
        )

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

    def show_error(self, field_name: str, message: str) -> None:
        """Show `message` under the field (and at the bottom, in case the field is on another tab)."""
        label = self._errors.get(field_name)
        if label is not None:
            label.setText(message)
            label.show()
        self.error_label.setText(message)
        self.error_label.show()
