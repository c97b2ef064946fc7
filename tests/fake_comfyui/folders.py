"""Model, input, output and temp folders of the fake ComfyUI, with ComfyUI's listing and path rules."""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

# `GET /models` in the recording, in the recorded order.
FOLDER_NAMES: tuple[str, ...] = (
    "checkpoints", "configs", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision", "style_models",
    "embeddings", "diffusers", "vae_approx", "controlnet", "gligen", "upscale_models", "custom_nodes",
    "hypernetworks", "photomaker", "classifiers", "model_patches", "audio_encoders",
)
# Folders that read more than one directory under --models-dir (legacy names first, as ComfyUI does).
FOLDER_DIRS: dict[str, tuple[str, ...]] = {
    "text_encoders": ("text_encoders", "clip"),
    "diffusion_models": ("unet", "diffusion_models"),
    "controlnet": ("controlnet", "t2i_adapter"),
}
LEGACY_NAMES: dict[str, str] = {"unet": "diffusion_models", "clip": "text_encoders"}
MODEL_EXTENSIONS = frozenset({".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
# The catalogue served when no --models-dir is given (the recorded test models).
DEFAULT_MODELS: dict[str, list[str]] = {
    "checkpoints": ["tiny/sd15-random.safetensors"],
    "diffusion_models": ["tiny/sd15-unet-random.safetensors"],
    "text_encoders": ["tiny/clip-l-random.safetensors"],
    "vae": ["tiny/sd15-vae-random.safetensors"],
}
_ANNOTATION = re.compile(r"^(?P<name>.*) \[(?P<type>input|output|temp)\]$")


class ModelFileError(Exception):
    """A model file that cannot be loaded; mirrors safetensors' error type in `execution_error`."""

    exception_type = "safetensors._safetensors_rust.SafetensorError"


def _extensions(folder: str) -> frozenset[str]:
    if folder == "configs":
        return frozenset({".yaml"})
    if folder in ("custom_nodes", "diffusers"):
        return frozenset()
    return MODEL_EXTENSIONS


def _scan(root: Path, extensions: frozenset[str]) -> list[str]:
    """Relative names (with `/`) of the files under `root` with one of `extensions`, recursively."""
    names: list[str] = []
    if not root.is_dir():
        return names
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for filename in filenames:
            if Path(filename).suffix.lower() in extensions:
                names.append(Path(dirpath, filename).relative_to(root).as_posix())
    return names


def check_model_file(path: Path) -> None:
    """Raise ModelFileError for a `.safetensors` file whose header cannot be read, as safetensors would."""
    if path.suffix.lower() not in (".safetensors", ".sft"):
        return
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ModelFileError("Error while deserializing header: HeaderTooSmall\n")
        (length,) = struct.unpack("<Q", head)
        if length > size - 8 or length > 100_000_000:
            raise ModelFileError("Error while deserializing header: header too large\n")
        header = f.read(length)
    if not header.lstrip().startswith(b"{"):
        raise ModelFileError("Error while deserializing header: InvalidHeaderDeserialization\n")


@dataclass
class Folders:
    """Where the fake keeps models, inputs, outputs and temp files."""

    input_dir: Path
    output_dir: Path
    temp_dir: Path
    models_dir: Path | None = None
    _fallback: dict[str, list[str]] = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_MODELS.items()})

    def use_model_list(self, models: dict[str, list[str]]) -> None:
        """List these names (folder -> names, legacy folder names allowed) instead of the built-in catalogue."""
        self._fallback = {}
        for folder, names in models.items():
            self._fallback.setdefault(LEGACY_NAMES.get(folder, folder), []).extend(names)

    def model_folder_exists(self, folder: str) -> bool:
        """Whether `GET /models/{folder}` knows the folder (legacy `unet`/`clip` names are not listed)."""
        return folder in FOLDER_NAMES

    def list_models(self, folder: str) -> list[str]:
        """Sorted model names of a folder; legacy names map to their new folder, as in UNETLoader."""
        folder = LEGACY_NAMES.get(folder, folder)
        if self.models_dir is None:
            return sorted(self._fallback.get(folder, []))
        names: set[str] = set()
        for sub in FOLDER_DIRS.get(folder, (folder,)):
            names.update(_scan(self.models_dir / sub, _extensions(folder)))
        return sorted(names)

    def model_path(self, folder: str, name: str) -> Path | None:
        """The file behind a model name, or None for the built-in catalogue (which has no files)."""
        if self.models_dir is None:
            return None
        folder = LEGACY_NAMES.get(folder, folder)
        for sub in FOLDER_DIRS.get(folder, (folder,)):
            candidate = self.models_dir / sub / name
            if candidate.is_file():
                return candidate
        return None

    def embeddings(self) -> list[str]:
        """Embedding names without extension, as `GET /embeddings` lists them."""
        return [os.path.splitext(name)[0] for name in self.list_models("embeddings")]

    def input_images(self) -> list[str]:
        """Top-level image files of the input folder, sorted: LoadImage's choices."""
        if not self.input_dir.is_dir():
            return []
        return sorted(p.name for p in self.input_dir.iterdir()
                      if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)

    def dir_by_type(self, kind: str | None) -> Path | None:
        """The folder for a `type` of input, output or temp; None for anything else."""
        return {"input": self.input_dir, "output": self.output_dir, "temp": self.temp_dir}.get(kind or "")

    def annotated_path(self, name: str, default: str = "input") -> Path:
        """Resolve `name` or `name [output]` style annotated names to a path."""
        match = _ANNOTATION.match(name)
        kind = match.group("type") if match else default
        base = self.dir_by_type(kind) or self.input_dir
        return base / (match.group("name") if match else name)

    def save_image_path(self, prefix: str, root: Path) -> tuple[Path, str, int, str]:
        """ComfyUI's get_save_image_path: (folder, file stem, next counter, subfolder) for a filename prefix."""
        normalized = os.path.normpath(prefix)
        subfolder = os.path.dirname(normalized)
        stem = os.path.basename(normalized)
        folder = (root / subfolder).resolve() if subfolder else root.resolve()
        if os.path.commonpath((str(root.resolve()), str(folder))) != str(root.resolve()):
            raise ValueError("**** ERROR: Saving image outside the output folder is not allowed."
                             f"\n full_output_folder: {folder}\n         output_dir: {root}")
        folder.mkdir(parents=True, exist_ok=True)
        counters = [0]
        for existing in os.listdir(folder):
            head, tail = existing[:len(stem) + 1], existing[len(stem) + 1:]
            if os.path.normcase(head[:-1]) != os.path.normcase(stem) or head[-1:] != "_":
                continue
            try:
                counters.append(int(tail.split("_")[0]))
            except ValueError:
                continue
        return folder, stem, max(counters) + 1, subfolder.replace(os.sep, "/")
