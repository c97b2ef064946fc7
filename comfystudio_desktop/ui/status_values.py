"""The typed values the controller's status signals carry, and the pure functions that make them.

No Qt here: the values are frozen dataclasses and enums, and their words for the status bar are decided by
plain functions with table tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from comfystudio_desktop.queue.redis_endpoint import RedisEndpoint
from comfystudio_desktop.supervise.service_state import ServiceState, State, describe_duration

__all__ = ["LinkStatus", "Problem", "WorkerMode", "WorkerStatus", "comfy_status", "describe_endpoint",
           "redis_service_status", "redis_status", "worker_status"]


class WorkerMode(StrEnum):
    """Where the window's worker stands, as the status bar and the pause button see it."""

    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    CRASH_LOOP = "crash loop"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """The worker's mode, with the countdown of a pending restart."""

    mode: WorkerMode
    restart_in_s: float | None = None

    @property
    def text(self) -> str:
        """The status bar's word for the worker."""
        if self.mode is WorkerMode.RESTARTING and self.restart_in_s is not None:
            return f"restarting in {describe_duration(self.restart_in_s)}"
        if self.mode is WorkerMode.CRASH_LOOP:
            return "crash loop (see Services)"
        return self.mode.value


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """Whether a service the window needs (the queue's Redis, ComfyUI) answers, and what to say about it."""

    up: bool
    text: str


@dataclass(frozen=True, slots=True)
class Problem:
    """Something the user must be told (a failed submit, a broken template, Redis gone)."""

    message: str


def worker_status(state: ServiceState, paused: bool) -> WorkerStatus:
    """The worker's status from its supervisor's snapshot and the pause choice."""
    if state.state is State.RUNNING:
        return WorkerStatus(WorkerMode.PAUSED if paused else WorkerMode.RUNNING)
    if state.state is State.RESTARTING:
        return WorkerStatus(WorkerMode.RESTARTING, state.restart_in_s)
    if state.state is State.FATAL:
        return WorkerStatus(WorkerMode.CRASH_LOOP)
    if state.state is State.STARTING:
        return WorkerStatus(WorkerMode.STARTING)
    return WorkerStatus(WorkerMode.STOPPED)


def describe_endpoint(endpoint: RedisEndpoint) -> str:
    """A person's description of where the queue lives (never the password): "embedded Redis 7.2 on host:port"."""
    where = endpoint.url.split("@")[-1] if endpoint.url else f"{endpoint.host}:{endpoint.port}"
    mode = "embedded" if endpoint.embedded else "external"
    version = f" {endpoint.version}" if endpoint.version else ""
    return f"{mode} Redis{version} at {where}"


def redis_status(endpoint: RedisEndpoint | None, *, connected: bool = True) -> LinkStatus:
    """The status bar's Redis entry: which server when connected, "reconnecting" when not."""
    if not connected:
        return LinkStatus(False, "Redis reconnecting…")
    if endpoint is None:
        return LinkStatus(True, "Redis")
    mode = "embedded" if endpoint.embedded else "external"
    return LinkStatus(True, f"Redis {mode} {endpoint.version}".strip())


def redis_service_status(state: ServiceState) -> LinkStatus:
    """Whether the queue's redis-server can be used yet (running or external, and healthy), and if not, why."""
    if state.state in (State.RUNNING, State.EXTERNAL) and state.healthy:
        return LinkStatus(True, "Redis")
    return LinkStatus(False, f"Redis: {state.message or f'Redis is {state.state.value}'}")


def comfy_status(stats: Mapping[str, Any] | None, base_url: str) -> LinkStatus:
    """The status bar's ComfyUI entry from its `/system_stats` reply (None: it did not answer)."""
    if stats is None:
        return LinkStatus(False, f"ComfyUI unreachable at {base_url}")
    devices = stats.get("devices") or []
    version = (stats.get("system") or {}).get("comfyui_version", "")
    if not devices:
        return LinkStatus(True, f"ComfyUI {version}".strip())
    device = devices[0]
    name = str(device.get("name", "device")).split(":")[-1].strip()
    free, total = device.get("vram_free"), device.get("vram_total")
    vram = f", VRAM {free / 2**30:.1f}/{total / 2**30:.1f} GB free" if free and total else ""
    return LinkStatus(True, f"ComfyUI {version} on {name}{vram}".replace("  ", " "))
