"""A UNET model's family and the text encoder / VAE files it loads, chosen from what ComfyUI lists (pure).

A UNET file holds only the diffusion model; ComfyUI's `CLIPLoader`, `DualCLIPLoader` and `VAELoader` load the
rest, and their `/object_info` combos list the files that are installed. The family (Z-Image, Flux, SD 1.5)
decides the workflow template. It is told, in this order, by a text encoder the user picked, by the model's
name, and by which families' encoders are installed; when that leaves more than one, we ask instead of guessing.
Files: a pick is used as given (it must be installed); otherwise the one file that fits, preferring names that
match the family. Every error says what to pick and where.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = [
    "FAMILY_SPECS",
    "PART_LOADERS",
    "FamilySpec",
    "PartLists",
    "PartsError",
    "Pick",
    "UnetParts",
    "encoder_family",
    "fitting_files",
    "resolve_unet_parts",
]

#: The loaders whose `/object_info` lists the files a UNET model's text encoder and VAE come from.
PART_LOADERS = ("CLIPLoader", "DualCLIPLoader", "VAELoader")
_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft", ".pt2")
_CLIP_L = re.compile(r"clip[-_ ]?l(?![a-z])", re.IGNORECASE)
#: Where a user changes each part, for messages.
TEXT_ENCODER_HINT = "pick a text encoder for this model in the prompt panel or `submit --text-encoder`"
VAE_HINT = "pick a VAE for this model in the prompt panel or `submit --vae`"


@dataclass(frozen=True, slots=True)
class FamilySpec:
    """What tells a UNET family apart and which loader settings it needs."""

    family: str  # the workflow template family
    label: str
    name_pattern: re.Pattern[str]  # in the model's name (folder included)
    encoder_pattern: re.Pattern[str]  # its main text encoder's file name
    vae_pattern: re.Pattern[str]
    clip_loader: str  # CLIPLoader or DualCLIPLoader
    clip_type: str  # that loader's `type`
    needs_clip_l: bool = False  # Flux: DualCLIPLoader takes clip_l + t5xxl
    encoder_example: str = ""


FAMILY_SPECS: tuple[FamilySpec, ...] = (
    FamilySpec("unet-zimage", "Z-Image", re.compile(r"z[-_ ]?image|lumina", re.I), re.compile(r"qwen", re.I),
               re.compile(r"(?:^|[/_-])ae(?:[._-]|$)|flux|z[-_ ]?image", re.I), "CLIPLoader", "lumina2",
               encoder_example="qwen_3_4b"),
    FamilySpec("unet-flux", "Flux", re.compile(r"flux", re.I), re.compile(r"t5", re.I),
               re.compile(r"(?:^|[/_-])ae(?:[._-]|$)|flux", re.I), "DualCLIPLoader", "flux", needs_clip_l=True,
               encoder_example="t5xxl"),
    FamilySpec("unet-sd15", "SD 1.5", re.compile(r"sd[-_ ]?1[-_.]?5|stable[-_ ]?diffusion[-_ ]?v?1", re.I),
               _CLIP_L, re.compile(r"sd[-_ ]?1[-_.]?5|vae[-_]ft|sd[-_]vae|kl[-_]f8", re.I), "CLIPLoader",
               "stable_diffusion", encoder_example="clip_l"),
)
_SPECS: Mapping[str, FamilySpec] = MappingProxyType({spec.family: spec for spec in FAMILY_SPECS})


class PartsError(ValueError):
    """The family or a file cannot be chosen; the message names the choice to make and where."""


@dataclass(frozen=True, slots=True)
class Pick:
    """A file the user chose and where that choice lives (for messages); an empty `name` means automatic."""

    name: str = ""
    origin: str = ""


@dataclass(frozen=True, slots=True)
class PartLists:
    """The files ComfyUI's loaders accept and the CLIP types it knows, from `/object_info`."""

    text_encoders: tuple[str, ...] = ()
    vaes: tuple[str, ...] = ()
    clip_types: frozenset[str] = frozenset()
    dual_clip_types: frozenset[str] = frozenset()

    @classmethod
    def from_object_info(cls, info: Mapping[str, Any]) -> PartLists:
        """From `/object_info` entries of CLIPLoader, DualCLIPLoader and VAELoader (missing ones give empty lists).

        VAELoader's built-in choices without a file (`pixel_space`, `taesd`, ...) are left out.
        """
        encoders = _combo(info, "CLIPLoader", "clip_name")
        vaes = tuple(name for name in _combo(info, "VAELoader", "vae_name") if name.lower().endswith(_FILE_SUFFIXES))
        return cls(text_encoders=encoders, vaes=vaes, clip_types=frozenset(_combo(info, "CLIPLoader", "type")),
                   dual_clip_types=frozenset(_combo(info, "DualCLIPLoader", "type")))

    def supports(self, spec: FamilySpec) -> bool:
        """Whether this ComfyUI's loader offers the family's CLIP type."""
        types = self.dual_clip_types if spec.clip_loader == "DualCLIPLoader" else self.clip_types
        return spec.clip_type in types


