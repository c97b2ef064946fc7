"""The client, event stream, tracker, catalogue and templates over real HTTP + WebSocket against the fake ComfyUI."""

from __future__ import annotations

import argparse
import io
import json
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from comfystudio_desktop.backoff import Backoff
from comfystudio_desktop.cli_models import cmd_models
from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.comfy.comfy_errors import ComfyHTTPError, ComfyUnavailable, ComfyValidationError
from comfystudio_desktop.comfy.comfy_events import ComfyEvent, EventKind
from comfystudio_desktop.comfy.comfy_stream import ComfyEventStream
from comfystudio_desktop.comfy.job_tracker import JobOutcome, JobTracker
from comfystudio_desktop.comfy.model_catalogue import load_catalogue
from comfystudio_desktop.comfy.workflow_fill import fill
from comfystudio_desktop.comfy.workflow_templates import check_node_classes, load_library
from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, new_job_id
from comfystudio_desktop.settings import Settings
from tests.fake_comfyui.process import FakeComfyProcess, free_port
from tests.helpers import wait_until

FAST = Backoff(initial=0.05, factor=2.0, maximum=0.3)
CHECKPOINT = "sd15/tiny.safetensors"
MODELS = {"checkpoint": CHECKPOINT, "unet-zimage": "z-image/turbo-fp8.safetensors",
          "unet-flux": "flux/flux1-dev.safetensors", "unet-sd15": "sd15/tiny-unet.safetensors"}
LIBRARY = load_library()


