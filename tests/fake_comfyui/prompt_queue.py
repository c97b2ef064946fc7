"""ComfyUI's PromptQueue: pending heap, the running item, history, and the `status` broadcasts they cause."""

from __future__ import annotations

import asyncio
import copy
import heapq
import itertools
from dataclasses import dataclass, field
from typing import Any

from tests.fake_comfyui.hub import Hub

MAXIMUM_HISTORY_SIZE = 10000


@dataclass(order=True)
class QueueItem:
    """`[number, prompt_id, prompt, extra_data, outputs_to_execute]`, ordered by number then arrival."""

    number: float
    seq: int
    prompt_id: str = field(compare=False)
    prompt: dict[str, Any] = field(compare=False)
    extra_data: dict[str, Any] = field(compare=False)
    outputs: list[str] = field(compare=False)

    def as_list(self) -> list[Any]:
        """The wire form used by `/queue` and history."""
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


class PromptQueue:
    """Pending and running prompts plus history; every change broadcasts `status` like ComfyUI."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._pending: list[QueueItem] = []
        self._running: dict[str, QueueItem] = {}
        self._history: dict[str, dict[str, Any]] = {}
        self._flags: dict[str, Any] = {}
        self._seq = itertools.count()
        self._wake = asyncio.Event()

    # queue -----------------------------------------------------------------------------------------------------
    def queue_remaining(self) -> int:
        """Running plus pending, as `exec_info.queue_remaining`."""
        return len(self._pending) + len(self._running)

    def queue_info(self) -> dict[str, Any]:
        """`{"exec_info": {"queue_remaining": N}}`."""
        return {"exec_info": {"queue_remaining": self.queue_remaining()}}

    def broadcast_status(self) -> None:
        """ComfyUI's queue_updated(): a `status` to every socket."""
        self._hub.send_json("status", {"status": self.queue_info()}, None)

    def put(self, number: float, prompt_id: str, prompt: dict[str, Any], extra_data: dict[str, Any],
            outputs: list[str]) -> None:
        """Queue a validated prompt."""
        heapq.heappush(self._pending, QueueItem(number, next(self._seq), prompt_id, prompt, extra_data, outputs))
        self.broadcast_status()
        self._wake.set()

    async def get(self) -> QueueItem | None:
        """Wait for the next prompt; it becomes the running item. None while /free flags wait to be applied."""
        while not self._pending and not self._flags:
            self._wake.clear()
            await self._wake.wait()
        if self._flags:
            return None
        item = heapq.heappop(self._pending)
        self._running[item.prompt_id] = copy.deepcopy(item)
        self.broadcast_status()
        return item

    def running_ids(self) -> list[str]:
        """Prompt ids being executed."""
        return list(self._running)

    def snapshot(self) -> dict[str, list[list[Any]]]:
        """`GET /queue`."""
        return {"queue_running": [item.as_list() for item in self._running.values()],
                "queue_pending": [item.as_list() for item in sorted(self._pending)]}

    def delete(self, prompt_id: str) -> bool:
        """Drop a pending prompt; the last one goes through wipe() (so two status messages, as recorded)."""
        for index, item in enumerate(self._pending):
            if item.prompt_id == prompt_id:
                if len(self._pending) == 1:
                    self.wipe()
                else:
                    self._pending.pop(index)
                    heapq.heapify(self._pending)
                self.broadcast_status()
                return True
        return False

    def wipe(self) -> list[str]:
        """Drop every pending prompt (the running one continues); returns their ids."""
        dropped = [item.prompt_id for item in self._pending]
        self._pending = []
        self.broadcast_status()
        return dropped

    def task_done(self, item: QueueItem, result: dict[str, Any], status: dict[str, Any]) -> None:
        """Move the running item to history (replacing an entry with the same id in place), then `status`."""
        running = self._running.pop(item.prompt_id, item)
        if len(self._history) > MAXIMUM_HISTORY_SIZE:
            self._history.pop(next(iter(self._history)))
        self._history[item.prompt_id] = {"prompt": running.as_list(), "outputs": {}, "status": status}
        self._history[item.prompt_id].update(result)
        self.broadcast_status()

    # flags (POST /free) ----------------------------------------------------------------------------------------
    def set_flag(self, name: str, value: Any) -> None:
        """Ask the worker to free memory / unload models when it is next idle."""
        self._flags[name] = value
        self._wake.set()

    def take_flags(self) -> dict[str, Any]:
        """Flags set since the last call."""
        flags, self._flags = self._flags, {}
        return flags

    # history ---------------------------------------------------------------------------------------------------
    def history(self, max_items: int | None = None, offset: int = -1) -> dict[str, Any]:
        """`GET /history`: all, the newest `max_items`, or `max_items` from index `offset` (oldest first)."""
        if offset < 0 and max_items is not None:
            offset = len(self._history) - max_items
        out: dict[str, Any] = {}
        for index, (key, value) in enumerate(self._history.items()):
            if index >= offset:
                out[key] = value
                if max_items is not None and len(out) >= max_items:
                    break
        return copy.deepcopy(out)

    def history_item(self, prompt_id: str) -> dict[str, Any]:
        """`GET /history/{id}`: `{}` until the prompt has finished."""
        item = self._history.get(prompt_id)
        return {prompt_id: copy.deepcopy(item)} if item is not None else {}

    def delete_history(self, prompt_id: str) -> None:
        """Forget one history entry."""
        self._history.pop(prompt_id, None)

    def clear_history(self) -> None:
        """Forget all history."""
        self._history.clear()
