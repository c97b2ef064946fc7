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
    "error_from_reply",
    "parse_node_errors",
]

# A value_not_in_list error lists every allowed model name; keep the one-line message readable.
_MAX_DETAIL_CHARS = 160


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
        return f"{where}: {reason}"


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
