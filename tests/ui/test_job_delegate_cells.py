"""The jobs table's cached cells stay true to the model: a failed row's reason under its prompt, the queue's place
and outlook in the Status text, and the repaints that keep both current."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QRect, Qt
from PySide6.QtGui import QColor, QFontMetrics, QImage, QPainter
from PySide6.QtWidgets import QApplication, QStyle, QStyleOptionViewItem
from pytestqt.qtbot import QtBot

from comfystudio_desktop.jobs import Job, JobEvent, JobRecord, JobStatus
from comfystudio_desktop.ui.job_delegate import JobDelegate
from comfystudio_desktop.ui.jobs_model import Column, JobsTableModel, ReasonRole

T0 = "2025-01-01T10:00:00.000+00:00"
T1 = "2025-01-01T10:00:01.000+00:00"
WIDTH, HEIGHT = 320, 68


def record(job_id: str, status: JobStatus, error: str = "") -> JobRecord:
    job = Job(prompt="a lighthouse at dusk", job_id=job_id, model="sdxl/juggernaut.safetensors", created_at=T0, seed=7)
    return JobRecord(job_id=job_id, status=status, created_at=T0, updated_at=T0, started_at=T0, job=job, error=error)


def paint_cell(delegate: JobDelegate, index: QModelIndex) -> QImage:
    """The cell as the delegate paints it on a white, unselected row."""
    image = QImage(WIDTH, HEIGHT, QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    option = QStyleOptionViewItem()
    option.rect = QRect(0, 0, WIDTH, HEIGHT)
    option.palette = QApplication.palette()
    option.font = QApplication.font()
    option.fontMetrics = QFontMetrics(option.font)
    option.state = QStyle.StateFlag.State_Enabled
    painter = QPainter(image)
    try:
        delegate.paint(painter, option, index)
    finally:
        painter.end()
    return image


def reddish(image: QImage, top: int, bottom: int) -> int:
    """Pixels in rows [top, bottom) clearly redder than grey (the error colour), not black or white text."""
    count = 0
    for y in range(top, bottom):
        for x in range(image.width()):
            color = image.pixelColor(x, y)
            if color.red() - max(color.green(), color.blue()) > 60:
                count += 1
    return count


def ink(image: QImage, top: int, bottom: int) -> int:
    """Pixels in rows [top, bottom) that are not the white background."""
    return sum(1 for y in range(top, bottom) for x in range(image.width()) if image.pixelColor(x, y).lightness() < 200)


def test_a_failed_row_paints_its_reason_under_the_prompt_in_the_error_colour(qtbot: QtBot) -> None:
    model = JobsTableModel()
    model.upsert_record(record("failed", JobStatus.FAILED, error="CLIPLoader: qwen_3_4b.safetensors not installed"))
    model.upsert_record(record("done", JobStatus.FINISHED))
    delegate = JobDelegate()
    failed = paint_cell(delegate, model.index(model.row_of("failed"), Column.PROMPT))
    done = paint_cell(delegate, model.index(model.row_of("done"), Column.PROMPT))
    middle = HEIGHT // 2
    assert reddish(failed, middle, HEIGHT) > 20  # the reason's line, in red
    assert reddish(failed, 0, middle) == 0 and ink(failed, 0, middle) > 20  # the prompt above it, in the text colour
    assert reddish(done, 0, HEIGHT) == 0  # no reason on a finished row


def test_the_cached_reason_follows_the_error(qtbot: QtBot) -> None:
    model = JobsTableModel()
    model.upsert_record(record("job", JobStatus.FAILED, error="short"))
    delegate = JobDelegate()
    index = model.index(0, Column.PROMPT)
    before = paint_cell(delegate, index)
    assert paint_cell(delegate, index) == before  # painted again from the cache, the same pixels
    model.upsert_record(replace_error(model, "job", "a much longer reason that fills the second line"))
    assert index.data(ReasonRole) == "a much longer reason that fills the second line"
    after = paint_cell(delegate, index)
    assert reddish(after, HEIGHT // 2, HEIGHT) > reddish(before, HEIGHT // 2, HEIGHT)


def replace_error(model: JobsTableModel, job_id: str, error: str) -> JobRecord:
    current = model.record(job_id)
    assert current is not None
    return JobRecord(job_id=job_id, status=current.status, created_at=T0, updated_at=T1, started_at=T0,
                     job=current.job, error=error)


def test_a_job_that_fails_repaints_its_prompt_cell(qtbot: QtBot) -> None:
    model = JobsTableModel()
    model.upsert_record(record("job", JobStatus.PROCESSING))
    changed: list[tuple[int, int]] = []
    model.dataChanged.connect(lambda top_left, bottom_right, _roles: changed.append(
        (top_left.column(), bottom_right.column())))
    model.apply_event(JobEvent("job", JobStatus.FAILED, 40, updated_at=T1, message="boom"))
    model.flush()
    assert model.index(0, Column.PROMPT).data(ReasonRole)
    assert any(left <= Column.PROMPT <= right for left, right in changed)


def test_the_status_text_shows_the_queue_place_and_outlook_over_the_cached_text(qtbot: QtBot) -> None:
    model = JobsTableModel()
    model.upsert_record(record("a", JobStatus.QUEUED))
    model.upsert_record(record("b", JobStatus.QUEUED))
    status_a, status_b = model.index(0, Column.STATUS), model.index(1, Column.STATUS)
    plain = status_a.data()
    assert plain and status_b.data() == plain  # read once: now cached in the row
    changed: list[int] = []
    model.dataChanged.connect(lambda top_left, bottom_right, _roles: changed.extend(
        range(top_left.row(), bottom_right.row() + 1)))
    model.set_run_order([("b", "high"), ("a", "")])
    assert status_b.data() == f"{plain} #1 · high" and status_a.data() == f"{plain} #2"
    model.set_eta_texts({"a": "starts ≈ 14:32"})
    assert status_a.data() == f"{plain} #2 · starts ≈ 14:32"  # the data at once; the repaint with the next flush
    model.flush()
    assert sorted(changed) == [0, 1]  # one repaint per row for both changes
    model.apply_event(JobEvent("a", JobStatus.PROCESSING, 5, updated_at=T1))
    model.flush()
    assert "#" not in str(status_a.data())  # running: no place in the queue; the cached text was renewed


def test_rows_drag_out(qtbot: QtBot) -> None:
    model = JobsTableModel()
    model.upsert_record(record("job", JobStatus.FINISHED))
    assert model.flags(model.index(0, Column.PROMPT)) & Qt.ItemFlag.ItemIsDragEnabled
    assert model.flags(QModelIndex()) == Qt.ItemFlag.NoItemFlags
