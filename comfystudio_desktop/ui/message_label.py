"""A small label for a validation message under a field, coloured red from the current palette."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from comfystudio_desktop.ui.theme import error_color

__all__ = ["MessageLabel", "with_message"]


class MessageLabel(QLabel):
    """Hidden until `show_message`; follows light/dark palette changes."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._restyling = False
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setTextFormat(Qt.TextFormat.PlainText)
        font = self.font()
        font.setPointSizeF(font.pointSizeF() * 0.92)
        self.setFont(font)
        self._restyle()
        self.hide()

    def show_message(self, text: str) -> None:
        """Show `text` (empty hides the label)."""
        self.setText(text)
        self.setVisible(bool(text))

    def clear_message(self) -> None:
        """Hide the label."""
        self.show_message("")

    def message(self) -> str:
        """The text shown, or "" when hidden."""
        return self.text() if not self.isHidden() else ""

    def changeEvent(self, event: QEvent) -> None:
        """Recolour when the palette changes (e.g. the system switches to dark mode)."""
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and not self._restyling:
            self._restyle()

    def _restyle(self) -> None:
        self._restyling = True
        try:
            palette = self.palette()
            palette.setColor(QPalette.ColorRole.WindowText, error_color(palette))
            self.setPalette(palette)
        finally:
            self._restyling = False


def with_message(widget: QWidget) -> tuple[QWidget, MessageLabel]:
    """`widget` with a `MessageLabel` right under it, in one container for a form row."""
    container = QWidget(widget.parentWidget())
    layout = QVBoxLayout(container)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(2)
    layout.addWidget(widget)
    label = MessageLabel(container)
    layout.addWidget(label)
    return container, label
