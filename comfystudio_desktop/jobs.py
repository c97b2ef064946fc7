"""Job data: what a user asks for (`Job`), where it stands (`JobRecord`) and how that changes (`JobEvent`).

These types are the contract between the queue, the worker, the CLI and the window. They are plain,
immutable and Qt-free; JSON in and out keeps the seed system's field names.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "ASPECT_RATIOS",
    "IMAGE_SLOTS",
    "TERMINAL_STATUSES",
    "Job",
    "JobEvent",
    "JobRecord",
    "JobStatus",
    "JobValidationError",
    "new_job_id",
    "now_iso",
]

#: Aspect ratios offered to the user; sizes per model family live with the workflow templates.
ASPECT_RATIOS: tuple[str, ...] = ("1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3", "21:9")
#: Image slots a workflow may ask for: one `input`, or a `source` and a `target`.
IMAGE_SLOTS: tuple[str, ...] = ("input", "source", "target")

SEED_MAX = 2**64 - 1  # ComfyUI's KSampler accepts 0 .. 0xffffffffffffffff
MAX_PROMPT_CHARS = 20_000
MAX_BATCH = 16
MIN_SIDE, MAX_SIDE = 64, 8192

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
_MODEL_RE = re.compile(r"^[^\x00-\x1f<>:\"|?*]{1,255}$")
_RATIO_RE = re.compile(r"^(\d{1,3}):(\d{1,3})$")
# Job ids become file names ({job_id}.png) and ComfyUI prompt ids: letters, digits, '-' and '_' only.
_JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class JobStatus(StrEnum):
    """The seed system's job states."""

    QUEUED = "queued"
    PROCESSING = "processing"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True for finished, failed and cancelled."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELLED})


