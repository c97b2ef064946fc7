"""User actions run in the background, their result handled on the GUI thread (Anki's operations).

An `Operation` wraps one blocking call (a service restart, an AOF repair): `run()` does it on a worker thread
via `asyncio.to_thread`; the success and failure callbacks run on the qasync loop, which is the GUI thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from PySide6.QtCore import QObject

__all__ = ["Operation"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class Operation(Generic[T]):
    """One user action: `work` off the GUI thread, then `success(result)` or `failure(error)` on it.

    Without a failure callback the error propagates (the controller's `spawn` logs and shows it).
    """

    def __init__(self, work: Callable[[], T], what: str) -> None:
        self._work = work
        self.what = what
        self._on_success: Callable[[T], object] | None = None
        self._on_failure: Callable[[Exception], object] | None = None
        self._owner: QObject | None = None

    def success(self, callback: Callable[[T], object]) -> Operation[T]:
        """Call `callback(result)` on the GUI thread when the work is done."""
        self._on_success = callback
        return self

    def failure(self, callback: Callable[[Exception], object]) -> Operation[T]:
        """Call `callback(error)` on the GUI thread if the work raises."""
        self._on_failure = callback
        return self

    def owned_by(self, owner: QObject) -> Operation[T]:
        """Drop the outcome if `owner` is deleted before the work ends (a dialog closed while its search ran)."""
        self._owner = owner
        return self

    def _owner_gone(self) -> bool:
        if self._owner is None:
            return False
        import shiboken6  # only with an owner: this module loads without Qt (the decisions the CLI shares)
        if shiboken6.isValid(self._owner):
            return False
        log.info("Operation %s ended after its window closed; outcome dropped", self.what)
        return True

    async def run(self) -> None:
        """Do the work in the background and hand its outcome to the callbacks."""
        log.info("Operation: %s", self.what)
        try:
            result = await asyncio.to_thread(self._work)
        except Exception as exc:
            if self._owner_gone():
                return
            if self._on_failure is None:
                raise
            log.warning("Operation failed: %s: %s", self.what, exc)
            self._on_failure(exc)
            return
        if self._on_success is not None and not self._owner_gone():
            self._on_success(result)
