"""`ImageCanvas`: one image that fits the pane or shows at a zoom (100 %, wheel), and drags out as its file."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QImage, QMouseEvent, QPixmap, QResizeEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QLabel, QScrollArea, QSizePolicy, QWidget

from comfystudio_desktop.ui.output_drag import start_file_drag

__all__ = ["MAX_ZOOM", "MIN_ZOOM", "ImageCanvas", "wheel_zoom"]

MIN_ZOOM, MAX_ZOOM = 0.05, 8.0
_WHEEL_STEP = 1.25  # per notch (120 eighths of a degree)


def wheel_zoom(zoom: float, angle_delta: int) -> float:
    """The zoom after a wheel turn of `angle_delta` (eighths of a degree), kept within MIN_ZOOM … MAX_ZOOM."""
    return max(MIN_ZOOM, min(MAX_ZOOM, zoom * float(_WHEEL_STEP ** (angle_delta / 120))))


class ImageCanvas(QScrollArea):
    """Shows an image fitted (the default) or at `zoom`; a left-drag drags the shown file into other apps."""

    #: The zoom changed: the factor shown, or None when the image fits the pane.
    zoom_changed = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel(self)
        self.label.setObjectName("viewerImage")
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.label.setWordWrap(True)
        self.setWidget(self.label)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setWidgetResizable(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAccessibleName("Image")
        self.image = QImage()
        self.path: Path | None = None  # the shown file, when it is one (what a drag carries)
        self.zoom: float | None = None  # None: fit the pane
        self._press: QPoint | None = None

    def set_image(self, image: QImage, path: Path | None) -> None:
        """Show `image` (read from `path`, or a preview when None), keeping the zoom mode."""
        self.image, self.path = image, path
        self.label.setText("")
        self._render()

    def set_text(self, text: str) -> None:
        """Show a hint instead of an image."""
        self.image, self.path = QImage(), None
        self.label.setPixmap(QPixmap())
        self.label.setText(text)
        self.setWidgetResizable(True)

    def fit(self) -> None:
        """Scale the image to fit the pane (and keep fitting it as the pane resizes)."""
        self.set_zoom(None)

    def set_zoom(self, zoom: float | None) -> None:
        """Show at `zoom` (1.0 = 100 %), or fitted for None."""
        self.zoom = None if zoom is None else max(MIN_ZOOM, min(MAX_ZOOM, zoom))
        self._render()
        self.zoom_changed.emit(self.zoom)

    def shown_scale(self) -> float:
        """The scale the image is drawn at now (fitted or zoomed); 0 with no image."""
        if self.image.isNull():
            return 0.0
        if self.zoom is not None:
            return self.zoom
        area = self.viewport().size()
        return min(area.width() / self.image.width(), area.height() / self.image.height())

    def _render(self) -> None:
        if self.image.isNull():
            return
        ratio = self.devicePixelRatioF()
        fitted = self.zoom is None
        self.setWidgetResizable(fitted)
        size = self.image.size() * (self.shown_scale() * ratio)
        if size.isEmpty():
            return
        pixmap = QPixmap.fromImage(self.image.scaled(size, Qt.AspectRatioMode.KeepAspectRatio,
                                                     Qt.TransformationMode.SmoothTransformation))
        pixmap.setDevicePixelRatio(ratio)
        self.label.setPixmap(pixmap)
        if not fitted:
            self.label.resize(pixmap.deviceIndependentSize().toSize())

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Keep a fitted image fitted."""
        super().resizeEvent(event)
        if self.zoom is None:
            self._render()

    def wheelEvent(self, event: QWheelEvent) -> None:
        """The wheel zooms (from the current scale, so the first turn starts where "fit" left off)."""
        delta = event.angleDelta().y()
        if self.image.isNull() or delta == 0:
            super().wheelEvent(event)
            return
        self.set_zoom(wheel_zoom(self.shown_scale(), delta))
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        """Remember where a possible drag starts."""
        self._press = event.position().toPoint() if event.button() == Qt.MouseButton.LeftButton else None
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        """Past the drag distance, drag the shown file out."""
        start = self._press
        far = start is not None and (event.position().toPoint() - start).manhattanLength() >= \
            QApplication.startDragDistance()
        if far and self.path is not None and event.buttons() & Qt.MouseButton.LeftButton:
            self._press = None
            start_file_drag(self, [self.path], self.label.pixmap())
            return
        super().mouseMoveEvent(event)