def _safetensors(path: Path, valid: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = b'{"__metadata__": {}}'
    path.write_bytes(struct.pack("<Q", len(header)) + header if valid else b"\xff" * 16)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    for name in ("checkpoints/sd15/tiny.safetensors", "unet/z-image/turbo-fp8.safetensors",
                 "diffusion_models/flux/flux1-dev.safetensors", "text_encoders/qwen_3_4b.safetensors",
                 "text_encoders/clip_l.safetensors", "text_encoders/t5xxl_fp8_e4m3fn.safetensors",
                 "vae/ae.safetensors", "unet/sd15/tiny-unet.safetensors",
                 "vae/vae-ft-mse-840000-ema-pruned.safetensors"):
        _safetensors(root / name)
    _safetensors(root / "checkpoints/broken.safetensors", valid=False)
    return root


@pytest.fixture(scope="module")
def fake(models_dir: Path) -> Iterator[FakeComfyProcess]:
    with FakeComfyProcess(models_dir=models_dir, step_time=0.02) as process:
        yield process


@pytest.fixture
def client(fake: FakeComfyProcess) -> Iterator[ComfyClient]:
    fake.control(fault="none", step_time=0.02)
    comfy = ComfyClient(fake.url, read_timeout=10)
    yield comfy
    comfy.close()


@pytest.fixture
def stream(client: ComfyClient) -> Iterator[ComfyEventStream]:
    events = ComfyEventStream.for_client(client, backoff=FAST).start()
    assert events.wait_connected(10), "event stream did not connect"
    yield events
    assert events.close(timeout=5), "event reader thread did not stop"


def _png(color: tuple[int, int, int], size: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, format="PNG")
    return buffer.getvalue()


def _graph(name: str = "text_to_image", family: str = "checkpoint", uploads: dict[str, str] | None = None,
           seed: int = 1, **job: Any) -> tuple[Job, dict[str, Any]]:
    job_obj = Job(prompt=job.pop("prompt", "a live test"), model=job.pop("model", MODELS[family]), **job).validate()
    graph = fill(LIBRARY.get(name, family), job_obj, uploads or {}, seed_used=seed, width=64, height=64)
    return job_obj, graph


def _follow(stream: ComfyEventStream, tracker: JobTracker, timeout: float = 20.0,
            until: Callable[[JobTracker], bool] | None = None) -> list[ComfyEvent]:
    """Feed events to `tracker` until it is done (or `until` holds); return the events about its prompt."""
    deadline = time.monotonic() + timeout
    seen: list[ComfyEvent] = []
    done = until or (lambda t: t.done)
    while not done(tracker):
        event = stream.get(timeout=max(0.0, deadline - time.monotonic()))
        if event is None:
            raise AssertionError(f"no end for {tracker.summary()} within {timeout} s")
        if tracker.apply(event) or event.kind in (EventKind.DISCONNECTED, EventKind.RECONNECTED):
            seen.append(event)
    return seen


def _history(client: ComfyClient, prompt_id: str) -> dict[str, Any]:
    entry: dict[str, Any] = wait_until(lambda: client.history(prompt_id), timeout=10,
                                       message=f"history of {prompt_id}")
    return entry


def test_server_info(client: ComfyClient) -> None:
    assert client.system_stats()["system"]["comfyui_version"]
    assert client.features()["supports_preview_metadata"] is True
    assert client.object_info("KSampler")["KSampler"]["output"] == ["LATENT"]
    assert client.object_info("NoSuchNode") == {}
    assert client.models("unet") == []  # 404, like the real server
    assert client.models("checkpoints") == ["broken.safetensors", CHECKPOINT]


def test_catalogue_and_templates_fit_the_running_server(client: ComfyClient, models_dir: Path) -> None:
    catalogue = load_catalogue(client, models_dir)
    assert catalogue.comfy_answered
    assert catalogue.to_dict() == {"UNET": ["flux/flux1-dev.safetensors", MODELS["unet-sd15"],
                                            "z-image/turbo-fp8.safetensors"],
                                   "Checkpoints": ["broken.safetensors", CHECKPOINT]}
    object_info = client.object_info()
    for template in LIBRARY.templates.values():
        check_node_classes(template, object_info)


def test_submit_and_stream_to_success_with_outputs(client: ComfyClient, stream: ComfyEventStream) -> None:
    job, graph = _graph(seed=101)
    assert client.submit(graph, job.job_id).prompt_id == job.job_id
    tracker = JobTracker(job.job_id, total_nodes=len(graph))
    percents: list[int] = []
    events = []
    for event in _follow(stream, tracker):
        events.append(event)
        percents.append(tracker.percent)
    kinds = [e.kind for e in events]
    assert {EventKind.EXECUTION_START, EventKind.EXECUTING, EventKind.PROGRESS, EventKind.PREVIEW,
            EventKind.EXECUTED, EventKind.SUCCESS} <= set(kinds)
    assert all(e.preview for e in events if e.kind is EventKind.PREVIEW)
    assert percents == sorted(percents) and percents[-1] == 95
    assert tracker.outcome is JobOutcome.SUCCESS and not tracker.fully_cached
    tracker.apply_history(_history(client, job.job_id))
    (image,) = tracker.output_images
    assert image.subfolder == "comfystudio" and image.filename.startswith(job.job_id)
    data = client.view(image.filename, image.subfolder, image.type)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert Image.open(io.BytesIO(data)).size == (64, 64)


@pytest.mark.parametrize(("name", "family"), sorted(LIBRARY.templates))
def test_every_shipped_template_runs(client: ComfyClient, stream: ComfyEventStream, name: str, family: str) -> None:
    uploads = {slot: client.upload_image(_png((40 * i, 90, 200)), f"live_{slot}.png", overwrite=True)
               for i, slot in enumerate(LIBRARY.get(name, family).image_slots)}
    job, graph = _graph(name, family, uploads, seed=202)
    client.submit(graph, job.job_id)
    tracker = JobTracker(job.job_id, total_nodes=len(graph))
    _follow(stream, tracker)
    assert tracker.outcome is JobOutcome.SUCCESS, tracker.summary()
    assert len(tracker.output_images) == 1


def test_cached_rerun_names_the_earlier_file(client: ComfyClient, stream: ComfyEventStream,
                                            fake: FakeComfyProcess) -> None:
    job, graph = _graph(seed=303)
    client.submit(graph, job.job_id)
    first = JobTracker(job.job_id, total_nodes=len(graph))
    _follow(stream, first)
    rerun_id = new_job_id()
    client.submit(graph, rerun_id)  # the same graph, even the same SaveImage prefix
    second = JobTracker(rerun_id, total_nodes=len(graph))
    events = _follow(stream, second)
    assert second.outcome is JobOutcome.SUCCESS and second.fully_cached
    assert not any(e.kind is EventKind.PROGRESS for e in events)
    assert second.output_images == first.output_images
    second.apply_history(_history(client, rerun_id))
    assert second.output_images == first.output_images
    assert rerun_id in fake.stats()["cached_runs"]


def test_interrupt_stops_only_the_named_prompt(client: ComfyClient, stream: ComfyEventStream,
                                              fake: FakeComfyProcess) -> None:
    fake.control(step_time=0.05)
    running, running_graph = _graph(seed=404, steps=200)
    waiting, waiting_graph = _graph(seed=405, steps=3)
    client.submit(running_graph, running.job_id)
    client.submit(waiting_graph, waiting.job_id)
    tracker = JobTracker(running.job_id, total_nodes=len(running_graph))
    _follow(stream, tracker, until=lambda t: t.percent > 30)
    state = client.queue()
    assert state.running_ids == (running.job_id,) and state.pending_ids == (waiting.job_id,)
    assert state.running[0].client_id == client.client_id
    client.interrupt(waiting.job_id)  # not the running one: ignored
    client.interrupt(running.job_id)
    _follow(stream, tracker)
    assert tracker.outcome is JobOutcome.INTERRUPTED
    after = JobTracker(waiting.job_id, total_nodes=len(waiting_graph))
    _follow(stream, after)
    assert after.outcome is JobOutcome.SUCCESS
    interrupts = fake.stats()["interrupts"]
    assert [i["prompt_id"] for i in interrupts[-2:]] == [waiting.job_id, running.job_id]


def test_delete_a_pending_prompt(client: ComfyClient, stream: ComfyEventStream, fake: FakeComfyProcess) -> None:
    fake.control(step_time=0.05)
    running, running_graph = _graph(seed=505, steps=200)
    pending, pending_graph = _graph(seed=506, steps=3)
    client.submit(running_graph, running.job_id)
    client.submit(pending_graph, pending.job_id)
    client.delete_from_queue([pending.job_id])
    wait_until(lambda: pending.job_id not in client.queue(), message="pending prompt removed")
    client.interrupt(running.job_id)
    tracker = JobTracker(running.job_id)
    _follow(stream, tracker)
    assert tracker.outcome is JobOutcome.INTERRUPTED
    assert client.history(pending.job_id) is None


def test_validation_error_is_one_readable_exception(client: ComfyClient) -> None:
    job, graph = _graph(model="does-not-exist.safetensors")
    with pytest.raises(ComfyValidationError) as info:
        client.submit(graph, job.job_id)
    message = str(info.value)
    assert message.startswith("ComfyUI rejected the workflow: node 4 (CheckpointLoaderSimple) input 'ckpt_name': "
                              "Value not in list")
    assert "\n" not in message and info.value.node_errors[0].received_value == "does-not-exist.safetensors"
    graph["3"]["class_type"] = "NoSuchNodeClass"
    with pytest.raises(ComfyValidationError, match="NoSuchNodeClass does not exist"):
        client.submit(graph, new_job_id())


def test_runtime_error_ends_the_prompt_with_its_reason(client: ComfyClient, stream: ComfyEventStream) -> None:
    job, graph = _graph(model="broken.safetensors", seed=606)
    client.submit(graph, job.job_id)
    tracker = JobTracker(job.job_id)
    _follow(stream, tracker)
    assert tracker.outcome is JobOutcome.ERROR
    assert tracker.error.startswith("CheckpointLoaderSimple (node 4): SafetensorError:")


def test_upload_renaming_and_view(client: ComfyClient) -> None:
    name = f"live-{new_job_id()[:8]}.png"
    red, blue = _png((255, 0, 0)), _png((0, 0, 255))
    assert client.upload_image(red, name) == name
    assert client.upload_image(red, name) == name  # identical bytes: same file
    renamed = client.upload_image(blue, name)
    assert renamed == name.replace(".png", " (1).png")
    assert client.upload_image(blue, name, overwrite=True) == name
    assert client.upload_image(red, name, subfolder="sub") == f"sub/{name}"
    assert client.view(name, image_type="input") == blue
    assert client.view(renamed, image_type="input") == blue
    assert client.view(name, "sub", image_type="input") == red
    with pytest.raises(ComfyHTTPError) as info:
        client.view("missing.png", image_type="input")
    assert info.value.status == 404


def test_upload_a_file(client: ComfyClient, tmp_path: Path) -> None:
    path = tmp_path / "from-disk.png"
    path.write_bytes(_png((1, 2, 3)))
    assert client.upload_image(path, overwrite=True) == "from-disk.png"


def test_reconnect_mid_run_keeps_following_the_prompt(client: ComfyClient, stream: ComfyEventStream,
                                                     fake: FakeComfyProcess) -> None:
    fake.control(step_time=0.03)
    job, graph = _graph(seed=707, steps=60)
    client.submit(graph, job.job_id)
    tracker = JobTracker(job.job_id, total_nodes=len(graph))
    _follow(stream, tracker, until=lambda t: t.percent > 35)
    stream.reconnect()
    events = _follow(stream, tracker)
    kinds = [e.kind for e in events]
    assert kinds.index(EventKind.DISCONNECTED) < kinds.index(EventKind.RECONNECTED)
    reconnected = events[kinds.index(EventKind.RECONNECTED)]
    assert reconnected.prompt_id == job.job_id  # learnt from GET /queue
    greeting = events[kinds.index(EventKind.RECONNECTED) + 1]
    assert greeting.kind is EventKind.EXECUTING and greeting.prompt_id == job.job_id
    assert tracker.outcome is JobOutcome.SUCCESS
    tracker.apply_history(_history(client, job.job_id))
    assert len(tracker.output_images) == 1


def test_comfy_restart_is_seen_by_the_stream_and_the_client(models_dir: Path) -> None:
    port = free_port()
    first = FakeComfyProcess(models_dir=models_dir, port=port).start()
    client = ComfyClient(first.url)
    events = ComfyEventStream.for_client(client, backoff=FAST).start()
    try:
        assert events.wait_connected(10)
        first.stop()
        assert _next(events, EventKind.DISCONNECTED).error
        with pytest.raises(ComfyUnavailable):
            client.system_stats()
        with FakeComfyProcess(models_dir=models_dir, port=port):
            _next(events, EventKind.RECONNECTED)
            assert events.connected and client.system_stats()
    finally:
        assert events.close(timeout=5)
        client.close()
        first.stop()


def _next(stream: ComfyEventStream, kind: EventKind, timeout: float = 20.0) -> ComfyEvent:
    deadline = time.monotonic() + timeout
    while (event := stream.get(timeout=max(0.0, deadline - time.monotonic()))) is not None:
        if event.kind is kind:
            return event
    raise AssertionError(f"no {kind.name} event within {timeout} s")


def test_cli_models_asks_the_running_comfy(fake: FakeComfyProcess, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code = cmd_models(argparse.Namespace(json=True), Home(tmp_path / "home"), Settings(comfy_url=fake.url))
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert json.loads(out) == {"UNET": ["flux/flux1-dev.safetensors", MODELS["unet-sd15"],
                                        "z-image/turbo-fp8.safetensors"],
                               "Checkpoints": ["broken.safetensors", CHECKPOINT]}
