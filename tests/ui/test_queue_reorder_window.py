"""Reorder and priority in the window, on the real queue: drag, Ctrl+Up/Down, Move to top, priorities."""

from __future__ import annotations

from functools import partial

from PySide6.QtCore import QMimeData, QPoint, Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QMenu
from pytestqt.qtbot import QtBot

from comfystudio_desktop.jobs import JobStatus
from comfystudio_desktop.queue.ordering import Priority, QueueOrder
from comfystudio_desktop.ui.jobs_model import Column, QueuePositionRole
from comfystudio_desktop.ui.queue_drag import QUEUE_MIME, queue_mime, queued_ids_from_mime
from tests.ui.window_session import Session, generate, run_until, run_until_status


def place_words(session: Session, job_id: str) -> str:
    """The Status column's place and priority, without the start estimate the outlook adds once it has one."""
    text = str(session.model.index(session.model.row_of(job_id), Column.STATUS).data())
    return text.split(" · starts ≈ ", maxsplit=1)[0]


def _claimed_ones_running(session: Session, ids: tuple[str, ...]) -> bool:
    return all(session.status(i) is not JobStatus.QUEUED or i in redis_order(session) for i in ids)


def paused_with_jobs(session: Session, qtbot: QtBot, count: int) -> list[str]:
    """Pause the queue and queue `count` jobs; return their ids in run order, once the table shows that order.

    A worker blocked on the wake-up list when the pause came may still claim the first job it is woken for: that
    one runs, and another is queued in its place. The order is Redis's.
    """
    session.window.pause_action.trigger()
    ids: list[str] = []
    while len(queued := [i for i in redis_order(session) if i in ids]) < count or len(queued) < len(ids):
        if len(queued) < len(ids):  # one was claimed: wait until it is running, then queue one more
            run_until(qtbot, partial(_claimed_ones_running, session, tuple(ids)), message="the claimed job running")
            ids = [i for i in ids if i in redis_order(session)]
            continue
        ids.append(generate(session, qtbot, f"job number {len(ids)}"))
    run_until(qtbot, lambda: session.window.queue_control.order.ids() == redis_order(session),
              message="the run order")
    return redis_order(session)


def redis_order(session: Session) -> list[str]:
    runtime = session.app.controller.runtime
    assert runtime is not None
    return [job_id for job_id, _ in QueueOrder(runtime.queue).order()]


def shown_positions(session: Session, ids: list[str]) -> list[int | None]:
    model = session.model
    return [model.index(model.row_of(i), Column.STATUS).data(QueuePositionRole) for i in ids]


