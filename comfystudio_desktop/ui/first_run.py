"""The first-run assistant: find ComfyUI, choose managed or external, test it, and make a first image.

Shown on the first start (until `first_run_done`), and from Help → First-run assistant. Discovery is
`comfy.comfy_discovery` (Qt-free, tested on folders); the blocking checks run as background `Operation`s.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from comfystudio_desktop.comfy.comfy_discovery import (
    DEFAULT_URL,
    ComfyInstall,
    InstallKind,
    discover_installs,
    find_python,
    install_at,
    probe_server,
)
from comfystudio_desktop.jobs import JobEvent, JobStatus
from comfystudio_desktop.settings import Settings, SettingsError, load_settings, save_settings
from comfystudio_desktop.ui.operations import Operation

__all__ = ["FirstRunWizard", "Found", "chosen_settings", "find_comfy"]

log = logging.getLogger(__name__)
Spawn = Callable[[Coroutine[Any, Any, None]], object]


@dataclass(frozen=True, slots=True)
class Found:
    """What the search found: servers answering and installs on disk."""

    installs: tuple[ComfyInstall, ...]


def find_comfy(urls: tuple[str, ...], home: Path) -> Found:
    """Probe each URL's `/system_stats` and look in the usual folders (blocking: run it in the background)."""
    running = []
    for url in dict.fromkeys(urls):
        probe = probe_server(url, timeout=1.5)
        if probe is not None:
            running.append(ComfyInstall(InstallKind.RUNNING, url=probe.url, version=probe.version))
    return Found((*running, *discover_installs(os.environ, home, sys.platform)))


def chosen_settings(settings: Settings, install: ComfyInstall | None, *, managed: bool, url: str) -> Settings:
    """The settings for the user's choice: watch `url`, or start and supervise `install`."""
    if managed and install is not None and install.can_manage:
        return settings.with_changes(comfy_mode="managed", comfy_main=str(install.main),
                                     comfy_python=str(install.python),
                                     comfy_models_dir=str(install.models_dir or settings.comfy_models_dir),
                                     first_run_done=True)
    models = str(install.models_dir) if install is not None and install.models_dir else settings.comfy_models_dir
    return settings.with_changes(comfy_mode="external", comfy_url=url or DEFAULT_URL, comfy_models_dir=models,
                                 first_run_done=True)


def python_runs(python: Path) -> str:
    """The version line of `python`, or raise OSError/CalledProcessError if it does not run."""
    flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)  # Windows: no console flashes up from the window
    done = subprocess.run([str(python), "--version"], capture_output=True, text=True, timeout=30, check=True,
                          stdin=subprocess.DEVNULL, creationflags=flags)
    return (done.stdout or done.stderr).strip()


class _FindPage(QWizardPage):
    def __init__(self, wizard: FirstRunWizard) -> None:
        super().__init__(wizard)
        self.setTitle("Find ComfyUI")
        self.setSubTitle("ComfyStudio makes images with ComfyUI. It looks for a running ComfyUI and for the usual "
                         "install folders; you can also point at the folder yourself.")
        self._wizard = wizard
        self.list = QListWidget(self)
        self.list.setAccessibleName("ComfyUI installs found")
        self.status = QLabel("Looking…", self)
        self.status.setWordWrap(True)
        self.again = QPushButton("Look &again", self)
        self.again.setAccessibleName("Look again")
        self.browse = QPushButton("Choose a &folder…", self)
        self.browse.setAccessibleName("Choose a ComfyUI folder")
        layout = QVBoxLayout(self)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.status)
        layout.addWidget(self.again)
        layout.addWidget(self.browse)
        self.again.clicked.connect(self.search)
        self.browse.clicked.connect(self._on_browse_clicked)
        self.list.currentRowChanged.connect(self._on_list_current_row_changed)

    def initializePage(self) -> None:
        """Search when the page is first shown."""
        if self.list.count() == 0:
            self.search()

    def search(self) -> None:
        """Probe and look in the background; the list fills when done."""
        self.status.setText("Looking for ComfyUI…")
        urls = (self._wizard.settings.comfy_url, DEFAULT_URL)
        operation = Operation(lambda: find_comfy(urls, Path.home()), "find ComfyUI")
        self._wizard.spawn(operation.success(self.show_found).failure(self._on_search_failed).owned_by(self).run())

    def show_found(self, found: Found) -> None:
        """List what was found (a running server first) and select the first."""
        self.list.clear()
        for install in found.installs:
            self.add_install(install)
        self.status.setText("Choose the ComfyUI to use." if found.installs else
                            "No ComfyUI found: start it, then Look again, or choose its folder.")

    def add_install(self, install: ComfyInstall) -> None:
        """Add one install to the list and select it."""
        item = QListWidgetItem(install.describe())
        item.setData(Qt.ItemDataRole.UserRole, install)
        self.list.addItem(item)
        if self.list.currentRow() < 0:
            self.list.setCurrentRow(0)

    def choose_folder(self, folder: Path) -> bool:
        """Use the ComfyUI in `folder` (portable build, checkout or Desktop's folder); False if none is there."""
        install = install_at(folder)
        if install is None:
            self.status.setText(f"No ComfyUI in {folder}: choose the folder that holds main.py "
                                "(or ComfyUI_windows_portable).")
            return False
        self.add_install(install)
        self.list.setCurrentRow(self.list.count() - 1)
        return True

    def _on_browse_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose the ComfyUI folder", str(Path.home()))
        if folder:
            self.choose_folder(Path(folder))

    def _on_search_failed(self, exc: Exception) -> None:
        self.status.setText(f"Could not look for ComfyUI: {exc}")

    def _on_list_current_row_changed(self, row: int) -> None:
        item = self.list.item(row)
        install = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        self._wizard.install = install if isinstance(install, ComfyInstall) else None


