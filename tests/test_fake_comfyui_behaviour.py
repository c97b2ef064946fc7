"""Behaviour of the fake ComfyUI beyond the recordings: faults, counters, queue control, files and routing."""

from __future__ import annotations

import io
import json
import re
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import requests
import websocket
from PIL import Image

from tests.fake_comfyui import FakeComfyProcess, free_port
from tests.fake_comfyui.graph import ExecutionOrder
from tests.fake_comfyui.nodes import NODES
from tests.fake_comfyui.process import EXIT_PORT_TAKEN, REPO_ROOT

pytestmark = pytest.mark.timeout(60)
CKPT = "tiny/sd15-random.safetensors"
Message = dict[str, Any] | bytes


def t2i(text: str, *, seed: int = 1, steps: int = 3, width: int = 64, height: int = 64, batch: int = 1,
        prefix: str = "beh", ckpt: str = CKPT) -> dict[str, Any]:
    """The recorded text-to-image graph (node ids as ComfyUI's default workflow)."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": batch}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": steps, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
            "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": prefix, "images": ["8", 0]}},
    }


def unique() -> str:
    return uuid.uuid4().hex[:10]


def kind(message: Message) -> str:
    """`type` of a JSON message, `BIN1`/`BIN4` for preview frames."""
    if isinstance(message, bytes):
        return f"BIN{struct.unpack('>I', message[:4])[0]}"
    return str(message["type"])


class Client:
    """A websocket-client connection that reads messages with a deadline."""

    def __init__(self, fake: FakeComfyProcess, client_id: str | None = None, metadata: bool = False) -> None:
        query = f"?clientId={client_id}" if client_id else ""
        self.ws = websocket.create_connection(fake.ws_url + query, timeout=10)
        if metadata:
            self.ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
        hello = self.next()
        assert isinstance(hello, dict) and hello["type"] == "status"
        self.hello = hello
        self.sid: str = hello["data"]["sid"]

    def next(self, timeout: float = 10.0) -> Message:
        self.ws.settimeout(timeout)
        opcode, data = self.ws.recv_data()
        return data if opcode == websocket.ABNF.OPCODE_BINARY else cast(dict[str, Any], json.loads(data))

    def until(self, done: Callable[[Message], bool], timeout: float = 15.0) -> list[Message]:
        """Every message up to and including the first for which `done` is true."""
        deadline = time.monotonic() + timeout
        seen: list[Message] = []
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"timed out; got {[kind(m) for m in seen]}"
            seen.append(self.next(remaining))
            if done(seen[-1]):
                return seen

    def until_end(self, prompt_id: str) -> list[Message]:
        """Up to `executing {node: null}` of a prompt (only its own client gets that)."""
        return self.until(lambda m: isinstance(m, dict) and m["type"] == "executing"
                          and m["data"]["node"] is None and m["data"].get("prompt_id") == prompt_id)

    def until_idle(self) -> list[Message]:
        """Up to the next `status` with an empty queue."""
        return self.until(lambda m: isinstance(m, dict) and m["type"] == "status"
                          and m["data"]["status"]["exec_info"]["queue_remaining"] == 0)

    def close(self) -> None:
        self.ws.close()


def submit(fake: FakeComfyProcess, prompt: dict[str, Any], client_id: str | None = None,
           prompt_id: str | None = None) -> str:
    body: dict[str, Any] = {"prompt": prompt}
    if client_id:
        body["client_id"] = client_id
    if prompt_id:
        body["prompt_id"] = prompt_id
    status, reply = fake.request("POST", "/prompt", body)
    assert status == 200, reply
    return str(reply["prompt_id"])


def fresh_cache(fake: FakeComfyProcess) -> None:
    """Empty the fake's node cache (applied before the next prompt starts)."""
    assert fake.request("POST", "/free", {"free_memory": True})[0] == 200


def history(fake: FakeComfyProcess, prompt_id: str, timeout: float = 15.0) -> dict[str, Any]:
    """Poll GET /history/{id} until the entry appears."""
    deadline = time.monotonic() + timeout
    while True:
        entry = fake.request("GET", f"/history/{prompt_id}")[1]
        if entry:
            return dict(entry[prompt_id])
        assert time.monotonic() < deadline, f"{prompt_id} never reached history"
        time.sleep(0.02)


def png_bytes(color: tuple[int, int, int], size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", size, (*color, 128)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fake")
    out = {name: root / name for name in ("input", "output", "temp")}
    for path in out.values():
        path.mkdir()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(out["input"] / "example.png")
    return out


@pytest.fixture(scope="module")
def shared_fake(dirs: dict[str, Path]) -> Iterator[FakeComfyProcess]:
    """One fake for the tests that do not change its fault mode (counters are checked relative to ids)."""
    with FakeComfyProcess(step_time=0.02, input_dir=dirs["input"], output_dir=dirs["output"],
                          temp_dir=dirs["temp"]) as server:
        yield server


