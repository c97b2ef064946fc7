"""`comfystudio-desktop serve`: the HTTP API without the window, for a machine that runs only workers and ComfyUI.

Runs until SIGINT/SIGTERM (Ctrl+C, Ctrl+Break on Windows). Prints where the token is, never the token.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from comfystudio_desktop.api.api_token import token_path
from comfystudio_desktop.api.server import ApiServer, BindRefused, check_bind
from comfystudio_desktop.cli_args import CommandFailed, shown
from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.comfy.workflow_templates import load_library
from comfystudio_desktop.home import Home
from comfystudio_desktop.runtime import open_queue
from comfystudio_desktop.settings import Settings, is_bind_host

__all__ = ["cmd_serve"]


def cmd_serve(args: argparse.Namespace, home: Home, settings: Settings) -> int:
    """Serve the API until stopped."""
    host = args.host if args.host is not None else settings.api_host
    port = args.port if args.port is not None else settings.api_port
    if not is_bind_host(host):
        raise CommandFailed(f"--host: not an address to listen on: {shown(host, 80)}")
    if not 0 <= port <= 65535:
        raise CommandFailed("--port: must be 0..65535 (0: any free port)")
    expose = args.expose or (args.host is None and settings.api_expose_confirmed)
    try:
        check_bind(host, expose)  # before anything starts
        return asyncio.run(_serve(home, settings, host, port, expose))
    except BindRefused as exc:
        raise CommandFailed(f"{exc}") from None
    except OSError as exc:
        raise CommandFailed(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


async def _serve(home: Home, settings: Settings, host: str, port: int, expose: bool) -> int:
    runtime = await asyncio.to_thread(open_queue, home, settings)
    library = await asyncio.to_thread(load_library, home.workflows)
    client = ComfyClient(settings.comfy_url, connect_timeout=3.0, read_timeout=10.0)
    server = ApiServer(home, settings, runtime.queue, library, lambda: client, host=host, port=port,
                       expose_confirmed=expose)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
        signum = getattr(signal, name, None)
        if signum is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows: no loop signal handlers
                loop.add_signal_handler(signum, stop.set)
            if sys.platform == "win32":
                signal.signal(signum, lambda *_: loop.call_soon_threadsafe(stop.set))
    try:
        await server.start()
        print(f"API on {server.url}; bearer token in {token_path(home)}", flush=True)
        await stop.wait()
    finally:
        await server.stop()
        client.close()
        runtime.close()
    return 0
