"""A batch from the prompt panel is one row of the jobs table, moved, dragged and opened up as a whole."""

from __future__ import annotations

from PySide6.QtWidgets import QMenu
from pytestqt.qtbot import QtBot

from comfystudio_desktop.ui.jobs_model import Column, JobIdRole
from comfystudio_desktop.ui.queue_drag import queue_mime
from tests.ui.test_batch_form_window import generate_batch, paused_queue
from tests.ui.test_queue_reorder_window import drop_on, redis_order
from tests.ui.window_session import Session, generate, run_until


def shown_ids(session: Session) -> set[str]:
    proxy = session.window.jobs_view.proxy
    return {str(proxy.index(row, 0).data(JobIdRole)) for row in range(proxy.rowCount())}


def test_a_window_batch_is_one_row_that_moves_drags_and_opens_as_a_whole(session: Session, qtbot: QtBot) -> None:
    paused_queue(session, qtbot)
    lone = generate(session, qtbot, "a lone cat")
    panel = session.window.prompt_panel
    panel.prompt_edit.setPlainText("a {red|green|blue} cube")
    run_until(qtbot, lambda: redis_order(session) == [lone], message="the lone job in the queue")
    batch = [j.job_id for j in generate_batch(session, qtbot, 3)]
    model, view = session.model, session.window.jobs_view
    run_until(qtbot, lambda: redis_order(session) == [lone, *batch], message="the run order")
    run_until(qtbot, lambda: session.window.queue_control.order.ids() == [lone, *batch],
              message="the window knowing the run order")
    assert shown_ids(session) == {lone, batch[0]}
    lead = model.index(model.row_of(batch[0]), Column.PROMPT)
    assert lead.data() == "▸ 3 jobs · a red cube"

    view.table.clearSelection()
    assert view.select_job(batch[0])
    actions = {a.text(): a for a in view.context_menu().actions()}
    actions["Move to top"].trigger()
    run_until(qtbot, lambda: redis_order(session) == [*batch, lone], message="the whole batch moved to the top")

    drag = session.window.queue_drag
    assert drag.selected_queued_ids() == batch
    assert drop_on(session, queue_mime(drag.selected_queued_ids()), lone, lower=True)
    run_until(qtbot, lambda: redis_order(session) == [lone, *batch], message="the whole batch dropped below")
    assert drop_on(session, queue_mime([lone]), batch[0], lower=True)  # below a folded row: after its last job
    run_until(qtbot, lambda: redis_order(session) == [*batch, lone], message="dropped after the batch")

    view.table.clearSelection()
    assert view.select_job(batch[0])
    menu = view.context_menu()
    (sub,) = [m for a in menu.actions() if a.text().startswith("Batch (") and isinstance(m := a.menu(), QMenu)]
    {a.text(): a for a in sub.actions()}["Show its rows"].trigger()
    assert shown_ids(session) == {lone, *batch}
    assert model.index(model.row_of(batch[0]), Column.PROMPT).data() == "a red cube"
    view.table.clearSelection()
    assert view.select_job(batch[1])
    sub = next(m for a in view.context_menu().actions() if a.text().startswith("Batch (")
               and isinstance(m := a.menu(), QMenu))
    {a.text(): a for a in sub.actions()}["Fold into one row"].trigger()
    assert shown_ids(session) == {lone, batch[0]}
