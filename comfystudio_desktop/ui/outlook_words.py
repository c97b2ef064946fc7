"""What the window says about the queue's future: ETA per row, the whole queue, a pause. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from comfystudio_desktop.queue.forecast import JobEta, QueueForecast
from comfystudio_desktop.queue.queue_pause import PauseReason, QueueGate

__all__ = ["OutlookWords", "duration_words", "outlook_words", "row_eta_words"]


@dataclass(frozen=True, slots=True)
class OutlookWords:
    """The status bar's and tray's line, each row's ETA, and whether a one-click Resume applies."""

    summary: str
    rows: dict[str, str]
    resumable: bool  # paused by the user or by running out of memory (the active hours end by themselves)
    out_of_memory: bool


def duration_words(seconds: float) -> str:
    """"45 s", "3 min", "1 h 05 min"."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def row_eta_words(eta: JobEta, *, running: bool) -> str:
    """"starts ≈ 14:32" for a queued job, "≈ 2 min left" for a running one (local time)."""
    if running:
        return f"≈ {duration_words(eta.left_s)} left"
    return f"starts ≈ {eta.start.astimezone():%H:%M}"


def outlook_words(gate: QueueGate, forecast: QueueForecast | None, now: datetime) -> OutlookWords:
    """The words for a gate and a forecast (None: not computed yet)."""
    rows: dict[str, str] = {}
    if forecast is not None:
        rows.update({e.job_id: row_eta_words(e, running=True) for e in forecast.running})
        rows.update({e.job_id: row_eta_words(e, running=False) for e in forecast.queued})
    state = "Queue " + gate.describe()
    if forecast is None or forecast.finish is None:
        summary = state if not gate.open else "Queue empty"
    elif not gate.open and gate.until is None:
        summary = state  # paused until someone resumes: no end time to promise
    else:
        left = (forecast.finish - now).total_seconds()
        summary = f"{state} · done ≈ {forecast.finish.astimezone():%H:%M} ({duration_words(left)})"
    resumable = not gate.open and gate.reason in (PauseReason.USER, PauseReason.OUT_OF_MEMORY)
    return OutlookWords(summary, rows, resumable, gate.reason is PauseReason.OUT_OF_MEMORY and not gate.open)