@dataclass(frozen=True, slots=True)
class UnetParts:
    """What a UNET job loads besides the model: template family and file names as ComfyUI spells them."""

    family: str
    text_encoder: str
    vae: str
    clip_l: str = ""  # Flux only


def encoder_family(name: str) -> str | None:
    """The family a text encoder's file name points to (qwen: Z-Image, t5: Flux, clip_l: SD 1.5), else None."""
    for spec in FAMILY_SPECS:
        if spec.encoder_pattern.search(name):
            return spec.family
    return None


def fitting_files(files: Sequence[str], pattern: re.Pattern[str], others: Sequence[re.Pattern[str]]) -> list[str]:
    """Files that fit: those matching `pattern` if any, else those matching none of `others`."""
    matching = [name for name in files if pattern.search(name)]
    if matching:
        return matching
    return [name for name in files if not any(other.search(name) for other in others)]


def resolve_unet_parts(model: str, lists: PartLists, *, text_encoder: Pick = Pick(), vae: Pick = Pick(),
                       clip_l: Pick = Pick(), default_text_encoder: Pick = Pick(), default_vae: Pick = Pick(),
                       families: Sequence[str] | None = None) -> UnetParts:
    """The family and files for UNET `model`; `PartsError` naming the choice to make when they cannot be told.

    Args:
        model: the model's name as listed.
        lists: what ComfyUI's loaders accept.
        text_encoder, vae, clip_l: the user's picks for this model or job (empty: automatic).
        default_text_encoder, default_vae: picks for every UNET model (a setting); used only where they fit
            the family that the model's name or the installed files point to.
        families: the families a template exists for (None: all).
    """
    usable = [spec for spec in FAMILY_SPECS if families is None or spec.family in families]
    spec = _family(model, lists, text_encoder, default_text_encoder, usable)
    if not text_encoder.name and default_text_encoder.name and _fits_encoder(default_text_encoder.name, spec):
        text_encoder = default_text_encoder
    if not vae.name and default_vae.name and _fits_vae(default_vae.name, spec):
        vae = default_vae
    return UnetParts(family=spec.family, text_encoder=_text_encoder(model, spec, lists, text_encoder),
                     vae=_vae(model, spec, lists, vae),
                     clip_l=_clip_l(model, lists, clip_l) if spec.needs_clip_l else "")


def _family(model: str, lists: PartLists, picked: Pick, default: Pick, usable: Sequence[FamilySpec]) -> FamilySpec:
    by_pick = encoder_family(picked.name) if picked.name else None
    for spec in usable:
        if spec.family == by_pick:
            return spec
    for spec in usable:
        if spec.name_pattern.search(model):
            return spec
    by_default = encoder_family(default.name) if default.name else None
    for spec in usable:
        if spec.family == by_default:
            return spec
    installed = [spec for spec in usable if lists.supports(spec) and _has_encoders(spec, lists)]
    if len(installed) == 1:
        return installed[0]
    labels = " or ".join(spec.label for spec in (installed or usable))
    examples = ", ".join(f"{spec.encoder_example}… for {spec.label}" for spec in usable)
    if not installed:
        raise PartsError(f"Cannot tell which family UNET model {model!r} is ({labels}): none of their text "
                         f"encoders is installed ({examples}); install one, or {TEXT_ENCODER_HINT}; "
                         f"installed: {_listing(lists.text_encoders)}.")
    raise PartsError(f"Cannot tell whether UNET model {model!r} is {labels}: {TEXT_ENCODER_HINT} ({examples}); "
                     f"installed: {_listing(lists.text_encoders)}.")


