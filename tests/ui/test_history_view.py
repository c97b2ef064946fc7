"""The History dock on the real queue: find a finished job by a prompt word, star it, keep it through the clean-up,
load its parameters and run it again; the gallery shows the same results."""

from __future__ import annotations

import asyncio
import time

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import JobStatus
from comfystudio_desktop.queue.history import History
from comfystudio_desktop.queue.retention import clean_up_storage
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.ui.history_model import HistoryColumn
from tests.ui.window_session import Session, generate, run_coro, run_until, run_until_status


def shown_ids(session: Session) -> list[str]:
    model = session.window.history_dock.model
    entries = [model.entry(row) for row in range(model.rowCount())]
    return [e.job_id for e in entries if e is not None]


def test_history_finds_a_job_by_a_word_and_its_star_outlives_the_clean_up(session: Session, qtbot: QtBot,
                                                                          home: Home, settings: Settings) -> None:
    kept = generate(session, qtbot, "a purple giraffe at dawn")
    other = generate(session, qtbot, "a grey elephant at dusk")
    for job_id in (kept, other):
        run_until_status(qtbot, session, job_id, JobStatus.FINISHED)
    window = session.window
    dock, view = window.history_dock, window.history_dock.view
    window.history_action.trigger()
    assert dock.isVisible()
    run_until(qtbot, lambda: sorted(shown_ids(session)) == sorted([kept, other]), message="both in the history")

    qtbot.keyClicks(view.words, "Giraffe")
    qtbot.keyClick(view.words, Qt.Key.Key_Return)
    run_until(qtbot, lambda: shown_ids(session) == [kept], message="found by a prompt word")
    assert view.count.text() == "1 job"
    assert view.model.index(0, HistoryColumn.PROMPT).data() == "a purple giraffe at dawn"

    view.table.selectRow(0)
    assert view.star_action.text() == "Star"
    view.star_action.trigger()
    runtime = session.app.controller.runtime
    assert runtime is not None
    history = History(runtime.queue.conn)
    run_until(qtbot, lambda: kept in history.favourite_ids(), message="starred in Redis")
    run_until(qtbot, lambda: view.model.index(0, HistoryColumn.STAR).data() == "★", message="the star shown")

    view.words.clear()
    view.favourites_filter.setChecked(True)
    run_until(qtbot, lambda: shown_ids(session) == [kept] and view.words.text() == "", message="favourites only")

    # The hourly clean-up, 40 days on: past the 30-day retention, only the favourite and its image remain.
    later = time.time() + 40 * 86_400
    run_coro(qtbot, session.loop, asyncio.to_thread(clean_up_storage, runtime.queue, home, settings, now=later))
    entry = history.get(kept)
    assert entry is not None and entry.favourite
    assert history.get(other) is None
    assert (home.outputs / f"{kept}.png").is_file()
    assert not (home.outputs / f"{other}.png").exists()

    view.favourites_filter.setChecked(False)
    run_until(qtbot, lambda: shown_ids(session) == [kept], message="the pruned job gone from the view")
    view.table.selectRow(0)
    view.load_action.trigger()
    assert window.prompt_panel.prompt_edit.toPlainText() == "a purple giraffe at dawn"
    before = set(session.model.job_ids())
    view.rerun_action.trigger()
    run_until(qtbot, lambda: set(session.model.job_ids()) - before, message="run again")
    (again,) = set(session.model.job_ids()) - before
    run_until(qtbot, lambda: session.status(again) is JobStatus.FINISHED, message="the re-run finished")


def test_the_gallery_shows_the_same_results_with_thumbnails(session: Session, qtbot: QtBot) -> None:
    job_id = generate(session, qtbot, "a gallery picture")
    run_until(qtbot, lambda: session.status(job_id) is JobStatus.FINISHED, message="finished")
    window = session.window
    window.history_action.trigger()
    view = window.history_dock.view
    run_until(qtbot, lambda: shown_ids(session) == [job_id], message="in the history")
    view.gallery_button.setChecked(True)
    assert view.stack.currentWidget() is view.gallery
    index = view.model.index(0, HistoryColumn.IMAGE)
    index.data(Qt.ItemDataRole.DecorationRole)  # asks for the thumbnail
    run_until(qtbot, lambda: index.data(Qt.ItemDataRole.DecorationRole) is not None, message="the thumbnail")
    view.gallery.setCurrentIndex(index)
    assert [e.job_id for e in view.selected_entries()] == [job_id]


def test_a_seed_that_is_not_a_number_is_said_and_nothing_is_searched(session: Session, qtbot: QtBot) -> None:
    window = session.window
    window.history_action.trigger()
    view = window.history_dock.view
    run_until(qtbot, lambda: not view.model.searching, message="the first search")
    qtbot.keyClicks(view.seed_filter, "12x")
    view.search()
    assert view.message.isVisible() and "Seed" in view.message.text()