class JobValidationError(ValueError):
    """A job parameter is invalid; `field` names it so a form can show the message next to it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


def new_job_id() -> str:
    """A fresh job id (UUID4, the seed's format)."""
    return str(uuid.uuid4())


def now_iso() -> str:
    """The current time as ISO 8601 with timezone, as the seed's `updated_at`."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class Job:
    """What the user asked for. Seed fields first, then the desktop's additions.

    `seed == -1` means "random": the worker picks one and records the seed it used.
    `width`/`height` of None mean "from the aspect ratio and the model family".
    `steps`/`cfg`/`denoise` of None mean "the workflow template's default".
    """

    prompt: str
    job_id: str = field(default_factory=new_job_id)
    seed: int = -1
    workflow: str = "text_to_image"
    model: str = ""
    aspect_ratio: str = "1:1"
    batch_size: int = 1
    images: dict[str, str] = field(default_factory=dict)
    created_at: str = field(default_factory=now_iso)
    negative_prompt: str = ""
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    cfg: float | None = None
    denoise: float | None = None
    priority: int = 0
    attempts: int = 0

    def validate(self) -> Job:
        """Check every field; raise `JobValidationError` naming the first bad one, else return self."""
        _check(isinstance(self.job_id, str) and bool(_JOB_ID_RE.match(self.job_id)), "job_id",
               "must be 1-64 letters, digits, '-' or '_'")
        _check(isinstance(self.prompt, str) and self.prompt.strip() != "", "prompt", "must not be empty")
        _check(len(self.prompt) <= MAX_PROMPT_CHARS, "prompt", f"is longer than {MAX_PROMPT_CHARS} characters")
        _check(len(self.negative_prompt) <= MAX_PROMPT_CHARS, "negative_prompt", "is too long")
        _check(_is_int(self.seed) and -1 <= self.seed <= SEED_MAX, "seed", f"must be -1 (random) or 0..{SEED_MAX}")
        _check(bool(_NAME_RE.match(self.workflow)), "workflow", f"invalid workflow name {self.workflow!r}")
        _check(self.model == "" or _valid_model_name(self.model), "model", f"invalid model name {self.model!r}")
        _check(self.aspect_ratio in ASPECT_RATIOS or _valid_ratio(self.aspect_ratio), "aspect_ratio",
               f"must be W:H such as {', '.join(ASPECT_RATIOS)}")
        _check(_is_int(self.batch_size) and 1 <= self.batch_size <= MAX_BATCH, "batch_size",
               f"must be 1..{MAX_BATCH}")
        for side in ("width", "height"):
            value = getattr(self, side)
            _check(value is None or (_is_int(value) and MIN_SIDE <= value <= MAX_SIDE and value % 8 == 0), side,
                   f"must be a multiple of 8 between {MIN_SIDE} and {MAX_SIDE}")
        _check((self.width is None) == (self.height is None), "width", "width and height go together")
        _check(self.steps is None or (_is_int(self.steps) and 1 <= self.steps <= 200), "steps", "must be 1..200")
        _check(self.cfg is None or (_is_num(self.cfg) and 0.0 <= self.cfg <= 30.0), "cfg", "must be 0..30")
        _check(self.denoise is None or (_is_num(self.denoise) and 0.0 <= self.denoise <= 1.0), "denoise",
               "must be 0..1")
        _check(_is_int(self.priority) and -100 <= self.priority <= 100, "priority", "must be -100..100")
        _check(_is_int(self.attempts) and self.attempts >= 0, "attempts", "must be >= 0")
        for slot, path in self.images.items():
            _check(slot in IMAGE_SLOTS, "images", f"unknown image slot {slot!r} (use {', '.join(IMAGE_SLOTS)})")
            _check(isinstance(path, str) and path != "" and "\x00" not in path, "images", f"bad path for {slot}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the seed's field names."""
        return asdict(self)

    def to_json(self) -> str:
        """Compact JSON, the form stored in Redis."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        """Build from a dict (seed format accepted); unknown keys are an error naming them."""
        if not isinstance(data, dict):
            raise JobValidationError("job", "must be a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise JobValidationError(unknown[0], "unknown field")
        if "prompt" not in data:
            raise JobValidationError("prompt", "is required")
        images = data.get("images") or {}
        if not isinstance(images, dict):
            raise JobValidationError("images", "must be an object of slot: path")
        kwargs = {k: v for k, v in data.items() if v is not None or k in ("width", "height", "steps", "cfg",
                                                                          "denoise")}
        kwargs["images"] = {str(k): str(v) for k, v in images.items()}
        if not kwargs.get("job_id"):
            kwargs["job_id"] = new_job_id()
        if not kwargs.get("created_at"):
            kwargs["created_at"] = now_iso()
        try:
            return cls(**kwargs)
        except TypeError as exc:  # wrong arity etc.
            raise JobValidationError("job", str(exc)) from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> Job:
        """Parse JSON text; raise `JobValidationError` on malformed JSON too."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise JobValidationError("job", f"not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def rerun(self) -> Job:
        """A new job with the same parameters (new id, time and attempts)."""
        return replace(self, job_id=new_job_id(), created_at=now_iso(), attempts=0)


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job's current state: the seed's status-hash fields plus the desktop's extras."""

    job_id: str
    status: JobStatus
    progress: int = 0
    image_url: str = ""
    error: str = ""
    updated_at: str = ""
    message: str = ""
    attempts: int = 0
    seed_used: int | None = None
    created_at: str = ""
    started_at: str = ""
    finished_at: str = ""
    outputs: tuple[str, ...] = ()
    node_errors: str = ""
    job: Job | None = None
    rerun_required: bool = False  # retried by the user: an earlier run still in ComfyUI must not be followed
    comfy_prompt_id: str = ""  # ComfyUI's id of the latest run (the job id, or `{job_id}-r{n}` after a retry)

    def seed_fields(self) -> dict[str, Any]:
        """Exactly the seed's `GET /api/status` answer."""
        return {"job_id": self.job_id, "status": str(self.status), "progress": self.progress,
                "image_url": self.image_url, "error": self.error, "updated_at": self.updated_at}

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready (for `status --json`, `jobs --json`)."""
        data = self.seed_fields()
        data.update(message=self.message, attempts=self.attempts, seed_used=self.seed_used,
                    created_at=self.created_at, started_at=self.started_at, finished_at=self.finished_at,
                    outputs=list(self.outputs), node_errors=self.node_errors,
                    job=self.job.to_dict() if self.job else None)
        return data


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One change to one job; the only thing that crosses from the worker or the queue to the UI.

    `preview` carries a JPEG/PNG preview frame of a running job (never stored in Redis).
    """

    job_id: str
    status: JobStatus
    progress: int
    updated_at: str = field(default_factory=now_iso)
    message: str = ""
    image_url: str = ""
    error: str = ""
    node_errors: str = ""
    seed_used: int | None = None
    preview: bytes | None = None


def _check(ok: bool, field_name: str, message: str) -> None:
    if not ok:
        raise JobValidationError(field_name, message)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _valid_ratio(text: str) -> bool:
    match = _RATIO_RE.match(text)
    return bool(match) and int(match.group(1)) > 0 and int(match.group(2)) > 0  # type: ignore[union-attr]


def _valid_model_name(name: str) -> bool:
    """A model name as ComfyUI lists it: relative ('/' or, on Windows, '\\' separated), no '..' part."""
    if not _MODEL_RE.match(name) or name.startswith(("/", "\\")):
        return False
    return all(part not in ("", ".", "..") for part in re.split(r"[/\\]", name))
