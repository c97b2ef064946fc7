"""Typed, immutable events for everything ComfyUI sends on its WebSocket, and the pure parsers that make them.

One frame in, one `ComfyEvent` out. `EventAttributor` adds the prompt id where ComfyUI leaves it out
(type-1 preview frames, the `executing` message sent after a reconnect).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

__all__ = [
    "ComfyEvent",
    "EventAttributor",
    "EventKind",
    "NodeProgress",
    "OutputImage",
    "images_from_output",
    "parse_binary_frame",
    "parse_message",
    "parse_text_frame",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})

# Binary frame types (ComfyUI's BinaryEventTypes); image formats of type-1 frames.
_PREVIEW_IMAGE = 1
_PREVIEW_WITH_METADATA = 4
_IMAGE_MIME = {1: "image/jpeg", 2: "image/png"}


class EventKind(StrEnum):
    """What one `ComfyEvent` says."""

    STATUS = "status"  # queue length changed (or the greeting after connect, with `sid`)
    EXECUTION_START = "execution_start"
    CACHED = "execution_cached"  # nodes reused from cache; a fully cached re-run lists all of them
    EXECUTING = "executing"  # a node started; `node is None` marks the end of the prompt
    PROGRESS = "progress"  # a node's step counter (samplers: one per step)
    PROGRESS_STATE = "progress_state"  # every node's value/max so far, resent in full
    EXECUTED = "executed"  # an output node finished; `images` names its files
    SUCCESS = "execution_success"
    INTERRUPTED = "execution_interrupted"
    ERROR = "execution_error"
    PREVIEW = "preview"  # a JPEG/PNG of the sampler's current state
    RECONNECTED = "reconnected"  # our socket is back; messages sent meanwhile are lost, poll history
    DISCONNECTED = "disconnected"  # our socket dropped (or could not connect)
    OTHER = "other"  # anything else (feature_flags, custom nodes' messages); see `raw`

    @property
    def is_terminal(self) -> bool:
        """True for success, interrupted and error — the prompt's last word."""
        return self in (EventKind.SUCCESS, EventKind.INTERRUPTED, EventKind.ERROR)


@dataclass(frozen=True, slots=True)
class OutputImage:
    """A file ComfyUI wrote, as `/view` wants it named."""

    filename: str
    subfolder: str = ""
    type: str = "output"

    @property
    def path(self) -> str:
        """`subfolder/filename` (just `filename` without a subfolder)."""
        return f"{self.subfolder}/{self.filename}" if self.subfolder else self.filename


@dataclass(frozen=True, slots=True)
class NodeProgress:
    """One node's entry in a `progress_state` message."""

    node: str
    value: float
    max: float
    state: str = ""


@dataclass(frozen=True, slots=True)
class ComfyEvent:
    """One message from ComfyUI (or from the stream itself: DISCONNECTED / RECONNECTED).

    Only the fields that belong to `kind` are set; `raw` keeps the message's `data` for logs and tests.
    """

    kind: EventKind
    prompt_id: str | None = None
    node: str | None = None
    value: float = 0.0
    max: float = 0.0
    images: tuple[OutputImage, ...] = ()
    cached_nodes: tuple[str, ...] = ()
    nodes: tuple[NodeProgress, ...] = ()
    error: str = ""
    exception_type: str = ""
    node_type: str = ""
    preview: bytes | None = None
    preview_mime: str = ""
    queue_remaining: int | None = None
    sid: str | None = None
    raw: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def __repr__(self) -> str:
        # Previews are ~40 KB each; keep reprs (and log lines) short.
        preview = f", preview={len(self.preview)}B {self.preview_mime}" if self.preview is not None else ""
        node = f", node={self.node!r}" if self.node is not None else ""
        progress = f", value={self.value:g}/{self.max:g}" if self.kind is EventKind.PROGRESS else ""
        error = f", error={self.error!r}" if self.error else ""
        return f"ComfyEvent({self.kind.name}, prompt_id={self.prompt_id!r}{node}{progress}{error}{preview})"


