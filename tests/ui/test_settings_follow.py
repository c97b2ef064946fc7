"""The window picks up `config set` while running: live fields reach the controller and its worker thread."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from comfystudio_desktop.home import Home
from comfystudio_desktop.settings_watch import SettingsChange
from tests.cli_support import run_process
from tests.ui.window_session import Session, run_coro, run_until


def test_config_set_reaches_the_running_window(session: Session, home: Home, qtbot: QtBot) -> None:
    controller = session.app.controller
    changes: list[SettingsChange] = []
    controller.settings_changed.connect(changes.append)

    async def config_set(*args: str) -> int:
        import asyncio

        return (await asyncio.to_thread(run_process, "--home", str(home.root), "config", "set", *args)).code

    assert run_coro(qtbot, session.loop, config_set("pipeline_depth", "5")) == 0
    run_until(qtbot, lambda: controller.settings.pipeline_depth == 5, timeout=15, message="the live change")
    assert controller.worker is not None and controller.worker.consumer.settings.pipeline_depth == 5
    assert changes and changes[-1].live == {"pipeline_depth"} and not changes[-1].need_restart


def test_config_set_theme_switches_the_running_window(session: Session, home: Home, qtbot: QtBot) -> None:
    from PySide6.QtWidgets import QApplication

    from comfystudio_desktop.ui.theme import apply_theme, is_dark

    app = QApplication.instance()
    assert isinstance(app, QApplication)
    apply_theme(app, "light")
    try:
        code = run_coro(qtbot, session.loop, _config_set(home, "theme", "dark"))
        assert code == 0
        run_until(qtbot, lambda: is_dark(app.palette()), timeout=15, message="the dark palette")
        assert session.window.settings.theme == "dark"
    finally:
        apply_theme(app, "system")


async def _config_set(home: Home, *args: str) -> int:
    import asyncio

    return (await asyncio.to_thread(run_process, "--home", str(home.root), "config", "set", *args)).code
