"""The first-run assistant, offscreen, on the real window: finds the fake ComfyUI, tests it, makes a first image."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pytestqt.qtbot import QtBot

from comfystudio_desktop.comfy.comfy_discovery import InstallKind
from comfystudio_desktop.home import Home
from comfystudio_desktop.settings import Settings, load_settings
from comfystudio_desktop.ui.app import show_first_run
from comfystudio_desktop.ui.first_run import FirstRunWizard
from tests.fake_comfyui.process import FakeComfyProcess
from tests.ui.window_session import Session, run_until


def _open(session: Session, qtbot: QtBot) -> FirstRunWizard:
    wizard = session.window.open_first_run()
    qtbot.addWidget(wizard)
    return wizard


def test_shown_until_finished_or_skipped_once() -> None:
    assert show_first_run(Settings()) and not show_first_run(Settings(first_run_done=True))


def test_finds_the_running_comfyui_tests_it_and_makes_a_first_image(session: Session, qtbot: QtBot, home: Home,
                                                                    fake: FakeComfyProcess) -> None:
    wizard = _open(session, qtbot)
    found = wizard.find_page.list
    run_until(qtbot, lambda: found.count() > 0 and wizard.install is not None, message="the search")
    assert wizard.install is not None and wizard.install.kind is InstallKind.RUNNING
    assert wizard.install.url == fake.url and fake.url in found.item(0).text()
    wizard.next()
    assert wizard.mode_page.external.isChecked() and not wizard.mode_page.managed.isEnabled()
    assert wizard.mode_page.url.text() == fake.url
    wizard.next()
    run_until(qtbot, lambda: wizard.test_page.passed, message="the test")
    assert wizard.test_page.result.text().startswith("✓ ComfyUI")
    wizard.next()
    run_until(qtbot, lambda: session.window.prompt_panel.model_combo.current_model(), message="models listed")
    wizard.image_page.generate_button.click()
    assert wizard.image_page.job_id
    run_until(qtbot, lambda: wizard.image_page.image.pixmap() is not None
              and not wizard.image_page.image.pixmap().isNull(), timeout=60, message="the first image")
    assert wizard.image_page.status.text().startswith("Done:")
    with qtbot.waitSignal(wizard.settings_chosen, timeout=5000):
        wizard.accept()
    saved = load_settings(home.config_file)
    assert (saved.first_run_done, saved.comfy_mode, saved.comfy_url) == (True, "external", fake.url)
    assert session.window.settings == saved


def test_a_folder_the_user_points_at_can_be_managed(session: Session, qtbot: QtBot, tmp_path: Path) -> None:
    folder = tmp_path / "ComfyUI"
    (folder / "comfy").mkdir(parents=True)
    (folder / "main.py").write_text("print('ComfyUI')\n")
    venv_python = folder / ".venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    os.symlink(sys.executable, venv_python)
    wizard = _open(session, qtbot)
    page = wizard.find_page
    assert not page.choose_folder(tmp_path / "elsewhere") and "No ComfyUI in" in page.status.text()
    assert page.choose_folder(folder)
    assert wizard.install is not None and wizard.install.kind is InstallKind.FOLDER
    wizard.next()
    assert wizard.mode_page.managed.isChecked() and wizard.mode_page.python.text() == str(venv_python)
    chosen = wizard.chosen()
    assert (chosen.comfy_mode, chosen.comfy_main, chosen.comfy_python) == ("managed", str(folder / "main.py"),
                                                                          str(venv_python))
    wizard.next()
    run_until(qtbot, lambda: wizard.test_page.passed, message="the managed test")
    assert "Python 3" in wizard.test_page.result.text()
    run_until(qtbot, lambda: page.status.text() != "Looking for ComfyUI…", message="the search to end")


def test_skip_only_remembers_that_it_was_skipped(session: Session, qtbot: QtBot, home: Home,
                                                  fake: FakeComfyProcess) -> None:
    before = load_settings(home.config_file)
    wizard = _open(session, qtbot)
    run_until(qtbot, lambda: wizard.find_page.list.count() > 0, message="the search")
    wizard.reject()
    after = load_settings(home.config_file)
    assert after.first_run_done and after.with_changes(first_run_done=False) == before