@pytest.fixture
def fake(shared_fake: FakeComfyProcess) -> FakeComfyProcess:
    """The shared fake once the previous test's prompts have finished (so no stray broadcasts)."""
    deadline = time.monotonic() + 30
    while shared_fake.request("GET", "/prompt")[1]["exec_info"]["queue_remaining"]:
        assert time.monotonic() < deadline, "shared fake never became idle"
        time.sleep(0.02)
    return shared_fake


# --- process and command line -----------------------------------------------------------------------------------
def test_ready_line_sigterm_and_reaping() -> None:
    fake = FakeComfyProcess().start()
    try:
        assert f"To see the GUI go to: http://127.0.0.1:{fake.port}" in fake.log_text()
        assert fake.argv[1:4] == ["-m", "tests.fake_comfyui", "--listen"]
        assert fake.stats()["pid"] == fake.pid
    finally:
        code = fake.stop()
    assert code == 0
    assert fake.returncode == 0


@pytest.mark.parametrize("address", ["0.0.0.0", "192.168.1.10", "::"])
def test_refuses_non_loopback_listen(address: str) -> None:
    done = subprocess.run([sys.executable, "-m", "tests.fake_comfyui", "--listen", address, "--port",
                           str(free_port())], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert "only binds loopback" in done.stderr


def test_kill_reaps_child() -> None:
    fake = FakeComfyProcess().start()
    fake.kill()
    assert fake.returncode is not None and fake.returncode != 0
    fake.stop()


# --- info, models, object_info ----------------------------------------------------------------------------------
def test_info_endpoints_and_api_prefix(fake: FakeComfyProcess) -> None:
    for prefix in ("", "/api"):
        status, stats = fake.request("GET", f"{prefix}/system_stats")
        assert status == 200 and stats["system"]["comfyui_version"] == "0.3.64"
        assert fake.request("GET", f"{prefix}/features")[1] == {"supports_preview_metadata": True,
                                                                 "max_upload_size": 104857600}
    assert fake.request("GET", "/models/checkpoints")[1] == [CKPT]
    assert fake.request("GET", "/models/diffusion_models")[1] == ["tiny/sd15-unet-random.safetensors"]
    for folder in ("unet", "clip", "no_such_folder"):
        assert fake.request("GET", f"/models/{folder}") == (404, None)
    assert fake.request("GET", "/embeddings") == (200, [])
    assert fake.request("GET", "/object_info/NoSuchNode") == (200, {})
    info = fake.request("GET", "/object_info")[1]
    needed = {"CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "EmptySD3LatentImage", "KSampler",
              "VAEDecode", "VAEEncode", "SaveImage", "LoadImage", "UNETLoader", "CLIPLoader", "DualCLIPLoader",
              "VAELoader", "ModelSamplingAuraFlow", "FluxGuidance", "ImageBlend", "ImageScale", "LatentUpscale",
              "PreviewImage", "RepeatLatentBatch"}
    assert needed <= set(info)
    assert {"stable_diffusion", "lumina2"} <= set(info["CLIPLoader"]["input"]["required"]["type"][0])
    assert "flux" in info["DualCLIPLoader"]["input"]["required"]["type"][0]
    assert info["VAELoader"]["input"]["required"]["vae_name"][0][-1] == "pixel_space"
    assert "example.png" in info["LoadImage"]["input"]["required"]["image"][0]


def test_models_dir_scanning_and_broken_model(tmp_path: Path) -> None:
    models = tmp_path / "models"
    valid = struct.pack("<Q", 2) + b"{}"
    for rel in ("checkpoints/a.safetensors", "checkpoints/sub/b.ckpt", "checkpoints/notes.txt",
                "unet/u1.safetensors", "diffusion_models/z/u2.safetensors", "clip/c.safetensors",
                "text_encoders/t.safetensors", "vae/v.safetensors"):
        (models / rel).parent.mkdir(parents=True, exist_ok=True)
        (models / rel).write_bytes(valid)
    (models / "checkpoints/broken.safetensors").write_bytes(b"definitely not safetensors")
    with FakeComfyProcess(models_dir=models) as fake:
        assert fake.request("GET", "/models/checkpoints")[1] == ["a.safetensors", "broken.safetensors",
                                                                 "sub/b.ckpt"]
        assert fake.request("GET", "/models/diffusion_models")[1] == ["u1.safetensors", "z/u2.safetensors"]
        assert fake.request("GET", "/models/text_encoders")[1] == ["c.safetensors", "t.safetensors"]
        unet = fake.request("GET", "/object_info/UNETLoader")[1]["UNETLoader"]["input"]["required"]
        assert unet["unet_name"] == [["u1.safetensors", "z/u2.safetensors"]]
        client = Client(fake, "scan")
        pid = submit(fake, t2i(unique(), ckpt="broken.safetensors"), client_id="scan")
        messages = client.until_end(pid)
        client.close()
        error = next(m for m in messages if isinstance(m, dict) and m["type"] == "execution_error")["data"]
        assert (error["node_id"], error["node_type"]) == ("4", "CheckpointLoaderSimple")
        assert error["exception_type"] == "safetensors._safetensors_rust.SafetensorError"
        assert error["current_inputs"] == {"ckpt_name": ["broken.safetensors"]}
        assert history(fake, pid)["status"]["status_str"] == "error"


# --- validation ---------------------------------------------------------------------------------------------------
def test_validation_errors_and_number_counter(fake: FakeComfyProcess) -> None:
    def post(body: Any) -> tuple[int, Any]:
        return fake.request("POST", "/prompt", body)

    rejected_before = fake.stats()["rejected"]
    first = post({"prompt": t2i(unique())})[1]["number"]
    bad_ckpt = post({"prompt": t2i("x", ckpt="nope.safetensors")})
    assert bad_ckpt[0] == 400
    assert bad_ckpt[1]["error"]["type"] == "prompt_outputs_failed_validation"
    assert bad_ckpt[1]["node_errors"]["4"]["errors"][0]["type"] == "value_not_in_list"
    assert bad_ckpt[1]["node_errors"]["4"]["dependent_outputs"] == ["9"]
    unet = {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": "gone.safetensors", "weight_dtype": "default"}},
            "2": {"class_type": "ModelSamplingAuraFlow", "inputs": {"model": ["1", 0], "shift": 3.0}},
            "9": {"class_type": "PreviewImage", "inputs": {"images": ["10", 0]}},
            "10": {"class_type": "LoadImage", "inputs": {"image": "nothere.png"}}}
    reply = post({"prompt": unet})[1]
    assert reply["node_errors"]["10"]["errors"][0]["type"] == "custom_validation_failed"
    unet["9"] = {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "x"}}
    unet["11"] = {"class_type": "PreviewImage", "inputs": {"images": ["12", 0]}}
    unet["12"] = {"class_type": "VAEDecode", "inputs": {"samples": ["13", 0], "vae": ["14", 0]}}
    unet["13"] = {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}}
    unet["14"] = {"class_type": "VAELoader", "inputs": {"vae_name": "pixel_space"}}
    partial = post({"prompt": unet})  # one output is valid: accepted, the bad one reported in node_errors
    assert partial[0] == 200 and "10" in partial[1]["node_errors"]
    unknown = post({"prompt": {**t2i("x"), "12": {"class_type": "NoSuchNodeClass", "inputs": {}}}})[1]
    assert unknown["error"] == {"type": "invalid_prompt", "message": "Cannot execute because node NoSuchNodeClass "
                                "does not exist.", "details": "Node ID '#12'", "extra_info": {}}
    graph = t2i("x")
    del graph["3"]["inputs"]["seed"]
    graph["3"]["inputs"].update(steps=0, cfg="abc")
    errors = post({"prompt": graph})[1]["node_errors"]["3"]["errors"]
    assert {e["type"] for e in errors} == {"required_input_missing", "value_smaller_than_min", "invalid_input_type"}
    graph = t2i("x")
    graph["3"]["inputs"]["positive"] = ["99", 0]
    link = post({"prompt": graph})[1]["node_errors"]["3"]["errors"][0]
    assert (link["type"], link["details"], link["extra_info"]["linked_node"]) == (
        "exception_during_inner_validation", "'99'", ["3", 0])
    no_out = t2i("x")
    del no_out["9"]
    assert post({"prompt": no_out})[1]["error"]["type"] == "prompt_no_outputs"
    assert post({"prompt": {}})[1]["error"]["type"] == "prompt_no_outputs"
    assert post({"client_id": "x"})[1]["error"]["type"] == "no_prompt"
    raw = requests.post(fake.url + "/prompt", data='{"prompt": {"3": ', timeout=10)
    assert (raw.status_code, raw.headers["Content-Type"]) == (500, "text/plain; charset=utf-8")
    last = post({"prompt": t2i(unique())})[1]["number"]
    assert last - first == 10  # 8 rejected (400) + 1 partial accept + this one; the 500 does not count
    assert fake.stats()["rejected"] - rejected_before == 8


