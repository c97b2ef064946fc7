"""What the API's handlers work with, held by the aiohttp application."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from aiohttp import web

from comfystudio_desktop.api.event_hub import EventHub
from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.comfy.model_catalogue import Catalogue, load_catalogue
from comfystudio_desktop.comfy.workflow_templates import TemplateLibrary
from comfystudio_desktop.home import Home
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.settings import Settings

__all__ = ["CONTEXT", "ApiContext"]

T = TypeVar("T")
_MODELS_TTL_S = 10.0


@dataclass(eq=False)
class ApiContext:
    """The core parts one API server uses. `comfy` is asked each time (the window may replace its client)."""

    home: Home
    settings: Settings
    queue: JobQueue
    library: TemplateLibrary
    comfy: Callable[[], ComfyClient]
    hub: EventHub
    # The queue's calls block (redis-py); they run here, never on the loop (the window's GUI thread).
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(16, "api"))
    _models: tuple[float, Catalogue] | None = None

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking call in the API's threads."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, partial(function, *args, **kwargs))

    async def catalogue(self) -> Catalogue:
        """The grouped model list, asked of ComfyUI at most every few seconds."""
        if self._models is not None and time.monotonic() - self._models[0] < _MODELS_TTL_S:
            return self._models[1]
        catalogue = await self.run(load_catalogue, self.comfy(), self.settings.comfy_models_dir or None)
        self._models = (time.monotonic(), catalogue)
        return catalogue


CONTEXT = web.AppKey("context", ApiContext)
