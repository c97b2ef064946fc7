"""The app's services under one watchdog: redis-server first (the queue needs it), then ComfyUI.

Redis is the home's embedded server (supervised) or an external one (only watched). ComfyUI is managed (started,
restarted, stopped by the app) or external (only watched, never started or killed).

Typical use by the window::

    services = build_services(home, settings)
    services.watchdog.add_on_change(bridge.emit)        # a Qt signal: callbacks come from the watchdog thread
    services.start()
    services.wait_for_redis(30)                          # off the GUI thread; the queue needs its first endpoint
    runtime = open_queue(home, settings, endpoint_provider=services.redis_endpoint)
    worker_settings = replace(settings, comfy_url=services.comfy_url)
    ...
    services.stop()                                      # on quit (not when the window only closes to the tray)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import redis

from comfystudio_desktop.home import Home
from comfystudio_desktop.queue.redis_endpoint import answers_ping, one_shot_options
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.supervise.aof_repair import AofRepairReport, repair_aof
from comfystudio_desktop.supervise.comfy_launcher import COMFY_SERVICE, comfy_process_spec
from comfystudio_desktop.supervise.loopback_ports import free_port
from comfystudio_desktop.supervise.process_spec import HealthCheck, ProcessSpec
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis, RedisEndpoint
from comfystudio_desktop.supervise.redis_service import REDIS_SERVICE, RedisService
from comfystudio_desktop.supervise.restart_policy import RestartPolicy
from comfystudio_desktop.supervise.service_state import ServiceState, State
from comfystudio_desktop.supervise.supervised_process import SupervisedProcess
from comfystudio_desktop.supervise.watchdog import Watchdog

__all__ = [
    "COMFY_POLICY",
    "COMFY_SERVICE",
    "REDIS_POLICY",
    "REDIS_SERVICE",
    "AppServices",
    "build_services",
    "external_redis_check",
]

log = logging.getLogger(__name__)

#: redis-server starts in milliseconds and everything waits for it: restart it quickly.
REDIS_POLICY = RestartPolicy(initial_backoff_s=0.5, max_backoff_s=30.0)
#: ComfyUI may be slow to answer while it loads a model: give it more failed checks before calling it hung.
COMFY_POLICY = RestartPolicy(initial_backoff_s=2.0, max_backoff_s=60.0, hung_after_failures=5)


@dataclass
class AppServices:
    """The watchdog over the app's services, and what the rest of the app needs from them."""

    home: Home
    settings: Settings
    watchdog: Watchdog
    #: The embedded server's service; None when Redis is external.
    redis: RedisService | None
    #: Where the worker finds ComfyUI: the managed one's loopback URL, or the external `comfy_url`.
    comfy_url: str

    @property
    def comfy_managed(self) -> bool:
        """True when the app starts ComfyUI itself."""
        return self.settings.comfy_mode == "managed"

    def start(self) -> None:
        """Start supervising (the watchdog thread starts or adopts redis-server, then ComfyUI)."""
        self.watchdog.start()

    def stop(self, *, stop_children: bool = True) -> None:
        """Stop supervising; with `stop_children`, stop the processes too (ComfyUI first). External ones stay."""
        self.watchdog.stop(stop_children=stop_children)

    def __enter__(self) -> AppServices:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def redis_endpoint(self) -> RedisEndpoint:
        """The queue's `endpoint_provider`: where the supervised server is; restarting it is the watchdog's job."""
        if self.redis is None:
            url = self.settings.redis_url
            return RedisEndpoint(host="", port=0, password=None, embedded=False, url=url)
        return self.redis.endpoint()

    def wait_for_redis(self, timeout_s: float) -> ServiceState:
        """Block until redis-server runs (or answers, when external) or the watchdog gave up on it (FATAL).

        Returns its state: when not up, its message says why (e.g. a damaged append-only file).
        """
        return self.watchdog.wait_for(REDIS_SERVICE, lambda s: _is_up(s) or s.state is State.FATAL, timeout_s)

    def states(self) -> dict[str, ServiceState]:
        """A snapshot of every service, by name."""
        return self.watchdog.states()

    def wait_until_running(self, timeout_s: float) -> bool:
        """Block until every service is RUNNING (or EXTERNAL and healthy); False after the timeout."""
        deadline = time.monotonic() + timeout_s
        return all(_is_up(self.watchdog.wait_for(name, _is_up, max(0.0, deadline - time.monotonic())))
                   for name in self.watchdog.states())

    def restart(self, name: str) -> ServiceState:
        """Restart one service now (clears FATAL). Blocks up to its stop grace: call it off the GUI thread."""
        return self.watchdog.restart(name)

    def stop_service(self, name: str) -> ServiceState:
        """Stop one service until restarted. Blocks up to its stop grace: call it off the GUI thread."""
        return self.watchdog.stop_service(name)

    def log_file(self, name: str) -> Path:
        """The log file of a service (what the "open log" button shows)."""
        return self.home.logs / f"{name}.log"

    def repair_redis_aof(self) -> AofRepairReport:
        """Back up and repair the damaged AOF, then start redis-server again if that worked.

        Blocks for seconds: call it off the GUI thread. Only for the embedded server.
        """
        if self.redis is None:
            return AofRepairReport(False, "Redis is external; the app does not manage its files.")
        if self.watchdog.states()[REDIS_SERVICE].state not in (State.FATAL, State.STOPPED):
            self.watchdog.stop_service(REDIS_SERVICE)
        report = repair_aof(self.home, binary=self.settings.redis_binary or None)
        log.info("Repair of the queue's append-only file: %s", report.message)
        if report.repaired:
            self.watchdog.restart(REDIS_SERVICE)
        return report


