"""The window shows a finished job's image even when its file is not in this home: fetched off the GUI thread
from the ComfyUI that made it, "image on <backend>, unavailable" while that ComfyUI cannot give it, shown once it
can. (A ComfyUI switched off and on again is tested without the window, in tests/test_output_fetch.py: here the
window's own worker follows that ComfyUI, so it keeps running and the file goes away instead.)"""

from __future__ import annotations

from pathlib import Path

from pytestqt.qtbot import QtBot

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import JobStatus
from comfystudio_desktop.outputs.location import OutputLocation, parse_location
from comfystudio_desktop.ui.jobs_model import Column, ThumbnailRole
from tests.helpers import unlinked
from tests.ui.window_session import Session, generate, run_coro, run_until


def test_a_missing_image_is_unavailable_then_fetched_and_shown(session: Session, qtbot: QtBot, home: Home,
                                                               tmp_path: Path) -> None:
    window = session.window
    job_id = generate(session, qtbot, "a harbour at night")
    run_until(qtbot, lambda: session.status(job_id) is JobStatus.FINISHED, message="job finished")
    output = home.outputs / f"{job_id}.png"
    original = output.read_bytes()
    # The table reads the new file for its thumbnail; Windows refuses to delete a file while it is being read.
    run_until(qtbot, lambda: session.model.index(session.model.row_of(job_id), Column.THUMBNAIL).data(ThumbnailRole)
              is not None, message="the thumbnail read")
    queue = session.app.controller.runtime.queue  # type: ignore[union-attr]
    record = queue.status(job_id)
    assert record is not None
    location = parse_location(record.output_location)
    assert isinstance(location, OutputLocation)
    message = f"image on {location.where}, unavailable"

    # As on a window of another machine: the file is not here, and the ComfyUI that made it cannot give it.
    served = tmp_path / "comfy-out" / location.files[0].subfolder / location.files[0].filename
    aside = tmp_path / "aside.png"
    served.replace(aside)
    run_until(qtbot, lambda: unlinked(output), message="the output deleted once the window's reads of it ended")
    window.remote_outputs.set_retry_seconds(0.2)
    window.jobs_view.table.clearSelection()
    assert window.jobs_view.select_job(job_id)
    run_until(qtbot, lambda: window.viewer.canvas.label.text() == message, message=f"the viewer saying {message!r}")
    assert window.viewer.shown_job == job_id and not output.exists()

    aside.replace(served)
    run_until(qtbot, lambda: window.viewer.canvas.path == output, timeout=30, message="the fetched image shown")
    assert output.read_bytes() == original
    row = session.model.row_of(job_id)
    run_until(qtbot, lambda: session.model.index(row, Column.THUMBNAIL).data(ThumbnailRole) is not None,
              message="the thumbnail")

    # Rows loaded in bulk (as at the window's start) whose files are elsewhere are fetched for their thumbnails.
    window.jobs_view.table.clearSelection()
    run_until(qtbot, lambda: unlinked(output), message="the fetched output deleted once the window's reads ended")
    run_coro(qtbot, session.loop, session.app.controller.load_record(job_id))
    run_until(qtbot, output.is_file, message="the image fetched for the loaded row")
    assert output.read_bytes() == original
