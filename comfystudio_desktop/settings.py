"""Typed settings saved as JSON with a schema version and migrations.

Only user choices live here; window geometry and similar UI state go to QSettings.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import stat
import tempfile
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from comfystudio_desktop.active_hours import ActiveHoursError, parse_active_hours
from comfystudio_desktop.backend_settings import (
    Backend,
    BackendError,
    backends_from_json,
    backends_to_json,
    legacy_backend,
)
from comfystudio_desktop.file_replace import replace_file

__all__ = [
    "RESTART_FIELDS",
    "SCHEMA_VERSION",
    "UNET_PART_KEYS",
    "Settings",
    "SettingsError",
    "format_setting",
    "is_bind_host",
    "is_loopback_host",
    "is_model_file_name",
    "is_web_origin",
    "load_settings",
    "parse_setting",
    "parse_setting_value",
    "save_settings",
]

SCHEMA_VERSION = 3
MAX_CONFIG_BYTES = 1024 * 1024
#: Settings a running window or worker only uses at start: changing them takes effect after a restart.
#: Every other setting is picked up while running (see `settings_watch`).
RESTART_FIELDS: frozenset[str] = frozenset({
    "comfy_url", "comfy_mode", "comfy_python", "comfy_main", "comfy_args", "comfy_port", "metrics_port",
    "redis_mode", "redis_url", "redis_binary", "storage_dir",
    "api_enabled", "api_host", "api_port", "api_allowed_origins", "api_expose_confirmed", "backends",
})
_INT_TEXT = re.compile(r"[+-]?[0-9]{1,19}")
_FLOAT_TEXT = re.compile(r"[+-]?(?:[0-9]{1,20}(?:\.[0-9]{0,20})?|\.[0-9]{1,20})(?:[eE][+-]?[0-9]{1,3})?")
_BOOL_TEXT = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


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
    # UNET models load their text encoder and VAE separately; empty = chosen from what ComfyUI has installed
    unet_text_encoder: str = ""  # used for every UNET model of a fitting family without its own choice
    unet_vae: str = ""
    flux_clip_l: str = ""
    # The text encoder / VAE picked per UNET model in the prompt panel: {model: {"text_encoder": f, "vae": f}}
    unet_parts: dict[str, dict[str, str]] = field(default_factory=dict)
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
    result_cache: bool = True  # an identical finished job's output is reused instead of running it again
    active_hours: str = ""  # "22:00-07:00": workers take jobs only then (local time); "" = at all hours
    # Desktop
    notifications: bool = True
    close_to_tray: bool = False
    # The local HTTP API (comfystudio_desktop/api): off by default, loopback only unless confirmed
    api_enabled: bool = False
    api_host: str = "127.0.0.1"
    api_port: int = 5000  # the seed's backend port: its scripts and pages reach us unchanged
    api_allowed_origins: tuple[str, ...] = ()  # CORS: browser origins allowed to call the API; none by default
    api_expose_confirmed: bool = False  # must be true for an api_host other than a loopback address

    metrics_port: int = 0  # Prometheus text on 127.0.0.1:<port> while the window runs; 0 = off

    theme: str = "system"  # system: follow the OS light/dark scheme; light or dark: force one
    first_run_done: bool = False  # the first-run assistant was finished or skipped

    # Several ComfyUIs fed by one queue (see backend_settings); empty: the single ComfyUI above
    backends: tuple[Backend, ...] = ()

    def validate(self) -> Settings:
        """Raise `SettingsError` naming the first invalid field, else return self."""
        for name, check, message in _RULES:
            if not check(getattr(self, name)):
                raise SettingsError(name, message)
        if self.redis_mode == "external" and not self.redis_url:
            raise SettingsError("redis_url", "is required when redis_mode is 'external'")
        if self.comfy_mode == "managed" and not self.comfy_main:
            raise SettingsError("comfy_main", "is required when comfy_mode is 'managed'")
        if not is_loopback_host(self.api_host) and not self.api_expose_confirmed:
            raise SettingsError("api_host", "an address other than 127.0.0.1/::1/localhost exposes the API to the "
                                            "network; set api_expose_confirmed to true to allow it")
        try:
            backends_from_json(backends_to_json(self.backends))  # each valid, names unique
        except BackendError as exc:
            raise SettingsError("backends", str(exc)) from None
        return self

    def all_backends(self) -> tuple[Backend, ...]:
        """The configured backends; without any, the single ComfyUI of `comfy_url` as one named "local"."""
        if self.backends:
            return self.backends
        return backends_from_json([legacy_backend({"comfy_url": self.comfy_url, "comfy_mode": self.comfy_mode,
                                                   "comfy_main": self.comfy_main or "main.py",
                                                   "comfy_python": self.comfy_python, "comfy_port": self.comfy_port,
                                                   "pipeline_depth": self.pipeline_depth})])

    def backend(self, name: str) -> Backend:
        """The backend called `name`; SettingsError if there is none."""
        for backend in self.all_backends():
            if backend.name == name:
                return backend
        known = ", ".join(b.name for b in self.all_backends())
        raise SettingsError("backends", f"no backend named {name!r} (known: {known})")

    def with_changes(self, **changes: Any) -> Settings:
        """A validated copy with some fields changed."""
        return replace(self, **changes).validate()

    def unet_choice(self, model: str) -> dict[str, str]:
        """The text encoder / VAE remembered for a UNET model (missing parts: automatic)."""
        return dict(self.unet_parts.get(model, {}))

    def with_unet_choice(self, model: str, text_encoder: str, vae: str) -> Settings:
        """A validated copy remembering `model`'s parts; both "" forgets the model."""
        parts = {model_name: dict(choice) for model_name, choice in self.unet_parts.items()}
        parts.pop(model, None)
        if text_encoder or vae:
            parts[model] = {"text_encoder": text_encoder, "vae": vae}
        return self.with_changes(unet_parts=parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        data = asdict(self)
        data["comfy_args"] = list(self.comfy_args)
        data["backends"] = backends_to_json(self.backends)
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
        raw_backends = data.pop("backends", [])
        for key, value in data.items():
            spec = known[key]
            default = spec.default_factory() if spec.default is MISSING and spec.default_factory is not MISSING \
                else spec.default
            typed[key] = _coerce(key, default, value)
        settings = cls(**typed).validate()  # the other fields first: their messages name them
        try:
            return replace(settings, backends=backends_from_json(raw_backends))
        except BackendError as exc:
            raise SettingsError("backends", str(exc)) from None


def _is_http_url(value: str) -> bool:
    parsed = urlparse(value)
    return parsed.scheme in ("http", "https") and bool(parsed.hostname)


_FILE_NAME_RE = re.compile(r"[^\x00-\x1f<>:\"|?*]{1,255}")
UNET_PART_KEYS = ("text_encoder", "vae")


def is_model_file_name(value: object) -> bool:
    """A model file name as ComfyUI lists it: relative, '/' or '\\' separated, no '..' part."""
    if not isinstance(value, str) or not _FILE_NAME_RE.fullmatch(value) or value.startswith(("/", "\\")):
        return False
    return all(part not in ("", ".", "..") for part in re.split(r"[/\\]", value))


def _are_unet_parts(value: object) -> bool:
    """`{model: {"text_encoder": file, "vae": file}}`; either part may be missing or "" (automatic)."""
    if not isinstance(value, dict) or len(value) > 10_000:
        return False
    for model, parts in value.items():
        if not is_model_file_name(model) or not isinstance(parts, dict) or not set(parts) <= set(UNET_PART_KEYS):
            return False
        if not all(part == "" or is_model_file_name(part) for part in parts.values()):
            return False
    return True


def _is_file_or_empty(value: object) -> bool:
    return value == "" or is_model_file_name(value)


_ORIGIN_RE = re.compile(r"https?://(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.?)*|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")
_HOST_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*")


def is_loopback_host(value: object) -> bool:
    """True for an address only this machine can reach: 127.0.0.0/8, ::1 or `localhost`."""
    if value == "localhost":
        return True
    try:
        return isinstance(value, str) and ipaddress.ip_address(value).is_loopback
    except ValueError:
        return False


def is_bind_host(value: object) -> bool:
    """An address to listen on: an IPv4/IPv6 literal or a host name (no scheme, port or spaces)."""
    if not isinstance(value, str) or len(value) > 253:
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return _HOST_NAME_RE.fullmatch(value) is not None
    return True


def is_web_origin(value: object) -> bool:
    """A browser origin as sent in the `Origin` header: `scheme://host[:port]`, no path."""
    return isinstance(value, str) and _ORIGIN_RE.fullmatch(value) is not None


def _is_active_hours(value: str) -> bool:
    try:
        parse_active_hours(value)
    except ActiveHoursError:
        return False
    return True


def _is_redis_url(value: str) -> bool:
    return value == "" or urlparse(value).scheme in ("redis", "rediss", "unix")


_RULES: list[tuple[str, Callable[[Any], bool], str]] = [
    ("schema_version", lambda v: v == SCHEMA_VERSION, f"must be {SCHEMA_VERSION}"),
    ("comfy_url", _is_http_url, "must be an http:// or https:// URL"),
    ("comfy_mode", lambda v: v in ("external", "managed"), "must be 'external' or 'managed'"),
    ("comfy_port", lambda v: 0 <= v <= 65535, "must be 0..65535"),
    ("unet_text_encoder", _is_file_or_empty, "must be empty (automatic) or a file name as ComfyUI lists it"),
    ("unet_vae", _is_file_or_empty, "must be empty (automatic) or a file name as ComfyUI lists it"),
    ("flux_clip_l", _is_file_or_empty, "must be empty (automatic) or a file name as ComfyUI lists it"),
    ("unet_parts", _are_unet_parts,
     'must map model file names to {"text_encoder": file, "vae": file} (either may be "" for automatic)'),
    ("theme", lambda v: v in ("system", "light", "dark"), "must be 'system', 'light' or 'dark'"),
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
    ("metrics_port", lambda v: v == 0 or 1024 <= v <= 65535, "must be 0 (off) or 1024..65535"),
    ("api_host", is_bind_host, "must be an IP address or a host name, such as 127.0.0.1"),
    ("api_port", lambda v: 1 <= v <= 65535, "must be 1..65535"),
    ("api_allowed_origins", lambda v: len(v) <= 64 and all(is_web_origin(o) for o in v),
     "must be origins such as http://localhost:3000 (scheme://host[:port], no path), at most 64"),
    ("active_hours", lambda v: _is_active_hours(v), 'must be "" (always) or HH:MM-HH:MM, such as 22:00-07:00'),
]

# Each migration takes a dict of version N-1 and returns version N.
_MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    # v1 had a single "timeout" in seconds and no pipelining.
    2: lambda d: {**{k: v for k, v in d.items() if k != "timeout"},
                  **({"job_timeout_s": d["timeout"]} if "timeout" in d else {})},
    # v3 feeds a list of backends: the single ComfyUI of v2 becomes one backend named "local".
    3: lambda d: {**d, "backends": d.get("backends", [legacy_backend(d)])},
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
    elif isinstance(default, dict):
        ok = isinstance(value, dict)  # the content is checked by `validate`, whose message says what is expected
        value = {model: dict(parts) if isinstance(parts, dict) else parts for model, parts in value.items()} \
            if ok else value
    elif isinstance(default, tuple):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        raise SettingsError(key, f"expected {type(default).__name__}, got {type(value).__name__}")
    return value


def parse_setting(name: str, text: str, current: Settings | None = None) -> Settings:
    """`current` (default: the defaults) with setting `name` set from the text `text`, all validated.

    The one way a typed-in value becomes a setting, for the settings dialog and `config set`; errors are
    `SettingsError` naming the field.
    """
    base = current if current is not None else Settings()
    return replace(base, **{name: parse_setting_value(name, text)}).validate()


def parse_setting_value(name: str, text: str) -> Any:
    """The text `text` read strictly as setting `name`'s type (ASCII whole numbers, finite numbers,
    true/false, space-separated arguments); `SettingsError` if it is not one. The field's own rule (its range)
    is checked by `Settings.validate`.
    """
    known = {f.name: f for f in fields(Settings)}
    if name not in known or name == "schema_version":
        raise SettingsError(name, "unknown setting")
    if name == "backends":  # a JSON list of backend objects
        try:
            return backends_from_json(json.loads(text))
        except (ValueError, RecursionError) as exc:  # BackendError is a ValueError
            raise SettingsError(name, str(exc) if isinstance(exc, BackendError) else "must be a JSON list") from None
    if known[name].default_factory is dict:  # a mapping (unet_parts) is given as a JSON object
        return _parse_mapping(name, text)
    value = _parse_scalar(name, known[name].default, text)
    if any(not ch.isprintable() for ch in text.strip()):
        raise SettingsError(name, "must not contain control characters")
    return value


def _parse_mapping(name: str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise SettingsError(name, "must be a JSON object") from exc
    if not isinstance(value, dict):
        raise SettingsError(name, "must be a JSON object")
    return value


def _parse_scalar(name: str, default: object, text: str) -> Any:
    """`text` as a value of `default`'s type: true/false, a whole number, a finite number, arguments, or text."""
    value: Any
    if isinstance(default, bool):
        if text.strip().lower() not in _BOOL_TEXT:
            raise SettingsError(name, "must be true or false")
        value = _BOOL_TEXT[text.strip().lower()]
    elif isinstance(default, int):
        if not _INT_TEXT.fullmatch(text.strip()):
            raise SettingsError(name, "must be a whole number")
        value = int(text.strip())
    elif isinstance(default, float):
        if not _FLOAT_TEXT.fullmatch(text.strip()) or not math.isfinite(float(text.strip())):
            raise SettingsError(name, "must be a number")
        value = float(text.strip())
    elif isinstance(default, tuple):
        value = tuple(text.split())  # as the dialog always did: Windows paths keep their backslashes
    else:
        value = text.strip()
    return value


def format_setting(settings: Settings, name: str) -> str:
    """The value of setting `name` as text that `parse_setting` reads back to the same value."""
    value = getattr(settings, name)
    if isinstance(value, bool):
        return "true" if value else "false"
    if name == "backends":
        return json.dumps(backends_to_json(value), ensure_ascii=False)
    if isinstance(value, tuple):
        return " ".join(value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def load_settings(path: Path) -> Settings:
    """Load settings from `path`; a missing file gives the defaults, a broken one a `SettingsError`."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError) as exc:
        raise SettingsError("(file)", f"cannot read {path}: {exc}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise SettingsError("(file)", f"{path} is not a regular file")
    if info.st_size > MAX_CONFIG_BYTES:
        raise SettingsError("(file)", f"{path} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        raw = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise SettingsError("(file)", f"cannot read {path}: {exc}") from exc
    except RecursionError:
        raise SettingsError("(file)", f"cannot read {path}: JSON nested too deeply") from None
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
    try:
        replace_file(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
