"""A client written like the seed's front end, against `comfystudio-desktop serve` with a headless worker
(`comfystudio-desktop worker`) on the fake ComfyUI and the home's embedded redis-server; and the push channel.

The seed's page polled `GET /api/status/{job_id}` every second (not configurable), so this does too, with a
bounded count.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import requests
from PIL import Image

from comfystudio_desktop.api.api_token import token_path
from comfystudio_desktop.home import Home
from comfystudio_desktop.settings import Settings, save_settings
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from tests.conftest import REPO_ROOT
from tests.fake_comfyui.process import FakeComfyProcess, free_port

CHECKPOINT = "tiny/sd15-random.safetensors"
SEED_POLL_S = 1.0
MAX_POLLS = 60


class SeedClient:
    """What the seed's page did, over HTTP: generate, poll status every second, show the image, cancel."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def generate(self, **job: Any) -> str:
        answer = self.session.post(f"{self.base}/api/generate", json=job, timeout=10)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["job_id"])

    def poll_until_done(self, job_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        seen: list[dict[str, Any]] = []
        for _ in range(MAX_POLLS):
            status = self.session.get(f"{self.base}/api/status/{job_id}", timeout=10).json()
            seen.append(status)
            if status["status"] in ("finished", "failed", "cancelled"):
                return status, seen
            time.sleep(SEED_POLL_S)  # the seed's page polled once a second
        raise AssertionError(f"job {job_id} not done after {MAX_POLLS} polls: {seen[-1]}")

    def image(self, image_url: str) -> bytes:
        answer = self.session.get(self.base + image_url, timeout=10)
        assert answer.status_code == 200
        return answer.content

    def cancel(self, job_id: str) -> dict[str, Any]:
        answer = self.session.post(f"{self.base}/api/cancel/{job_id}", timeout=10)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeComfyProcess]:
    with FakeComfyProcess(output_dir=tmp_path / "comfy-out", step_time=0.05) as proc:
        yield proc


@pytest.fixture
def served(home: Home, redis_server: EmbeddedRedis, fake: FakeComfyProcess) -> Iterator[SeedClient]:
    """`serve` and `worker` as the user would start them, sharing the home's redis-server."""
    port = free_port()
    save_settings(home.config_file, Settings(comfy_url=fake.url, api_port=port, job_timeout_s=60.0))
    base = [sys.executable, "-m", "comfystudio_desktop", "--home", str(home.root)]
    server = subprocess.Popen([*base, "serve"], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([*base, "worker"], cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        assert server.stdout is not None
        first = server.stdout.readline().decode()
        assert first.startswith(f"API on http://127.0.0.1:{port}; bearer token in "), first
        token = token_path(home).read_text(encoding="ascii").strip()
        assert token not in first
        yield SeedClient(f"http://127.0.0.1:{port}", token)
    finally:
        _stop(worker)
        _stop(server)
        if server.stdout is not None:
            server.stdout.close()


class EventReader:
    """Reads `/api/events` (SSE) in a thread, as a browser's EventSource would (token in the query)."""

    def __init__(self, base: str, token: str, job_id: str) -> None:
        self.events: list[dict[str, Any]] = []
        self.ids: list[str] = []
        self.answer = requests.get(f"{base}/api/events", params={"job_id": job_id, "token": token}, stream=True,
                                   timeout=30)
        assert self.answer.status_code == 200
        assert self.answer.headers["Content-Type"].startswith("text/event-stream")
        self.lines = self.answer.iter_lines(decode_unicode=True)
        assert next(self.lines) == ": connected"  # subscribed before the job is submitted
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with self.answer:
            for line in self.lines:
                if line.startswith("id: "):
                    self.ids.append(line[4:])
                elif line.startswith("data: "):
                    event = json.loads(line[6:])
                    self.events.append(event)
                    if event["status"] in ("finished", "failed", "cancelled"):
                        return


def test_seed_front_end_flow_and_push_in_order(served: SeedClient, home: Home) -> None:
    job_id = "seed-client-1"
    token = served.session.headers["Authorization"].split()[1]
    reader = EventReader(served.base, str(token), job_id)
    assert served.generate(job_id=job_id, prompt="a cat", seed=12345, workflow="text_to_image", model=CHECKPOINT,
                           aspect_ratio="1:1", batch_size=1) == job_id
    final, seen = served.poll_until_done(job_id)
    assert final["status"] == "finished", final
    assert final["progress"] == 100
    assert final["image_url"] == f"/outputs/{job_id}.png"
    assert all(set(s) == {"job_id", "status", "progress", "image_url", "error", "updated_at"} for s in seen)
    with Image.open(io.BytesIO(served.image(final["image_url"]))) as image:
        assert image.format == "PNG"
    assert served.image(final["image_url"]) == (home.outputs / f"{job_id}.png").read_bytes()

    reader.thread.join(30)
    statuses = [e["status"] for e in reader.events]
    assert statuses[0] == "queued" and statuses[-1] == "finished"
    assert "processing" in statuses
    assert [e["job_id"] for e in reader.events] == [job_id] * len(statuses)
    progress = [e["progress"] for e in reader.events]
    assert progress == sorted(progress), "events arrive in order"
    keys = [tuple(int(p) for p in i.split("-")) for i in reader.ids]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert reader.events[-1]["image_url"] == final["image_url"]

    # Cancel another job, as the page's cancel button did; it never finishes.
    other = served.generate(prompt="a dog", workflow="text_to_image", model=CHECKPOINT, steps=200)
    cancelled = served.cancel(other)
    assert cancelled["status"] == "cancelled"
    final_other, _ = served.poll_until_done(other)
    assert final_other["status"] == "cancelled"
    assert not (home.outputs / f"{other}.png").exists()


def test_websocket_push_needs_the_token(served: SeedClient) -> None:
    import asyncio

    import aiohttp

    async def run() -> tuple[int, list[dict[str, Any]]]:
        url = served.base.replace("http://", "ws://") + "/api/ws"
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(url):
                    refused = 0
            except aiohttp.WSServerHandshakeError as exc:
                refused = exc.status
            events: list[dict[str, Any]] = []
            headers = {"Authorization": cast(str, served.session.headers["Authorization"])}
            async with session.ws_connect(url, headers=headers) as ws:
                job_id = await asyncio.to_thread(served.generate, prompt="pushed", model=CHECKPOINT)
                async for message in ws:
                    event = json.loads(message.data)
                    if event["job_id"] == job_id:
                        events.append(event)
                        if event["status"] == "finished":
                            break
            return refused, events

    refused, events = asyncio.run(asyncio.wait_for(run(), 60))
    assert refused == 401
    assert events[0]["status"] == "queued"
    assert events[-1]["status"] == "finished"
