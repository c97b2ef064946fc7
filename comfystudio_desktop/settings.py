"""Typed settings saved as JSON with a schema version and migrations.

Only user choices live here; window geometry and similar UI state go to QSettings.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

__all__ = ["SCHEMA_VERSION", "Settings", "SettingsError", "load_settings", "save_settings"]

SCHEMA_VERSION = 2


class SettingsError(ValueError):
    """A setting is unknown or invalid; `field` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"setting {field_name!r}: {message}")
        self.field = field_name


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the user can configure. Defaults suit a local ComfyUI on its standard port."""

    schema_version: int = SCHEMA_VERSION
    # ComfyUI
    comfy_url: str = "http://127.0.0.1:8188"
    comfy_mode: str = "external"  # external: only watch a URL; managed: start and supervise ComfyUI
    comfy_models_dir: str = ""  # ComfyUI's models/ folder, scanned when ComfyUI is down
    comfy_python: str = ""  # managed mode: python executable (a portable install's embedded python)
    comfy_main: str = ""  # managed mode: path of ComfyUI's main.py
    comfy_args: tuple[str, ...] = ()
    comfy_port: int = 0  # managed mode: 0 = pick a free port
    # UNET models load their text encoder and VAE separately; empty = the workflow template's default file name
    unet_text_encoder: str = ""
    unet_vae: str = ""
    flux_clip_l: str = ""
    # Redis
    redis_mode: str = "embedded"  # embedded: the app's own redis-server; external: redis_url
    redis_url: str = ""
    redis_binary: str = ""  # override the server binary search
    # Storage and retention
    storage_dir: str = ""  # default: <home>/storage
    output_retention_days: int = 30
    input_retention_hours: int = 24
    # Jobs
    job_timeout_s: float = 600.0
    pipeline_depth: int = 2
    max_attempts: int = 3
    lease_seconds: float = 30.0
    max_upload_mb: int = 50
    max_image_pixels: int = 64_000_000
    # Desktop
    notifications: bool = True
    close_to_tray: bool = False

    def validate(self) -> Settings:
        """Raise `SettingsError` naming the first invalid field, else return self."""
        for name, check, message in _RULES:
            if not check(getattr(self, name)):
                raise SettingsError(name, message)
        if self.redis_mode == "external" and not self.redis_url:
            raise SettingsError("redis_url", "is required when redis_mode is 'external'")
        if self.comfy_mode == "managed" and not self.comfy_main:
            raise SettingsError("comfy_main", "is required when comfy_mode is 'managed'")
        return self

    def with_changes(self, **changes: Any) -> Settings:
        """A validated copy with some fields changed."""
        return replace(self, **changes).validate()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        data = asdict(self)
        data["comfy_args"] = list(self.comfy_args)
        return data

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Settings:
        """Migrate, type-check and validate a dict loaded from JSON."""
        if not isinstance(raw, dict):
            raise SettingsError("(file)", "must hold a JSON object")
        data = migrate(dict(raw))
        known = {f.name: f for f in fields(cls)}
        for key in data:
            if key not in known:
                raise SettingsError(key, "unknown setting")
        typed: dict[str, Any] = {}
        for key, value in data.items():
            typed[key] = _coerce(key, known[key].default, value)
        return cls(**typed).validate()


def _is_http_url(value: str) -> bool:
    parsed = urlparse(value)
    return parsed.scheme in ("http", "https") and bool(parsed.hostname)


def _is_redis_url(value: str) -> bool:
    return value == "" or urlparse(value).scheme in ("redis", "rediss", "unix")


_RULES: list[tuple[str, Callable[[Any], bool], str]] = [
    ("schema_version", lambda v: v == SCHEMA_VERSION, f"must be {SCHEMA_VERSION}"),
    ("comfy_url", _is_http_url, "must be an http:// or https:// URL"),
    ("comfy_mode", lambda v: v in ("external", "managed"), "must be 'external' or 'managed'"),
    ("comfy_port", lambda v: 0 <= v <= 65535, "must be 0..65535"),
    ("redis_mode", lambda v: v in ("embedded", "external"), "must be 'embedded' or 'external'"),
    ("redis_url", _is_redis_url, "must be a redis:// URL"),
    ("output_retention_days", lambda v: 1 <= v <= 3650, "must be 1..3650"),
    ("input_retention_hours", lambda v: 1 <= v <= 24 * 365, "must be 1..8760"),
    ("job_timeout_s", lambda v: 1 <= v <= 24 * 3600, "must be 1..86400 seconds"),
    ("pipeline_depth", lambda v: 1 <= v <= 8, "must be 1..8"),
    ("max_attempts", lambda v: 1 <= v <= 100, "must be 1..100"),
    ("lease_seconds", lambda v: 2 <= v <= 3600, "must be 2..3600 seconds"),
    ("max_upload_mb", lambda v: 1 <= v <= 1024, "must be 1..1024"),
    ("max_image_pixels", lambda v: 4096 <= v <= 1_000_000_000, "must be 4096..1e9"),
]

# Each migration takes a dict of version N-1 and returns version N.
_MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    # v1 had a single "timeout" in seconds and no pipelining.
    2: lambda d: {**{k: v for k, v in d.items() if k != "timeout"},
                  **({"job_timeout_s": d["timeout"]} if "timeout" in d else {})},
}


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring a settings dict of any older schema up to `SCHEMA_VERSION`."""
    version = data.get("schema_version", 1)
    if not isinstance(version, int) or version < 1 or version > SCHEMA_VERSION:
        raise SettingsError("schema_version", f"unsupported version {version!r}")
    while version < SCHEMA_VERSION:
        version += 1
        data = _MIGRATIONS[version](data)
    data["schema_version"] = SCHEMA_VERSION
    return data


def _coerce(key: str, default: Any, value: Any) -> Any:
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, tuple):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        raise SettingsError(key, f"expected {type(default).__name__}, got {type(value).__name__}")
    return value


def load_settings(path: Path) -> Settings:
    """Load settings from `path`; a missing file gives the defaults, a broken one a `SettingsError`."""
    if not path.exists():
        return Settings()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SettingsError("(file)", f"cannot read {path}: {exc}") from exc
    return Settings.from_dict(raw)


def save_settings(path: Path, settings: Settings) -> None:
    """Validate and write atomically (temp file + rename)."""
    settings.validate()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(settings.to_dict(), fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def default_factory_fields() -> dict[str, Any]:
    """Defaults as a dict (used by the settings dialog to offer "reset")."""
    return Settings().to_dict()

