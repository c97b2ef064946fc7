"""Managed backends: each one's ComfyUI started by a watchdog on 127.0.0.1, with its own port and `--cuda-device`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from comfystudio_desktop.backend_settings import Backend, BackendKind
from comfystudio_desktop.home import Home
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.supervise.comfy_launcher import comfy_process_spec
from comfystudio_desktop.supervise.loopback_ports import free_port
from comfystudio_desktop.supervise.process_spec import ProcessSpec
from comfystudio_desktop.supervise.restart_policy import RestartPolicy
from comfystudio_desktop.supervise.services import COMFY_POLICY
from comfystudio_desktop.supervise.supervised_process import SupervisedProcess
from comfystudio_desktop.supervise.watchdog import Watchdog

__all__ = ["backend_comfy_spec", "backend_service_name", "supervise_backend"]


def backend_service_name(backend: Backend) -> str:
    """The watchdog's (and log file's) name for a backend's ComfyUI."""
    return f"comfyui-{backend.name}"


def backend_comfy_spec(backend: Backend, settings: Settings, run_dir: Path, *, port: int,
                       readiness_timeout_s: float = 300.0, health_timeout_s: float = 5.0) -> ProcessSpec:
    """How to run a managed backend's ComfyUI: the app's managed-mode command (loopback only, the user's
    `comfy_args` checked), its own port and `--cuda-device N`, its own pid file. ComfyLaunchError if incomplete."""
    own = replace(settings, comfy_mode="managed", comfy_main=backend.comfy_main, comfy_python=backend.comfy_python,
                  comfy_args=(*settings.comfy_args, *backend.comfy_args()))
    spec = comfy_process_spec(own, port=port, run_dir=run_dir, readiness_timeout_s=readiness_timeout_s,
                              health_timeout_s=health_timeout_s)
    name = backend_service_name(backend)
    return replace(spec, name=name, pidfile=run_dir / f"{name}.pid.json")


def supervise_backend(home: Home, settings: Settings, backend: Backend, *, policy: RestartPolicy = COMFY_POLICY,
                      interval_s: float = 1.0, readiness_timeout_s: float = 300.0) -> tuple[Watchdog | None, Backend]:
    """For a managed backend: a started watchdog running its ComfyUI, and the backend with the port it got.

    An external backend needs no watchdog (None, unchanged). Raises ComfyLaunchError for incomplete settings.
    """
    if backend.kind is not BackendKind.MANAGED:
        return None, backend
    placed = replace(backend, port=backend.port or free_port())
    spec = backend_comfy_spec(placed, settings, home.run, port=placed.port, readiness_timeout_s=readiness_timeout_s)
    watchdog = Watchdog(interval_s=interval_s)
    watchdog.add(SupervisedProcess(spec, home.logs), policy=policy)
    watchdog.start()
    return watchdog, placed
