"""`ComfyEventStream` over a real WebSocket: a scripted aiohttp server replays the recorded frames."""

from __future__ import annotations

import asyncio
import gc
import json
import struct
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from aiohttp import WSMsgType, web

from comfystudio_desktop.backoff import Backoff
from comfystudio_desktop.comfy.comfy_events import ComfyEvent, EventKind
from comfystudio_desktop.comfy.comfy_stream import ComfyEventStream
from comfystudio_desktop.comfy.job_tracker import JobOutcome, JobTracker
from tests.fake_comfyui.process import free_port
from tests.helpers import wait_until
from tests.test_comfy_transcripts import ws_events, ws_frames

FAST = Backoff(initial=0.05, factor=2.0, maximum=0.2)
L_ID = "b74e1dcf-2a19-491f-83f1-10b9a86e1711"


@dataclass
class Connection:
    """One socket the scripted server accepted."""

    client_id: str | None
    ws: web.WebSocketResponse
    request: web.Request
    received: list[str] = field(default_factory=list)


class WsScript:
    """A WebSocket server on its own event loop thread; the test says what each connection gets."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.connections: list[Connection] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def start(self) -> WsScript:
        self._thread.start()
        self._call(self._start())
        return self

    def url(self, client_id: str = "test-client") -> str:
        return f"ws://127.0.0.1:{self.port}/ws?clientId={client_id}"

    def wait_connections(self, count: int, timeout: float = 10.0) -> Connection:
        wait_until(lambda: len(self.connections) >= count, timeout, message=f"{count} connection(s)")
        return self.connections[count - 1]

    def send(self, frames: list[str | bytes], index: int = -1) -> None:
        self._call(self._send(self.connections[index].ws, frames))

    def abort(self, index: int = -1) -> None:
        """Drop the TCP connection without a close frame (ComfyUI restarting, a network failure)."""
        transport = self.connections[index].request.transport
        assert transport is not None
        self._loop.call_soon_threadsafe(transport.abort)

    def close_socket(self, index: int = -1) -> None:
        """Close with a proper close frame."""
        self._call(self.connections[index].ws.close())

    def stop(self) -> None:
        if self._runner is not None:
            self._call(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _call(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws", self._handler)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def _handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        connection = Connection(request.query.get("clientId"), ws, request)
        self.connections.append(connection)
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                connection.received.append(message.data)
        return ws

    @staticmethod
    async def _send(ws: web.WebSocketResponse, frames: list[str | bytes]) -> None:
        for frame in frames:
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(frame)


@pytest.fixture
def server() -> Iterator[WsScript]:
    script = WsScript().start()
    yield script
    script.stop()


@pytest.fixture
def streams() -> Iterator[Callable[..., ComfyEventStream]]:
    """Make streams that are always closed (and must stop) at the end of the test."""
    made: list[ComfyEventStream] = []

    def make(url: str, **kwargs: object) -> ComfyEventStream:
        kwargs.setdefault("backoff", FAST)
        stream = ComfyEventStream(url, **kwargs).start()  # type: ignore[arg-type]
        made.append(stream)
        return stream

    yield make
    for stream in made:
        assert stream.close(timeout=5), "event reader thread did not stop"


def _collect(stream: ComfyEventStream, until: Callable[[ComfyEvent], bool], timeout: float = 10.0) -> list[ComfyEvent]:
    """Events up to and including the first that matches `until`; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    events: list[ComfyEvent] = []
    while True:
        remaining = deadline - time.monotonic()
        event = stream.get(timeout=max(0.0, remaining))
        if event is None:
            raise AssertionError(f"no matching event within {timeout} s; got {events}")
        events.append(event)
        if until(event):
            return events


def _ready(stream: ComfyEventStream, server: WsScript, count: int = 1) -> Connection:
    """Both ends see connection number `count` (the client also finished its handshake)."""
    connection = server.wait_connections(count)
    assert stream.wait_connected(10), "stream did not connect"
    return connection


def _is_end(prompt_id: str) -> Callable[[ComfyEvent], bool]:
    return lambda e: e.kind is EventKind.EXECUTING and e.node is None and e.prompt_id == prompt_id


