"""Runs queued prompts one at a time and emits ComfyUI's WebSocket messages in ComfyUI's order."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fake_comfyui.control import Faults, Stats
from tests.fake_comfyui.folders import Folders
from tests.fake_comfyui.graph import DependencyCycleError, ExecutionOrder, is_link, signatures
from tests.fake_comfyui.hub import Hub
from tests.fake_comfyui.nodes import NODES
from tests.fake_comfyui.prompt_queue import PromptQueue, QueueItem
from tests.fake_comfyui.runtime import Handle, Latent, RunContext, preview_frame, preview_jpeg, run_node

log = logging.getLogger("fake_comfyui")
FAKE_TRACEBACK = [
    '  File "<comfyui>/execution.py", line 496, in execute\n    output_data, output_ui, has_subgraph, '
    "has_pending_tasks = await get_output_data(prompt_id, unique_id, obj, input_data_all)\n",
    '  File "<comfyui>/execution.py", line 277, in process_inputs\n    result = f(**inputs)\n',
]


class Interrupted(Exception):
    """comfy.model_management.InterruptProcessingException."""


class InjectedError(RuntimeError):
    """The runtime failure armed with the `error_next` fault."""

    exception_type = "RuntimeError"


class InjectedOutOfMemory(RuntimeError):
    """The allocation failure armed with the `oom_next` fault, as torch reports it on a CUDA device."""

    exception_type = "torch.OutOfMemoryError"


OOM_MESSAGE = ("Allocation on device 0 would exceed allowed memory. (out of memory)\n"
               "Currently allocated     : 7.62 GiB\nRequested               : 1.50 GiB\n"
               "Device limit            : 8.00 GiB\nFree (according to CUDA): 0 bytes\n"
               "\nThis error means you ran out of memory on your GPU.\n\nTIPS: If the workflow worked before you might "
               "have accidentally set the batch_size to a large number.")

AddMessage = Callable[[str, dict[str, Any], bool], None]


@dataclass
class Failure:
    """Why a prompt stopped: the node, and the exception (Interrupted means execution_interrupted)."""

    node_id: str
    error: BaseException
    current_inputs: dict[str, list[Any]] = field(default_factory=dict)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _exception_type(ex: BaseException) -> str:
    """ComfyUI's full_type_name(), unless the exception names the type it stands in for."""
    named = getattr(ex, "exception_type", None)
    if isinstance(named, str):
        return named
    module = type(ex).__module__
    return type(ex).__qualname__ if module == "builtins" else f"{module}.{type(ex).__qualname__}"


def _format(value: Any) -> Any:
    return value if value is None or isinstance(value, (int, float, bool, str)) else str(value)


class Progress:
    """The per-prompt progress registry; every change re-sends the full `progress_state`."""

    def __init__(self, hub: Hub, prompt_id: str, sid: str | None) -> None:
        self._hub, self._prompt_id, self._sid = hub, prompt_id, sid
        self._nodes: dict[str, dict[str, Any]] = {}

    def start(self, node_id: str) -> None:
        """A node begins (value 0.0 of 1.0)."""
        self._nodes[node_id] = {"value": 0.0, "max": 1.0, "state": "running"}
        self._send()

    def update(self, node_id: str, value: int, maximum: int) -> None:
        """A sampler step."""
        self._nodes[node_id] = {"value": value, "max": maximum, "state": "running"}
        self._send()

    def finish(self, node_id: str) -> None:
        """A node is done (or served from the cache): value = max."""
        entry = self._nodes.setdefault(node_id, {"value": 0.0, "max": 1.0, "state": "running"})
        entry.update(state="finished", value=entry["max"])
        self._send()

    def _send(self) -> None:
        pid = self._prompt_id
        nodes = {node_id: {**entry, "node_id": node_id, "prompt_id": pid, "display_node_id": node_id,
                           "parent_node_id": None, "real_node_id": node_id} for node_id, entry in self._nodes.items()}
        self._hub.send_json("progress_state", {"prompt_id": pid, "nodes": nodes}, self._sid)


