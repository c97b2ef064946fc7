"""End-of-prompt detection and outputs (`JobTracker`), replayed from the recorded exchanges and from tables."""

from __future__ import annotations

from typing import Any

import pytest

from comfystudio_desktop.comfy.comfy_events import ComfyEvent, EventAttributor, EventKind, OutputImage, parse_message
from comfystudio_desktop.comfy.job_tracker import JobOutcome, JobTracker, history_images, history_outcome
from tests.test_comfy_transcripts import http_reply, ws_events

B_ID = "rec-t2i-72e50b3d"


def _history(name: str, prompt_id: str, index: int = 0) -> dict[str, Any]:
    reply = http_reply(name, "GET", f"/history/{prompt_id}", index=index)["response_json"]
    entry: dict[str, Any] = reply[prompt_id]
    return entry


def _track(prompt_id: str, events: list[ComfyEvent], total_nodes: int = 7) -> tuple[JobTracker, list[int]]:
    tracker = JobTracker(prompt_id, total_nodes=total_nodes)
    percents = []
    for event in events:
        tracker.apply(event)
        percents.append(tracker.percent)
    return tracker, percents


# ---- the recordings ---------------------------------------------------------------------------------------

def test_fresh_text_to_image_succeeds_with_its_output() -> None:
    tracker, percents = _track(B_ID, ws_events("b_t2i_checkpoint.json"))
    assert tracker.done and tracker.outcome is JobOutcome.SUCCESS
    assert tracker.output_images == (OutputImage("rec_t2i_00001_.png", "", "output"),)
    assert not tracker.fully_cached
    assert percents == sorted(percents), "progress went backwards"
    assert percents[0] >= 30 and percents[-1] == 95
    assert len(set(percents)) > 5, "progress should move during the run"
    tracker.apply_history(_history("b_t2i_checkpoint.json", B_ID, index=1))
    assert tracker.history_seen and tracker.output_images == (OutputImage("rec_t2i_00001_.png"),)


def test_history_is_empty_while_running() -> None:
    reply = http_reply("b_t2i_checkpoint.json", "GET", f"/history/{B_ID}", index=0)["response_json"]
    tracker = JobTracker(B_ID)
    assert reply == {} and not tracker.apply_history(reply.get(B_ID)) and not tracker.done


@pytest.mark.parametrize("prompt_id", ["f7c849cd-77bd-40a3-897e-c3fad870aa1d", B_ID])
def test_cached_rerun_succeeds_with_the_earlier_file(prompt_id: str) -> None:
    events = ws_events("c_t2i_cached_rerun.json")
    tracker, percents = _track(prompt_id, events)
    assert tracker.outcome is JobOutcome.SUCCESS and tracker.fully_cached
    assert tracker.cached_nodes == {"4", "6", "7", "5", "3", "8", "9"}
    assert tracker.output_images == (OutputImage("rec_t2i_00001_.png"),)
    assert percents[-1] == 95
    tracker.apply_history(_history("c_t2i_cached_rerun.json", prompt_id))
    assert tracker.output_images == (OutputImage("rec_t2i_00001_.png"),)


@pytest.mark.parametrize(("name", "prompt_id", "image"), [
    ("d_upload_img2img.json", "9dd9048f-9a60-42e4-8a50-657c1b61a67a", "rec_i2i_00001_.png"),
    ("e_unet_clip_vae_loaders.json", "6af76dd0-41f4-4911-b064-8caffcc05a39", "rec_unet_00001_.png"),
    ("k_feature_flags_previews.json", "72fd8582-3204-4d77-a4b3-69bc714d788c", "rec_ff_00001_.png"),
    ("g_queue_delete.json", "e008e516-bd53-4a8a-8a9d-0c90532e0885", "rec_queue_00001_.png"),
])
def test_recorded_successes(name: str, prompt_id: str, image: str) -> None:
    tracker, percents = _track(prompt_id, ws_events(name), total_nodes=9)
    assert tracker.outcome is JobOutcome.SUCCESS, tracker.summary()
    assert [i.filename for i in tracker.output_images] == [image]
    assert percents == sorted(percents)


