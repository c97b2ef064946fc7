"""A batch folded into one row: the fold's bookkeeping (as properties), the model and filter, and the view's actions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from comfystudio_desktop.jobs import Job, JobEvent, JobRecord, JobStatus
from comfystudio_desktop.ui.batch_folds import BatchFolds, batch_status
from comfystudio_desktop.ui.jobs_filter import JobsFilterProxy
from comfystudio_desktop.ui.jobs_model import (
    Column,
    JobIdRole,
    JobsTableModel,
    ProgressRole,
    RetryAttemptRole,
    StatusRole,
)
from comfystudio_desktop.ui.jobs_view import JobsView
from tests.ui.test_jobs_model import T0, at, job_id

BATCH = "batch-fold"


def member(n: int, status: JobStatus = JobStatus.QUEUED, progress: int = 0, batch: str = BATCH) -> JobRecord:
    job = Job(prompt=f"prompt {n}", job_id=job_id(n), model="sdxl/juggernaut.safetensors", created_at=T0, seed=n,
              batch_id=batch)
    return JobRecord(job_id=job_id(n), status=status, progress=progress, created_at=T0, updated_at=T0, job=job,
                     started_at=T0 if status != JobStatus.QUEUED else "")


# --- the bookkeeping, as properties -------------------------------------------------------------------------

_OPS = st.lists(st.one_of(
    st.tuples(st.just("fold"), st.sampled_from("abc"), st.lists(st.integers(0, 11), unique=True, max_size=5)),
    st.tuples(st.just("unfold"), st.sampled_from("abc"), st.just([])),
    st.tuples(st.just("add"), st.sampled_from("abc"), st.lists(st.integers(0, 11), min_size=1, max_size=1)),
    st.tuples(st.just("keep"), st.just(""), st.lists(st.integers(0, 11), unique=True)),
), max_size=30)


@given(_OPS)
def test_folds_keep_one_lead_per_batch_and_hide_exactly_the_other_members(
        ops: list[tuple[str, str, list[int]]]) -> None:
    folds = BatchFolds()
    expected: dict[str, list[str]] = {}  # batch → members, the lead first
    for op, batch, numbers in ops:
        ids = [str(n) for n in numbers]
        owned = {j for members in expected.values() for j in members}
        if op == "fold":
            fresh = [j for j in ids if j not in owned]
            done = folds.fold(batch, fresh)
            assert done == (len(fresh) >= 2 and batch not in expected)
            if done:
                expected[batch] = fresh
        elif op == "unfold":
            assert folds.unfold(batch) == expected.pop(batch, [])
        elif op == "add":
            added = folds.add(batch, ids[0])
            assert added == (batch in expected and ids[0] not in owned)
            if added:
                expected[batch].append(ids[0])
        else:
            folds.keep_only(ids)
            kept = {b: [j for j in m if j in set(ids)] for b, m in expected.items()}
            expected = {b: m for b, m in kept.items() if len(m) >= 2}
        assert folds.hidden == {j for members in expected.values() for j in members[1:]}
        assert bool(folds) == bool(expected)
        for b, members in expected.items():
            assert folds.lead(b) == members[0] and folds.led_by(members[0]) == b
            assert folds.expand([members[0], "x"]) == [*members, "x"]
            assert all(folds.batch_of(j) == b for j in members)
            assert all(folds.led_by(j) is None for j in members[1:])


@given(st.lists(st.sampled_from(list(JobStatus)), max_size=8))
def test_a_batch_shows_running_before_waiting_before_failed_before_cancelled_before_finished(
        statuses: list[JobStatus]) -> None:
    order = [JobStatus.PROCESSING, JobStatus.QUEUED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.FINISHED]
    shown = batch_status(statuses)
    assert shown == (min(statuses, key=order.index) if statuses else JobStatus.QUEUED)


# --- the model and its filter -------------------------------------------------------------------------------

@pytest.fixture
def folded(qtbot: QtBot) -> Iterator[tuple[JobsTableModel, JobsFilterProxy]]:
    model = JobsTableModel(flush_interval_ms=10)
    proxy = JobsFilterProxy()
    proxy.setSourceModel(model)
    model.upsert_record(member(0, batch=""))  # not in a batch
    model.upsert_records([member(1, JobStatus.FINISHED, 100), member(2, JobStatus.PROCESSING, 50), member(3)])
    assert model.fold_batch(BATCH)
    yield model, proxy
    model.flush()


def visible_ids(proxy: JobsFilterProxy) -> set[str]:
    return {str(proxy.index(row, 0).data(JobIdRole)) for row in range(proxy.rowCount())}


def lead_cell(model: JobsTableModel, column: Column) -> object:
    lead = model.folded_lead(BATCH)
    assert lead is not None
    return model.index(model.row_of(lead), column)


def test_a_folded_batch_is_one_row_showing_the_whole_batch(folded: tuple[JobsTableModel, JobsFilterProxy],
                                                           qtmodeltester: ModelTester) -> None:
    model, proxy = folded
    qtmodeltester.check(proxy, force_py=True)
    assert visible_ids(proxy) == {job_id(0), job_id(1)}
    assert model.folded_lead(BATCH) == job_id(1)
    prompt, status, progress = (lead_cell(model, c) for c in (Column.PROMPT, Column.STATUS, Column.PROGRESS))
    assert prompt.data() == "▸ 3 jobs · prompt 1"  # type: ignore[attr-defined]
    assert status.data(StatusRole) == JobStatus.PROCESSING  # type: ignore[attr-defined]
    assert status.data() == "Processing · 1 of 3 done"  # type: ignore[attr-defined]
    assert progress.data(ProgressRole) == (100 + 50 + 0) // 3  # type: ignore[attr-defined]
    assert progress.data(RetryAttemptRole) is None  # type: ignore[attr-defined]
    # The other columns are the lead's own.
    assert model.index(model.row_of(job_id(1)), Column.SEED).data() == "1"
    assert model.expand_folded([job_id(0), job_id(1)]) == [job_id(0), job_id(1), job_id(2), job_id(3)]


def test_a_member_that_moves_repaints_the_batch_row(folded: tuple[JobsTableModel, JobsFilterProxy],
                                                     qtbot: QtBot) -> None:
    model, _proxy = folded
    lead_row = model.row_of(job_id(1))
    with qtbot.waitSignal(model.dataChanged, timeout=2000,
                          check_params_cb=lambda top, bottom, _roles: top.row() == lead_row == bottom.row()):
        model.apply_event(JobEvent(job_id(2), JobStatus.FINISHED, 100, updated_at=at(5)))
    assert lead_cell(model, Column.PROGRESS).data(ProgressRole) == (100 + 100 + 0) // 3  # type: ignore[attr-defined]
    assert lead_cell(model, Column.STATUS).data() == "Queued · 2 of 3 done"  # type: ignore[attr-defined]


def test_rows_that_arrive_later_join_the_fold_and_a_lost_lead_is_replaced(
        folded: tuple[JobsTableModel, JobsFilterProxy]) -> None:
    model, proxy = folded
    model.upsert_record(member(4))
    assert visible_ids(proxy) == {job_id(0), job_id(1)}
    assert lead_cell(model, Column.PROMPT).data() == "▸ 4 jobs · prompt 1"  # type: ignore[attr-defined]
    # A row first known from an event has no batch yet; it joins when its record says which batch it is in.
    model.apply_event(JobEvent(job_id(5), JobStatus.QUEUED, 0, updated_at=at(1)))
    assert job_id(5) in visible_ids(proxy)
    model.upsert_record(replace(member(5), updated_at=at(2)))
    assert visible_ids(proxy) == {job_id(0), job_id(1)}
    model.remove_finished()  # the lead (finished) goes; the next member shows the batch
    assert model.folded_lead(BATCH) == job_id(2)
    assert visible_ids(proxy) == {job_id(0), job_id(2)}
    assert lead_cell(model, Column.PROMPT).data() == "▸ 4 jobs · prompt 2"  # type: ignore[attr-defined]
    assert model.unfold_batch(BATCH)
    assert visible_ids(proxy) == {job_id(n) for n in (0, 2, 3, 4, 5)}
    assert model.index(model.row_of(job_id(2)), Column.PROMPT).data() == "prompt 2"
    assert not model.unfold_batch(BATCH)


def test_a_batch_of_one_row_here_does_not_fold(qtbot: QtBot) -> None:
    model = JobsTableModel()
    model.upsert_record(member(1))
    assert not model.fold_batch(BATCH)
    assert not model.is_folded(BATCH)


def test_filters_still_apply_to_a_folded_row(folded: tuple[JobsTableModel, JobsFilterProxy]) -> None:
    _model, proxy = folded
    proxy.set_text("prompt 1")
    assert visible_ids(proxy) == {job_id(1)}
    proxy.set_text("prompt 2")  # a hidden member stays hidden
    assert visible_ids(proxy) == set()
    proxy.set_text("")
    proxy.set_statuses({JobStatus.QUEUED})
    assert visible_ids(proxy) == {job_id(0)}


# --- the view -----------------------------------------------------------------------------------------------

@pytest.fixture
def view(qtbot: QtBot, tmp_path: Path) -> Iterator[JobsView]:
    model = JobsTableModel(flush_interval_ms=10)
    model.upsert_records([member(1), member(2, JobStatus.PROCESSING, 20), member(3, JobStatus.FAILED)])
    widget = JobsView(model, tmp_path)
    qtbot.addWidget(widget)
    assert model.fold_batch(BATCH)
    yield widget
    model.flush()


def test_actions_on_a_folded_row_act_on_every_job_of_the_batch(view: JobsView, qtbot: QtBot) -> None:
    assert view.proxy.rowCount() == 1
    assert view.select_job(job_id(1))
    assert [r.job_id for r in view.selected_rows()] == [job_id(1)]
    assert [r.job_id for r in view.selected_records()] == [job_id(1), job_id(2), job_id(3)]
    with qtbot.waitSignal(view.cancel_requested, timeout=1000) as cancelled:
        view.cancel_action.trigger()
    assert cancelled.args == [[job_id(1), job_id(2)]]
    assert view.retry_action.isEnabled()
    with qtbot.waitSignal(view.retry_requested, timeout=1000) as retried:
        view.retry_action.trigger()
    assert retried.args == [[job_id(3)]]
    assert not view.load_action.isEnabled()  # one job's parameters: not for a whole batch


def test_a_double_click_opens_a_folded_row_into_its_rows(view: JobsView, qtbot: QtBot) -> None:
    index = view.proxy.index(0, Column.PROMPT)
    view.table.doubleClicked.emit(index)
    assert view.proxy.rowCount() == 3
    assert not view.model.is_folded(BATCH)


def test_revealing_a_hidden_job_unfolds_its_batch(view: JobsView) -> None:
    assert not view.select_job(job_id(3))
    assert view.reveal_job(job_id(3))
    assert [r.job_id for r in view.selected_rows()] == [job_id(3)]
    assert view.proxy.rowCount() == 3
