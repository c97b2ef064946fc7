"""Import rules: the core never imports Qt; only `ui/` imports widgets; the core never imports `ui/`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "comfystudio_desktop"
# Entry points that choose between the window and the command line may import ui lazily.
UI_ENTRY_POINTS = {"cli.py", "self_test.py"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _core_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "ui" not in p.relative_to(PACKAGE).parts)


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_module_has_no_qt(path: Path) -> None:
    imported = _imports(path)
    qt = sorted(name for name in imported if name.split(".")[0] in ("PySide6", "shiboken6", "qasync"))
    assert not qt, f"{path.name} imports {qt}: only comfystudio_desktop/ui may use Qt"
    if path.name not in UI_ENTRY_POINTS:
        ui = sorted(name for name in imported if name.startswith("comfystudio_desktop.ui"))
        assert not ui, f"{path.name} imports {ui}: the core must not depend on the UI"


def test_the_rule_sees_the_whole_core() -> None:
    names = {str(p.relative_to(PACKAGE)) for p in _core_modules()}
    assert {"jobs.py", "queue/job_queue.py", "queue/redis_server.py"} <= names
