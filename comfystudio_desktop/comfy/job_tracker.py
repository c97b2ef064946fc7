"""End-of-prompt detection, progress and outputs for one prompt id, fed with events and then history (no I/O).

A prompt has ended on `execution_success` / `execution_interrupted` / `execution_error`, or on
`executing` with `node: null` for its id. Its outputs come from `executed` messages and, after the end,
from `GET /history/{id}` (written only once the prompt ended; a fully cached re-run names earlier files).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from comfystudio_desktop.comfy.comfy_events import (
    ComfyEvent,
    EventKind,
    OutputImage,
    images_from_output,
    parse_message,
)
from comfystudio_desktop.comfy.progress_mapping import PROGRESS_END, PROGRESS_START, map_progress

__all__ = ["JobOutcome", "JobTracker", "history_images", "history_outcome"]


class JobOutcome(StrEnum):
    """How a prompt ended."""

    SUCCESS = "success"
    INTERRUPTED = "interrupted"
    ERROR = "error"


class JobTracker:
    """Follows one prompt id through the event stream and its history entry.

    Args:
        prompt_id: the prompt (our job id).
        total_nodes: nodes in the submitted graph, so progress knows the work not yet reported.
    """

    def __init__(self, prompt_id: str, *, total_nodes: int = 0) -> None:
        self.prompt_id = prompt_id
        self._total_nodes = total_nodes
        self._started = False
        self._ended = False  # executing(null) or a terminal message seen
        self._outcome: JobOutcome | None = None
        self._error = ""
        self._images: list[OutputImage] = []
        self._cached: set[str] = set()
        self._ran: set[str] = set()  # nodes we saw execute or report progress
        self._nodes: dict[str, tuple[float, float]] = {}
        self._percent = PROGRESS_START
        self._history_seen = False

    # ---- state --------------------------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """ComfyUI began executing this prompt."""
        return self._started

    @property
    def done(self) -> bool:
        """The prompt has ended (its outcome may still wait for the history entry)."""
        return self._ended or self._outcome is not None

    @property
    def outcome(self) -> JobOutcome | None:
        """Success, interrupted or error; None while running or when only `executing(null)` was seen."""
        return self._outcome

    @property
    def error(self) -> str:
        """One-line reason for ERROR (node, class and exception); `interrupted` for INTERRUPTED."""
        return self._error

    @property
    def images(self) -> tuple[OutputImage, ...]:
        """Every image the prompt produced (output and temp), first-seen order, without duplicates."""
        return tuple(self._images)

    @property
    def output_images(self) -> tuple[OutputImage, ...]:
        """The images saved to ComfyUI's output folder (SaveImage), the job's results."""
        return tuple(image for image in self._images if image.type == "output")

    @property
    def cached_nodes(self) -> frozenset[str]:
        """Nodes ComfyUI reused from its cache."""
        return frozenset(self._cached)

    @property
    def fully_cached(self) -> bool:
        """A re-run of an identical graph: nothing executed, results are the earlier files."""
        return self.done and bool(self._cached) and not self._ran

    @property
    def percent(self) -> int:
        """Job progress in 30..95, never decreasing."""
        return self._percent

    @property
    def history_seen(self) -> bool:
        """`apply_history` got this prompt's entry."""
        return self._history_seen

    # ---- inputs -------------------------------------------------------------------------------------------

    def apply(self, event: ComfyEvent) -> bool:
        """Take one event; return True if it was about this prompt (others are ignored)."""
        if event.prompt_id != self.prompt_id:
            return False
        kind = event.kind
        if kind in (EventKind.EXECUTION_START, EventKind.CACHED):
            self._started = True
            self._cached.update(event.cached_nodes)
        elif kind is EventKind.EXECUTING:
            self._on_executing(event.node)
        elif kind is EventKind.PROGRESS and event.node is not None:
            self._ran.add(event.node)
            self._nodes[event.node] = (event.value, event.max)
        elif kind is EventKind.PROGRESS_STATE:
            for entry in event.nodes:
                if entry.node not in self._cached:
                    self._nodes[entry.node] = (entry.value, entry.max)
        elif kind is EventKind.EXECUTED:
            self._add_images(event.images)
        elif kind.is_terminal:
            self._finish(_OUTCOME_OF[kind], event.error)
        self._update_percent()
        return True

    def apply_history(self, entry: Mapping[str, Any] | None) -> bool:
        """Take this prompt's `GET /history/{id}` entry (None: not finished yet); True if it was an entry."""
        if not entry:
            return False
        self._history_seen = True
        self._add_images(history_images(entry))
        outcome, error = history_outcome(entry)
        if self._outcome is None:
            self._finish(outcome, error)
        self._ended = True
        return True

    def summary(self) -> str:
        """One line for the log."""
        state = self._outcome.value if self._outcome else ("ended" if self._ended else "running")
        extra = f", error={self._error!r}" if self._error and self._outcome is JobOutcome.ERROR else ""
        cached = ", fully cached" if self.fully_cached else ""
        return (f"prompt {self.prompt_id}: {state}, {self._percent}%, {len(self.output_images)} output image(s)"
                f"{cached}{extra}")

    # ---- internals ----------------------------------------------------------------------------------------

    def _on_executing(self, node: str | None) -> None:
        self._started = True
        if node is None:
            self._ended = True
            return
        self._ran.add(node)
        self._nodes.setdefault(node, (0.0, 1.0))

    def _finish(self, outcome: JobOutcome, error: str) -> None:
        self._outcome = outcome
        self._ended = True
        if outcome is JobOutcome.ERROR:
            self._error = error or "ComfyUI reported an error"
        elif outcome is JobOutcome.INTERRUPTED:
            self._error = "interrupted"

    def _add_images(self, images: tuple[OutputImage, ...]) -> None:
        for image in images:
            if image not in self._images:
                self._images.append(image)

    def _update_percent(self) -> None:
        if self._outcome is JobOutcome.SUCCESS:
            self._percent = PROGRESS_END
            return
        expected = max(0, self._total_nodes - len(self._cached))
        self._percent = map_progress(self._nodes, total_nodes=expected, previous=self._percent)


