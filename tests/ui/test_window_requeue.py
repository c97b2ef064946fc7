"""ComfyUI dies half way through a job: the row keeps its progress, says "retrying (attempt 2)", then finishes."""

from __future__ import annotations

from pathlib import Path

import qasync
from pytestqt.qtbot import QtBot

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import JobEvent, JobStatus
from comfystudio_desktop.settings import Settings, save_settings
from comfystudio_desktop.ui.jobs_model import Column, ProgressRole, RetryAttemptRole
from tests.fake_comfyui.process import FakeComfyProcess, free_port
from tests.ui.window_session import Session, generate, run_until


def test_a_requeued_job_never_shows_less_progress(qtbot: QtBot, loop: qasync.QEventLoop, home: Home,
                                                  tmp_path: Path) -> None:
    fake = FakeComfyProcess(output_dir=tmp_path / "comfy-out", step_time=0.15, port=free_port()).start()
    try:
        settings = Settings(comfy_url=fake.url, lease_seconds=5.0)
        save_settings(home.config_file, settings)
        session = Session(qtbot, loop, home, settings)
        try:
            model = session.model
            shown: list[tuple[JobStatus, int, object]] = []  # what the row showed after each event

            def on_job_event(event: JobEvent) -> None:  # runs after the window applied the event
                row = model.row_of(event.job_id)
                if event.preview is None and row >= 0:
                    index = model.index(row, Column.PROGRESS)
                    shown.append((event.status, index.data(ProgressRole), index.data(RetryAttemptRole)))

            session.app.controller.job_event.connect(on_job_event)
            job_id = generate(session, qtbot, "ComfyUI dies half way")
            run_until(qtbot, lambda: (r := model.record(job_id)) is not None and r.progress >= 50, timeout=60,
                      message="the job half done")
            fake.kill()  # ComfyUI dies mid-job: the worker requeues the job (an attempt counted)
            fake.stop()
            run_until(qtbot, lambda: any(attempt == 2 for _, _, attempt in shown), timeout=60,
                      message="the row saying 'retrying (attempt 2)'")
            fake.start()  # back on the same port
            run_until(qtbot, lambda: session.status(job_id) is JobStatus.FINISHED, timeout=120,
                      message="the job finished on its second attempt")
            progress = [percent for _, percent, _ in shown]
            assert progress == sorted(progress)  # never backwards on the row
            half = next(i for i, (_, percent, _) in enumerate(shown) if percent >= 50)
            requeued = [(status, percent) for status, percent, _ in shown[half:] if status is JobStatus.QUEUED]
            assert requeued and min(percent for _, percent in requeued) >= 50  # waiting again, progress kept
            record = model.record(job_id)
            assert record is not None and record.attempts == 1 and record.progress == 100
        finally:
            session.close()
    finally:
        fake.stop()
