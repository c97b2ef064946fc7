"""`ComfyClient` over real HTTP against a small scripted server that answers with the recorded replies."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from comfystudio_desktop.comfy.comfy_client import ComfyClient, QueueItem
from comfystudio_desktop.comfy.comfy_errors import (
    ComfyHTTPError,
    ComfyUnavailable,
    ComfyValidationError,
)
from tests.fake_comfyui.process import free_port
from tests.test_comfy_transcripts import http_reply

B_ID = "rec-t2i-72e50b3d"
Reply = tuple[int, str, bytes]  # status, content type, body


@dataclass
class Seen:
    """One request the scripted server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Script:
    """Replies by (method, path); every request is recorded."""

    routes: dict[tuple[str, str], Reply | Callable[[Seen], Reply]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def json(self, method: str, path: str, data: Any, status: int = 200) -> None:
        self.routes[(method, path)] = (status, "application/json; charset=utf-8", json.dumps(data).encode())

    def empty(self, method: str, path: str, status: int = 200) -> None:
        self.routes[(method, path)] = (status, "", b"")


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            seen = Seen(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True),
                        dict(self.headers.items()), self.rfile.read(length))
            script.seen.append(seen)
            route = script.routes.get((self.command, parts.path), (404, "", b""))
            status, content_type, body = route(seen) if callable(route) else route
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer  # noqa: N815

    return Handler


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def client(script: Script) -> Iterator[ComfyClient]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    comfy = ComfyClient(f"http://127.0.0.1:{server.server_address[1]}", client_id="test-client", read_timeout=5)
    yield comfy
    comfy.close()
    script.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


def _recorded_json(name: str, method: str, path: str, **kwargs: Any) -> Any:
    return http_reply(name, method, path, **kwargs)["response_json"]


def test_system_stats_and_features(client: ComfyClient, script: Script) -> None:
    script.json("GET", "/system_stats", _recorded_json("a_info_endpoints.json", "GET", "/system_stats"))
    script.json("GET", "/features", _recorded_json("a_info_endpoints.json", "GET", "/features"))
    assert client.system_stats()["system"]["comfyui_version"] == "0.3.64"
    assert client.features() == {"supports_preview_metadata": True, "max_upload_size": 104857600}
    assert client.is_up()


def test_features_on_an_old_server(client: ComfyClient) -> None:
    assert client.features() == {}


def test_object_info_one_class_all_and_unknown(client: ComfyClient, script: Script) -> None:
    info = _recorded_json("a_info_endpoints.json", "GET", "/object_info/UNETLoader")
    script.json("GET", "/object_info/UNETLoader", info)
    script.json("GET", "/object_info/NoSuchNode", {})
    script.json("GET", "/object_info", {"UNETLoader": info["UNETLoader"], "KSampler": {}})
    assert client.object_info("UNETLoader")["UNETLoader"]["input"]["required"]["unet_name"][0] == [
        "tiny/sd15-unet-random.safetensors"]
    assert client.object_info("NoSuchNode") == {}
    assert set(client.object_info()) == {"UNETLoader", "KSampler"}


def test_models_404_is_empty(client: ComfyClient, script: Script) -> None:
    script.json("GET", "/models/diffusion_models", ["tiny/sd15-unet-random.safetensors"])
    assert client.models("diffusion_models") == ["tiny/sd15-unet-random.safetensors"]
    assert client.models("unet") == []  # recorded: 404 with an empty body
    with pytest.raises(ValueError, match="invalid model folder"):
        client.models("../etc")


def test_queue_lists_running_and_pending_with_client_ids(client: ComfyClient, script: Script) -> None:
    script.json("GET", "/queue", _recorded_json("g_queue_delete.json", "GET", "/queue", label="before delete"))
    state = client.queue()
    assert state.running == (QueueItem(state.running[0].number, "e008e516-bd53-4a8a-8a9d-0c90532e0885",
                                       "rec-client-580fc6b0"),)
    assert state.running_ids == ("e008e516-bd53-4a8a-8a9d-0c90532e0885",)
    assert state.pending_ids == ("c0f0eb8f-d39a-4781-9639-37e40b41ec33",)
    assert "c0f0eb8f-d39a-4781-9639-37e40b41ec33" in state and "nope" not in state


