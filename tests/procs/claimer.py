"""A worker process for the ordering race test: waits for jobs, claims and finishes them until none is left.

Run as a script with the home folder whose embedded redis-server is running; prints "ready" once connected, then
one claimed id per line.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from comfystudio_desktop.home import Home
from comfystudio_desktop.queue.connection import ResilientRedis
from comfystudio_desktop.queue.job_queue import PENDING_KEY, JobQueue, LeaseState
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis


def main() -> int:
    server = EmbeddedRedis(Home(Path(sys.argv[1])))
    conn = ResilientRedis(server.endpoint, delay_s=0.1)
    queue = JobQueue(conn)
    conn.client.ping()
    print("ready", flush=True)  # the test submits only now, so the jobs cannot all be gone before this one looks
    deadline = time.monotonic() + 60
    while conn.client.zcard(PENDING_KEY) == 0:  # started before the jobs are submitted: wait for them
        if time.monotonic() > deadline:
            return 4
        time.sleep(0.01)
    claimed = []
    while (lease := queue.claim(f"proc-{sys.argv[2]}")) is not None:
        claimed.append(lease.job_id)
        if queue.finish(lease, f"outputs/{lease.job_id}.png") is not LeaseState.OK:
            return 3
    conn.close()
    print("\n".join(claimed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
