"""What a failed job's error says to a person: a short reason, the whole error node by node, and what fixes it.

A failed job keeps two texts in Redis: `error` (one line, `str()` of the exception) and `node_errors` (the JSON
of `encode_node_errors`, or one line per node from older versions). `read_failure` turns them into a
`FailureReport`; it is a pure function so every recorded error shape has a table test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from comfystudio_desktop.comfy.comfy_errors import NodeError, decode_node_errors

__all__ = ["FailureReport", "FailureSection", "FixAction", "read_failure"]

_MAX_SHORT = 110
_REJECTED_PREFIX = "ComfyUI rejected the workflow: "


class FixAction(Enum):
    """The one choice that fixes a failure, when there is one; the window opens exactly that choice."""

    NONE = "none"
    PICK_TEXT_ENCODER = "pick_text_encoder"  # the UNET text encoder picker in the prompt panel
    PICK_VAE = "pick_vae"  # the UNET VAE picker in the prompt panel
    SET_FLUX_CLIP_L = "set_flux_clip_l"  # Settings → ComfyUI → Flux CLIP-L
    PICK_MODEL = "pick_model"  # the model list (refresh it, choose another)
    COMFY_SETTINGS = "comfy_settings"  # Settings → ComfyUI (where ComfyUI is, how it runs)

    @property
    def label(self) -> str:
        """The button's text."""
        return _FIX_LABELS[self]


_FIX_LABELS = {
    FixAction.NONE: "",
    FixAction.PICK_TEXT_ENCODER: "Choose a text encoder…",
    FixAction.PICK_VAE: "Choose a VAE…",
    FixAction.SET_FLUX_CLIP_L: "Set Flux CLIP-L…",
    FixAction.PICK_MODEL: "Choose another model…",
    FixAction.COMFY_SETTINGS: "ComfyUI settings…",
}
# A loader input whose file ComfyUI does not have, and where the user picks another one.
_INPUT_FIXES = {
    "clip_name": FixAction.PICK_TEXT_ENCODER,
    "clip_name2": FixAction.PICK_TEXT_ENCODER,
    "clip_name1": FixAction.SET_FLUX_CLIP_L,
    "vae_name": FixAction.PICK_VAE,
    "ckpt_name": FixAction.PICK_MODEL,
    "unet_name": FixAction.PICK_MODEL,
}


@dataclass(frozen=True, slots=True)
class FailureSection:
    """One part of the full error: a title ("Node 4 · CheckpointLoaderSimple") and its wrapped text."""

    title: str
    text: str


@dataclass(frozen=True, slots=True)
class FailureReport:
    """A failed job's error, read for people."""

    short: str  # one line for the table row
    sections: tuple[FailureSection, ...]  # the whole error, node by node
    fix: FixAction = FixAction.NONE

    def copy_text(self) -> str:
        """Everything, as plain text for the clipboard or a bug report."""
        return "\n\n".join(f"{section.title}\n{section.text}" for section in self.sections)


def read_failure(error: str, node_errors: str = "") -> FailureReport:
    """Read a failed job's `error` and `node_errors` texts (as Redis keeps them)."""
    nodes = decode_node_errors(node_errors)
    sections = [FailureSection("Error", error.strip() or "The job failed without a reason.")]
    if nodes:
        sections.extend(_node_sections(nodes))
        first = nodes[0]
        short = _node_reason(first) + (f" (+{len(nodes) - 1} more)" if len(nodes) > 1 else "")
        fix = next((fix for fix in map(_node_fix, nodes) if fix is not FixAction.NONE), FixAction.NONE)
        return FailureReport(_clip(short), tuple(sections), fix)
    if node_errors.strip() and not _is_json_list(node_errors):  # an older version's one line per node, as it is
        sections.append(FailureSection("Node errors", node_errors.strip()))
    return FailureReport(_error_reason(error), tuple(sections), _error_fix(error))


