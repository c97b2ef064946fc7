"""The exceptions the ComfyUI client raises; built once from the HTTP reply so callers never read raw responses.

`ComfyError` is the base. `ComfyUnavailable` means "could not talk to ComfyUI" (retry later),
`ComfyHTTPError` means "ComfyUI answered with an error status", and `ComfyValidationError` (a 400) means
"ComfyUI rejected what we sent" — retrying the same request will not help.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ComfyError",
    "ComfyHTTPError",
    "ComfyUnavailable",
    "ComfyValidationError",
    "NodeError",
    "decode_node_errors",
    "encode_node_errors",
    "error_from_reply",
    "parse_node_errors",
]

# A value_not_in_list error lists every allowed model name; keep the one-line message readable.
_MAX_DETAIL_CHARS = 160
# Where the user changes a loader's file when ComfyUI does not have the one we sent.
_TEXT_ENCODER_HINT = "pick a text encoder for this model in the prompt panel or `submit --text-encoder`"
_PICK_HINTS = {"clip_name": _TEXT_ENCODER_HINT, "clip_name2": _TEXT_ENCODER_HINT,
               "clip_name1": "set `flux_clip_l` in Settings",
               "vae_name": "pick a VAE for this model in the prompt panel or `submit --vae`"}


class ComfyError(Exception):
    """Anything that went wrong talking to ComfyUI."""


class ComfyUnavailable(ComfyError):
    """ComfyUI could not be reached (refused, reset, DNS, timeout)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"ComfyUI is not reachable at {url}: {reason}")
        self.url = url
        self.reason = reason


class ComfyHTTPError(ComfyError):
    """ComfyUI answered with an error status (or with a body we cannot read)."""

    def __init__(self, method: str, path: str, status: int, body: str = "", message: str = "") -> None:
        text = message or f"ComfyUI answered {method} {path} with HTTP {status}"
        if body and not message:
            text += f": {_one_line(body)}"
        super().__init__(text)
        self.method = method
        self.path = path
        self.status = status
        self.body = body


@dataclass(frozen=True, slots=True)
class NodeError:
    """One problem ComfyUI found with one input of one node."""

    node_id: str
    class_type: str
    error_type: str
    message: str
    details: str = ""
    input_name: str = ""
    received_value: Any = None

    def describe(self) -> str:
        """`node 4 (CheckpointLoaderSimple) input 'ckpt_name': Value not in list: <details>`."""
        where = f"node {self.node_id} ({self.class_type or '?'})"
        if self.input_name:
            where += f" input {self.input_name!r}"
        reason = self.message or self.error_type or "invalid"
        # ComfyUI often repeats just the input name as details; only add details that say more.
        if self.details and self.details != self.input_name:
            reason += f": {_shorten(_one_line(self.details))}"
        hint = _PICK_HINTS.get(self.input_name) if self.error_type == "value_not_in_list" else None
        return f"{where}: {reason}" + (f" ({hint})" if hint else "")


class ComfyValidationError(ComfyHTTPError):
    """ComfyUI rejected a request with HTTP 400; for `POST /prompt` this carries the node errors.

    `str(error)` is one line for people; `details` is ComfyUI's full reply for the log.
    """

    def __init__(self, method: str, path: str, body: str, data: dict[str, Any] | None) -> None:
        data = data or {}
        error = _dict(data.get("error"))
        self.error_type: str = str(error.get("type") or "")
        self.error_message: str = str(error.get("message") or "")
        self.error_details: str = str(error.get("details") or "")
        self.node_errors: tuple[NodeError, ...] = parse_node_errors(data.get("node_errors"))
        self.details: dict[str, Any] = data
        super().__init__(method, path, 400, body, message=self._summary(method, path))

    def _summary(self, method: str, path: str) -> str:
        if self.node_errors:
            problems = "; ".join(error.describe() for error in self.node_errors)
            return f"ComfyUI rejected the workflow: {problems}"
        if self.error_message:
            text = self.error_message.rstrip(".")
            if self.error_details and self.error_details != self.error_message:
                text += f" ({_shorten(_one_line(self.error_details))})"
            return f"ComfyUI rejected the workflow: {text}"
        return f"ComfyUI rejected {method} {path} (HTTP 400, no details)"


def parse_node_errors(raw: object) -> tuple[NodeError, ...]:
    """Flatten ComfyUI's `node_errors` object into one `NodeError` per reported problem, by node id."""
    if not isinstance(raw, dict):
        return ()
    found: list[NodeError] = []
    for node_id, entry in sorted(raw.items(), key=lambda item: _node_sort_key(str(item[0]))):
        if not isinstance(entry, dict):
            continue
        class_type = str(entry.get("class_type") or "")
        errors = entry.get("errors")
        for error in errors if isinstance(errors, list) else []:
            if not isinstance(error, dict):
                continue
            extra = _dict(error.get("extra_info"))
            found.append(NodeError(
                node_id=str(node_id),
                class_type=class_type,
                error_type=str(error.get("type") or ""),
                message=str(error.get("message") or ""),
                details=str(error.get("details") or ""),
                input_name=str(extra.get("input_name") or ""),
                received_value=extra.get("received_value"),
            ))
    return tuple(found)


def encode_node_errors(errors: tuple[NodeError, ...]) -> str:
    """The node errors as the JSON text a failed job keeps in Redis (`node_errors`), for any window to read."""
    return json.dumps([{"node_id": e.node_id, "class_type": e.class_type, "error_type": e.error_type,
                        "message": e.message, "details": e.details, "input_name": e.input_name,
                        "received_value": _scalar(e.received_value)} for e in errors], ensure_ascii=False)


def decode_node_errors(text: str) -> tuple[NodeError, ...]:
    """Read `encode_node_errors` text back; () for anything else (older one-line-per-node text, damage).

    The text comes from Redis, so every field's type is checked exactly; one bad entry discards only itself.
    """
    try:
        raw = json.loads(text) if text.startswith("[") else None
    except ValueError:
        return ()
    if not isinstance(raw, list):
        return ()
    found: list[NodeError] = []
    for entry in raw:
        if not isinstance(entry, dict):
            continue
        texts = {key: entry.get(key) for key in _TEXT_FIELDS}
        value = entry.get("received_value")
        if not all(isinstance(part, str) for part in texts.values()) or not _is_scalar(value):
            continue
        found.append(NodeError(node_id=str(texts["node_id"]), class_type=str(texts["class_type"]),
                               error_type=str(texts["error_type"]), message=str(texts["message"]),
                               details=str(texts["details"]), input_name=str(texts["input_name"]),
                               received_value=value))
    return tuple(found)


_TEXT_FIELDS = ("node_id", "class_type", "error_type", "message", "details", "input_name")


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _scalar(value: object) -> str | int | float | bool | None:
    """ComfyUI echoes what it received; keep it when it is a plain value, its text otherwise."""
    return value if _is_scalar(value) else _shorten(_one_line(repr(value)))  # type: ignore[return-value]


def error_from_reply(method: str, path: str, status: int, body: str) -> ComfyHTTPError:
    """The exception for a non-2xx reply: `ComfyValidationError` for 400, `ComfyHTTPError` otherwise."""
    if status == 400:
        return ComfyValidationError(method, path, body, _json_object(body))
    return ComfyHTTPError(method, path, status, body)


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _json_object(body: str) -> dict[str, Any] | None:
    try:
        data = json.loads(body) if body else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _node_sort_key(node_id: str) -> tuple[int, str]:
    return (int(node_id), "") if node_id.isdigit() else (1 << 62, node_id)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL_CHARS else text[: _MAX_DETAIL_CHARS - 1] + "…"
