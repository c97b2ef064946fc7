"""Parsing ComfyUI WebSocket frames into `ComfyEvent`s, and attributing frames that lack a prompt id."""

from __future__ import annotations

import dataclasses
import json
import struct

import pytest

from comfystudio_desktop.comfy.comfy_events import (
    ComfyEvent,
    EventAttributor,
    EventKind,
    NodeProgress,
    OutputImage,
    images_from_output,
    parse_binary_frame,
    parse_message,
    parse_text_frame,
)
from tests.test_comfy_transcripts import transcript, ws_events

B_ID = "rec-t2i-72e50b3d"


def _msg(kind: str, **data: object) -> ComfyEvent:
    return parse_message({"type": kind, "data": data})


def test_events_are_immutable_and_repr_is_short() -> None:
    event = parse_binary_frame(struct.pack(">II", 1, 1) + b"\xff\xd8" + b"x" * 40_000)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.prompt_id = "x"  # type: ignore[misc]
    assert len(repr(event)) < 120


@pytest.mark.parametrize(("message", "expected"), [
    ({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 2}}, "sid": "abc"}},
     {"kind": EventKind.STATUS, "queue_remaining": 2, "sid": "abc"}),
    ({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}}},
     {"kind": EventKind.STATUS, "queue_remaining": 0, "sid": None}),
    ({"type": "executing", "data": {"node": "3", "display_node": "3", "prompt_id": "p"}},
     {"kind": EventKind.EXECUTING, "node": "3", "prompt_id": "p"}),
    ({"type": "executing", "data": {"node": None, "prompt_id": "p"}},
     {"kind": EventKind.EXECUTING, "node": None, "prompt_id": "p"}),
    ({"type": "progress", "data": {"value": 3, "max": 30, "prompt_id": "p", "node": "3"}},
     {"kind": EventKind.PROGRESS, "value": 3.0, "max": 30.0, "node": "3"}),
    ({"type": "execution_cached", "data": {"nodes": ["4", "6"], "prompt_id": "p", "timestamp": 1}},
     {"kind": EventKind.CACHED, "cached_nodes": ("4", "6")}),
    ({"type": "execution_start", "data": {"prompt_id": "p", "timestamp": 1}},
     {"kind": EventKind.EXECUTION_START, "prompt_id": "p"}),
    ({"type": "execution_success", "data": {"prompt_id": "p", "timestamp": 1}},
     {"kind": EventKind.SUCCESS, "prompt_id": "p"}),
    ({"type": "execution_interrupted", "data": {"prompt_id": "p", "node_id": "3", "node_type": "KSampler",
                                                "executed": [], "timestamp": 1}},
     {"kind": EventKind.INTERRUPTED, "node": "3", "node_type": "KSampler", "error": "interrupted"}),
    ({"type": "crystools.monitor", "data": {"cpu_utilization": 3}},
     {"kind": EventKind.OTHER, "prompt_id": None}),
    ({"type": "feature_flags", "data": {"supports_preview_metadata": True, "max_upload_size": 1}},
     {"kind": EventKind.OTHER}),
    ("not an object", {"kind": EventKind.OTHER}),
    ({"data": {}}, {"kind": EventKind.OTHER}),
])
def test_parse_message(message: object, expected: dict[str, object]) -> None:
    event = parse_message(message)
    for name, value in expected.items():
        assert getattr(event, name) == value, name


def test_progress_state_lists_every_node() -> None:
    event = _msg("progress_state", prompt_id="p", nodes={
        "4": {"value": 1.0, "max": 1.0, "state": "finished", "node_id": "4"},
        "3": {"value": 2, "max": 4, "state": "running", "node_id": "3"},
    })
    assert event.kind is EventKind.PROGRESS_STATE
    assert event.nodes == (NodeProgress("4", 1.0, 1.0, "finished"), NodeProgress("3", 2.0, 4.0, "running"))


def test_executed_names_its_images() -> None:
    event = _msg("executed", node="9", prompt_id="p", output={"images": [
        {"filename": "a_00001_.png", "subfolder": "comfystudio", "type": "output"},
        {"filename": "", "subfolder": "", "type": "output"},  # ignored: no file name
    ]})
    assert event.images == (OutputImage("a_00001_.png", "comfystudio", "output"),)
    assert event.images[0].path == "comfystudio/a_00001_.png"
    assert images_from_output({"text": ["hello"]}) == ()


def test_recorded_execution_error_becomes_one_line() -> None:
    events = ws_events("h_errors.json")
    error = next(e for e in events if e.kind is EventKind.ERROR)
    assert error.prompt_id == "9c722375-d831-4b44-ac5e-83152661fae4"
    assert error.node == "4" and error.node_type == "CheckpointLoaderSimple"
    assert error.error == ("CheckpointLoaderSimple (node 4): SafetensorError: Error while deserializing header: "
                           "header too large")
    assert error.exception_type == "safetensors._safetensors_rust.SafetensorError"
    assert "traceback" in error.raw  # the full report stays available for the log


