"""One path for job state: each change of a job reaches the window once, from the queue's event stream."""

from __future__ import annotations

import itertools
from typing import Any, cast

from PySide6.QtCore import QModelIndex, QPersistentModelIndex
from pytestqt.qtbot import QtBot

from comfystudio_desktop.jobs import JobEvent, JobStatus
from comfystudio_desktop.queue.job_queue import EVENTS_KEY, event_from_fields
from comfystudio_desktop.ui.jobs_model import Column, RecordRole
from comfystudio_desktop.ui.worker_thread import PreviewFrame
from tests.fake_comfyui.process import FakeComfyProcess
from tests.ui.window_session import Session, generate, run_until

_State = tuple[JobStatus, int, str, int]


def _state(event: JobEvent) -> _State:
    return event.status, event.progress, event.message, event.attempts


def test_one_job_reaches_the_table_once_per_change(session: Session, qtbot: QtBot,
                                                   fake: FakeComfyProcess) -> None:
    fake.control(step_time=0.05)  # enough steps and previews to show a duplicate if there were one
    model = session.model
    previews: list[PreviewFrame] = []
    session.app.controller.preview_frame.connect(previews.append)
    # The row's state at each table update of status/progress, with the Status text: the queue's outlook (a running
    # job's time left) changes that text between two changes of the job.
    shown: list[tuple[str, JobStatus, int, str, str]] = []

    def on_data_changed(top: QModelIndex | QPersistentModelIndex, bottom: QModelIndex | QPersistentModelIndex,
                        _roles: Any = ()) -> None:
        if top.column() > Column.PROGRESS or bottom.column() < Column.STATUS:
            return  # a thumbnail or preview repaint, not a state change
        for row in range(top.row(), bottom.row() + 1):
            record = model.index(row, 0).data(RecordRole)
            status_text = str(model.index(row, Column.STATUS).data())
            shown.append((record.job_id, record.status, record.progress, record.message, status_text))

    model.dataChanged.connect(on_data_changed)
    job_id = generate(session, qtbot, "counted events")
    run_until(qtbot, lambda: session.status(job_id) is JobStatus.FINISHED, message="job finished")

    runtime = session.app.controller.runtime
    assert runtime is not None
    entries = runtime.queue.conn.call(lambda c: c.xrange(EVENTS_KEY))
    fields = cast(list[tuple[str, dict[str, str]]], entries)
    in_redis = [_state(event_from_fields(f)) for _, f in fields if f.get("job_id") == job_id]
    received = [_state(e) for e in session.events if e.job_id == job_id]
    assert received == in_redis  # every change once, in order: nothing twice, nothing from a second path
    assert all(a != b for a, b in itertools.pairwise(in_redis))  # the queue writes changes only
    assert len(set(session.statuses(job_id))) < len(session.statuses(job_id))  # repeats are counted, not hidden

    mine = [s[1:] for s in shown if s[0] == job_id]
    assert mine and mine[-1][0] is JobStatus.FINISHED
    assert all(a != b for a, b in itertools.pairwise(mine)), "a table update without a change"
    job_changes = [b for a, b in itertools.pairwise(mine) if a[:3] != b[:3]]
    assert len(job_changes) < len(in_redis)  # progress is coalesced, never repeated
    assert previews and all(p.job_id == job_id for p in previews)  # previews still come from the worker
