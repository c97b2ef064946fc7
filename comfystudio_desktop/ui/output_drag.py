"""Dragging output images into other apps: a file drag (`text/uri-list` with file:// URLs) of existing files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QMimeData, Qt, QUrl
from PySide6.QtGui import QDrag, QPixmap
from PySide6.QtWidgets import QWidget

__all__ = ["output_mime", "start_file_drag"]


def output_mime(paths: Sequence[Path]) -> QMimeData | None:
    """The drag data for the files among `paths` that exist; None when none does."""
    files = [path for path in paths if path.is_file()]
    if not files:
        return None
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path.resolve())) for path in files])
    return mime


def start_file_drag(source: QWidget, paths: Sequence[Path], icon: QPixmap | None = None) -> bool:
    """Drag `paths` out of `source` as files (copy); False when there is nothing to drag."""
    mime = output_mime(paths)
    if mime is None:
        return False
    drag = QDrag(source)
    drag.setMimeData(mime)
    if icon is not None and not icon.isNull():
        drag.setPixmap(icon.scaled(96, 96, Qt.AspectRatioMode.KeepAspectRatio,
                                   Qt.TransformationMode.SmoothTransformation))
    drag.exec(Qt.DropAction.CopyAction)
    return True