def test_history_empty_is_none_then_entry(client: ComfyClient, script: Script) -> None:
    script.json("GET", f"/history/{B_ID}", {})
    assert client.history(B_ID) is None
    script.json("GET", f"/history/{B_ID}", _recorded_json("b_t2i_checkpoint.json", "GET", f"/history/{B_ID}",
                                                          index=1))
    entry = client.history(B_ID)
    assert entry is not None and entry["status"]["status_str"] == "success"


def test_view_returns_bytes_and_404_is_an_error(client: ComfyClient, script: Script) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    script.routes[("GET", "/view")] = (200, "image/png", png)
    assert client.view("rec_t2i_00001_.png", "comfystudio") == png
    assert script.seen[-1].query == {"filename": ["rec_t2i_00001_.png"], "subfolder": ["comfystudio"],
                                     "type": ["output"]}
    script.empty("GET", "/view", status=404)
    with pytest.raises(ComfyHTTPError) as info:
        client.view("missing.png")
    assert info.value.status == 404 and not isinstance(info.value, ComfyValidationError)


def test_submit_sends_our_client_id_and_prompt_id(client: ComfyClient, script: Script) -> None:
    script.json("POST", "/prompt", {"prompt_id": "job-1", "number": 7, "node_errors": {}})
    graph = _recorded_json("b_t2i_checkpoint.json", "GET", f"/history/{B_ID}", index=1)[B_ID]["prompt"][2]
    result = client.submit(graph, "job-1")
    assert (result.prompt_id, result.number) == ("job-1", 7)
    body = script.seen[-1].json()
    assert body == {"prompt": graph, "client_id": "test-client", "prompt_id": "job-1"}
    client.submit(graph, "job-2", client_id="other")
    assert script.seen[-1].json()["client_id"] == "other"


def test_submit_400_raises_one_validation_error(client: ComfyClient, script: Script) -> None:
    exchange = http_reply("h_errors.json", "POST", "/prompt", label="missing required input")
    script.json("POST", "/prompt", exchange["response_json"], status=400)
    with pytest.raises(ComfyValidationError) as info:
        client.submit(exchange["request_json"]["prompt"], "job-1")
    assert str(info.value) == "ComfyUI rejected the workflow: node 3 (KSampler) input 'seed': Required input is missing"
    assert info.value.node_errors[0].input_name == "seed"


@pytest.mark.parametrize("bad", ["", "  ", None])
def test_submit_needs_a_prompt_id(client: ComfyClient, script: Script, bad: Any) -> None:
    with pytest.raises(ValueError, match="prompt id"):
        client.submit({"1": {}}, bad)
    assert script.seen == []


def test_interrupt_always_names_the_prompt(client: ComfyClient, script: Script) -> None:
    script.empty("POST", "/interrupt")
    client.interrupt("job-1")
    assert script.seen[-1].json() == {"prompt_id": "job-1"}
    for bad in ("", None, "   "):
        with pytest.raises(ValueError):
            client.interrupt(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="without a prompt_id"):
        client._request("POST", "/interrupt")  # even the plumbing refuses
    with pytest.raises(ValueError, match="without a prompt_id"):
        client._request("POST", "/interrupt", json_body={})
    assert len(script.seen) == 1


def test_delete_from_queue(client: ComfyClient, script: Script) -> None:
    script.empty("POST", "/queue")
    client.delete_from_queue(["a", "b"])
    assert script.seen[-1].json() == {"delete": ["a", "b"]}
    client.delete_from_queue([])
    assert len(script.seen) == 1  # nothing sent for no ids (and never a "clear")


def _upload_reply(name: str, subfolder: str = "") -> Callable[[Seen], Reply]:
    def reply(seen: Seen) -> Reply:
        return 200, "application/json", json.dumps({"name": name, "subfolder": subfolder, "type": "input"}).encode()
    return reply


