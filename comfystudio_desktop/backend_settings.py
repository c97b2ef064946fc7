"""The ComfyUI backends a queue feeds: a typed list in the settings, parsed strictly from JSON.

A backend is *managed* (a ComfyUI folder the watchdog starts on 127.0.0.1 with its own port and
`--cuda-device N`) or *external* (a URL, maybe another machine). Each gets its own worker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlparse

__all__ = ["BACKEND_NAME_RE", "Backend", "BackendError", "BackendKind", "backends_from_json", "backends_to_json",
           "legacy_backend"]

BACKEND_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
MAX_BACKENDS = 64
_FIELDS = {"name": str, "kind": str, "url": str, "comfy_main": str, "comfy_python": str, "port": int,
           "cuda_device": int, "pipeline_depth": int, "enabled": bool}


class BackendError(ValueError):
    """A backend entry is invalid; the message names the entry and the field."""


class BackendKind(StrEnum):
    """How a backend's ComfyUI is reached."""

    EXTERNAL = "external"  # only watched at its URL
    MANAGED = "managed"  # started and supervised by the app on 127.0.0.1


@dataclass(frozen=True, slots=True)
class Backend:
    """One ComfyUI the queue feeds."""

    name: str
    kind: BackendKind = BackendKind.EXTERNAL
    url: str = ""  # external: its base URL
    comfy_main: str = ""  # managed: ComfyUI's main.py
    comfy_python: str = ""  # managed: the python to run it with ("" = this one)
    port: int = 0  # managed: its port on 127.0.0.1 (0 = pick a free one)
    cuda_device: int = -1  # managed: passed as --cuda-device N (-1: not passed)
    pipeline_depth: int = 2
    enabled: bool = True  # a disabled backend finishes its running job and takes no more

    def validate(self) -> Backend:
        """Raise BackendError naming the first invalid field, else return self."""
        where = f"backend {self.name!r}"
        if not BACKEND_NAME_RE.fullmatch(self.name):
            raise BackendError(f"{where}: name must be 1-32 letters, digits, '-' or '_' (starting with a letter "
                               "or digit)")
        if self.kind is BackendKind.EXTERNAL and not _is_http_url(self.url):
            raise BackendError(f"{where}: url must be an http:// or https:// URL")
        if self.kind is BackendKind.MANAGED and not self.comfy_main:
            raise BackendError(f"{where}: comfy_main is required for a managed backend")
        if not 0 <= self.port <= 65535:
            raise BackendError(f"{where}: port must be 0..65535")
        if not -1 <= self.cuda_device <= 63:
            raise BackendError(f"{where}: cuda_device must be -1 (none) or 0..63")
        if not 1 <= self.pipeline_depth <= 8:
            raise BackendError(f"{where}: pipeline_depth must be 1..8")
        return self

    @property
    def comfy_url(self) -> str:
        """Where its ComfyUI answers (a managed one with port 0 learns its port when started)."""
        if self.kind is BackendKind.EXTERNAL:
            return self.url.rstrip("/")
        return f"http://127.0.0.1:{self.port or 8188}"

    def comfy_args(self) -> tuple[str, ...]:
        """Extra arguments for a managed ComfyUI."""
        return ("--cuda-device", str(self.cuda_device)) if self.cuda_device >= 0 else ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"name": self.name, "kind": str(self.kind), "url": self.url, "comfy_main": self.comfy_main,
                "comfy_python": self.comfy_python, "port": self.port, "cuda_device": self.cuda_device,
                "pipeline_depth": self.pipeline_depth, "enabled": self.enabled}


def _is_http_url(value: str) -> bool:
    try:
        parsed = urlparse(value)
        return parsed.scheme in ("http", "https") and bool(parsed.hostname)
    except ValueError:
        return False


def _backend_from_json(index: int, raw: object) -> Backend:
    if not isinstance(raw, dict):
        raise BackendError(f"backend #{index + 1}: must be a JSON object")
    for key, value in raw.items():
        expected = _FIELDS.get(key) if isinstance(key, str) else None
        if expected is None:
            raise BackendError(f"backend #{index + 1}: unknown field {key!r}")
        if type(value) is not expected:  # exact: no bool for int, no number for text
            raise BackendError(f"backend #{index + 1}: {key} must be {expected.__name__}, got {type(value).__name__}")
    if "name" not in raw:
        raise BackendError(f"backend #{index + 1}: name is required")
    values = dict(raw)
    kind_text = values.pop("kind", "external")
    try:
        kind = BackendKind(kind_text)
    except ValueError:
        raise BackendError(f"backend {raw['name']!r}: kind must be 'external' or 'managed'") from None
    if any(not ch.isprintable() for key in ("name", "url", "comfy_main", "comfy_python")
           for ch in values.get(key, "")):
        raise BackendError(f"backend #{index + 1}: text must not contain control characters")
    return Backend(kind=kind, **values).validate()


def backends_from_json(raw: object) -> tuple[Backend, ...]:
    """A JSON list of backend objects, checked field by field; names must be unique. Raises BackendError."""
    if not isinstance(raw, list):
        raise BackendError("must be a JSON list of backend objects")
    if len(raw) > MAX_BACKENDS:
        raise BackendError(f"at most {MAX_BACKENDS} backends")
    backends = tuple(_backend_from_json(index, item) for index, item in enumerate(raw))
    seen: set[str] = set()
    for backend in backends:
        if backend.name in seen:
            raise BackendError(f"backend name {backend.name!r} is used twice")
        seen.add(backend.name)
    return backends


def backends_to_json(backends: tuple[Backend, ...]) -> list[dict[str, Any]]:
    """The list as JSON-ready dicts (what `backends_from_json` reads back)."""
    return [backend.to_dict() for backend in backends]


def legacy_backend(data: dict[str, Any]) -> dict[str, Any]:
    """The one backend named "local" that an older settings file's single ComfyUI becomes (migration)."""
    mode = data.get("comfy_mode", "external")
    entry: dict[str, Any] = {"name": "local", "kind": mode if mode in ("external", "managed") else "external"}
    if entry["kind"] == "external":
        entry["url"] = data.get("comfy_url", "http://127.0.0.1:8188")
    else:
        entry["comfy_main"] = data.get("comfy_main", "")
        entry["comfy_python"] = data.get("comfy_python", "")
        entry["port"] = data.get("comfy_port", 0)
    if "pipeline_depth" in data:
        entry["pipeline_depth"] = data["pipeline_depth"]
    return entry
