"""Which queue moves a reorder gesture makes: pure functions from the run order and the gesture to `QueueMove`s.

A gesture (a drop, Ctrl+Up/Down, Move to top/bottom) is first turned into the run order the user wants, then into
the fewest-thinking sequence of single moves that produces it: each moved job, from the last to the first, goes
just before the job that follows it in the wanted order (or to the bottom). Applied in that order by
`QueueOrder.move`, the jobs that were not moved keep their order, and the moved ones keep theirs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from comfystudio_desktop.queue.ordering import Move

__all__ = ["QueueMove", "drop_order", "moves_for", "step_order", "to_end_order"]


@dataclass(frozen=True, slots=True)
class QueueMove:
    """One move of one queued job (`anchor`: the job to go before or after, for BEFORE / AFTER)."""

    job_id: str
    where: Move
    anchor: str = ""


def moves_for(wanted: Sequence[str], moved: Sequence[str]) -> tuple[QueueMove, ...]:
    """The moves that bring the jobs of `moved` to their places in the run order `wanted`."""
    chosen = set(moved)
    moves: list[QueueMove] = []
    for index in range(len(wanted) - 1, -1, -1):
        job_id = wanted[index]
        if job_id not in chosen:
            continue
        if index + 1 < len(wanted):
            moves.append(QueueMove(job_id, Move.BEFORE, wanted[index + 1]))
        else:
            moves.append(QueueMove(job_id, Move.BOTTOM))
    return tuple(moves)


def _in_run_order(order: Sequence[str], chosen: Sequence[str]) -> list[str]:
    wanted = set(chosen)
    return [job_id for job_id in order if job_id in wanted]


def drop_order(order: Sequence[str], dragged: Sequence[str], target: str, *, after: bool) -> list[str]:
    """The run order after dropping `dragged` just before (or `after`) `target`; the dragged keep their order.

    Dragged jobs that are no longer queued are left out; dropping on one of the dragged jobs changes nothing.
    """
    block = _in_run_order(order, dragged)
    if not block or target not in order or target in block:
        return list(order)
    rest = [job_id for job_id in order if job_id not in set(block)]
    at = rest.index(target) + (1 if after else 0)
    return rest[:at] + block + rest[at:]


def step_order(order: Sequence[str], selected: Sequence[str], *, up: bool) -> list[str]:
    """The run order after moving each selected job one place earlier (`up`) or later; a selected job that is
    already first (last), or stopped by another selected one that is, stays."""
    chosen = set(selected)
    result = list(order) if up else list(reversed(order))
    for i in range(1, len(result)):
        if result[i] in chosen and result[i - 1] not in chosen:
            result[i - 1], result[i] = result[i], result[i - 1]
    return result if up else list(reversed(result))


def to_end_order(order: Sequence[str], selected: Sequence[str], *, top: bool) -> list[str]:
    """The run order after moving the selected jobs, in their order, to the top (or bottom) of the queue."""
    block = _in_run_order(order, selected)
    rest = [job_id for job_id in order if job_id not in set(block)]
    return block + rest if top else rest + block
