"""The main window: prompt panel on the left, jobs table and viewer on the right, toolbar, status bar, tray."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from PySide6.QtCore import Qt, Signal, qVersion
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMessageBox, QScrollArea, QSplitter, QToolBar, QWidget

from comfystudio_desktop import __version__
from comfystudio_desktop.batch_plan import JobBatch
from comfystudio_desktop.comfy.failure_report import FixAction, read_failure
from comfystudio_desktop.jobs import Job, JobEvent, JobRecord, JobStatus
from comfystudio_desktop.monitor.report import tray_summary
from comfystudio_desktop.monitor.snapshot import StatsSnapshot
from comfystudio_desktop.outputs.fetch import Available
from comfystudio_desktop.settings import SettingsError, load_settings, save_settings
from comfystudio_desktop.settings_watch import SettingsChange
from comfystudio_desktop.storage_retention import DROPPED_FOLDER
from comfystudio_desktop.supervise.service_state import ServiceState
from comfystudio_desktop.ui.app_controller import AppController, JobRecords, Workflows
from comfystudio_desktop.ui.archive_menu import ArchiveMenu
from comfystudio_desktop.ui.backends_panel import install_backends_dock
from comfystudio_desktop.ui.batch_actions import BatchActions
from comfystudio_desktop.ui.desktop_open import open_path, show_in_folder
from comfystudio_desktop.ui.failure_fixes import open_fix
from comfystudio_desktop.ui.first_run import FirstRunWizard
from comfystudio_desktop.ui.first_run_link import open_first_run
from comfystudio_desktop.ui.history_dock import HistoryDock
from comfystudio_desktop.ui.jobs_model import JobsTableModel
from comfystudio_desktop.ui.jobs_view import JobsView
from comfystudio_desktop.ui.monitor_dock import MonitorDock
from comfystudio_desktop.ui.outlook_words import OutlookWords
from comfystudio_desktop.ui.prompt_panel import PromptPanel
from comfystudio_desktop.ui.queue_actions import QueueActions
from comfystudio_desktop.ui.queue_control import QueueControl
from comfystudio_desktop.ui.queue_drag import QueueDrag
from comfystudio_desktop.ui.queue_outlook import OutlookStrip, QueueOutlook
from comfystudio_desktop.ui.remote_outputs import OutputFetched, RemoteOutputs
from comfystudio_desktop.ui.services_panel import DEFAULT_TITLES, WORKER_TITLE, ServicesPanel
from comfystudio_desktop.ui.settings_dialog import SettingsDialog
from comfystudio_desktop.ui.status_strip import StatusStrip
from comfystudio_desktop.ui.status_values import Problem, WorkerMode, WorkerStatus, describe_endpoint
from comfystudio_desktop.ui.theme import set_app_theme
from comfystudio_desktop.ui.tray import TrayController
from comfystudio_desktop.ui.unet_parts_picker import UnetChoice
from comfystudio_desktop.ui.viewer_pane import ViewerPane
from comfystudio_desktop.ui.window_geometry import WindowGeometry
from comfystudio_desktop.ui.window_summary import ActiveJobs, TraySummary, about_html, job_notification, viewer_content
from comfystudio_desktop.ui.worker_supervisor import WORKER_SERVICE
from comfystudio_desktop.ui.worker_thread import PreviewFrame

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
        self._active_jobs = ActiveJobs()  # jobs seen queued/running in this session (they get notifications)
        self._fetching: set[str] = set()  # jobs whose full record is being read
        self._quitting = False
        self._told_out_of_memory = False

        self.prompt_panel = PromptPanel(home.storage / DROPPED_FOLDER, max_image_bytes=settings.max_upload_mb * 2**20,
                                        max_image_pixels=settings.max_image_pixels)
        scroll = QScrollArea(self)
        scroll.setObjectName("promptScroll")
        scroll.setAccessibleName("Prompt and parameters")
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
        self.services_panel = ServicesPanel(self, titles={**DEFAULT_TITLES, WORKER_SERVICE: WORKER_TITLE})
        self.services_dock = QDockWidget("Services", self)
        self.services_dock.setObjectName("servicesDock")
        self.services_dock.setWidget(self.services_panel)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.services_dock)
        self.services_dock.hide()
        self.monitor_dock = MonitorDock(controller.monitor, self)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.monitor_dock)
        self.monitor_dock.hide()
        self.backends_dock = install_backends_dock(self, controller, self.prompt_panel.model_combo)
        self._make_queue_control()
        self._make_toolbar()
        self._make_status_bar()
        self._make_remote_outputs()
        self._connect()
        self._geometry = WindowGeometry(home.root / "ui-state.ini", self,
                                        {"splitter": self.splitter, "right_splitter": self.right_splitter},
                                        {"jobs_header": self.jobs_view.columns})
        self._geometry.restore(1280, 760)

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
        self.services_action.setToolTip("redis-server, ComfyUI and the worker: state, restarts, logs")
        self.backends_action = self.backends_dock.toggleViewAction()
        self.backends_action.setToolTip("the ComfyUI backends: state, job, model, VRAM; enable or disable one")
        self.monitor_action = self.monitor_dock.toggleViewAction()
        self.monitor_action.setToolTip("Queue, timings, GPU, Redis and worker figures with charts")
        self.history_action = self.history_dock.toggleViewAction()
        self.history_action.setShortcut(QKeySequence("Ctrl+H"))
        self.history_action.setToolTip("Every ended job: search, gallery, favourites — Ctrl+H")
        for action in (self.pause_action, self.refresh_action, self.settings_action, self.outputs_action,
                       self.history_action, self.services_action, self.backends_action, self.monitor_action,
                       self.about_action):
            bar.addAction(action)
        self.addAction(self.quit_action)
        self.first_run_action = QAction("First-run assistant…", self)
        self.first_run_action.setToolTip("Find ComfyUI, choose how it runs, test it and make a first image")
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(self.first_run_action)
        help_menu.addAction(self.about_action)

    def _make_queue_control(self) -> None:
        """Reorder and priority on the jobs table, the History dock, File → export/import (ui/queue_control.py)."""
        self.queue_control = QueueControl(self.controller, self)
        self.queue_actions = QueueActions(self.jobs_view, self.queue_control)
        self.queue_drag = QueueDrag(self.jobs_view.table, self.queue_control, self.model)
        self.batch_actions = BatchActions(self.jobs_view, self.queue_control)
        self.history_dock = HistoryDock(self.queue_control.history, self.controller.home, self)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.history_dock)
        self.history_dock.hide()
        self.archive_menu = ArchiveMenu(self, self.queue_control)
        history = self.history_dock.view
        history.star_requested.connect(lambda r: self.queue_control.star(r.job_id, on=r.on))
        history.load_requested.connect(self.prompt_panel.load_job)
        for source, target in ((history.rerun_requested, self.jobs_view.rerun_requested),
                               (history.open_requested, self.jobs_view.open_requested),
                               (history.show_in_folder_requested, self.jobs_view.show_in_folder_requested)):
            source.connect(target)  # the same actions as the jobs table's
        self.queue_control.starred.connect(self.history_dock.on_starred)
        self.controller.job_event.connect(self.history_dock.on_job_event)
        self.queue_outlook = QueueOutlook(self.controller, self)
        self.outlook_strip = OutlookStrip(self.queue_outlook, self)
        self.statusBar().addPermanentWidget(self.outlook_strip)
        self.queue_outlook.changed.connect(self._on_queue_outlook_changed)

    def _on_queue_outlook_changed(self, words: OutlookWords) -> None:
        self.model.set_eta_texts(words.rows)
        self.tray.set_outlook(words.summary)
        if words.out_of_memory and not self._told_out_of_memory:
            self.tray.notify("Queue paused", f"{words.summary}. Resume when ComfyUI has memory again.", "", error=True)
            self.statusBar().showMessage(words.summary, 15_000)
        self._told_out_of_memory = words.out_of_memory

    def _make_remote_outputs(self) -> None:
        self.remote_outputs = RemoteOutputs(lambda: rt.queue if (rt := self.controller.runtime) is not None else None,
                                            self.controller.home, self.controller.settings, parent=self)
        self.remote_outputs.fetched.connect(self._on_remote_outputs_fetched)

    def _on_remote_outputs_fetched(self, done: OutputFetched) -> None:
        if isinstance(done.result, Available):
            self.model.output_arrived(done.job_id)
            if self.viewer.shown_job == done.job_id:
                self._show_record(done.job_id)
        elif self.viewer.shown_job == done.job_id:
            self.viewer.clear(done.result.message)
            self.viewer.shown_job = done.job_id  # still this job's place: the retry fills it

    def _make_status_bar(self) -> None:
        # The provider is read when used: the controller opens the queue after the window exists.
        self.status_strip = StatusStrip(self.statusBar(),
                                        lambda: rt.queue if (rt := self.controller.runtime) is not None else None,
                                        self)

    def _connect(self) -> None:
        c = self.controller
        c.job_event.connect(self._on_controller_job_event)
        c.preview_frame.connect(self._on_controller_preview_frame)
        c.records_loaded.connect(self._on_controller_records_loaded)
        c.models_loaded.connect(self.prompt_panel.set_catalogue)
        c.unet_parts_loaded.connect(self.prompt_panel.set_unet_part_lists)
        self.prompt_panel.set_unet_choices(self.settings.unet_parts)
        self.prompt_panel.unet_choice_changed.connect(self._on_prompt_panel_unet_choice_changed)
        c.workflows_loaded.connect(self._on_controller_workflows_loaded)
        c.redis_changed.connect(self.status_strip.show_redis)
        c.comfy_changed.connect(self.status_strip.show_comfy)
        c.counts_changed.connect(self.status_strip.show_counts)
        self.status_strip.summary_changed.connect(self._on_status_strip_summary_changed)
        c.worker_changed.connect(self._on_controller_worker_changed)
        c.problem.connect(self._on_controller_problem)
        c.settings_changed.connect(self._on_controller_settings_changed)
        c.service_changed.connect(self._on_controller_service_changed)
        self.services_panel.restart_requested.connect(self._on_services_panel_restart_requested)
        self.services_panel.stop_requested.connect(self._on_services_panel_stop_requested)
        self.services_panel.repair_requested.connect(self._on_services_panel_repair_requested)
        self.services_panel.open_log_requested.connect(self._on_services_panel_open_log_requested)
        self.prompt_panel.generate_requested.connect(self._on_prompt_panel_generate_requested)
        self.prompt_panel.batch_requested.connect(self._on_prompt_panel_batch_requested)
        self.prompt_panel.model_combo.refresh_requested.connect(self._on_refresh_action_triggered)
        self.jobs_view.cancel_requested.connect(self._on_jobs_view_cancel_requested)
        self.jobs_view.retry_requested.connect(self._on_jobs_view_retry_requested)
        self.jobs_view.rerun_requested.connect(self._on_jobs_view_rerun_requested)
        self.jobs_view.load_requested.connect(self.prompt_panel.load_job)
        self.jobs_view.open_requested.connect(self._on_jobs_view_open_requested)
        self.jobs_view.show_in_folder_requested.connect(self._on_jobs_view_show_in_folder_requested)
        self.jobs_view.selection_changed.connect(self._on_jobs_view_selection_changed)
        self.viewer.failure.fix_requested.connect(self._on_viewer_failure_fix_requested)
        self.pause_action.toggled.connect(self._on_pause_action_toggled)
        self.refresh_action.triggered.connect(self._on_refresh_action_triggered)
        self.settings_action.triggered.connect(self._on_settings_action_triggered)
        self.outputs_action.triggered.connect(self._on_outputs_action_triggered)
        self.quit_action.triggered.connect(self.request_quit)
        self.about_action.triggered.connect(self._on_about_action_triggered)
        self.first_run_action.triggered.connect(self.open_first_run)
        self.tray.show_requested.connect(self.bring_to_front)
        self.tray.pause_toggled.connect(self.pause_action.setChecked)
        self.tray.open_outputs_requested.connect(self._on_outputs_action_triggered)
        self.tray.quit_requested.connect(self.request_quit)
        self.tray.notification_clicked.connect(self._on_tray_notification_clicked)
        c.monitor.sample_added.connect(self._on_monitor_sample_added)

    # -- window state ----------------------------------------------------------------------------------------
    def save_state(self) -> None:
        """Remember geometry and splitter positions (an INI file in the home)."""
        self._geometry.save()

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
        self.model.flush()  # the last changes, applied now rather than by a timer that outlives the window
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
    def _on_controller_records_loaded(self, loaded: JobRecords) -> None:
        self.model.upsert_records(loaded.records)
        for record in loaded.records:
            self._fetching.discard(record.job_id)
            self._active_jobs.saw(record.job_id, record.status)
        self.jobs_view.refresh_actions()
        # Jobs run on other machines: their thumbnails need the files here.
        self.remote_outputs.fetch_in_turn(r for r in loaded.records
                                          if r.status is JobStatus.FINISHED and not self.jobs_view.output_paths(r))

    def _on_controller_workflows_loaded(self, workflows: Workflows) -> None:
        self.prompt_panel.set_workflows(workflows.items)

    def _on_controller_job_event(self, event: JobEvent) -> None:
        self.model.apply_event(event)
        if self.model.needs_record(event.job_id) and event.job_id not in self._fetching:
            # A job this window did not submit (CLI, another worker): its parameters are in its status hash.
            self._fetching.add(event.job_id)
            self.controller.spawn(self.controller.load_record(event.job_id))
        if self._active_jobs.saw(event.job_id, event.status):
            self._on_job_ended(event)
        if event.status is JobStatus.FINISHED and self.viewer.shown_job == event.job_id:
            self._show_record(event.job_id)
        elif event.status is JobStatus.FINISHED and (record := self.model.record(event.job_id)) is not None \
                and not self.jobs_view.output_paths(record):
            self.remote_outputs.request(event.job_id)  # run on another machine: its thumbnail needs the file here
        self.jobs_view.refresh_actions()

    def _on_job_ended(self, event: JobEvent) -> None:
        if event.status is JobStatus.FINISHED and event.seed_used is not None:
            self.prompt_panel.set_last_seed(event.seed_used)
        record = self.model.record(event.job_id)
        prompt = record.job.prompt if record is not None and record.job is not None else event.job_id
        note = job_notification(event, prompt, enabled=self.settings.notifications)
        if note is not None:
            self.tray.notify(note.title, note.message, note.job_id, error=note.error)

    def _on_controller_preview_frame(self, frame: PreviewFrame) -> None:
        self.model.set_preview(frame.job_id, frame.image)
        selected = self.jobs_view.selected_rows()
        following = not selected or (len(selected) == 1 and selected[0].job_id == frame.job_id)
        if following:
            self.viewer.show_preview(frame.job_id, frame.image, f"Live preview · {frame.progress}%")

    def _show_record(self, job_id: str) -> None:
        record = self.model.record(job_id)
        if record is None:
            self.viewer.clear()
            return
        paths = self.jobs_view.output_paths(record)
        content = viewer_content(record, paths[0] if paths else None)
        if paths:
            self.remote_outputs.stop_trying()
            self.viewer.show_files(job_id, paths, content.text)
            return
        if record.status is JobStatus.FINISHED:  # its images are on the machine that ran it
            self.viewer.clear(f"Fetching the image from {record.backend or 'another machine'}…")
            self.viewer.shown_job = job_id
            self.remote_outputs.request(job_id, keep_trying=True)
            return
        self.remote_outputs.stop_trying()
        if record.status is JobStatus.FAILED:
            self.viewer.show_failure(job_id, read_failure(record.error, record.node_errors))
            return
        self.viewer.clear(content.text)
        if content.follow:
            self.viewer.shown_job = job_id

    def _on_jobs_view_selection_changed(self, record: JobRecord | None) -> None:
        if record is None:
            self.remote_outputs.stop_trying()
            self.viewer.clear()
        else:
            self._show_record(record.job_id)

    def _on_controller_worker_changed(self, status: WorkerStatus) -> None:
        self.status_strip.show_worker(status)
        paused = status.mode is WorkerMode.PAUSED
        self.tray.set_paused(paused)
        self.pause_action.blockSignals(True)
        self.pause_action.setChecked(paused)
        self.pause_action.setText("Resume queue" if paused else "Pause queue")
        self.pause_action.blockSignals(False)

    def _on_controller_problem(self, problem: Problem) -> None:
        log.warning("Shown to the user: %s", problem.message)
        self.statusBar().showMessage(problem.message, 15_000)

    def _on_controller_service_changed(self, state: ServiceState) -> None:
        self.services_panel.update_state(state)
        notice = self.status_strip.note_service(state)
        if notice is not None and notice.show_message:
            self.statusBar().showMessage(notice.text, 15_000)
        if notice is not None and notice.alarm:
            self.services_dock.show()
            self.tray.notify("A service stopped", notice.text, "", error=True)

    def _on_services_panel_restart_requested(self, name: str) -> None:
        self.controller.spawn(self.controller.restart_service(name))

    def _on_services_panel_stop_requested(self, name: str) -> None:
        self.controller.spawn(self.controller.stop_service(name))

    def _on_services_panel_repair_requested(self, _name: str) -> None:
        self.controller.spawn(self.controller.repair_queue_aof())

    def _on_monitor_sample_added(self, snapshot: StatsSnapshot) -> None:
        self.tray.set_summary(tray_summary(snapshot))

    def _on_services_panel_open_log_requested(self, name: str) -> None:
        open_path(self.controller.log_file(name))

    def _on_status_strip_summary_changed(self, summary: TraySummary) -> None:
        self.tray.set_state(summary.state, summary.queued, summary.running, summary.problem)

    # -- view → controller -----------------------------------------------------------------------------------
    def _on_prompt_panel_generate_requested(self, job: Job) -> None:
        self._add_submitted(job)
        self.controller.spawn(self.controller.submit(job))

    def _on_prompt_panel_batch_requested(self, batch: JobBatch) -> None:
        self.model.upsert_records(JobRecord(job_id=job.job_id, status=JobStatus.QUEUED, created_at=job.created_at,
                                            updated_at=job.created_at, job=job) for job in batch.jobs)
        for job in batch.jobs:
            self._active_jobs.saw(job.job_id, JobStatus.QUEUED)
        self.model.fold_batch(batch.batch_id)  # one row for the batch; Batch → Show its rows opens it up
        self.controller.spawn(self.controller.submit_batch(batch))

    def _add_submitted(self, job: Job) -> None:
        """Show a job's row the moment it is submitted, with its parameters (the queue's events follow)."""
        self.model.upsert_record(JobRecord(job_id=job.job_id, status=JobStatus.QUEUED, created_at=job.created_at,
                                           updated_at=job.created_at, job=job))
        self._active_jobs.saw(job.job_id, JobStatus.QUEUED)

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
        self.open_settings()

    def open_settings(self, focus: str = "") -> SettingsDialog:
        """Open the settings dialog (on the field named `focus`, if any), with ComfyUI's files in its combos."""
        dialog = SettingsDialog(self.settings, self.controller.home.config_file, self,
                                part_lists=self.prompt_panel.unet_parts.lists)
        dialog.setModal(True)
        dialog.accepted.connect(lambda: self._on_settings_dialog_accepted(dialog))
        dialog.open()
        if focus:
            dialog.focus_field(focus)
        return dialog

    def _on_viewer_failure_fix_requested(self, fix: FixAction) -> None:
        record = self.model.record(self.viewer.shown_job)
        open_fix(fix, record.job if record is not None else None, self.prompt_panel, self.open_settings)

    def _on_settings_dialog_accepted(self, dialog: SettingsDialog) -> None:
        if dialog.result_settings is not None:
            self.settings = dialog.result_settings
            self.prompt_panel.set_image_limits(self.settings.max_upload_mb * 2**20, self.settings.max_image_pixels)
            set_app_theme(self.settings.theme)
            self.statusBar().showMessage("Settings saved; connection changes apply after a restart.", 10_000)

    def _on_controller_settings_changed(self, change: SettingsChange) -> None:
        """config.json changed outside the window (`config set theme dark`): follow what applies live here."""
        self.settings = change.settings
        if "theme" in change.live:
            set_app_theme(change.settings.theme)

    def _on_prompt_panel_unet_choice_changed(self, choice: UnetChoice) -> None:
        """Remember a UNET model's text encoder / VAE (read the file first: it may have changed meanwhile)."""
        config = self.controller.home.config_file
        try:
            settings = load_settings(config).with_unet_choice(choice.model, choice.text_encoder, choice.vae)
            save_settings(config, settings)
        except (SettingsError, OSError) as exc:
            self.statusBar().showMessage(f"Choice for {choice.model} not saved: {exc}", 10_000)
            return
        self.settings = settings

    def open_first_run(self) -> FirstRunWizard:
        """Show the first-run assistant (first start, or Help → First-run assistant)."""
        return open_first_run(self)

    def about_text(self) -> str:
        """What the About box says: version, where data lives, which Redis and ComfyUI."""
        runtime = self.controller.runtime
        return about_html(version=__version__, data_folder=str(self.controller.home.root),
                          queue=describe_endpoint(runtime.endpoint) if runtime is not None else "not connected",
                          comfy_url=self.controller.client.base_url, qt_version=qVersion(),
                          python_version=sys.version.split()[0])

    def _on_about_action_triggered(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, "About ComfyStudio", self.about_text(),
                          QMessageBox.StandardButton.Ok, self)
        box.setIconPixmap(self.windowIcon().pixmap(64, 64))
        box.open()

    def _on_outputs_action_triggered(self) -> None:
        open_path(self.controller.home.outputs)

    def _on_jobs_view_open_requested(self, path: str) -> None:
        open_path(Path(path))

    def _on_jobs_view_show_in_folder_requested(self, path: str) -> None:
        show_in_folder(Path(path))

    def _on_tray_notification_clicked(self, job_id: str) -> None:
        """Show the window with that job's image (or its error) in the viewer, even if the filter hid its row."""
        self.bring_to_front()
        self.jobs_view.reveal_job(job_id)

    def _resolve_image(self, image_url: str) -> Path | None:
        try:
            path = self.controller.home.resolve_inside_storage(image_url)
        except ValueError:
            log.warning("Ignoring an image path outside the storage folder: %s", image_url)
            return None
        return path if path.is_file() else None
