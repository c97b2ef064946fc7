"""A CLI call imports only what its command uses: no Qt, Pillow or redis.asyncio for the queue's commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from comfystudio_desktop.home import Home
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from tests.conftest import REPO_ROOT

_PROBE = """
import json, sys
from comfystudio_desktop.cli import main
code = main(sys.argv[1:])
loaded = [m for m in sys.modules if m.split(".")[0] in ("PySide6", "PIL", "aiohttp", "websocket")]
asyncio_client = "redis.asyncio.client" in sys.modules
deferred = type(sys.modules.get("redis.asyncio")).__name__
print(json.dumps({"code": code, "loaded": loaded, "asyncio_client": asyncio_client, "deferred": deferred}),
      file=sys.stderr)
"""


def probe(*argv: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, timeout=60,
                          cwd=REPO_ROOT)
    return json.loads(done.stderr.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("argv", [["jobs"], ["status", "no-such-job"], ["submit", "--prompt", "a cat"],
                                  ["submit", "--prompt", "a cat", "--width", "512", "--height", "512"]])
def test_queue_commands_stay_light(home: Home, redis_server: EmbeddedRedis, argv: list[str]) -> None:
    seen = probe("--home", str(home.root), *argv)
    assert seen["code"] in (0, 2)
    assert seen["loaded"] == [] and seen["asyncio_client"] is False and seen["deferred"] == "_DeferredModule"


def test_images_load_pillow_only_when_given(home: Home, redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (64, 64)).save(tmp_path / "a.png")
    seen = probe("--home", str(home.root), "submit", "--prompt", "x", "--workflow", "image_to_image", "--image",
                 f"input={tmp_path / 'a.png'}")
    loaded = seen["loaded"]
    assert seen["code"] == 0 and isinstance(loaded, list) and "PIL" in loaded
    assert all(str(m).startswith("PIL") for m in loaded)  # Pillow, and still no Qt


def test_deferred_redis_asyncio_still_works_when_used() -> None:
    code = ("import sys\nfrom comfystudio_desktop.lazy_imports import defer_redis_asyncio\n"
            "assert defer_redis_asyncio()\nimport redis\nassert 'redis.asyncio.client' not in sys.modules\n"
            "import redis.asyncio\nfrom redis.asyncio import Redis\nassert redis.asyncio.Redis is Redis\n"
            "assert 'redis.asyncio.client' in sys.modules\nprint('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert done.stdout.strip() == "ok", done.stderr
