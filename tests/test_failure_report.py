"""A failed job's error read for people: short reason, sections node by node, the fix (recorded error shapes)."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comfystudio_desktop.comfy.comfy_errors import (
    ComfyValidationError,
    NodeError,
    decode_node_errors,
    encode_node_errors,
    error_from_reply,
)
from comfystudio_desktop.comfy.comfy_events import EventKind
from comfystudio_desktop.comfy.failure_report import FixAction, read_failure
from tests.test_comfy_transcripts import http_reply, ws_events


def _stored(label: str) -> tuple[str, str]:
    """What the worker stores for a recorded 400 reply: (`error`, `node_errors`)."""
    exchange = http_reply("h_errors.json", "POST", "/prompt", label=label)
    error = error_from_reply("POST", "/prompt", 400, json.dumps(exchange["response_json"]))
    assert isinstance(error, ComfyValidationError)
    return str(error), encode_node_errors(error.node_errors)


def _clip_loader_missing() -> tuple[str, str]:
    """The recorded value_not_in_list shape, on the UNET text encoder's loader (as the fake answers it)."""
    reply = {"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                       "details": "", "extra_info": {}},
             "node_errors": {"2": {"errors": [{
                 "type": "value_not_in_list", "message": "Value not in list",
                 "details": "clip_name: 'qwen_3_4b.safetensors' not in ['clip_l.safetensors']",
                 "extra_info": {"input_name": "clip_name", "received_value": "qwen_3_4b.safetensors"}}],
                 "dependent_outputs": ["9"], "class_type": "CLIPLoader"}}}
    error = error_from_reply("POST", "/prompt", 400, json.dumps(reply))
    assert isinstance(error, ComfyValidationError)
    return str(error), encode_node_errors(error.node_errors)


@pytest.mark.parametrize(("label", "short", "fix", "titles"), [
    ("unknown ckpt_name", "CheckpointLoaderSimple: does-not-exist.safetensors not installed", FixAction.PICK_MODEL,
     ["Error", "Node 4 · CheckpointLoaderSimple"]),
    ("unknown node class", "Cannot execute because node NoSuchNodeClass does not exist (Node ID '#12')",
     FixAction.NONE, ["Error"]),
    ("missing required input", "KSampler: input 'seed' is missing", FixAction.NONE,
     ["Error", "Node 3 · KSampler"]),
    ("value out of range + wrong type",
     "KSampler: cfg: Failed to convert an input value to a FLOAT value (+1 more)", FixAction.NONE,
     ["Error", "Node 3 · KSampler"]),
    ("link to missing node", "KSampler: samples: Exception when validating inner node", FixAction.NONE,
     ["Error", "Node 3 · KSampler"]),
    ("no output node", "Prompt has no outputs", FixAction.NONE, ["Error"]),
    ("no prompt key", "No prompt provided", FixAction.NONE, ["Error"]),
])
def test_recorded_rejections_read_for_people(label: str, short: str, fix: FixAction, titles: list[str]) -> None:
    error, node_errors = _stored(label)
    report = read_failure(error, node_errors)
    assert report.short == short
    assert report.fix is fix
    assert [section.title for section in report.sections] == titles
    assert report.sections[0].text == error  # the whole line, never clipped
    assert error in report.copy_text()


def test_both_problems_of_one_node_are_listed_with_their_received_values() -> None:
    report = read_failure(*_stored("value out of range + wrong type"))
    text = report.sections[1].text
    assert "cfg: Failed to convert an input value to a FLOAT value" in text and "received: 'abc'" in text
    assert "steps: Value 0 smaller than min of 1" in text and "received: 0" in text


def test_missing_text_encoder_names_the_file_and_opens_the_picker() -> None:
    report = read_failure(*_clip_loader_missing())
    assert report.short == "CLIPLoader: qwen_3_4b.safetensors not installed"
    assert report.fix is FixAction.PICK_TEXT_ENCODER
    assert report.fix.label == "Choose a text encoder…"


@pytest.mark.parametrize(("input_name", "fix"), [
    ("clip_name", FixAction.PICK_TEXT_ENCODER), ("clip_name2", FixAction.PICK_TEXT_ENCODER),
    ("clip_name1", FixAction.SET_FLUX_CLIP_L), ("vae_name", FixAction.PICK_VAE), ("unet_name", FixAction.PICK_MODEL),
    ("sampler_name", FixAction.NONE),
])
def test_each_missing_file_opens_its_own_choice(input_name: str, fix: FixAction) -> None:
    node = NodeError("1", "Loader", "value_not_in_list", "Value not in list", "", input_name, "x.safetensors")
    assert read_failure("rejected", encode_node_errors((node,))).fix is fix