def test_malformed_text_frame_is_other_not_an_exception() -> None:
    assert parse_text_frame("{not json").kind is EventKind.OTHER
    assert parse_text_frame(b"\xff\xfe").kind is EventKind.OTHER


@pytest.mark.parametrize(("frame", "kind", "mime", "payload", "prompt_id"), [
    (struct.pack(">II", 1, 1) + b"\xff\xd8JPEG", EventKind.PREVIEW, "image/jpeg", b"\xff\xd8JPEG", None),
    (struct.pack(">II", 1, 2) + b"\x89PNG", EventKind.PREVIEW, "image/png", b"\x89PNG", None),
    (struct.pack(">II", 1, 9) + b"??", EventKind.PREVIEW, "", b"??", None),
    (struct.pack(">II", 4, 38) + b'{"prompt_id":"p","image_type":"image/x"}'[:38] + b"IMG", EventKind.OTHER,
     "", None, None),  # metadata cut short: not valid JSON
    (struct.pack(">II", 3, 1) + b"3text", EventKind.OTHER, "", None, None),  # progress text: not a preview
    (b"\x00\x00\x00", EventKind.OTHER, "", None, None),
    (struct.pack(">II", 4, 500) + b"{}", EventKind.OTHER, "", None, None),  # length beyond the frame
])
def test_parse_binary_frame(frame: bytes, kind: EventKind, mime: str, payload: bytes | None,
                            prompt_id: str | None) -> None:
    event = parse_binary_frame(frame)
    assert event.kind is kind
    assert event.preview_mime == mime
    assert event.preview == payload
    assert event.prompt_id == prompt_id


def test_type4_preview_names_prompt_and_node() -> None:
    meta = json.dumps({"node_id": "3", "prompt_id": "p4", "display_node_id": "3", "parent_node_id": None,
                       "real_node_id": "3", "image_type": "image/jpeg"}).encode()
    event = parse_binary_frame(struct.pack(">II", 4, len(meta)) + meta + b"\xff\xd8rest")
    assert (event.kind, event.prompt_id, event.node, event.preview_mime, event.preview) == (
        EventKind.PREVIEW, "p4", "3", "image/jpeg", b"\xff\xd8rest")


def test_recorded_type4_previews_carry_their_prompt() -> None:
    events = ws_events("k_feature_flags_previews.json")
    previews = [e for e in events if e.kind is EventKind.PREVIEW]
    assert len(previews) == 3
    assert {p.prompt_id for p in previews} == {"72fd8582-3204-4d77-a4b3-69bc714d788c"}


def test_type1_previews_are_attributed_to_the_last_executing_prompt() -> None:
    events = ws_events("b_t2i_checkpoint.json")
    previews = [e for e in events if e.kind is EventKind.PREVIEW]
    assert previews and all(p.prompt_id == B_ID and p.node == "3" for p in previews)


def test_previews_of_a_prompt_without_client_id_follow_its_progress() -> None:
    # Job A was posted without client_id: progress and previews reach every socket, `executing` none.
    events = ws_events("i_ws_without_client_id.json", ws="named")
    first_previews = [e for e in events if e.kind is EventKind.PREVIEW][:3]
    assert {p.prompt_id for p in first_previews} == {"233d9c33-a1e6-4ae7-8216-6d6b8f919eec"}


def test_reconnect_greeting_is_attributed_to_the_known_running_prompt() -> None:
    attributor = EventAttributor()
    ws_events("l_ws_reconnect_midrun.json", ws="ws1", attributor=attributor)
    assert attributor.running_prompt == "b74e1dcf-2a19-491f-83f1-10b9a86e1711"
    after = ws_events("l_ws_reconnect_midrun.json", ws="ws2", attributor=attributor)
    greeting = after[1]
    assert greeting.kind is EventKind.EXECUTING and "prompt_id" not in greeting.raw
    assert greeting.prompt_id == "b74e1dcf-2a19-491f-83f1-10b9a86e1711" and greeting.node == "3"


def test_reconnect_greeting_uses_a_prompt_learnt_elsewhere() -> None:
    attributor = EventAttributor()
    attributor.assume_running("from-queue")
    greeting = ws_events("l_ws_reconnect_midrun.json", ws="ws2", attributor=attributor)[1]
    assert greeting.prompt_id == "from-queue"


def test_end_of_prompt_clears_the_running_prompt() -> None:
    attributor = EventAttributor()
    events = ws_events("b_t2i_checkpoint.json", attributor=attributor)
    assert events[-1].kind is EventKind.EXECUTING and events[-1].node is None
    assert attributor.running_prompt is None
    late_preview = attributor.attribute(parse_binary_frame(struct.pack(">II", 1, 1) + b"x"))
    assert late_preview.prompt_id is None


def test_recorded_status_greeting_carries_sid() -> None:
    first = ws_events("i_ws_without_client_id.json", ws="anon")[0]
    assert first.kind is EventKind.STATUS and first.sid == "7b40882f3c564d5287b02f53e88c6940"
    assert transcript("i_ws_without_client_id.json")["header"]["scenario"] == "i_ws_without_client_id"