class Executor:
    """ComfyUI's prompt worker plus PromptExecutor, with a per-node signature cache of the last prompt."""

    def __init__(self, folders: Folders, hub: Hub, queue: PromptQueue, faults: Faults, stats: Stats) -> None:
        self.folders, self.hub, self.queue, self.faults, self.stats = folders, hub, queue, faults, stats
        self.client_id: str | None = None  # of the prompt running (or last run), as server.client_id
        self.last_node_id: str | None = None
        self._interrupt = False
        self._outputs: dict[str, tuple[Any, ...]] = {}  # cache key -> node outputs
        self._ui: dict[str, dict[str, Any]] = {}  # cache key -> {"meta", "output"}

    def interrupt(self) -> None:
        """Set the global interrupt flag; the running prompt stops at its next node or sampler step."""
        self._interrupt = True

    async def run_forever(self) -> None:
        """The worker loop: take prompts in order, run them, apply /free flags between prompts."""
        while True:
            if self.queue.take_flags().get("free_memory"):
                self._outputs.clear()
                self._ui.clear()
            item = await self.queue.get()
            if item is None:
                continue
            try:
                await self._run(item)
            except Exception:
                log.exception("prompt %s crashed the fake executor", item.prompt_id)
                raise

    def _is_changed(self, node_id: str, node: dict[str, Any]) -> str:
        if node.get("class_type") != "LoadImage" or not isinstance((node.get("inputs") or {}).get("image"), str):
            return ""
        path = self.folders.annotated_path(node["inputs"]["image"])
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"

    async def _run(self, item: QueueItem) -> None:
        pid, prompt, sid = item.prompt_id, item.prompt, item.extra_data.get("client_id")
        self._interrupt = False
        self.client_id = sid
        messages: list[list[Any]] = []

        def add_message(event: str, data: dict[str, Any], broadcast: bool) -> None:
            data = {**data, "timestamp": _now_ms()}
            messages.append([event, data])
            if sid is not None or broadcast:
                self.hub.send_json(event, data, sid)

        add_message("execution_start", {"prompt_id": pid}, False)
        keys = signatures(prompt, self._is_changed)
        used = set(keys.values())
        self._outputs = {k: v for k, v in self._outputs.items() if k in used}
        self._ui = {k: v for k, v in self._ui.items() if k in used}
        add_message("execution_cached", {"nodes": [n for n in prompt if keys[n] in self._outputs],
                                         "prompt_id": pid}, False)
        executed: set[str] = set()
        failure = await self._run_graph(item, keys, executed)
        if failure is None:
            add_message("execution_success", {"prompt_id": pid}, False)
        else:
            self._report_failure(failure, item, [n for n in prompt if n in executed], add_message)
        result = {"outputs": {n: self._ui[keys[n]]["output"] for n in prompt if keys[n] in self._ui},
                  "meta": {n: self._ui[keys[n]]["meta"] for n in prompt if keys[n] in self._ui}}
        self.last_node_id = None
        self._record(pid, executed, failure)
        self.queue.task_done(item, result, {"status_str": "success" if failure is None else "error",
                                            "completed": failure is None, "messages": messages})
        if sid is not None:
            self.hub.send_json("executing", {"node": None, "prompt_id": pid}, sid)

    async def _run_graph(self, item: QueueItem, keys: dict[str, str], executed: set[str]) -> Failure | None:
        prompt = item.prompt
        progress = Progress(self.hub, item.prompt_id, item.extra_data.get("client_id"))
        order = ExecutionOrder(prompt, lambda n: keys.get(n, "") in self._outputs,
                               lambda n: NODES[prompt[n]["class_type"]].output_node)
        for output in item.outputs:
            order.add_node(output)
        while not order.is_empty():
            try:
                node_id = order.next_node()
            except DependencyCycleError as ex:
                return Failure(order.remaining()[0], ex)
            failure = await self._run_node(item, node_id, keys, progress, executed)
            if failure is not None:
                return failure
            order.complete(node_id)
        return None

    def _report_failure(self, failure: Failure, item: QueueItem, executed: list[str],
                        add_message: AddMessage) -> None:
        base = {"prompt_id": item.prompt_id, "node_id": failure.node_id,
                "node_type": item.prompt[failure.node_id]["class_type"], "executed": executed}
        if isinstance(failure.error, Interrupted):
            add_message("execution_interrupted", base, True)
            return
        ex = failure.error
        add_message("execution_error", {**base, "exception_message": str(ex), "exception_type": _exception_type(ex),
                                        "traceback": list(FAKE_TRACEBACK), "current_inputs": failure.current_inputs,
                                        "current_outputs": list(item.prompt)}, False)

    def _record(self, pid: str, executed: set[str], failure: Failure | None) -> None:
        started = bool(executed) or (failure is not None and not isinstance(failure.error, DependencyCycleError))
        if started:
            self.stats.executions[pid] = self.stats.executions.get(pid, 0) + 1
        elif failure is None:
            self.stats.cached_runs.append(pid)
        self.stats.results[pid] = ("success" if failure is None else
                                   "interrupted" if isinstance(failure.error, Interrupted) else "error")

    async def _run_node(self, item: QueueItem, node_id: str, keys: dict[str, str], progress: Progress,
                        executed: set[str]) -> Failure | None:
        pid, sid, node, key = item.prompt_id, item.extra_data.get("client_id"), item.prompt[node_id], keys[node_id]
        if key in self._outputs:
            if sid is not None:
                ui = self._ui.get(key) or {}
                self.hub.send_json("executed", {"node": node_id, "display_node": node_id,
                                                "output": ui.get("output"), "prompt_id": pid}, sid)
            progress.finish(node_id)
            return None
        progress.start(node_id)
        inputs = self._inputs(item, node_id, keys)
        if sid is not None:
            self.last_node_id = node_id
            self.hub.send_json("executing", {"node": node_id, "display_node": node_id, "prompt_id": pid}, sid)
        definition = NODES[node["class_type"]]
        try:
            await self.faults.gate()
            if self._interrupt:
                raise Interrupted("Processing interrupted")
            if definition.is_loader and self.faults.load_time > 0:
                await asyncio.sleep(self.faults.load_time)
            if definition.is_sampler:
                await self._sample(item, node_id, inputs, progress)
            ctx = RunContext(self.folders, item.prompt, item.extra_data)
            outputs, ui = await asyncio.to_thread(run_node, node["class_type"], inputs, ctx)
        except Interrupted as ex:
            return Failure(node_id, ex)
        except Exception as ex:  # any node failure becomes execution_error
            return Failure(node_id, ex, {name: [_format(value)] for name, value in inputs.items()})
        if ui:
            self._ui[key] = {"meta": {"node_id": node_id, "display_node": node_id, "parent_node": None,
                                      "real_node_id": node_id}, "output": ui}
            if sid is not None:
                self.hub.send_json("executed", {"node": node_id, "display_node": node_id, "output": ui,
                                                "prompt_id": pid}, sid)
        self._outputs[key] = outputs
        progress.finish(node_id)
        executed.add(node_id)
        return None

    def _inputs(self, item: QueueItem, node_id: str, keys: dict[str, str]) -> dict[str, Any]:
        definition = NODES[item.prompt[node_id]["class_type"]]
        values: dict[str, Any] = {}
        for name, value in item.prompt[node_id]["inputs"].items():
            if name not in definition.required and name not in definition.optional:
                continue
            values[name] = self._outputs[keys[value[0]]][int(value[1])] if is_link(value) else value
        for name, spec in definition.optional.items():
            if name not in values and len(spec) > 1 and "default" in spec[1]:
                values[name] = spec[1]["default"]
        return values

    async def _sample(self, item: QueueItem, node_id: str, inputs: dict[str, Any], progress: Progress) -> None:
        pid, sid = item.prompt_id, item.extra_data.get("client_id")
        steps: int = inputs["steps"]
        latent: Latent = inputs["latent_image"]
        fail_at = max(1, steps // 2)
        model = inputs.get("model")
        step_time = self.faults.step_time_for(model.label if isinstance(model, Handle) else "")
        for step in range(1, steps + 1):
            await asyncio.sleep(step_time)
            await self.faults.gate()
            if step == fail_at and self.faults.take("crash_next"):
                log.warning("crash_next: exiting hard at step %d of prompt %s", step, pid)
                os._exit(137)
            if step == fail_at and self.faults.take("oom_next"):
                raise InjectedOutOfMemory(OOM_MESSAGE)
            if step == fail_at and self.faults.take("error_next"):
                raise InjectedError(f"fake ComfyUI: injected sampler failure at step {step}/{steps} (error_next)")
            if self._interrupt:
                raise Interrupted("Processing interrupted")
            progress.update(node_id, step, steps)
            jpeg = preview_jpeg(latent, step)
            with_metadata = self.hub.supports_preview_metadata(sid)
            if with_metadata:
                meta = {"node_id": node_id, "prompt_id": pid, "display_node_id": node_id,
                        "parent_node_id": None, "real_node_id": node_id}
                self.hub.send_bytes(preview_frame(jpeg, meta), sid)
            self.hub.send_json("progress", {"value": step, "max": steps, "prompt_id": pid, "node": node_id}, sid)
            if not with_metadata:
                self.hub.send_bytes(preview_frame(jpeg, None), sid)
