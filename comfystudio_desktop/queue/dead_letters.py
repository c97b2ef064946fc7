"""Dead letters: entries that could not become a job, kept with their reason in the capped list `cs:dead`.

A dead letter keeps a copy of what arrived, cut to `MAX_RAW_BYTES` (and flagged) so that junk cannot fill Redis'
memory; the list keeps the `MAX_DEAD_LETTERS` newest. Stored entries are parsed tolerantly: whatever another
tool (or an older version) left in the list is shown, never an exception.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from comfystudio_desktop.jobs import JobValidationError, now_iso

__all__ = ["MAX_DEAD_LETTERS", "MAX_RAW_BYTES", "DeadLetter", "DeadLetterNotFound", "cut_utf8", "describe_error"]

MAX_DEAD_LETTERS = 1_000
MAX_RAW_BYTES = 4_096
MAX_REASON_BYTES = 1_024


class DeadLetterNotFound(LookupError):
    """No dead letter at that index (the list is shorter, or another process handled it meanwhile)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One rejected entry: why, when, and (a possibly truncated copy of) what arrived.

    `size` is the original entry's length in bytes; `truncated` says `raw` holds only its beginning.
    `entry_id` is the intake sequence number, from which an entry without `job_id` gets its job id (so a requeued
    entry gets the same id every time).
    """

    reason: str
    at: str
    raw: str
    truncated: bool = False
    size: int = 0
    source: str = "comfy_jobs"
    entry_id: str = ""

    @classmethod
    def of(cls, raw: bytes, reason: str, *, source: str = "comfy_jobs", entry_id: str = "") -> DeadLetter:
        """A dead letter for `raw` (any bytes): invalid UTF-8 is kept as backslash escapes, long entries cut."""
        text, truncated = cut_utf8(raw.decode("utf-8", "backslashreplace"), MAX_RAW_BYTES)
        return cls(reason=cut_utf8(reason, MAX_REASON_BYTES)[0], at=now_iso(), raw=text, truncated=truncated,
                   size=len(raw), source=source, entry_id=entry_id)

    def with_reason(self, reason: str) -> DeadLetter:
        """The same entry, rejected again now for `reason`."""
        return DeadLetter(reason=cut_utf8(reason, MAX_REASON_BYTES)[0], at=now_iso(), raw=self.raw,
                          truncated=self.truncated, size=self.size, source=self.source, entry_id=self.entry_id)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (for `dead --json`)."""
        return asdict(self)

    def to_json(self) -> str:
        """The stored form: ASCII-only JSON."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_stored(cls, stored: bytes) -> DeadLetter:
        """Parse an item of `cs:dead`; anything unreadable becomes a dead letter that says so."""
        text = stored.decode("utf-8", "backslashreplace")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            return cls.of(stored, "unreadable dead letter", source="cs:dead")
        reason = data.get("reason", data.get("error"))  # "error": the first versions' name for it
        raw = data.get("raw")
        size = data.get("size")
        return cls(reason=_text(reason) or "no reason recorded", at=_text(data.get("at")), raw=_text(raw),
                   truncated=data.get("truncated") is True,
                   size=size if isinstance(size, int) and not isinstance(size, bool) else len(_text(raw)),
                   source=_text(data.get("source")) or "comfy_jobs", entry_id=_text(data.get("entry_id")))


def _text(value: object) -> str:
    """A stored text field, with lone surrogates (from a \\ud800 escape) made printable."""
    if not isinstance(value, str):
        return ""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def cut_utf8(text: str, max_bytes: int) -> tuple[str, bool]:
    """`text` cut to at most `max_bytes` of UTF-8 (never inside a character); and whether it was cut."""
    data = text.encode("utf-8", "backslashreplace")
    if len(data) <= max_bytes:
        return data.decode("utf-8"), False
    return data[:max_bytes].decode("utf-8", "ignore"), True


def describe_error(exc: BaseException) -> str:
    """A one-line reason for a rejected entry: a validation message as it is, anything else with its type."""
    if isinstance(exc, JobValidationError):
        return str(exc)
    if isinstance(exc, RecursionError):
        return "job: not valid JSON: nested too deeply"
    return f"{type(exc).__name__}: {exc}"
