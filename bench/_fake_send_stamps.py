"""The test-suite's fake ComfyUI, unchanged, plus a record of when each WebSocket frame was sent (benchmark helper).

    python bench/_fake_send_stamps.py --stamps FILE [the fake's own options ...]

Every frame the fake's Hub sends is written to FILE as one tab-separated line:

    sid  index  t_post  t_send  kind

`index` counts the frames of one socket from 0 (the order in which the client receives them), `t_post` is when
the fake's code handed the frame to the Hub (e.g. the sampler's `progress` message), `t_send` when the Hub's
writer task passed it to the socket. Both are `time.monotonic()`, which on Linux is CLOCK_MONOTONIC: one clock
for every process on the machine, so the benchmark process can subtract its own readings from these. `kind` is
the JSON message's `type` (or `binary` for preview frames).

Only the Hub's two internal methods are wrapped; what the fake sends and when is exactly what it does in tests.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fake_comfyui import __main__ as fake_main
from tests.fake_comfyui.hub import Hub, Peer

_sink: list[TextIO] = []  # the stamp file, once opened


def _kind(message: str | bytes) -> str:
    if isinstance(message, bytes):
        return "binary"
    # The Hub sends json.dumps({"type": event, "data": ...}): the type is the first string value.
    head = '{"type": "'
    if not message.startswith(head):
        return "?"
    end = message.find('"', len(head))
    return message[len(head):end] if end > 0 else "?"


def _post(self: Hub, message: str | bytes, sid: str | None) -> None:
    stamped = (message, time.monotonic())
    targets = list(self._peers.values()) if sid is None else [p for p in [self._peers.get(sid)] if p]
    for peer in targets:
        peer.outbox.put_nowait(stamped)  # type: ignore[arg-type]


async def _drain(self: Hub, peer: Peer) -> None:
    index = 0
    while (item := await peer.outbox.get()) is not None:
        message, posted = cast(tuple[str | bytes, float], item)
        await self._gate()
        sent = time.monotonic()
        try:
            if isinstance(message, bytes):
                await peer.ws.send_bytes(message)
            else:
                await peer.ws.send_str(message)
        except (ConnectionError, RuntimeError):
            return
        for out in _sink:
            out.write(f"{peer.sid}\t{index}\t{posted:.6f}\t{sent:.6f}\t{_kind(message)}\n")
        index += 1


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "--stamps":
        print("usage: _fake_send_stamps.py --stamps FILE [fake options]", file=sys.stderr)
        return 2
    Hub._post = _post  # type: ignore[method-assign]
    Hub._drain = _drain  # type: ignore[method-assign]
    with open(argv[1], "w", encoding="utf-8", buffering=1 << 16) as out:
        _sink.append(out)
        try:
            return fake_main.main(argv[2:])
        finally:
            _sink.clear()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
