"""Replays every recorded ComfyUI 0.3.64 session (tests/fixtures/comfyui/transcripts) against the fake and compares.

The replay performs the recorded HTTP calls and WebSocket actions in order. Before each action it waits until
every socket has received the fake's counterpart of the last meaningful message the recording had seen by the time
that action started (a "milestone": same type, prompt id, node, step or queue size), so calls such as "interrupt
after the first progress" happen at the same protocol point. Then, per socket, the message sequences are compared
after normalisation:

* a message becomes a token: its type plus the set of key paths (with value kinds) of its data; node ids,
  prompt ids and input names used as keys become `*`, so ids, timestamps, sizes and values do not matter
  (except `status`, whose queue size is kept);
* sampler step runs (`progress_state`/`progress`/preview frames) are grouped per step and repeated identical
  step groups are collapsed, so the number of steps (shortened in the recordings by `note`s, or varying with
  interrupt timing) does not matter, but the order inside a step does;
* `status` broadcasts caused by requests made while a job runs (queueing, deleting, clearing) can land anywhere
  in that job's stream, so inside a job's span they are compared as their own sequence.

HTTP replies are compared by status code, Content-Type and the key paths of their JSON (or the magic bytes of
binary replies).
"""

from __future__ import annotations

import io
import json
import re
import struct
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
import requests
import websocket
from PIL import Image

from tests.conftest import COMFY_TRANSCRIPTS
from tests.fake_comfyui import FakeComfyProcess

TRANSCRIPTS = COMFY_TRANSCRIPTS
SCENARIOS = sorted(p.stem for p in TRANSCRIPTS.glob("*.json"))
WAIT_S = 15.0
MODEL_FILES = {"checkpoints/tiny/sd15-random.safetensors", "unet/tiny/sd15-unet-random.safetensors",
               "text_encoders/tiny/clip-l-random.safetensors", "vae/tiny/sd15-vae-random.safetensors"}
ID_PARENTS = {"nodes", "current_inputs", "node_errors", "outputs", "meta"}
RUN_TOKENS = ("PS:", "progress|", "BIN", "GAP")
GAP_NOTE = re.compile(r"<\d+ progress/preview messages dropped>")
TERMINAL = ("execution_success|", "execution_error|", "execution_interrupted|")

pytestmark = [pytest.mark.timeout(120)]


def _transcript(name: str) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads((TRANSCRIPTS / f"{name}.json").read_text()))


# --- setting the fake up like the recorded server was at the start of each scenario ----------------------------
# The recordings come from one long-lived server; the cache (which shapes `execution_cached` and which nodes run)
# and history are reproduced by first running the workflow the recorded server had run last.
PRELUDES: dict[str, list[tuple[str, str | None]]] = {
    "c_t2i_cached_rerun": [("b_t2i_checkpoint", "rec-t2i-72e50b3d")],
    "d_upload_img2img": [("b_t2i_checkpoint", None)],
    "f_interrupt": [("e_unet_clip_vae_loaders", None)],
    "g_queue_delete": [("b_t2i_checkpoint", None)],
    "h_errors": [("b_t2i_checkpoint", None)],
    "i_ws_without_client_id": [("e_unet_clip_vae_loaders", None)],
    "j_history_view_misc": [("b_t2i_checkpoint", "rec-t2i-72e50b3d"), ("c_t2i_cached_rerun", None),
                            ("k_feature_flags_previews", None)],
    "k_feature_flags_previews": [("b_t2i_checkpoint", None)],
    "l_ws_reconnect_midrun": [("b_t2i_checkpoint", None)],
}


# Timing only matters where the recording made calls "while the job runs": b queries the queue during the
# checkpoint load (1.8 s when recorded); f, g and l act during 30-step samplers.
LOAD_TIME = {"b_t2i_checkpoint": 1.0}
# 0.1 s, not less: an interrupt sent at the first step must land before the second even on a slow machine (Wine).
STEP_TIME = {"f_interrupt": 0.1, "g_queue_delete": 0.1, "l_ws_reconnect_midrun": 0.1}


def _png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return buffer.getvalue()


