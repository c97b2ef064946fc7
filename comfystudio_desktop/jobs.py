"""Job data: what a user asks for (`Job`), where it stands (`JobRecord`) and how that changes (`JobEvent`).

These types are the contract between the queue, the worker, the CLI and the window. They are plain,
immutable and Qt-free; JSON in and out keeps the seed system's field names.
"""

from __future__ import annotations

import json
import math
import re
import types
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
    "parse_json",
    "valid_job_id",
]

#: Aspect ratios offered to the user; sizes per model family live with the workflow templates.
ASPECT_RATIOS: tuple[str, ...] = ("1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3", "21:9")
#: Image slots a workflow may ask for: one `input`, or a `source` and a `target`.
IMAGE_SLOTS: tuple[str, ...] = ("input", "source", "target")

SEED_MAX = 2**64 - 1  # ComfyUI's KSampler accepts 0 .. 0xffffffffffffffff
MAX_PROMPT_CHARS = 20_000
MAX_PATH_CHARS = 4_096
MAX_BATCH = 16
MAX_ATTEMPTS_FIELD = 1_000
#: Image sides: multiples of 8 from 64 up to ComfyUI's MAX_RESOLUTION.
MIN_SIDE, MAX_SIDE, SIDE_STEP = 64, 16_384, 8

# Every pattern is used with `fullmatch`, so a trailing newline never passes.
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}")
_MODEL_RE = re.compile(r"[^\x00-\x1f\x7f-\x9f<>:\"|?*]{1,255}")
_RATIO_RE = re.compile(r"([0-9]{1,3}):([0-9]{1,3})")
# Job ids become file names ({job_id}.png) and ComfyUI prompt ids: letters, digits, '-' and '_' only.
_JOB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_CREATED_AT_RE = re.compile(r"[0-9T:.+\-Z ]{10,40}")


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


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}", re.ASCII)


