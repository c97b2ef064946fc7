"""Stopping a long-running command cleanly on Ctrl+C, Ctrl+Break (Windows) or SIGTERM."""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType

__all__ = ["exit_code_for", "stop_on_signals", "wait_or_stop"]

_NAMES = ("SIGINT", "SIGTERM", "SIGBREAK")
# How long a wait blocks at a time: on Windows a Python signal handler runs only between such waits.
_SLICE_S = 0.25


def stop_on_signals(stop: threading.Event) -> list[int]:
    """Make SIGINT, SIGTERM and SIGBREAK (where they exist) set `stop`; return the list each signal is added to.

    Installed explicitly rather than left to Python's KeyboardInterrupt: SIGTERM (a service manager, `kill`) then
    ends the command as cleanly as Ctrl+C does, and so does a SIGINT in a process started with SIGINT ignored (a
    background job of a shell script), where Python would install no KeyboardInterrupt at all. The handler only
    records and sets: logging from inside it could re-enter a log write it interrupted. Main thread only.
    """
    received: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()

    for name in _NAMES:
        signum = getattr(signal, name, None)
        if signum is not None:
            signal.signal(signum, on_signal)
    return received


def wait_or_stop(stop: threading.Event, seconds: float) -> bool:
    """Wait `seconds`, or less when `stop` is set meanwhile; True if it was set."""
    deadline = time.monotonic() + seconds
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        stop.wait(min(left, _SLICE_S))
    return True


def exit_code_for(signum: int) -> int:
    """The shell's exit code for a command ended by `signum`: 130 for Ctrl+C and Ctrl+Break, 128 + N otherwise."""
    interrupts = {getattr(signal, name) for name in ("SIGINT", "SIGBREAK") if hasattr(signal, name)}
    return 130 if signum in interrupts else 128 + signum
