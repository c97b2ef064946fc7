"""`StatsSnapshot`: every monitored figure at one moment, as a frozen value that round-trips through JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["DurationStats", "GpuStats", "SnapshotFormatError", "StatsSnapshot"]


class SnapshotFormatError(ValueError):
    """A stored sample that is not a snapshot this version wrote."""


@dataclass(frozen=True, slots=True)
class DurationStats:
    """Average, median and 90th percentile of a set of durations, in seconds."""

    count: int
    mean_s: float
    median_s: float
    p90_s: float


@dataclass(frozen=True, slots=True)
class GpuStats:
    """ComfyUI's first device as `/system_stats` reports it."""

    name: str
    vram_total: int
    vram_free: int

    @property
    def vram_used(self) -> int:
        """Bytes in use."""
        return self.vram_total - self.vram_free


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """The monitored figures at `at` (Unix seconds). None where a source was unavailable."""

    at: float
    queued: int
    running: int
    finished: int  # cumulative, since monitoring began on this Redis
    failed: int
    cancelled: int
    images_total: int  # images of finished jobs, cumulative
    images_last_hour: int
    processing: DurationStats | None  # jobs finished in the last hour (at most the last 10,000)
    waiting: DurationStats | None
    redis_memory: int | None  # bytes (INFO used_memory)
    worker_cpu_percent: float | None  # the sampling process (the window with its worker, or a headless worker)
    worker_rss: int | None
    gpu: GpuStats | None
    outputs_bytes: int
    outputs_images: int

    def to_json(self) -> str:
        """Compact JSON for storage and `stats --json`."""
        return json.dumps(asdict(self), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> StatsSnapshot:
        """Parse a stored sample; raise SnapshotFormatError on anything else."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise SnapshotFormatError(f"not JSON: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: object) -> StatsSnapshot:
        """Build from `to_json`'s dict with exact type checks; raise SnapshotFormatError otherwise."""
        if not isinstance(data, dict) or set(data) != {f.name for f in fields(cls)}:
            raise SnapshotFormatError("not a snapshot object")
        values: dict[str, Any] = {}
        for name in ("queued", "running", "finished", "failed", "cancelled", "images_total", "images_last_hour",
                     "outputs_bytes", "outputs_images"):
            values[name] = _count(data[name], name)
        values["at"] = _number(data["at"], "at")
        values["redis_memory"] = _optional(data["redis_memory"], _count, "redis_memory")
        values["worker_rss"] = _optional(data["worker_rss"], _count, "worker_rss")
        values["worker_cpu_percent"] = _optional(data["worker_cpu_percent"], _number, "worker_cpu_percent")
        values["processing"] = _optional(data["processing"], _durations, "processing")
        values["waiting"] = _optional(data["waiting"], _durations, "waiting")
        values["gpu"] = _optional(data["gpu"], _gpu, "gpu")
        return cls(**values)


def _count(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SnapshotFormatError(f"{name}: not a count")
    return value


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise SnapshotFormatError(f"{name}: not a finite non-negative number")
    return float(value)


def _optional(value: object, parse: Any, name: str) -> Any:
    return None if value is None else parse(value, name)


def _durations(value: object, name: str) -> DurationStats:
    if not isinstance(value, dict) or set(value) != {"count", "mean_s", "median_s", "p90_s"}:
        raise SnapshotFormatError(f"{name}: not duration figures")
    return DurationStats(_count(value["count"], name), _number(value["mean_s"], name),
                         _number(value["median_s"], name), _number(value["p90_s"], name))


def _gpu(value: object, name: str) -> GpuStats:
    if not isinstance(value, dict) or set(value) != {"name", "vram_total", "vram_free"} \
            or not isinstance(value["name"], str):
        raise SnapshotFormatError(f"{name}: not GPU figures")
    return GpuStats(value["name"], _count(value["vram_total"], name), _count(value["vram_free"], name))