@pytest.mark.parametrize("prompt_id", ["4096de9e-e092-4f80-92da-dd6cd496b7ee", "0f4a9330-89c4-4769-83a5-b69c8e269c47"])
def test_interrupted_by_id_and_globally(prompt_id: str) -> None:
    tracker, _ = _track(prompt_id, ws_events("f_interrupt.json"))
    assert tracker.done and tracker.outcome is JobOutcome.INTERRUPTED and tracker.error == "interrupted"
    assert tracker.output_images == ()
    entry = _history("f_interrupt.json", prompt_id)
    assert history_outcome(entry) == (JobOutcome.INTERRUPTED, "interrupted")
    tracker.apply_history(entry)
    assert tracker.outcome is JobOutcome.INTERRUPTED


def test_a_deleted_pending_prompt_sees_nothing() -> None:
    tracker, _ = _track("c0f0eb8f-d39a-4781-9639-37e40b41ec33", ws_events("g_queue_delete.json"))
    assert not tracker.started and not tracker.done
    reply = http_reply("g_queue_delete.json", "GET", "/history/c0f0eb8f-d39a-4781-9639-37e40b41ec33")
    assert not tracker.apply_history(reply["response_json"].get("c0f0eb8f-d39a-4781-9639-37e40b41ec33"))


def test_runtime_error_names_node_and_exception() -> None:
    prompt_id = "9c722375-d831-4b44-ac5e-83152661fae4"
    tracker, _ = _track(prompt_id, ws_events("h_errors.json"))
    assert tracker.outcome is JobOutcome.ERROR
    assert tracker.error.startswith("CheckpointLoaderSimple (node 4): SafetensorError: Error while deserializing")
    assert history_outcome(_history("h_errors.json", prompt_id)) == (JobOutcome.ERROR, tracker.error)


def test_reconnect_midrun_still_ends_in_success() -> None:
    prompt_id = "b74e1dcf-2a19-491f-83f1-10b9a86e1711"
    attributor = EventAttributor()
    events = ws_events("l_ws_reconnect_midrun.json", ws="ws1", attributor=attributor)
    events += ws_events("l_ws_reconnect_midrun.json", ws="ws2", attributor=attributor)
    tracker, percents = _track(prompt_id, events)
    assert tracker.outcome is JobOutcome.SUCCESS
    assert tracker.output_images == (OutputImage("rec_reconnect_00001_.png"),)
    assert percents == sorted(percents)


def test_prompt_without_client_id_is_finished_by_history_alone() -> None:
    prompt_id = "233d9c33-a1e6-4ae7-8216-6d6b8f919eec"
    tracker, _ = _track(prompt_id, ws_events("i_ws_without_client_id.json", ws="named"))
    assert (tracker.done, tracker.outcome) == (False, None)  # only progress reached us; no terminal message
    tracker.apply_history(_history("i_ws_without_client_id.json", prompt_id))
    assert (tracker.done, tracker.outcome) == (True, JobOutcome.SUCCESS)
    assert tracker.output_images


# ---- tables ----------------------------------------------------------------------------------------------

def _e(kind: str, **data: Any) -> ComfyEvent:
    data.setdefault("prompt_id", "p")
    return parse_message({"type": kind, "data": data})


_START = [_e("execution_start"), _e("execution_cached", nodes=[]), _e("executing", node="3")]


@pytest.mark.parametrize(("events", "done", "outcome"), [
    ([], False, None),
    (_START, False, None),
    ([*_START, _e("progress", node="3", value=2, max=4)], False, None),
    ([*_START, _e("execution_success")], True, JobOutcome.SUCCESS),
    ([*_START, _e("execution_interrupted", node_id="3", node_type="KSampler")], True, JobOutcome.INTERRUPTED),
    ([*_START, _e("execution_error", node_id="3", node_type="KSampler", exception_message="boom")], True,
     JobOutcome.ERROR),
    ([*_START, _e("executing", node=None)], True, None),  # ended: outcome comes from history
    ([*_START, _e("executing", node=None, prompt_id="other")], False, None),
    ([*_START, _e("execution_success", prompt_id="other")], False, None),
    ([*_START, ComfyEvent(EventKind.DISCONNECTED, prompt_id="p")], False, None),
])
def test_end_detection(events: list[ComfyEvent], done: bool, outcome: JobOutcome | None) -> None:
    tracker = JobTracker("p")
    for event in events:
        tracker.apply(event)
    assert (tracker.done, tracker.outcome) == (done, outcome)


