"""The recorded ComfyUI 0.3.64 exchanges as test data, and checks that every recorded frame parses.

Other `test_comfy_*` modules import the loaders here (`transcript`, `ws_frames`, `ws_events`, `http_reply`).
The recordings are test fixtures in tests/fixtures/comfyui/transcripts; a missing one fails the test that needs it.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from comfystudio_desktop.comfy.comfy_events import (
    ComfyEvent,
    EventAttributor,
    EventKind,
    parse_binary_frame,
    parse_text_frame,
)
from tests.conftest import COMFY_TRANSCRIPTS

TRANSCRIPTS = COMFY_TRANSCRIPTS
ALL = sorted(p.name for p in TRANSCRIPTS.glob("*.json"))


def transcript(name: str) -> dict[str, Any]:
    """One recording (`header` + `events`); a missing file fails the test (FileNotFoundError)."""
    path = TRANSCRIPTS / name
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def synth_binary(message: dict[str, Any]) -> bytes:
    """Rebuild a recorded binary frame (the recording keeps its header, metadata and size, not the image)."""
    image_start = bytes.fromhex(message.get("image_first_4_bytes_hex", "ffd8ffe0"))
    if message["event_type_int"] == 4:
        meta = json.dumps(message["metadata_json"]).encode()
        head = struct.pack(">II", 4, len(meta)) + meta
    else:
        head = bytes.fromhex(message["first_8_bytes_hex"])
    body = image_start + b"\0" * max(0, message["length"] - len(head) - len(image_start))
    return bytes(head + body)


def ws_frames(name: str, ws: str | None = None) -> list[str | bytes]:
    """The frames one socket received, in order: JSON text, or rebuilt binary previews."""
    frames: list[str | bytes] = []
    for event in transcript(name)["events"]:
        if event["type"] != "ws_recv" or (ws is not None and event["ws"] != ws):
            continue
        message = event["message"]
        frames.append(synth_binary(message) if message.get("binary") else json.dumps(message))
    return frames


def parse_frame(frame: str | bytes) -> ComfyEvent:
    """Text or binary, as the stream does."""
    return parse_binary_frame(frame) if isinstance(frame, bytes) else parse_text_frame(frame)


def ws_events(name: str, ws: str | None = None, attributor: EventAttributor | None = None) -> list[ComfyEvent]:
    """The frames of one socket parsed and attributed, as `ComfyEventStream` would hand them out."""
    attributor = attributor or EventAttributor()
    return [attributor.attribute(parse_frame(frame)) for frame in ws_frames(name, ws)]


def http_reply(name: str, method: str, path: str, label: str | None = None, index: int = 0) -> dict[str, Any]:
    """A recorded HTTP exchange (request and reply) by method, path and optionally label."""
    found: list[dict[str, Any]] = [e for e in transcript(name)["events"]
                                   if e["type"] == "http" and e["method"] == method and e["path"] == path
                                   and (label is None or e.get("label") == label)]
    return found[index]


# ---- every recorded frame parses ------------------------------------------------------------------------------

_KIND_OF_TYPE = {
    "status": EventKind.STATUS, "execution_start": EventKind.EXECUTION_START, "execution_cached": EventKind.CACHED,
    "executing": EventKind.EXECUTING, "progress": EventKind.PROGRESS, "progress_state": EventKind.PROGRESS_STATE,
    "executed": EventKind.EXECUTED, "execution_success": EventKind.SUCCESS,
    "execution_interrupted": EventKind.INTERRUPTED, "execution_error": EventKind.ERROR,
    "feature_flags": EventKind.OTHER,
}


@pytest.mark.parametrize("name", ALL)
def test_every_recorded_frame_parses_to_its_kind(name: str) -> None:
    for event in transcript(name)["events"]:
        if event["type"] != "ws_recv":
            continue
        message = event["message"]
        if message.get("binary"):
            parsed = parse_binary_frame(synth_binary(message))
            assert parsed.kind is EventKind.PREVIEW
            assert parsed.preview is not None and parsed.preview.startswith(b"\xff\xd8\xff\xe0")
            assert parsed.preview_mime == "image/jpeg"
            continue
        parsed = parse_text_frame(json.dumps(message))
        assert parsed.kind is _KIND_OF_TYPE[message["type"]], message
        assert parsed.prompt_id == message["data"].get("prompt_id")
        assert dict(parsed.raw) == message["data"] or parsed.kind is EventKind.OTHER


def test_transcripts_are_present() -> None:
    assert ALL == ["a_info_endpoints.json", "b_t2i_checkpoint.json", "c_t2i_cached_rerun.json",
                   "d_upload_img2img.json", "e_unet_clip_vae_loaders.json", "f_interrupt.json", "g_queue_delete.json",
                   "h_errors.json", "i_ws_without_client_id.json", "j_history_view_misc.json",
                   "k_feature_flags_previews.json", "l_ws_reconnect_midrun.json"], TRANSCRIPTS
