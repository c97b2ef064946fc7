"""Opens the first-run assistant over the window and connects it: the first image goes through the prompt panel,
the job's events come from the controller's stream, and the chosen settings replace the window's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from comfystudio_desktop.jobs import JobEvent
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.ui.first_run import FirstRunWizard

if TYPE_CHECKING:
    from comfystudio_desktop.ui.main_window import MainWindow

__all__ = ["FIRST_PROMPT", "open_first_run"]

FIRST_PROMPT = "a lighthouse on a cliff at dusk, warm light"


def open_first_run(window: MainWindow) -> FirstRunWizard:
    """Show the assistant (non-blocking) and return it."""
    controller = window.controller
    wizard = FirstRunWizard(window.settings, controller.home.config_file, controller.spawn, window)

    def submit_first_image() -> None:
        panel = window.prompt_panel
        if not panel.prompt_edit.toPlainText().strip():
            panel.prompt_edit.setPlainText(FIRST_PROMPT)
        job = panel.generate()  # the window queues it, as for the Generate button
        wizard.follow_first_image(job.job_id if job is not None else "")

    def on_job_event(event: JobEvent) -> None:
        record = window.model.record(event.job_id)
        paths = window.jobs_view.output_paths(record) if record is not None else []
        wizard.on_job_event(event, paths[0] if paths else None)

    def on_settings_chosen(settings: Settings) -> None:
        window.settings = settings
        window.statusBar().showMessage("ComfyUI choice saved; a change of mode or URL applies after a restart.",
                                       10_000)

    wizard.first_image_requested.connect(submit_first_image)
    controller.job_event.connect(on_job_event)
    wizard.finished.connect(lambda _result: controller.job_event.disconnect(on_job_event))
    wizard.settings_chosen.connect(on_settings_chosen)
    wizard.open()
    return wizard
