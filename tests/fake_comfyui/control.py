"""Test-only switches (fault modes, timings) and the counters behind `GET /_fake/stats`."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from typing import Any

FAULT_MODES = ("none", "hang", "slow", "refuse", "error_next", "crash_next", "oom_next")


@dataclass
class Faults:
    """The current fault mode and timings; `hang` closes a gate that HTTP, WS sends and the executor wait on."""

    mode: str = "none"
    step_time: float = 0.05
    load_time: float = 0.0
    slow_seconds: float = 2.0
    # Seconds per sampler step for models whose loader name contains the key (others use `step_time`).
    model_step_times: dict[str, float] = field(default_factory=dict)
    _open: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.set_mode(self.mode)

    def set_mode(self, mode: str) -> None:
        """Switch fault mode; ValueError for an unknown one."""
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault {mode!r}; expected one of {', '.join(FAULT_MODES)}")
        self.mode = mode
        if mode == "hang":
            self._open.clear()
        else:
            self._open.set()

    async def gate(self) -> None:
        """Return at once unless the server is 'hung'; then wait until the fault is lifted."""
        if not self._open.is_set():
            await self._open.wait()

    def step_time_for(self, model_label: str) -> float:
        """The time per step for the model loaded as `model_label` (`checkpoints/name`)."""
        for name, seconds in self.model_step_times.items():
            if name in model_label:
                return seconds
        return self.step_time

    def take(self, mode: str) -> bool:
        """Consume a one-shot fault (`error_next`, `crash_next`) if it is armed."""
        if self.mode != mode:
            return False
        self.set_mode("none")
        return True

    def as_json(self) -> dict[str, Any]:
        """Current settings."""
        return {"fault": self.mode, "step_time": self.step_time, "load_time": self.load_time,
                "slow_seconds": self.slow_seconds, "model_step_times": dict(self.model_step_times)}


@dataclass
class Stats:
    """What happened, for tests to assert on."""

    executions: dict[str, int] = field(default_factory=dict)  # prompt_id -> times actually executed
    cached_runs: list[str] = field(default_factory=list)  # prompt_ids served entirely from the cache
    results: dict[str, str] = field(default_factory=dict)  # prompt_id -> success | error | interrupted
    interrupts: list[dict[str, Any]] = field(default_factory=list)  # {prompt_id, running, applied}
    submitted: list[str] = field(default_factory=list)  # accepted prompt_ids, in order
    rejected: int = 0  # POST /prompt answered 400
    uploads: list[str] = field(default_factory=list)  # names returned by /upload/image
    deleted: list[str] = field(default_factory=list)  # ids asked for in POST /queue {"delete"}
    removed: list[str] = field(default_factory=list)  # pending ids actually dropped (delete or clear)
    frees: list[dict[str, Any]] = field(default_factory=list)  # POST /free bodies

    def as_json(self) -> dict[str, Any]:
        """A JSON-able copy."""
        return asdict(self)