def test_upload_bytes_returns_the_name_comfy_chose(client: ComfyClient, script: Script) -> None:
    script.routes[("POST", "/upload/image")] = _upload_reply("rec_input (1).png")
    assert client.upload_image(b"\x89PNG...", "rec_input.png") == "rec_input (1).png"
    seen = script.seen[-1]
    assert seen.headers["Content-Type"].startswith("multipart/form-data")
    assert b'name="image"; filename="rec_input.png"' in seen.body
    assert b"Content-Type: image/png" in seen.body
    assert b'name="overwrite"\r\n\r\nfalse' in seen.body and b'name="type"\r\n\r\ninput' in seen.body


def test_upload_path_with_subfolder_and_overwrite(client: ComfyClient, script: Script, tmp_path: Path) -> None:
    image = tmp_path / "photo.jpg"
    image.write_bytes(b"\xff\xd8\xff\xe0jpeg")
    script.routes[("POST", "/upload/image")] = _upload_reply("photo.jpg", "recsub")
    assert client.upload_image(image, overwrite=True, subfolder="recsub") == "recsub/photo.jpg"
    body = script.seen[-1].body
    assert b'name="overwrite"\r\n\r\ntrue' in body and b'name="subfolder"\r\n\r\nrecsub' in body
    assert b"\xff\xd8\xff\xe0jpeg" in body


def test_upload_rejects_bad_names(client: ComfyClient, script: Script) -> None:
    with pytest.raises(ValueError, match="needs a name"):
        client.upload_image(b"x")
    with pytest.raises(ValueError, match="plain file name"):
        client.upload_image(b"x", "../evil.png")
    script.empty("POST", "/upload/image", status=400)  # recorded reply to a request without the image field
    with pytest.raises(ComfyValidationError, match="HTTP 400"):
        client.upload_image(b"x", "a.png")


def test_reply_that_is_not_json(client: ComfyClient, script: Script) -> None:
    script.routes[("GET", "/system_stats")] = (200, "text/html", b"<html>proxy login</html>")
    with pytest.raises(ComfyHTTPError, match="not JSON"):
        client.system_stats()
    script.json("GET", "/queue", ["unexpected"])
    with pytest.raises(ComfyHTTPError, match="expected an object"):
        client.queue()


def test_slow_server_times_out(script: Script) -> None:
    def stall(seen: Seen) -> Reply:
        script.release.wait(10)
        return 200, "application/json", b"{}"

    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    script.routes[("GET", "/system_stats")] = stall
    try:
        slow = ComfyClient(f"http://127.0.0.1:{server.server_address[1]}", read_timeout=0.2)
        with pytest.raises(ComfyUnavailable, match="timed out"):
            slow.system_stats()
        slow.close()
    finally:
        script.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_nothing_listening_is_unavailable() -> None:
    client = ComfyClient(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ComfyUnavailable, match="connection refused"):
        client.system_stats()
    assert not client.is_up(timeout=1.0)


def test_loopback_calls_ignore_the_users_proxy(client: ComfyClient, script: Script,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{free_port()}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    script.json("GET", "/system_stats", {"system": {}})
    fresh = ComfyClient(client.base_url)
    assert fresh.system_stats() == {"system": {}}
    fresh.close()


@pytest.mark.parametrize(("base", "ws"), [
    ("http://127.0.0.1:8188", "ws://127.0.0.1:8188/ws?clientId=abc"),
    ("http://127.0.0.1:8188/", "ws://127.0.0.1:8188/ws?clientId=abc"),
    ("https://comfy.example:443/prefix", "wss://comfy.example:443/prefix/ws?clientId=abc"),
])
def test_ws_url(base: str, ws: str) -> None:
    assert ComfyClient(base, client_id="abc").ws_url() == ws


@pytest.mark.parametrize("base", ["", "127.0.0.1:8188", "ftp://host", "http://"])
def test_bad_base_url(base: str) -> None:
    with pytest.raises(ValueError, match="ComfyUI URL"):
        ComfyClient(base)


def test_each_client_gets_its_own_client_id() -> None:
    assert ComfyClient("http://127.0.0.1:1").client_id != ComfyClient("http://127.0.0.1:1").client_id
