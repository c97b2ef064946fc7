"""Finding ComfyUI where people keep it: folders the tests create, and a server answering on loopback."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comfystudio_desktop.comfy.comfy_discovery import (
    InstallKind,
    candidate_folders,
    desktop_base_from_config,
    desktop_config_files,
    desktop_install,
    discover_installs,
    find_python,
    folder_install,
    install_at,
    portable_install,
    probe_server,
    server_version,
)
from tests.fake_comfyui.process import FakeComfyProcess


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _portable(parent: Path) -> Path:
    root = parent / "ComfyUI_windows_portable"
    _touch(root / "python_embeded" / "python.exe")
    _touch(root / "ComfyUI" / "main.py")
    (root / "ComfyUI" / "comfy").mkdir()
    (root / "ComfyUI" / "models").mkdir()
    return root


def _checkout(folder: Path, venv: str | None = ".venv/bin/python") -> Path:
    _touch(folder / "main.py")
    (folder / "comfy").mkdir(parents=True)
    (folder / "models").mkdir()
    if venv:
        _touch(folder / venv)
    return folder


def _desktop_base(folder: Path) -> Path:
    _touch(folder / ".venv" / "Scripts" / "python.exe")
    (folder / "models").mkdir(parents=True)
    (folder / "user").mkdir()
    return folder


def test_portable_build_is_found_from_its_root_or_its_comfyui_folder(tmp_path: Path) -> None:
    root = _portable(tmp_path)
    for pointed in (root, root / "ComfyUI"):
        install = portable_install(pointed)
        assert install is not None and install.kind is InstallKind.PORTABLE and install.can_manage
        assert install.python == root / "python_embeded" / "python.exe"
        assert install.main == root / "ComfyUI" / "main.py" and install.models_dir == root / "ComfyUI" / "models"
    assert install_at(root) == portable_install(root)


def test_portable_build_without_its_python_is_not_one(tmp_path: Path) -> None:
    root = _portable(tmp_path)
    (root / "python_embeded" / "python.exe").unlink()
    assert portable_install(root) is None


@pytest.mark.parametrize("venv", [".venv/bin/python", "venv/bin/python", ".venv/Scripts/python.exe",
                                  "venv/Scripts/python.exe"])
def test_a_comfyui_folder_has_its_python_detected(tmp_path: Path, venv: str) -> None:
    folder = _checkout(tmp_path / "ComfyUI", venv)
    install = folder_install(folder)
    assert install is not None and install.kind is InstallKind.FOLDER
    assert install.python == folder / venv and install.main == folder / "main.py" and install.can_manage


def test_a_folder_without_a_venv_asks_for_python(tmp_path: Path) -> None:
    install = folder_install(_checkout(tmp_path / "ComfyUI", venv=None))
    assert install is not None and install.python is None and not install.can_manage
    assert "Python not found" in install.describe()
    assert find_python(tmp_path / "ComfyUI") is None


def test_any_main_py_is_not_comfyui(tmp_path: Path) -> None:
    _touch(tmp_path / "project" / "main.py")
    assert folder_install(tmp_path / "project") is None and install_at(tmp_path / "project") is None
    assert install_at(tmp_path / "missing") is None


def test_desktop_base_folder_is_watched_unless_its_main_py_is_known(tmp_path: Path) -> None:
    base = _desktop_base(tmp_path / "Documents" / "ComfyUI")
    install = desktop_install(base)
    assert install is not None and install.kind is InstallKind.DESKTOP and not install.can_manage
    main = _touch(tmp_path / "app" / "resources" / "ComfyUI" / "main.py")
    managed = desktop_install(base, main)
    assert managed is not None and managed.can_manage and managed.main == main


@pytest.mark.parametrize(("text", "expected"), [
    ('{"basePath": "C:\\\\Users\\\\me\\\\Documents\\\\ComfyUI", "installState": "installed"}',
     Path("C:\\Users\\me\\Documents\\ComfyUI")),
    ('{"basePath": ""}', None), ('{"basePath": 3}', None), ("[]", None), ("not json", None), ("", None),
])
def test_desktop_config_names_its_base_folder(text: str, expected: Path | None) -> None:
    assert desktop_base_from_config(text) == expected


@given(st.text(max_size=200))
def test_any_desktop_config_text_gives_a_path_or_none(text: str) -> None:
    result = desktop_base_from_config(text)
    assert result is None or isinstance(result, Path)


def test_desktop_config_places_per_platform(tmp_path: Path) -> None:
    assert desktop_config_files({"APPDATA": "X"}, tmp_path, "win32") == [Path("X") / "ComfyUI" / "config.json"]
    assert desktop_config_files({}, tmp_path, "win32") == []
    assert desktop_config_files({}, tmp_path, "linux") == [tmp_path / ".config" / "ComfyUI" / "config.json"]
    assert desktop_config_files({}, tmp_path, "darwin")[0].parts[-3:] == ("Application Support", "ComfyUI",
                                                                           "config.json")


def test_discovery_finds_each_kind_in_the_usual_places(tmp_path: Path) -> None:
    home = tmp_path / "home"
    portable = _portable(home / "Downloads")
    checkout = _checkout(home / "ComfyUI")
    base = _desktop_base(tmp_path / "elsewhere" / "ComfyUI-base")
    config = home / ".config" / "ComfyUI" / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"basePath": str(base)}))
    found = {install.kind: install.root for install in discover_installs({}, home, "linux")}
    assert found == {InstallKind.PORTABLE: portable, InstallKind.FOLDER: checkout, InstallKind.DESKTOP: base}
    assert home / "Desktop" / "ComfyUI_windows_portable" in candidate_folders({}, home, "linux")


def test_discovery_on_an_empty_home_finds_nothing(tmp_path: Path) -> None:
    assert discover_installs({"APPDATA": str(tmp_path / "nope")}, tmp_path, "win32") == []


@pytest.mark.parametrize(("stats", "version"), [
    ({"system": {"comfyui_version": "0.3.64", "os": "posix"}, "devices": []}, "0.3.64"),
    ({"system": {}, "devices": []}, ""),
    ({"system": {"comfyui_version": 3}, "devices": []}, None),
    ({"devices": []}, None), ({"system": {}}, None), ([], None), ("0.3.64", None),
])
def test_only_comfyuis_system_stats_count(stats: object, version: str | None) -> None:
    assert server_version(stats) == version


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[FakeComfyProcess]:
    with FakeComfyProcess(output_dir=tmp_path / "out") as proc:
        yield proc


def test_a_running_server_is_probed_on_system_stats(fake_server: FakeComfyProcess) -> None:
    probe = probe_server(fake_server.url)
    assert probe is not None and probe.url == fake_server.url and probe.version


def test_nothing_listening_is_no_server() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert probe_server(f"http://127.0.0.1:{port}", timeout=1.0) is None
