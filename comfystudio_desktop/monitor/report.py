"""The figures of a `StatsSnapshot` as text: the `stats` command's lines, the dock's labels, the tray summary."""

from __future__ import annotations

from comfystudio_desktop.monitor.snapshot import DurationStats, StatsSnapshot

__all__ = ["UNAVAILABLE", "figure_lines", "format_bytes", "format_durations", "tray_summary"]

UNAVAILABLE = "unavailable"


def format_bytes(value: int | None) -> str:
    """`1.2 GB`, `340 MB`, `12 kB`, `512 B`, or "unavailable"."""
    if value is None:
        return UNAVAILABLE
    size = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" or size >= 100 else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def format_durations(stats: DurationStats | None) -> str:
    """`mean 12.3 s, median 11.0 s, p90 20.1 s (40 jobs)`, or a note that no job finished in the last hour."""
    if stats is None:
        return "no job finished in the last hour"
    return (f"mean {stats.mean_s:.1f} s, median {stats.median_s:.1f} s, p90 {stats.p90_s:.1f} s "
            f"({stats.count} job{'s' if stats.count != 1 else ''})")


def _gpu(snapshot: StatsSnapshot) -> str:
    gpu = snapshot.gpu
    if gpu is None:
        return UNAVAILABLE
    return f"{gpu.name}: {format_bytes(gpu.vram_used)} of {format_bytes(gpu.vram_total)} VRAM used"


def _worker(snapshot: StatsSnapshot) -> str:
    if snapshot.worker_cpu_percent is None:
        return "no worker reported in the last 30 s"
    return f"CPU {snapshot.worker_cpu_percent:.1f} %, memory {format_bytes(snapshot.worker_rss)}"


def figure_lines(snapshot: StatsSnapshot) -> list[tuple[str, str]]:
    """(label, value) for every figure, in the order the CLI and the dock show them."""
    s = snapshot
    return [
        ("Queue", f"{s.queued} queued, {s.running} running"),
        ("Jobs", f"{s.finished} finished, {s.failed} failed, {s.cancelled} cancelled"),
        ("Images", f"{s.images_last_hour} in the last hour, {s.images_total} in total"),
        ("Processing", format_durations(s.processing)),
        ("Waiting", format_durations(s.waiting)),
        ("GPU", _gpu(s)),
        ("Redis memory", format_bytes(s.redis_memory)),
        ("Worker", _worker(s)),
        ("Outputs", f"{s.outputs_images} images, {format_bytes(s.outputs_bytes)}"),
    ]


def tray_summary(snapshot: StatsSnapshot) -> str:
    """One line for the tray tooltip."""
    s = snapshot
    median = f", median {s.processing.median_s:.1f} s" if s.processing is not None else ""
    return f"{s.queued} queued, {s.running} running, {s.images_last_hour} images/h{median}"
