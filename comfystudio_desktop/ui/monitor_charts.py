"""The Monitor dock's charts: pyqtgraph plots of the last hour or day over `ChartHistory` columns.

Imported only when the dock is first shown (pyqtgraph and numpy take about a second to import), so the window
starts as fast without it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import QComboBox, QFormLayout, QGridLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from comfystudio_desktop.monitor.report import figure_lines
from comfystudio_desktop.monitor.series import Resolution
from comfystudio_desktop.monitor.snapshot import StatsSnapshot

__all__ = ["CHARTS", "ChartHistory", "MonitorPanel"]

REDRAW_MS = 1000
_MB = 1_000_000
_RANGES = (("Last hour", 3600.0), ("Last day", 86_400.0))
_MAX_POINTS = 400
_LABELS = -1  # the redraw step that sets the figures' labels


@dataclass(frozen=True, slots=True)
class _Chart:
    title: str
    unit: str
    lines: tuple[tuple[str, Callable[[StatsSnapshot], float | None]], ...]


def _median(which: str) -> Callable[[StatsSnapshot], float | None]:
    def read(s: StatsSnapshot) -> float | None:
        stats = getattr(s, which)
        return None if stats is None else float(stats.median_s)
    return read


def _p90(which: str) -> Callable[[StatsSnapshot], float | None]:
    def read(s: StatsSnapshot) -> float | None:
        stats = getattr(s, which)
        return None if stats is None else float(stats.p90_s)
    return read


CHARTS: tuple[_Chart, ...] = (
    _Chart("Queue length", "jobs", (("queued", lambda s: s.queued), ("running", lambda s: s.running))),
    _Chart("Images per hour", "images", (("last hour", lambda s: s.images_last_hour),)),
    _Chart("Processing time", "s", (("median", _median("processing")), ("p90", _p90("processing")))),
    _Chart("Waiting time", "s", (("median", _median("waiting")), ("p90", _p90("waiting")))),
    _Chart("GPU memory used", "MB", (("used", lambda s: None if s.gpu is None else s.gpu.vram_used / _MB),)),
    _Chart("Redis memory", "MB", (("used", lambda s: None if s.redis_memory is None else s.redis_memory / _MB),)),
    _Chart("Worker CPU", "%", (("CPU", lambda s: s.worker_cpu_percent),)),
    _Chart("Worker memory", "MB", (("RSS", lambda s: None if s.worker_rss is None else s.worker_rss / _MB),)),
)
_PENS = ("#3b82f6", "#f59e0b")


@dataclass(frozen=True, slots=True)
class ChartHistory:
    """Samples as the charts draw them: times and one column per line (NaN where unavailable), oldest first.

    Built once for a whole day (`of`), then extended one sample at a time (`plus`)."""

    latest: StatsSnapshot | None
    xs: np.ndarray
    columns: tuple[np.ndarray, ...]  # in the order of `_LINES`

    @classmethod
    def of(cls, samples: Sequence[StatsSnapshot]) -> ChartHistory:
        """Columns for `samples` (oldest first), the last `Resolution.FINE.cap` of them."""
        kept = list(samples)[-Resolution.FINE.cap:]
        xs = np.fromiter((s.at for s in kept), dtype=float, count=len(kept))
        columns = tuple(np.fromiter((_value(read(s)) for s in kept), dtype=float, count=len(kept))
                        for _, _, read in _LINES)
        return cls(kept[-1] if kept else None, xs, columns)

    def plus(self, snapshot: StatsSnapshot) -> ChartHistory:
        """This history with a newer sample appended (the oldest dropped past the cap)."""
        start = max(0, len(self.xs) + 1 - Resolution.FINE.cap)
        xs = np.append(self.xs[start:], snapshot.at)
        columns = tuple(np.append(column[start:], _value(read(snapshot)))
                        for column, (_, _, read) in zip(self.columns, _LINES, strict=True))
        return ChartHistory(snapshot, xs, columns)


def _value(value: float | None) -> float:
    return float("nan") if value is None else float(value)


_LINES = tuple((chart.title, name, read) for chart in CHARTS for name, read in chart.lines)
_EMPTY_HISTORY = ChartHistory(None, np.empty(0), tuple(np.empty(0) for _ in _LINES))


class MonitorPanel(QWidget):
    """The figures as labels and the charts of the chosen range.

    A redraw sets one chart per turn of the event loop, so the GUI thread is never held for all eight at once."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = _EMPTY_HISTORY
        self._stale = False
        self._pending: list[int] = []
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.figures: dict[str, QLabel] = {}
        for label, _ in figure_lines(_EMPTY):
            value = QLabel("—")
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            # A new text never resizes the dock: that would re-lay out and repaint every chart.
            value.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            self.figures[label] = value
            form.addRow(label, value)
        layout.addLayout(form)
        self.range_combo = QComboBox(self)
        for text, seconds in _RANGES:
            self.range_combo.addItem(text, seconds)
        self.range_combo.currentIndexChanged.connect(self._on_range_combo_changed)
        layout.addWidget(self.range_combo)
        # One view per chart: drawing one chart repaints only its own view, never all eight in one paint.
        grid = QGridLayout()
        self.plots: list[pg.PlotWidget] = []
        self.curves: dict[tuple[str, str], pg.PlotDataItem] = {}
        for n, chart in enumerate(CHARTS):
            view = pg.PlotWidget(self, title=chart.title, axisItems={"bottom": pg.DateAxisItem()})
            view.setMinimumHeight(120)
            plot = view.getPlotItem()
            plot.setLabel("left", units=chart.unit)
            plot.setMouseEnabled(x=False, y=False)
            for (name, _), colour in zip(chart.lines, _PENS, strict=False):
                self.curves[(chart.title, name)] = plot.plot(pen=pg.mkPen(colour, width=1), name=name,
                                                             connect="finite")
            grid.addWidget(view, n // 2, n % 2)
            self.plots.append(view)
        layout.addLayout(grid, 1)
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(REDRAW_MS)
        self._redraw_timer.timeout.connect(self._on_redraw_timer_timeout)
        self._chunk_timer = QTimer(self)
        self._chunk_timer.setInterval(0)
        self._chunk_timer.timeout.connect(self._on_chunk_timer_timeout)

    @property
    def span_s(self) -> float:
        """The charts' time range in seconds."""
        return float(self.range_combo.currentData())

    def set_samples(self, samples: Sequence[StatsSnapshot]) -> None:
        """Replace the history (the last day, oldest first)."""
        self.history = ChartHistory.of(samples)
        self._changed()

    def add_sample(self, snapshot: StatsSnapshot) -> None:
        """Append a newer sample."""
        latest = self.history.latest
        if latest is not None and snapshot.at <= latest.at:
            return
        self.history = self.history.plus(snapshot)
        self._changed()

    def _changed(self) -> None:
        self._stale = True
        if not self._redraw_timer.isActive():
            self._redraw_timer.start()

    def showEvent(self, event: QShowEvent) -> None:
        """Draw what arrived while hidden."""
        super().showEvent(event)
        if self._stale:
            self._schedule_redraw()

    def _on_range_combo_changed(self, _index: int) -> None:
        self._schedule_redraw()

    def _on_redraw_timer_timeout(self) -> None:
        if self.isVisible():
            self._schedule_redraw()

    def _schedule_redraw(self) -> None:
        self._stale = False
        self._pending = [_LABELS, *range(len(CHARTS))]
        self._chunk_timer.start()

    def _on_chunk_timer_timeout(self) -> None:
        if not self._pending:
            self._chunk_timer.stop()
            return
        index = self._pending.pop(0)
        if index == _LABELS:
            self._show_figures()
            return
        self._draw_chart(index)
        self.plots[index].viewport().repaint()  # paint this chart now, not all eight in one later paint

    def redraw(self) -> None:
        """Set the figures and every curve to the samples in the chosen range now."""
        self._stale = False
        self._pending = []
        self._chunk_timer.stop()
        self._show_figures()
        for index in range(len(CHARTS)):
            self._draw_chart(index)

    def _show_figures(self) -> None:
        if self.history.latest is not None:
            for label, value in figure_lines(self.history.latest):
                self.figures[label].setText(value)

    def _draw_chart(self, index: int) -> None:
        history = self.history
        if not len(history.xs):
            return
        start = int(np.searchsorted(history.xs, history.xs[-1] - self.span_s))
        # At most ~400 points per line: a day of 10 s samples is drawn as 4-minute peaks (what a chart a few
        # hundred pixels wide can show), which keeps one chart's paint to a few milliseconds.
        per_point = max(1, (len(history.xs) - start) // _MAX_POINTS + 1) if self.span_s > 3600 else 1
        bins = np.arange(start, len(history.xs), per_point)
        xs = history.xs[bins]
        title = CHARTS[index].title
        for (chart_title, name, _), column in zip(_LINES, history.columns, strict=True):
            if chart_title == title:
                ys = column[start:] if per_point == 1 else np.fmax.reduceat(column, bins)
                self.curves[(title, name)].setData(xs, ys)

    def stop(self) -> None:
        """Stop the timers (on close)."""
        self._redraw_timer.stop()
        self._chunk_timer.stop()


_EMPTY = StatsSnapshot(at=0.0, queued=0, running=0, finished=0, failed=0, cancelled=0, images_total=0,
                       images_last_hour=0, processing=None, waiting=None, redis_memory=None,
                       worker_cpu_percent=None, worker_rss=None, gpu=None, outputs_bytes=0, outputs_images=0)
