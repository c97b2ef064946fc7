"""The environment for processes the app starts (redis-server, ComfyUI), free of the frozen bundle's paths.

A PyInstaller build points the dynamic loader at its own `_internal` libraries (LD_LIBRARY_PATH on Linux,
the DLL search directory on Windows). A child must not inherit that: ComfyUI would load the bundle's Qt or
OpenSSL instead of its own.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

__all__ = ["child_environment", "release_dll_directory"]

_LOADER_VARS = ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH")


def child_environment(extra: Mapping[str, str] | None = None,
                      base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) with the loader variables restored, plus `extra`."""
    env = dict(os.environ if base is None else base)
    if getattr(sys, "frozen", False) or any(f"{name}_ORIG" in env for name in _LOADER_VARS):
        for name in _LOADER_VARS:
            original = env.pop(f"{name}_ORIG", None)  # what the user had before the bootloader changed it
            if original is not None:
                env[name] = original
            else:
                env.pop(name, None)
    env.update(extra or {})
    return env


def release_dll_directory() -> None:
    """On a frozen Windows build, undo the bootloader's SetDllDirectory so children search DLLs normally."""
    if os.name == "nt" and getattr(sys, "frozen", False):
        import ctypes

        ctypes.windll.kernel32.SetDllDirectoryW(None)  # type: ignore[attr-defined,unused-ignore]
