"""The reorder gestures' decisions: wanted orders and the single moves that produce them (pure functions)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comfystudio_desktop.jobs import JobStatus
from comfystudio_desktop.queue.ordering import Move
from comfystudio_desktop.ui.archive_menu import dropped_archive
from comfystudio_desktop.ui.history_search import Period, SearchError, SearchForm, history_query
from comfystudio_desktop.ui.queue_moves import QueueMove, drop_order, moves_for, step_order, to_end_order


def apply(order: Sequence[str], moves: Sequence[QueueMove]) -> list[str]:
    """What `QueueOrder.move` does to the run order, one move after another."""
    result = list(order)
    for move in moves:
        result.remove(move.job_id)
        match move.where:
            case Move.TOP:
                result.insert(0, move.job_id)
            case Move.BOTTOM:
                result.append(move.job_id)
            case Move.BEFORE:
                result.insert(result.index(move.anchor), move.job_id)
            case Move.AFTER:
                result.insert(result.index(move.anchor) + 1, move.job_id)
    return result


orders = st.lists(st.sampled_from([f"j{i}" for i in range(12)]), unique=True, min_size=1, max_size=12)


@st.composite
def order_and_selection(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    order = draw(orders)
    selected = draw(st.lists(st.sampled_from(order), unique=True, max_size=len(order)))
    return order, selected


@given(order_and_selection(), st.booleans())
def test_step_moves_reach_the_wanted_order_and_keep_the_rest_in_order(case: tuple[list[str], list[str]],
                                                                      up: bool) -> None:
    order, selected = case
    wanted = step_order(order, selected, up=up)
    assert sorted(wanted) == sorted(order)
    assert apply(order, moves_for(wanted, selected)) == wanted
    assert [j for j in wanted if j not in selected] == [j for j in order if j not in selected]
    assert [j for j in wanted if j in selected] == [j for j in order if j in selected]
    for job_id in selected:  # each moves at most one place
        assert abs(wanted.index(job_id) - order.index(job_id)) <= 1


@given(order_and_selection(), st.booleans())
def test_to_end_puts_the_selection_first_or_last(case: tuple[list[str], list[str]], top: bool) -> None:
    order, selected = case
    wanted = to_end_order(order, selected, top=top)
    block = [j for j in order if j in selected]
    assert (wanted[:len(block)] if top else wanted[len(wanted) - len(block):]) == block
    assert apply(order, moves_for(wanted, selected)) == wanted


@given(order_and_selection(), st.data(), st.booleans())
def test_drop_puts_the_dragged_block_next_to_the_target(case: tuple[list[str], list[str]], data: st.DataObject,
                                                        after: bool) -> None:
    order, dragged = case
    target = data.draw(st.sampled_from(order))
    wanted = drop_order(order, dragged, target, after=after)
    assert apply(order, moves_for(wanted, dragged)) == wanted
    if target in dragged or not dragged:
        assert wanted == order
        return
    block = [j for j in order if j in dragged]
    at = wanted.index(target)
    assert (wanted[at + 1:at + 1 + len(block)] if after else wanted[at - len(block):at]) == block


def test_a_dragged_job_that_left_the_queue_is_not_moved() -> None:
    assert drop_order(["a", "b", "c"], ["gone", "c"], "a", after=False) == ["c", "a", "b"]
    assert moves_for(["c", "a", "b"], ["gone", "c"]) == (QueueMove("c", Move.BEFORE, "a"),)


def test_ctrl_up_on_the_first_job_changes_nothing() -> None:
    assert step_order(["a", "b"], ["a"], up=True) == ["a", "b"]
    assert step_order(["a", "b", "c"], ["b", "c"], up=True) == ["b", "c", "a"]
    assert step_order(["a", "b", "c"], ["a", "b"], up=False) == ["c", "a", "b"]


def test_history_search_form_becomes_a_query() -> None:
    query = history_query(SearchForm(words=" red cat ", model="m.safetensors", seed=" 42 ",
                                     status=JobStatus.FAILED, period=Period.WEEK, favourites=True), now_ms=10**12)
    assert (query.text, query.model, query.seed, query.status, query.favourites) == \
        ("red cat", "m.safetensors", 42, JobStatus.FAILED, True)
    assert query.since_ms == 10**12 - 7 * 86_400_000
    assert history_query(SearchForm(), now_ms=1).since_ms is None


@pytest.mark.parametrize("seed", ["-1", "4.2", "1e3", "x", "٣", "1" * 21])
def test_a_seed_that_is_not_a_whole_number_is_named(seed: str) -> None:
    with pytest.raises(SearchError, match="Seed"):
        history_query(SearchForm(seed=seed), now_ms=0)


def test_an_unfinished_status_is_no_history_filter() -> None:
    with pytest.raises(SearchError, match="Status"):
        history_query(SearchForm(status=JobStatus.QUEUED), now_ms=0)


def test_only_one_dropped_zip_is_an_archive() -> None:
    assert dropped_archive([Path("a/queue.ZIP")]) == Path("a/queue.ZIP")
    assert dropped_archive([Path("a.png")]) is None
    assert dropped_archive([Path("a.zip"), Path("b.zip")]) is None
    assert dropped_archive([]) is None
