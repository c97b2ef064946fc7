"""Workflow templates: ComfyUI API-format graphs plus a declaration of which input takes which job value.

A template file holds `name` (the user-facing workflow: text_to_image, image_to_image, blend, ...),
`family` (checkpoint, unet-zimage, unet-flux, unet-sd15), `model_group`, `image_slots`, `defaults`, `slots`
(`slot -> [node_id, input]` or a list of such pairs) and `prompt` (the graph). The shipped templates
live in the repository's `workflows/`; a user's in the home's `workflows/` replace or add to them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from comfystudio_desktop.comfy.unet_parts import FAMILY_SPECS
from comfystudio_desktop.jobs import IMAGE_SLOTS

__all__ = [
    "FAMILIES",
    "JOB_SLOTS",
    "SlotTarget",
    "TemplateError",
    "TemplateLibrary",
    "WorkflowTemplate",
    "check_node_classes",
    "family_for_model",
    "load_library",
    "load_template",
    "missing_node_classes",
    "parse_template",
    "shipped_workflows_dir",
]

log = logging.getLogger(__name__)

#: Model family -> the catalogue group its model comes from.
FAMILIES: Mapping[str, str] = {"checkpoint": "Checkpoints", "unet-zimage": "UNET", "unet-flux": "UNET",
                               "unet-sd15": "UNET"}
#: Slots filled from the job (the rest take `defaults`, or the caller's overrides).
JOB_SLOTS = frozenset({"prompt", "negative_prompt", "seed", "width", "height", "batch_size", "steps", "cfg",
                       "denoise", "model", *IMAGE_SLOTS})
_REQUIRED_SLOTS = ("prompt", "seed", "model")
_DEFAULTED_JOB_SLOTS = ("steps", "cfg", "denoise")  # a job's None means "the template's default"
_REQUIRED_KEYS = ("name", "family", "slots", "prompt")
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
_OUTPUT_CLASS = "SaveImage"


class TemplateError(ValueError):
    """A template is unusable; the message names the template (file or name) and the problem."""

    def __init__(self, template: str, problem: str) -> None:
        super().__init__(f"workflow template {template}: {problem}")
        self.template = template
        self.problem = problem


@dataclass(frozen=True, slots=True)
class SlotTarget:
    """One node input a slot writes to."""

    node: str
    input: str


@dataclass(frozen=True, slots=True)
class WorkflowTemplate:
    """One parsed, validated template. `prompt` is never modified; `fill` works on a copy."""

    name: str
    family: str
    model_group: str
    prompt: Mapping[str, Any]
    slots: Mapping[str, tuple[SlotTarget, ...]]
    title: str = ""
    description: str = ""
    image_slots: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    source: str = "<memory>"

    @property
    def label(self) -> str:
        """`text_to_image (checkpoint)`, for messages."""
        return f"{self.name} ({self.family})"

    def node_classes(self) -> frozenset[str]:
        """Every `class_type` the graph uses."""
        return frozenset(str(node["class_type"]) for node in self.prompt.values())


def parse_template(data: object, source: str = "<memory>") -> WorkflowTemplate:
    """Validate a decoded template; raise `TemplateError` naming `source` and the first problem."""
    if not isinstance(data, dict):
        raise TemplateError(source, "must be a JSON object")
    missing = [key for key in _REQUIRED_KEYS if key not in data]
    if missing:
        raise TemplateError(source, f"missing key(s): {', '.join(missing)}")
    name, family = data["name"], data["family"]
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise TemplateError(source, f"invalid name {name!r} (letters, digits, '_', '-', '.')")
    if family not in FAMILIES:
        raise TemplateError(source, f"unknown family {family!r} (use {', '.join(FAMILIES)})")
    model_group = data.get("model_group", FAMILIES[family])
    if model_group != FAMILIES[family]:
        raise TemplateError(source, f"family {family!r} takes its model from {FAMILIES[family]!r}, "
                                    f"not {model_group!r}")
    for key, kind in (("title", str), ("description", str), ("defaults", dict), ("image_slots", list)):
        if key in data and not isinstance(data[key], kind):
            raise TemplateError(source, f"{key!r} must be a {'string' if kind is str else kind.__name__}")
    prompt = _check_graph(data["prompt"], source)
    slots = _check_slots(data["slots"], prompt, source)
    image_slots = tuple(data.get("image_slots", ()))
    defaults = dict(data.get("defaults", {}))
    _check_slot_coverage(slots, image_slots, defaults, source)
    return WorkflowTemplate(name=name, family=family, model_group=model_group, prompt=prompt, slots=slots,
                            title=data.get("title") or name.replace("_", " ").capitalize(),
                            description=data.get("description", ""), image_slots=image_slots,
                            defaults=defaults, source=source)


def load_template(path: Path) -> WorkflowTemplate:
    """Read and validate one template file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(path.name, f"cannot read: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise TemplateError(path.name, f"not valid JSON: {exc}") from exc
    return parse_template(data, source=str(path))


def missing_node_classes(template: WorkflowTemplate, object_info: Mapping[str, Any]) -> list[str]:
    """Node classes the template uses that the running ComfyUI (its full `/object_info`) does not have."""
    return sorted(template.node_classes() - set(object_info))


def check_node_classes(template: WorkflowTemplate, object_info: Mapping[str, Any]) -> None:
    """Raise `TemplateError` if the running ComfyUI lacks a node class the template needs."""
    missing = missing_node_classes(template, object_info)
    if missing:
        raise TemplateError(template.label, f"node class(es) {', '.join(missing)} unknown to the running ComfyUI "
                                            "(a custom node missing, or ComfyUI too old)")


def family_for_model(model_name: str, group: str, unet_family: str = "auto") -> str:
    """The template family for a model: checkpoints -> `checkpoint`; UNET -> `unet_family`, or by name.

    With `unet_family="auto"` the model's name (folder included) must say the family ("flux", "z-image",
    "sd15", ...); a UNET whose name does not is a `ValueError` asking for the choice. The worker decides
    from what ComfyUI has installed as well (`unet_parts.resolve_unet_parts`).
    """
    if group == "Checkpoints":
        return "checkpoint"
    if group != "UNET":
        raise ValueError(f"unknown model group {group!r} for {model_name!r}")
    if unet_family != "auto":
        family = unet_family if unet_family.startswith("unet-") else f"unet-{unet_family}"
        if FAMILIES.get(family) != "UNET":
            raise ValueError(f"unknown UNET family {unet_family!r}")
        return family
    # The folder counts too: people keep Flux files in a `flux/` folder under their own names.
    for spec in FAMILY_SPECS:
        if spec.name_pattern.search(model_name):
            return spec.family
    raise ValueError(f"cannot tell the family of UNET model {model_name!r} from its name "
                     f"({', '.join(spec.label for spec in FAMILY_SPECS)}); pick its text encoder")


@dataclass(frozen=True, slots=True)
class TemplateLibrary:
    """Templates by (name, family); `errors` lists user templates that were skipped."""

    templates: Mapping[tuple[str, str], WorkflowTemplate]
    errors: tuple[TemplateError, ...] = ()

    def names(self) -> tuple[str, ...]:
        """User-facing workflow names, sorted."""
        return tuple(sorted({name for name, _ in self.templates}))

    def families(self, name: str) -> tuple[str, ...]:
        """The families a workflow exists for."""
        return tuple(sorted(family for n, family in self.templates if n == name))

    def title(self, name: str) -> str:
        """A friendly label for a workflow name."""
        for (n, _), template in sorted(self.templates.items()):
            if n == name:
                return template.title
        return name

    def image_slots(self, name: str) -> tuple[str, ...]:
        """The images a workflow needs (same for all its families)."""
        for (n, _), template in sorted(self.templates.items()):
            if n == name:
                return template.image_slots
        return ()

    def __contains__(self, name: object) -> bool:
        return any(n == name for n, _ in self.templates)

    def get(self, name: str, family: str) -> WorkflowTemplate:
        """The template for a workflow and family; `TemplateError` if there is none."""
        template = self.templates.get((name, family))
        if template is None:
            known = ", ".join(self.families(name)) or "none"
            raise TemplateError(name, f"no template for model family {family!r} (available: {known})")
        return template

    def choose(self, name: str, model: str, group: str, unet_family: str = "auto") -> WorkflowTemplate:
        """The template for workflow `name` and a model of catalogue group `group`."""
        if name not in self:
            raise TemplateError(name, f"unknown workflow (available: {', '.join(self.names())})")
        try:
            family = family_for_model(model, group, unet_family)
        except ValueError as exc:
            raise TemplateError(name, str(exc)) from exc
        return self.get(name, family)


def shipped_workflows_dir() -> Path:
    """The shipped templates: `workflows/` beside the frozen executable's files, else in the repository."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle and (Path(bundle) / "workflows").is_dir():
        return Path(bundle) / "workflows"
    return Path(__file__).resolve().parents[2] / "workflows"


def load_library(user_dir: str | os.PathLike[str] | None = None,
                 shipped_dir: str | os.PathLike[str] | None = None) -> TemplateLibrary:
    """Load the shipped templates (a broken one raises), then the user's (a broken one is skipped and logged).

    A user template with the same name and family as a shipped one replaces it.
    """
    shipped = Path(shipped_dir) if shipped_dir is not None else shipped_workflows_dir()
    templates: dict[tuple[str, str], WorkflowTemplate] = {}
    for template in _load_folder(shipped, errors=None):
        templates[(template.name, template.family)] = template
    errors: list[TemplateError] = []
    if user_dir is not None:
        for template in _load_folder(Path(user_dir), errors=errors):
            if (template.name, template.family) in templates:
                log.info("User workflow template %s replaces the shipped one", template.source)
            templates[(template.name, template.family)] = template
    for error in errors:
        log.warning("Skipped %s", error)
    return TemplateLibrary(templates, tuple(errors))


def _load_folder(folder: Path, errors: list[TemplateError] | None) -> Iterable[WorkflowTemplate]:
    if not folder.is_dir():
        return []
    loaded: list[WorkflowTemplate] = []
    for path in sorted(folder.glob("*.json")):
        try:
            loaded.append(load_template(path))
        except TemplateError as exc:
            if errors is None:
                raise
            errors.append(exc)
    return loaded


def _check_graph(raw: object, source: str) -> dict[str, Any]:
    if not isinstance(raw, dict) or not raw:
        raise TemplateError(source, "'prompt' must be a non-empty API-format graph (node id -> node)")
    for node_id, node in raw.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str) or not node["class_type"]:
            raise TemplateError(source, f"node {node_id!r} needs a 'class_type'")
        if not isinstance(node.get("inputs"), dict):
            raise TemplateError(source, f"node {node_id!r} ({node['class_type']}) needs an 'inputs' object")
        for input_name, value in node["inputs"].items():
            if _is_link(value) and value[0] not in raw:
                raise TemplateError(source, f"node {node_id!r} input {input_name!r} links to missing node "
                                            f"{value[0]!r}")
    if not any(node["class_type"] == _OUTPUT_CLASS for node in raw.values()):
        raise TemplateError(source, f"the graph has no {_OUTPUT_CLASS} node, so it would produce no files")
    return raw


def _check_slots(raw: object, prompt: Mapping[str, Any], source: str) -> dict[str, tuple[SlotTarget, ...]]:
    if not isinstance(raw, dict):
        raise TemplateError(source, "'slots' must be an object of slot -> [node_id, input]")
    slots: dict[str, tuple[SlotTarget, ...]] = {}
    for slot, spec in raw.items():
        pairs = spec if isinstance(spec, list) and spec and isinstance(spec[0], list) else [spec]
        targets: list[SlotTarget] = []
        for pair in pairs:
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
                raise TemplateError(source, f"slot {slot!r} must be [node_id, input] or a list of them, got {spec!r}")
            node_id, input_name = pair
            if node_id not in prompt:
                raise TemplateError(source, f"slot {slot!r} points at missing node {node_id!r}")
            node = prompt[node_id]
            if input_name not in node["inputs"]:
                raise TemplateError(source, f"slot {slot!r} points at node {node_id!r} ({node['class_type']}), "
                                            f"which has no input {input_name!r}")
            if _is_link(node["inputs"][input_name]):
                raise TemplateError(source, f"slot {slot!r} points at node {node_id!r} input {input_name!r}, "
                                            "which is a link, not a value")
            targets.append(SlotTarget(node_id, input_name))
        slots[str(slot)] = tuple(targets)
    return slots


def _check_slot_coverage(slots: Mapping[str, tuple[SlotTarget, ...]], image_slots: tuple[str, ...],
                         defaults: Mapping[str, Any], source: str) -> None:
    for slot in _REQUIRED_SLOTS:
        if slot not in slots:
            raise TemplateError(source, f"missing slot {slot!r}")
    for slot in image_slots:
        if slot not in IMAGE_SLOTS:
            raise TemplateError(source, f"unknown image slot {slot!r} (use {', '.join(IMAGE_SLOTS)})")
        if slot not in slots:
            raise TemplateError(source, f"image slot {slot!r} has no entry in 'slots'")
    for slot in slots:
        if slot in IMAGE_SLOTS and slot not in image_slots:
            raise TemplateError(source, f"slot {slot!r} is an image; list it in 'image_slots'")
        needs_default = slot in _DEFAULTED_JOB_SLOTS or slot not in JOB_SLOTS
        if needs_default and slot not in defaults:
            raise TemplateError(source, f"slot {slot!r} has no value in 'defaults'")


def _is_link(value: object) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)
