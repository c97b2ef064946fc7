"""Import rules: the layers and "the core never imports Qt", as import-linter contracts in pyproject.toml.

`lint-imports` checks them (also in scripts/run-tests.sh). These tests run it, prove that each rule fails the
build when broken (on a copy of the package with one bad import added), and check at run time that importing the
whole core loads no Qt. That `comfystudio-desktop jobs` / `status` never load PySide6 is tested in
tests/test_cli_imports.py (`test_queue_commands_stay_light`).
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "comfystudio_desktop"
# Where this interpreter's installer put console scripts: beside python in a venv, `Scripts\` of a Windows Python.
LINT_IMPORTS = Path(sysconfig.get_path("scripts")) / "lint-imports"
LAYERS = "layers"  # contract ids in pyproject.toml
NO_QT = "core-without-qt"


def lint_imports(root: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    """Run `lint-imports` on the package under `root` with the contracts of `root/pyproject.toml` (or some)."""
    chosen = [arg for contract in contracts for arg in ("--contract", contract)]
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo", *chosen, str(root / "pyproject.toml")],
                          capture_output=True, text=True, timeout=120, cwd=root, check=False)


def test_the_contracts_hold() -> None:
    done = lint_imports(REPO_ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 2 kept, 0 broken." in done.stdout


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("copy")
    shutil.copytree(REPO_ROOT / "comfystudio_desktop", root / "comfystudio_desktop",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


# (module to change, line added, the contract that must break)
BREAKS = [
    ("queue/job_queue.py", "from comfystudio_desktop.ui import app_controller", LAYERS),
    ("jobs.py", "from . import ui", LAYERS),
    ("worker/heartbeat.py", "from comfystudio_desktop import cli", LAYERS),
    ("supervise/watchdog.py", "from comfystudio_desktop.worker import consumer", LAYERS),
    ("queue/outbox.py", "from comfystudio_desktop.supervise import redis_server", LAYERS),
    ("comfy/comfy_client.py", "from comfystudio_desktop.queue import job_queue", LAYERS),
    ("cli_queue.py", "from comfystudio_desktop.ui import jobs_model", LAYERS),
    ("worker/job_run.py", "def later() -> None:\n    import PySide6.QtWidgets", NO_QT),
    ("settings.py", "import qasync", NO_QT),
]


@pytest.mark.parametrize(("module", "line", "contract"), BREAKS, ids=[f"{m}:{c}" for m, _, c in BREAKS])
def test_a_bad_import_breaks_a_contract(package_copy: Path, module: str, line: str, contract: str) -> None:
    path = package_copy / "comfystudio_desktop" / module
    original = path.read_text(encoding="utf-8")
    path.write_text(f"{original}\n{line}\n", encoding="utf-8")
    try:
        done = lint_imports(package_copy, contract)
    finally:
        path.write_text(original, encoding="utf-8")
    assert done.returncode == 1, done.stdout
    assert "Contracts: 0 kept, 1 broken." in done.stdout, done.stdout


def test_a_new_module_must_be_placed_in_a_layer(package_copy: Path) -> None:
    stray = package_copy / "comfystudio_desktop" / "stray.py"
    stray.write_text('"""Not declared in any layer."""\n', encoding="utf-8")
    try:
        done = lint_imports(package_copy, LAYERS)
    finally:
        stray.unlink()
    assert done.returncode == 1 and "comfystudio_desktop.stray" in done.stdout + done.stderr


_IMPORT_THE_CORE = """
import importlib, json, pkgutil, sys
import comfystudio_desktop as package
core = [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
        if m.name.split(".")[1] not in ("ui", "cli", "self_test", "__main__")]
for name in core:
    importlib.import_module(name)
print(json.dumps({"core": core, "qt": sorted(m for m in sys.modules if m.split(".")[0] in
                                              ("PySide6", "shiboken6", "qasync"))}))
"""


def test_importing_the_whole_core_loads_no_qt() -> None:
    """Catches what a static rule cannot: a module that loads Qt by `importlib` when it is imported."""
    done = subprocess.run([sys.executable, "-c", _IMPORT_THE_CORE], capture_output=True, text=True, timeout=120,
                          cwd=REPO_ROOT, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"comfystudio_desktop.worker.consumer", "comfystudio_desktop.supervise.redis_server",
            "comfystudio_desktop.queue.job_queue", "comfystudio_desktop.cli_queue"} <= set(seen["core"])
    assert seen["qt"] == []


# -- no console window for the processes we start -----------------------------------------------------------------
_SPAWNERS = {"Popen", "run", "call", "check_call", "check_output"}
#: Calls that may open a window of their own, with the reason.
_WINDOWED_CHILDREN = {"ui/desktop_open.py": "Explorer, opened on purpose to show a file"}


def _spawn_calls(path: Path) -> list[ast.Call]:
    calls = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _SPAWNERS
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "subprocess"):
            calls.append(node)
    return calls


@pytest.mark.parametrize("path", sorted(p for p in PACKAGE.rglob("*.py")
                                        if p.relative_to(PACKAGE).as_posix() not in _WINDOWED_CHILDREN),
                         ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_every_child_process_gets_windows_creation_flags(path: Path) -> None:
    """On Windows a console child (redis-server.exe, the checker, ComfyUI's python.exe) started from the windowed app
    flashes a console window unless it gets CREATE_NO_WINDOW: every spawn passes `creationflags` (or a ** spread of
    them, as `_detached_kwargs()` does)."""
    bare = [call.lineno for call in _spawn_calls(path)
            if not any(keyword.arg in ("creationflags", None) for keyword in call.keywords)]
    assert not bare, f"{path.name}: subprocess calls without creationflags on lines {bare}"


def test_the_spawn_rule_sees_the_spawns() -> None:
    spawning = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if _spawn_calls(p)}
    assert {"supervise/redis_server.py", "supervise/aof_repair.py", "supervise/supervised_process.py"} <= spawning