def _fits_encoder(name: str, spec: FamilySpec) -> bool:
    return encoder_family(name) in (None, spec.family)


def _fits_vae(name: str, spec: FamilySpec) -> bool:
    return bool(fitting_files([name], spec.vae_pattern, _other_vae_patterns(spec)))


def _other_vae_patterns(spec: FamilySpec) -> list[re.Pattern[str]]:
    return [other.vae_pattern for other in FAMILY_SPECS if other.vae_pattern.pattern != spec.vae_pattern.pattern]


def _has_encoders(spec: FamilySpec, lists: PartLists) -> bool:
    found = any(spec.encoder_pattern.search(name) for name in lists.text_encoders)
    if spec.needs_clip_l:
        found = found and any(_CLIP_L.search(name) for name in lists.text_encoders)
    return found


def _text_encoder(model: str, spec: FamilySpec, lists: PartLists, picked: Pick) -> str:
    if picked.name:
        return _installed(picked, lists.text_encoders, "text encoder", TEXT_ENCODER_HINT)
    others = [other.encoder_pattern for other in FAMILY_SPECS if other is not spec]
    if spec.needs_clip_l:
        others.append(_CLIP_L)  # Flux's clip_l goes into its own input
    return _only(model, spec, fitting_files(lists.text_encoders, spec.encoder_pattern, others), lists.text_encoders,
                 what="text encoder", hint=TEXT_ENCODER_HINT)


def _vae(model: str, spec: FamilySpec, lists: PartLists, picked: Pick) -> str:
    if picked.name:
        return _installed(picked, lists.vaes, "VAE", VAE_HINT)
    fitting = fitting_files(lists.vaes, spec.vae_pattern, _other_vae_patterns(spec))
    return _only(model, spec, fitting, lists.vaes, what="VAE", hint=VAE_HINT)


def _clip_l(model: str, lists: PartLists, picked: Pick) -> str:
    if picked.name:
        return _installed(picked, lists.text_encoders, "CLIP-L", "change the setting `flux_clip_l` in Settings")
    found = [name for name in lists.text_encoders if _CLIP_L.search(name)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise PartsError(f"Flux model {model!r} needs a CLIP-L text encoder and none is installed; install one, or "
                         f"set `flux_clip_l` (Settings); installed: {_listing(lists.text_encoders)}.")
    raise PartsError(f"Flux model {model!r}: several CLIP-L text encoders are installed ({_listing(found)}); "
                     "choose one with the setting `flux_clip_l` (Settings).")


def _installed(picked: Pick, files: Sequence[str], what: str, hint: str) -> str:
    wanted = picked.name.replace("\\", "/")
    for name in files:
        if name == picked.name or name.replace("\\", "/") == wanted:
            return name  # ComfyUI's own spelling
    origin = f" ({picked.origin})" if picked.origin else ""
    raise PartsError(f"The {what} {picked.name!r}{origin} is not installed; {hint}; installed: {_listing(files)}.")


def _only(model: str, spec: FamilySpec, fitting: Sequence[str], files: Sequence[str], *, what: str,
          hint: str) -> str:
    if len(fitting) == 1:
        return fitting[0]
    if not fitting:
        raise PartsError(f"No {what} for {spec.label} model {model!r} is installed; install one, or {hint}; "
                         f"installed: {_listing(files)}.")
    raise PartsError(f"Several {what}s could fit {spec.label} model {model!r} ({_listing(fitting)}); {hint}.")


def _listing(files: Sequence[str]) -> str:
    return ", ".join(files) if files else "none"


def _combo(info: Mapping[str, Any], node_class: str, input_name: str) -> tuple[str, ...]:
    """A combo input's choices in `object_info` (`[[choices...], {opts}]`); () if absent or malformed."""
    node = info.get(node_class)
    inputs = node.get("input") if isinstance(node, dict) else None
    required = inputs.get("required") if isinstance(inputs, dict) else None
    spec = required.get(input_name) if isinstance(required, dict) else None
    if isinstance(spec, list) and spec and isinstance(spec[0], list):
        return tuple(value for value in spec[0] if isinstance(value, str) and value)
    return ()
