"""`GalleryView`: the history's images as a thumbnail grid (a QListView in icon mode over `HistoryModel`)."""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QAbstractItemView, QListView, QWidget

from comfystudio_desktop.ui.history_model import HistoryColumn, HistoryModel

__all__ = ["GalleryView"]


class GalleryView(QListView):
    """Thumbnails of the same rows as the history table, a star under each favourite."""

    def __init__(self, model: HistoryModel, thumbnail_size: int = 128, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("historyGallery")
        self.setAccessibleName("Gallery")
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)  # every cell the same size: a 100,000-row grid lays out without asking each
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(200)
        self.setIconSize(QSize(thumbnail_size, thumbnail_size))
        self.setGridSize(QSize(thumbnail_size + 16, thumbnail_size + 24))
        self.setSpacing(4)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setModel(model)
        self.setModelColumn(HistoryColumn.IMAGE)