def drop_on(session: Session, mime: QMimeData, target: str, *, lower: bool) -> bool:
    """Drag `mime` over the target's row (upper or lower half) and drop it; True if the drop was accepted."""
    view = session.window.jobs_view
    assert view.select_job(target)
    index = view.table.currentIndex() if view.table.currentIndex().isValid() else \
        view.table.selectionModel().selectedRows()[0]
    rect = view.table.visualRect(index)
    point = QPoint(rect.center().x(), rect.bottom() - 2 if lower else rect.top() + 2)
    viewport = view.table.viewport()
    actions = Qt.DropAction.MoveAction
    enter = QDragEnterEvent(point, actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(viewport, enter)
    drop = QDropEvent(point.toPointF(), actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(viewport, drop)
    return enter.isAccepted() and drop.isAccepted()


def test_dragging_a_queued_row_changes_the_order_in_redis_and_the_table_follows(session: Session,
                                                                                  qtbot: QtBot) -> None:
    first, second, third = paused_with_jobs(session, qtbot, 3)
    assert shown_positions(session, [first, second, third]) == [1, 2, 3]
    drag = session.window.queue_drag
    assert session.window.jobs_view.select_job(third)
    assert drag.selected_queued_ids() == [third]
    assert drop_on(session, queue_mime(drag.selected_queued_ids()), first, lower=False)
    run_until(qtbot, lambda: redis_order(session) == [third, first, second], message="the new order in Redis")
    run_until(qtbot, lambda: shown_positions(session, [third, first, second]) == [1, 2, 3],
              message="the table showing the new order")
    assert drop_on(session, queue_mime([third]), second, lower=True)
    run_until(qtbot, lambda: redis_order(session) == [first, second, third], message="dropped below the last")
    run_until(qtbot, lambda: place_words(session, first) == "Queued #1", message="the Status column showing the place")


def test_a_drop_that_is_not_a_queue_drag_or_not_on_a_queued_row_moves_nothing(session: Session,
                                                                             qtbot: QtBot) -> None:
    first, second = paused_with_jobs(session, qtbot, 2)
    other = QMimeData()
    other.setText(second)
    assert not drop_on(session, other, first, lower=False)
    garbage = QMimeData()
    garbage.setData(QUEUE_MIME, b"../../etc\n")
    assert queued_ids_from_mime(garbage) is None
    assert not drop_on(session, garbage, first, lower=False)
    assert redis_order(session) == [first, second]


def test_keys_and_context_menu_move_and_reprioritise(session: Session, qtbot: QtBot) -> None:
    first, second, third = paused_with_jobs(session, qtbot, 3)
    view = session.window.jobs_view
    assert view.select_job(third)
    view.table.setFocus()
    qtbot.keyClick(view.table, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    run_until(qtbot, lambda: redis_order(session) == [first, third, second], message="Ctrl+Up")
    run_until(qtbot, lambda: session.window.queue_control.order.ids() == [first, third, second])
    qtbot.keyClick(view.table, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    run_until(qtbot, lambda: redis_order(session) == [first, second, third], message="Ctrl+Down")
    run_until(qtbot, lambda: session.window.queue_control.order.ids() == [first, second, third])

    view.table.clearSelection()  # selectRow adds to the selection while Qt still thinks Ctrl is down
    assert view.select_job(second)
    assert [r.job_id for r in view.selected_records()] == [second]
    actions = {a.text(): a for a in view.context_menu().actions()}
    actions["Move to top"].trigger()
    run_until(qtbot, lambda: redis_order(session) == [second, first, third], message="Move to top")

    view.table.clearSelection()
    assert view.select_job(third)
    menu = view.context_menu()
    (priority,) = [m for a in menu.actions() if a.text() == "Priority" and isinstance(m := a.menu(), QMenu)]
    levels = {a.text(): a for a in priority.actions()}
    assert levels["Normal"].isChecked()
    levels["High"].trigger()
    run_until(qtbot, lambda: redis_order(session) == [third, second, first], message="high priority first")
    run_until(qtbot, lambda: place_words(session, third) == "Queued #1 · high", message="the priority in the table")


def test_the_prompt_panels_priority_is_the_jobs(session: Session, qtbot: QtBot) -> None:
    (normal,) = paused_with_jobs(session, qtbot, 1)
    panel = session.window.prompt_panel
    panel.priority_combo.setCurrentIndex(panel.priority_combo.findData(Priority.LOW))
    low = generate(session, qtbot, "low priority")
    panel.priority_combo.setCurrentIndex(panel.priority_combo.findData(Priority.HIGH))
    high = generate(session, qtbot, "high priority")
    run_until(qtbot, lambda: redis_order(session) == [high, normal, low] and session.status(high) is JobStatus.QUEUED,
              message="ordered by priority")
    record = session.model.record(high)
    assert record is not None and record.job is not None and record.job.priority == Priority.HIGH.value
    panel.load_job(record.job.rerun())
    assert panel.priority() is Priority.HIGH
    session.window.pause_action.trigger()  # resume: all three run
    for job_id in (high, normal, low):
        run_until_status(qtbot, session, job_id, JobStatus.FINISHED)
    # The run order is read again after changes, coalesced: it may follow the last ending by a moment.
    run_until(qtbot, lambda: session.window.queue_control.order.ids() == [], message="the run order emptied")