def unet_graph(unet: str = "tiny/sd15-unet-random.safetensors") -> dict[str, Any]:
    """Every catalogue node class in one img2img + blend graph (UNET, lumina2 CLIP, AuraFlow, Flux guidance)."""
    clip = "tiny/clip-l-random.safetensors"
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": unet, "weight_dtype": "default"}},
        "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": clip, "type": "lumina2", "device": "default"}},
        "20": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": clip, "clip_name2": clip, "type": "flux"}},
        "12": {"class_type": "VAELoader", "inputs": {"vae_name": "tiny/sd15-vae-random.safetensors"}},
        "13": {"class_type": "ModelSamplingAuraFlow", "inputs": {"model": ["1", 0], "shift": 3.0}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": unique(), "clip": ["20", 0]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["2", 0]}},
        "14": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["6", 0], "guidance": 3.5}},
        "10": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "15": {"class_type": "ImageScale", "inputs": {"image": ["10", 0], "upscale_method": "lanczos", "width": 96,
                                                      "height": 64, "crop": "center"}},
        "11": {"class_type": "VAEEncode", "inputs": {"pixels": ["15", 0], "vae": ["12", 0]}},
        "16": {"class_type": "RepeatLatentBatch", "inputs": {"samples": ["11", 0], "amount": 2}},
        "17": {"class_type": "LatentUpscale", "inputs": {"samples": ["16", 0], "upscale_method": "nearest-exact",
                                                         "width": 128, "height": 0, "crop": "disabled"}},
        "21": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 128, "height": 80, "batch_size": 2}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": 3, "steps": 2, "cfg": 1.0, "sampler_name": "res_multistep", "scheduler": "simple",
            "denoise": 0.55, "model": ["13", 0], "positive": ["14", 0], "negative": ["7", 0],
            "latent_image": ["17", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["12", 0]}},
        "18": {"class_type": "VAEDecode", "inputs": {"samples": ["21", 0], "vae": ["12", 0]}},
        "19": {"class_type": "ImageBlend", "inputs": {"image1": ["8", 0], "image2": ["18", 0], "blend_factor": 0.5,
                                                      "blend_mode": "normal"}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "all/nodes", "images": ["19", 0]}},
        "22": {"class_type": "PreviewImage", "inputs": {"images": ["15", 0]}},
    }