def parse_text_frame(text: str | bytes) -> ComfyEvent:
    """Parse one JSON text frame; malformed JSON becomes an OTHER event (never an exception)."""
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return ComfyEvent(EventKind.OTHER, error="unreadable text frame")
    return parse_message(message)


def parse_message(message: object) -> ComfyEvent:  # noqa: PLR0911 - one return per message type
    """Turn one decoded `{"type": ..., "data": {...}}` message into an event."""
    if not isinstance(message, dict):
        return ComfyEvent(EventKind.OTHER, error="message is not an object")
    kind_name = message.get("type")
    data = _dict(message.get("data"))
    raw: Mapping[str, Any] = MappingProxyType(data)
    prompt_id = _opt_str(data.get("prompt_id"))
    if kind_name == "status":
        remaining = _dict(_dict(data.get("status")).get("exec_info")).get("queue_remaining")
        return ComfyEvent(EventKind.STATUS, queue_remaining=remaining if isinstance(remaining, int) else None,
                          sid=_opt_str(data.get("sid")), raw=raw)
    if kind_name == "executing":
        return ComfyEvent(EventKind.EXECUTING, prompt_id=prompt_id, node=_opt_str(data.get("node")), raw=raw)
    if kind_name == "progress":
        return ComfyEvent(EventKind.PROGRESS, prompt_id=prompt_id, node=_opt_str(data.get("node")),
                          value=_num(data.get("value")), max=_num(data.get("max")), raw=raw)
    if kind_name == "progress_state":
        return ComfyEvent(EventKind.PROGRESS_STATE, prompt_id=prompt_id, nodes=_node_progress(data.get("nodes")),
                          raw=raw)
    if kind_name == "executed":
        return ComfyEvent(EventKind.EXECUTED, prompt_id=prompt_id, node=_opt_str(data.get("node")),
                          images=images_from_output(data.get("output")), raw=raw)
    if kind_name == "execution_cached":
        nodes = data.get("nodes")
        cached = tuple(str(n) for n in nodes) if isinstance(nodes, list) else ()
        return ComfyEvent(EventKind.CACHED, prompt_id=prompt_id, cached_nodes=cached, raw=raw)
    if kind_name == "execution_start":
        return ComfyEvent(EventKind.EXECUTION_START, prompt_id=prompt_id, raw=raw)
    if kind_name == "execution_success":
        return ComfyEvent(EventKind.SUCCESS, prompt_id=prompt_id, raw=raw)
    if kind_name == "execution_interrupted":
        return ComfyEvent(EventKind.INTERRUPTED, prompt_id=prompt_id, node=_opt_str(data.get("node_id")),
                          node_type=str(data.get("node_type") or ""), error="interrupted", raw=raw)
    if kind_name == "execution_error":
        return _error_event(prompt_id, data, raw)
    return ComfyEvent(EventKind.OTHER, prompt_id=prompt_id, raw=MappingProxyType({"type": kind_name, **data}))


def parse_binary_frame(frame: bytes) -> ComfyEvent:
    """Parse a binary frame: type 1 (`u32 type | u32 format | image`) or type 4 (`u32 type | u32 len | json | image`).

    Type-1 frames carry no prompt id; `EventAttributor` fills it in.
    """
    if len(frame) < 8:
        return ComfyEvent(EventKind.OTHER, error=f"short binary frame ({len(frame)} bytes)")
    frame_type, second = struct.unpack(">II", frame[:8])
    if frame_type == _PREVIEW_IMAGE:
        return ComfyEvent(EventKind.PREVIEW, preview=bytes(frame[8:]), preview_mime=_IMAGE_MIME.get(second, ""))
    if frame_type == _PREVIEW_WITH_METADATA and 8 + second <= len(frame):
        try:
            meta = json.loads(frame[8:8 + second])
        except (ValueError, UnicodeDecodeError):
            meta = None
        if isinstance(meta, dict):
            return ComfyEvent(EventKind.PREVIEW, prompt_id=_opt_str(meta.get("prompt_id")),
                              node=_opt_str(meta.get("node_id")), preview=bytes(frame[8 + second:]),
                              preview_mime=str(meta.get("image_type") or ""), raw=MappingProxyType(meta))
    return ComfyEvent(EventKind.OTHER, raw=MappingProxyType({"binary_type": frame_type, "length": len(frame)}))


