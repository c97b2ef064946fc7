"""The window's decisions about what to show, as pure functions: tray, service faults, notifications, viewer.

`MainWindow` keeps the widgets and calls these; they hold no Qt and are tested with tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from html import escape
from pathlib import Path

from comfystudio_desktop.jobs import JobEvent, JobRecord, JobStatus
from comfystudio_desktop.supervise.service_state import ServiceState, State

__all__ = ["ActiveJobs", "FaultNotice", "Notification", "StatusBoard", "TrayState", "TraySummary", "ViewerContent",
           "about_html", "counts_text", "job_notification", "service_fault", "short_prompt", "tray_summary",
           "viewer_content"]

_SHORT_PROMPT = 60
_FAULT_STATES = (State.FATAL, State.HUNG, State.RESTARTING)


class TrayState(StrEnum):
    """The icon shown."""

    IDLE = "idle"
    WORKING = "working"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class TraySummary:
    """What the tray shows: its icon, the counts and the problem (empty when all is well)."""

    state: TrayState
    queued: int
    running: int
    problem: str = ""


@dataclass(frozen=True, slots=True)
class FaultNotice:
    """How the window reacts to a service's fault.

    Attributes:
        text: the fault in a line ("comfyui: fatal — crash loop …"); kept while the fault lasts.
        show_message: put `text` on the status bar (not for every restart countdown tick).
        alarm: newly fatal: open the Services dock and notify.
    """

    text: str
    show_message: bool
    alarm: bool


@dataclass(frozen=True, slots=True)
class Notification:
    """A desktop notification for a job that ended."""

    title: str
    message: str
    job_id: str
    error: bool = False


def counts_text(queued: int, running: int) -> str:
    """The status bar's counts."""
    return f"{queued} queued · {running} running"


def tray_summary(queued: int, running: int, *, redis_up: bool, comfy_up: bool,
                 faults: Mapping[str, str]) -> TraySummary:
    """The tray's state: an error names the worst problem (service faults, then ComfyUI, then Redis)."""
    problem = "" if redis_up else "Redis is reconnecting"
    if not comfy_up:
        problem = "ComfyUI is unreachable"
    if faults:
        problem = "; ".join(sorted(faults.values()))
    state = TrayState.ERROR if problem else TrayState.WORKING if running else TrayState.IDLE
    return TraySummary(state, queued, running, problem)


def service_fault(state: ServiceState, previous: str) -> FaultNotice | None:
    """The notice for a service's new state, given the fault text shown before ("" if none); None: no fault."""
    if state.state not in _FAULT_STATES:
        return None
    text = f"{state.name}: {state.state.value}" + (f" — {state.message}" if state.message else "")
    show = state.state is not State.RESTARTING or not previous
    alarm = state.state is State.FATAL and not previous.startswith(f"{state.name}: fatal")
    return FaultNotice(text, show, alarm)


def short_prompt(prompt: str) -> str:
    """A prompt cut to fit a notification."""
    return prompt if len(prompt) <= _SHORT_PROMPT else prompt[:_SHORT_PROMPT - 3] + "…"


def job_notification(event: JobEvent, prompt: str, *, enabled: bool) -> Notification | None:
    """The notification for a job's end (finished or failed; a cancel is the user's own doing)."""
    if not enabled:
        return None
    short = short_prompt(prompt)
    if event.status is JobStatus.FINISHED:
        return Notification("Image ready", short, event.job_id)
    if event.status is JobStatus.FAILED:
        return Notification("Job failed", f"{short}\n{event.error}", event.job_id, error=True)
    return None


class ActiveJobs:
    """The jobs seen queued or running in this session: only their ends are announced (not old history)."""

    def __init__(self) -> None:
        self._ids: set[str] = set()

    def saw(self, job_id: str, status: JobStatus) -> bool:
        """Note a job's status; True when this is the end of a job seen active (announce it once)."""
        if not status.is_terminal:
            self._ids.add(job_id)
            return False
        if job_id in self._ids:
            self._ids.discard(job_id)
            return True
        return False


@dataclass(frozen=True, slots=True)
class ViewerContent:
    """What the viewer shows for a selected job: its output file with a caption, or a message instead.

    `follow` is True while the job may still produce an image (the viewer then keeps the job as the one shown).
    """

    path: Path | None
    text: str
    follow: bool = False


def viewer_content(record: JobRecord, output: Path | None) -> ViewerContent:
    """The viewer's content for `record`, whose output file is `output` (None if there is none yet)."""
    if output is not None:
        seed = f" · seed {record.seed_used}" if record.seed_used is not None else ""
        return ViewerContent(output, f"{output.name}{seed}")
    if record.status is JobStatus.FAILED:
        return ViewerContent(None, f"Failed: {record.error}")
    return ViewerContent(None, f"{record.status.value.capitalize()} · {record.progress}%", follow=True)


def about_html(*, version: str, data_folder: str, queue: str, comfy_url: str, qt_version: str,
               python_version: str) -> str:
    """What the About box says (rich text; every value escaped)."""
    return (f"<b>ComfyStudio Desktop {escape(version)}</b><br>A desktop front end for a local ComfyUI.<br><br>"
            f"Data folder: {escape(data_folder)}<br>Queue: {escape(queue)}<br>ComfyUI: {escape(comfy_url)}<br>"
            f"Qt {escape(qt_version)}, Python {escape(python_version)}")


class StatusBoard:
    """What the window knows of the app's health (counts, Redis, ComfyUI, service faults), summed up for the tray."""

    def __init__(self) -> None:
        self.queued = self.running = 0
        self.redis_up = self.comfy_up = True
        self.faults: dict[str, str] = {}

    def service_changed(self, state: ServiceState) -> FaultNotice | None:
        """Note a service's new state; the notice to act on if it is a fault (None once it is healthy again)."""
        notice = service_fault(state, self.faults.get(state.name, ""))
        if notice is None:
            self.faults.pop(state.name, None)
        else:
            self.faults[state.name] = notice.text
        return notice

    def tray(self) -> TraySummary:
        """The tray's state now."""
        return tray_summary(self.queued, self.running, redis_up=self.redis_up, comfy_up=self.comfy_up,
                            faults=self.faults)