def _node_reason(node: NodeError) -> str:
    who = node.class_type or f"node {node.node_id}"
    received = node.received_value
    if node.error_type == "value_not_in_list" and isinstance(received, str) and received:
        if node.input_name.endswith("_name"):
            return f"{who}: {received} not installed"
        return f"{who}: {node.input_name} {received!r} is not an option"
    if node.error_type == "required_input_missing" and node.input_name:
        return f"{who}: input {node.input_name!r} is missing"
    what = node.message or node.error_type or "invalid"
    return f"{who}: {node.input_name}: {what}" if node.input_name else f"{who}: {what}"


def _node_fix(node: NodeError) -> FixAction:
    if node.error_type != "value_not_in_list":
        return FixAction.NONE
    return _INPUT_FIXES.get(node.input_name, FixAction.NONE)


def _node_sections(nodes: tuple[NodeError, ...]) -> list[FailureSection]:
    by_node: dict[str, list[NodeError]] = {}
    for node in nodes:
        by_node.setdefault(node.node_id, []).append(node)
    sections = []
    for node_id, errors in by_node.items():
        title = f"Node {node_id} · {errors[0].class_type or 'unknown node'}"
        lines = []
        for node in errors:
            head = f"{node.input_name}: " if node.input_name else ""
            line = head + (node.message or node.error_type or "invalid")
            if node.details and node.details != node.input_name:
                line += f"\n    {node.details}"
            if node.received_value is not None:
                line += f"\n    received: {node.received_value!r}"
            lines.append(line)
        sections.append(FailureSection(title, "\n".join(lines)))
    return sections


def _error_reason(error: str) -> str:
    text = " ".join(error.split())
    if not text:
        return "Failed"
    for pattern, short, _fix in _WORKER_ERRORS:
        found = pattern.match(text)
        if found:
            return _clip(short(found))
    return _clip(text.removeprefix(_REJECTED_PREFIX))


def _error_fix(error: str) -> FixAction:
    if error.startswith("ComfyUI is not reachable"):
        return FixAction.COMFY_SETTINGS
    text = " ".join(error.split())
    for pattern, _short, fix in _WORKER_ERRORS:
        found = pattern.match(text)
        if found:
            return fix(found)
    return FixAction.NONE


def _part_fix(what: str) -> FixAction:
    if "CLIP-L" in what:
        return FixAction.SET_FLUX_CLIP_L
    return FixAction.PICK_VAE if "VAE" in what else FixAction.PICK_TEXT_ENCODER


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


# What the worker says before it submits anything (worker/job_inputs.py, comfy/unet_parts.py): the short reason and
# the fix, read from its own sentences.
_WORKER_ERRORS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str], Callable[[re.Match[str]], FixAction]],
                      ...] = (
    (re.compile(r"Unknown model '(?P<model>[^']+)'"),
     lambda m: f"Model {m['model']} not installed", lambda _m: FixAction.PICK_MODEL),
    (re.compile(r"The (?P<what>.+?) '(?P<name>[^']+)'(?: \([^)]*\))? is not installed"),
     lambda m: f"{_capital(m['what'])} {m['name']} not installed", lambda m: _part_fix(m["what"])),
    (re.compile(r"No (?P<what>.+?) for .+? model '(?P<model>[^']+)' is installed"),
     lambda m: f"No {m['what']} installed for {m['model']}", lambda m: _part_fix(m["what"])),
    (re.compile(r"Several (?P<what>.+?)s could fit .+? model '(?P<model>[^']+)'"),
     lambda m: f"Several {m['what']}s fit {m['model']}: pick one", lambda m: _part_fix(m["what"])),
    (re.compile(r"Cannot tell (?:which family|whether) UNET model '(?P<model>[^']+)'"),
     lambda m: f"Pick a text encoder for {m['model']}", lambda _m: FixAction.PICK_TEXT_ENCODER),
    (re.compile(r"Flux model '(?P<model>[^']+)'(?: needs a CLIP-L|: several CLIP-L)"),
     lambda m: f"Flux CLIP-L for {m['model']}: set it in Settings", lambda _m: FixAction.SET_FLUX_CLIP_L),
)


def _is_json_list(text: str) -> bool:
    try:
        return isinstance(json.loads(text), list)
    except ValueError:
        return False


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_SHORT else text[: _MAX_SHORT - 1] + "…"
