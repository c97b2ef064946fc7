"""Last-resort handling of uncaught exceptions: keep the traceback on disk, log it, tell the user.

`install_crash_handler(log_file, show_dialog)` replaces `sys.excepthook` and `threading.excepthook`. For every
uncaught exception it appends the traceback to `log_file` (a file of its own, e.g. `logs/crash.log`), logs it at
CRITICAL through `logging` (so it also lands in the app's log), and, for the GUI, calls `show_dialog` with a short
message. A hard crash of native code (a segfault in Qt) is written to the same file by `faulthandler`.

Qt-free on purpose: the window passes a callable that shows a message box. `show_dialog` may be called from any
thread, so the window's callable must hand the message over to the GUI thread (e.g. a queued signal). It is never
called twice for the same error, nor again while a previous dialog is still open. In the window's start-up:

    bridge = CrashBridge()  # a QObject whose `crashed = Signal(str)` is connected to a QMessageBox slot
    install_crash_handler(home.logs / "crash.log", bridge.crashed.emit)
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TextIO

from comfystudio_desktop import __version__

__all__ = ["CrashHandler", "crash_message", "install_crash_handler"]

log = logging.getLogger(__name__)

ShowDialog = Callable[[str], None]
_SUMMARY_CHARS = 500


def crash_message(exc_type: type[BaseException], exc: BaseException | None, log_file: Path) -> str:
    """The text for the user: what happened, in one line, and where the details are."""
    summary = f"{exc_type.__name__}: {exc}" if exc is not None and str(exc) else exc_type.__name__
    if len(summary) > _SUMMARY_CHARS:
        summary = summary[: _SUMMARY_CHARS - 1] + "…"
    return (
        "ComfyStudio ran into an unexpected error. Your queued jobs are safe; if the window misbehaves, "
        f"restart the app.\n\n{summary}\n\nThe details were saved to {log_file}"
    )


class CrashHandler:
    """The installed hooks; `uninstall()` puts the previous ones back."""

    def __init__(self, log_file: Path, show_dialog: ShowDialog | None) -> None:
        self.log_file = log_file
        self.show_dialog = show_dialog
        self._write_lock = threading.Lock()
        self._dialog_lock = threading.Lock()
        self._shown: set[tuple[str, str]] = set()
        self._previous_excepthook = sys.excepthook
        self._previous_thread_hook = threading.excepthook
        self._fault_file: TextIO | None = None
        self._faulthandler_was_enabled = faulthandler.is_enabled()
        self.installed = False

    # -- hooks -----------------------------------------------------------------------------------------------
    def excepthook(self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        """`sys.excepthook`: an exception nothing caught on the main thread (or in a Qt slot)."""
        if issubclass(exc_type, KeyboardInterrupt):
            self._previous_excepthook(exc_type, exc, tb)
            return
        self.handle(exc_type, exc, tb, threading.current_thread().name)

    def thread_excepthook(self, args: threading.ExceptHookArgs) -> None:
        """`threading.excepthook`: an exception that ended a thread."""
        if issubclass(args.exc_type, SystemExit):
            return  # a thread's normal way to stop, as in the default hook
        name = args.thread.name if args.thread is not None else "?"
        self.handle(args.exc_type, args.exc_value, args.exc_traceback, name)

    def handle(self, exc_type: type[BaseException], exc: BaseException | None, tb: TracebackType | None,
               thread_name: str) -> None:
        """Record the exception (file + log) and tell the user. Never raises."""
        try:
            self._write_record(exc_type, exc, tb, thread_name)
            if exc is not None:
                log.critical("Uncaught exception in thread %s", thread_name, exc_info=(exc_type, exc, tb))
            else:
                log.critical("Uncaught %s in thread %s", exc_type.__name__, thread_name)
            self._tell_user(exc_type, exc)
        except Exception:  # noqa: BLE001 - the crash handler must never become the crash
            with contextlib.suppress(Exception):
                traceback.print_exc()

    # -- parts -----------------------------------------------------------------------------------------------
    def _write_record(self, exc_type: type[BaseException], exc: BaseException | None, tb: TracebackType | None,
                      thread_name: str) -> None:
        stamp = datetime.now().astimezone().isoformat(timespec="seconds")
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        record = (f"=== {stamp} ComfyStudio {__version__} pid {os.getpid()} thread {thread_name} "
                  f"(Python {sys.version.split()[0]}, {sys.platform}, frozen={bool(getattr(sys, 'frozen', False))})\n"
                  f"{text}\n")
        with self._write_lock:
            try:
                self.log_file.parent.mkdir(parents=True, exist_ok=True)
                with open(self.log_file, "a", encoding="utf-8") as fh:
                    fh.write(record)
            except OSError as exc_write:
                log.error("Cannot write the crash log %s: %s", self.log_file, exc_write)

    def _tell_user(self, exc_type: type[BaseException], exc: BaseException | None) -> None:
        if self.show_dialog is None:
            return
        key = (exc_type.__name__, str(exc))
        if key in self._shown or not self._dialog_lock.acquire(blocking=False):
            return  # this error was shown already, or a dialog is open: the file has the details
        try:
            self._shown.add(key)
            self.show_dialog(crash_message(exc_type, exc, self.log_file))
        except Exception:
            log.exception("The crash dialog failed")
        finally:
            self._dialog_lock.release()

    # -- life cycle ------------------------------------------------------------------------------------------
    def install(self, *, fault_handler: bool = True) -> CrashHandler:
        """Put the hooks in place (and `faulthandler` on the log file)."""
        sys.excepthook = self.excepthook
        threading.excepthook = self.thread_excepthook
        if fault_handler:
            try:
                self.log_file.parent.mkdir(parents=True, exist_ok=True)
                self._fault_file = open(self.log_file, "a", encoding="utf-8")  # noqa: SIM115 - lives until uninstall
                faulthandler.enable(file=self._fault_file, all_threads=True)
            except OSError as exc:
                log.warning("No fault handler: cannot open %s: %s", self.log_file, exc)
        self.installed = True
        return self

    def uninstall(self) -> None:
        """Restore the previous hooks; close the fault handler's file."""
        if sys.excepthook == self.excepthook:
            sys.excepthook = self._previous_excepthook
        if threading.excepthook == self.thread_excepthook:
            threading.excepthook = self._previous_thread_hook
        if self._fault_file is not None:
            faulthandler.disable()
            if self._faulthandler_was_enabled and sys.stderr is not None:
                with contextlib.suppress(Exception):
                    faulthandler.enable(all_threads=True)
            self._fault_file.close()
            self._fault_file = None
        self.installed = False


def install_crash_handler(log_file: Path, show_dialog: ShowDialog | None = None, *,
                          fault_handler: bool = True) -> CrashHandler:
    """Log uncaught exceptions of every thread to `log_file` (and `logging`), and call `show_dialog` for the GUI.

    `fault_handler` also sends native crash tracebacks (faulthandler) to `log_file`. Returns the handler; its
    `uninstall()` restores the previous hooks.
    """
    return CrashHandler(Path(log_file), show_dialog).install(fault_handler=fault_handler)