UPLOAD_A, UPLOAD_B = _png((220, 30, 30)), _png((30, 30, 220))


def _make_dirs(root: Path, scenario: str) -> dict[str, Path]:
    dirs = {name: root / name for name in ("models", "input", "output", "temp")}
    for path in dirs.values():
        path.mkdir(parents=True)
    for rel in MODEL_FILES:  # minimal valid safetensors files: u64 header length + "{}"
        (dirs["models"] / rel).parent.mkdir(parents=True, exist_ok=True)
        (dirs["models"] / rel).write_bytes(struct.pack("<Q", 2) + b"{}")
    if scenario.startswith("h_"):
        (dirs["models"] / "checkpoints/tiny/broken.safetensors").write_bytes(b"this is not a safetensors file")
    Image.new("RGB", (64, 64), (200, 120, 40)).save(dirs["input"] / "example.png")
    if scenario.startswith("j_"):
        (dirs["input"] / "rec_input.png").write_bytes(UPLOAD_A)
    return dirs


def _run_prelude(fake: FakeComfyProcess, scenario: str, prompt_id: str | None) -> None:
    body: dict[str, Any] = {"prompt": _transcript(scenario)["header"]["workflow"]}
    if prompt_id:
        body["prompt_id"] = prompt_id
    status, reply = fake.request("POST", "/prompt", body)
    assert status == 200, reply
    pid = reply["prompt_id"]
    deadline = time.monotonic() + WAIT_S
    while not fake.request("GET", f"/history/{pid}")[1]:
        assert time.monotonic() < deadline, f"prelude {scenario} did not finish"
        time.sleep(0.02)


# --- tokens and normalisation -----------------------------------------------------------------------------------
def key_paths(value: Any, path: str = "", id_keyed: bool = False, depth: int | None = None) -> set[str]:
    """Key paths with value kinds; id-like keys (digits, or under ID_PARENTS) become `*`."""
    if depth is not None and depth <= 0:
        return {path}
    nxt = None if depth is None else depth - 1
    if isinstance(value, dict):
        out = {path} if path else set()
        ids = id_keyed or (bool(value) and all(str(k).isdigit() for k in value))
        for key, item in value.items():
            sub = f"{path}.{'*' if ids else key}" if path else ("*" if ids else key)
            out |= key_paths(item, sub, key in ID_PARENTS, nxt)
        return out
    if isinstance(value, list):
        out = {path + "[]"}
        for item in value:
            out |= key_paths(item, path + "[]", False, nxt)
        return out
    kind = "null" if value is None else "bool" if isinstance(value, bool) else \
        "num" if isinstance(value, (int, float)) else type(value).__name__
    return {f"{path}:{kind}"}


def json_token(message: dict[str, Any]) -> str:
    """`type|paths` plus what must match exactly: queue size, node ids (same workflows), progress node states."""
    kind, data = message["type"], message.get("data") or {}
    paths = ",".join(sorted(key_paths(data)))
    if kind == "status":
        return f"status|{paths}|q={data['status']['exec_info']['queue_remaining']}"
    if kind == "progress_state":
        step = any(n["state"] == "running" and n["value"] != 0 for n in data["nodes"].values())
        states = " ".join(f"{node_id}:{n['state']}" for node_id, n in data["nodes"].items())
        return f"PS:{'step' if step else 'node'}|{paths}|{states}"
    if kind in ("executing", "executed"):
        return f"{kind}|{paths}|node={data.get('node')}"
    if kind == "execution_cached":
        return f"{kind}|{paths}|nodes={data['nodes']}"
    if kind in ("execution_interrupted", "execution_error"):
        return f"{kind}|{paths}|node={data['node_id']}|executed={data['executed']}"
    return f"{kind}|{paths}"


def binary_token(event_type: int, metadata: dict[str, Any] | None) -> str:
    """`BIN1`, or `BIN4{metadata keys}`."""
    return f"BIN{event_type}" + (",".join(sorted(metadata)) if metadata is not None else "")


def _is_run(token: str) -> bool:
    return token.startswith(RUN_TOKENS)


