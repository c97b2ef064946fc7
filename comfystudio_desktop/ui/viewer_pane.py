"""The viewer: live preview frames of the running job, the selected job's images (a strip for a batch, zoomable),
or a failed job's whole error."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QImage, QImageReader, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from comfystudio_desktop.comfy.failure_report import FailureReport
from comfystudio_desktop.ui.failure_pane import FailurePane
from comfystudio_desktop.ui.image_canvas import ImageCanvas

__all__ = ["ViewerPane"]

_MAX_DECODE_SIDE = 2048  # large outputs are decoded scaled down: the pane never needs more
_STRIP_ICON = 48
_HINT = "Select a job to see its image; running jobs show a live preview here."


def read_image(path: Path) -> tuple[QImage, str]:
    """The image at `path` decoded at most 2048 px on its long side, and the reader's error ("" if none)."""
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    size = reader.size()
    if size.isValid() and max(size.width(), size.height()) > _MAX_DECODE_SIDE:
        reader.setScaledSize(size.scaled(_MAX_DECODE_SIDE, _MAX_DECODE_SIDE, Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    return image, "" if not image.isNull() else reader.errorString()


class ViewerPane(QWidget):
    """An image (fit / 100 % / wheel zoom) with a caption and a strip of the batch, or a failure report."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas = ImageCanvas(self)
        self.canvas.setMinimumSize(QSize(160, 160))
        self.image_label = self.canvas.label
        self.failure = FailurePane(self)
        self.pages = QStackedWidget(self)
        self.pages.addWidget(self.canvas)
        self.pages.addWidget(self.failure)
        self.strip = QListWidget(self)
        self.strip.setObjectName("viewerStrip")
        self.strip.setAccessibleName("Images of the batch")
        self.strip.setViewMode(QListWidget.ViewMode.IconMode)
        self.strip.setFlow(QListWidget.Flow.LeftToRight)
        self.strip.setWrapping(False)
        self.strip.setIconSize(QSize(_STRIP_ICON, _STRIP_ICON))
        self.strip.setGridSize(QSize(_STRIP_ICON + 8, _STRIP_ICON + 8))
        self.strip.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.strip.setFixedHeight(_STRIP_ICON + 12 + 2 * self.strip.frameWidth()
                                  + self.strip.horizontalScrollBar().sizeHint().height())
        self.strip.setMovement(QListWidget.Movement.Static)
        self.strip.hide()
        self.caption = QLabel(self)
        self.caption.setObjectName("viewerCaption")
        self.caption.setWordWrap(True)
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.fit_button = QPushButton("&Fit", self)
        self.fit_button.setAccessibleName("Fit image to pane")
        self.fit_button.setCheckable(True)
        self.fit_button.setChecked(True)
        self.actual_button = QPushButton("&100 %", self)
        self.actual_button.setAccessibleName("Show image at 100 percent")
        bar = QHBoxLayout()
        bar.addWidget(self.caption, 1)
        bar.addWidget(self.fit_button)
        bar.addWidget(self.actual_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.pages, 1)
        layout.addWidget(self.strip)
        layout.addLayout(bar)
        self._paths: list[Path] = []
        self._caption = ""
        self.shown_job = ""
        self.showing_preview = False
        self.fit_button.clicked.connect(self._on_fit_button_clicked)
        self.actual_button.clicked.connect(self._on_actual_button_clicked)
        self.canvas.zoom_changed.connect(self._on_canvas_zoom_changed)
        self.strip.currentRowChanged.connect(self._on_strip_current_row_changed)
        self.clear()

    def clear(self, text: str = _HINT) -> None:
        """Show nothing but a hint."""
        self.shown_job = ""
        self.showing_preview = False
        self._set_paths([])
        self.pages.setCurrentWidget(self.canvas)
        self.canvas.set_text(text)
        self.caption.clear()
        self._enable_zoom(False)

    def show_preview(self, job_id: str, data: bytes, caption: str) -> bool:
        """Show one preview frame (JPEG/PNG bytes); False if it cannot be decoded."""
        image = QImage.fromData(data)
        if image.isNull():
            return False
        if self.shown_job != job_id or not self.showing_preview:
            self._set_paths([])
        self.shown_job, self.showing_preview = job_id, True
        self.pages.setCurrentWidget(self.canvas)
        self.canvas.set_image(image, None)
        self.caption.setText(caption)
        self._enable_zoom(True)
        return True

    def show_files(self, job_id: str, paths: Sequence[Path], caption: str) -> bool:
        """Show a job's images: the first one large, all of them in a strip when there are several."""
        if not paths:
            self.clear()
            return False
        self.shown_job, self.showing_preview = job_id, False
        self._caption = caption
        self._set_paths(list(paths))
        return self._show_index(0)

    def show_failure(self, job_id: str, report: FailureReport) -> None:
        """Show a failed job's whole error (wrapped, selectable) with Copy and its fix."""
        self.shown_job, self.showing_preview = job_id, False
        self._set_paths([])
        self.failure.show_report(report)
        self.pages.setCurrentWidget(self.failure)
        self.caption.clear()
        self._enable_zoom(False)

    def _set_paths(self, paths: list[Path]) -> None:
        self._paths = paths
        self.strip.blockSignals(True)
        self.strip.clear()
        if len(paths) > 1:
            for number, path in enumerate(paths, 1):
                pixmap = QPixmap.fromImage(_thumbnail(path))
                icon = QIcon(pixmap)
                icon.addPixmap(pixmap, QIcon.Mode.Selected)  # not tinted by the highlight: the colours are the point
                item = QListWidgetItem(icon, "")
                item.setToolTip(path.name)
                item.setData(Qt.ItemDataRole.AccessibleTextRole, f"Image {number} of {len(paths)}")
                self.strip.addItem(item)
            self.strip.setCurrentRow(0)
        self.strip.blockSignals(False)
        self.strip.setVisible(len(paths) > 1)

    def _show_index(self, index: int) -> bool:
        path = self._paths[index]
        image, error = read_image(path)
        self.pages.setCurrentWidget(self.canvas)
        if image.isNull():
            self.canvas.set_text(f"Cannot show {path.name}: {error}")
            self._enable_zoom(False)
            return False
        self.canvas.set_image(image, path)
        count = len(self._paths)
        self.caption.setText(self._caption if count == 1 else f"{path.name} ({index + 1} of {count})")
        self._enable_zoom(True)
        return True

    def _enable_zoom(self, enabled: bool) -> None:
        self.fit_button.setEnabled(enabled)
        self.actual_button.setEnabled(enabled)

    def _on_fit_button_clicked(self) -> None:
        self.canvas.fit()

    def _on_actual_button_clicked(self) -> None:
        self.canvas.set_zoom(1.0)

    def _on_canvas_zoom_changed(self, zoom: float | None) -> None:
        self.fit_button.setChecked(zoom is None)

    def _on_strip_current_row_changed(self, row: int) -> None:
        if 0 <= row < len(self._paths):
            self._show_index(row)


def _thumbnail(path: Path) -> QImage:
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    size = reader.size()
    if size.isValid():
        reader.setScaledSize(size.scaled(_STRIP_ICON * 2, _STRIP_ICON * 2, Qt.AspectRatioMode.KeepAspectRatio))
    return reader.read()