def build_services(home: Home, settings: Settings, *, redis_policy: RestartPolicy = REDIS_POLICY,
                   comfy_policy: RestartPolicy = COMFY_POLICY, interval_s: float = 1.0,
                   redis_health_timeout_s: float = 2.0, comfy_health_timeout_s: float = 5.0,
                   comfy_readiness_timeout_s: float = 300.0) -> AppServices:
    """The app's watchdog from the home and settings (not started yet).

    Raises RedisServerError when no usable redis-server is found, ComfyLaunchError when the managed ComfyUI
    settings are incomplete.
    """
    watchdog = Watchdog(interval_s=interval_s)
    redis_service: RedisService | None = None
    if settings.redis_mode == "external":
        watchdog.add(SupervisedProcess(ProcessSpec(name=REDIS_SERVICE, health_check=external_redis_check(
            settings.redis_url, timeout_s=redis_health_timeout_s)), home.logs), policy=redis_policy)
    else:
        redis_service = RedisService(EmbeddedRedis(home, settings.redis_binary or None),
                                     health_timeout_s=redis_health_timeout_s)
        watchdog.add(redis_service.process, policy=redis_policy)
    comfy_url = settings.comfy_url
    port = 0
    if settings.comfy_mode == "managed":
        port = settings.comfy_port or free_port()
        comfy_url = f"http://127.0.0.1:{port}"
    spec = comfy_process_spec(settings, port=port, run_dir=home.run, readiness_timeout_s=comfy_readiness_timeout_s,
                              health_timeout_s=comfy_health_timeout_s)
    watchdog.add(SupervisedProcess(spec, home.logs), policy=comfy_policy)
    return AppServices(home=home, settings=settings, watchdog=watchdog, redis=redis_service, comfy_url=comfy_url)


def external_redis_check(url: str, *, timeout_s: float = 2.0) -> HealthCheck:
    """A health check that PINGs a Redis given by URL (an external server: watched, never managed)."""

    def check() -> bool:
        return answers_ping(redis.Redis.from_url(url, **one_shot_options(timeout_s)))

    return check


def _is_up(state: ServiceState) -> bool:
    return state.state is State.RUNNING or (state.state is State.EXTERNAL and state.healthy is True)
