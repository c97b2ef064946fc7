"""Starting the window: QApplication, the qasync event loop, single instance, controller, tray and shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from functools import partial
from types import FrameType

import qasync
from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication, QMessageBox

from comfystudio_desktop import __version__
from comfystudio_desktop.crash_handler import install_crash_handler
from comfystudio_desktop.home import Home
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.ui.app_controller import AppController
from comfystudio_desktop.ui.background_tasks import background_pool
from comfystudio_desktop.ui.gui_thread_gc import GuiThreadCollector
from comfystudio_desktop.ui.main_window import MainWindow
from comfystudio_desktop.ui.single_instance import SingleInstance
from comfystudio_desktop.ui.theme import apply_theme
from comfystudio_desktop.ui.tray import TrayController

__all__ = ["AppSession", "run_app"]

log = logging.getLogger(__name__)


class CrashBridge(QObject):
    """Carries the crash handler's message (from any thread) to a dialog on the GUI thread."""

    crashed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.crashed.connect(self._on_self_crashed)
        self._box: QMessageBox | None = None

    def _on_self_crashed(self, message: str) -> None:
        self._box = QMessageBox(QMessageBox.Icon.Critical, "ComfyStudio hit an unexpected error", message)
        self._box.open()


class FirstPaintReport(QObject):
    """Prints "painted in X s" (since `started`) when the window has first been painted; for start-up benchmarks."""

    def __init__(self, started: float, parent: QObject) -> None:
        super().__init__(parent)
        self._started = started

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Report the first paint, then stop listening."""
        if event.type() == QEvent.Type.Paint:
            watched.removeEventFilter(self)
            # Posted, so the line comes after this paint event has been handled.
            QTimer.singleShot(0, lambda: print(f"painted in {time.perf_counter() - self._started:.3f} s",
                                               flush=True))
        return False


class AppSession:
    """One running window with its controller and tray; `run()` is the app's whole life on the event loop."""

    def __init__(self, home: Home, settings: Settings, *, controller: AppController | None = None,
                 offer_first_run: bool = False) -> None:
        self.controller = controller or AppController(home, settings)
        self.offer_first_run = offer_first_run  # the app on a desktop: yes; a window embedded elsewhere: no
        self.tray = TrayController()
        self.window = MainWindow(self.controller, self.tray)
        self._quit = asyncio.get_event_loop().create_future()
        self.window.quit_requested.connect(self._on_window_quit_requested)

    def _on_window_quit_requested(self) -> None:
        if not self._quit.done():
            self._quit.set_result(None)

    async def start(self) -> None:
        """Show the window and open the queue; raises if Redis cannot be opened."""
        self.window.show()
        await self.controller.start()
        if self.offer_first_run and show_first_run(self.controller.settings):
            self.window.open_first_run()

    async def run(self, *, exit_when_ready: bool = False) -> int:
        """Start, wait for quit, shut down. Returns the exit code."""
        started = time.perf_counter()
        if exit_when_ready:
            self.window.installEventFilter(FirstPaintReport(started, self.window))
        try:
            await self.start()
        except Exception as exc:
            log.exception("Could not start")
            if not exit_when_ready:
                QMessageBox.critical(self.window, "ComfyStudio cannot start", str(exc))
            await self.shutdown()
            return 1
        if exit_when_ready:
            print(f"ready in {time.perf_counter() - started:.3f} s", flush=True)
        else:
            await self._quit
        await self.shutdown()
        return 0

    async def shutdown(self) -> None:
        """Stop worker, follower and (what we started of) Redis; close the window and the tray."""
        self.window.save_state()
        self.window.hide()  # gone at once for the user, while jobs are handed back and Redis saves
        await self.controller.shutdown(stop_services=True)
        background_pool().waitForDone(10_000)
        self.tray.hide()
        self.window.close_for_quit()


def show_first_run(settings: Settings) -> bool:
    """Whether to open the first-run assistant at start: until it was finished or skipped once."""
    return not settings.first_run_done


def _quit_on_signals(app: QApplication, window: MainWindow) -> None:
    """SIGTERM (logout, `kill`) and SIGINT (Ctrl+C) quit cleanly: jobs are handed back, Redis saves."""
    def quit_for(signum: int) -> None:
        log.info("Signal %d: quitting", signum)
        window.request_quit()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # Nothing is logged in here: a signal that lands inside a log write would make this one a reentrant write
        # on the same buffered file, which fails and loses the line. The event loop does both, right after.
        QTimer.singleShot(0, partial(quit_for, signum))

    for name in ("SIGTERM", "SIGINT", "SIGBREAK"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), on_signal)
    # Python runs signal handlers only between bytecodes; a light timer makes sure it gets the chance.
    wake = QTimer(app)
    wake.timeout.connect(lambda: None)
    wake.start(250)


def run_app(home: Home, settings: Settings, *, exit_when_ready: bool = False) -> int:
    """Run the window until the user quits (or, with `exit_when_ready`, until it is ready). Returns the exit code."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("ComfyStudio")
    app.setOrganizationName("ComfyStudio")
    app.setApplicationVersion(__version__)
    app.setQuitOnLastWindowClosed(False)  # the tray may keep the app alive; quitting is explicit
    apply_theme(app, settings.theme)
    bridge = CrashBridge(app)
    install_crash_handler(home.logs / "crash.log", bridge.crashed.emit)
    instance = SingleInstance(home.root)
    if not instance.claim():
        return 0
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    collector = GuiThreadCollector(app)  # Qt objects in reference cycles are freed on this thread, never a worker's
    collector.start()
    try:
        with loop:
            session = AppSession(home, settings, offer_first_run=not exit_when_ready)
            instance.activate_requested.connect(session.window.bring_to_front)
            _quit_on_signals(app, session.window)
            code: int = loop.run_until_complete(session.run(exit_when_ready=exit_when_ready))
            return code
    finally:
        collector.stop()
        instance.release()
