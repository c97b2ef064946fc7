"""Running the CLI in-process (fast) or as a real process, and checking its error contract."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from comfystudio_desktop.cli import main
from tests.conftest import REPO_ROOT


@dataclass(frozen=True)
class Result:
    """What one CLI call did."""

    code: int
    out: str
    err: str

    def error_lines(self) -> list[str]:
        """The non-empty lines on stderr."""
        return [line for line in self.err.splitlines() if line.strip()]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    """`main(argv)` in this process; stdout and stderr captured."""
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def run_process(*argv: str | bytes, timeout: float = 60, stdin: bytes | None = None) -> Result:
    """The CLI as a real process (`python -m comfystudio_desktop`)."""
    done = subprocess.run([sys.executable, "-m", "comfystudio_desktop", *argv], input=stdin, capture_output=True,
                          timeout=timeout, cwd=REPO_ROOT)
    return Result(done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace"))


def assert_clean_usage_error(result: Result, needle: str = "") -> None:
    """Exit 2, exactly one line on stderr, no traceback (and `needle` in that line)."""
    assert result.code == 2, result
    assert "Traceback" not in result.err, result.err
    lines = result.error_lines()
    assert len(lines) == 1, result.err
    assert needle in lines[0], lines[0]


def home_arg(root: Path) -> tuple[str, str]:
    """`--home ROOT`."""
    return "--home", str(root)