def test_events_of_other_prompts_are_ignored() -> None:
    tracker = JobTracker("p")
    assert not tracker.apply(_e("executed", prompt_id="q", node="9", output={"images": [{"filename": "x.png"}]}))
    assert tracker.images == ()


def test_images_are_collected_once_and_temp_ones_kept_apart() -> None:
    tracker = JobTracker("p")
    out = {"filename": "a.png", "subfolder": "comfystudio", "type": "output"}
    tmp = {"filename": "t.png", "subfolder": "", "type": "temp"}
    tracker.apply(_e("executed", node="9", output={"images": [out, tmp]}))
    tracker.apply(_e("executed", node="9", output={"images": [out]}))
    tracker.apply_history({"outputs": {"9": {"images": [out]}, "12": {"images": [
        {"filename": "b.png", "subfolder": "comfystudio", "type": "output"}]}},
        "status": {"status_str": "success", "completed": True, "messages": []}})
    assert [i.path for i in tracker.output_images] == ["comfystudio/a.png", "comfystudio/b.png"]
    assert [i.filename for i in tracker.images] == ["a.png", "t.png", "b.png"]
    assert tracker.outcome is JobOutcome.SUCCESS


def test_history_alone_gives_outcome_after_executing_null() -> None:
    tracker = JobTracker("p")
    for event in [*_START, _e("executing", node=None)]:
        tracker.apply(event)
    assert (tracker.done, tracker.outcome) == (True, None)
    tracker.apply_history({"outputs": {}, "status": {"status_str": "error", "completed": False, "messages": [
        ["execution_start", {"prompt_id": "p"}],
        ["execution_error", {"prompt_id": "p", "node_id": "8", "node_type": "VAEDecode",
                             "exception_message": "out of memory", "exception_type": "torch.OutOfMemoryError"}]]}})
    assert tracker.outcome is JobOutcome.ERROR
    assert tracker.error == "VAEDecode (node 8): OutOfMemoryError: out of memory"


@pytest.mark.parametrize(("entry", "expected"), [
    ({"outputs": {}, "status": {"status_str": "success", "completed": True, "messages": []}},
     (JobOutcome.SUCCESS, "")),
    ({"outputs": {}, "status": {"status_str": "error", "completed": False, "messages": []}},
     (JobOutcome.ERROR, "ComfyUI reported status 'error'")),
    ({"outputs": {"9": {"images": [{"filename": "a.png"}]}}}, (JobOutcome.SUCCESS, "")),
    ({"outputs": {}}, (JobOutcome.ERROR, "ComfyUI finished without a status or outputs")),
])
def test_history_outcome_table(entry: dict[str, Any], expected: tuple[JobOutcome, str]) -> None:
    assert history_outcome(entry) == expected


def test_history_images_of_a_recorded_entry() -> None:
    entry = _history("b_t2i_checkpoint.json", B_ID, index=1)
    assert history_images(entry) == (OutputImage("rec_t2i_00001_.png", "", "output"),)


def test_progress_never_goes_back_when_new_nodes_appear() -> None:
    tracker = JobTracker("p", total_nodes=3)
    steps = [
        _e("progress_state", nodes={"1": {"value": 1, "max": 1, "state": "finished"}}),
        _e("executing", node="2"),
        _e("progress", node="2", value=1, max=20),  # the sampler's true size shows up now
        _e("progress", node="2", value=20, max=20),
        _e("executing", node="3"),
    ]
    seen = []
    for event in steps:
        tracker.apply(event)
        seen.append(tracker.percent)
    assert seen == sorted(seen) and seen[-1] < 95
    tracker.apply(_e("execution_success"))
    assert tracker.percent == 95