def images_from_output(output: object) -> tuple[OutputImage, ...]:
    """The `images` of an `executed` message's `output` (or of a history entry's node output)."""
    if not isinstance(output, dict) or not isinstance(output.get("images"), list):
        return ()
    found: list[OutputImage] = []
    for item in output["images"]:
        if isinstance(item, dict) and isinstance(item.get("filename"), str) and item["filename"]:
            found.append(OutputImage(item["filename"], str(item.get("subfolder") or ""),
                                     str(item.get("type") or "output")))
    return tuple(found)


class EventAttributor:
    """Fills in the prompt id ComfyUI leaves out, from the most recent `executing` it saw.

    Not thread-safe: the stream's reader thread owns it.
    """

    def __init__(self) -> None:
        self._running: str | None = None
        self._node: str | None = None

    @property
    def running_prompt(self) -> str | None:
        """The prompt we last saw start or execute a node and not yet end."""
        return self._running

    def assume_running(self, prompt_id: str | None) -> None:
        """Set the running prompt from elsewhere (after a reconnect, from `GET /queue`); None: none of ours runs."""
        if prompt_id != self._running:
            self._running, self._node = prompt_id, None

    def attribute(self, event: ComfyEvent) -> ComfyEvent:
        """Return `event`, with `prompt_id` (and for previews `node`) filled in where missing."""
        kind = event.kind
        if kind in (EventKind.EXECUTION_START, EventKind.CACHED) and event.prompt_id:
            self._running, self._node = event.prompt_id, None
        elif kind is EventKind.EXECUTING:
            if event.prompt_id is None and event.node is not None:  # the reconnect greeting
                event = replace(event, prompt_id=self._running)
            elif event.node is None:
                if event.prompt_id in (None, self._running):
                    event = replace(event, prompt_id=event.prompt_id or self._running)
                    self._running = self._node = None
                return event
            else:
                self._running = event.prompt_id
            self._node = event.node
        elif kind in (EventKind.PROGRESS, EventKind.PROGRESS_STATE):
            if event.prompt_id is None:
                event = replace(event, prompt_id=self._running)
            elif kind is EventKind.PROGRESS:
                # Only one prompt runs at a time, and a step's preview follows its progress message; this
                # also covers prompts queued without a client_id, whose `executing` reaches nobody.
                self._running, self._node = event.prompt_id, event.node or self._node
        elif kind is EventKind.PREVIEW and event.prompt_id is None:
            event = replace(event, prompt_id=self._running, node=event.node or self._node)
        return event


def _error_event(prompt_id: str | None, data: dict[str, Any], raw: Mapping[str, Any]) -> ComfyEvent:
    node_type = str(data.get("node_type") or "")
    exception_type = str(data.get("exception_type") or "")
    message = str(data.get("exception_message") or "").strip() or "execution failed"
    where = f"{node_type} (node {data.get('node_id')})" if node_type else f"node {data.get('node_id')}"
    short_type = exception_type.rsplit(".", 1)[-1]
    text = f"{where}: {short_type}: {message}" if short_type else f"{where}: {message}"
    return ComfyEvent(EventKind.ERROR, prompt_id=prompt_id, node=_opt_str(data.get("node_id")), node_type=node_type,
                      error=" ".join(text.split()), exception_type=exception_type, raw=raw)


def _node_progress(raw: object) -> tuple[NodeProgress, ...]:
    if not isinstance(raw, dict):
        return ()
    return tuple(NodeProgress(str(node), _num(entry.get("value")), _num(entry.get("max")),
                              str(entry.get("state") or ""))
                 for node, entry in raw.items() if isinstance(entry, dict))


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _num(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _opt_str(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)
