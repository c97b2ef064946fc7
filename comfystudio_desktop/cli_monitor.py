"""`comfystudio-desktop stats [--json] [--watch]` and `comfystudio-desktop metrics [--port N]`."""

from __future__ import annotations

import argparse
import sys
import threading
import time

from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.monitor.metrics_endpoint import MetricsEndpoint, MetricsPortError
from comfystudio_desktop.monitor.report import figure_lines
from comfystudio_desktop.monitor.sampler import SAMPLE_INTERVAL_S, Sampler
from comfystudio_desktop.monitor.series import Resolution, StatsSeries
from comfystudio_desktop.monitor.snapshot import StatsSnapshot
from comfystudio_desktop.runtime import Runtime
from comfystudio_desktop.stop_signals import exit_code_for, stop_on_signals, wait_or_stop

__all__ = ["cmd_metrics", "cmd_stats"]

_QUICK_TIMEOUT_S = 2.0  # a ComfyUI that does not answer makes the GPU figure "unavailable", not the command slow
_CLEAR = "\x1b[H\x1b[2J"


def _sampler(rt: Runtime, *, publish_process: bool) -> tuple[Sampler, ComfyClient]:
    client = ComfyClient(rt.settings.comfy_url, connect_timeout=_QUICK_TIMEOUT_S, read_timeout=_QUICK_TIMEOUT_S)
    return Sampler(rt.queue, rt.home.outputs, system_stats=client.system_stats,
                   publish_process=publish_process), client


def _show(snapshot: StatsSnapshot, *, as_json: bool, clear: bool) -> None:
    if as_json:
        print(snapshot.to_json(), flush=True)
        return
    width = max(len(label) for label, _ in figure_lines(snapshot))
    text = "\n".join(f"{label:<{width}}  {value}" for label, value in figure_lines(snapshot))
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snapshot.at))
    print(f"{_CLEAR if clear else ''}{text}\n{'Sampled':<{width}}  {stamp}", flush=True)


def cmd_stats(args: argparse.Namespace, rt: Runtime) -> int:
    """Print the monitored figures once, or every `--interval` s with `--watch` until Ctrl+C (exit 130) or SIGTERM."""
    sampler, client = _sampler(rt, publish_process=False)
    clear = args.watch and not args.json and sys.stdout.isatty()
    stop = threading.Event()
    signals = stop_on_signals(stop) if args.watch else []
    try:
        while True:
            _show(sampler.take(), as_json=args.json, clear=clear)
            if not args.watch:
                return 0
            if wait_or_stop(stop, args.interval):
                return exit_code_for(signals[0])
    finally:
        client.close()


def cmd_metrics(args: argparse.Namespace, rt: Runtime) -> int:
    """Serve the figures as Prometheus text on 127.0.0.1 until Ctrl+C or SIGTERM, sampling every 10 s meanwhile."""
    port = args.port if args.port is not None else rt.settings.metrics_port
    if port == 0:
        print("comfystudio-desktop: error: no port: give --port N or set metrics_port", file=sys.stderr)
        return 2
    sampler, client = _sampler(rt, publish_process=False)
    latest: list[StatsSnapshot] = [sampler.take()]
    endpoint = MetricsEndpoint(port, lambda: latest[-1])
    try:
        endpoint.start()
    except MetricsPortError as exc:
        client.close()
        print(f"comfystudio-desktop: error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signals = stop_on_signals(stop)
    print(f"Serving metrics on {endpoint.url} (Ctrl+C to stop)", flush=True)
    try:
        while not wait_or_stop(stop, SAMPLE_INTERVAL_S / 2):
            stored = sampler.tick() or next(iter(rt.queue.conn.call(
                lambda c: StatsSeries.latest(c, Resolution.FINE, 1))), None)
            if stored is not None and stored.at > latest[-1].at:
                latest.append(stored)
                del latest[:-1]
        return exit_code_for(signals[0])
    finally:
        endpoint.stop()
        client.close()
