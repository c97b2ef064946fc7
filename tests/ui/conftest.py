"""UI test setup: offscreen Qt, unexpected Qt warnings fail the test, no background work left behind."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import asyncio
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import qasync
from PIL import Image
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from comfystudio_desktop.home import Home
from comfystudio_desktop.settings import Settings, save_settings
from comfystudio_desktop.ui.background_tasks import background_pool
from comfystudio_desktop.ui.gui_thread_gc import GuiThreadCollector
from tests.fake_comfyui.process import FakeComfyProcess
from tests.ui.window_session import Session

_HERE = Path(__file__).resolve().parent
# What the offscreen platform says about features it lacks (e.g. when a completer popup opens; on Windows, when
# QWizard's Aero style asks for the native window the offscreen platform does not make).
_PLATFORM_NOISE = (r"^This plugin does not support", r"^Failed to obtain HWND for wizard\.$")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Make every test in tests/ui fail on a Qt warning or critical message (as qt_log_level_fail = WARNING)."""
    for item in items:
        if Path(item.path).resolve().is_relative_to(_HERE):
            item.add_marker(pytest.mark.qt_log_level_fail("WARNING"))
            item.add_marker(pytest.mark.qt_log_ignore(*_PLATFORM_NOISE))


@pytest.fixture(scope="session", autouse=True)
def _gui_thread_gc(qapp: QApplication) -> Iterator[None]:
    """Garbage is collected as the app collects it: on the GUI thread only (ui/gui_thread_gc.py)."""
    collector = GuiThreadCollector(qapp)
    collector.start()
    yield
    collector.stop()


@pytest.fixture(autouse=True)
def _no_background_work_left() -> Iterator[None]:
    """A test must not leave image decoding running on the UI thread pool."""
    yield
    assert background_pool().waitForDone(10_000), "UI background work still running after the test"


def _encode(size: tuple[int, int] = (64, 48), colour: str = "red", fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, fmt)
    return out.getvalue()


@pytest.fixture
def make_image() -> Callable[..., bytes]:
    """`make_image(size=(64, 48), colour="red", fmt="PNG")` -> encoded image bytes."""
    return _encode


@pytest.fixture
def png_file(tmp_path: Path) -> Path:
    """A valid 64×48 PNG on disk."""
    path = tmp_path / "photo.png"
    path.write_bytes(_encode())
    return path


@pytest.fixture
def loop(qapp: QApplication) -> Iterator[qasync.QEventLoop]:
    """The qasync loop as the app uses it, in the mode where Qt's event processing runs it: so whatever
    processes Qt events in a test (qtbot.waitUntil, pytest-qt itself) also runs asyncio tasks."""
    event_loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(event_loop)
    yield event_loop
    # stop() would call QApplication.exit(), which outside exec() leaves Qt's quit flag set so that every later
    # QEventLoop.exec() (pytest-qt's waits) returns at once. There is no exec() to leave: just mark it stopped.
    event_loop._QEventLoop__is_running = False
    # What run_forever() does when it returns, and aboutToQuit in this mode: on Windows it stops the thread that
    # polls the IOCP proactor, which must not be polling while close() closes the proactor under it.
    event_loop._after_run_forever()
    event_loop.close()  # also joins the loop's executor threads
    asyncio.events._set_running_loop(None)
    asyncio.set_event_loop(None)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeComfyProcess]:
    """A fake ComfyUI on loopback (fast steps)."""
    with FakeComfyProcess(output_dir=tmp_path / "comfy-out", step_time=0.01) as proc:
        yield proc


@pytest.fixture
def settings(home: Home, fake: FakeComfyProcess) -> Settings:
    """Settings that point at the fake ComfyUI, saved in the home."""
    settings = Settings(comfy_url=fake.url, lease_seconds=5.0, notifications=True)
    save_settings(home.config_file, settings)
    return settings


@pytest.fixture
def session(qtbot: QtBot, loop: qasync.QEventLoop, home: Home, settings: Settings) -> Iterator[Session]:
    """The whole window on the fake ComfyUI and the home's real embedded Redis, closed afterwards."""
    started = Session(qtbot, loop, home, settings)
    yield started
    started.close()
