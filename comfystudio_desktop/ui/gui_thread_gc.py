"""Python's cyclic garbage collector, run on the GUI thread only while the window runs.

Automatic collection runs on whichever thread happens to allocate when a threshold is crossed: the worker's QThread,
an image-checking pool thread, an asyncio executor thread. Collected there, a reference cycle that holds a widget or a
timer destroys that Qt object on the wrong thread ("QObject::~QObject: Timers cannot be stopped from another thread",
then at worst a crash much later). So automatic collection is switched off and a timer on the GUI thread collects each
generation that is past its threshold, the remedy pyqtgraph ships as `pyqtgraph.util.GarbageCollector` (not imported
from there: pyqtgraph is loaded only when the Monitor dock first opens, and importing it costs the start-up).
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

__all__ = ["GuiThreadCollector"]


class GuiThreadCollector(QObject):
    """While started: no automatic collection; every `interval_ms` the due generations are collected here."""

    def __init__(self, parent: QObject | None = None, *, interval_ms: int = 1000) -> None:
        super().__init__(parent)
        self._thresholds = gc.get_threshold()
        self._was_enabled = gc.isenabled()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect_due)

    def start(self) -> None:
        """Switch automatic collection off and start collecting on this (the GUI) thread."""
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._timer.start()

    def stop(self) -> None:
        """Collect what is due one last time and give collection back as it was before `start`."""
        self._timer.stop()
        self.collect_due()
        if self._was_enabled:
            gc.enable()

    def collect_due(self) -> int:
        """Collect the oldest generation past its threshold (and the younger ones with it); the objects found."""
        counts, thresholds = gc.get_count(), self._thresholds
        if counts[0] <= thresholds[0]:
            return 0
        generation = 0
        while generation < 2 and counts[generation + 1] > thresholds[generation + 1]:
            generation += 1
        return gc.collect(generation)
