"""`submit --text-encoder/--vae`: a UNET job's picks from the command line, checked like model names."""

from __future__ import annotations

from pathlib import Path

import pytest

from comfystudio_desktop.home import Home
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from tests.conftest import make_queue, run_cli


def test_submit_carries_the_picks_into_the_queued_job(cli_home: Path) -> None:
    result = run_cli(cli_home, "submit", "--prompt", "p", "--model", "flux/dev.safetensors", "--text-encoder",
                 "t5xxl_fp8_e4m3fn.safetensors", "--vae", "flux/ae.safetensors")
    assert result.returncode == 0, result.stderr
    home = Home(cli_home)
    queue = make_queue(EmbeddedRedis(home), home)
    try:
        record = queue.status(result.stdout.strip())
    finally:
        queue.conn.close()
    assert record is not None and record.job is not None
    assert (record.job.text_encoder, record.job.vae) == ("t5xxl_fp8_e4m3fn.safetensors", "flux/ae.safetensors")


@pytest.mark.parametrize(("option", "field"), [("--text-encoder", "text_encoder"), ("--vae", "vae")])
def test_a_bad_pick_exits_2_with_one_line_naming_it(cli_home: Path, option: str, field: str) -> None:
    result = run_cli(cli_home, "submit", "--prompt", "p", option, "../outside.safetensors")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{field}: invalid file name" in lines[0], result.stderr