def _collapse_run(run: list[str]) -> list[str]:
    """Group a run by step (each group starts at a progress_state), drop partial groups, collapse repeats."""
    groups: list[list[str]] = []
    for token in run:
        if token.startswith("PS:"):
            groups.append([token])
        elif groups:
            groups[-1].append(token)
    out: list[str] = []
    for group in groups:
        if "GAP" in group:
            continue
        label = " ".join(group)
        is_step = len(group) > 1
        if is_step and out and out[-1] == label:
            continue
        out.append(label)
    return out


def normalise(tokens: list[str]) -> tuple[list[str], list[str]]:
    """(main sequence, statuses seen inside job spans)."""
    main: list[str] = []
    span_statuses: list[str] = []
    run: list[str] = []
    in_span = False
    for token in tokens:
        if _is_run(token):
            run.append(token)
            continue
        main.extend(_collapse_run(run))
        run = []
        if token.startswith("execution_start|"):
            in_span = True
        elif token.startswith(TERMINAL):
            in_span = False
        if in_span and token.startswith("status|"):
            span_statuses.append(token)
        else:
            main.append(token)
    main.extend(_collapse_run(run))
    return main, span_statuses


# --- replay -----------------------------------------------------------------------------------------------------
def _milestone_key(message: dict[str, Any]) -> tuple[Any, ...]:
    data = message.get("data") or {}
    queue = data.get("status", {}).get("exec_info", {}).get("queue_remaining") if message["type"] == "status" else None
    return message["type"], data.get("prompt_id"), data.get("node"), data.get("value"), queue, "sid" in data


@dataclass
class Socket:
    """One replayed WebSocket: the recorded stream and what the fake sent."""

    name: str
    ws: websocket.WebSocket | None
    recorded: list[tuple[str, Any]] = field(default_factory=list)  # (token, message or None)
    received: list[tuple[str, Any]] = field(default_factory=list)
    rec_pos: int = 0  # recorded entries the replay has moved past
    rec_cut: int = 0  # recorded entries up to and including the last milestone waited for
    fake_pos: int = 0  # fake messages up to and including that milestone's counterpart

    def read_one(self, deadline: float) -> None:
        assert self.ws is not None
        self.ws.settimeout(max(0.05, deadline - time.monotonic()))
        opcode, data = self.ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_BINARY:
            (event_type,) = struct.unpack(">I", data[:4])
            meta = None
            if event_type == 4:
                (length,) = struct.unpack(">I", data[4:8])
                meta = json.loads(data[8:8 + length])
            self.received.append((binary_token(event_type, meta), None))
        elif opcode == websocket.ABNF.OPCODE_TEXT:
            message = json.loads(data)
            self.received.append((json_token(message), message))

    def wait_for(self, milestone: dict[str, Any]) -> None:
        """Read until the fake sent the counterpart of a recorded milestone message."""
        key = _milestone_key(milestone)
        deadline = time.monotonic() + WAIT_S
        while True:
            for index in range(self.fake_pos, len(self.received)):
                message = self.received[index][1]
                if message is not None and _milestone_key(message) == key:
                    self.fake_pos = index + 1
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"socket {self.name}: no counterpart of {milestone} within {WAIT_S} s; got "
                                     f"{[t for t, _ in self.received[self.fake_pos:]]}")
            try:
                self.read_one(deadline)
            except websocket.WebSocketTimeoutException:
                continue


