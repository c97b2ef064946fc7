"""The window serves the HTTP API on its own qasync loop when `api_enabled` is on (and not when it is off)."""

from __future__ import annotations

from typing import Any

import aiohttp
import qasync
from pytestqt.qtbot import QtBot

from comfystudio_desktop.api.api_token import token_path
from comfystudio_desktop.home import Home
from comfystudio_desktop.settings import Settings, save_settings
from tests.fake_comfyui.process import FakeComfyProcess, free_port
from tests.ui.window_session import CHECKPOINT, Session, run_coro, run_until


def test_window_serves_the_api_and_its_jobs_reach_the_table(qtbot: QtBot, loop: qasync.QEventLoop, home: Home,
                                                           fake: FakeComfyProcess) -> None:
    port = free_port()
    settings = Settings(comfy_url=fake.url, lease_seconds=5.0, api_enabled=True, api_port=port)
    save_settings(home.config_file, settings)
    session = Session(qtbot, loop, home, settings)
    try:
        run_until(qtbot, lambda: session.app.controller.api is not None, message="the API listening")
        token = token_path(home).read_text(encoding="ascii").strip()

        async def client() -> tuple[int, dict[str, Any]]:
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
                async with http.get("/api/jobs") as refused:
                    status = refused.status
                async with http.post("/api/generate", json={"prompt": "from HTTP", "model": CHECKPOINT},
                                     headers={"Authorization": f"Bearer {token}"}) as answer:
                    return status, dict(await answer.json())

        refused, body = run_coro(qtbot, loop, client())
        assert refused == 401
        job_id = body["job_id"]
        run_until(qtbot, lambda: (r := session.model.record(job_id)) is not None and r.status.is_terminal,
                  timeout=60, message="the API's job finished in the window's table")
        assert session.status(job_id).value == "finished"  # type: ignore[union-attr]
    finally:
        session.close()


def test_api_is_off_by_default(qtbot: QtBot, loop: qasync.QEventLoop, home: Home, settings: Settings) -> None:
    session = Session(qtbot, loop, home, settings)
    try:
        assert session.app.controller.api is None
        assert not token_path(home).exists()
    finally:
        session.close()
