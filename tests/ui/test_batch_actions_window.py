"""A batch in the jobs table: its progress in the menu, show only its rows, cancel it, run it again."""

from __future__ import annotations

from PySide6.QtWidgets import QMenu
from pytestqt.qtbot import QtBot

from comfystudio_desktop.jobs import Job, JobStatus
from comfystudio_desktop.queue.job_batches import JobBatches
from comfystudio_desktop.queue.queue_pause import PauseReason, QueuePauseStore
from tests.ui.window_session import CHECKPOINT, Session, generate, run_until, run_until_status


def batch_menu(session: Session) -> QMenu:
    menu = session.window.jobs_view.context_menu()
    (sub,) = [a.menu() for a in menu.actions() if a.text().startswith("Batch (")]
    assert isinstance(sub, QMenu)
    return sub


def test_batch_menu_filters_cancels_and_reruns_the_whole_batch(session: Session, qtbot: QtBot) -> None:
    runtime = session.app.controller.runtime
    assert runtime is not None
    assert QueuePauseStore(runtime.queue.conn).pause(PauseReason.USER)  # the jobs wait where we can see them
    lone = generate(session, qtbot, "not in the batch")
    jobs = [Job(prompt=f"a {colour} cube", model=CHECKPOINT, batch_id="batch-one") for colour in ("red", "green")]
    JobBatches(runtime.queue).submit("batch-one", jobs)
    ids = [j.job_id for j in jobs]
    model, view = session.model, session.window.jobs_view
    run_until(qtbot, lambda: all((r := model.record(i)) is not None and r.job is not None for i in ids),
              message="the batch's rows with their parameters")
    view.table.clearSelection()
    assert view.select_job(ids[0])
    sub = batch_menu(session)
    assert sub.title() == "Batch (0 of 2 done, 0 %)"
    actions = {a.text(): a for a in sub.actions()}
    actions["Show only this batch"].trigger()
    assert view.search.text() == "batch-one"
    assert view.proxy.rowCount() == 2 and lone in model.job_ids()

    actions["Cancel the batch"].trigger()
    for job_id in ids:
        run_until_status(qtbot, session, job_id, JobStatus.CANCELLED)
    assert session.status(lone) is JobStatus.QUEUED
    view.table.clearSelection()
    assert view.select_job(ids[1])
    sub = batch_menu(session)
    assert sub.title() == "Batch (2 of 2 done, 100 %)"
    before = set(model.job_ids())
    {a.text(): a for a in sub.actions()}["Run the batch again"].trigger()
    view.search.clear()
    run_until(qtbot, lambda: len(set(model.job_ids()) - before) == 2, message="the batch again")
    again = set(model.job_ids()) - before
    run_until(qtbot, lambda: all((r := model.record(i)) is not None and r.job is not None for i in again),
              message="the new rows' parameters")
    records = [model.record(i) for i in again]
    batch_ids = {r.job.batch_id for r in records if r is not None and r.job is not None}
    assert len(batch_ids) == 1 and batch_ids != {"batch-one"}
    assert sorted(r.job.prompt for r in records if r is not None and r.job is not None) == \
        ["a green cube", "a red cube"]
