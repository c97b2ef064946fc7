"""CLI wall time: one `status` call, and 1,000 jobs from a file, now and with the CLI as it was before.

Both run as real processes against one home's embedded redis-server (AOF fsync always), started once. "Before"
runs the same commands from a copy of an earlier commit's tree (`git archive`, default: the last commit before
`status` read its record without redis-py), with the same interpreter; 1,000 jobs the old way means 1,000 `submit`
processes, so its figure is measured on `--old-submits` calls and scaled (printed as such).

    python bench/cli_speed.py [--reps 20] [--jobs 1000] [--old-commit 8230726] [--old-submits 20]

Bytecode is cached (PYTHONDONTWRITEBYTECODE is dropped and each variant runs once before it is timed), as in an
installed or frozen app; without the cache every run compiles the package again.

Goals (issue 11): `status` ≤ 120 ms wall (median); 1,000 jobs from a file ≤ 3 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(argv: list[str], env: dict[str, str],
          stdin: bytes | None = None) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    """Wall time of one process, and how it ended."""
    start = time.perf_counter()
    # Not in the checkout: `python -m` puts its working folder first on sys.path, where this checkout's package
    # would shadow the earlier tree that PYTHONPATH names.
    done = subprocess.run(argv, env=env, input=stdin, capture_output=True, timeout=300, cwd=tempfile.gettempdir())
    return time.perf_counter() - start, done


def export_tree(commit: str, into: Path) -> Path | None:
    """The package as it was at `commit` (None if git cannot give it)."""
    archive = into / "old.tar"
    with archive.open("wb") as fh:
        done = subprocess.run(["git", "archive", commit, "comfystudio_desktop", "workflows"], cwd=REPO, stdout=fh,
                              stderr=subprocess.PIPE)
    if done.returncode != 0:
        print(f"(no 'before' figures: git archive {commit} failed: {done.stderr.decode().strip()})")
        return None
    tree = into / "old"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


def cli(_env: dict[str, str], home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "comfystudio_desktop", "--home", str(home), *args]


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--old-commit", default="8230726")
    parser.add_argument("--old-submits", type=int, default=20)
    opts = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cli-speed-") as tmp_name:
        tmp = Path(tmp_name)
        home = tmp / "home"
        base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        new_env = {**base, "PYTHONPATH": str(REPO)}
        old_tree = export_tree(opts.old_commit, tmp)
        old_env = {**base, "PYTHONPATH": str(old_tree)} if old_tree else None
        started = subprocess.run(cli(new_env, home, "redis", "start"), env=new_env, capture_output=True, cwd=tmp)
        if started.returncode != 0:
            print(started.stderr.decode())
            return 1
        try:
            return measure(opts, tmp, home, new_env, old_env)
        finally:
            subprocess.run(cli(new_env, home, "redis", "stop"), env=new_env, capture_output=True, cwd=tmp)


def measure(opts: argparse.Namespace, tmp: Path, home: Path, new_env: dict[str, str],
            old_env: dict[str, str] | None) -> int:
    _, submitted = timed(cli(new_env, home, "submit", "--prompt", "probe"), new_env)
    job_id = submitted.stdout.decode().strip()
    python_start = [timed([sys.executable, "-c", "pass"], new_env)[0] for _ in range(opts.reps)]
    print(f"python -c pass: {median_ms(python_start):.0f} ms median of {opts.reps} (interpreter start, the floor)")

    rows: list[tuple[str, dict[str, str] | None]] = [("now", new_env), ("before", old_env)]
    status_ms: dict[str, float] = {}
    for label, env in rows:
        if env is None:
            continue
        timed(cli(env, home, "status", job_id), env)  # warm-up: writes the bytecode cache
        samples = []
        for _ in range(opts.reps):
            seconds, done = timed(cli(env, home, "status", job_id), env)
            if done.returncode != 0:
                print(f"status ({label}) failed: {done.stderr.decode().strip()}")
                return 1
            samples.append(seconds)
        status_ms[label] = median_ms(samples)
        print(f"status ({label}): {status_ms[label]:.0f} ms median of {opts.reps}, "
              f"min {min(samples) * 1000:.0f} ms, max {max(samples) * 1000:.0f} ms")

    batch = tmp / "prompts.txt"
    batch.write_text("".join(f"prompt number {n}\n" for n in range(opts.jobs)))
    seconds, done = timed(cli(new_env, home, "submit", "--from", str(batch)), new_env)
    if done.returncode != 0 or len(done.stdout.split()) != opts.jobs:
        print(f"submit --from failed: {done.stderr.decode().strip()}")
        return 1
    print(f"{opts.jobs} jobs from a file (now, one process): {seconds:.2f} s "
          f"({opts.jobs / seconds:.0f} jobs/s)")
    if old_env is not None:
        samples = [timed(cli(old_env, home, "submit", "--prompt", f"old {n}"), old_env)[0]
                   for n in range(opts.old_submits)]
        per_call = statistics.median(samples)
        print(f"{opts.jobs} jobs (before, one process each): {per_call * opts.jobs:.1f} s "
              f"(scaled from the median of {opts.old_submits} calls, {per_call * 1000:.0f} ms each)")
        print(f"speed-up for a 1,000-prompt script: {per_call * opts.jobs / seconds:.0f}x")
    if "before" in status_ms:
        print(f"status now / before: {status_ms['now'] / status_ms['before']:.2f}")
    print(f"goals: status <= 120 ms: {'met' if status_ms['now'] <= 120 else 'NOT met'}; "
          f"{opts.jobs} jobs <= 3 s: {'met' if seconds <= 3 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