def test_every_catalogue_node_runs(fake: FakeComfyProcess, dirs: dict[str, Path]) -> None:
    broken = unet_graph("nope.safetensors")
    accepted = fake.request("POST", "/prompt", {"prompt": broken})  # PreviewImage 22 is still valid: accepted
    assert accepted[0] == 200 and accepted[1]["node_errors"]["1"]["dependent_outputs"] == ["9"]
    assert set(history(fake, accepted[1]["prompt_id"])["outputs"]) == {"22"}
    del broken["22"]
    rejected = fake.request("POST", "/prompt", {"prompt": broken})
    assert rejected[0] == 400 and rejected[1]["error"]["type"] == "prompt_outputs_failed_validation"
    assert rejected[1]["node_errors"]["1"]["errors"][0]["type"] == "value_not_in_list"
    graph = unet_graph()
    pid = submit(fake, graph)
    entry = history(fake, pid)
    assert entry["status"]["status_str"] == "success"
    assert set(entry["outputs"]) == {"9", "22"}
    saved = entry["outputs"]["9"]["images"]
    assert len(saved) == 2 and {i["subfolder"] for i in saved} == {"all"}
    for image in saved:
        with Image.open(dirs["output"] / "all" / image["filename"]) as png:
            assert png.size == (128, 80)  # 96x64 scaled to width 128, height kept in proportion, 8 px steps
    covered = {node["class_type"] for node in [*graph.values(), *t2i("x").values()]}
    assert covered == set(fake.request("GET", "/object_info")[1])  # with t2i(), every class has run somewhere


@pytest.mark.parametrize(("cached", "expected"), [
    (set(), ["2", "1", "6", "5", "4", "3"]),  # the preview's loader first, then the ready output, then the rest
    ({"5", "6"}, ["4", "3", "2", "1"]),  # cached nodes are not scheduled; 4 and 2 both feed an output
])
def test_execution_order_follows_comfyui_heuristics(cached: set[str], expected: list[str]) -> None:
    prompt: dict[str, dict[str, Any]] = {
        "3": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "x"}},
        "4": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["6", 0]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {"class_type": "VAELoader", "inputs": {"vae_name": "pixel_space"}},
        "1": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
    }
    order = ExecutionOrder(prompt, lambda n: n in cached, lambda n: NODES[prompt[n]["class_type"]].output_node)
    for output in ("3", "1"):
        order.add_node(output)
    ran = []
    while not order.is_empty():
        ran.append(order.next_node())
        order.complete(ran[-1])
    assert ran == expected


def test_unreachable_broken_node_does_not_break_the_run(fake: FakeComfyProcess) -> None:
    graph = {**t2i(unique()), "50": {"class_type": "VAELoader"}, "51": {"class_type": "VAEDecode",
                                                                      "inputs": {"samples": ["77", 0]}}}
    pid = submit(fake, graph)
    assert history(fake, pid)["status"]["status_str"] == "success"


