"""Keeping a short-lived command's start-up light: `redis.asyncio`, loaded by `import redis`, on first use only.

redis-py's package `__init__` imports its asyncio client (about a third of the import time of `redis`) although
the queue's commands use the sync client only. `defer_redis_asyncio()` registers `redis.asyncio` as a module
whose code runs on its first attribute access, so `import redis` stays sync-only and anything that does use the
asyncio client (`redis.asyncio.Redis`, `from redis.asyncio import ...`) still gets the real module.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types

__all__ = ["defer_redis_asyncio"]


class _DeferredModule(types.ModuleType):
    """A module whose code runs when one of its attributes is first asked for."""

    def __getattr__(self, name: str) -> object:
        spec = self.__spec__
        assert spec is not None and spec.loader is not None
        self.__class__ = types.ModuleType  # type: ignore[assignment]  # from here on an ordinary module (and no recursion while it loads)
        spec.loader.exec_module(self)
        return getattr(self, name)


def defer_redis_asyncio() -> bool:
    """Make `redis.asyncio` load on first use; False if redis is already imported (or not installed)."""
    if "redis" in sys.modules or "redis.asyncio" in sys.modules:
        return False
    parent = importlib.util.find_spec("redis")  # finds the package without running it
    if parent is None or parent.submodule_search_locations is None:
        return False
    spec = importlib.machinery.PathFinder.find_spec("redis.asyncio", parent.submodule_search_locations)
    if spec is None or spec.loader is None:
        return False
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _DeferredModule
    sys.modules["redis.asyncio"] = module
    return True
