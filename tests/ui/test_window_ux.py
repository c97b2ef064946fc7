"""Everyday use of the window, offscreen: the table fits 1280×720, failures read well, every control is named."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QAbstractButton, QApplication, QWidget
from pytestqt.qtbot import QtBot

from comfystudio_desktop.comfy.comfy_errors import NodeError, encode_node_errors
from comfystudio_desktop.comfy.failure_report import FixAction
from comfystudio_desktop.jobs import SEED_MAX, Job, JobRecord, JobStatus
from comfystudio_desktop.ui.image_canvas import ImageCanvas
from comfystudio_desktop.ui.jobs_model import Column, ReasonRole
from tests.ui.window_session import CHECKPOINT, Session, run_until

CLIP_MISSING = NodeError("2", "CLIPLoader", "value_not_in_list", "Value not in list",
                         "clip_name: 'qwen_3_4b.safetensors' not in ['clip_l.safetensors']", "clip_name",
                         "qwen_3_4b.safetensors")


def _failed_record(job_id: str = "job-failed") -> JobRecord:
    job = Job(prompt="a red fox in the snow", model=CHECKPOINT, seed=SEED_MAX, job_id=job_id)
    return JobRecord(job_id=job_id, status=JobStatus.FAILED, error="ComfyUI rejected the workflow: node 2 …",
                     node_errors=encode_node_errors((CLIP_MISSING,)), job=job, updated_at="2026-01-01T00:00:00Z")


def unnamed_controls(root: QWidget) -> list[str]:
    """Focusable, visible controls without an accessible name (buttons say their text)."""
    missing = []
    for widget in root.findChildren(QWidget):
        if not widget.isVisibleTo(root) or not widget.focusPolicy() & Qt.FocusPolicy.TabFocus:
            continue
        if widget.accessibleName().strip():
            continue
        if isinstance(widget, QAbstractButton) and widget.text().replace("&", "").strip():
            continue
        if widget.focusProxy() is not None:
            continue
        missing.append(f"{type(widget).__name__} {widget.objectName()!r} in {type(widget.parent()).__name__}")
    return missing


def test_every_focusable_control_has_an_accessible_name(session: Session, qtbot: QtBot) -> None:
    window = session.window
    window.resize(1280, 720)
    window.show()
    assert unnamed_controls(window) == []
    dialog = window.open_settings()
    qtbot.addWidget(dialog)
    for index in range(dialog.tabs.count()):
        dialog.tabs.setCurrentIndex(index)
        assert unnamed_controls(dialog) == [], dialog.tabs.tabText(index)
    dialog.reject()
    window.model.upsert_record(_failed_record())
    assert window.jobs_view.select_job("job-failed")
    assert window.viewer.failure.isVisibleTo(window) and unnamed_controls(window) == []
    wizard = window.open_first_run()
    qtbot.addWidget(wizard)
    run_until(qtbot, lambda: wizard.find_page.list.count() > 0, message="the search")
    for _page in range(3):
        assert unnamed_controls(wizard) == [], wizard.currentPage().title()
        wizard.next()
    run_until(qtbot, lambda: "Testing" not in wizard.test_page.result.text(), message="the test")
    wizard.reject()


def test_tab_reaches_every_control_of_the_window(session: Session, qtbot: QtBot) -> None:
    window = session.window
    window.resize(1280, 720)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    window.prompt_panel.prompt_edit.setFocus()
    run_until(qtbot, lambda: QApplication.focusWidget() is window.prompt_panel.prompt_edit, message="focus")
    controls = {w for w in window.findChildren(QWidget)
                if w.isVisibleTo(window) and w.isEnabled() and w.focusPolicy() & Qt.FocusPolicy.TabFocus
                and w.focusProxy() is None}
    reached: set[QWidget] = set()
    for _ in range(3 * len(controls)):
        widget = QApplication.focusWidget()
        assert widget is not None
        reached.add(widget)
        qtbot.keyClick(widget, Qt.Key.Key_Tab)  # the prompt boxes pass Tab on (tabChangesFocus)
    assert {f"{type(w).__name__} {w.accessibleName()!r}" for w in controls - reached} == set(), \
        [f"{type(w).__name__} {w.accessibleName()!r}" for w in reached]


def test_the_table_fits_1280x720_without_eliding_numbers(session: Session, qtbot: QtBot) -> None:
    window = session.window
    window.resize(1280, 720)
    window.show()
    qtbot.waitExposed(window)
    window.model.upsert_record(_failed_record())
    table = window.jobs_view.table
    run_until(qtbot, lambda: table.model().rowCount() > 0, message="the row")
    QApplication.processEvents()
    assert table.horizontalScrollBar().maximum() == 0 and not table.horizontalScrollBar().isVisible()
    header = table.horizontalHeader()
    for column in (Column.WAIT, Column.RUN, Column.CREATED, Column.ERROR):
        assert header.isSectionHidden(column)  # shown from the header's menu
    row = window.jobs_view.proxy.mapFromSource(window.model.index(window.model.row_of("job-failed"), 0)).row()
    seed = table.model().index(row, Column.SEED)
    margin = 2 * (table.style().pixelMetric(table.style().PixelMetric.PM_FocusFrameHMargin) + 1)
    assert seed.data() == str(SEED_MAX)
    assert table.visualRect(seed).width() >= table.fontMetrics().horizontalAdvance(seed.data()) + margin
    widths = {c.name: header.sectionSize(c) for c in Column if not header.isSectionHidden(c)}
    assert header.sectionSize(Column.PROMPT) >= 160, (widths, table.viewport().width())  # it takes the slack


def test_header_menu_shows_and_hides_columns_and_the_layout_is_remembered(session: Session, qtbot: QtBot) -> None:
    window = session.window
    columns = window.jobs_view.columns
    actions = {a.text(): a for a in columns.menu().actions()}
    assert not actions["Prompt"].isEnabled()  # the prompt cannot be hidden
    actions["Wait"].trigger()
    assert not columns.header.isSectionHidden(Column.WAIT)
    {a.text(): a for a in columns.menu().actions()}["Model"].trigger()
    assert columns.header.isSectionHidden(Column.MODEL)
    window.save_state()
    columns.reset()
    assert columns.header.isSectionHidden(Column.WAIT) and not columns.header.isSectionHidden(Column.MODEL)
    window._geometry.restore(1280, 720)
    assert not columns.header.isSectionHidden(Column.WAIT) and columns.header.isSectionHidden(Column.MODEL)
    assert not columns.restore(b"not a layout") and columns.header.isSectionHidden(Column.WAIT)


def test_a_failed_row_says_why_and_the_viewer_shows_the_whole_error(session: Session, qtbot: QtBot) -> None:
    window = session.window
    window.show()
    window.model.upsert_record(_failed_record())
    row = window.model.row_of("job-failed")
    reason = "CLIPLoader: qwen_3_4b.safetensors not installed"
    assert window.model.index(row, Column.PROMPT).data(ReasonRole) == reason
    assert window.model.index(row, Column.ERROR).data() == reason
    assert window.jobs_view.select_job("job-failed")
    failure = window.viewer.failure
    run_until(qtbot, lambda: window.viewer.pages.currentWidget() is failure, message="the failure pane")
    assert reason in failure.headline.text()
    text = failure.details.toPlainText()
    assert "Node 2 · CLIPLoader" in text and "not in ['clip_l.safetensors']" in text
    assert failure.details.isReadOnly()
    failure.copy_button.click()
    assert "received: 'qwen_3_4b.safetensors'" in QGuiApplication.clipboard().text()
    assert failure.fix_button.isVisible() and failure.fix_button.text() == FixAction.PICK_TEXT_ENCODER.label
    with qtbot.waitSignal(failure.fix_requested) as blocker:
        failure.fix_button.click()
    assert blocker.args == [FixAction.PICK_TEXT_ENCODER]
    assert window.prompt_panel.prompt_edit.toPlainText() == "a red fox in the snow"  # the job was loaded
    window.prompt_panel.unet_parts.text_encoder_combo.hidePopup()


def _zoom(canvas: ImageCanvas) -> float | None:
    """The canvas's zoom, read afresh (a click changes it: no narrowing carried between reads)."""
    return canvas.zoom


