"""Connected WebSocket clients and ComfyUI's routing: `sid=None` broadcasts, a sid sends to that socket only."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Outgoing = str | bytes | None  # None closes the writer


@dataclass(eq=False)
class Peer:
    """One socket with its own ordered outbox, drained by a single writer task."""

    sid: str
    ws: web.WebSocketResponse
    feature_flags: dict[str, Any] = field(default_factory=dict)
    outbox: asyncio.Queue[Outgoing] = field(default_factory=asyncio.Queue)
    writer: asyncio.Task[None] | None = None


class Hub:
    """The socket table (`server.sockets` in ComfyUI); replacing a sid replaces the socket that receives."""

    def __init__(self, gate: Callable[[], Awaitable[None]]) -> None:
        self._peers: dict[str, Peer] = {}
        self._gate = gate  # waited on before every send: a hung server sends nothing

    def register(self, sid: str, ws: web.WebSocketResponse) -> Peer:
        """Add a socket under `sid`, taking over from any earlier socket with the same id."""
        peer = Peer(sid, ws)
        peer.writer = asyncio.get_running_loop().create_task(self._drain(peer))
        self._peers[sid] = peer
        return peer

    async def unregister(self, peer: Peer) -> None:
        """Forget a closed socket (unless a newer socket already took its sid) and stop its writer."""
        if self._peers.get(peer.sid) is peer:
            del self._peers[peer.sid]
        peer.outbox.put_nowait(None)
        if peer.writer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await peer.writer

    def send_json(self, event: str, data: dict[str, Any], sid: str | None) -> None:
        """Queue `{"type": event, "data": data}` for one sid, or for every socket when sid is None."""
        self._post(json.dumps({"type": event, "data": data}), sid)

    def send_bytes(self, frame: bytes, sid: str | None) -> None:
        """Queue a binary frame for one sid, or for every socket when sid is None."""
        self._post(frame, sid)

    def supports_preview_metadata(self, sid: str | None) -> bool:
        """Whether the socket with this sid announced `supports_preview_metadata`."""
        peer = self._peers.get(sid) if sid is not None else None
        return bool(peer and peer.feature_flags.get("supports_preview_metadata"))

    def count(self) -> int:
        """Number of connected sockets."""
        return len(self._peers)

    async def close_all(self) -> None:
        """Close every socket (at shutdown)."""
        for peer in list(self._peers.values()):
            with contextlib.suppress(Exception):
                await peer.ws.close()
            await self.unregister(peer)

    def _post(self, message: str | bytes, sid: str | None) -> None:
        targets = list(self._peers.values()) if sid is None else [p for p in [self._peers.get(sid)] if p]
        for peer in targets:
            peer.outbox.put_nowait(message)

    async def _drain(self, peer: Peer) -> None:
        while (message := await peer.outbox.get()) is not None:
            await self._gate()
            try:
                if isinstance(message, bytes):
                    await peer.ws.send_bytes(message)
                else:
                    await peer.ws.send_str(message)
            except (ConnectionError, RuntimeError):
                return