# --- execution, history, cache, outputs ---------------------------------------------------------------------------
def test_fresh_job_message_order_and_history(fake: FakeComfyProcess) -> None:
    fresh_cache(fake)
    client = Client(fake, "order")
    pid = submit(fake, t2i(unique(), steps=2), client_id="order", prompt_id=f"mine-{unique()}")
    messages = client.until_end(pid)
    client.close()
    kinds = [kind(m) for m in messages]
    start = kinds.index("execution_start")
    assert kinds[:start] == ["status", "status"]
    assert kinds[start:start + 2] == ["execution_start", "execution_cached"]
    assert kinds[-3:] == ["execution_success", "status", "executing"]
    executing = [m["data"]["node"] for m in messages if isinstance(m, dict) and m["type"] == "executing"]
    assert executing == ["4", "5", "7", "6", "3", "8", "9", None]
    sampler = kinds[kinds.index("progress") - 1:kinds.index("progress") + 2]
    assert sampler == ["progress_state", "progress", "BIN1"]
    entry = history(fake, pid)
    assert entry["prompt"][1] == pid and entry["prompt"][3] == {"client_id": "order"}
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
    assert [event for event, _ in entry["status"]["messages"]] == ["execution_start", "execution_cached",
                                                                   "execution_success"]
    image = entry["outputs"]["9"]["images"][0]
    view = requests.get(fake.url + "/view", params=image, timeout=10)
    assert view.status_code == 200 and view.content.startswith(b"\x89PNG")
    stats = fake.stats()
    assert stats["executions"][pid] == 1 and stats["submitted"][-1] == pid and stats["results"][pid] == "success"


def test_history_not_written_until_done_and_pagination(fake: FakeComfyProcess) -> None:
    pid = submit(fake, t2i(unique(), steps=25))
    assert fake.request("GET", f"/history/{pid}") == (200, {})
    history(fake, pid)
    assert list(fake.request("GET", "/history?max_items=1")[1]) == [pid]
    everything = list(fake.request("GET", "/history")[1])
    assert everything[-1] == pid
    assert list(fake.request("GET", "/history?max_items=2&offset=0")[1]) == everything[:2]
    assert fake.request("POST", "/history", {"delete": [pid]})[0] == 200
    assert fake.request("GET", f"/history/{pid}") == (200, {})


def test_batch_of_two_writes_two_pngs(fake: FakeComfyProcess, dirs: dict[str, Path]) -> None:
    prefix = f"batch/{unique()}"
    pid = submit(fake, t2i(unique(), width=96, height=64, batch=2, prefix=prefix))
    images = history(fake, pid)["outputs"]["9"]["images"]
    stem = prefix.split("/")[1]
    assert [i["filename"] for i in images] == [f"{stem}_00001_.png", f"{stem}_00002_.png"]
    assert {i["subfolder"] for i in images} == {"batch"} and {i["type"] for i in images} == {"output"}
    for image in images:
        with Image.open(dirs["output"] / "batch" / image["filename"]) as png:
            assert (png.format, png.size) == ("PNG", (96, 64))
    again = submit(fake, t2i(unique(), width=96, height=64, batch=1, prefix=prefix))
    assert history(fake, again)["outputs"]["9"]["images"][0]["filename"] == f"{stem}_00003_.png"


def test_cached_rerun_and_partial_cache(fake: FakeComfyProcess) -> None:
    client = Client(fake, "cache")
    graph = t2i(unique(), seed=5)
    first = submit(fake, graph, client_id="cache")
    old = [m for m in client.until_end(first) if isinstance(m, dict) and m["type"] == "executed"]
    second = submit(fake, graph, client_id="cache")
    messages = client.until_end(second)
    assert [kind(m) for m in messages if kind(m) != "status"] == [
        "execution_start", "execution_cached", "executed", "progress_state", "execution_success", "executing"]
    cached = next(m for m in messages if isinstance(m, dict) and m["type"] == "execution_cached")
    assert cached["data"]["nodes"] == ["4", "6", "7", "5", "3", "8", "9"]
    executed = next(m for m in messages if isinstance(m, dict) and m["type"] == "executed")
    assert executed["data"]["output"] == old[0]["data"]["output"]
    graph["3"]["inputs"]["seed"] = 6
    third = submit(fake, graph, client_id="cache")
    messages = client.until_end(third)
    client.close()
    cached = next(m for m in messages if isinstance(m, dict) and m["type"] == "execution_cached")
    assert cached["data"]["nodes"] == ["4", "6", "7", "5"]
    ran = [m["data"]["node"] for m in messages if isinstance(m, dict) and m["type"] == "executing"]
    assert ran == ["3", "8", "9", None]
    stats = fake.stats()
    assert stats["executions"][first] == 1 and stats["executions"][third] == 1
    assert second not in stats["executions"] and second in stats["cached_runs"]


