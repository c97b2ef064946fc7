"""Run blocking work (image decoding, file IO) off the GUI thread and get the result back on it.

`run_in_background(work, on_done)` runs `work()` on a thread pool; `on_done(outcome)` is later called on
the GUI thread with the result or the exception, unless the QObject owning `on_done` was deleted meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, QThreadPool, Signal, Slot

__all__ = ["background_pool", "run_in_background"]

T = TypeVar("T")

_pool: QThreadPool | None = None
_dispatcher: _Dispatcher | None = None


class _Dispatcher(QObject):
    """Lives on the GUI thread for the app's lifetime; runs callables posted to it from other threads."""

    deliver = Signal(object)

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self.deliver.connect(self._on_self_deliver, Qt.ConnectionType.QueuedConnection)

    @Slot(object)
    def _on_self_deliver(self, call: Callable[[], None]) -> None:
        call()


def background_pool() -> QThreadPool:
    """The pool used for UI background work; wait on it (`waitForDone`) before the app exits."""
    global _pool  # noqa: PLW0603 - one pool per process, created on first use
    if _pool is None:
        _pool = QThreadPool()
        _pool.setMaxThreadCount(2)  # decoding big images in parallel mostly competes for memory bandwidth
    return _pool


def run_in_background(work: Callable[[], T], on_done: Callable[[T | Exception], Any]) -> None:
    """Run `work()` off the GUI thread, then `on_done(result or exception)` on it.

    `on_done` must be a bound method of a QObject: it is skipped if that object is gone by then.
    """
    app = QCoreApplication.instance()
    if app is None or QThread.currentThread() is not app.thread():
        raise RuntimeError("run_in_background must be called on the GUI thread")
    global _dispatcher  # noqa: PLW0603 - created once, on the GUI thread, owned by the application
    if _dispatcher is None or not shiboken6.isValid(_dispatcher):
        _dispatcher = _Dispatcher(app)
    dispatcher = _dispatcher
    owner = getattr(on_done, "__self__", None)
    if not isinstance(owner, QObject):
        raise TypeError("on_done must be a bound method of a QObject")

    def deliver(outcome: T | Exception) -> None:
        if shiboken6.isValid(owner):
            on_done(outcome)

    def task() -> None:
        outcome: T | Exception
        try:
            outcome = work()
        except Exception as exc:  # noqa: BLE001 - handed to on_done, which decides what the user sees
            outcome = exc
        dispatcher.deliver.emit(lambda: deliver(outcome))

    background_pool().start(task)