def test_recorded_run_arrives_as_the_same_events(server: WsScript, streams: Callable[..., ComfyEventStream]) -> None:
    stream = streams(server.url("rec-client"))
    connection = _ready(stream, server)
    assert connection.client_id == "rec-client"
    wait_until(lambda: connection.received, message="feature_flags from the client")
    assert json.loads(connection.received[0]) == {"type": "feature_flags", "data": {"supports_preview_metadata": True}}
    assert stream.connected
    server.send(ws_frames("b_t2i_checkpoint.json"))
    events = _collect(stream, _is_end("rec-t2i-72e50b3d"))
    expected = ws_events("b_t2i_checkpoint.json")
    assert [(e.kind, e.prompt_id, e.node) for e in events] == [(e.kind, e.prompt_id, e.node) for e in expected]
    previews = [e for e in events if e.kind is EventKind.PREVIEW]
    assert previews and all(p.prompt_id == "rec-t2i-72e50b3d" and p.preview for p in previews)


def test_drop_mid_run_reconnects_and_attributes_the_greeting(server: WsScript,
                                                            streams: Callable[..., ComfyEventStream]) -> None:
    stream = streams(server.url("rec-client-d866a656"))
    _ready(stream, server)
    server.send(ws_frames("l_ws_reconnect_midrun.json", ws="ws1"))
    tracker = JobTracker(L_ID, total_nodes=7)
    for event in _collect(stream, lambda e: e.kind is EventKind.PREVIEW):
        tracker.apply(event)
    server.abort()
    gap = _collect(stream, lambda e: e.kind is EventKind.RECONNECTED)
    assert [e.kind for e in gap] == [EventKind.DISCONNECTED, EventKind.RECONNECTED]
    assert gap[0].prompt_id == L_ID and gap[0].error
    server.wait_connections(2)
    server.send(ws_frames("l_ws_reconnect_midrun.json", ws="ws2"))
    after = _collect(stream, _is_end(L_ID))
    greeting = after[1]
    assert greeting.kind is EventKind.EXECUTING and greeting.prompt_id == L_ID and greeting.node == "3"
    for event in after:
        tracker.apply(event)
    assert tracker.outcome is JobOutcome.SUCCESS and [i.filename for i in tracker.output_images] == [
        "rec_reconnect_00001_.png"]


def test_after_reconnect_the_running_prompt_is_asked_for(server: WsScript,
                                                        streams: Callable[..., ComfyEventStream]) -> None:
    asked = threading.Event()

    def running_prompt() -> str | None:
        asked.set()
        return "from-get-queue"

    stream = streams(server.url(), running_prompt=running_prompt)
    _ready(stream, server)
    server.close_socket()  # a clean close frame from the server
    gap = _collect(stream, lambda e: e.kind is EventKind.RECONNECTED)
    assert gap[0].kind is EventKind.DISCONNECTED and gap[0].error == "closed by ComfyUI"
    assert asked.is_set() and gap[-1].prompt_id == "from-get-queue"
    server.wait_connections(2)
    server.send(ws_frames("l_ws_reconnect_midrun.json", ws="ws2")[:2])
    greeting = _collect(stream, lambda e: e.kind is EventKind.EXECUTING)[-1]
    assert greeting.prompt_id == "from-get-queue"


def test_reconnect_on_request(server: WsScript, streams: Callable[..., ComfyEventStream]) -> None:
    stream = streams(server.url())
    _ready(stream, server)
    stream.reconnect()
    kinds = [e.kind for e in _collect(stream, lambda e: e.kind is EventKind.RECONNECTED)]
    assert kinds == [EventKind.DISCONNECTED, EventKind.RECONNECTED]
    server.wait_connections(2)


def test_comfy_down_at_start_then_up(streams: Callable[..., ComfyEventStream]) -> None:
    port = free_port()
    stream = streams(f"ws://127.0.0.1:{port}/ws?clientId=x")
    down = _collect(stream, lambda e: e.kind is EventKind.DISCONNECTED)
    assert down[-1].error == "connection refused" and not stream.connected
    late = WsScript(port).start()
    try:
        assert _collect(stream, lambda e: e.kind is EventKind.RECONNECTED)[-1].kind is EventKind.RECONNECTED
        assert stream.wait_connected(5)
        late.wait_connections(1)
        late.send([json.dumps({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}}})])
        assert _collect(stream, lambda e: e.kind is EventKind.STATUS)[-1].queue_remaining == 0
    finally:
        assert stream.close(timeout=5)
        late.stop()