def test_free_memory_empties_the_cache(fake: FakeComfyProcess) -> None:
    graph = t2i(unique())
    history(fake, submit(fake, graph))
    assert fake.request("POST", "/free", {"unload_models": True, "free_memory": True}) == (200, None)
    again = submit(fake, graph)
    history(fake, again)
    assert fake.stats()["executions"][again] == 1


# --- interrupt and queue control ----------------------------------------------------------------------------------
def test_interrupt_only_hits_the_named_running_prompt(fake: FakeComfyProcess) -> None:
    fresh_cache(fake)
    client = Client(fake, "intr")
    running = submit(fake, t2i(unique(), steps=40), client_id="intr")
    pending = submit(fake, t2i(unique(), steps=2), client_id="intr")
    client.until(lambda m: kind(m) == "progress")
    assert fake.request("POST", "/interrupt", {"prompt_id": pending}) == (200, None)
    assert fake.request("POST", "/interrupt", {"prompt_id": "not-the-running-one"}) == (200, None)
    client.until(lambda m: isinstance(m, dict) and m["type"] == "progress" and m["data"]["value"] >= 4)
    assert fake.request("POST", "/interrupt", {"prompt_id": running}) == (200, None)
    messages = client.until_end(running)
    stopped = next(m for m in messages if isinstance(m, dict) and m["type"] == "execution_interrupted")
    assert set(stopped["data"]) == {"prompt_id", "node_id", "node_type", "executed", "timestamp"}
    assert (stopped["data"]["node_id"], stopped["data"]["node_type"]) == ("3", "KSampler")
    assert stopped["data"]["executed"] == ["4", "6", "7", "5"]
    client.until_end(pending)
    client.close()
    entry = history(fake, running)
    assert (entry["status"]["status_str"], entry["status"]["completed"], entry["outputs"]) == ("error", False, {})
    assert history(fake, pending)["status"]["status_str"] == "success"
    interrupts = fake.stats()["interrupts"][-3:]
    assert interrupts == [{"prompt_id": pending, "running": running, "applied": False},
                          {"prompt_id": "not-the-running-one", "running": running, "applied": False},
                          {"prompt_id": running, "running": running, "applied": True}]
    assert fake.stats()["results"][running] == "interrupted"


def test_global_interrupt_when_idle_does_not_touch_the_next_prompt(fake: FakeComfyProcess) -> None:
    assert fake.request("POST", "/interrupt")[0] == 200
    pid = submit(fake, t2i(unique(), steps=2))
    assert history(fake, pid)["status"]["status_str"] == "success"
    assert fake.stats()["interrupts"][-1] == {"prompt_id": None, "running": None, "applied": False}


def test_queue_delete_and_clear_only_touch_pending(fake: FakeComfyProcess) -> None:
    client = Client(fake, "q")
    running = submit(fake, t2i(unique(), steps=50), client_id="q")
    doomed = submit(fake, t2i(unique()), client_id="q")
    cleared = submit(fake, t2i(unique()), client_id="q")
    client.until(lambda m: kind(m) == "progress")
    queue = fake.request("GET", "/queue")[1]
    assert [i[1] for i in queue["queue_running"]] == [running]
    assert [i[1] for i in queue["queue_pending"]] == [doomed, cleared]
    assert fake.request("POST", "/queue", {"delete": [doomed, running]}) == (200, None)
    assert [i[1] for i in fake.request("GET", "/queue")[1]["queue_pending"]] == [cleared]
    assert fake.request("POST", "/queue", {"clear": True}) == (200, None)
    messages = client.until_end(running)
    client.close()
    assert fake.request("GET", "/queue")[1] == {"queue_running": [], "queue_pending": []}
    assert history(fake, running)["status"]["status_str"] == "success"
    for gone in (doomed, cleared):
        assert fake.request("GET", f"/history/{gone}") == (200, {})
        assert not any(isinstance(m, dict) and m["data"].get("prompt_id") == gone for m in messages)
    stats = fake.stats()
    assert stats["deleted"][-2:] == [doomed, running] and stats["removed"][-2:] == [doomed, cleared]
    assert doomed not in stats["executions"] and cleared not in stats["executions"]


