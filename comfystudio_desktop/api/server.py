"""The API's aiohttp application and its server, on whatever asyncio loop runs it (the window's qasync loop,
or `comfystudio-desktop serve`'s own)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from comfystudio_desktop.api import job_routes, output_files, push_routes
from comfystudio_desktop.api.api_token import load_or_create_token, token_path
from comfystudio_desktop.api.context import CONTEXT, ApiContext
from comfystudio_desktop.api.event_hub import EventHub
from comfystudio_desktop.api.middleware import (
    PathOnlyAccessLogger,
    auth_middleware,
    cors_middleware,
    errors_middleware,
)
from comfystudio_desktop.api.openapi_document import OPENAPI
from comfystudio_desktop.api.request_body import MAX_JSON_BYTES
from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.comfy.workflow_templates import TemplateLibrary
from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import IMAGE_SLOTS
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.settings import Settings, is_loopback_host

__all__ = ["ApiServer", "BindRefused", "build_app", "check_bind"]

log = logging.getLogger(__name__)
#: How long the API waits at start for its event follower to reach Redis before it answers anyway.
_HUB_CONNECT_S = 5.0


class BindRefused(ValueError):
    """A non-loopback address without the user's confirmation."""


def check_bind(host: str, confirmed: bool) -> None:
    """Loopback only, unless the user named another address and confirmed that it exposes the API."""
    if not is_loopback_host(host) and not confirmed:
        raise BindRefused(f"listening on {host!r} exposes the API to other machines; confirm it explicitly "
                          "(serve: --i-understand-this-exposes-the-api; settings: api_expose_confirmed)")


async def _openapi(_request: web.Request) -> web.Response:
    return web.json_response(OPENAPI)


def build_app(context: ApiContext, token: str) -> web.Application:
    """The application: routes, middlewares, and a body limit that fits a job with its three largest images."""
    max_images = context.settings.max_upload_mb * 1024 * 1024 * len(IMAGE_SLOTS)
    app = web.Application(
        middlewares=[errors_middleware, cors_middleware(frozenset(context.settings.api_allowed_origins)),
                     auth_middleware(token)],
        client_max_size=max_images + MAX_JSON_BYTES + 64 * 1024,
    )
    app[CONTEXT] = context
    app.add_routes(job_routes.routes)
    app.add_routes(output_files.routes)
    app.add_routes(push_routes.routes)
    app.router.add_get("/api/openapi.json", _openapi)
    return app


@dataclass
class ApiServer:
    """Serves the API on `host:port` until `stop()`; `start()` on a running asyncio loop."""

    home: Home
    settings: Settings
    queue: JobQueue
    library: TemplateLibrary
    comfy: Callable[[], ComfyClient]
    host: str = "127.0.0.1"
    port: int = 5000
    expose_confirmed: bool = False
    _runner: web.AppRunner | None = None
    _context: ApiContext | None = None

    @property
    def url(self) -> str:
        """The base URL clients use."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Check the address, make the token, start following events and listen."""
        check_bind(self.host, self.expose_confirmed)
        token = load_or_create_token(self.home)
        hub = EventHub(lambda: self.queue.conn.endpoint)
        context = ApiContext(self.home, self.settings, self.queue, self.library, self.comfy, hub)
        runner = web.AppRunner(build_app(context, token), access_log_class=PathOnlyAccessLogger,
                               access_log=logging.getLogger("comfystudio_desktop.api.access"), shutdown_timeout=2.0,
                               handle_signals=False)
        await runner.setup()
        # Follow the event stream before answering anyone: a client that opens the push channel and then submits
        # must get its job's first event, which a follower that starts "from the end" later would skip.
        hub.start()
        if not await hub.wait_connected(_HUB_CONNECT_S):
            log.warning("API push channel: Redis does not answer yet; events are pushed from when it does")
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
        except BaseException:
            await hub.stop()
            await runner.cleanup()
            context.executor.shutdown(wait=False)
            raise
        if self.port == 0:  # an ephemeral port (tests, the benchmark): say which one
            self.port = int(runner.addresses[0][1])
        self._runner, self._context = runner, context
        log.info("API listening on %s (token in %r)", self.url, str(token_path(self.home)))

    async def stop(self) -> None:
        """Stop listening, end the push feeds, release the threads."""
        if self._context is not None:
            await self._context.hub.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._context is not None:
            self._context.executor.shutdown(wait=False)
        self._runner = self._context = None