def test_viewer_zooms_shows_a_batch_as_a_strip_and_drags_files(session: Session, qtbot: QtBot, tmp_path: Path,
                                                                make_image: object) -> None:
    from comfystudio_desktop.ui.output_drag import output_mime

    paths = []
    for n, colour in enumerate(("red", "green", "blue")):
        path = tmp_path / f"job_{n}.png"
        path.write_bytes(make_image((200, 100), colour))  # type: ignore[operator]
        paths.append(path)
    viewer = session.window.viewer
    viewer.resize(400, 400)
    viewer.show()
    assert viewer.show_files("job", paths, "job.png")
    assert viewer.strip.isVisible() and viewer.strip.count() == 3
    viewer.strip.setCurrentRow(2)
    assert viewer.canvas.path == paths[2] and "3 of 3" in viewer.caption.text()
    viewer.actual_button.click()
    assert viewer.canvas.zoom == 1.0 and not viewer.fit_button.isChecked()
    canvas = viewer.canvas
    pixmap = viewer.canvas.label.pixmap()
    assert pixmap.deviceIndependentSize().toSize().width() == 200
    viewer.fit_button.click()
    assert _zoom(canvas) is None and viewer.fit_button.isChecked()
    QApplication.processEvents()  # the scroll bars of 100 % go away: the fitted scale settles
    fitted = viewer.canvas.shown_scale()
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QWheelEvent
    event = QWheelEvent(QPointF(10, 10), QPointF(10, 10), QPoint(0, 0), QPoint(0, 120), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(viewer.canvas.viewport(), event)
    assert viewer.canvas.zoom is not None and abs(viewer.canvas.zoom - fitted * 1.25) < 1e-6
    mime = output_mime([paths[0], tmp_path / "missing.png"])
    assert mime is not None and [Path(u.toLocalFile()) for u in mime.urls()] == [paths[0].resolve()]
    assert output_mime([tmp_path / "missing.png"]) is None


def test_clicking_a_notification_shows_that_image_even_when_filtered_out(session: Session, qtbot: QtBot,
                                                                         home: object, make_image: object) -> None:
    window = session.window
    outputs = window.controller.home.outputs
    outputs.mkdir(parents=True, exist_ok=True)
    (outputs / "job-done.png").write_bytes(make_image())  # type: ignore[operator]
    window.model.upsert_record(JobRecord(job_id="job-done", status=JobStatus.FINISHED, image_url="outputs/job-done.png",
                                         outputs=("job-done.png",), updated_at="2026-01-01T00:00:00Z"))
    window.jobs_view.status_filter.setCurrentText("Failed")
    assert not window.jobs_view.select_job("job-done")
    window.tray.notification_clicked.emit("job-done")
    assert window.viewer.shown_job == "job-done" and window.viewer.canvas.path == outputs / "job-done.png"
    assert window.jobs_view.status_filter.currentText() == "All jobs"
    assert window.jobs_view.drag_paths() == [outputs / "job-done.png"]  # what dragging the row carries


def test_a_job_failing_in_the_worker_reaches_the_row_by_the_stream_with_its_fix(session: Session,
                                                                                qtbot: QtBot) -> None:
    from tests.ui.window_session import run_coro

    job = Job(prompt="a model that is not installed", model="missing/model.safetensors")
    run_coro(qtbot, session.loop, session.app.controller.submit(job))
    run_until(qtbot, lambda: session.status(job.job_id) is JobStatus.FAILED, message="the failure")
    row = session.model.row_of(job.job_id)
    run_until(qtbot, lambda: session.model.index(row, Column.PROMPT).data(ReasonRole), message="the record")
    assert session.model.index(row, Column.PROMPT).data(ReasonRole) == "Model missing/model.safetensors not installed"
    assert session.window.jobs_view.select_job(job.job_id)
    failure = session.window.viewer.failure
    assert failure.report is not None and failure.report.fix is FixAction.PICK_MODEL
    assert "ComfyUI does not list it under UNET or Checkpoints" in failure.details.toPlainText()