# --- files --------------------------------------------------------------------------------------------------------
def test_upload_renaming_rules(fake: FakeComfyProcess, dirs: dict[str, Path]) -> None:
    name = f"up-{unique()}.png"
    first, second = png_bytes((255, 0, 0)), png_bytes((0, 0, 255))

    def upload(data: bytes, **form: str) -> dict[str, Any]:
        reply = requests.post(fake.url + "/upload/image", files={"image": (name, data, "image/png")}, data=form,
                              timeout=10)
        assert reply.status_code == 200, reply.text
        return dict(reply.json())

    assert upload(first) == {"name": name, "subfolder": "", "type": "input"}
    assert upload(first)["name"] == name  # identical bytes: same name, no copy
    renamed = name.replace(".png", " (1).png")
    assert upload(second)["name"] == renamed
    assert upload(second, overwrite="false")["name"] == renamed  # identical to the (1) copy
    assert upload(second, overwrite="true")["name"] == name
    assert (dirs["input"] / name).read_bytes() == second
    assert upload(first, subfolder="sub") == {"name": name, "subfolder": "sub", "type": "input"}
    assert upload(first, type="temp")["type"] == "temp" and (dirs["temp"] / name).is_file()
    missing = requests.post(fake.url + "/upload/image", data={"overwrite": "true"}, timeout=10)
    assert (missing.status_code, missing.content) == (400, b"")
    choices = fake.request("GET", "/object_info/LoadImage")[1]["LoadImage"]["input"]["required"]["image"][0]
    assert {name, renamed} <= set(choices) and f"sub/{name}" not in choices
    assert fake.stats()["uploads"][-7:] == [name, name, renamed, renamed, name, f"sub/{name}", name]
    pid = submit(fake, {"1": {"class_type": "LoadImage", "inputs": {"image": f"sub/{name}"}},
                        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}})
    preview = history(fake, pid)["outputs"]["2"]["images"][0]
    assert preview["type"] == "temp" and preview["filename"].startswith("ComfyUI_temp_")


def test_view_rules(fake: FakeComfyProcess, dirs: dict[str, Path]) -> None:
    name = f"view-{unique()}.png"
    (dirs["input"] / name).write_bytes(png_bytes((1, 2, 3), (16, 8)))

    def view(**params: str) -> requests.Response:
        return requests.get(fake.url + "/view", params=params, timeout=10)

    ok = view(filename=name, type="input")
    assert ok.status_code == 200 and ok.headers["Content-Type"] == "image/png"
    assert ok.headers["Content-Disposition"] == f'filename="{name}"'
    assert view(filename="nope.png", type="output").status_code == 404
    assert view(filename="../comfyui_version.py", type="output").status_code == 400
    assert view(filename="comfyui_version.py", subfolder="..", type="output").status_code == 403
    assert view(filename="x.png", type="bogus").status_code == 400
    assert requests.get(fake.url + "/view", timeout=10).status_code == 404
    webp = view(filename=name, type="input", preview="webp;50")
    assert webp.headers["Content-Type"] == "image/webp" and webp.content.startswith(b"RIFF")
    alpha = view(filename=name, type="input", channel="a")
    with Image.open(io.BytesIO(alpha.content)) as img:
        assert img.mode == "RGBA" and img.getchannel("A").getextrema() == (128, 128)
    assert view(filename=f"{name} [input]").status_code == 200


# --- WebSocket routing ----------------------------------------------------------------------------------------------
def test_prompt_without_client_id_broadcasts_progress_only(fake: FakeComfyProcess) -> None:
    anon = Client(fake)
    named = Client(fake, "named-watcher")
    assert re.fullmatch(r"[0-9a-f]{32}", anon.sid), anon.sid
    pid = submit(fake, t2i(unique(), steps=2))
    for client in (anon, named):
        kinds = {kind(m) for m in client.until_idle()}
        assert {"progress", "progress_state", "BIN1", "status"} == kinds
    job_b = submit(fake, t2i(unique(), steps=2), client_id=anon.sid)
    assert "execution_success" in [kind(m) for m in anon.until_end(job_b)]
    assert {kind(m) for m in named.until_idle()} == {"status"}
    anon.close()
    named.close()
    assert history(fake, pid)["prompt"][3] == {}


def test_reconnect_mid_run_gets_current_node_without_replay(fake: FakeComfyProcess) -> None:
    first = Client(fake, "rejoin")
    pid = submit(fake, t2i(unique(), steps=50), client_id="rejoin")
    first.until(lambda m: kind(m) == "progress")
    first.close()
    again = Client(fake, "rejoin")
    assert again.hello["data"] == {"status": {"exec_info": {"queue_remaining": 1}}, "sid": "rejoin"}
    assert again.next() == {"type": "executing", "data": {"node": "3"}}
    messages = again.until_end(pid)
    again.close()
    steps = [m["data"]["value"] for m in messages if isinstance(m, dict) and m["type"] == "progress"]
    assert steps and steps[0] > 1 and steps[-1] == 50


def test_preview_metadata_frames_after_feature_flags(fake: FakeComfyProcess) -> None:
    client = Client(fake, "flags", metadata=True)
    assert client.next() == {"type": "feature_flags", "data": {"supports_preview_metadata": True,
                                                               "max_upload_size": 104857600}}
    pid = submit(fake, t2i(unique(), steps=2), client_id="flags")
    messages = client.until_end(pid)
    client.close()
    kinds = [kind(m) for m in messages]
    assert "BIN1" not in kinds
    first = kinds.index("BIN4")
    assert kinds[first - 1:first + 2] == ["progress_state", "BIN4", "progress"]
    frame = next(m for m in messages if isinstance(m, bytes))
    (length,) = struct.unpack(">I", frame[4:8])
    meta = json.loads(frame[8:8 + length])
    assert meta == {"node_id": "3", "prompt_id": pid, "display_node_id": "3", "parent_node_id": None,
                    "real_node_id": "3", "image_type": "image/jpeg"}
    assert frame[8 + length:8 + length + 2] == b"\xff\xd8"


