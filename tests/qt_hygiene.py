"""Fail a test that leaves a QThread running or a QTimer active (napari's `dangling_qthreads` / `dangling_qtimers`).

While a test runs, `QThread.start` and `QTimer.start` are wrapped to remember each object (weakly) and where it
was started; at teardown whatever still runs is stopped, so it cannot disturb the next test, and the test fails
naming the start site. Used by the autouse fixtures in tests/conftest.py for every test once Qt is loaded.
"""

from __future__ import annotations

import traceback
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import shiboken6
from PySide6.QtCore import QDeadlineTimer, QThread, QTimer

_THIS = Path(__file__).resolve()
_REPO = _THIS.parents[1]
_OWN_CODE = ("comfystudio_desktop", "tests")
_SITE_FRAMES = 4  # frames of our own code shown per start site
_THREAD_STOP_MS = 5_000


def _start_site() -> str:
    """The innermost frames of the repository's own code (not this module) that led to the start call."""
    own = [(Path(f.filename).resolve(), f) for f in traceback.extract_stack()[:-2]]
    picked = [(path.relative_to(_REPO), f) for path, f in own
              if any(path.is_relative_to(_REPO / top) for top in _OWN_CODE) and path != _THIS][-_SITE_FRAMES:]
    return "\n".join(f"    {path}:{f.lineno} in {f.name}" for path, f in picked) or \
        "    (started outside the repository's code)"


def _alive(obj: QThread | QTimer, check: Callable[[], bool]) -> bool:
    """`check()` for an object whose C++ side may be gone already (then it runs no more)."""
    return shiboken6.isValid(obj) and check()


@contextmanager
def dangling_qthreads() -> Iterator[None]:
    """Record every `QThread.start`; fail if one of those threads still runs when the block ends."""
    started: weakref.WeakKeyDictionary[QThread, str] = weakref.WeakKeyDictionary()
    original = QThread.start

    def start(self: QThread, *args: Any) -> None:
        started[self] = _start_site()
        original(self, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(QThread, "start", start)
        yield
    running = [(thread, site) for thread, site in list(started.items()) if _alive(thread, thread.isRunning)]
    for thread, _site in running:
        thread.quit()  # ends an event loop; a thread running its own loop only ends by its own stop condition
        thread.wait(QDeadlineTimer(_THREAD_STOP_MS))
    if running:
        listed = "\n".join(f"  {type(thread).__name__} started at:\n{site}" for thread, site in running)
        pytest.fail(f"{len(running)} QThread(s) still running after the test (stop and wait for them):\n{listed}",
                    pytrace=False)


@contextmanager
def dangling_qtimers() -> Iterator[None]:
    """Record every `QTimer.start`; fail if one of those timers is still active when the block ends."""
    started: weakref.WeakKeyDictionary[QTimer, str] = weakref.WeakKeyDictionary()
    original = QTimer.start

    def start(self: QTimer, *args: Any) -> None:
        started[self] = _start_site()
        if args and not isinstance(args[0], int):
            # Connected to a signal that carries other values (`textChanged.connect(timer.start)`): Qt's slot
            # matching calls start() there; a Python wrapper would be handed the signal's arguments.
            args = ()
        original(self, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(QTimer, "start", start)
        yield
    active = [(timer, site) for timer, site in list(started.items()) if _alive(timer, timer.isActive)]
    for timer, _site in active:
        if timer.thread() is QThread.currentThread():  # a timer can only be stopped from its own thread
            timer.stop()
    if active:
        listed = "\n".join(f"  QTimer (interval {timer.interval()} ms, parent {type(timer.parent()).__name__}) "
                           f"started at:\n{site}" for timer, site in active)
        pytest.fail(f"{len(active)} QTimer(s) still active after the test (stop them when their owner closes):\n"
                    f"{listed}", pytrace=False)
