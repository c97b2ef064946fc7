"""Reading the outside sources of figures: Redis INFO, ComfyUI's `/system_stats`, the outputs folder, psutil.

Each parser takes data of any shape and returns a typed value or None ("unavailable"); none of them raises.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import psutil

from comfystudio_desktop.monitor.snapshot import GpuStats

__all__ = ["IMAGE_SUFFIXES", "ProcessFigures", "ProcessProbe", "StorageFigures", "gpu_from_system_stats",
           "redis_memory_from_info", "storage_figures"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def redis_memory_from_info(info: object) -> int | None:
    """`used_memory` from the reply of `INFO memory` (redis-py's dict), or None if it is not there."""
    if not isinstance(info, dict):
        return None
    value = info.get("used_memory")
    return value if _is_count(value) else None


def gpu_from_system_stats(data: object) -> GpuStats | None:
    """The first device of a `/system_stats` reply, or None if the reply does not have one in that shape."""
    if not isinstance(data, dict):
        return None
    devices = data.get("devices")
    if not isinstance(devices, list) or not devices or not isinstance(devices[0], dict):
        return None
    device = devices[0]
    name, total, free = device.get("name"), device.get("vram_total"), device.get("vram_free")
    if not isinstance(name, str) or not _is_count(total) or not _is_count(free) or free > total:  # type: ignore[operator]
        return None
    return GpuStats(name[:200], total, free)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class StorageFigures:
    """Size of the outputs folder and how many images it holds."""

    total_bytes: int
    images: int


def storage_figures(folder: Path) -> StorageFigures:
    """Sum the regular files directly in `folder` (results are stored flat); a missing folder is empty."""
    total = images = 0
    try:
        entries = os.scandir(folder)
    except OSError:
        return StorageFigures(0, 0)
    with entries:
        for entry in entries:
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                total += entry.stat(follow_symlinks=False).st_size
            except OSError:  # deleted meanwhile (retention sweep)
                continue
            if os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                images += 1
    return StorageFigures(total, images)


@dataclass(frozen=True, slots=True)
class ProcessFigures:
    """CPU (percent of one core since the previous reading) and resident memory of a process."""

    cpu_percent: float
    rss: int


class ProcessProbe:
    """Reads this process's CPU and memory; the first reading's CPU covers the time since the probe was made."""

    def __init__(self, pid: int | None = None) -> None:
        self._process = psutil.Process(pid)
        self._process.cpu_percent(None)

    def read(self) -> ProcessFigures | None:
        """The current figures, or None if the process cannot be read."""
        try:
            with self._process.oneshot():
                cpu = self._process.cpu_percent(None)
                rss = self._process.memory_info().rss
        except psutil.Error:
            return None
        return ProcessFigures(cpu if math.isfinite(cpu) else 0.0, rss)
