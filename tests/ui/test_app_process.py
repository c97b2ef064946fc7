"""The window as its own process: ready, then SIGTERM quits it cleanly and stops the Redis it supervised."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from comfystudio_desktop.home import Home
from comfystudio_desktop.settings import Settings, save_settings
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from tests.conftest import REPO_ROOT
from tests.fake_comfyui.process import free_port
from tests.helpers import wait_until


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_sigterm_quits_cleanly(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").create()
    save_settings(home.config_file, Settings(comfy_url=f"http://127.0.0.1:{free_port()}"))
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    app = subprocess.Popen([sys.executable, "-m", "comfystudio_desktop", "--home", str(home.root)], cwd=REPO_ROOT,
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = EmbeddedRedis(home)
    try:
        log = home.logs / "comfystudio.log"
        wait_until(lambda: log.is_file() and "Worker " in log.read_text() and server.running_record() is not None,
                   timeout=60, message="the window ready with its worker and Redis")
        app.send_signal(signal.SIGTERM)
        assert app.wait(60) == 0
        assert server.running_record() is None  # the Redis it supervised was stopped on the way out
        assert "Signal 15: quitting" in log.read_text()
    finally:
        if app.poll() is None:
            app.kill()
            app.wait(10)
        server.stop()
