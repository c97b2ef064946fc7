"""An API server on its own asyncio loop in a thread, on a free loopback port, for tests that talk HTTP to it."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import requests

from comfystudio_desktop.api.api_token import token_path
from comfystudio_desktop.api.server import ApiServer
from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.comfy.workflow_templates import load_library
from comfystudio_desktop.home import Home
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.settings import Settings


class ApiHarness:
    """`with ApiHarness(...) as api:` serves the API; `api.get/post` send the token unless told otherwise."""

    def __init__(self, home: Home, settings: Settings, queue: JobQueue) -> None:
        self.client = ComfyClient(settings.comfy_url, connect_timeout=1.0, read_timeout=3.0)
        self.server = ApiServer(home, settings, queue, load_library(home.workflows), lambda: self.client, port=0)
        self.home = home
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="api-test-loop")
        self.session = requests.Session()

    def __enter__(self) -> ApiHarness:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.close()
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        asyncio.run_coroutine_threadsafe(_cancel_the_rest(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.client.close()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def token(self) -> str:
        return token_path(self.home).read_text(encoding="ascii").strip()

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def request(self, method: str, path: str, *, token: bool = True, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers.update(self.auth())
        return self.session.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)


async def _cancel_the_rest() -> None:
    """Connection handlers aiohttp leaves for the loop to end."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def png_bytes(size: tuple[int, int] = (64, 48), colour: str = "red") -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()
