"""UNET jobs out of the box, against the fake ComfyUI (recorded loader shapes) and the real embedded Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.comfy.comfy_errors import ComfyValidationError
from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobStatus
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.settings import Settings, save_settings
from comfystudio_desktop.worker.job_run import Phase
from tests.conftest import COMFY_TRANSCRIPTS
from tests.fake_comfyui.process import FakeComfyProcess, free_port
from tests.helpers import WorkerHarness, wait_until

TRANSCRIPTS = COMFY_TRANSCRIPTS
RECORDED_UNET = "tiny/sd15-unet-random.safetensors"
# A user with files for all three families and a UNET whose name says none.
MIXED = {"diffusion_models": ["my-model.safetensors", "z_image_turbo_bf16.safetensors"],
         "text_encoders": ["clip_l.safetensors", "qwen_3_4b.safetensors", "t5xxl_fp8_e4m3fn.safetensors"],
         "vae": ["ae.safetensors", "sd15/vae-ft-mse.safetensors"], "checkpoints": []}


def _graph(fake: FakeComfyProcess, prompt_id: str) -> dict[str, Any]:
    entry = requests.get(f"{fake.url}/history/{prompt_id}", timeout=5).json()[prompt_id]
    graph: dict[str, Any] = entry["prompt"][2]
    return graph


def _loaders(graph: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {node["class_type"]: node["inputs"] for node in graph.values() if node["class_type"].endswith("Loader")}


@pytest.fixture
def recorded_fake(tmp_path: Path) -> Iterator[FakeComfyProcess]:
    with FakeComfyProcess(output_dir=tmp_path / "out", step_time=0.01) as proc:  # the recorded model files
        yield proc


@pytest.fixture
def mixed_fake(tmp_path: Path) -> Iterator[FakeComfyProcess]:
    with FakeComfyProcess(output_dir=tmp_path / "out", step_time=0.01, models=MIXED) as proc:
        yield proc


def _run(queue: JobQueue, home: Home, settings: Settings, *jobs: Job) -> list[Any]:
    with WorkerHarness(queue, home, settings) as worker:
        for job in jobs:
            queue.submit(job)
        return [worker.wait_status(job.job_id, JobStatus.FINISHED, JobStatus.FAILED) for job in jobs]


def test_recorded_unet_runs_with_default_settings(queue: JobQueue, home: Home,
                                                  recorded_fake: FakeComfyProcess) -> None:
    job = Job(prompt="unet out of the box", model=RECORDED_UNET, seed=5)
    (record,) = _run(queue, home, Settings(comfy_url=recorded_fake.url, lease_seconds=3.0), job)
    assert record.status is JobStatus.FINISHED, record.error
    loaders = _loaders(_graph(recorded_fake, job.job_id))
    assert loaders["CLIPLoader"] == {"clip_name": "tiny/clip-l-random.safetensors", "type": "stable_diffusion",
                                     "device": "default"}  # the recorded working graph (e_unet_clip_vae_loaders)
    assert loaders["VAELoader"] == {"vae_name": "tiny/sd15-vae-random.safetensors"}


def test_undecidable_family_asks_and_a_pick_or_a_remembered_choice_answers(
        queue: JobQueue, home: Home, mixed_fake: FakeComfyProcess) -> None:
    settings = Settings(comfy_url=mixed_fake.url, lease_seconds=3.0)
    asked = Job(prompt="which family?", model="my-model.safetensors")
    picked = Job(prompt="z-image by pick", model="my-model.safetensors", text_encoder="qwen_3_4b.safetensors")
    named = Job(prompt="z-image by name", model="z_image_turbo_bf16.safetensors")
    asked_record, picked_record, named_record = _run(queue, home, settings, asked, picked, named)
    assert asked_record.status is JobStatus.FAILED and asked_record.attempts == 0
    assert ("Cannot tell whether UNET model 'my-model.safetensors' is Z-Image or Flux or SD 1.5: pick a text "
            "encoder for this model in the prompt panel or `submit --text-encoder`") in asked_record.error
    assert asked.job_id not in mixed_fake.stats()["submitted"]
    for record, job in ((picked_record, picked), (named_record, named)):
        assert record.status is JobStatus.FINISHED, record.error
        loaders = _loaders(_graph(mixed_fake, job.job_id))
        assert loaders["CLIPLoader"]["clip_name"] == "qwen_3_4b.safetensors"
        assert loaders["CLIPLoader"]["type"] == "lumina2" and loaders["VAELoader"]["vae_name"] == "ae.safetensors"

    remembered = settings.with_unet_choice("my-model.safetensors", "t5xxl_fp8_e4m3fn.safetensors", "")
    flux = Job(prompt="flux by the remembered choice", model="my-model.safetensors")
    (record,) = _run(queue, home, remembered, flux)
    assert record.status is JobStatus.FINISHED, record.error
    dual = _loaders(_graph(mixed_fake, flux.job_id))["DualCLIPLoader"]
    assert (dual["clip_name1"], dual["clip_name2"], dual["type"]) == ("clip_l.safetensors",
                                                                      "t5xxl_fp8_e4m3fn.safetensors", "flux")


def test_a_choice_saved_while_the_worker_runs_is_used_by_its_next_job(queue: JobQueue, home: Home,
                                                                       mixed_fake: FakeComfyProcess) -> None:
    settings = Settings(comfy_url=mixed_fake.url, lease_seconds=3.0)
    with WorkerHarness(queue, home, settings) as worker:
        save_settings(home.config_file, settings.with_unet_choice("my-model.safetensors", "clip_l.safetensors", ""))
        job = Job(prompt="as remembered in the window", model="my-model.safetensors")
        queue.submit(job)
        record = worker.wait_status(job.job_id, JobStatus.FINISHED, JobStatus.FAILED)
    assert record.status is JobStatus.FINISHED, record.error
    loaders = _loaders(_graph(mixed_fake, job.job_id))
    assert (loaders["CLIPLoader"]["clip_name"], loaders["CLIPLoader"]["type"]) == ("clip_l.safetensors",
                                                                                   "stable_diffusion")
    assert loaders["VAELoader"]["vae_name"] == "sd15/vae-ft-mse.safetensors"  # the VAE that fits SD 1.5


def test_a_pick_that_is_not_installed_fails_naming_where_to_change_it(queue: JobQueue, home: Home,
                                                                      recorded_fake: FakeComfyProcess) -> None:
    settings = Settings(comfy_url=recorded_fake.url, lease_seconds=3.0, unet_text_encoder="qwen_3_4b.safetensors")
    wrong_vae = Job(prompt="p", model=RECORDED_UNET, vae="ae.safetensors")
    z_image = Job(prompt="p", model="tiny/sd15-unet-random.safetensors", text_encoder="qwen_3_4b.safetensors")
    vae_record, encoder_record = _run(queue, home, settings, wrong_vae, z_image)
    assert vae_record.status is JobStatus.FAILED
    assert vae_record.error == ("The VAE 'ae.safetensors' (chosen for this job) is not installed; pick a VAE for this "
                                "model in the prompt panel or `submit --vae`; installed: "
                                "tiny/sd15-vae-random.safetensors.")
    assert encoder_record.status is JobStatus.FAILED
    assert "'qwen_3_4b.safetensors' (chosen for this job) is not installed" in encoder_record.error
    assert "installed: tiny/clip-l-random.safetensors" in encoder_record.error
    assert not {wrong_vae.job_id, z_image.job_id} & set(recorded_fake.stats()["submitted"])


def test_fake_serves_the_recorded_loader_object_info(recorded_fake: FakeComfyProcess) -> None:
    events = json.loads((TRANSCRIPTS / "a_info_endpoints.json").read_text())["events"]
    loaders = {f"/object_info/{name}" for name in ("UNETLoader", "CLIPLoader", "VAELoader", "CheckpointLoaderSimple")}
    recorded = {e["path"]: e["response_json"] for e in events if e.get("path") in loaders}
    assert set(recorded) == loaders
    for path, body in recorded.items():
        assert requests.get(recorded_fake.url + path, timeout=5).json() == body, path


def test_fake_lists_a_configured_file_list_and_rejects_a_missing_file_as_recorded(
        mixed_fake: FakeComfyProcess) -> None:
    info = requests.get(f"{mixed_fake.url}/object_info/CLIPLoader", timeout=5).json()
    assert info["CLIPLoader"]["input"]["required"]["clip_name"][0] == MIXED["text_encoders"]
    vae = requests.get(f"{mixed_fake.url}/object_info/VAELoader", timeout=5).json()
    assert vae["VAELoader"]["input"]["required"]["vae_name"] == [[*MIXED["vae"], "pixel_space"]]
    dual = requests.get(f"{mixed_fake.url}/object_info/DualCLIPLoader", timeout=5).json()["DualCLIPLoader"]
    assert dual["input"]["required"]["clip_name2"][0] == MIXED["text_encoders"]
    graph = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "my-model.safetensors", "weight_dtype": "default"}},
        "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "missing.safetensors", "type": "lumina2"}},
        "12": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "x", "clip": ["2", 0]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 1, "cfg": 1.0, "sampler_name": "euler",
                                                   "scheduler": "simple", "denoise": 1.0, "model": ["1", 0],
                                                   "positive": ["6", 0], "negative": ["6", 0],
                                                   "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["12", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["8", 0]}},
    }
    reply = requests.post(f"{mixed_fake.url}/prompt", json={"prompt": graph}, timeout=5)
    assert reply.status_code == 400
    body = reply.json()
    assert body["error"] == {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                             "details": "", "extra_info": {}}
    error = body["node_errors"]["2"]["errors"][0]  # as recorded for ckpt_name; an input without options has {}
    assert body["node_errors"]["2"]["class_type"] == "CLIPLoader" and body["node_errors"]["2"]["dependent_outputs"]
    assert error == {"type": "value_not_in_list", "message": "Value not in list",
                     "details": f"clip_name: 'missing.safetensors' not in {MIXED['text_encoders']}",
                     "extra_info": {"input_name": "clip_name", "input_config": [MIXED["text_encoders"], {}],
                                    "received_value": "missing.safetensors"}}
    with ComfyClient(mixed_fake.url) as client, pytest.raises(ComfyValidationError) as caught:
        client.submit(graph, prompt_id="missing-file")
    assert str(caught.value) == (
        "ComfyUI rejected the workflow: node 2 (CLIPLoader) input 'clip_name': Value not in list: clip_name: "
        "'missing.safetensors' not in ['clip_l.safetensors', 'qwen_3_4b.safetensors', "
        "'t5xxl_fp8_e4m3fn.safetensors'] (pick a text encoder for this model in the prompt panel or "
        "`submit --text-encoder`)")


def test_a_waiting_job_resumes_as_soon_as_comfy_answers(queue: JobQueue, home: Home, tmp_path: Path) -> None:
    """After a long outage the job does not sit out its back-off: ComfyUI answering wakes it."""
    port = free_port()
    settings = Settings(comfy_url=f"http://127.0.0.1:{port}", lease_seconds=3.0)
    with WorkerHarness(queue, home, settings) as worker:
        job = Job(prompt="patience", model="tiny/sd15-random.safetensors")
        queue.submit(job)

        def long_backoff() -> bool:
            runs = [r for r in worker.consumer.in_flight() if r.phase is Phase.WAITING_COMFY]
            return bool(runs) and runs[0].next_attempt_at - time.monotonic() > 6.0

        # Outage long enough that the next try is more than 6 s away (1 + 2 + 4 s of failed tries so far).
        wait_until(long_backoff, timeout=30, interval=0.05, message="a back-off of more than 6 s")
        with FakeComfyProcess(output_dir=tmp_path / "late-comfy", port=port, step_time=0.01) as fake:
            answering = time.monotonic()  # the fake answers HTTP from here on
            wait_until(lambda: job.job_id in fake.stats()["submitted"], timeout=6.0, interval=0.02,
                       message="the waiting job submitted")
            resumed_after = time.monotonic() - answering
            record = worker.wait_status(job.job_id, JobStatus.FINISHED, JobStatus.FAILED, timeout=30)
    assert record.status is JobStatus.FINISHED, record.error
    assert resumed_after < 2.5, f"resumed {resumed_after:.2f} s after ComfyUI answered"