class JobValidationError(ValueError):
    """A job parameter is invalid; `field` names it so a form can show the message next to it."""

    def __init__(self, field_name: str, message: str, *, shown_as: str | None = None) -> None:
        super().__init__(f"{shown_as or field_name}: {message}")
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
    `text_encoder`/`vae` of "" mean "chosen automatically for the model".
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
    text_encoder: str = ""  # UNET models: the text encoder file; "" = chosen automatically
    vae: str = ""  # UNET models: the VAE file; "" = chosen automatically
    no_cache: bool = False  # run on ComfyUI even if an identical finished job's output could be reused
    batch_id: str = ""  # the batch this job was submitted with ("" = none); batch operations act on it

    def validate(self) -> Job:
        """Check every field's exact type and range; raise `JobValidationError` naming the first bad one."""
        _check_text(self.job_id, "job_id")
        _check(valid_job_id(self.job_id), "job_id", "must be 1-64 letters, digits, '-' or '_'")
        _check_text(self.prompt, "prompt", max_chars=MAX_PROMPT_CHARS)
        _check(self.prompt.strip() != "", "prompt", "must not be empty")
        _check_text(self.negative_prompt, "negative_prompt", max_chars=MAX_PROMPT_CHARS)
        _check(_is_int(self.seed) and -1 <= self.seed <= SEED_MAX, "seed", f"must be -1 (random) or 0..{SEED_MAX}")
        _check_text(self.workflow, "workflow")
        _check(bool(_NAME_RE.fullmatch(self.workflow)), "workflow", f"invalid workflow name {_short(self.workflow)}")
        for name in ("model", "text_encoder", "vae"):
            value = getattr(self, name)
            _check_text(value, name)
            noun = "model" if name == "model" else "file"
            _check(value == "" or _valid_model_name(value), name, f"invalid {noun} name {_short(value)}")
        _check_text(self.aspect_ratio, "aspect_ratio")
        _check(_valid_ratio(self.aspect_ratio), "aspect_ratio", f"must be W:H such as {', '.join(ASPECT_RATIOS)}")
        _check(_is_int(self.batch_size) and 1 <= self.batch_size <= MAX_BATCH, "batch_size",
               f"must be 1..{MAX_BATCH}")
        self._validate_sizes()
        _check(self.steps is None or (_is_int(self.steps) and 1 <= self.steps <= 200), "steps", "must be 1..200")
        _check(self.cfg is None or (_is_num(self.cfg) and 0.0 <= self.cfg <= 30.0), "cfg", "must be 0..30")
        _check(self.denoise is None or (_is_num(self.denoise) and 0.0 <= self.denoise <= 1.0), "denoise",
               "must be 0..1")
        _check(_is_int(self.priority) and -100 <= self.priority <= 100, "priority", "must be -100..100")
        _check(_is_int(self.attempts) and 0 <= self.attempts <= MAX_ATTEMPTS_FIELD, "attempts",
               f"must be 0..{MAX_ATTEMPTS_FIELD}")
        _check(isinstance(self.no_cache, bool), "no_cache", f"must be true or false, not {_kind(self.no_cache)}")
        _check_text(self.batch_id, "batch_id")
        _check(self.batch_id == "" or valid_job_id(self.batch_id), "batch_id",
               "must be 1-64 letters, digits, '-' or '_'")
        _check_text(self.created_at, "created_at")
        _check(_valid_timestamp(self.created_at), "created_at", "must be an ISO 8601 time")
        self._validate_images()
        return self

    def _validate_sizes(self) -> None:
        for side in ("width", "height"):
            value = getattr(self, side)
            if value is None:
                continue
            _check(_is_int(value), side, f"must be a whole number, not {_kind(value)}")
            _check(MIN_SIDE <= value <= MAX_SIDE, side, f"must be {MIN_SIDE}..{MAX_SIDE} pixels")
            _check(value % SIDE_STEP == 0, side, f"must be a multiple of {SIDE_STEP}")
        _check((self.width is None) == (self.height is None), "width", "width and height go together")

    def _validate_images(self) -> None:
        _check(isinstance(self.images, dict), "images", f"must be an object of slot: path, not {_kind(self.images)}")
        for slot, path in self.images.items():
            _check(isinstance(slot, str) and slot in IMAGE_SLOTS, "images",
                   f"unknown image slot {_short(slot)} (use {', '.join(IMAGE_SLOTS)})")
            _check(isinstance(path, str), "images", f"the {slot} path must be text, not {_kind(path)}")
            _check_text(path, "images", max_chars=MAX_PATH_CHARS)
            _check(path != "", "images", f"empty path for {slot}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the seed's field names."""
        return asdict(self)

    def to_json(self) -> str:
        """Compact JSON, the form stored in Redis."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: object, *, default_job_id: str = "") -> Job:
        """The strict parser: a validated Job from decoded JSON (seed format accepted), or `JobValidationError`.

        Every field must have its exact JSON type (no coercion: `5` is not text, `true` is not a number). A null,
        like a missing field, means the default. A missing `job_id` becomes `default_job_id` or a fresh id.
        """
        if not isinstance(data, dict):
            raise JobValidationError("job", f"must be a JSON object, not {_kind(data)}")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if not isinstance(key, str) or key not in _FIELD_KINDS:
                # `field` is a plain name as sent (an API client matches it), any other key its quoted, cut form;
                # the message always quotes it.
                shown = _short(key, 40)
                plain = isinstance(key, str) and _PLAIN_KEY.fullmatch(key) is not None
                raise JobValidationError(str(key) if plain else shown, "unknown field", shown_as=shown)
            if value is None:
                if key in _NULLABLE:
                    kwargs[key] = None
                continue  # elsewhere null means "not given", as a missing key
            _check_kind(key, value)
            kwargs[key] = dict(value) if key == "images" else value
        if "prompt" not in kwargs:
            raise JobValidationError("prompt", "is required")
        if not kwargs.get("job_id"):
            kwargs["job_id"] = default_job_id or new_job_id()
        if not kwargs.get("created_at"):
            kwargs["created_at"] = now_iso()
        return cls(**kwargs).validate()

    @classmethod
    def from_json(cls, text: str | bytes, *, default_job_id: str = "") -> Job:
        """Parse JSON text (bytes must be UTF-8) with `from_dict`; every failure is a `JobValidationError`."""
        return cls.from_dict(parse_json(text), default_job_id=default_job_id)

    def rerun(self) -> Job:
        """A new job with the same parameters (new id, time and attempts)."""
        return replace(self, job_id=new_job_id(), created_at=now_iso(), attempts=0)


def valid_job_id(text: object) -> bool:
    """True if `text` is a job id: 1-64 letters, digits, '-' or '_' (it becomes a file name and a prompt id)."""
    return isinstance(text, str) and _JOB_ID_RE.fullmatch(text) is not None


def parse_json(text: str | bytes) -> object:
    """Decode JSON strictly: UTF-8 only, no NaN/Infinity, no duplicate keys, bounded nesting.

    Every failure (invalid UTF-8, bad syntax, a 50,000-deep array, a 5,000-digit number) is one
    `JobValidationError` with the reason.
    """
    if isinstance(text, bytes | bytearray | memoryview):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JobValidationError("job", f"not valid UTF-8 (byte {exc.start})") from exc
    if not isinstance(text, str):
        raise JobValidationError("job", f"must be JSON text, not {type(text).__name__}")
    try:
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except RecursionError as exc:
        raise JobValidationError("job", "not valid JSON: nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, the int digit limit, duplicate keys, NaN
        raise JobValidationError("job", f"not valid JSON: {_short_text(str(exc), 200)}") from exc


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
    backend: str = ""  # the backend whose worker claimed the latest run ("" before any claim)
    from_cache: bool = False  # finished with a copy of an identical earlier job's output, not run on ComfyUI
    output_location: str = ""  # where the outputs live, as the worker wrote it (parsed by outputs/location.py)

    def seed_fields(self) -> dict[str, Any]:
        """Exactly the seed's `GET /api/status` answer."""
        return {"job_id": self.job_id, "status": str(self.status), "progress": self.progress,
                "image_url": self.image_url, "error": self.error, "updated_at": self.updated_at}

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready (for `status --json`, `jobs --json`)."""
        data = self.seed_fields()
        data.update(message=self.message, attempts=self.attempts, seed_used=self.seed_used,
                    created_at=self.created_at, started_at=self.started_at, finished_at=self.finished_at,
                    outputs=list(self.outputs), node_errors=self.node_errors, backend=self.backend,
                    from_cache=self.from_cache,
                    job=self.job.to_dict() if self.job else None)
        return data


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One change to one job; the only thing that crosses from the worker or the queue to the UI.

    `preview` carries a JPEG/PNG preview frame of a running job (never stored in Redis). `attempts` is the
    queue's count of failed runs, as the event stream carries it (a requeued job waits for attempt `attempts + 1`).
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
    attempts: int = 0
    backend: str = ""  # the backend running (or that ran) the job


def _check(ok: bool, field_name: str, message: str) -> None:
    if not ok:
        raise JobValidationError(field_name, message)


def _check_text(value: object, field_name: str, *, max_chars: int = 1_000) -> None:
    """Text that can be stored and sent anywhere: a str, not too long, valid Unicode (no lone surrogates), no NUL."""
    _check(isinstance(value, str), field_name, f"must be text, not {_kind(value)}")
    assert isinstance(value, str)
    _check(len(value) <= max_chars, field_name, f"is longer than {max_chars} characters")
    _check("\x00" not in value, field_name, "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise JobValidationError(field_name, f"is not valid Unicode (a lone surrogate at {exc.start})") from exc


#: Each field's JSON kind, for the exact type check of `Job.from_dict`.
_FIELD_KINDS: dict[str, str] = {
    "prompt": "text", "job_id": "text", "seed": "int", "workflow": "text", "model": "text", "aspect_ratio": "text",
    "batch_size": "int", "images": "images", "created_at": "text", "negative_prompt": "text", "width": "int",
    "height": "int", "steps": "int", "cfg": "number", "denoise": "number", "priority": "int", "attempts": "int",
    "text_encoder": "text", "vae": "text", "no_cache": "bool", "batch_id": "text",
}
_NULLABLE = frozenset({"width", "height", "steps", "cfg", "denoise"})


def _check_kind(key: str, value: object) -> None:
    kind = _FIELD_KINDS[key]
    if kind == "text":
        _check(isinstance(value, str), key, f"must be text, not {_kind(value)}")
    elif kind == "int":
        _check(_is_int(value), key, f"must be a whole number, not {_kind(value)}")
    elif kind == "number":
        _check(_is_num(value), key, f"must be a number, not {_kind(value)}")
    elif kind == "bool":
        _check(isinstance(value, bool), key, f"must be true or false, not {_kind(value)}")
    else:
        _check(isinstance(value, dict), key, f"must be an object of slot: path, not {_kind(value)}")
        assert isinstance(value, dict)
        for slot, path in value.items():
            _check(isinstance(path, str), key, f"the {_short(slot, 20)} path must be text, not {_kind(path)}")


def _kind(value: object) -> str:
    """The JSON name of a value's type, for messages (never the value itself, which may be huge)."""
    if value is None:
        return "null"
    return next((name for kind, name in _JSON_KINDS if isinstance(value, kind)), type(value).__name__)


# bool before int: True is an int too.
_JSON_KINDS: tuple[tuple[type | types.UnionType, str], ...] = (
    (bool, "true/false"), (int | float, "a number"), (str, "text"), (dict, "an object"), (list | tuple, "an array"),
)


def _short(value: object, limit: int = 60) -> str:
    """`repr` of a (text) value for a message, cut to `limit` characters; escapes newlines and surrogates."""
    text = repr(value) if isinstance(value, str) else _kind(value)
    return _short_text(text, limit)


def _short_text(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {_short(key, 40)}")
        result[key] = value
    return result


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: object) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _valid_ratio(text: str) -> bool:
    match = _RATIO_RE.fullmatch(text)
    return match is not None and int(match.group(1)) > 0 and int(match.group(2)) > 0


def _valid_timestamp(text: str) -> bool:
    if not _CREATED_AT_RE.fullmatch(text):
        return False
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _valid_model_name(name: str) -> bool:
    """A model name as ComfyUI lists it: relative ('/' or, on Windows, '\\' separated), no '..' part."""
    if not _MODEL_RE.fullmatch(name) or name.startswith(("/", "\\")):
        return False
    return all(part not in ("", ".", "..") for part in re.split(r"[/\\]", name))
