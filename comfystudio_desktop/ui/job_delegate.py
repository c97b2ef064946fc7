"""`JobDelegate`: paints the status pill, the progress bar and the thumbnail cells of the jobs table.

Other columns are left to QStyledItemDelegate. Colours come from the view's palette (see `theme`), the
progress bar from the style, so light and dark themes both look native.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QIcon, QImage, QPainter, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QWidget,
)

from comfystudio_desktop.jobs import JobStatus
from comfystudio_desktop.ui.job_columns import Column, ProgressRole, StatusRole, ThumbnailRole
from comfystudio_desktop.ui.theme import status_color

__all__ = ["JobDelegate"]

_Index = QModelIndex | QPersistentModelIndex
_PILL_PAD_X, _PILL_PAD_Y = 8, 2
_PROGRESS_TEXT = {JobStatus.QUEUED: "Waiting", JobStatus.FINISHED: "Done", JobStatus.FAILED: "Failed",
                  JobStatus.CANCELLED: "Cancelled"}


class JobDelegate(QStyledItemDelegate):
    """Draws `Column.STATUS`, `Column.PROGRESS` and `Column.THUMBNAIL`; the rest as plain text."""

    def __init__(self, parent: QWidget | None = None, *, thumbnail_size: int = 64) -> None:
        super().__init__(parent)
        self._thumb_size = thumbnail_size

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: _Index) -> None:
        """Paint the cell."""
        column = index.column()
        if column not in (Column.STATUS, Column.PROGRESS, Column.THUMBNAIL):
            super().paint(painter, option, index)
            return
        if option.rect.width() <= 0 or option.rect.height() <= 0:
            return  # a collapsed column: the style would paint into an empty cached pixmap
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        widget = opt.widget
        style = widget.style() if widget is not None else QApplication.style()
        # The style draws background, selection and focus; we draw the content.
        opt.text = ""
        opt.features &= ~QStyleOptionViewItem.ViewItemFeature.HasDecoration
        opt.icon = QIcon()  # the style paints any icon into the (empty) decoration rect, warning on a 0-size pixmap
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)
        painter.save()
        try:
            if column == Column.STATUS:
                self._paint_status(painter, opt, index)
            elif column == Column.PROGRESS:
                self._paint_progress(painter, opt, index, style, widget)
            else:
                self._paint_thumbnail(painter, opt, index)
        finally:
            painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: _Index) -> QSize:
        """Room for the thumbnail, the pill or a readable progress bar."""
        base = super().sizeHint(option, index)
        column = index.column()
        if column == Column.THUMBNAIL:
            return QSize(self._thumb_size + 8, self._thumb_size + 8)
        if column == Column.PROGRESS:
            return QSize(max(base.width(), 110), base.height())
        if column == Column.STATUS:
            text = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
            width = option.fontMetrics.horizontalAdvance(text) + 2 * _PILL_PAD_X + 12
            return QSize(max(base.width(), width), base.height() + 2 * _PILL_PAD_Y)
        return base

    @staticmethod
    def _paint_status(painter: QPainter, opt: QStyleOptionViewItem, index: _Index) -> None:
        status = _status(index)
        text = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        if status is None or not text:
            return
        metrics = opt.fontMetrics
        height = min(opt.rect.height() - 4, metrics.height() + 2 * _PILL_PAD_Y)
        width = min(opt.rect.width() - 8, metrics.horizontalAdvance(text) + 2 * _PILL_PAD_X)
        pill = QRect(opt.rect.left() + 4, opt.rect.center().y() - height // 2, width, height)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(status_color(status, opt.palette))
        painter.drawRoundedRect(pill, height / 2, height / 2)
        painter.setPen(opt.palette.color(QPalette.ColorRole.Text))
        painter.drawText(pill, int(Qt.AlignmentFlag.AlignCenter.value), text)

    @staticmethod
    def _paint_progress(painter: QPainter, opt: QStyleOptionViewItem, index: _Index, style: QStyle,
                        widget: QWidget | None) -> None:
        progress = index.data(ProgressRole)
        status = _status(index)
        if not isinstance(progress, int):
            return
        bar = QStyleOptionProgressBar()
        if widget is not None:
            bar.initFrom(widget)
        height = min(opt.rect.height() - 6, opt.fontMetrics.height() + 6)
        bar.rect = QRect(opt.rect.left() + 4, opt.rect.center().y() - height // 2, opt.rect.width() - 8, height)
        bar.palette = opt.palette
        bar.state = opt.state | QStyle.StateFlag.State_Horizontal
        bar.minimum, bar.maximum = 0, 100
        bar.progress = 100 if status == JobStatus.FINISHED else max(0, min(100, progress))
        template = _PROGRESS_TEXT.get(status, "{p} %") if status is not None else "{p} %"
        bar.text = template.format(p=progress)
        bar.textVisible = True
        bar.textAlignment = Qt.AlignmentFlag.AlignCenter
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, widget)

    def _paint_thumbnail(self, painter: QPainter, opt: QStyleOptionViewItem, index: _Index) -> None:
        image = index.data(ThumbnailRole)
        if not isinstance(image, QImage) or image.isNull():
            return
        area = opt.rect.adjusted(3, 3, -3, -3)
        size = image.size().scaled(area.size(), Qt.AspectRatioMode.KeepAspectRatio)
        target = QRect(0, 0, size.width(), size.height())
        target.moveCenter(area.center())
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(target, image)


def _status(index: _Index) -> JobStatus | None:
    """The row's status (`StatusRole` holds its string value)."""
    try:
        return JobStatus(index.data(StatusRole))
    except ValueError:
        return None
