"""The managed ComfyUI command (python, main.py, loopback, port, user args) and its health check."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from comfystudio_desktop.settings import Settings
from comfystudio_desktop.supervise.comfy_launcher import (
    ComfyLaunchError,
    check_user_args,
    comfy_command,
    comfy_health_check,
    comfy_process_spec,
)
from comfystudio_desktop.supervise.loopback_ports import free_port


@pytest.fixture
def portable(tmp_path: Path) -> Path:
    """A Windows portable layout: python_embeded/python.exe next to ComfyUI/main.py; returns main.py."""
    root = tmp_path / "ComfyUI_windows_portable"
    (root / "python_embeded").mkdir(parents=True)
    (root / "python_embeded" / "python.exe").write_bytes(b"")
    (root / "ComfyUI").mkdir()
    main_py = root / "ComfyUI" / "main.py"
    main_py.write_text("# ComfyUI\n")
    return main_py


def managed(main_py: Path, **changes: object) -> Settings:
    return Settings().with_changes(comfy_mode="managed", comfy_main=str(main_py), **changes)


def test_portable_python_is_found_and_loopback_port_come_first(portable: Path) -> None:
    command = comfy_command(managed(portable, comfy_args=("--lowvram",)), 8190)
    python = (portable.parent.parent / "python_embeded" / "python.exe").resolve()
    assert command.argv == (str(python), str(portable.resolve()), "--listen", "127.0.0.1", "--port", "8190",
                            "--lowvram")
    assert command.cwd == portable.parent.resolve()
    assert command.url == "http://127.0.0.1:8190"
    assert command.env["PYTHONUNBUFFERED"] == "1"


def test_configured_python_wins(portable: Path, tmp_path: Path) -> None:
    python = tmp_path / "my-python"
    command = comfy_command(managed(portable, comfy_python=str(python)), 8188)
    assert command.argv[0] == str(python)


def test_a_venv_inside_comfyui_is_found(tmp_path: Path) -> None:
    main_py = tmp_path / "ComfyUI" / "main.py"
    (tmp_path / "ComfyUI" / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "ComfyUI" / "venv" / "bin" / "python").write_bytes(b"")
    main_py.write_text("")
    assert comfy_command(managed(main_py), 8188).argv[0] == str((main_py.parent / "venv" / "bin" / "python").resolve())


def test_no_python_found_is_an_error(tmp_path: Path) -> None:
    main_py = tmp_path / "main.py"
    main_py.write_text("")
    with pytest.raises(ComfyLaunchError, match="comfy_python"):
        comfy_command(managed(main_py), 8188)


def test_missing_main_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ComfyLaunchError, match="comfy_main"):
        comfy_command(managed(tmp_path / "nope.py", comfy_python="python"), 8188)


@pytest.mark.parametrize("args", [
    (), ("--lowvram",), ("--listen", "127.0.0.1"), ("--listen=::1",), ("--listen", "localhost"),
    ("--listen", "127.0.0.1,::1"), ("--output-directory", "/tmp/out"), ("--preview-method", "auto"),
])
def test_user_args_that_stay_local_are_accepted(args: tuple[str, ...]) -> None:
    check_user_args(args)


@pytest.mark.parametrize("args", [
    ("--listen",), ("--listen", "--lowvram"), ("--listen", "0.0.0.0"), ("--listen=0.0.0.0",),
    ("--listen", "127.0.0.1,0.0.0.0"), ("--listen", "192.168.1.5"), ("--lis", "0.0.0.0"), ("--port", "9000"),
    ("--port=9000",), ("--po", "9000"),
])
def test_user_args_that_expose_comfyui_or_move_its_port_are_refused(args: tuple[str, ...]) -> None:
    with pytest.raises(ComfyLaunchError):
        check_user_args(args)


def test_spec_of_managed_and_external_modes(portable: Path, tmp_path: Path) -> None:
    spec = comfy_process_spec(managed(portable), port=8191, run_dir=tmp_path)
    assert spec.argv[2:6] == ("--listen", "127.0.0.1", "--port", "8191")
    assert spec.pidfile == tmp_path / "comfyui.pid.json" and not spec.adopt
    external = comfy_process_spec(Settings(), port=0, run_dir=tmp_path)
    assert external.external and external.health_check is not None


class _Stats(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/system_stats" else 404)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def stats_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stats)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_health_check_asks_system_stats(stats_server: str) -> None:
    assert comfy_health_check(stats_server, timeout_s=2)() is True
    assert comfy_health_check(stats_server + "/", timeout_s=2)() is True


def test_health_check_is_false_when_nothing_listens() -> None:
    assert comfy_health_check(f"http://127.0.0.1:{free_port()}", timeout_s=0.5)() is False
