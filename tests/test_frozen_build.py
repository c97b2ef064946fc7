"""The double-click build: `pyinstaller build.spec` here, then the frozen app's own self-test; and the Windows
redis-server fetcher (run offline against a local archive).

The build tests (marker `build`) share one build of the one-folder app into a temporary dist/work pair: about
20 s on two cores, plus about 2 s for the checks.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from comfystudio_desktop import __version__
from tests.conftest import REPO_ROOT

SPEC = REPO_ROOT / "build.spec"
IS_WINDOWS = sys.platform == "win32"
# The console executable: the one that prints (on Windows the window's ComfyStudio.exe has no console).
CLI_EXE = "comfystudio-cli.exe" if IS_WINDOWS else "ComfyStudio"
BUILD_TIMEOUT_S = 900
#: A bundle that grows past this has picked up something heavy (QtWebEngine, QML, a second Python...).
MAX_BUNDLE_MB = 260


@dataclass(frozen=True)
class FrozenApp:
    """A finished build: its folder and how long PyInstaller took."""

    folder: Path
    build_seconds: float

    @property
    def internal(self) -> Path:
        return self.folder / "_internal"

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
        return subprocess.run([str(self.folder / CLI_EXE), *args], capture_output=True, text=True, timeout=timeout,
                              env=env, cwd=self.folder.parent, check=False)


def _folder_size(folder: Path) -> int:
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.fixture(scope="session")
def frozen_app(tmp_path_factory: pytest.TempPathFactory) -> FrozenApp:
    """Build the app once per session with build.spec into temporary dist/work folders."""
    pytest.importorskip("PyInstaller")
    base = tmp_path_factory.mktemp("frozen")
    dist, work = base / "dist", base / "work"
    env = {key: value for key, value in os.environ.items() if key != "COMFYSTUDIO_ONEFILE"}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--distpath", str(dist),
                             "--workpath", str(work), str(SPEC)], capture_output=True, text=True,
                            timeout=BUILD_TIMEOUT_S, cwd=REPO_ROOT, env=env, check=False)
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-4000:]
    app = FrozenApp(dist / "ComfyStudio", seconds)
    size_mb = _folder_size(app.folder) / 1e6
    print(f"\nfrozen build: {seconds:.1f} s, {size_mb:.0f} MB in {app.folder}")
    return app


@pytest.mark.build
def test_the_frozen_app_passes_its_self_test(frozen_app: FrozenApp,
                                              record_property: Callable[[str, object], None]) -> None:
    record_property("build_seconds", round(frozen_app.build_seconds, 1))
    result = frozen_app.run("self-test")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    lines = out.splitlines()
    assert lines[0].startswith(f"ComfyStudio self-test {__version__} (frozen, Python ")
    report = {line[2:15].strip(): line for line in lines[1:] if line.startswith("  ")}  # by the name column
    server = "redis-server.exe" if IS_WINDOWS else "valkey-server"
    bundled_bin = str(Path("resources") / "bin" / server)
    assert " ok " in report["redis"] and f"({bundled_bin})" in report["redis"], report["redis"]
    assert " ok " in report["queue"]
    assert " ok " in report["workflows"] and "12 templates filled" in report["workflows"]
    assert report["workflows"].endswith("from workflows")
    assert " ok " in report["resources"] and report["resources"].endswith(f"in {Path('resources')}")
    assert " ok " in report["comfy client"] and " ok " in report["redis stop"]
    assert report["window"].split()[1] == "ok", report["window"]  # the bundle ships Qt: the window check runs
    assert lines[-1].startswith("self-test passed: ")


@pytest.mark.build
def test_the_bundle_layout_is_complete_and_lean(frozen_app: FrozenApp) -> None:
    internal = frozen_app.internal
    server = internal / "resources" / "bin" / ("redis-server.exe" if IS_WINDOWS else "valkey-server")
    assert server.is_file() and os.access(server, os.X_OK)
    shipped = sorted(p.name for p in (REPO_ROOT / "workflows").glob("*.json"))
    assert sorted(p.name for p in (internal / "workflows").glob("*.json")) == shipped
    assert (internal / "resources" / "icons" / "app.png").is_file()
    assert not list(internal.rglob("make_icons.py"))
    plugins = internal / "PySide6" / "Qt" / "plugins"
    platforms = {p.name.split(".")[0].removeprefix("lib") for p in (plugins / "platforms").iterdir()}
    assert "qoffscreen" in platforms and ({"qxcb", "qwindows", "qcocoa"} & platforms)
    assert {"qjpeg", "qwebp", "qico"} <= {p.name.split(".")[0].removeprefix("lib")
                                        for p in (plugins / "imageformats").iterdir()}
    names = {p.name for p in internal.rglob("*")}
    for unwanted in ("QtQml", "QtQuick", "QtWebEngineCore", "Qt3DCore", "libqgtk3.so", "opengl32sw.dll", "pytest"):
        assert not any(name.startswith(unwanted) for name in names), unwanted
    assert not [p for p in frozen_app.folder.rglob("*") if p.is_symlink() and not p.exists()], "dangling symlinks"
    assert _folder_size(frozen_app.folder) / 1e6 < MAX_BUNDLE_MB


@pytest.mark.build
def test_the_frozen_command_line_works(frozen_app: FrozenApp, tmp_path: Path) -> None:
    version = frozen_app.run("--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"comfystudio-desktop {__version__}")
    home = str(tmp_path / "home")
    try:
        submitted = frozen_app.run("--home", home, "submit", "--prompt", "a frozen cat", "--seed", "7")
        assert submitted.returncode == 0, submitted.stderr
        status = json.loads(frozen_app.run("--home", home, "status", submitted.stdout.strip(), "--json").stdout)
        assert status["status"] == "queued"
    finally:
        stopped = frozen_app.run("--home", home, "redis", "stop")
    assert stopped.stdout.strip() == "stopped"


# -- scripts/fetch-redis-windows.py ------------------------------------------------------------------------------
def _load_fetcher() -> ModuleType:
    path = REPO_ROOT / "scripts" / "fetch-redis-windows.py"
    spec = importlib.util.spec_from_file_location("fetch_redis_windows", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fetcher = _load_fetcher()


def _fake_release(tmp_path: Path, *, checker: bool = False) -> tuple[str, str]:
    archive = tmp_path / "Redis-x64-9.9.9.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("redis-server.exe", b"MZ server")
        if checker:
            zf.writestr("redis-check-aof.exe", b"MZ checker")
        zf.writestr("EventLog.dll", b"MZ dll")
        zf.writestr("redis-cli.exe", b"MZ cli")
        zf.writestr("../evil.dll", b"outside")  # a hostile name must not escape the destination
    return archive.as_uri(), hashlib.sha256(archive.read_bytes()).hexdigest()


def test_the_pinned_release_is_well_formed() -> None:
    assert fetcher.REDIS_URL.startswith("https://github.com/tporadowski/redis/releases/download/v5.0.14.1/")
    assert fetcher.REDIS_URL.endswith("/Redis-x64-5.0.14.1.zip")
    assert re.fullmatch(r"[0-9a-f]{64}", fetcher.REDIS_SHA256), fetcher.REDIS_SHA256


def test_fetch_verifies_extracts_and_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url, digest = _fake_release(tmp_path)
    dest, cache = tmp_path / "bin", tmp_path / "cache"
    assert fetcher.fetch(dest, cache, url=url, sha256=digest) == 0
    assert sorted(p.name for p in dest.iterdir()) == ["EventLog.dll", "redis-check-aof.exe", "redis-server.exe",
                                                      "redis-server.source.json"]
    assert (dest / "redis-server.exe").read_bytes() == b"MZ server"
    # No checker in the archive: the server under the checker's name (Redis picks its mode from argv[0]).
    assert (dest / "redis-check-aof.exe").read_bytes() == b"MZ server"
    assert not (tmp_path / "evil.dll").exists()
    capsys.readouterr()
    assert fetcher.fetch(dest, cache, url=url, sha256=digest) == 0
    assert "is up to date" in capsys.readouterr().out
    (dest / "redis-check-aof.exe").unlink()  # a folder without its checker is not up to date
    assert fetcher.fetch(dest, cache, url=url, sha256=digest) == 0
    assert (dest / "redis-check-aof.exe").is_file()


def test_fetch_ships_the_archives_own_checker(tmp_path: Path) -> None:
    url, digest = _fake_release(tmp_path, checker=True)
    dest = tmp_path / "bin"
    assert fetcher.fetch(dest, tmp_path / "cache", url=url, sha256=digest) == 0
    assert (dest / "redis-check-aof.exe").read_bytes() == b"MZ checker"


def test_fetch_refuses_a_wrong_checksum(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url, digest = _fake_release(tmp_path)
    wrong = ("0" if digest[0] != "0" else "1") + digest[1:]
    dest = tmp_path / "bin"
    assert fetcher.fetch(dest, tmp_path / "cache", url=url, sha256=wrong) == 1
    assert "SHA-256 mismatch" in capsys.readouterr().err
    assert not dest.exists() and not list((tmp_path / "cache").glob("*"))
