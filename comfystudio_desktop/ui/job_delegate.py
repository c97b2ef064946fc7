"""`JobDelegate`: paints the status pill, the progress bar and the thumbnail cells of the jobs table, and a failed
row's reason under its prompt.

Colours come from the view's palette (see `theme`), the progress bar from the style, so light and dark themes
both look native. A repaint must fit in a frame with thousands of rows changing, so nothing is laid out per
paint: pills and progress bars are drawn once per (state, size, palette) into cached pixmaps, and the text
columns draw cached, already elided `QStaticText` over the style's background.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPoint, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QImage, QPainter, QPalette, QPixmap, QStaticText
from PySide6.QtWidgets import (
    QApplication,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QWidget,
)

from comfystudio_desktop.jobs import JobStatus
from comfystudio_desktop.ui.job_columns import Column, ProgressRole, ReasonRole, StatusRole, ThumbnailRole
from comfystudio_desktop.ui.jobs_model import RIGHT_ALIGNED, RetryAttemptRole
from comfystudio_desktop.ui.record_changes import retry_text
from comfystudio_desktop.ui.theme import error_color, status_color

__all__ = ["JobDelegate"]

_Index = QModelIndex | QPersistentModelIndex
_PILL_PAD_X, _PILL_PAD_Y = 8, 2
_TEXT_COLUMNS = frozenset(Column) - {Column.PROGRESS, Column.THUMBNAIL}
_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
_LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
_CACHE_SIZE = 2048  # pixmaps or texts: every state of every visible cell, many times over
_PROGRESS_TEXT = {JobStatus.QUEUED: "Waiting", JobStatus.FINISHED: "Done", JobStatus.FAILED: "Failed",
                  JobStatus.CANCELLED: "Cancelled"}


class JobDelegate(QStyledItemDelegate):
    """Draws `Column.STATUS`, `Column.PROGRESS` and `Column.THUMBNAIL`; the rest as plain text."""

    def __init__(self, parent: QWidget | None = None, *, thumbnail_size: int = 64) -> None:
        super().__init__(parent)
        self._thumb_size = thumbnail_size
        self._pixmaps: OrderedDict[Hashable, QPixmap] = OrderedDict()
        self._texts: OrderedDict[Hashable, QStaticText] = OrderedDict()

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: _Index) -> None:
        """Paint the cell."""
        if option.rect.width() <= 0 or option.rect.height() <= 0:
            return  # a collapsed column: the style would paint into an empty cached pixmap
        column = index.column()
        opt = QStyleOptionViewItem(option)
        # Not initStyleOption: it asks the model for eight roles per cell (a Python call each), and the model
        # answers only text and alignment, which are all this needs.
        if isinstance(index, QModelIndex):  # what the view passes; some styles read it
            opt.index = index
        text = index.data(Qt.ItemDataRole.DisplayRole) if column in _TEXT_COLUMNS else ""
        text = text if isinstance(text, str) else ""
        opt.displayAlignment = _RIGHT if column in RIGHT_ALIGNED else _LEFT
        widget = opt.widget
        style = widget.style() if widget is not None else QApplication.style()
        # The style draws background, selection and focus; we draw the content.
        opt.text = ""
        opt.features &= ~(QStyleOptionViewItem.ViewItemFeature.HasDecoration
                          | QStyleOptionViewItem.ViewItemFeature.HasDisplay)
        opt.icon = QIcon()  # the style paints any icon into the (empty) decoration rect, warning on a 0-size pixmap
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)
        if column == Column.STATUS:
            self._paint_status(painter, opt, index, text)
        elif column == Column.PROGRESS:
            self._paint_progress(painter, opt, index, style, widget)
        elif column == Column.THUMBNAIL:
            painter.save()
            self._paint_thumbnail(painter, opt, index)
            painter.restore()
        elif column == Column.PROMPT and (reason := index.data(ReasonRole)):
            self._paint_prompt_and_reason(painter, opt, style, widget, text, str(reason))
        elif text:
            self._paint_text(painter, opt, style, widget, text)

    def _cached_pixmap(self, key: Hashable, size: QSize, dpr: float, draw: Callable[[QPainter], None]) -> QPixmap:
        """The pixmap for `key`, drawn by `draw` (in logical coordinates, transparent background) when missing."""
        pixmap = self._pixmaps.get(key)
        if pixmap is not None:
            self._pixmaps.move_to_end(key)
            return pixmap
        pixmap = QPixmap(max(1, round(size.width() * dpr)), max(1, round(size.height() * dpr)))
        pixmap.setDevicePixelRatio(dpr)
        pixmap.fill(Qt.GlobalColor.transparent)
        pixmap_painter = QPainter(pixmap)
        try:
            draw(pixmap_painter)
        finally:
            pixmap_painter.end()
        self._pixmaps[key] = pixmap
        if len(self._pixmaps) > _CACHE_SIZE:
            self._pixmaps.popitem(last=False)
        return pixmap

    def _paint_text(self, painter: QPainter, opt: QStyleOptionViewItem, style: QStyle, widget: QWidget | None,
                    text: str) -> None:
        """The cell's text, elided to the cell's width once and kept as a QStaticText."""
        area = _text_area(opt, style, widget)
        if area.width() <= 0:
            return
        static = self._static_text(painter, opt, text, area.width())
        size = static.size()
        y = area.top() + (area.height() - round(size.height())) // 2
        right = bool(opt.displayAlignment & Qt.AlignmentFlag.AlignRight)
        x = area.right() + 1 - round(size.width()) if right else area.left()
        painter.save()
        painter.setFont(opt.font)
        painter.setPen(_text_color(opt))
        painter.drawStaticText(QPoint(x, y), static)
        painter.restore()

    def _paint_prompt_and_reason(self, painter: QPainter, opt: QStyleOptionViewItem, style: QStyle,
                                 widget: QWidget | None, prompt: str, reason: str) -> None:
        """A failed row: the prompt on the first line, why it failed on the second, in the error colour."""
        area = _text_area(opt, style, widget)
        if area.width() <= 0:
            return
        line = opt.fontMetrics.height()
        top = area.center().y() - line
        ink = _text_color(opt)
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        painter.save()
        painter.setFont(opt.font)
        for text, y, color in ((prompt, top, ink), (reason, top + line, ink if selected else error_color(opt.palette))):
            if text:
                static = self._static_text(painter, opt, text, area.width())
                painter.setPen(color)
                painter.drawStaticText(QPoint(area.left(), y + (line - round(static.size().height())) // 2), static)
        painter.restore()

    def _static_text(self, painter: QPainter, opt: QStyleOptionViewItem, text: str, width: int) -> QStaticText:
        """`text` elided to `width` in the cell's font, laid out once (the pen gives its colour when drawn)."""
        font: QFont = opt.font
        key = (text, width, font.key())
        static = self._texts.get(key)
        if static is not None:
            self._texts.move_to_end(key)
            return static
        static = QStaticText(opt.fontMetrics.elidedText(text, Qt.TextElideMode.ElideRight, width))
        static.setTextFormat(Qt.TextFormat.PlainText)
        static.prepare(painter.transform(), font)
        self._texts[key] = static
        if len(self._texts) > _CACHE_SIZE:
            self._texts.popitem(last=False)
        return static

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

    def _paint_status(self, painter: QPainter, opt: QStyleOptionViewItem, index: _Index, text: str) -> None:
        status = _status(index)
        if status is None or not text:
            return
        fill, ink = status_color(status, opt.palette), opt.palette.color(QPalette.ColorRole.Text)
        size, dpr = opt.rect.size(), painter.device().devicePixelRatioF()
        key = ("pill", status, text, size.width(), size.height(), dpr, fill.rgba(), ink.rgba(), opt.font.key())

        def draw(p: QPainter) -> None:
            metrics = opt.fontMetrics
            height = min(size.height() - 4, metrics.height() + 2 * _PILL_PAD_Y)
            width = min(size.width() - 8, metrics.horizontalAdvance(text) + 2 * _PILL_PAD_X)
            pill = QRect(4, size.height() // 2 - height // 2, width, height)
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(fill)
            p.drawRoundedRect(pill, height / 2, height / 2)
            p.setFont(opt.font)
            p.setPen(ink)
            p.drawText(pill, int(Qt.AlignmentFlag.AlignCenter.value), text)

        painter.drawPixmap(opt.rect.topLeft(), self._cached_pixmap(key, size, dpr, draw))

    def _paint_progress(self, painter: QPainter, opt: QStyleOptionViewItem, index: _Index, style: QStyle,
                        widget: QWidget | None) -> None:
        progress = index.data(ProgressRole)
        status = _status(index)
        if not isinstance(progress, int):
            return
        value = 100 if status == JobStatus.FINISHED else max(0, min(100, progress))
        template = _PROGRESS_TEXT.get(status, "{p} %") if status is not None else "{p} %"
        attempt = index.data(RetryAttemptRole)
        if isinstance(attempt, int):  # requeued: say so, and keep the progress already made in view
            template = retry_text(attempt) + (" · {p} %" if progress > 0 else "")
        text = template.format(p=progress)
        state = opt.state | QStyle.StateFlag.State_Horizontal
        size, dpr = opt.rect.size(), painter.device().devicePixelRatioF()
        palette_key = opt.palette.cacheKey()
        key = ("bar", value, text, size.width(), size.height(), dpr, int(state.value), palette_key, opt.font.key(),
               id(style))

        def draw(p: QPainter) -> None:
            bar = QStyleOptionProgressBar()
            if widget is not None:
                bar.initFrom(widget)
            height = min(size.height() - 6, opt.fontMetrics.height() + 6)
            bar.rect = QRect(4, size.height() // 2 - height // 2, size.width() - 8, height)
            bar.palette = opt.palette
            bar.fontMetrics = opt.fontMetrics
            bar.state = state
            bar.minimum, bar.maximum = 0, 100
            bar.progress = value
            bar.text = text
            bar.textVisible = True
            bar.textAlignment = Qt.AlignmentFlag.AlignCenter
            p.setFont(opt.font)
            style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, p, widget)

        painter.drawPixmap(opt.rect.topLeft(), self._cached_pixmap(key, size, dpr, draw))

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


def _text_area(opt: QStyleOptionViewItem, style: QStyle, widget: QWidget | None) -> QRect:
    """Where the style puts a cell's text, inside its focus margin."""
    area = style.subElementRect(QStyle.SubElement.SE_ItemViewItemText, opt, widget)
    margin = style.pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, widget) + 1
    return area.adjusted(margin, 0, -margin, 0)


def _text_color(opt: QStyleOptionViewItem) -> QColor:
    """The palette's text colour for the cell's state (selected, disabled)."""
    selected = bool(opt.state & QStyle.StateFlag.State_Selected)
    role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
    group = QPalette.ColorGroup.Normal if opt.state & QStyle.StateFlag.State_Enabled else QPalette.ColorGroup.Disabled
    return opt.palette.color(group, role)


def _status(index: _Index) -> JobStatus | None:
    """The row's status (`StatusRole` holds its string value)."""
    try:
        return JobStatus(index.data(StatusRole))
    except ValueError:
        return None
