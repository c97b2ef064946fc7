"""ComfyUI's error replies become one typed exception with a one-line message (recorded 400 bodies)."""

from __future__ import annotations

import json

import pytest

from comfystudio_desktop.comfy.comfy_errors import (
    ComfyError,
    ComfyHTTPError,
    ComfyUnavailable,
    ComfyValidationError,
    NodeError,
    error_from_reply,
    parse_node_errors,
)
from tests.test_comfy_transcripts import http_reply


def _recorded(label: str) -> ComfyHTTPError:
    exchange = http_reply("h_errors.json", "POST", "/prompt", label=label)
    body = exchange.get("response_text") or json.dumps(exchange["response_json"])
    return error_from_reply("POST", "/prompt", exchange["status"], body)


@pytest.mark.parametrize(("label", "message"), [
    ("unknown ckpt_name",
     "ComfyUI rejected the workflow: node 4 (CheckpointLoaderSimple) input 'ckpt_name': Value not in list: "
     "ckpt_name: 'does-not-exist.safetensors' not in ['tiny/sd15-random.safetensors']"),
    ("unknown node class",
     "ComfyUI rejected the workflow: Cannot execute because node NoSuchNodeClass does not exist (Node ID '#12')"),
    ("missing required input",
     "ComfyUI rejected the workflow: node 3 (KSampler) input 'seed': Required input is missing"),
    ("value out of range + wrong type",
     "ComfyUI rejected the workflow: node 3 (KSampler) input 'cfg': Failed to convert an input value to a FLOAT "
     "value: cfg, abc, could not convert string to float: 'abc'; node 3 (KSampler) input 'steps': "
     "Value 0 smaller than min of 1"),
    ("link to missing node",
     "ComfyUI rejected the workflow: node 3 (KSampler) input 'samples': Exception when validating inner node: '99'"),
    ("no output node", "ComfyUI rejected the workflow: Prompt has no outputs"),
    ("no prompt key", "ComfyUI rejected the workflow: No prompt provided"),
])
def test_recorded_400_replies(label: str, message: str) -> None:
    error = _recorded(label)
    assert isinstance(error, ComfyValidationError) and isinstance(error, ComfyError)
    assert str(error) == message
    assert "\n" not in str(error)
    assert error.status == 400 and error.details["error"]["message"]


def test_validation_error_keeps_the_structure() -> None:
    error = _recorded("unknown ckpt_name")
    assert isinstance(error, ComfyValidationError)
    assert error.error_type == "prompt_outputs_failed_validation"
    assert error.error_message == "Prompt outputs failed validation"
    assert error.node_errors == (NodeError(
        node_id="4", class_type="CheckpointLoaderSimple", error_type="value_not_in_list",
        message="Value not in list",
        details="ckpt_name: 'does-not-exist.safetensors' not in ['tiny/sd15-random.safetensors']",
        input_name="ckpt_name", received_value="does-not-exist.safetensors"),)
    assert error.details["node_errors"]["4"]["dependent_outputs"] == ["9"]


def test_recorded_500_for_malformed_json_is_an_http_error() -> None:
    error = _recorded("malformed JSON body")
    assert type(error) is ComfyHTTPError and error.status == 500
    assert str(error) == ("ComfyUI answered POST /prompt with HTTP 500: 500 Internal Server Error Server got "
                          "itself in trouble")


def test_long_details_are_shortened() -> None:
    allowed = [f"model-{i}.safetensors" for i in range(500)]
    body = json.dumps({"error": {"type": "prompt_outputs_failed_validation", "message": "x"}, "node_errors": {
        "4": {"class_type": "CheckpointLoaderSimple", "errors": [{
            "type": "value_not_in_list", "message": "Value not in list",
            "details": f"ckpt_name: 'nope' not in {allowed}", "extra_info": {"input_name": "ckpt_name"}}]}}})
    error = error_from_reply("POST", "/prompt", 400, body)
    assert isinstance(error, ComfyValidationError)
    assert len(str(error)) < 300 and str(error).endswith("…")
    assert len(error.details["node_errors"]["4"]["errors"][0]["details"]) > 5000  # full text kept


@pytest.mark.parametrize(("body", "message"), [
    ("", "ComfyUI rejected POST /upload/image (HTTP 400, no details)"),
    ("<html>oops</html>", "ComfyUI rejected POST /upload/image (HTTP 400, no details)"),
    ("[1, 2]", "ComfyUI rejected POST /upload/image (HTTP 400, no details)"),
])
def test_400_without_comfy_body(body: str, message: str) -> None:
    error = error_from_reply("POST", "/upload/image", 400, body)
    assert isinstance(error, ComfyValidationError) and str(error) == message and error.node_errors == ()


def test_node_errors_sorted_by_numeric_id_and_bad_entries_skipped() -> None:
    parsed = parse_node_errors({
        "10": {"class_type": "B", "errors": [{"type": "t", "message": "m10"}]},
        "9": {"class_type": "A", "errors": [{"type": "t", "message": "m9"}, "junk"]},
        "x": "junk",
        "y": {"class_type": "C", "errors": "junk"},
    })
    assert [(e.node_id, e.message) for e in parsed] == [("9", "m9"), ("10", "m10")]
    assert parse_node_errors(None) == () and parse_node_errors([]) == ()


def test_unavailable_names_the_url() -> None:
    error = ComfyUnavailable("http://127.0.0.1:8188", "connection refused")
    assert str(error) == "ComfyUI is not reachable at http://127.0.0.1:8188: connection refused"
    assert isinstance(error, ComfyError)
