"""JobsTableModel, JobsFilterProxy and JobDelegate: model contract, one-row updates, coalescing, thumbnails."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QModelIndex, QSize, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QStyleOptionViewItem, QTableView
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from comfystudio_desktop.jobs import Job, JobEvent, JobRecord, JobStatus
from comfystudio_desktop.ui.job_delegate import JobDelegate
from comfystudio_desktop.ui.jobs_filter import JobsFilterProxy
from comfystudio_desktop.ui.jobs_model import (
    Column,
    JobIdRole,
    JobsTableModel,
    ProgressRole,
    ReasonRole,
    RecordRole,
    StatusRole,
    ThumbnailRole,
)

T0 = "2025-01-01T10:00:00.000+00:00"


def at(seconds: float) -> str:
    """An ISO time `seconds` after T0."""
    minutes, secs = divmod(seconds, 60)
    return f"2025-01-01T10:{int(minutes):02d}:{secs:06.3f}+00:00"


def record(job_id: str, status: JobStatus = JobStatus.QUEUED, prompt: str = "a cat", **kwargs: object) -> JobRecord:
    job = Job(prompt=prompt, job_id=job_id, model="sdxl/juggernaut.safetensors", created_at=T0, seed=7)
    started = T0 if status != JobStatus.QUEUED else ""
    return JobRecord(job_id=job_id, status=status, created_at=T0, updated_at=T0, started_at=started, job=job,
                     **kwargs)  # type: ignore[arg-type]


def job_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


class ChangeRecorder:
    """Collects dataChanged ranges as (top, left, bottom, right)."""

    def __init__(self, model: JobsTableModel) -> None:
        self.ranges: list[tuple[int, int, int, int]] = []
        model.dataChanged.connect(self._on_model_data_changed)

    def _on_model_data_changed(self, top_left: QModelIndex, bottom_right: QModelIndex, _roles: object) -> None:
        self.ranges.append((top_left.row(), top_left.column(), bottom_right.row(), bottom_right.column()))


@pytest.fixture
def model(qtbot: QtBot) -> Iterator[JobsTableModel]:
    jobs = JobsTableModel(flush_interval_ms=50)
    for n, status in enumerate([JobStatus.QUEUED, JobStatus.PROCESSING, JobStatus.FINISHED, JobStatus.FAILED]):
        jobs.upsert_record(record(job_id(n), status, prompt=f"prompt {n}", error="boom" if n == 3 else "",
                                  node_errors="KSampler: bad cfg" if n == 3 else ""))
    yield jobs
    jobs.flush()  # send a change still being coalesced now, rather than leave its timer pending after the test


def test_model_passes_qtmodeltester(qtmodeltester: ModelTester, model: JobsTableModel) -> None:
    qtmodeltester.check(model, force_py=True)
    model.apply_event(JobEvent(job_id(9), JobStatus.QUEUED, 0, updated_at=at(1)))
    model.apply_event(JobEvent(job_id(1), JobStatus.PROCESSING, 40, updated_at=at(2)))
    model.flush()
    model.remove_finished()
    qtmodeltester.check(model, force_py=True)


def test_roles_and_columns(model: JobsTableModel) -> None:
    assert model.rowCount() == 4
    assert model.columnCount() == len(Column)
    failed = model.index(3, Column.STATUS)
    assert failed.data(JobIdRole) == job_id(3)
    assert failed.data(StatusRole) == JobStatus.FAILED.value
    assert failed.data(Qt.ItemDataRole.DisplayRole) == "Failed"
    assert isinstance(failed.data(RecordRole), JobRecord)
    error = model.index(3, Column.ERROR)
    assert error.data() == "boom"
    assert error.data(Qt.ItemDataRole.ToolTipRole) == "Error\nboom\n\nNode errors\nKSampler: bad cfg"
    assert model.index(3, Column.PROMPT).data(ReasonRole) == "boom"  # drawn under the prompt of a failed row
    assert model.index(2, Column.PROMPT).data(ReasonRole) == ""
    assert model.index(0, Column.PROMPT).data() == "prompt 0"
    assert model.index(0, Column.MODEL).data() == "juggernaut.safetensors"
    assert model.index(0, Column.SEED).data() == "7"
    assert model.headerData(Column.THUMBNAIL, Qt.Orientation.Horizontal) == "Output"
    assert model.record(job_id(2)) is not None
    assert model.record("nope") is None


def test_status_change_updates_only_that_row_at_once(qtbot: QtBot, model: JobsTableModel) -> None:
    changes = ChangeRecorder(model)
    with qtbot.waitSignal(model.dataChanged, timeout=0):  # emitted synchronously, before any timer
        model.apply_event(JobEvent(job_id(0), JobStatus.PROCESSING, 30, updated_at=at(5), message="Loading"))
    assert len(changes.ranges) == 1
    top, left, bottom, right = changes.ranges[0]
    assert top == bottom == model.row_of(job_id(0))
    assert left == Column.STATUS
    assert right == Column.WAIT  # status, progress, wait time changed; prompt … error did not
    assert model.index(top, Column.WAIT).data() == "5.0 s"


def test_progress_is_coalesced(qtbot: QtBot, model: JobsTableModel) -> None:
    changes = ChangeRecorder(model)
    row = model.row_of(job_id(1))
    for percent in range(31, 61):
        model.apply_event(JobEvent(job_id(1), JobStatus.PROCESSING, percent, updated_at=at(percent)))
    assert changes.ranges == []  # nothing yet: progress waits for the timer
    assert model.index(row, Column.PROGRESS).data(ProgressRole) == 60  # but the data is current
    qtbot.waitUntil(lambda: bool(changes.ranges))
    assert changes.ranges == [(row, Column.PROGRESS, row, Column.PROGRESS)]


def test_status_change_flushes_pending_progress_with_it(qtbot: QtBot, model: JobsTableModel) -> None:
    changes = ChangeRecorder(model)
    row = model.row_of(job_id(1))
    model.apply_event(JobEvent(job_id(1), JobStatus.PROCESSING, 90, updated_at=at(10)))
    model.apply_event(JobEvent(job_id(1), JobStatus.FINISHED, 100, updated_at=at(11), image_url="/outputs/x.png",
                               seed_used=99))
    assert len(changes.ranges) == 1
    assert changes.ranges[0][0] == changes.ranges[0][2] == row
    with qtbot.assertNotEmitted(model.dataChanged, wait=120):
        pass  # the flush timer has nothing left to send
    finished = model.record(job_id(1))
    assert finished is not None
    assert (finished.status, finished.seed_used, finished.finished_at) == (JobStatus.FINISHED, 99, at(11))
    assert model.index(row, Column.SEED).data() == "99"


def test_late_and_stale_events_are_ignored(model: JobsTableModel) -> None:
    model.apply_event(JobEvent(job_id(1), JobStatus.CANCELLED, 50, updated_at=at(20)))
    model.apply_event(JobEvent(job_id(1), JobStatus.PROCESSING, 55, updated_at=at(21)))  # the worker's last gasp
    model.apply_event(JobEvent(job_id(0), JobStatus.PROCESSING, 10, updated_at=at(30)))
    model.apply_event(JobEvent(job_id(0), JobStatus.QUEUED, 0, updated_at=at(29)))  # older than what we show
    model.upsert_record(record(job_id(0), JobStatus.QUEUED))  # an older snapshot from the queue
    assert model.record(job_id(1)).status is JobStatus.CANCELLED  # type: ignore[union-attr]
    assert model.record(job_id(0)).status is JobStatus.PROCESSING  # type: ignore[union-attr]


def test_an_ending_stamped_before_the_last_progress_still_ends_the_job(model: JobsTableModel) -> None:
    # A cancel stamped by the window just before a worker's progress call can reach the stream just after it.
    model.apply_event(JobEvent(job_id(0), JobStatus.PROCESSING, 30, updated_at=at(31)))
    model.apply_event(JobEvent(job_id(0), JobStatus.CANCELLED, 30, updated_at=at(30), message="cancelling"))
    assert model.record(job_id(0)).status is JobStatus.CANCELLED  # type: ignore[union-attr]
    model.apply_event(JobEvent(job_id(0), JobStatus.PROCESSING, 40, updated_at=at(32)))  # the worker's last gasp
    assert model.record(job_id(0)).status is JobStatus.CANCELLED  # type: ignore[union-attr]


def test_event_for_an_unknown_job_adds_a_row(qtbot: QtBot, model: JobsTableModel) -> None:
    with qtbot.waitSignal(model.rowsInserted) as blocker:
        model.apply_event(JobEvent(job_id(7), JobStatus.QUEUED, 0))
    assert blocker.args is not None
    assert blocker.args[1] == blocker.args[2] == 4
    assert model.row_of(job_id(7)) == 4
    model.upsert_record(record(job_id(7), JobStatus.QUEUED, prompt="now with parameters"))
    assert model.index(4, Column.PROMPT).data() == "now with parameters"


def test_remove_finished_keeps_the_id_map_right(model: JobsTableModel) -> None:
    model.apply_event(JobEvent(job_id(5), JobStatus.QUEUED, 0))
    assert model.remove_finished() == 2
    assert model.job_ids() == [job_id(0), job_id(1), job_id(5)]
    assert [model.row_of(job_id(n)) for n in (0, 1, 5, 2)] == [0, 1, 2, -1]
    assert model.index(2, 0).data(JobIdRole) == job_id(5)


def write_image(path: Path, size: tuple[int, int], fmt: str = "PNG") -> Path:
    Image.new("RGB", size, "orange").save(path, fmt)
    return path


def test_thumbnail_is_loaded_in_the_background_and_scaled(qtbot: QtBot, tmp_path: Path) -> None:
    output = write_image(tmp_path / "big.jpg", (2400, 1200), "JPEG")
    resolved: list[str] = []

    def resolve(url: str) -> Path:
        resolved.append(url)
        return output

    model = JobsTableModel(resolve, thumbnail_size=64)
    model.upsert_record(record(job_id(1), JobStatus.FINISHED, image_url="/outputs/big.jpg"))
    index = model.index(0, Column.THUMBNAIL)
    with qtbot.waitSignal(model.dataChanged) as blocker:
        assert index.data(ThumbnailRole) is None  # not loaded yet: the call returns at once
    assert blocker.args is not None
    assert blocker.args[0].column() == blocker.args[1].column() == Column.THUMBNAIL
    image = index.data(ThumbnailRole)
    assert isinstance(image, QImage)
    assert (image.width(), image.height()) == (64, 32)
    assert isinstance(index.data(Qt.ItemDataRole.DecorationRole), QImage)
    assert resolved == ["/outputs/big.jpg"]


def test_missing_output_gives_no_thumbnail_and_no_retry_storm(qtbot: QtBot, tmp_path: Path) -> None:
    calls: list[str] = []

    def resolve(url: str) -> Path:
        calls.append(url)
        return tmp_path / "missing.png"

    model = JobsTableModel(resolve)
    model.upsert_record(record(job_id(1), JobStatus.FINISHED, image_url="/outputs/missing.png"))
    index = model.index(0, Column.THUMBNAIL)
    assert index.data(ThumbnailRole) is None
    thumbnails = model._thumbnails
    qtbot.waitUntil(lambda: not thumbnails.is_loading())
    assert index.data(ThumbnailRole) is None
    assert len(calls) == 1  # asked again, but the missing file is not looked for again
    assert not thumbnails.is_loading()


def test_preview_frames_show_while_running(model: JobsTableModel) -> None:
    frame = io.BytesIO()
    Image.new("RGB", (256, 128), "purple").save(frame, "JPEG")
    model.apply_event(JobEvent(job_id(1), JobStatus.PROCESSING, 50, updated_at=at(3)))
    model.set_preview(job_id(1), frame.getvalue())
    image = model.index(model.row_of(job_id(1)), Column.THUMBNAIL).data(ThumbnailRole)
    assert isinstance(image, QImage)
    assert image.width() == 64


def test_filter_proxy_by_status_and_text(qtmodeltester: ModelTester, model: JobsTableModel) -> None:
    proxy = JobsFilterProxy()
    proxy.setSourceModel(model)
    qtmodeltester.check(proxy, force_py=True)
    proxy.set_statuses({JobStatus.FINISHED, JobStatus.FAILED})
    assert sorted(proxy.index(r, 0).data(JobIdRole) for r in range(proxy.rowCount())) == [job_id(2), job_id(3)]
    proxy.set_text("PROMPT 3")
    assert [proxy.index(r, 0).data(JobIdRole) for r in range(proxy.rowCount())] == [job_id(3)]
    proxy.set_statuses(None)
    proxy.set_text("boom")  # errors are searched too
    assert proxy.rowCount() == 1
    proxy.set_text("")
    assert proxy.rowCount() == 4
    proxy.sort(Column.STATUS, Qt.SortOrder.AscendingOrder)
    assert proxy.index(0, Column.STATUS).data(StatusRole) == JobStatus.PROCESSING
    model.apply_event(JobEvent(job_id(8), JobStatus.PROCESSING, 5))
    qtmodeltester.check(proxy, force_py=True)


def test_delegate_paints_every_column(qtbot: QtBot, model: JobsTableModel) -> None:
    frame = io.BytesIO()
    Image.new("RGB", (64, 64), "green").save(frame, "PNG")
    model.apply_event(JobEvent(job_id(1), JobStatus.PROCESSING, 45, updated_at=at(3)))
    model.set_preview(job_id(1), frame.getvalue())
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(model)
    delegate = JobDelegate(view, thumbnail_size=48)
    view.setItemDelegate(delegate)
    view.resize(1200, 400)
    view.show()
    qtbot.waitExposed(view)
    view.resizeColumnsToContents()
    view.resizeRowsToContents()
    assert not view.grab().isNull()  # every cell painted without a warning
    option = QStyleOptionViewItem()
    option.fontMetrics = view.fontMetrics()
    assert delegate.sizeHint(option, model.index(0, Column.THUMBNAIL)) == QSize(56, 56)
    assert delegate.sizeHint(option, model.index(0, Column.PROGRESS)).width() >= 110


def test_upsert_records_inserts_new_rows_in_one_block_and_updates_known_ones(qtbot) -> None:  # type: ignore[no-untyped-def]
    from comfystudio_desktop.jobs import JobRecord, JobStatus
    from comfystudio_desktop.ui.jobs_model import JobsTableModel

    model = JobsTableModel()
    model.upsert_record(JobRecord(job_id="known", status=JobStatus.QUEUED, updated_at="2026-01-01T00:00:00"))
    inserts: list[tuple[int, int]] = []
    model.rowsInserted.connect(lambda _parent, first, last: inserts.append((first, last)))
    batch = [JobRecord(job_id=f"job-{i}", status=JobStatus.FINISHED, updated_at="2026-01-01T00:00:01")
             for i in range(500)]
    batch.append(JobRecord(job_id="known", status=JobStatus.PROCESSING, progress=40,
                           updated_at="2026-01-01T00:00:02"))
    model.upsert_records(batch)
    assert inserts == [(1, 500)]
    assert model.rowCount() == 501 and model.row_of("job-499") == 500
    assert model.record("known").status is JobStatus.PROCESSING  # type: ignore[union-attr]
