"""ComfyUI's WebSocket as a blocking stream of `ComfyEvent`s, read by one background thread that reconnects.

Messages ComfyUI sends while we are disconnected are lost; the stream says so with DISCONNECTED and
RECONNECTED events and the consumer then reads `GET /history/{id}` for the prompts it waits on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlparse

import websocket

from comfystudio_desktop.backoff import Backoff
from comfystudio_desktop.comfy.comfy_client import ComfyClient, is_loopback_host
from comfystudio_desktop.comfy.comfy_errors import ComfyError
from comfystudio_desktop.comfy.comfy_events import (
    ComfyEvent,
    EventAttributor,
    EventKind,
    parse_binary_frame,
    parse_text_frame,
)

__all__ = ["LOCAL_BACKOFF", "ComfyEventStream"]

log = logging.getLogger(__name__)

_CLOSED = object()  # queue sentinel: the stream was closed


#: A ComfyUI on this machine refuses a connection at no cost: try every second, so jobs waiting for it resume
#: within about a second of it answering again (the stream's RECONNECTED wakes them).
LOCAL_BACKOFF = Backoff(initial=0.25, factor=2.0, maximum=1.0)


class ComfyEventStream:
    """Reads `/ws?clientId=...` in a thread; `get()` / iteration hand out one `ComfyEvent` per frame.

    Every outage is one DISCONNECTED event (also when ComfyUI is down at start) and, once a socket is open
    again, one RECONNECTED event naming our prompt that ComfyUI is running, if any.

    Args:
        ws_url: the socket URL, from `ComfyClient.ws_url()`.
        running_prompt: asked after a reconnect for our prompt ComfyUI is running (None: none), so the
            `executing` greeting without a prompt id is attributed correctly.
        preview_metadata: ask for type-4 preview frames, which name their prompt.
        max_preview_backlog: previews are dropped while more events than this wait unread.
    """

    def __init__(self, ws_url: str, *, running_prompt: Callable[[], str | None] | None = None,
                 backoff: Backoff | None = None, connect_timeout: float = 5.0, ping_interval: float = 20.0,
                 preview_metadata: bool = True, max_preview_backlog: int = 32) -> None:
        self._url = ws_url
        self._direct = _direct_options(ws_url)
        self._running_prompt = running_prompt
        self._backoff = backoff or Backoff()
        self._connect_timeout = connect_timeout
        self._ping_interval = ping_interval
        self._poll = max(0.05, min(1.0, ping_interval / 4))
        self._preview_metadata = preview_metadata
        self._max_preview_backlog = max_preview_backlog
        self._events: queue.Queue[object] = queue.Queue()
        self._attributor = EventAttributor()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self._ws: websocket.WebSocket | None = None
        self._thread = threading.Thread(target=self._run, name="comfy-events", daemon=True)

    @classmethod
    def for_client(cls, client: ComfyClient, **kwargs: Any) -> ComfyEventStream:
        """A stream on `client`'s socket that asks `GET /queue` for our running prompt after a reconnect."""

        def running_prompt() -> str | None:
            state = client.queue()
            ours = [item.prompt_id for item in state.running if item.client_id == client.client_id]
            return ours[0] if ours else None

        kwargs.setdefault("running_prompt", running_prompt)
        if is_loopback_host(urlparse(client.base_url).hostname or ""):
            kwargs.setdefault("backoff", LOCAL_BACKOFF)
        return cls(client.ws_url(), **kwargs)

    # ---- consumer side ----------------------------------------------------------------------------------------

    def start(self) -> ComfyEventStream:
        """Start the reader thread (once); returns self."""
        if not self._thread.is_alive() and not self._stop.is_set():
            self._thread.start()
        return self

    @property
    def connected(self) -> bool:
        """True while the socket is open."""
        return self._connected.is_set()

    @property
    def closed(self) -> bool:
        """True once `close()` was called."""
        return self._stop.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Block until the socket is open (True) or `timeout` passes (False)."""
        return self._connected.wait(timeout)

    def get(self, timeout: float | None = None) -> ComfyEvent | None:
        """The next event; None when `timeout` passes first, or when the stream is closed and drained."""
        try:
            item = self._events.get(timeout=None if timeout is None else max(0.0, timeout))
        except queue.Empty:
            return None
        if item is _CLOSED:
            self._events.put(_CLOSED)  # let every later get() see the end too
            return None
        assert isinstance(item, ComfyEvent)
        return item

    def __iter__(self) -> Iterator[ComfyEvent]:
        """Every event until the stream is closed."""
        while (event := self.get()) is not None:
            yield event

    def reconnect(self) -> None:
        """Drop the current socket (e.g. after the machine slept) so the reader reconnects; no-op if not connected."""
        self._shutdown_socket()

    def close(self, timeout: float = 5.0) -> bool:
        """Stop the reader and wait up to `timeout` s for it; True if it ended. Safe to call twice."""
        self._stop.set()
        self._shutdown_socket()
        self._events.put(_CLOSED)
        if self._thread.is_alive():
            self._thread.join(timeout)
        ended = not self._thread.is_alive()
        if not ended:
            log.warning("ComfyUI event reader did not stop within %.1f s", timeout)
        return ended

    def __enter__(self) -> ComfyEventStream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reader thread ----------------------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0  # failed connection attempts since the last good connection
        outage: str | None = None  # why we are not connected, once reported
        while not self._stop.is_set():
            try:
                ws = self._open()
            except Exception as exc:  # noqa: BLE001 - the reader must outlive any connect failure (bad URL, TLS, ...)
                failures += 1
                reason = _reason(exc)
                if outage is None:
                    outage = reason
                    log.warning("ComfyUI event stream cannot connect to %s: %s", self._url, reason)
                    self._emit(ComfyEvent(EventKind.DISCONNECTED, prompt_id=self._attributor.running_prompt,
                                          error=reason))
                else:
                    log.debug("Reconnect attempt %d to %s failed: %s", failures, self._url, reason)
                self._stop.wait(self._backoff.delay(failures))
                continue
            if outage is not None:
                self._refresh_running_prompt()
                log.info("ComfyUI event stream reconnected (%d failed attempt(s) before)", failures)
                self._emit(ComfyEvent(EventKind.RECONNECTED, prompt_id=self._attributor.running_prompt))
            else:
                log.info("ComfyUI event stream connected to %s", self._url)
            failures, outage = 0, None
            outage = self._read(ws)
            self._close_socket(ws)
            if self._stop.is_set():
                break
            log.warning("ComfyUI event stream lost: %s; reconnecting", outage)
            self._emit(ComfyEvent(EventKind.DISCONNECTED, prompt_id=self._attributor.running_prompt, error=outage))
            # A short pause even before the first retry, so a server that accepts and drops at once is no busy loop.
            self._stop.wait(self._backoff.delay(1))
        log.debug("ComfyUI event reader stopped")

    def _open(self) -> websocket.WebSocket:
        ws = websocket.create_connection(self._url, timeout=self._connect_timeout, enable_multithread=True,
                                         **self._direct)
        try:
            if self._preview_metadata:
                ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
            ws.settimeout(self._poll)
        except (websocket.WebSocketException, OSError):
            ws.close()
            raise
        with self._lock:
            if self._stop.is_set():  # close() ran while we were connecting
                ws.close()
                raise websocket.WebSocketConnectionClosedException("stream closed")
            self._ws = ws
        self._connected.set()
        return ws

    def _read(self, ws: websocket.WebSocket) -> str:
        """Read frames until the socket fails; return why."""
        last_frame = time.monotonic()
        ping_sent = False
        while not self._stop.is_set():
            try:
                opcode, data = ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                idle = time.monotonic() - last_frame
                if ping_sent and idle > 2 * self._ping_interval:
                    return f"no answer from ComfyUI for {idle:.0f} s"
                if not ping_sent and idle > self._ping_interval:
                    try:
                        ws.ping()  # aiohttp answers with a pong, which counts as a frame
                    except (websocket.WebSocketException, OSError) as exc:
                        return _reason(exc)
                    ping_sent = True
                continue
            except (websocket.WebSocketException, OSError) as exc:
                return _reason(exc)
            last_frame, ping_sent = time.monotonic(), False
            if opcode == websocket.ABNF.OPCODE_TEXT:
                self._emit(self._attributor.attribute(parse_text_frame(data)))
            elif opcode == websocket.ABNF.OPCODE_BINARY:
                self._emit(self._attributor.attribute(parse_binary_frame(data)))
            elif opcode == websocket.ABNF.OPCODE_CLOSE:
                return "closed by ComfyUI"
        return "stream closed"

    def _refresh_running_prompt(self) -> None:
        if self._running_prompt is None:
            return
        try:
            self._attributor.assume_running(self._running_prompt())
        except (ComfyError, ValueError) as exc:
            log.info("Could not ask ComfyUI which prompt runs after reconnecting: %s", exc)

    def _emit(self, event: ComfyEvent) -> None:
        if self._stop.is_set():
            return  # closed: nothing may follow the end-of-stream marker
        if event.kind is EventKind.PREVIEW and self._events.qsize() > self._max_preview_backlog:
            return  # the consumer is behind; a stale preview is worthless
        self._events.put(event)

    def _shutdown_socket(self) -> None:
        with self._lock:
            ws = self._ws
        if ws is not None and ws.sock is not None:
            # shutdown() wakes a recv() blocked in the reader thread; close() alone may not.
            with contextlib.suppress(OSError):
                ws.sock.shutdown(socket.SHUT_RDWR)

    def _close_socket(self, ws: websocket.WebSocket) -> None:
        self._connected.clear()
        with self._lock:
            if self._ws is ws:
                self._ws = None
        with contextlib.suppress(websocket.WebSocketException, OSError):
            ws.close(timeout=0.5)
        # After ComfyUI's close frame websocket-client has answered it and counts the socket as closed, so close()
        # above returned at once with the socket still open. Closing a closed socket is a no-op.
        if ws.sock is not None:
            ws.sock.close()


def _direct_options(ws_url: str) -> dict[str, Any]:
    """Options that keep a proxy from the environment out of the way of a ComfyUI on this machine.

    websocket-client reads `http_proxy` from the environment but honours `http_no_proxy` only when a proxy
    host is passed explicitly; naming the target itself as the (then unused) proxy makes it connect directly.
    """
    parsed = urlparse(ws_url)
    host = parsed.hostname or ""
    if not is_loopback_host(host):
        return {}
    port = parsed.port or (443 if parsed.scheme == "wss" else 80)
    return {"http_proxy_host": host, "http_proxy_port": port, "http_no_proxy": [host]}


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return "connection refused" if isinstance(exc, ConnectionRefusedError) else " ".join(text.split())