_OUTCOME_OF = {EventKind.SUCCESS: JobOutcome.SUCCESS, EventKind.INTERRUPTED: JobOutcome.INTERRUPTED,
               EventKind.ERROR: JobOutcome.ERROR}


def history_images(entry: Mapping[str, Any]) -> tuple[OutputImage, ...]:
    """Every image named in a history entry's `outputs`, in node order."""
    outputs = entry.get("outputs")
    if not isinstance(outputs, dict):
        return ()
    found: list[OutputImage] = []
    for output in outputs.values():
        found.extend(image for image in images_from_output(output) if image not in found)
    return tuple(found)


def history_outcome(entry: Mapping[str, Any]) -> tuple[JobOutcome, str]:
    """How the prompt of a history entry ended, and the error text for ERROR.

    `status.messages` repeats the terminal WebSocket message, which tells an interrupt from an error.
    """
    status = entry.get("status")
    if not isinstance(status, dict):
        # Very old servers wrote no status: outputs are the only sign of success.
        if history_images(entry):
            return JobOutcome.SUCCESS, ""
        return JobOutcome.ERROR, "ComfyUI finished without a status or outputs"
    messages = status.get("messages")
    for item in messages if isinstance(messages, list) else []:
        if isinstance(item, list) and len(item) == 2:
            event = parse_message({"type": item[0], "data": item[1]})
            if event.kind.is_terminal:
                return _OUTCOME_OF[event.kind], event.error
    if status.get("status_str") == "success" or status.get("completed") is True:
        return JobOutcome.SUCCESS, ""
    return JobOutcome.ERROR, f"ComfyUI reported status {status.get('status_str')!r}"
