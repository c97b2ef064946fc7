"""The window with two backends: a worker thread per backend, the Backends dock, the models combo's holders."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from comfystudio_desktop.backend_settings import Backend
from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobStatus
from comfystudio_desktop.queue.routing import BackendState, BackendView
from comfystudio_desktop.settings import Settings, save_settings
from comfystudio_desktop.ui.backends_panel import BackendsPanel, BackendsSnapshot, BackendToggle, row_texts
from comfystudio_desktop.ui.model_combo import ModelIdRole
from tests.fake_comfyui.process import FakeComfyProcess
from tests.ui.window_session import Session, run_coro, run_until

MODELS = {"left": ["alpha.safetensors", "shared.safetensors"], "right": ["beta.safetensors", "shared.safetensors"]}


def test_row_texts() -> None:
    view = BackendView(name="gpu0", state=BackendState.UP, enabled=False, current_job="j1",
                       loaded_model="m.safetensors", vram_free=2 * 1024 ** 3, vram_total=8 * 1024 ** 3, jobs_done=3,
                       median_s=1.25)
    assert row_texts(view) == ("gpu0", "up, disabled", "j1", "m.safetensors", "2.0 / 8.0 GiB free", "3", "1.2 s")


def test_the_panel_shows_rows_and_asks_to_toggle(qtbot: QtBot) -> None:
    panel = BackendsPanel()
    qtbot.addWidget(panel)
    views = (BackendView(name="a", state=BackendState.UP, enabled=True),
             BackendView(name="b", state=BackendState.DOWN, enabled=False))
    panel.show_snapshot(BackendsSnapshot(views))
    assert panel.model.rowCount() == 2 and panel.model.item(1, 1).text() == "down, disabled"
    panel.table.selectRow(1)
    assert panel.toggle_button.text() == "Enable"
    with qtbot.waitSignal(panel.toggle_requested) as blocker:
        panel.toggle_button.click()
    assert blocker.args == [BackendToggle("b", True)]


@pytest.fixture
def fakes(tmp_path: Path) -> Iterator[dict[str, FakeComfyProcess]]:
    with contextlib.ExitStack() as stack:
        yield {name: stack.enter_context(FakeComfyProcess(models={"checkpoints": models}, step_time=0.01,
                                                          output_dir=tmp_path / f"out-{name}"))
               for name, models in MODELS.items()}


def test_window_runs_a_worker_per_backend(qtbot: QtBot, loop: qasync.QEventLoop, home: Home,
                                         fakes: dict[str, FakeComfyProcess]) -> None:
    settings = Settings(comfy_url=fakes["left"].url, lease_seconds=5.0,
                        backends=tuple(Backend(name=name, url=fake.url) for name, fake in fakes.items()))
    save_settings(home.config_file, settings)
    session = Session(qtbot, loop, home, settings)
    try:
        controller = session.app.controller
        assert controller.backend_workers is not None and set(controller.backend_workers.supervisors) == set(MODELS)
        panel = session.window.backends_dock.widget()
        assert isinstance(panel, BackendsPanel) and session.window.backends_dock.isVisibleTo(session.window)
        run_until(qtbot, lambda: [panel.model.item(r, 1).text() for r in range(panel.model.rowCount())]
                  == ["up", "up"], message="both backends up in the panel")
        assert controller.runtime is not None
        queue = controller.runtime.queue
        jobs = [Job(job_id=f"w{i}", prompt=f"p{i}", model=m) for i, m in
                enumerate(["alpha.safetensors", "beta.safetensors", "shared.safetensors"])]
        for job in jobs:
            run_coro(qtbot, loop, controller.submit(job))
        run_until(qtbot, lambda: all(session.status(j.job_id) is JobStatus.FINISHED for j in jobs), timeout=60,
                  message="the jobs finished")
        backends = {j.job_id: r.backend for j in jobs if (r := queue.status(j.job_id)) is not None}
        assert backends["w0"] == "left" and backends["w1"] == "right" and backends["w2"] in MODELS
        combo = session.window.prompt_panel.model_combo
        run_until(qtbot, lambda: "shared.safetensors" in combo.models(), message="the models")
        rows = {combo.itemData(i, ModelIdRole): i for i in range(combo.count())}

        def holders(model: str) -> str:
            return str(combo.itemData(rows[model], Qt.ItemDataRole.ToolTipRole)).rsplit("\n", 1)[-1]

        run_until(qtbot, lambda: holders("shared.safetensors") == "Backends: left, right", message="the holders")
        assert holders("alpha.safetensors") == "Backends: left"
    finally:
        session.close()
