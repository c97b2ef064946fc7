"""Execution order and cache signatures of a prompt graph, following ComfyUI's comfy_execution.graph rules."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any


class DependencyCycleError(Exception):
    """The remaining nodes block each other."""


def is_link(value: Any) -> bool:
    """ComfyUI's is_link: `[str node_id, int|float output_index]`."""
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], (int, float)) and not isinstance(value[1], bool))


class ExecutionOrder:
    """ComfyUI's ExecutionList: which node runs next, skipping nodes served from the cache."""

    def __init__(self, prompt: dict[str, Any], is_cached: Callable[[str], bool],
                 is_output: Callable[[str], bool]) -> None:
        self._prompt = prompt
        self._is_cached = is_cached
        self._is_output = is_output
        self._pending: dict[str, bool] = {}
        self._block_count: dict[str, int] = {}
        self._blocking: dict[str, dict[str, set[int]]] = {}

    def add_node(self, node_id: str) -> None:
        """Add an output node and, depth first, the uncached nodes it needs."""
        stack = [node_id]
        links: list[tuple[str, int, str]] = []
        while stack:
            current = stack.pop()
            if current in self._pending:
                continue
            self._pending[current] = True
            self._block_count[current] = 0
            self._blocking[current] = {}
            for value in self._prompt[current]["inputs"].values():
                if is_link(value):
                    if not self._is_cached(value[0]):
                        stack.append(value[0])
                    links.append((value[0], int(value[1]), current))
        for source, socket, target in links:
            if self._is_cached(source):
                continue
            self.add_node(source)
            if target not in self._blocking[source]:
                self._blocking[source][target] = set()
                self._block_count[target] += 1
            self._blocking[source][target].add(socket)

    def is_empty(self) -> bool:
        """Whether every node has run."""
        return not self._pending

    def next_node(self) -> str:
        """Pick the next ready node the way ComfyUI does (outputs first, then what feeds them soonest)."""
        ready = [node for node in self._pending if self._block_count[node] == 0]
        if not ready:
            raise DependencyCycleError("Dependency cycle detected")
        for node in ready:
            if self._is_output(node):
                return node
        for node in ready:
            if any(self._is_output(blocked) for blocked in self._blocking[node]):
                return node
        for node in ready:
            for blocked in self._blocking[node]:
                if any(self._is_output(second) for second in self._blocking[blocked]):
                    return node
        return ready[0]

    def complete(self, node_id: str) -> None:
        """Mark a node as done, unblocking the nodes that waited for it."""
        del self._pending[node_id]
        for blocked in self._blocking.pop(node_id):
            self._block_count[blocked] -= 1

    def remaining(self) -> list[str]:
        """Nodes still to run."""
        return list(self._pending)


def signatures(prompt: dict[str, Any], is_changed: Callable[[str, dict[str, Any]], str]) -> dict[str, str]:
    """A cache key per node: class, IS_CHANGED value, own inputs and (recursively) the keys of its inputs' nodes."""
    keys: dict[str, str] = {}
    visiting: set[str] = set()

    def key_of(node_id: str) -> str:
        if node_id in keys:
            return keys[node_id]
        if node_id not in prompt or node_id in visiting:
            return f"uncacheable:{node_id}"
        visiting.add(node_id)
        node = prompt[node_id]
        parts: list[Any] = [node.get("class_type"), is_changed(node_id, node)]
        inputs = node.get("inputs") or {}  # nodes no output needs are not validated
        for name in sorted(inputs):
            value = inputs[name]
            parts.append([name, ["LINK", key_of(value[0]), value[1]] if is_link(value) else value])
        visiting.discard(node_id)
        keys[node_id] = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
        return keys[node_id]

    for node_id in prompt:
        key_of(node_id)
    return keys
