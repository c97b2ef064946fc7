"""Start-up of the frozen app against the app run from source, side by side in one run.

    python bench/frozen_startup.py [--runs 5] [--rebuild] [--mode auto|window|self-test]

Builds `dist/ComfyStudio` with build.spec (or reuses it; `--rebuild` forces a fresh build and times it), then
starts each variant `--runs` times, alternating, each with a fresh temporary home and offscreen Qt:

- window mode (when `comfystudio_desktop.ui.app` exists): `--home TMP --exit-when-ready`; "ready" is the moment
  the app prints `ready in ...` (window shown, its own Redis started, queue open), measured from the spawn;
  "painted" is when it prints `painted in ...` (the window's first paint done: what a double-click waits for);
  "exit" is when the process has shut down again (Redis stopped);
- self-test mode (the fallback while the window is not written yet): the whole `self-test` run.

Prints the median, the first run (coldest: OS file cache still cold for the first variant), min and max, plus the
build time and the folder's size.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from comfystudio_desktop.home import Home
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis

ROOT = Path(__file__).resolve().parents[1]
EXE_NAME = "comfystudio-cli.exe" if sys.platform == "win32" else "ComfyStudio"
RUN_TIMEOUT_S = 60.0  # a start takes about a second; a run still alive after this is counted as hung and killed


@dataclass
class Samples:
    """Timings of one variant."""

    label: str
    ready: list[float] = field(default_factory=list)
    painted: list[float] = field(default_factory=list)  # double-click -> window painted
    total: list[float] = field(default_factory=list)
    hung: int = 0


def build(dist: Path, work: Path) -> float:
    """Run PyInstaller on build.spec; return the seconds it took."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--distpath", str(dist), "--workpath",
                    str(work), str(ROOT / "build.spec")], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def folder_size(folder: Path) -> tuple[int, int]:
    """Bytes and file count (symbolic links not counted twice)."""
    files = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]
    return sum(p.stat().st_size for p in files), len(files)


PAINTED_MARKER = "painted in "  # printed with --exit-when-ready once the window's first paint is done


@dataclass
class Run:
    """Seconds from the spawn of one run to its ready line, its painted line and its exit (None: not seen)."""

    ready: float | None = None
    painted: float | None = None
    total: float | None = None


def time_run(command: list[str], ready_marker: str | None) -> Run:
    """Spawn `command`; time the first line starting with `ready_marker`, the painted line and the exit.

    The exit time is None when the process was still running after RUN_TIMEOUT_S (it is killed then).
    """
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", env=env)
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        proc.kill()

    watchdog = threading.Timer(RUN_TIMEOUT_S, kill)
    watchdog.start()
    run = Run()
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if run.painted is None and line.startswith(PAINTED_MARKER):
                run.painted = time.perf_counter() - start
            if run.ready is None and ready_marker and line.startswith(ready_marker):
                run.ready = time.perf_counter() - start
        code = proc.wait()
    finally:
        watchdog.cancel()
    if timed_out.is_set():
        return run
    if code != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {code}:\n{''.join(lines[-20:])}")
    run.total = time.perf_counter() - start
    return run


def run_variant(samples: Samples, base: list[str], mode: str) -> None:
    """One start of one variant in a fresh home, cleaned up afterwards."""
    home = Path(tempfile.mkdtemp(prefix="comfystudio-bench-"))
    try:
        if mode == "window":
            run = time_run([*base, "--home", str(home), "--exit-when-ready"], "ready in ")
            if run.ready is None:
                raise RuntimeError("the app never printed 'ready in'")
            samples.ready.append(run.ready)
            if run.painted is not None:  # builds from before the marker existed do not print it
                samples.painted.append(run.painted)
        else:
            run = time_run([*base, "--home", str(home), "self-test"], None)
        if run.total is None:
            samples.hung += 1
        else:
            samples.total.append(run.total)
    finally:
        EmbeddedRedis(Home(home)).stop()  # normally the app stopped it already
        shutil.rmtree(home, ignore_errors=True)


def describe(values: list[float]) -> str:
    """median / first / min / max."""
    if not values:
        return "-"
    return (f"median {statistics.median(values):6.3f} s   first {values[0]:6.3f} s   "
            f"min {min(values):6.3f} s   max {max(values):6.3f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dist", type=Path, default=ROOT / "dist")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "pyinstaller")
    parser.add_argument("--rebuild", action="store_true", help="build even if dist/ComfyStudio exists")
    parser.add_argument("--mode", choices=["auto", "window", "self-test"], default="auto")
    args = parser.parse_args()

    folder = args.dist / "ComfyStudio"
    exe = folder / EXE_NAME
    build_seconds: float | None = None
    if args.rebuild or not exe.is_file():
        print(f"building {folder} ...", flush=True)
        build_seconds = build(args.dist, args.work)
    size, count = folder_size(folder)

    mode = args.mode
    if mode == "auto":
        mode = "window" if importlib.util.find_spec("comfystudio_desktop.ui.app") is not None else "self-test"
        if mode == "self-test":
            print("comfystudio_desktop.ui.app is not available yet: measuring `self-test` instead of the window")

    frozen = Samples("frozen")
    source = Samples("source")
    variants = [(frozen, [str(exe)]), (source, [sys.executable, "-m", "comfystudio_desktop"])]
    for _ in range(args.runs):
        for samples, base in variants:
            run_variant(samples, base, mode)

    print()
    print(f"ComfyStudio start-up, {mode} mode, {args.runs} runs each, fresh home per run, offscreen Qt "
          f"({sys.platform}, {os.cpu_count()} CPUs)")
    build_text = f"{build_seconds:.1f} s" if build_seconds is not None else "not measured (reused; --rebuild)"
    print(f"  build time            {build_text}")
    print(f"  folder size           {size / 1e6:.1f} MB in {count} files ({folder})")
    for samples in (frozen, source):
        if mode == "window":
            print(f"  {samples.label:<6} to painted     {describe(samples.painted)}")
            print(f"  {samples.label:<6} to ready       {describe(samples.ready)}")
            print(f"  {samples.label:<6} to exit        {describe(samples.total)}")
        else:
            print(f"  {samples.label:<6} self-test      {describe(samples.total)}")
        if samples.hung:
            print(f"  {samples.label:<6} hung           {samples.hung} of {args.runs} runs did not exit within "
                  f"{RUN_TIMEOUT_S:.0f} s (killed; left out of the exit times)")
    key = "ready" if mode == "window" else "total"
    ratio = statistics.median(getattr(frozen, key)) / statistics.median(getattr(source, key))
    print(f"  frozen / source       {ratio:.2f}x (median {'to ready' if mode == 'window' else 'self-test'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
