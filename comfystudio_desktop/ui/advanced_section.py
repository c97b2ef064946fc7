"""`AdvancedSection`: collapsible sampler overrides (steps, CFG, denoise), each defaulting to the template."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDoubleSpinBox, QFormLayout, QSpinBox, QToolButton, QVBoxLayout, QWidget

from comfystudio_desktop.ui.message_label import MessageLabel, with_message

__all__ = ["DEFAULT_TEXT", "AdvancedSection"]

#: Shown by a spin box at its minimum, which stands for "use the workflow template's value".
DEFAULT_TEXT = "Template default"


class AdvancedSection(QWidget):
    """A header button that shows or hides the overrides; `values()` gives None for "template default"."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.toggle_button = QToolButton(self)
        self.toggle_button.setText("Advanced")
        self.toggle_button.setCheckable(True)
        self.toggle_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle_button.setArrowType(Qt.ArrowType.RightArrow)
        self.toggle_button.setAutoRaise(True)
        self.toggle_button.toggled.connect(self._on_toggle_button_toggled)

        # Each spin box's minimum is one step below the valid range and means "template default".
        self.steps = QSpinBox()
        self.steps.setRange(0, 200)
        self.cfg = QDoubleSpinBox()
        self.cfg.setRange(-0.5, 30.0)
        self.cfg.setSingleStep(0.5)
        self.cfg.setDecimals(1)
        self.denoise = QDoubleSpinBox()
        self.denoise.setRange(-0.05, 1.0)
        self.denoise.setSingleStep(0.05)
        self.denoise.setDecimals(2)
        self.body = QWidget(self)
        form = QFormLayout(self.body)
        form.setContentsMargins(16, 0, 0, 0)
        self._labels: dict[str, MessageLabel] = {}
        for name, label, spin, tip in (
            ("steps", "Steps", self.steps, "Sampling steps (1–200)"),
            ("cfg", "CFG", self.cfg, "Classifier-free guidance scale (0–30)"),
            ("denoise", "Denoise", self.denoise, "How much of the input image to repaint (0–1)"),
        ):
            spin.setParent(self.body)
            spin.setSpecialValueText(DEFAULT_TEXT)
            spin.setToolTip(f"{tip}; lowest value = {DEFAULT_TEXT.lower()}")
            spin.setAccessibleName(label)
            spin.valueChanged.connect(self.changed)
            container, self._labels[name] = with_message(spin)
            form.addRow(label, container)
        self.set_values(None, None, None)
        self.body.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.toggle_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.body)

    def values(self) -> tuple[int | None, float | None, float | None]:
        """(steps, cfg, denoise); None means the template's default."""
        steps = self.steps.value() if self.steps.value() > self.steps.minimum() else None
        cfg = round(self.cfg.value(), 2) if self.cfg.value() > self.cfg.minimum() else None
        denoise = round(self.denoise.value(), 3) if self.denoise.value() > self.denoise.minimum() else None
        return steps, cfg, denoise

    def set_values(self, steps: int | None, cfg: float | None, denoise: float | None) -> None:
        """Show the given overrides (None = template default); open the section if any is set."""
        self.steps.setValue(self.steps.minimum() if steps is None else steps)
        self.cfg.setValue(self.cfg.minimum() if cfg is None else cfg)
        self.denoise.setValue(self.denoise.minimum() if denoise is None else denoise)
        if any(v is not None for v in (steps, cfg, denoise)):
            self.set_expanded(True)

    def fields(self) -> dict[str, tuple[QWidget, MessageLabel]]:
        """Field name -> (input widget, its message label), for showing validation errors."""
        spins: dict[str, QWidget] = {"steps": self.steps, "cfg": self.cfg, "denoise": self.denoise}
        return {name: (spins[name], label) for name, label in self._labels.items()}

    def is_expanded(self) -> bool:
        """True when the overrides are shown."""
        return self.toggle_button.isChecked()

    def set_expanded(self, expanded: bool) -> None:
        """Show or hide the overrides."""
        self.toggle_button.setChecked(expanded)

    def _on_toggle_button_toggled(self, checked: bool) -> None:
        self.toggle_button.setArrowType(Qt.ArrowType.DownArrow if checked else Qt.ArrowType.RightArrow)
        self.body.setVisible(checked)