# --- faults -------------------------------------------------------------------------------------------------------
def test_fault_hang_accepts_connections_but_never_answers() -> None:
    with FakeComfyProcess(fault="hang") as fake:
        with socket.create_connection(("127.0.0.1", fake.port), timeout=5):
            pass
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.get(fake.url + "/system_stats", timeout=0.5)
        with pytest.raises(websocket.WebSocketTimeoutException):
            websocket.create_connection(fake.ws_url, timeout=0.5)
        assert fake.stats()["fault"] == "hang"
        fake.control(fault="none")
        assert requests.get(fake.url + "/system_stats", timeout=5).status_code == 200


def test_fault_slow_and_refuse() -> None:
    with FakeComfyProcess() as fake:
        assert fake.control(fault="slow", slow_seconds=0.8)["fault"] == "slow"
        began = time.monotonic()
        assert requests.get(fake.url + "/queue", timeout=5).status_code == 200
        assert time.monotonic() - began >= 0.8
        fake.control(fault="refuse")
        assert requests.get(fake.url + "/system_stats", timeout=5).status_code == 503
        assert fake.request("POST", "/prompt", {"prompt": t2i("x")})[0] == 503
        with pytest.raises(websocket.WebSocketBadStatusException):
            websocket.create_connection(fake.ws_url, timeout=5)
        assert fake.request("POST", "/_fake/control", {"fault": "bogus"})[0] == 400
        fake.control(fault="none")
        began = time.monotonic()
        assert requests.get(fake.url + "/system_stats", timeout=5).status_code == 200
        assert time.monotonic() - began < 0.8


def test_fault_error_next_fails_one_prompt_at_the_sampler() -> None:
    with FakeComfyProcess(fault="error_next") as fake:
        client = Client(fake, "err")
        failing = submit(fake, t2i("boom", steps=4), client_id="err")
        messages = client.until_end(failing)
        kinds = [kind(m) for m in messages]
        assert kinds[-3:] == ["execution_error", "status", "executing"]
        assert kinds.count("progress") == 1  # fails mid-progress (step 2 of 4)
        error = next(m for m in messages if isinstance(m, dict) and m["type"] == "execution_error")["data"]
        assert set(error) == {"prompt_id", "node_id", "node_type", "executed", "exception_message",
                              "exception_type", "traceback", "current_inputs", "current_outputs", "timestamp"}
        assert (error["node_id"], error["node_type"], error["executed"]) == ("3", "KSampler", ["4", "6", "7", "5"])
        assert error["current_inputs"]["seed"] == [1] and isinstance(error["current_inputs"]["model"][0], str)
        assert error["exception_type"] == "RuntimeError" and "error_next" in error["exception_message"]
        entry = history(fake, failing)
        assert (entry["status"]["status_str"], entry["status"]["completed"], entry["outputs"]) == ("error", False, {})
        after = submit(fake, t2i("fine"), client_id="err")
        assert "execution_success" in [kind(m) for m in client.until_end(after)]
        client.close()
        assert fake.stats()["results"] == {failing: "error", after: "success"}


def test_fault_crash_next_exits_hard_mid_progress() -> None:
    with FakeComfyProcess() as fake:
        fake.control(fault="crash_next")
        client = Client(fake, "crash")
        submit(fake, t2i("crash", steps=6), client_id="crash")
        client.until(lambda m: kind(m) == "progress")
        assert fake.wait_exit(15) == 137
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError, OSError)):
            client.until(lambda m: False, timeout=5)
        client.close()


def test_a_taken_port_is_told_apart_from_other_start_failures() -> None:
    """A fake whose port was taken exits with EXIT_PORT_TAKEN (on Linux and Windows alike), which is what makes
    `FakeComfyProcess.start` pick another port instead of failing the test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = int(squatter.getsockname()[1])
        fake = FakeComfyProcess(port=port)
        with pytest.raises(RuntimeError, match="could not start"):
            fake.start()
        assert fake.wait_exit() == EXIT_PORT_TAKEN
    bad = subprocess.run([sys.executable, "-m", "tests.fake_comfyui", "--listen", "127.0.0.1", "--port", "70000"],
                         capture_output=True, timeout=60, cwd=Path(__file__).resolve().parents[1])
    assert bad.returncode not in (0, EXIT_PORT_TAKEN), bad.stderr