def test_close_is_prompt_while_connected_and_while_backing_off(server: WsScript) -> None:
    connected = ComfyEventStream(server.url(), backoff=FAST).start()
    assert connected.wait_connected(5)
    started = time.monotonic()
    assert connected.close(timeout=5)
    assert time.monotonic() - started < 2.0
    assert connected.get(timeout=1) is None and list(connected) == []

    waiting = ComfyEventStream(f"ws://127.0.0.1:{free_port()}/ws", backoff=Backoff(10, 1, 10)).start()
    _collect(waiting, lambda e: e.kind is EventKind.DISCONNECTED)
    started = time.monotonic()
    assert waiting.close(timeout=5)
    assert time.monotonic() - started < 2.0
    assert waiting.close(timeout=1)  # twice is fine


def test_iteration_ends_when_closed(server: WsScript) -> None:
    stream = ComfyEventStream(server.url(), backoff=FAST).start()
    _ready(stream, server)
    server.send([json.dumps({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 3}}}})])
    seen: list[ComfyEvent] = []
    for event in stream:
        seen.append(event)
        stream.close()
    assert [e.queue_remaining for e in seen] == [3]


def test_stale_previews_are_dropped_when_the_consumer_lags() -> None:
    stream = ComfyEventStream("ws://127.0.0.1:1/ws", max_preview_backlog=4)  # never started
    preview = ComfyEvent(EventKind.PREVIEW, preview=b"x")
    for _ in range(20):
        stream._emit(preview)
    stream._emit(ComfyEvent(EventKind.SUCCESS, prompt_id="p"))  # never dropped
    kinds = [e.kind for e in iter(lambda: stream.get(timeout=0), None)]
    assert kinds.count(EventKind.PREVIEW) == 5 and kinds[-1] is EventKind.SUCCESS


def test_binary_frames_of_the_wire_format(server: WsScript, streams: Callable[..., ComfyEventStream]) -> None:
    stream = streams(server.url())
    _ready(stream, server)
    meta = json.dumps({"node_id": "3", "prompt_id": "p", "image_type": "image/png"}).encode()
    server.send([struct.pack(">II", 4, len(meta)) + meta + b"\x89PNG", struct.pack(">II", 1, 2) + b"\x89PNG2"])
    first, second = _collect(stream, lambda e: e.preview == b"\x89PNG2")
    assert (first.prompt_id, first.node, first.preview_mime, first.preview) == ("p", "3", "image/png", b"\x89PNG")
    assert (second.preview_mime, second.prompt_id) == ("image/png", None)


@pytest.mark.parametrize(("attempt", "delay"), [(0, 0.5), (1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0), (6, 10.0),
                                                (1000, 10.0)])
def test_backoff(attempt: int, delay: float) -> None:
    assert Backoff().delay(attempt) == delay


def test_a_local_comfy_is_reached_past_the_users_proxy(server: WsScript, monkeypatch: pytest.MonkeyPatch,
                                                       streams: Callable[..., ComfyEventStream]) -> None:
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(name, dead_proxy)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    stream = streams(server.url())
    _ready(stream, server)


def test_a_socket_closed_by_comfyui_is_closed_by_us_too(server: WsScript,
                                                         streams: Callable[..., ComfyEventStream]) -> None:
    """After ComfyUI's close frame the old socket is closed, not left for the garbage collector to find.

    websocket-client answers a close frame itself and then treats its `close()` as done, socket still open; each
    such reconnect leaked one socket (closed later by the collector, with a ResourceWarning).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        stream = streams(server.url())
        _ready(stream, server)
        for count in (2, 3):
            server.close_socket()
            _collect(stream, lambda e: e.kind is EventKind.RECONNECTED)
            server.wait_connections(count)
        assert stream.close(timeout=5)
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning) and "socket" in str(w.message)]
    assert leaks == []