class _ModePage(QWizardPage):
    def __init__(self, wizard: FirstRunWizard) -> None:
        super().__init__(wizard)
        self.setTitle("How should ComfyStudio use it?")
        self._wizard = wizard
        self.managed = QRadioButton("&Managed: ComfyStudio starts ComfyUI and restarts it if it stops", self)
        self.managed.setAccessibleName("Managed mode")
        self.external = QRadioButton("&External: ComfyUI runs on its own; ComfyStudio only connects", self)
        self.external.setAccessibleName("External mode")
        group = QButtonGroup(self)
        group.addButton(self.managed)
        group.addButton(self.external)
        self.url = QLineEdit(self)
        self.url.setAccessibleName("ComfyUI URL")
        self.python = QLineEdit(self)
        self.python.setAccessibleName("Python")
        self.python.setPlaceholderText("the Python that runs ComfyUI")
        self.python_button = QPushButton("Choose &Python…", self)
        self.python_button.setAccessibleName("Choose Python")
        self.note = QLabel(self)
        self.note.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow(self.managed)
        form.addRow(self.external)
        form.addRow("ComfyUI URL", self.url)
        form.addRow("Python", self.python)
        form.addRow("", self.python_button)
        form.addRow(self.note)
        self.python_button.clicked.connect(self._on_python_button_clicked)

    def initializePage(self) -> None:
        """Offer managed mode when we can start the chosen install, external otherwise."""
        install = self._wizard.install
        runnable = install is not None and install.main is not None
        self.managed.setEnabled(runnable)
        (self.managed if runnable and install is not None and install.can_manage else self.external).setChecked(True)
        self.url.setText(install.url if install is not None and install.url else self._wizard.settings.comfy_url)
        python = install.python if install is not None else None
        self.python.setText(str(python) if python else "")
        self.python.setEnabled(runnable)
        self.python_button.setEnabled(runnable)
        self.note.setText("" if runnable else "Managed mode needs ComfyUI's folder (main.py); this one is "
                          "only connected to.")

    def chosen_install(self) -> ComfyInstall | None:
        """The install with the Python the user may have picked."""
        install = self._wizard.install
        text = self.python.text().strip()
        if install is None or not text:
            return install
        return ComfyInstall(install.kind, install.root, install.main, Path(text), install.models_dir, install.url,
                            install.version)

    def _on_python_button_clicked(self) -> None:
        install = self._wizard.install
        start = str(install.root) if install is not None and install.root else str(Path.home())
        chosen, _ = QFileDialog.getOpenFileName(self, "Choose the Python that runs ComfyUI", start)
        if chosen:
            self.python.setText(chosen)
        elif install is not None and install.root is not None and (found := find_python(install.root)):
            self.python.setText(str(found))


class _TestPage(QWizardPage):
    def __init__(self, wizard: FirstRunWizard) -> None:
        super().__init__(wizard)
        self.setTitle("Test it")
        self._wizard = wizard
        self.result = QLabel("Press Test.", self)
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.test_button = QPushButton("&Test", self)
        self.test_button.setAccessibleName("Test ComfyUI")
        self.passed = False
        layout = QVBoxLayout(self)
        layout.addWidget(self.test_button)
        layout.addWidget(self.result, 1)
        self.test_button.clicked.connect(self.run_test)

    def initializePage(self) -> None:
        """Test at once: the user came here to see whether it works."""
        self.run_test()

    def run_test(self) -> None:
        """External: ask the URL for /system_stats. Managed: the files are there and the Python runs."""
        self.passed = False
        self.result.setText("Testing…")
        settings = self._wizard.chosen()
        if settings.comfy_mode == "managed":
            operation: Operation[str] = Operation(lambda: _test_managed(settings), "test managed ComfyUI")
        else:
            operation = Operation(lambda: _test_external(settings.comfy_url), "test ComfyUI URL")
        self._wizard.spawn(operation.success(self._on_test_passed).failure(self._on_test_failed).owned_by(self).run())

    def _on_test_passed(self, text: str) -> None:
        self.passed = True
        self.result.setText(f"✓ {text}")

    def _on_test_failed(self, exc: Exception) -> None:
        self.result.setText(f"✗ {exc}\n\nYou can go on anyway and change this later in Settings → ComfyUI.")


