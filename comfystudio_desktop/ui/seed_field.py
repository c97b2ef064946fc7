"""`SeedField`: a seed entry for the full 64-bit range (QSpinBox stops at 2**31-1), a Random toggle and Reuse last."""

from __future__ import annotations

import secrets

from PySide6.QtCore import QRegularExpression, Signal
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLineEdit, QToolButton, QWidget

from comfystudio_desktop.jobs import SEED_MAX, JobValidationError

__all__ = ["SEED_LIMIT", "SeedField"]

#: Highest seed accepted: ComfyUI's (and `Job`'s) limit, so any seed a worker reports can be reused.
SEED_LIMIT = SEED_MAX
#: Fresh seeds offered by the field stay below 2**63 so they survive any signed 64-bit store.
_FRESH_LIMIT = 2**63


class SeedField(QWidget):
    """Seed entry; `seed()` is -1 while Random is checked."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._last_seed: int | None = None
        self.edit = QLineEdit(self)
        self.edit.setValidator(QRegularExpressionValidator(QRegularExpression(r"\d{0,20}"), self.edit))
        self.edit.setPlaceholderText("seed")
        self.edit.setAccessibleName("Seed")
        self.edit.setToolTip(f"A whole number from 0 to {SEED_LIMIT}")
        self.edit.setMinimumWidth(self.edit.fontMetrics().horizontalAdvance("0" * 12))
        self.random_check = QCheckBox("Random", self)
        self.random_check.setToolTip("Pick a new seed for every job")
        self.random_check.setChecked(True)
        self.reuse_button = QToolButton(self)
        self.reuse_button.setText("Reuse last")
        self.reuse_button.setToolTip("No finished job yet")
        self.reuse_button.setEnabled(False)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.random_check)
        layout.addWidget(self.reuse_button)
        self.edit.setEnabled(False)
        self.edit.textEdited.connect(self.changed)
        self.random_check.toggled.connect(self._on_random_check_toggled)
        self.reuse_button.clicked.connect(self._on_reuse_button_clicked)
        self.setFocusProxy(self.edit)

    def seed(self) -> int:
        """-1 for random, else the typed seed; raise `JobValidationError("seed", ...)` if it is not usable."""
        if self.random_check.isChecked():
            return -1
        text = self.edit.text().strip()
        if not text:
            raise JobValidationError("seed", "is empty: type a number or tick Random")
        if not (text.isascii() and text.isdigit()):
            raise JobValidationError("seed", f"must be a whole number from 0 to {SEED_LIMIT}")
        value = int(text)
        if value > SEED_LIMIT:
            raise JobValidationError("seed", f"must be at most {SEED_LIMIT}")
        return value

    def set_seed(self, seed: int) -> None:
        """Show `seed`; -1 ticks Random."""
        if seed < 0:
            self.random_check.setChecked(True)
            return
        self.edit.setText(str(seed))
        self.random_check.setChecked(False)

    def set_last_seed(self, seed: int | None) -> None:
        """Remember the seed of the last finished job for "Reuse last"."""
        self._last_seed = seed
        self.reuse_button.setEnabled(seed is not None)
        self.reuse_button.setToolTip(f"Use the last job's seed ({seed})" if seed is not None else "No finished job yet")

    def _on_random_check_toggled(self, checked: bool) -> None:
        self.edit.setEnabled(not checked)
        if not checked and not self.edit.text():
            self.edit.setText(str(secrets.randbelow(_FRESH_LIMIT)))
        if not checked:
            self.edit.setFocus()
            self.edit.selectAll()
        self.changed.emit()

    def _on_reuse_button_clicked(self) -> None:
        if self._last_seed is not None:
            self.set_seed(self._last_seed)
            self.changed.emit()
