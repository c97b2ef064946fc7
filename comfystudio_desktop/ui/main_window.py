"""The main window: prompt panel on the left, jobs table and viewer on the right, toolbar, status bar, tray."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt, QUrl, Signal, qVersion
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QKeySequence
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QMessageBox, QScrollArea, QSplitter, QToolBar, QWidget

from comfystudio_desktop import __version__
from comfystudio_desktop.jobs import Job, JobEvent, JobRecord, JobStatus
from comfystudio_desktop.storage_retention import DROPPED_FOLDER
from comfystudio_desktop.supervise.service_state import ServiceState, State
from comfystudio_desktop.ui.app_controller import AppController
from comfystudio_desktop.ui.jobs_model import JobsTableModel
from comfystudio_desktop.ui.jobs_view import JobsView
from comfystudio_desktop.ui.prompt_panel import PromptPanel
from comfystudio_desktop.ui.services_panel import ServicesPanel
from comfystudio_desktop.ui.settings_dialog import SettingsDialog
from comfystudio_desktop.ui.tray import TrayController, TrayState
from comfystudio_desktop.ui.viewer_pane import ViewerPane

__all__ = ["MainWindow"]

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    """What the user sees. Every button reaches the core in two hops: a slot here, then the controller."""

    quit_requested = Signal()

    def __init__(self, controller: AppController, tray: TrayController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.tray = tray
        home, settings = controller.home, controller.settings
        self.settings = settings
        self.setWindowTitle("ComfyStudio")
        self.setMinimumSize(960, 600)
        self._ui_state = QSettings(str(home.root / "ui-state.ini"), QSettings.Format.IniFormat)
        self._seen_active: set[str] = set()  # jobs seen queued/running in this session (they get notifications)
        self._fetching: set[str] = set()  # jobs whose full record is being read
        self._counts = (0, 0)
        self._comfy_up = True
        self._redis_up = True
        self._quitting = False

        self.prompt_panel = PromptPanel(home.storage / DROPPED_FOLDER, max_image_bytes=settings.max_upload_mb * 2**20,
                                        max_image_pixels=settings.max_image_pixels)
        scroll = QScrollArea(self)
        scroll.setObjectName("promptScroll")
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.prompt_panel)
        scroll.setMinimumWidth(380)
        self.model = JobsTableModel(self._resolve_image)
        self.jobs_view = JobsView(self.model, home.outputs, self)
        self.viewer = ViewerPane(self)
        self.right_splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.right_splitter.addWidget(self.jobs_view)
        self.right_splitter.addWidget(self.viewer)
        self.right_splitter.setStretchFactor(0, 3)
        self.right_splitter.setStretchFactor(1, 2)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setObjectName("mainSplitter")
        self.splitter.addWidget(scroll)
        self.splitter.addWidget(self.right_splitter)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([400, 880])
        self.setCentralWidget(self.splitter)
        self.services_panel = ServicesPanel(self)
        self.services_dock = QDockWidget("Services", self)
        self.services_dock.setObjectName("servicesDock")
        self.services_dock.setWidget(self.services_panel)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.services_dock)
        self.services_dock.hide()
        self._service_faults: dict[str, str] = {}
        self._make_toolbar()
        self._make_status_bar()
        self._connect()
        self._restore_state()

    # -- construction ----------------------------------------------------------------------------------------
    def _make_toolbar(self) -> None:
        bar = QToolBar("Main", self)
        bar.setObjectName("mainToolbar")
        bar.setMovable(False)
        self.addToolBar(bar)
        self.pause_action = QAction("Pause queue", self, checkable=True)
        self.pause_action.setShortcut(QKeySequence("Ctrl+P"))
        self.pause_action.setToolTip("Stop starting new jobs (running jobs finish) — Ctrl+P")
        self.refresh_action = QAction("Refresh models", self)
        self.refresh_action.setShortcut(QKeySequence("F5"))
        self.settings_action = QAction("Settings…", self)
        self.settings_action.setShortcut(QKeySequence.StandardKey.Preferences)
        self.outputs_action = QAction("Open outputs folder", self)
        self.about_action = QAction("About", self)
        self.quit_action = QAction("Quit", self)
        self.quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        self.services_action = self.services_dock.toggleViewAction()
        self.services_action.setText("Services")
        self.services_action.setToolTip("redis-server and ComfyUI: state, restarts, logs")
        for action in (self.pause_action, self.refresh_action, self.settings_action, self.outputs_action,
                       self.services_action, self.about_action):
            bar.addAction(action)
        self.addAction(self.quit_action)

    def _make_status_bar(self) -> None:
        status = self.statusBar()
        self.redis_label = QLabel("Redis: starting…")
        self.comfy_label = QLabel("ComfyUI: checking…")
        self.counts_label = QLabel("0 queued · 0 running")
        self.worker_label = QLabel("Worker: starting")
        for label in (self.redis_label, self.comfy_label, self.counts_label, self.worker_label):
            status.addPermanentWidget(label)

    def _connect(self) -> None:
        c = self.controller
        c.job_event.connect(self._on_controller_job_event)
        c.records_loaded.connect(self._on_controller_records_loaded)
        c.models_loaded.connect(self.prompt_panel.set_models)
        c.workflows_loaded.connect(self.prompt_panel.set_workflows)
        c.redis_changed.connect(self._on_controller_redis_changed)
        c.comfy_changed.connect(self._on_controller_comfy_changed)
        c.counts_changed.connect(self._on_controller_counts_changed)
        c.worker_changed.connect(self._on_controller_worker_changed)
        c.problem.connect(self._on_controller_problem)
        c.service_changed.connect(self._on_controller_service_changed)
        self.services_panel.restart_requested.connect(lambda name: c.spawn(c.run_service_action("restart", name)))
        self.services_panel.stop_requested.connect(lambda name: c.spawn(c.run_service_action("stop", name)))
        self.services_panel.repair_requested.connect(lambda name: c.spawn(c.run_service_action("repair", name)))
        self.services_panel.open_log_requested.connect(self._on_services_panel_open_log_requested)
        self.prompt_panel.generate_requested.connect(self._on_prompt_panel_generate_requested)
        self.prompt_panel.model_combo.refresh_requested.connect(self._on_refresh_action_triggered)
        self.jobs_view.cancel_requested.connect(self._on_jobs_view_cancel_requested)
        self.jobs_view.retry_requested.connect(self._on_jobs_view_retry_requested)
        self.jobs_view.rerun_requested.connect(self._on_jobs_view_rerun_requested)
        self.jobs_view.load_requested.connect(self.prompt_panel.load_job)
        self.jobs_view.open_requested.connect(self._on_jobs_view_open_requested)
        self.jobs_view.show_in_folder_requested.connect(self._on_jobs_view_show_in_folder_requested)
        self.jobs_view.selection_changed.connect(self._on_jobs_view_selection_changed)
        self.pause_action.toggled.connect(self._on_pause_action_toggled)
        self.refresh_action.triggered.connect(self._on_refresh_action_triggered)
        self.settings_action.triggered.connect(self._on_settings_action_triggered)
        self.outputs_action.triggered.connect(self._on_outputs_action_triggered)
        self.quit_action.triggered.connect(self.request_quit)
        self.about_action.triggered.connect(self._on_about_action_triggered)
        self.tray.show_requested.connect(self.bring_to_front)
        self.tray.pause_toggled.connect(self.pause_action.setChecked)
        self.tray.open_outputs_requested.connect(self._on_outputs_action_triggered)
        self.tray.quit_requested.connect(self.request_quit)
        self.tray.notification_clicked.connect(self._on_tray_notification_clicked)

    # -- window state ----------------------------------------------------------------------------------------
    def _restore_state(self) -> None:
        geometry = self._ui_state.value("geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 760)
        for key, splitter in (("splitter", self.splitter), ("right_splitter", self.right_splitter)):
            value = self._ui_state.value(key)
            if isinstance(value, QByteArray):
                splitter.restoreState(value)

    def save_state(self) -> None:
        """Remember geometry and splitter positions (QSettings file in the home)."""
        self._ui_state.setValue("geometry", self.saveGeometry())
        self._ui_state.setValue("splitter", self.splitter.saveState())
        self._ui_state.setValue("right_splitter", self.right_splitter.saveState())
        self._ui_state.sync()

    def bring_to_front(self) -> None:
        """Show, un-minimise and focus the window (tray click, second instance)."""
        self.show()
        self.setWindowState(self.windowState() & ~Qt.WindowState.WindowMinimized | Qt.WindowState.WindowActive)
        self.raise_()
        self.activateWindow()

    def request_quit(self) -> None:
        """Quit for real (not to the tray)."""
        self._quitting = True
        self.save_state()
        self.quit_requested.emit()

    def close_for_quit(self) -> None:
        """Close the window at the end of shutdown (no tray, no second quit request)."""
        self._quitting = True
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Close to the tray when the user asked for it and a tray exists; otherwise quit."""
        if not self._quitting and self.settings.close_to_tray and self.tray.available:
            self.save_state()
            self.hide()
            event.ignore()
            return
        if not self._quitting:
            event.ignore()
            self.request_quit()
            return
        event.accept()

    # -- controller → view -----------------------------------------------------------------------------------
    def _on_controller_records_loaded(self, records: list[JobRecord]) -> None:
        self.model.upsert_records(records)
        for record in records:
            self._fetching.discard(record.job_id)
            if not record.status.is_terminal:
                self._seen_active.add(record.job_id)
        self.jobs_view.refresh_actions()

    def _on_controller_job_event(self, event: JobEvent) -> None:
        if event.preview is not None:
            self._show_preview(event)
            return
        self.model.apply_event(event)
        record = self.model.record(event.job_id)
        if record is not None and record.job is None and event.job_id not in self._fetching:
            # A job this window did not submit (CLI, another worker): its parameters are in its status hash.
            self._fetching.add(event.job_id)
            self.controller.spawn(self.controller.load_record(event.job_id))
        if not event.status.is_terminal:
            self._seen_active.add(event.job_id)
        elif event.job_id in self._seen_active:
            self._seen_active.discard(event.job_id)
            self._on_job_ended(event)
        if event.status is JobStatus.FINISHED and self.viewer.shown_job == event.job_id:
            self._show_record(event.job_id)
        self.jobs_view.refresh_actions()

    def _on_job_ended(self, event: JobEvent) -> None:
        record = self.model.record(event.job_id)
        prompt = record.job.prompt if record is not None and record.job is not None else event.job_id
        short = prompt if len(prompt) <= 60 else prompt[:57] + "…"
        if event.status is JobStatus.FINISHED and event.seed_used is not None:
            self.prompt_panel.set_last_seed(event.seed_used)
        if not self.settings.notifications:
            return
        if event.status is JobStatus.FINISHED:
            self.tray.notify("Image ready", short, event.job_id)
        elif event.status is JobStatus.FAILED:
            self.tray.notify("Job failed", f"{short}\n{event.error}", event.job_id, error=True)

    def _show_preview(self, event: JobEvent) -> None:
        selected = self.jobs_view.selected_records()
        following = not selected or (len(selected) == 1 and selected[0].job_id == event.job_id)
        if following and event.preview is not None:
            self.viewer.show_preview(event.job_id, event.preview, f"Live preview · {event.progress}%")

    def _show_record(self, job_id: str) -> None:
        record = self.model.record(job_id)
        if record is None:
            self.viewer.clear()
            return
        path = self.jobs_view.output_path(record)
        if path is not None:
            seed = f" · seed {record.seed_used}" if record.seed_used is not None else ""
            self.viewer.show_file(job_id, path, f"{path.name}{seed}")
        elif record.status is JobStatus.FAILED:
            self.viewer.clear(f"Failed: {record.error}")
        else:
            self.viewer.clear(f"{record.status.value.capitalize()} · {record.progress}%")
            self.viewer.shown_job = job_id

    def _on_jobs_view_selection_changed(self, record: JobRecord | None) -> None:
        if record is None:
            self.viewer.clear()
        else:
            self._show_record(record.job_id)

    def _on_controller_redis_changed(self, up: bool, text: str) -> None:
        self._redis_up = up
        self.redis_label.setText(text)
        self.redis_label.setToolTip("" if up else "The queue's Redis server is not answering; reconnecting")
        self._update_tray()

    def _on_controller_comfy_changed(self, up: bool, text: str) -> None:
        self._comfy_up = up
        self.comfy_label.setText(text)
        self._update_tray()

    def _on_controller_counts_changed(self, queued: int, running: int) -> None:
        self._counts = (queued, running)
        self.counts_label.setText(f"{queued} queued · {running} running")
        self._update_tray()

    def _on_controller_worker_changed(self, state: str) -> None:
        self.worker_label.setText(f"Worker: {state}")
        paused = state == "paused"
        self.tray.set_paused(paused)
        self.pause_action.blockSignals(True)
        self.pause_action.setChecked(paused)
        self.pause_action.setText("Resume queue" if paused else "Pause queue")
        self.pause_action.blockSignals(False)

    def _on_controller_problem(self, message: str) -> None:
        log.warning("Shown to the user: %s", message)
        self.statusBar().showMessage(message, 15_000)

    def _on_controller_service_changed(self, state: ServiceState) -> None:
        self.services_panel.update_state(state)
        fault = state.state in (State.FATAL, State.HUNG, State.RESTARTING)
        previous = self._service_faults.get(state.name, "")
        if fault:
            text = f"{state.name}: {state.state.value}" + (f" — {state.message}" if state.message else "")
            self._service_faults[state.name] = text
            if state.state is not State.RESTARTING or not previous:
                self.statusBar().showMessage(text, 15_000)
            if state.state is State.FATAL and not previous.startswith(f"{state.name}: fatal"):
                self.services_dock.show()
                self.tray.notify("A service stopped", text, "", error=True)
        else:
            self._service_faults.pop(state.name, None)
        self._update_tray()

    def _on_services_panel_open_log_requested(self, name: str) -> None:
        services = self.controller.services
        if services is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(services.log_file(name))))

    def _update_tray(self) -> None:
        queued, running = self._counts
        problem = "" if self._redis_up else "Redis is reconnecting"
        if not self._comfy_up:
            problem = "ComfyUI is unreachable"
        if self._service_faults:
            problem = "; ".join(sorted(self._service_faults.values()))
        state = TrayState.ERROR if problem else TrayState.WORKING if running else TrayState.IDLE
        self.tray.set_state(state, queued, running, problem)

    # -- view → controller -----------------------------------------------------------------------------------
    def _on_prompt_panel_generate_requested(self, job: Job) -> None:
        self._add_submitted(job)
        self.controller.spawn(self.controller.submit(job))

    def _add_submitted(self, job: Job) -> None:
        """Show a job's row the moment it is submitted, with its parameters (the queue's events follow)."""
        self.model.upsert_record(JobRecord(job_id=job.job_id, status=JobStatus.QUEUED, created_at=job.created_at,
                                           updated_at=job.created_at, job=job))
        self._seen_active.add(job.job_id)

    def _on_jobs_view_cancel_requested(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            self.controller.spawn(self.controller.cancel(job_id))

    def _on_jobs_view_retry_requested(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            self.controller.spawn(self.controller.retry(job_id))

    def _on_jobs_view_rerun_requested(self, jobs: list[Job]) -> None:
        for job in jobs:
            again = job.rerun()
            self._add_submitted(again)
            self.controller.spawn(self.controller.submit(again))

    def _on_pause_action_toggled(self, paused: bool) -> None:
        self.controller.set_paused(paused)

    def _on_refresh_action_triggered(self) -> None:
        self.controller.spawn(self.controller.refresh_models())

    def _on_settings_action_triggered(self) -> None:
        dialog = SettingsDialog(self.settings, self.controller.home.config_file, self)
        dialog.setModal(True)
        dialog.accepted.connect(lambda: self._on_settings_dialog_accepted(dialog))
        dialog.open()

    def _on_settings_dialog_accepted(self, dialog: SettingsDialog) -> None:
        if dialog.result_settings is not None:
            self.settings = dialog.result_settings
            self.prompt_panel.set_image_limits(self.settings.max_upload_mb * 2**20, self.settings.max_image_pixels)
            self.statusBar().showMessage("Settings saved; connection changes apply after a restart.", 10_000)

    def about_text(self) -> str:
        """What the About box says: version, where data lives, which Redis and ComfyUI."""
        home = self.controller.home
        runtime = self.controller.runtime
        redis = str(runtime.endpoint) if runtime is not None else "not connected"
        return (f"<b>ComfyStudio Desktop {__version__}</b><br>A desktop front end for a local ComfyUI.<br><br>"
                f"Data folder: {home.root}<br>Queue: {redis}<br>ComfyUI: {self.controller.client.base_url}<br>"
                f"Qt {qVersion()}, Python {sys.version.split()[0]}")

    def _on_about_action_triggered(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, "About ComfyStudio", self.about_text(),
                          QMessageBox.StandardButton.Ok, self)
        box.setIconPixmap(self.windowIcon().pixmap(64, 64))
        box.open()

    def _on_outputs_action_triggered(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.controller.home.outputs)))

    def _on_jobs_view_open_requested(self, path: str) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(path))

    def _on_jobs_view_show_in_folder_requested(self, path: str) -> None:
        if sys.platform == "win32":
            subprocess.Popen(["explorer", "/select,", os.path.normpath(path)])
        else:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(path).parent)))

    def _on_tray_notification_clicked(self, job_id: str) -> None:
        self.bring_to_front()
        self.jobs_view.select_job(job_id)

    def _resolve_image(self, image_url: str) -> Path | None:
        try:
            path = self.controller.home.resolve_inside_storage(image_url)
        except ValueError:
            log.warning("Ignoring an image path outside the storage folder: %s", image_url)
            return None
        return path if path.is_file() else None