def _test_external(url: str) -> str:
    probe = probe_server(url, timeout=3.0)
    if probe is None:
        raise ConnectionError(f"No ComfyUI answers at {url}")
    return f"ComfyUI {probe.version} answers at {url}."


def _test_managed(settings: Settings) -> str:
    if not Path(settings.comfy_main).is_file():
        raise FileNotFoundError(f"main.py is missing: {settings.comfy_main}")
    version = python_runs(Path(settings.comfy_python))
    return f"{version} runs {settings.comfy_main}; ComfyStudio will start it (after a restart of the app)."


class _ImagePage(QWizardPage):
    def __init__(self, wizard: FirstRunWizard) -> None:
        super().__init__(wizard)
        self.setTitle("A first image")
        self.setSubTitle("Make one small image to see everything work end to end.")
        self._wizard = wizard
        self.generate_button = QPushButton("&Generate a first image", self)
        self.generate_button.setAccessibleName("Generate a first image")
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.image = QLabel(self)
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setMinimumHeight(160)
        layout = QVBoxLayout(self)
        layout.addWidget(self.generate_button)
        layout.addWidget(self.status)
        layout.addWidget(self.image, 1)
        self.job_id = ""
        self.generate_button.clicked.connect(self._on_generate_button_clicked)

    def _on_generate_button_clicked(self) -> None:
        self._wizard.first_image_requested.emit()

    def follow(self, job_id: str) -> None:
        """Show the progress of the submitted job `job_id` ("" when it could not be submitted)."""
        self.job_id = job_id
        self.status.setText("Queued…" if job_id else "Could not queue a job: see the prompt panel for why.")

    def on_job_event(self, event: JobEvent, output: Path | None) -> None:
        """The first job changed; at the end show its image (or why it failed)."""
        if event.job_id != self.job_id:
            return
        if event.status is JobStatus.FINISHED and output is not None:
            image = QImage(str(output))
            self.image.setPixmap(QPixmap.fromImage(image.scaled(256, 256, Qt.AspectRatioMode.KeepAspectRatio)))
            self.status.setText(f"Done: {output.name}. Finish to start using ComfyStudio.")
        elif event.status is JobStatus.FAILED:
            self.status.setText(f"The job failed: {event.error}")
        else:
            self.status.setText(f"{event.status.value.capitalize()} · {event.progress} %")


class FirstRunWizard(QWizard):
    """The assistant. `settings_chosen` carries the settings saved on Finish (Skip only marks it done)."""

    settings_chosen = Signal(Settings)
    #: The user asked for a first image; the window submits one and calls `follow_first_image(job_id)`.
    first_image_requested = Signal()

    def __init__(self, settings: Settings, config_file: Path, spawn: Spawn, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Welcome to ComfyStudio")
        self.setObjectName("firstRunWizard")
        self.settings = settings
        self.spawn = spawn
        self._config_file = config_file
        self.install: ComfyInstall | None = None
        self.find_page = _FindPage(self)
        self.mode_page = _ModePage(self)
        self.test_page = _TestPage(self)
        self.image_page = _ImagePage(self)
        for page in (self.find_page, self.mode_page, self.test_page, self.image_page):
            self.addPage(page)
        self.setButtonText(QWizard.WizardButton.CancelButton, "Skip")
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage)
        self.accepted.connect(self._on_accepted)
        self.rejected.connect(self._on_rejected)

    def chosen(self) -> Settings:
        """The settings for what is chosen on the pages now."""
        return chosen_settings(self.settings, self.mode_page.chosen_install(),
                               managed=self.mode_page.managed.isChecked(), url=self.mode_page.url.text().strip())

    def follow_first_image(self, job_id: str) -> None:
        """The window queued the first image as `job_id` ("" if it could not)."""
        self.image_page.follow(job_id)

    def on_job_event(self, event: JobEvent, output: Path | None) -> None:
        """A job changed (the window passes every event, with the job's output file once there is one)."""
        self.image_page.on_job_event(event, output)

    def _save(self, settings: Settings) -> Settings | None:
        try:
            save_settings(self._config_file, settings)
        except (SettingsError, OSError) as exc:
            log.warning("First-run choice not saved: %s", exc)
            return None
        return settings

    def _on_accepted(self) -> None:
        saved = self._save(self.chosen())
        if saved is not None:
            self.settings_chosen.emit(saved)

    def _on_rejected(self) -> None:
        """Skipped: remember that, and change nothing else (the file may have changed meanwhile)."""
        try:
            current = load_settings(self._config_file)
        except (SettingsError, OSError):
            current = self.settings
        saved = self._save(current.with_changes(first_run_done=True))
        if saved is not None:
            self.settings_chosen.emit(saved)
