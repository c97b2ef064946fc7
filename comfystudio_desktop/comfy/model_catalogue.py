"""The models a user can pick, grouped as `{"UNET": [...], "Checkpoints": [...]}`.

Asked from ComfyUI when it answers (`/models/{folder}` and the loaders' `object_info`), otherwise found by
scanning the configured ComfyUI `models/` folder. Names are relative, '/'-separated, sorted and unique.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.comfy.comfy_errors import ComfyError
from comfystudio_desktop.comfy.unet_parts import PART_LOADERS, PartLists

__all__ = [
    "GROUP_CHECKPOINTS",
    "GROUP_FOLDERS",
    "GROUP_UNET",
    "MODEL_EXTENSIONS",
    "Catalogue",
    "fetch_from_comfy",
    "load_catalogue",
    "load_part_lists",
    "merge_groups",
    "normalise_model_name",
    "scan_models_dir",
]

log = logging.getLogger(__name__)

GROUP_UNET = "UNET"
GROUP_CHECKPOINTS = "Checkpoints"
#: ComfyUI model folders per group; `unet` is the legacy name of `diffusion_models`.
GROUP_FOLDERS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    GROUP_UNET: ("diffusion_models", "unet"),
    GROUP_CHECKPOINTS: ("checkpoints",),
})
MODEL_EXTENSIONS = frozenset({".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft"})
# Which loader input lists which group (object_info also covers the legacy `unet` folder).
_LOADER_INPUTS = ((GROUP_UNET, "UNETLoader", "unet_name"), (GROUP_CHECKPOINTS, "CheckpointLoaderSimple", "ckpt_name"))


@dataclass(frozen=True, slots=True)
class Catalogue:
    """Models by group, and whether ComfyUI itself answered (else the list came from a folder scan)."""

    groups: Mapping[str, tuple[str, ...]]
    comfy_answered: bool = False
    # ComfyUI's own spelling where it differs from ours (Windows servers list names with '\\').
    spellings: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, list[str]]:
        """`{"UNET": [...], "Checkpoints": [...]}`."""
        return {group: list(self.groups.get(group, ())) for group in GROUP_FOLDERS}

    def to_json(self) -> str:
        """The grouped lists as JSON."""
        return json.dumps(self.to_dict(), ensure_ascii=False)

    def group_of(self, model_name: str) -> str | None:
        """`"Checkpoints"` or `"UNET"` for a listed model, None for an unknown one."""
        name = normalise_model_name(model_name)
        for group in (GROUP_CHECKPOINTS, GROUP_UNET):
            if name in self.groups.get(group, ()):
                return group
        return None

    def contains(self, model_name: str) -> bool:
        """True if the model is listed in any group."""
        return self.group_of(model_name) is not None

    def comfy_name(self, model_name: str) -> str:
        """The name to put into a loader's input: ComfyUI's spelling of a listed model."""
        name = normalise_model_name(model_name)
        return self.spellings.get(name, name)

    @property
    def empty(self) -> bool:
        """No model in any group."""
        return not any(self.groups.values())


def normalise_model_name(name: str) -> str:
    """'/'-separated and relative: `unet\\z-image\\a.safetensors` -> `unet/z-image/a.safetensors`."""
    return "/".join(part for part in name.replace("\\", "/").split("/") if part not in ("", "."))


def merge_groups(*sources: Mapping[str, Iterable[str]]) -> dict[str, tuple[str, ...]]:
    """Union of grouped name lists: normalised, unique, sorted case-insensitively; every group present."""
    merged: dict[str, set[str]] = {group: set() for group in GROUP_FOLDERS}
    for source in sources:
        for group, names in source.items():
            merged.setdefault(group, set()).update(normalise_model_name(n) for n in names if n)
    return {group: tuple(sorted(names - {""}, key=lambda n: (n.lower(), n))) for group, names in merged.items()}


def fetch_from_comfy(client: ComfyClient) -> dict[str, list[str]]:
    """Raw names per group as the running ComfyUI spells them; raises `ComfyError` if it cannot answer."""
    found: dict[str, list[str]] = {group: [] for group in GROUP_FOLDERS}
    for group, folders in GROUP_FOLDERS.items():
        for folder in folders:
            found[group].extend(client.models(folder))  # 404 (e.g. `unet`) gives []
    for group, node_class, input_name in _LOADER_INPUTS:
        found[group].extend(_combo_values(client.object_info(node_class), node_class, input_name))
    return found


def load_part_lists(client: ComfyClient) -> PartLists:
    """The text encoders and VAEs ComfyUI's loaders accept; empty lists if ComfyUI does not answer."""
    info: dict[str, Any] = {}
    try:
        for node_class in PART_LOADERS:
            info.update(client.object_info(node_class))
    except ComfyError as exc:
        log.info("Text encoder and VAE lists from ComfyUI unavailable (%s)", exc)
        return PartLists()
    return PartLists.from_object_info(info)


def scan_models_dir(models_dir: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Model files per group under a ComfyUI `models/` folder, searched recursively (symlinks followed)."""
    root = Path(models_dir)
    found: dict[str, list[str]] = {group: [] for group in GROUP_FOLDERS}
    for group, folders in GROUP_FOLDERS.items():
        for folder in folders:
            found[group].extend(_scan_folder(root / folder))
    return found


def load_catalogue(client: ComfyClient | None, models_dir: str | os.PathLike[str] | None = None) -> Catalogue:
    """Ask ComfyUI; if it does not answer, scan `models_dir` (if set). Never raises for a down ComfyUI."""
    if client is not None:
        try:
            raw = fetch_from_comfy(client)
        except ComfyError as exc:
            log.info("Model list from ComfyUI unavailable (%s); scanning the models folder instead", exc)
        else:
            catalogue = Catalogue(merge_groups(raw), comfy_answered=True, spellings=_spellings(raw))
            log.info("Model catalogue from ComfyUI: %s", _counts(catalogue))
            return catalogue
    if not models_dir:
        return Catalogue(merge_groups(), comfy_answered=False)
    catalogue = Catalogue(merge_groups(scan_models_dir(models_dir)), comfy_answered=False)
    log.info("Model catalogue from folder %s: %s", models_dir, _counts(catalogue))
    return catalogue


def _scan_folder(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    names: list[str] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop
            dirnames.clear()
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        relative = Path(dirpath).relative_to(folder)
        for filename in filenames:
            if not filename.startswith(".") and Path(filename).suffix.lower() in MODEL_EXTENSIONS:
                names.append((relative / filename).as_posix())
    return names


def _combo_values(info: Mapping[str, Any], node_class: str, input_name: str) -> list[str]:
    """The choices of a combo input in `object_info` (`[[choices...], {opts}]`); [] if absent."""
    node = info.get(node_class)
    inputs = node.get("input") if isinstance(node, dict) else None
    required = inputs.get("required") if isinstance(inputs, dict) else None
    spec = required.get(input_name) if isinstance(required, dict) else None
    if isinstance(spec, list) and spec and isinstance(spec[0], list):
        return [value for value in spec[0] if isinstance(value, str)]
    return []


def _spellings(raw: Mapping[str, Iterable[str]]) -> dict[str, str]:
    return {normalise_model_name(name): name for names in raw.values() for name in names
            if normalise_model_name(name) != name}


def _counts(catalogue: Catalogue) -> str:
    return ", ".join(f"{len(catalogue.groups.get(group, ()))} {group}" for group in GROUP_FOLDERS)