class Replay:
    """Drives one transcript against a fake and collects both sides."""

    def __init__(self, fake: FakeComfyProcess, transcript: dict[str, Any]) -> None:
        self.fake = fake
        self.events: list[dict[str, Any]] = transcript["events"]
        self.sockets: dict[str, Socket] = {}
        self.sid_map: dict[str, str] = {}
        self.http_mismatches: list[str] = []
        self._prepare_recorded()

    def _prepare_recorded(self) -> None:
        open_names: list[str] = []
        for event in self.events:
            kind = event["type"]
            if kind == "ws_open":
                open_names.append(event["ws"])
                self.sockets.setdefault(event["ws"], Socket(event["ws"], None))
            elif kind == "ws_closed" and event["ws"] in open_names:
                open_names.remove(event["ws"])
            elif kind == "ws_recv":
                message = event["message"]
                if message.get("binary"):
                    token = binary_token(message["event_type_int"], message.get("metadata_json"))
                    self.sockets[event["ws"]].recorded.append((token, None))
                else:
                    self.sockets[event["ws"]].recorded.append((json_token(message), message))
            elif kind == "note" and GAP_NOTE.search(event.get("text", "")):
                for name in open_names:
                    self.sockets[name].recorded.append(("GAP", None))

    def sync(self, t_start: float) -> None:
        """Wait on every open socket for the milestone the recording had reached at `t_start`."""
        for sock in self.sockets.values():
            if sock.ws is None:
                continue
            seen = self._seen_before(sock.name, t_start)
            candidates = [index for index in range(sock.rec_pos, seen)
                          if sock.recorded[index][1] is not None and not sock.recorded[index][0].startswith("PS:")]
            if candidates:
                sock.wait_for(sock.recorded[candidates[-1]][1])
                sock.rec_cut = candidates[-1] + 1
            sock.rec_pos = max(sock.rec_pos, seen)

    def _seen_before(self, name: str, t_start: float) -> int:
        """How many recorded entries (messages and gaps) socket `name` had before `t_start` (events are in order)."""
        seen = 0
        is_open = False
        for event in self.events:
            if event["t_ms"] >= t_start:
                break
            if event.get("ws") == name and event["type"] in ("ws_open", "ws_closed"):
                is_open = event["type"] == "ws_open"
            elif (event["type"] == "ws_recv" and event["ws"] == name) or (
                    is_open and event["type"] == "note" and GAP_NOTE.search(event.get("text", ""))):
                seen += 1
        return seen

    def run(self) -> None:
        for event in self.events:
            kind = event["type"]
            if kind == "http":
                self.sync(event["t_ms"] - event.get("elapsed_ms", 0.0))
                self._http(event)
            elif kind == "ws_open":
                self.sync(event["t_ms"])
                self._open(event)
            elif kind == "ws_send":
                self.sync(event["t_ms"])
                sock = self.sockets[event["ws"]]
                assert sock.ws is not None
                sock.ws.send(json.dumps(event["message"]))
            elif kind == "ws_closed":
                self.sync(event["t_ms"])
                sock = self.sockets[event["ws"]]
                if sock.ws is not None:
                    sock.ws.close()
                    sock.ws = None
        self.sync(float("inf"))

    def close(self) -> None:
        for sock in self.sockets.values():
            if sock.ws is not None:
                sock.ws.close()
                sock.ws = None

    def _open(self, event: dict[str, Any]) -> None:
        query = urllib.parse.urlsplit(event["url"]).query
        sock = self.sockets[event["ws"]]
        sock.ws = websocket.create_connection(f"{self.fake.ws_url}{'?' + query if query else ''}", timeout=WAIT_S)
        sock.read_one(time.monotonic() + WAIT_S)  # the first message is always status with the sid
        fake_sid = sock.received[0][1]["data"]["sid"]
        recorded_first = next(m for _, m in sock.recorded if m is not None)
        self.sid_map[recorded_first["data"]["sid"]] = fake_sid

    def _substitute(self, text: str) -> str:
        for recorded, fake in self.sid_map.items():
            text = text.replace(recorded, fake)
        return text

    def _http(self, event: dict[str, Any]) -> None:
        url = self.fake.url + event["path"]
        kwargs: dict[str, Any] = {"params": event.get("query"), "timeout": WAIT_S}
        if "request_json" in event:
            kwargs["data"] = self._substitute(json.dumps(event["request_json"]))
            kwargs["headers"] = {"Content-Type": "application/json"}
        elif "request_raw_body" in event:
            kwargs["data"] = event["request_raw_body"]
            kwargs["headers"] = {"Content-Type": "application/json"}
        if "request_multipart_files" in event or "request_form_fields" in event:
            kwargs["data"] = event.get("request_form_fields") or {}
            kwargs["files"] = {field_name: (spec["filename"], UPLOAD_B if spec.get("note") else UPLOAD_A,
                                            spec["content_type"])
                               for field_name, spec in (event.get("request_multipart_files") or {}).items()}
        reply = requests.request(event["method"], url, **kwargs)
        self._compare_http(event, reply)

    def _compare_http(self, event: dict[str, Any], reply: requests.Response) -> None:
        where = f"{event['method']} {event['path']} {event.get('query') or ''} ({event.get('label', '')})"
        if reply.status_code != event["status"]:
            self.http_mismatches.append(f"{where}: status {reply.status_code} != recorded {event['status']}")
            return
        recorded_type = event.get("response_headers", {}).get("Content-Type")
        if reply.headers.get("Content-Type") != recorded_type:
            self.http_mismatches.append(f"{where}: Content-Type {reply.headers.get('Content-Type')!r} != "
                                        f"recorded {recorded_type!r}")
        if "response_json" in event:
            collection = event["path"] in ("/history", "/api/history")
            depth = 3 if collection else None
            want = key_paths(event["response_json"], id_keyed=collection, depth=depth)
            got = key_paths(reply.json(), id_keyed=collection, depth=depth)
            if want != got:
                self.http_mismatches.append(f"{where}: JSON key paths differ; only recorded: {sorted(want - got)}; "
                                            f"only fake: {sorted(got - want)}")
        elif "response_binary" in event:
            magic = event["response_binary"]["first_16_bytes_hex"][:8]
            if reply.content[:4].hex() != magic:
                self.http_mismatches.append(f"{where}: body starts {reply.content[:4].hex()} not {magic}")
        elif "response_json_note" in event and not isinstance(reply.json(), dict):
            self.http_mismatches.append(f"{where}: not a JSON object")
        elif "response_text" in event and reply.text != event["response_text"]:
            self.http_mismatches.append(f"{where}: body {reply.text!r} != recorded {event['response_text']!r}")

    def ws_mismatches(self) -> list[str]:
        problems = []
        for sock in self.sockets.values():
            recorded = [t for t, _ in sock.recorded[:sock.rec_cut]]
            received = [t for t, _ in sock.received[:sock.fake_pos]]
            want, got = normalise(recorded), normalise(received)
            if want[0] != got[0]:
                problems.append(f"socket {sock.name}: message sequence differs\n" + _diff(want[0], got[0]))
            if want[1] != got[1]:
                problems.append(f"socket {sock.name}: in-job status sequence {got[1]} != recorded {want[1]}")
        return problems


