"""Push instead of polling: job events as Server-Sent Events (`/api/events`) or over a WebSocket (`/api/ws`).

Each message is one `JobEvent` as JSON (the seed's status fields plus message and seed_used), in stream order.
SSE lines carry the stream id, so a browser's `EventSource` resumes after a reconnect (`Last-Event-ID`) without
losing events the stream still keeps. `?job_id=` follows one job.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web

from comfystudio_desktop.api.api_errors import ApiError
from comfystudio_desktop.api.context import CONTEXT
from comfystudio_desktop.api.event_hub import valid_stream_id
from comfystudio_desktop.api.job_routes import seed_image_url
from comfystudio_desktop.jobs import JobEvent, valid_job_id

__all__ = ["event_json", "routes"]

routes = web.RouteTableDef()
_QUERY = frozenset({"job_id", "since", "token"})


def event_json(entry_id: str, event: JobEvent) -> dict[str, Any]:
    """One event as the push channel sends it (previews never travel through Redis, so none here)."""
    return {"id": entry_id, "job_id": event.job_id, "status": str(event.status), "progress": event.progress,
            "image_url": seed_image_url(event.image_url), "error": event.error, "updated_at": event.updated_at,
            "message": event.message, "seed_used": event.seed_used}


def _filters(request: web.Request) -> tuple[str | None, str | None]:
    unknown = sorted(set(request.query) - _QUERY)
    if unknown:
        raise ApiError(400, "unknown query parameter", unknown[0][:40])
    if any(len(request.query.getall(name)) > 1 for name in request.query):
        raise ApiError(400, "each query parameter may be given once")
    job_id = request.query.get("job_id")
    if job_id is not None and not valid_job_id(job_id):
        raise ApiError(400, "must be 1-64 letters, digits, '-' or '_'", "job_id")
    since = request.headers.get("Last-Event-ID") or request.query.get("since")
    if since is not None and not valid_stream_id(since):
        raise ApiError(400, "must be an event id such as 1700000000000-0", "since")
    return job_id, since


@routes.get("/api/events")
async def events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: `id: <stream id>`, `event: job` and `data: <event JSON>` per job event."""
    job_id, since = _filters(request)
    hub = request.app[CONTEXT].hub
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    await response.write(b": connected\n\n")
    with contextlib.suppress(ConnectionResetError):
        async for entry in hub.subscribe(job_id, since):
            if entry is None:
                await response.write(b": keep-alive\n\n")
                continue
            payload = json.dumps(event_json(*entry), separators=(",", ":"))
            await response.write(f"id: {entry[0]}\nevent: job\ndata: {payload}\n\n".encode())
    return response


@routes.get("/api/ws")
async def websocket(request: web.Request) -> web.WebSocketResponse:
    """A WebSocket that sends each job event as a JSON text message; what the client sends is ignored."""
    job_id, since = _filters(request)
    hub = request.app[CONTEXT].hub
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=4096)
    await ws.prepare(request)

    async def pump() -> None:
        async for entry in hub.subscribe(job_id, since):
            if entry is not None:
                await ws.send_str(json.dumps(event_json(*entry), separators=(",", ":")))

    sender = asyncio.get_running_loop().create_task(pump())
    try:
        async for _message in ws:  # ends when the client closes (or the heartbeat finds it gone)
            pass
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
            await sender
        await ws.close()
    return ws
