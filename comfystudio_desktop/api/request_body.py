"""Reading request bodies within limits: JSON (strict: no NaN/Infinity, bounded nesting) and multipart uploads.

Nothing is stored before it is checked: an uploaded image is streamed to a temporary file in `storage/inputs`
with a byte cap, and the caller deletes it unless the job is accepted.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

from comfystudio_desktop.api.api_errors import ApiError
from comfystudio_desktop.jobs import IMAGE_SLOTS

__all__ = ["MAX_JSON_BYTES", "Upload", "parse_json", "read_json_body", "read_multipart"]

#: A job as JSON: two 20,000-character prompts in 4-byte UTF-8 and the rest fit well within this.
MAX_JSON_BYTES = 256 * 1024
_CHUNK = 64 * 1024
_MAX_PARTS = 1 + len(IMAGE_SLOTS)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(raw: bytes, what: str = "body") -> object:
    """Strict JSON from bytes; any failure is a 400 naming `what`."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ApiError(400, f"not valid JSON ({exc})" if not isinstance(exc, RecursionError)
                       else "JSON nested too deeply", what) from None


async def read_json_body(request: web.Request) -> object:
    """The request's JSON body, at most `MAX_JSON_BYTES`."""
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise ApiError(413, f"the body is larger than {MAX_JSON_BYTES} bytes")
    raw = await request.content.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise ApiError(413, f"the body is larger than {MAX_JSON_BYTES} bytes")
    return parse_json(raw)


@dataclass
class Upload:
    """A multipart `POST /api/generate`: the `job` part's JSON and the image parts, saved to temp files."""

    job: object = None
    images: dict[str, Path] = field(default_factory=dict)

    def discard(self) -> None:
        """Delete the temp files (the job was refused, or they were moved to their final names)."""
        for path in self.images.values():
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)


async def read_multipart(request: web.Request, inputs_dir: Path, max_image_bytes: int) -> Upload:
    """Parts: `job` (JSON, required) and at most one of each image slot; anything else is a 400."""
    upload = Upload()
    seen: set[str] = set()
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                raise ApiError(400, "nested multipart bodies are not accepted")
            name = part.name or ""
            if name in seen:
                raise ApiError(400, "appears twice", name)
            seen.add(name)
            if len(seen) > _MAX_PARTS:
                raise ApiError(400, f"at most {_MAX_PARTS} parts: job and the images {', '.join(IMAGE_SLOTS)}")
            if name == "job":
                upload.job = parse_json(await _read_part(part, MAX_JSON_BYTES, "job"), "job")
            elif name in IMAGE_SLOTS:
                upload.images[name] = await _save_part(part, name, inputs_dir, max_image_bytes)
            else:
                raise ApiError(400, f"unknown part {name[:40]!r}; use job and {', '.join(IMAGE_SLOTS)}", "multipart")
    except ApiError:
        upload.discard()
        raise
    except (ValueError, AssertionError, LookupError, RuntimeError, TypeError) as exc:  # aiohttp on a broken body
        upload.discard()
        raise ApiError(400, f"malformed multipart body ({type(exc).__name__})") from None
    except BaseException:
        upload.discard()
        raise
    if "job" not in seen:
        upload.discard()
        raise ApiError(400, "a multipart request needs a part named job holding the job's JSON", "job")
    return upload


async def _read_part(part: BodyPartReader, limit: int, name: str) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(_CHUNK):
        data.extend(chunk)
        if len(data) > limit:
            raise ApiError(413, f"is larger than {limit} bytes", name)
    return bytes(data)


async def _save_part(part: BodyPartReader, slot: str, inputs_dir: Path, limit: int) -> Path:
    inputs_dir.mkdir(parents=True, exist_ok=True)
    path = inputs_dir / f".upload-{secrets.token_hex(8)}.part"
    size = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            while chunk := await part.read_chunk(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, f"is larger than the upload limit of {limit // (1024 * 1024)} MB "
                                        "(setting max_upload_mb)", slot)
                fh.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path
