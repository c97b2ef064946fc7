"""The viewer: live preview frames of the running job, or the selected job's output image."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage, QImageReader, QPixmap, QResizeEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

__all__ = ["ViewerPane"]

_MAX_DECODE_SIDE = 2048  # large outputs are decoded scaled down: the pane never needs more


class ViewerPane(QWidget):
    """An image scaled to fit, with a caption."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.image_label = QLabel(self)
        self.image_label.setObjectName("viewerImage")
        self.image_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.image_label.setMinimumSize(QSize(160, 160))
        self.caption = QLabel(self)
        self.caption.setObjectName("viewerCaption")
        self.caption.setWordWrap(True)
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout = QVBoxLayout(self)
        layout.addWidget(self.image_label, 1)
        layout.addWidget(self.caption)
        self._image = QImage()
        self.shown_job = ""
        self.showing_preview = False
        self.clear()

    def clear(self, text: str = "Select a job to see its image; running jobs show a live preview here.") -> None:
        """Show nothing but a hint."""
        self._image = QImage()
        self.shown_job = ""
        self.showing_preview = False
        self.image_label.setPixmap(QPixmap())
        self.image_label.setText(text)
        self.caption.clear()

    def show_preview(self, job_id: str, data: bytes, caption: str) -> bool:
        """Show one preview frame (JPEG/PNG bytes); False if it cannot be decoded."""
        image = QImage.fromData(data)
        if image.isNull():
            return False
        self._set(image, job_id, caption, preview=True)
        return True

    def show_file(self, job_id: str, path: Path, caption: str) -> bool:
        """Show an output image from disk, decoded at most 2048 px on its long side."""
        reader = QImageReader(str(path))
        reader.setAutoTransform(True)
        size = reader.size()
        if size.isValid() and max(size.width(), size.height()) > _MAX_DECODE_SIDE:
            reader.setScaledSize(size.scaled(_MAX_DECODE_SIDE, _MAX_DECODE_SIDE, Qt.AspectRatioMode.KeepAspectRatio))
        image = reader.read()
        if image.isNull():
            self.clear(f"Cannot show {path.name}: {reader.errorString()}")
            return False
        self._set(image, job_id, caption, preview=False)
        return True

    def _set(self, image: QImage, job_id: str, caption: str, *, preview: bool) -> None:
        self._image = image
        self.shown_job = job_id
        self.showing_preview = preview
        self.image_label.setText("")
        self.caption.setText(caption)
        self._rescale()

    def _rescale(self) -> None:
        if self._image.isNull():
            return
        ratio = self.devicePixelRatioF()
        target = self.image_label.size() * ratio
        pixmap = QPixmap.fromImage(self._image.scaled(target, Qt.AspectRatioMode.KeepAspectRatio,
                                                      Qt.TransformationMode.SmoothTransformation))
        pixmap.setDevicePixelRatio(ratio)
        self.image_label.setPixmap(pixmap)

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Keep the image fitted to the pane."""
        super().resizeEvent(event)
        self._rescale()