def _diff(want: list[str], got: list[str]) -> str:
    lines = []
    for index in range(max(len(want), len(got))):
        a = want[index] if index < len(want) else "-"
        b = got[index] if index < len(got) else "-"
        width = 10_000 if a != b else 110
        lines.append(f"{'  ' if a == b else '!!'} {index:3} recorded: {a[:width]}\n{'':8}fake:     {b[:width]}")
    return "\n".join(lines)


@pytest.fixture
def fake_for(tmp_path: Path) -> Iterator[Any]:
    started: list[FakeComfyProcess] = []

    def start(scenario: str) -> FakeComfyProcess:
        dirs = _make_dirs(tmp_path, scenario)
        fake = FakeComfyProcess(models_dir=dirs["models"], input_dir=dirs["input"], output_dir=dirs["output"],
                                temp_dir=dirs["temp"], step_time=STEP_TIME.get(scenario, 0.02),
                                load_time=LOAD_TIME.get(scenario, 0.05))
        started.append(fake)
        return fake.start()

    yield start
    for fake in started:
        fake.stop()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_fake_matches_recording(scenario: str, fake_for: Any) -> None:
    """The fake answers the recorded session with the same messages, order, fields and HTTP replies."""
    fake = fake_for(scenario)
    for prelude, prompt_id in PRELUDES.get(scenario, []):
        _run_prelude(fake, prelude, prompt_id)
    replay = Replay(fake, _transcript(scenario))
    try:
        replay.run()
    finally:
        replay.close()
    problems = replay.http_mismatches + replay.ws_mismatches()
    assert not problems, "\n\n".join(problems)


def test_every_scenario_is_replayed() -> None:
    """All twelve recorded scenarios (a-l) are present and none is left out of the replay."""
    assert [s[0] for s in SCENARIOS] == list("abcdefghijkl")
