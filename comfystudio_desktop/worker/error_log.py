"""Logging a recurring fault once with its traceback, then as one short line, so a log is never flooded."""

from __future__ import annotations

import logging

__all__ = ["ErrorLog"]


class ErrorLog:
    """Reports exceptions for one loop: the first of each kind (type and message) with its traceback."""

    def __init__(self, logger: logging.Logger, what: str, *, remember: int = 100) -> None:
        self._log = logger
        self._what = what
        self._seen: set[tuple[str, str]] = set()
        self._remember = remember

    def report(self, exc: BaseException) -> None:
        """Log `exc`: with its traceback the first time this kind is seen, as one line afterwards."""
        kind = (type(exc).__name__, str(exc)[:200])
        if kind in self._seen:
            self._log.error("%s: %s again: %s", self._what, kind[0], kind[1])
            return
        if len(self._seen) >= self._remember:
            self._seen.clear()
        self._seen.add(kind)
        self._log.error("%s: unexpected %s; going on", self._what, kind[0], exc_info=exc)
