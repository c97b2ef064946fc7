"""The fake ComfyUI's aiohttp application: ComfyUI 0.3.64's HTTP + WebSocket API, plus `/_fake/*` test controls."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from tests.fake_comfyui.control import Faults, Stats
from tests.fake_comfyui.executor import Executor
from tests.fake_comfyui.files_api import FilesApi
from tests.fake_comfyui.folders import Folders
from tests.fake_comfyui.hub import Hub
from tests.fake_comfyui.nodes import object_info
from tests.fake_comfyui.prompt_queue import PromptQueue
from tests.fake_comfyui.validation import validate_prompt

log = logging.getLogger("fake_comfyui")
MAX_UPLOAD_SIZE = 104857600
SERVER_FEATURES = {"supports_preview_metadata": True, "max_upload_size": MAX_UPLOAD_SIZE}
COMFYUI_VERSION = "0.3.64"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _internal_error() -> web.Response:
    """What aiohttp answers when a ComfyUI handler raises (e.g. on unparsable JSON)."""
    return web.Response(status=500, text="500 Internal Server Error\n\nServer got itself in trouble")


async def _json_body(request: web.Request) -> Any:
    return json.loads(await request.text())


class FakeComfyUI:
    """State of one fake server: queue, executor, sockets, folders, faults and counters."""

    def __init__(self, folders: Folders, faults: Faults, argv: list[str]) -> None:
        self.folders, self.faults, self.argv = folders, faults, argv
        self.stats = Stats()
        self.hub = Hub(faults.gate)
        self.queue = PromptQueue(self.hub)
        self.executor = Executor(folders, self.hub, self.queue, faults, self.stats)
        self.files = FilesApi(folders, self.stats)
        self.number = 0
        #: Set by SIGTERM/SIGINT, or by `POST /_fake/quit` where there are no such signals (Windows).
        self.quit = asyncio.Event()

    def make_app(self) -> web.Application:
        """The aiohttp application with every route under `/` and `/api`."""
        app = web.Application(client_max_size=MAX_UPLOAD_SIZE, middlewares=[self._fault_middleware])
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/ws", self.websocket),
            ("GET", "/system_stats", self.system_stats),
            ("GET", "/features", self.features),
            ("GET", "/queue", self.get_queue),
            ("POST", "/queue", self.post_queue),
            ("GET", "/prompt", self.get_prompt),
            ("POST", "/prompt", self.post_prompt),
            ("POST", "/interrupt", self.post_interrupt),
            ("POST", "/free", self.post_free),
            ("GET", "/history", self.get_history),
            ("GET", "/history/{prompt_id}", self.get_history_item),
            ("POST", "/history", self.post_history),
            ("GET", "/object_info", self.get_object_info),
            ("GET", "/object_info/{node_class}", self.get_object_info),
            *self.files.routes(),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
            app.router.add_route(method, "/api" + path, handler)
        app.router.add_post("/_fake/control", self.fake_control)
        app.router.add_get("/_fake/stats", self.fake_stats)
        app.router.add_post("/_fake/quit", self.fake_quit)
        return app

    @web.middleware
    async def _fault_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_fake/"):
            return await handler(request)
        if self.faults.mode == "hang":
            await self.faults.gate()
        elif self.faults.mode == "refuse":
            return web.Response(status=503)
        elif self.faults.mode == "slow":
            await asyncio.sleep(self.faults.slow_seconds)
        return await handler(request)

    # WebSocket -------------------------------------------------------------------------------------------------
    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        """`/ws?clientId=X`: status (with sid) on connect, current node on reconnect, feature flag negotiation."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.query.get("clientId", "") or uuid.uuid4().hex
        peer = self.hub.register(sid, ws)
        try:
            self.hub.send_json("status", {"status": self.queue.queue_info(), "sid": sid}, sid)
            if self.executor.client_id == sid and self.executor.last_node_id is not None:
                self.hub.send_json("executing", {"node": self.executor.last_node_id}, sid)
            first = True
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except json.JSONDecodeError:
                    log.warning("invalid JSON from client %s", sid)
                    continue
                if first and isinstance(data, dict) and data.get("type") == "feature_flags":
                    peer.feature_flags = dict(data.get("data") or {})
                    self.hub.send_json("feature_flags", dict(SERVER_FEATURES), sid)
                first = False
        finally:
            await self.hub.unregister(peer)
        return ws

    # info ------------------------------------------------------------------------------------------------------
    async def system_stats(self, request: web.Request) -> web.Response:
        """`GET /system_stats` in the recorded shape (CPU device)."""
        total, free = _memory()
        return web.json_response({
            "system": {"os": os.name, "ram_total": total, "ram_free": free, "comfyui_version": COMFYUI_VERSION,
                       "required_frontend_version": "1.27.10", "installed_templates_version": "0.1.95",
                       "required_templates_version": "0.1.95", "python_version": sys.version,
                       "pytorch_version": "2.13.0+cpu", "embedded_python": False, "argv": self.argv},
            "devices": [{"name": "cpu", "type": "cpu", "index": None, "vram_total": total, "vram_free": free,
                         "torch_vram_total": total, "torch_vram_free": free}],
        })

    async def features(self, request: web.Request) -> web.Response:
        """`GET /features`."""
        return web.json_response(SERVER_FEATURES)

    async def get_object_info(self, request: web.Request) -> web.Response:
        """`GET /object_info[/{Class}]` (unknown class: 200 `{}`)."""
        return web.json_response(object_info(self.folders, request.match_info.get("node_class")))

    # queue and prompts -----------------------------------------------------------------------------------------
    async def get_queue(self, request: web.Request) -> web.Response:
        """`GET /queue`."""
        return web.json_response(self.queue.snapshot())

    async def get_prompt(self, request: web.Request) -> web.Response:
        """`GET /prompt`."""
        return web.json_response(self.queue.queue_info())

    async def post_prompt(self, request: web.Request) -> web.Response:
        """`POST /prompt`: number counter, validation (400 bodies as recorded), queueing."""
        try:
            body = await _json_body(request)
            if "number" in body:
                number: float = float(body["number"])
            else:
                number = -self.number if isinstance(body, dict) and body.get("front") else self.number
                self.number += 1
            if not isinstance(body, dict) or "prompt" not in body:
                self.stats.rejected += 1
                error = {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided",
                         "extra_info": {}}
                return web.json_response({"error": error, "node_errors": {}}, status=400)
            prompt = body["prompt"]
            prompt_id = str(body.get("prompt_id", uuid.uuid4()))
            verdict = validate_prompt(prompt, self.folders, body.get("partial_execution_targets"))
        except Exception:  # ComfyUI lets these escape, so aiohttp answers 500
            log.warning("POST /prompt failed", exc_info=True)
            return _internal_error()
        if verdict.error is not None:
            self.stats.rejected += 1
            return web.json_response({"error": verdict.error, "node_errors": verdict.node_errors}, status=400)
        extra_data = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra_data["client_id"] = body["client_id"]
        self.queue.put(number, prompt_id, prompt, extra_data, verdict.good_outputs)
        self.stats.submitted.append(prompt_id)
        return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": verdict.node_errors})

    async def post_interrupt(self, request: web.Request) -> web.Response:
        """`POST /interrupt [{"prompt_id"}]`: a given id only stops the prompt if it is the running one."""
        try:
            body = await _json_body(request)
        except json.JSONDecodeError:
            body = {}
        prompt_id = body.get("prompt_id") if isinstance(body, dict) else None
        running = self.queue.running_ids()
        applied = not prompt_id or prompt_id in running
        if applied:
            self.executor.interrupt()
        self.stats.interrupts.append({"prompt_id": prompt_id or None, "running": running[0] if running else None,
                                      "applied": applied and bool(running)})
        return web.Response(status=200)

    async def post_queue(self, request: web.Request) -> web.Response:
        """`POST /queue {"delete": [ids]} | {"clear": true}`: pending prompts only."""
        try:
            body = await _json_body(request)
        except json.JSONDecodeError:
            return _internal_error()
        if body.get("clear"):
            self.stats.removed.extend(self.queue.wipe())
        for prompt_id in body.get("delete", []):
            self.stats.deleted.append(prompt_id)
            if self.queue.delete(prompt_id):
                self.stats.removed.append(prompt_id)
        return web.Response(status=200)

    async def post_free(self, request: web.Request) -> web.Response:
        """`POST /free {"unload_models", "free_memory"}`: free_memory empties the cache when the worker is idle."""
        try:
            body = await _json_body(request)
        except json.JSONDecodeError:
            return _internal_error()
        self.stats.frees.append(body)
        for flag in ("unload_models", "free_memory"):
            if body.get(flag):
                self.queue.set_flag(flag, True)
        return web.Response(status=200)

    # history ---------------------------------------------------------------------------------------------------
    async def get_history(self, request: web.Request) -> web.Response:
        """`GET /history[?max_items=N[&offset=K]]`."""
        max_items = request.query.get("max_items")
        offset = request.query.get("offset")
        return web.json_response(self.queue.history(int(max_items) if max_items is not None else None,
                                                    int(offset) if offset is not None else -1))

    async def get_history_item(self, request: web.Request) -> web.Response:
        """`GET /history/{id}`: `{}` until the prompt has finished."""
        return web.json_response(self.queue.history_item(request.match_info["prompt_id"]))

    async def post_history(self, request: web.Request) -> web.Response:
        """`POST /history {"delete": [ids]} | {"clear": true}`."""
        try:
            body = await _json_body(request)
        except json.JSONDecodeError:
            return _internal_error()
        if body.get("clear"):
            self.queue.clear_history()
        for prompt_id in body.get("delete", []):
            self.queue.delete_history(prompt_id)
        return web.Response(status=200)

    # test controls ---------------------------------------------------------------------------------------------
    async def fake_control(self, request: web.Request) -> web.Response:
        """`POST /_fake/control {"fault", "step_time", "load_time", "slow_seconds"}` -> current settings."""
        try:
            body = await _json_body(request)
            if "fault" in body:
                self.faults.set_mode(str(body["fault"]))
            for name in ("step_time", "load_time", "slow_seconds"):
                if name in body:
                    setattr(self.faults, name, max(0.0, float(body[name])))
            if "model_step_times" in body:
                self.faults.model_step_times = {str(k): max(0.0, float(v))
                                                for k, v in dict(body["model_step_times"]).items()}
        except (ValueError, TypeError, AttributeError) as ex:
            return web.json_response({"error": str(ex)}, status=400)
        return web.json_response(self.faults.as_json())

    async def fake_quit(self, request: web.Request) -> web.Response:
        """`POST /_fake/quit`: stop cleanly (exit code 0), as SIGTERM does on POSIX."""
        self.quit.set()
        return web.json_response({"quitting": True})

    async def fake_stats(self, request: web.Request) -> web.Response:
        """`GET /_fake/stats`: counters plus current settings."""
        return web.json_response({**self.stats.as_json(), **self.faults.as_json(), "pid": os.getpid(),
                                  "queue_remaining": self.queue.queue_remaining(), "sockets": self.hub.count(),
                                  "running": self.queue.running_ids(), "number": self.number})


def _memory() -> tuple[int, int]:
    try:
        import psutil

        vm = psutil.virtual_memory()
        return int(vm.total), int(vm.available)
    except ImportError:
        return 8 * 1024**3, 4 * 1024**3


__all__ = ["COMFYUI_VERSION", "FakeComfyUI"]
