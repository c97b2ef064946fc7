"""Garbage is collected on the GUI thread only: a reference cycle holding a Qt timer, made garbage while another
thread allocates, is freed by the GUI thread's collector, never by that thread (which Qt answers with "Timers cannot
be stopped from another thread", and at worst a crash later)."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from comfystudio_desktop.ui.gui_thread_gc import GuiThreadCollector


class _Cycle:
    """A reference cycle that holds an active QTimer (as a widget with a lambda slot on itself does)."""

    def __init__(self) -> None:
        self.me = self
        self.timer = QTimer()
        self.timer.start(60_000)


@pytest.fixture
def collection_threads() -> Iterator[list[int]]:
    """The thread id of every collection from here on, with automatic collection switched on as at start-up."""
    seen: list[int] = []

    def record(phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            seen.append(threading.get_ident())

    was_enabled = gc.isenabled()
    gc.collect()
    gc.enable()
    gc.callbacks.append(record)
    yield seen
    gc.callbacks.remove(record)
    if not was_enabled:
        gc.disable()


def _allocate_on_a_thread(count: int) -> list[list[int]]:
    """`count` containers made on another thread and kept (so the first generation stays past its threshold)."""
    kept: list[list[int]] = []

    def allocate() -> None:
        kept.extend([] for _ in range(count))

    thread = threading.Thread(target=allocate)
    thread.start()
    thread.join(30)
    assert len(kept) == count
    return kept


def test_a_cycle_holding_a_timer_is_freed_by_the_gui_thread(qapp: QApplication, qtbot: QtBot,
                                                             collection_threads: list[int]) -> None:
    collector = GuiThreadCollector(interval_ms=20)
    collector.start()
    try:
        cycle = _Cycle()
        freed = weakref.ref(cycle)
        del cycle
        kept = _allocate_on_a_thread(50 * gc.get_threshold()[0])
        assert freed() is not None  # nothing collected it on the allocating thread
        qtbot.waitUntil(lambda: freed() is None, timeout=5000)
        del kept
    finally:
        collector.stop()
    assert collection_threads and set(collection_threads) == {threading.get_ident()}


def test_without_it_the_allocating_thread_collects(qapp: QApplication, collection_threads: list[int]) -> None:
    # What the collector prevents: with automatic collection on, the thread that allocates runs the collection.
    assert len(_allocate_on_a_thread(50 * gc.get_threshold()[0])) > 0
    assert set(collection_threads) - {threading.get_ident()}


def test_stop_gives_collection_back_as_it_was(qapp: QApplication, collection_threads: list[int]) -> None:
    collector = GuiThreadCollector()
    collector.start()
    assert not gc.isenabled()
    collector.stop()
    assert gc.isenabled()
    gc.disable()
    collector.start()
    collector.stop()
    assert not gc.isenabled()  # it was off before this start: it stays off
    gc.enable()
