"""`comfystudio-desktop dead`: list, requeue and clear dead letters, as a real process on a real home."""

from __future__ import annotations

import json
from pathlib import Path

from comfystudio_desktop.home import Home
from comfystudio_desktop.queue.connection import ResilientRedis
from comfystudio_desktop.queue.job_queue import SEED_QUEUE_KEY, JobQueue
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from tests.conftest import run_cli


def test_dead_list_requeue_clear(cli_home: Path) -> None:
    assert run_cli(cli_home, "dead").stdout.strip() == "no dead letters"
    server = EmbeddedRedis(Home(cli_home))
    queue = JobQueue(ResilientRedis(server.endpoint))
    try:
        queue.conn.client.rpush(SEED_QUEUE_KEY, b'{"prompt":"x","model":5}', b"\xff\n\x00",
                                json.dumps({"prompt": "fine", "job_id": "j-1"}),
                                json.dumps({"prompt": "dup", "job_id": "j-1"}))
        queue.pump_intake()
    finally:
        queue.conn.close()
    listed = run_cli(cli_home, "dead")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 3 and lines[0].lstrip().startswith("0 ") and "model: must be text" in lines[0]
    assert "duplicate job id 'j-1'" in lines[2]
    letters = json.loads(run_cli(cli_home, "dead", "--json").stdout)
    assert [d["index"] for d in letters] == [0, 1, 2] and letters[1]["raw"] == "\\xff\n\x00"
    still_bad = run_cli(cli_home, "dead", "requeue", "0")
    assert still_bad.returncode == 1 and "still not a valid job" in still_bad.stderr
    assert len(still_bad.stderr.strip().splitlines()) == 1
    for bad_args, needle in ((["dead", "requeue"], "needs the dead letter's number"),
                             (["dead", "requeue", "7"], "no dead letter #7"),
                             (["dead", "requeue", "x"], "expected a whole number"),
                             (["dead", "clear", "3"], "takes no number")):
        result = run_cli(cli_home, *bad_args)
        assert result.returncode == 2 and needle in result.stderr and "Traceback" not in result.stderr, result
    cleared = run_cli(cli_home, "dead", "clear", "--json")
    assert json.loads(cleared.stdout) == {"cleared": 3}
    assert json.loads(run_cli(cli_home, "dead", "--json").stdout) == []
