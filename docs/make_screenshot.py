"""Regenerate docs/screenshot.png (light) and docs/screenshot-dark.png: the real window on an X display with a
few jobs from the test ComfyUI (one of them failed).

Run under an X server, once per theme:
    xvfb-run -s "-screen 0 1400x860x24" .venv/bin/python docs/make_screenshot.py light
    xvfb-run -s "-screen 0 1400x860x24" .venv/bin/python docs/make_screenshot.py dark
The picture is read back from the X server's root window (QScreen.grabWindow), so it is what a user would see.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import qasync
from PySide6.QtWidgets import QApplication

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from comfystudio_desktop.home import Home  # noqa: E402
from comfystudio_desktop.jobs import Job  # noqa: E402
from comfystudio_desktop.logging_setup import configure_logging  # noqa: E402
from comfystudio_desktop.settings import Settings, save_settings  # noqa: E402
from comfystudio_desktop.ui.app import AppSession  # noqa: E402
from comfystudio_desktop.ui.theme import apply_theme  # noqa: E402
from tests.fake_comfyui.process import FakeComfyProcess  # noqa: E402

CHECKPOINT = "tiny/sd15-random.safetensors"
PROMPTS = [
    ("a lighthouse on a cliff at dusk, volumetric light", "16:9", 1),
    ("portrait of an old fisherman, film grain", "3:4", 1),
    ("isometric cozy library, warm colours", "1:1", 2),
    ("misty pine forest at sunrise", "21:9", 1),
]


WIDTH, HEIGHT = 1280, 760


async def stage(session: AppSession, out: Path, theme: str) -> None:
    await session.start()
    window = session.window
    window.move(0, 0)
    window.resize(WIDTH, HEIGHT)
    while CHECKPOINT not in window.prompt_panel.model_combo.models():
        await asyncio.sleep(0.05)
    window.prompt_panel.model_combo.set_current_model(CHECKPOINT)
    jobs = [Job(prompt=p, model=CHECKPOINT, aspect_ratio=r, batch_size=b, seed=1000 + i)
            for i, (p, r, b) in enumerate(PROMPTS)]
    jobs.append(Job(prompt="a model that is not installed", model="missing/model.safetensors"))
    for job in jobs:
        await session.controller.submit(job)
    while any((r := window.model.record(j.job_id)) is None or not r.status.is_terminal for j in jobs):
        await asyncio.sleep(0.05)
    window.prompt_panel.prompt_edit.setPlainText("a lighthouse on a cliff at dusk, volumetric light")
    # Light: a batch (the strip of its images); dark: the failed job (its reason, the whole error, the fix).
    window.jobs_view.select_job(jobs[2].job_id if theme == "light" else jobs[-1].job_id)
    await asyncio.sleep(1.0)
    screen = window.screen()
    frame = window.frameGeometry()
    shot = screen.grabWindow(0, frame.x(), frame.y(), frame.width(), frame.height())
    if shot.isNull() or not shot.save(str(out)):
        raise SystemExit(f"could not grab the screen into {out}")
    await session.shutdown()


def main() -> int:
    theme = sys.argv[1] if len(sys.argv) > 1 else "light"
    if theme not in ("light", "dark"):
        print("usage: make_screenshot.py [light|dark]", file=sys.stderr)
        return 2
    out = REPO / "docs" / ("screenshot.png" if theme == "light" else "screenshot-dark.png")
    with tempfile.TemporaryDirectory() as tmp, FakeComfyProcess(step_time=0.05) as fake:
        home = Home(Path(tmp) / "home").create()
        configure_logging(home.logs)
        settings = Settings(comfy_url=fake.url, notifications=False, theme=theme, first_run_done=True)
        save_settings(home.config_file, settings)
        app = QApplication(sys.argv[:1])
        apply_theme(app, theme)
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)
        with loop:
            session = AppSession(home, settings)
            loop.run_until_complete(stage(session, out, theme))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