def test_recorded_execution_error_keeps_its_line() -> None:
    event = next(e for e in ws_events("h_errors.json") if e.kind is EventKind.ERROR)
    report = read_failure(event.error)
    assert report.short == event.error  # "CheckpointLoaderSimple (node 4): SafetensorError: …" fits
    assert report.fix is FixAction.NONE


def test_long_errors_are_clipped_in_the_row_only() -> None:
    error = "x" * 500
    report = read_failure(error)
    assert len(report.short) == 110 and report.short.endswith("…")
    assert report.sections[0].text == error


def test_older_plain_node_errors_are_shown_as_they_are() -> None:
    report = read_failure("ComfyUI rejected the workflow: node 3 …", "node 3 (KSampler): bad cfg")
    assert report.sections[-1].title == "Node errors" and report.sections[-1].text == "node 3 (KSampler): bad cfg"
    assert report.short == "node 3 …"


def test_unreachable_comfy_opens_its_settings() -> None:
    assert read_failure("ComfyUI is not reachable at http://127.0.0.1:8188: refused").fix is FixAction.COMFY_SETTINGS
    assert read_failure("").short == "Failed"


@pytest.mark.parametrize(("error", "short", "fix"), [
    ("Unknown model 'missing/model.safetensors': ComfyUI does not list it under UNET or Checkpoints.",
     "Model missing/model.safetensors not installed", FixAction.PICK_MODEL),
    ("The VAE 'ae.safetensors' (chosen for this job) is not installed; pick a VAE for this model in the prompt "
     "panel or `submit --vae`; installed: tiny/sd15-vae-random.safetensors.",
     "VAE ae.safetensors not installed", FixAction.PICK_VAE),
    ("The text encoder 'qwen_3_4b.safetensors' (chosen for this job) is not installed; pick …; installed: x.",
     "Text encoder qwen_3_4b.safetensors not installed", FixAction.PICK_TEXT_ENCODER),
    ("The CLIP-L 'clip_l.safetensors' (setting flux_clip_l) is not installed; change the setting `flux_clip_l` in "
     "Settings; installed: none.", "CLIP-L clip_l.safetensors not installed", FixAction.SET_FLUX_CLIP_L),
    ("No VAE for Z-Image model 'z.safetensors' is installed; install one, or pick …; installed: none.",
     "No VAE installed for z.safetensors", FixAction.PICK_VAE),
    ("Several text encoders could fit Flux model 'f.safetensors' (a, b); pick ….",
     "Several text encoders fit f.safetensors: pick one", FixAction.PICK_TEXT_ENCODER),
    ("Cannot tell whether UNET model 'my-model.safetensors' is Z-Image or Flux: pick a text encoder ….",
     "Pick a text encoder for my-model.safetensors", FixAction.PICK_TEXT_ENCODER),
    ("Flux model 'f.safetensors' needs a CLIP-L text encoder and none is installed; install one, or set ….",
     "Flux CLIP-L for f.safetensors: set it in Settings", FixAction.SET_FLUX_CLIP_L),
])
def test_the_workers_own_checks_read_short_with_their_fix(error: str, short: str, fix: FixAction) -> None:
    report = read_failure(error)
    assert (report.short, report.fix) == (short, fix)
    assert report.sections[0].text == error


_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
_node_errors = st.builds(NodeError, st.text(string.digits, min_size=1, max_size=3), st.text(max_size=12),
                         st.text(max_size=12), st.text(max_size=20), st.text(max_size=30), st.text(max_size=10),
                         _scalars)


@given(st.lists(_node_errors, max_size=5))
def test_node_errors_round_trip_through_redis_text(errors: list[NodeError]) -> None:
    assert decode_node_errors(encode_node_errors(tuple(errors))) == tuple(errors)


@given(st.text(max_size=200) | st.recursive(_scalars, lambda inner: st.lists(inner) | st.dictionaries(
    st.text(max_size=8), inner), max_leaves=12).map(json.dumps))
def test_any_stored_text_gives_a_report_never_an_exception(text: str) -> None:
    report = read_failure(text, text)
    assert report.short and "\n" not in report.short and len(report.short) <= 110
    assert report.sections[0].title == "Error"
