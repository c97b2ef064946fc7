"""`FailurePane`: a failed job's whole error, wrapped and selectable, node by node, with Copy and the fix."""

from __future__ import annotations

from html import escape

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QTextBrowser, QVBoxLayout, QWidget

from comfystudio_desktop.comfy.failure_report import FailureReport, FixAction
from comfystudio_desktop.ui.theme import error_color

__all__ = ["FailurePane"]


class FailurePane(QWidget):
    """Shows one `FailureReport`; "Copy error" copies it, the fix button asks for its `FixAction`."""

    #: The user asked for the choice that fixes the shown failure.
    fix_requested = Signal(FixAction)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.headline = QLabel(self)
        self.headline.setObjectName("failureHeadline")
        self.headline.setWordWrap(True)
        self.headline.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details = QTextBrowser(self)
        self.details.setObjectName("failureDetails")
        self.details.setAccessibleName("Error details")
        self.details.setOpenLinks(False)
        self.details.setLineWrapMode(QTextBrowser.LineWrapMode.WidgetWidth)
        self.copy_button = QPushButton("&Copy error", self)
        self.copy_button.setAccessibleName("Copy error")
        self.fix_button = QPushButton(self)
        self.fix_button.setObjectName("failureFix")
        self.fix_button.hide()
        buttons = QHBoxLayout()
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.fix_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.headline)
        layout.addWidget(self.details, 1)
        layout.addLayout(buttons)
        self.report: FailureReport | None = None
        self.copy_button.clicked.connect(self._on_copy_button_clicked)
        self.fix_button.clicked.connect(self._on_fix_button_clicked)

    def show_report(self, report: FailureReport) -> None:
        """Show `report`: its reason as the headline, its sections below, its fix as a button."""
        self.report = report
        color = error_color(self.palette()).name()
        self.headline.setText(f'<b style="color:{color}">Failed:</b> {escape(report.short)}')
        # Pre-wrapped text keeps ComfyUI's own layout (lists of allowed values) and wraps long lines.
        html = "".join(f"<h4>{escape(section.title)}</h4>"
                       f'<pre style="white-space: pre-wrap">{escape(section.text)}</pre>'
                       for section in report.sections)
        self.details.setHtml(html)
        self.fix_button.setVisible(report.fix is not FixAction.NONE)
        self.fix_button.setText(report.fix.label)
        self.fix_button.setAccessibleName(report.fix.label.rstrip("…") or "Fix")

    def _on_copy_button_clicked(self) -> None:
        if self.report is not None:
            QGuiApplication.clipboard().setText(self.report.copy_text())

    def _on_fix_button_clicked(self) -> None:
        if self.report is not None and self.report.fix is not FixAction.NONE:
            self.fix_requested.emit(self.report.fix)
