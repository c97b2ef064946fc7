"""`FileChoiceCombo`: "Automatic" or one of the files ComfyUI reports, with the current choice checked against them.

`file_choice_state` is the decision (pure, tested): a saved file ComfyUI does not list is kept selectable but
marked "not installed" with a warning, so the user sees why jobs fail instead of a silently changed setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from PySide6.QtWidgets import QComboBox, QStyle, QWidget

__all__ = ["AUTOMATIC", "FileChoiceCombo", "FileChoiceState", "file_choice_state"]

AUTOMATIC = "Automatic"


class FileChoiceState(Enum):
    """How a saved file choice stands against what ComfyUI reports."""

    AUTOMATIC = "automatic"  # nothing chosen: the worker picks a fitting file
    INSTALLED = "installed"
    MISSING = "missing"  # ComfyUI listed its files and this one is not among them
    UNKNOWN = "unknown"  # ComfyUI has not reported its files (not running yet)


def file_choice_state(current: str, available: Sequence[str]) -> FileChoiceState:
    """The state of choice `current` ("" = automatic) given ComfyUI's list `available` (empty = not reported)."""
    if not current:
        return FileChoiceState.AUTOMATIC
    if not available:
        return FileChoiceState.UNKNOWN
    return FileChoiceState.INSTALLED if current in available else FileChoiceState.MISSING


_NOTES = {
    FileChoiceState.AUTOMATIC: "",
    FileChoiceState.INSTALLED: "",
    FileChoiceState.MISSING: "not installed in ComfyUI",
    FileChoiceState.UNKNOWN: "ComfyUI has not listed its files yet",
}


class FileChoiceCombo(QComboBox):
    """Item data is the file name ("" for Automatic); the label says when the saved file is not installed."""

    def __init__(self, current: str, available: Sequence[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = file_choice_state(current, available)
        self.addItem(AUTOMATIC, "")
        for name in available:
            self.addItem(name, name)
        if current and current not in available:
            note = _NOTES[self.state]
            warning = self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
            if self.state is FileChoiceState.MISSING:
                self.addItem(warning, f"{current} ({note})", current)
            else:
                self.addItem(current, current)
        self.setCurrentIndex(max(0, self.findData(current)))

    def note(self) -> str:
        """What to say next to the combo about the saved choice ("" when all is well)."""
        return _NOTES[self.state]
