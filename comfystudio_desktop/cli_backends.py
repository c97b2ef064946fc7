"""`comfystudio-desktop backends [list|enable NAME|disable NAME] [--json]`.

The list shows every configured backend and every backend that published itself in Redis (a worker on another
machine): state, current job, loaded model, VRAM, jobs done and median run time. Enable/disable is stored in the
settings (when the backend is configured here) and in Redis, where every worker sees it at its next claim.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from comfystudio_desktop.queue.routing import BackendRegistry, BackendView
from comfystudio_desktop.runtime import Runtime
from comfystudio_desktop.settings import SettingsError, load_settings, save_settings

__all__ = ["cmd_backends", "describe"]

_EXIT_OK = 0
_GIB = 1024 ** 3


def describe(view: BackendView) -> str:
    """One line for a backend."""
    vram = f"{view.vram_free / _GIB:.1f}/{view.vram_total / _GIB:.1f} GiB free" if view.vram_total > 0 else "VRAM ?"
    median = f"{view.median_s:.1f} s" if view.median_s is not None else "-"
    enabled = "" if view.enabled else " (disabled)"
    return (f"{view.name}: {view.state}{enabled}, job {view.current_job or '-'!r}, model "
            f"{view.loaded_model or '-'!r}, {vram}, {view.jobs_done} done, median {median}, "
            f"{len(view.models)} models")


def cmd_backends(args: argparse.Namespace, rt: Runtime) -> int:
    """List the backends, or enable/disable one."""
    registry = BackendRegistry(rt.queue.conn)
    if args.action in ("enable", "disable"):
        if not args.name:
            raise SettingsError("backends", f"{args.action} needs a backend NAME")
        _set_enabled(rt, registry, args.name, args.action == "enable")
        print(f"{args.name}: {args.action}d")
        return _EXIT_OK
    views = registry.views(b.name for b in rt.settings.all_backends())
    if args.json:
        print(json.dumps([view.to_dict() for view in views]))
    else:
        for view in views:
            print(describe(view))
    return _EXIT_OK


def _set_enabled(rt: Runtime, registry: BackendRegistry, name: str, enabled: bool) -> None:
    known = {b.name for b in rt.settings.all_backends()} | set(registry.names())
    if name not in known:
        raise SettingsError("backends", f"no backend named {name!r} (known: {', '.join(sorted(known)) or 'none'})")
    config = rt.home.config_file
    settings = load_settings(config)
    if any(b.name == name for b in settings.backends):
        changed = tuple(replace(b, enabled=enabled) if b.name == name else b for b in settings.backends)
        save_settings(config, replace(settings, backends=changed))
    registry.set_enabled(name, enabled)
