"""Where a finished job's output files live: the backend, the worker's machine, and per file what ComfyUI's
`/view` needs plus the size and SHA-256 the worker recorded.

Written by the worker as strict JSON on the job's status hash (`output_location`), read back with
`parse_location`: anything that is not exactly the shape below (another tool's garbage, a truncated write, a newer
format) is a `BadLocation`, never an exception.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from comfystudio_desktop.backend_settings import BACKEND_NAME_RE

__all__ = ["FORMAT", "BadLocation", "OutputFile", "OutputLocation", "parse_location"]

FORMAT = 1
MAX_FILES = 256
MAX_FILE_BYTES = 1024 * 1024 * 1024  # as the API's outputs route and ComfyUI's /view download
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}(?:_[0-9]{1,3})?\.(png|jpg|jpeg|webp)")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_HOST_ID_RE = re.compile(r"[0-9a-f]{16,64}")
_URL_RE = re.compile(r"https?://[^\s/?#]{1,255}(?:/[^\s?#]{0,255})?")
_VIEW_TYPES = frozenset({"output", "temp", "input"})
_MAX_TEXT = 1024


@dataclass(frozen=True, slots=True)
class OutputFile:
    """One output: its name in the worker's `storage/outputs`, ComfyUI's `/view` parameters, size and hash.

    `filename` is "" when the file did not come from ComfyUI (a result reused from the cache): only a copy of the
    file itself can then be fetched.
    """

    name: str
    size: int
    sha256: str
    filename: str = ""
    subfolder: str = ""
    type: str = "output"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"name": self.name, "size": self.size, "sha256": self.sha256, "filename": self.filename,
                "subfolder": self.subfolder, "type": self.type}


@dataclass(frozen=True, slots=True)
class OutputLocation:
    """Where every output of one finished run lives."""

    backend: str  # the backend that ran it ("" for a worker without a named backend)
    host_id: str  # the worker's machine (see host_identity)
    host_name: str  # for people: the machine's name
    comfy_url: str  # the ComfyUI the worker used, as that worker reached it
    files: tuple[OutputFile, ...]

    @property
    def where(self) -> str:
        """How a message names the place: the backend, else the machine."""
        return self.backend or self.host_name or "another machine"

    def to_json(self) -> str:
        """The strict JSON stored on the status hash."""
        return json.dumps({"format": FORMAT, "backend": self.backend, "host_id": self.host_id,
                           "host_name": self.host_name, "comfy_url": self.comfy_url,
                           "files": [f.to_dict() for f in self.files]}, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class BadLocation:
    """A stored location that could not be read; `reason` says why (for the log)."""

    reason: str


class _Bad(ValueError):
    pass


def _exact(data: dict[str, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if type(value) is not kind:
        raise _Bad(f"{key} is not a {kind.__name__}")
    return value


def _text(data: dict[str, Any], key: str, pattern: re.Pattern[str] | None = None, *, empty: bool = True) -> str:
    value: str = _exact(data, key, str)
    if (not value and not empty) or len(value) > _MAX_TEXT or any(ord(c) < 32 for c in value):
        raise _Bad(f"bad {key}")
    if value and pattern is not None and not pattern.fullmatch(value):
        raise _Bad(f"bad {key}")
    return value


def _file(data: object) -> OutputFile:
    if type(data) is not dict or set(data) != {"name", "size", "sha256", "filename", "subfolder", "type"}:
        raise _Bad("a file entry has other fields")
    size = _exact(data, "size", int)
    if not 0 < size <= MAX_FILE_BYTES:
        raise _Bad("bad size")
    filename, subfolder = _text(data, "filename"), _text(data, "subfolder")
    view_type = _text(data, "type")
    if view_type not in _VIEW_TYPES or "\\" in filename or "/" in filename or ".." in subfolder.split("/"):
        raise _Bad("bad view parameters")
    return OutputFile(name=_text(data, "name", _NAME_RE, empty=False), size=size,
                      sha256=_text(data, "sha256", _SHA256_RE, empty=False), filename=filename, subfolder=subfolder,
                      type=view_type)


def parse_location(text: str) -> OutputLocation | BadLocation:
    """Read a stored location strictly: exact types and fields, whole-string patterns; anything else is bad."""
    try:
        data = json.loads(text)
        if type(data) is not dict or set(data) != {"format", "backend", "host_id", "host_name", "comfy_url", "files"}:
            raise _Bad("not an output location")
        if _exact(data, "format", int) != FORMAT:
            raise _Bad("unknown format")
        files = _exact(data, "files", list)
        if not 0 < len(files) <= MAX_FILES:
            raise _Bad("bad file count")
        parsed = tuple(_file(item) for item in files)
        if len({f.name for f in parsed}) != len(parsed):
            raise _Bad("a file is named twice")
        return OutputLocation(backend=_text(data, "backend", BACKEND_NAME_RE),
                              host_id=_text(data, "host_id", _HOST_ID_RE, empty=False),
                              host_name=_text(data, "host_name"), comfy_url=_text(data, "comfy_url", _URL_RE),
                              files=parsed)
    except (ValueError, RecursionError) as exc:  # json's errors are ValueErrors, as is _Bad
        return BadLocation(str(exc)[:200] or type(exc).__name__)
