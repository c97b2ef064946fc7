"""JobsTableModel under load: per-frame coalescing keeps each row's last state, adjacent rows share one
`dataChanged`; the lasting history is served page by page (`fetchMore`) in order; the delegate's caches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QModelIndex
from PySide6.QtGui import QImage
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobEvent, JobRecord, JobStatus
from comfystudio_desktop.queue.connection import ResilientRedis
from comfystudio_desktop.queue.history import History
from comfystudio_desktop.queue.history_entry import HistoryEntry
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from comfystudio_desktop.ui.history_pages import HistoryPages
from comfystudio_desktop.ui.jobs_model import HISTORY_PAGE, Column, JobIdRole, JobsTableModel, ProgressRole
from comfystudio_desktop.ui.jobs_view import JobsView

T0 = "2025-01-01T10:00:00.000+00:00"
T0_MS = 1_735_725_600_000


def live(n: int, status: JobStatus = JobStatus.PROCESSING) -> JobRecord:
    job = Job(prompt=f"live {n}", job_id=f"live-{n:04d}", model="sdxl.safetensors", created_at=T0, seed=n)
    return JobRecord(job_id=job.job_id, status=status, progress=30, created_at=T0, updated_at=T0, started_at=T0,
                     job=job)


def entry(n: int) -> HistoryEntry:
    """The n-th newest history entry (ended n minutes before T0)."""
    job = Job(prompt=f"old {n}", job_id=f"hist-{n:05d}", model="sd15.safetensors", created_at=T0, seed=n)
    return HistoryEntry(job=job, status=JobStatus.FINISHED, ended_ms=T0_MS - 60_000 * n, seed_used=n,
                        image_url=f"outputs/{job.job_id}.png", outputs=(f"{job.job_id}.png",))


@pytest.fixture
def history(redis_server: EmbeddedRedis) -> Iterator[History]:
    conn = ResilientRedis(redis_server.endpoint)
    yield History(conn)
    conn.close()


def changes_of(model: JobsTableModel) -> list[tuple[int, int, int, int]]:
    ranges: list[tuple[int, int, int, int]] = []

    def record(top_left: QModelIndex, bottom_right: QModelIndex, _roles: object) -> None:
        ranges.append((top_left.row(), top_left.column(), bottom_right.row(), bottom_right.column()))

    model.dataChanged.connect(record)
    return ranges


def test_coalescing_keeps_the_last_state_of_each_row_and_batches_adjacent_rows(qtbot: QtBot) -> None:
    model = JobsTableModel(flush_interval_ms=16)
    model.upsert_records([live(n) for n in range(6)])
    ranges = changes_of(model)
    for step in range(50):  # rows 0..3 updated in turn, row 5 too; row 4 untouched
        for n in (0, 1, 2, 3, 5):
            model.apply_event(JobEvent(f"live-{n:04d}", JobStatus.PROCESSING, 31 + step + n, message="sampling"))
    assert ranges == []  # nothing is signalled before the frame's flush
    qtbot.waitUntil(lambda: bool(ranges), timeout=2000)
    # Rows 0..3 as one range, row 5 alone: the first event touched status tooltip and progress, the rest progress.
    assert ranges == [(0, Column.STATUS, 3, Column.PROGRESS), (5, Column.STATUS, 5, Column.PROGRESS)]
    for n in (0, 1, 2, 3, 5):
        assert model.index(n, Column.PROGRESS).data(ProgressRole) == 31 + 49 + n
        assert model.index(n, Column.PROGRESS).data() == f"{80 + n} %"
    assert model.index(4, Column.PROGRESS).data(ProgressRole) == 30


def test_a_status_change_is_shown_at_once_with_the_rows_pending_progress(qtbot: QtBot) -> None:
    model = JobsTableModel(flush_interval_ms=10_000)
    model.upsert_records([live(0)])
    ranges = changes_of(model)
    model.apply_event(JobEvent("live-0000", JobStatus.PROCESSING, 70))
    model.apply_event(JobEvent("live-0000", JobStatus.FINISHED, 100, image_url="outputs/x.png"))
    assert len(ranges) == 1 and ranges[0][1] == Column.STATUS
    assert model.index(0, Column.STATUS).data() == "Finished"


def test_fetch_more_serves_every_history_entry_in_order(qtbot: QtBot, history: History) -> None:
    count = 2 * HISTORY_PAGE + 37
    history.add([entry(n) for n in range(count)])
    model = JobsTableModel()
    model.upsert_records([live(0), live(1)])
    model.attach_history(HistoryPages(history))
    qtbot.waitUntil(lambda: model.rowCount() == 2 + HISTORY_PAGE, timeout=10_000)
    assert model.rowCount() == 2 + HISTORY_PAGE  # one page, not the whole history
    while model.canFetchMore(QModelIndex()) or model.rowCount() < 2 + count:
        before = model.rowCount()
        model.fetchMore(QModelIndex())
        assert not model.canFetchMore(QModelIndex())  # one page at a time
        qtbot.waitUntil(lambda: model.rowCount() > before, timeout=10_000)  # noqa: B023 - used at once
    ids = [model.index(row, 0).data(JobIdRole) for row in range(model.rowCount())]
    assert ids == ["live-0000", "live-0001", *(f"hist-{n:05d}" for n in range(count))]
    assert not model.canFetchMore(QModelIndex())
    last = model.record(f"hist-{count - 1:05d}")
    assert last is not None and last.status is JobStatus.FINISHED and last.seed_used == count - 1


def test_a_live_job_is_not_repeated_by_the_history(qtbot: QtBot, history: History) -> None:
    history.add([entry(n) for n in range(5)])
    model = JobsTableModel()
    ended = live(2, JobStatus.FINISHED)
    model.upsert_records([JobRecord(job_id="hist-00002", status=JobStatus.FINISHED, progress=100, job=ended.job)])
    model.attach_history(HistoryPages(history))
    qtbot.waitUntil(lambda: model.rowCount() == 5, timeout=10_000)
    ids = [model.index(row, 0).data(JobIdRole) for row in range(model.rowCount())]
    assert sorted(ids) == [f"hist-{n:05d}" for n in range(5)]
    assert model.record("hist-00002") == model.record("hist-00002")  # the live row kept, not replaced
    assert model.row_of("hist-00002") == 0


def test_model_with_history_passes_qtmodeltester(qtbot: QtBot, qtmodeltester: ModelTester, history: History) -> None:
    history.add([entry(n) for n in range(HISTORY_PAGE + 10)])
    model = JobsTableModel()
    model.upsert_records([live(n) for n in range(3)])
    model.attach_history(HistoryPages(history))
    qtbot.waitUntil(lambda: model.rowCount() == 3 + HISTORY_PAGE, timeout=10_000)
    qtmodeltester.check(model, force_py=True)
    model.fetchMore(QModelIndex())
    qtbot.waitUntil(lambda: model.rowCount() == 3 + HISTORY_PAGE + 10, timeout=10_000)
    model.apply_event(JobEvent("live-0001", JobStatus.PROCESSING, 64))
    model.flush()
    model.remove_finished()
    assert model.rowCount() == 3
    qtmodeltester.check(model, force_py=True)


def test_the_view_fetches_history_when_scrolled_to_the_end(qtbot: QtBot, history: History, home: Home) -> None:
    history.add([entry(n) for n in range(HISTORY_PAGE + 50)])
    model = JobsTableModel()
    model.attach_history(HistoryPages(history))
    view = JobsView(model, home.outputs)
    qtbot.addWidget(view)
    view.resize(900, 600)
    view.show()
    qtbot.waitUntil(lambda: model.rowCount() == HISTORY_PAGE, timeout=10_000)
    view.table.scrollToBottom()
    qtbot.waitUntil(lambda: model.rowCount() == HISTORY_PAGE + 50, timeout=10_000)


def test_cached_painting_draws_what_changed(qtbot: QtBot, home: Home, tmp_path: Path) -> None:
    model = JobsTableModel()
    model.upsert_records([live(0)])
    view = JobsView(model, home.outputs)
    qtbot.addWidget(view)
    view.resize(900, 300)
    view.show()
    qtbot.waitExposed(view)

    def shot() -> QImage:
        image = QImage(view.table.viewport().size(), QImage.Format.Format_ARGB32)
        view.table.viewport().render(image)
        return image

    first = shot()
    assert shot() == first  # painted again from the caches: the same pixels
    model.apply_event(JobEvent("live-0000", JobStatus.PROCESSING, 77))
    model.flush()
    assert shot() != first  # a new progress value is a new bar, not a stale cached one
    model.apply_event(JobEvent("live-0000", JobStatus.FAILED, 77, error="boom"))
    failed = shot()
    assert failed != first
    assert model.index(0, Column.ERROR).data() == "boom"
