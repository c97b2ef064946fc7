"""What each node does in the fake: light stand-in values, real PNG files and JPEG previews."""

from __future__ import annotations

import hashlib
import io
import json
import random
import string
import struct
from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

from tests.fake_comfyui.folders import Folders, check_model_file

PREVIEW_MAX = 512


def _tint(*parts: Any) -> tuple[int, int, int]:
    digest = hashlib.sha256(json.dumps(parts, default=str).encode()).digest()
    return digest[0], digest[1], digest[2]


@dataclass(frozen=True)
class Handle:
    """A loaded model, CLIP, VAE or conditioning; printed like the Python object ComfyUI would hold."""

    kind: str
    label: str

    def __str__(self) -> str:
        return f"<{self.kind} object at 0x{int(hashlib.md5(self.label.encode()).hexdigest()[:12], 16):x}>"


@dataclass(frozen=True)
class Latent:
    """A latent batch: pixel size of what it decodes to, batch size and a colour standing in for content."""

    width: int
    height: int
    batch: int
    tint: tuple[int, int, int] = (128, 128, 128)

    def __str__(self) -> str:
        return f"{{'samples': tensor(shape=[{self.batch}, 4, {self.height // 8}, {self.width // 8}])}}"


@dataclass(frozen=True)
class Images:
    """An image batch (pixel size, batch size, colour)."""

    width: int
    height: int
    batch: int
    tint: tuple[int, int, int] = (128, 128, 128)

    def __str__(self) -> str:
        return f"tensor(shape=[{self.batch}, {self.height}, {self.width}, 3])"


@dataclass
class RunContext:
    """What a node may need besides its inputs."""

    folders: Folders
    prompt: dict[str, Any]
    extra_data: dict[str, Any] = field(default_factory=dict)


NodeResult = tuple[tuple[Any, ...], dict[str, Any]]  # (outputs, ui)


def render_png(images: Images, index: int, ctx: RunContext) -> bytes:
    """One PNG of an image batch, with ComfyUI's `prompt` text chunk."""
    base = _tint(images.tint, index)
    img = Image.new("RGB", (max(1, images.width), max(1, images.height)), base)
    draw = ImageDraw.Draw(img)
    w, h = img.size
    draw.ellipse((w // 4, h // 4, 3 * w // 4, 3 * h // 4), fill=tuple(255 - c for c in base))
    info = PngInfo()
    info.add_text("prompt", json.dumps(ctx.prompt))
    for key, value in (ctx.extra_data.get("extra_pnginfo") or {}).items():
        info.add_text(key, json.dumps(value))
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", pnginfo=info, compress_level=4)
    return buffer.getvalue()


def preview_jpeg(latent: Latent, step: int) -> bytes:
    """A JPEG preview for one sampler step (size of the latent's image, at most 512 px a side)."""
    scale = min(1.0, PREVIEW_MAX / max(latent.width, latent.height, 1))
    size = (max(8, int(latent.width * scale)), max(8, int(latent.height * scale)))
    img = Image.new("RGB", size, _tint(latent.tint, step))
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def preview_frame(jpeg: bytes, metadata: dict[str, Any] | None) -> bytes:
    """The WS binary frame: type 1 (`u32 1 | u32 1=JPEG | bytes`) or, with metadata, type 4."""
    if metadata is None:
        return struct.pack(">II", 1, 1) + jpeg
    meta = json.dumps({**metadata, "image_type": "image/jpeg"}).encode()
    return struct.pack(">II", 4, len(meta)) + meta + jpeg


def _load(ctx: RunContext, folder: str, name: str, kind: str) -> Handle:
    path = ctx.folders.model_path(folder, name)
    if path is not None:
        check_model_file(path)
    elif ctx.folders.models_dir is not None and name != "pixel_space":
        raise FileNotFoundError(f"Model in folder '{folder}' with filename '{name}' not found.")
    return Handle(kind, f"{folder}/{name}")


def _save(images: Images, prefix: str, ctx: RunContext, kind: str) -> dict[str, Any]:
    root = ctx.folders.output_dir if kind == "output" else ctx.folders.temp_dir
    folder, stem, counter, subfolder = ctx.folders.save_image_path(prefix, root)
    results = []
    for index in range(images.batch):
        name = f"{stem.replace('%batch_num%', str(index))}_{counter:05}_.png"
        (folder / name).write_bytes(render_png(images, index, ctx))
        results.append({"filename": name, "subfolder": subfolder, "type": kind})
        counter += 1
    return {"images": results}


def _resize(width: int, height: int, src_w: int, src_h: int, minimum: int) -> tuple[int, int]:
    if width == 0 and height == 0:
        return src_w, src_h
    if width == 0:
        width = max(minimum, round(src_w * height / max(src_h, 1)))
    elif height == 0:
        height = max(minimum, round(src_h * width / max(src_w, 1)))
    return width, height


def run_node(class_type: str, inputs: dict[str, Any], ctx: RunContext) -> NodeResult:
    """Run one (non-sampling part of a) node; raises like the real node would for bad files."""
    i = inputs
    if class_type == "CheckpointLoaderSimple":
        label = f"checkpoints/{i['ckpt_name']}"
        _load(ctx, "checkpoints", i["ckpt_name"], "comfy.model_patcher.ModelPatcher")
        return (Handle("comfy.model_patcher.ModelPatcher", label), Handle("comfy.sd.CLIP", label),
                Handle("comfy.sd.VAE", label)), {}
    if class_type == "UNETLoader":
        return (_load(ctx, "diffusion_models", i["unet_name"], "comfy.model_patcher.ModelPatcher"),), {}
    if class_type == "CLIPLoader":
        return (_load(ctx, "text_encoders", i["clip_name"], "comfy.sd.CLIP"),), {}
    if class_type == "DualCLIPLoader":
        _load(ctx, "text_encoders", i["clip_name1"], "comfy.sd.CLIP")
        return (_load(ctx, "text_encoders", i["clip_name2"], "comfy.sd.CLIP"),), {}
    if class_type == "VAELoader":
        return (_load(ctx, "vae", i["vae_name"], "comfy.sd.VAE"),), {}
    if class_type in ("CLIPTextEncode", "FluxGuidance"):
        return (Handle("list", json.dumps(i, default=str)),), {}
    if class_type == "ModelSamplingAuraFlow":
        return (Handle("comfy.model_patcher.ModelPatcher", json.dumps(i, default=str)),), {}
    if class_type in ("EmptyLatentImage", "EmptySD3LatentImage"):
        return (Latent(i["width"], i["height"], i["batch_size"]),), {}
    if class_type == "KSampler":
        latent: Latent = i["latent_image"]
        return (replace(latent, tint=_tint(latent.tint, i["seed"], i["steps"], i["denoise"])),), {}
    if class_type == "LatentUpscale":
        src: Latent = i["samples"]
        width, height = _resize(i["width"], i["height"], src.width, src.height, 64)
        if (i["width"], i["height"]) != (0, 0):  # ComfyUI: at least 64, then whole latent pixels (8 px)
            width, height = max(64, width) // 8 * 8, max(64, height) // 8 * 8
        return (replace(src, width=width, height=height),), {}
    if class_type == "RepeatLatentBatch":
        return (replace(i["samples"], batch=i["samples"].batch * i["amount"]),), {}
    if class_type == "VAEDecode":
        s: Latent = i["samples"]
        return (Images(s.width, s.height, s.batch, s.tint),), {}
    if class_type == "VAEEncode":
        px: Images = i["pixels"]
        return (Latent(px.width // 8 * 8, px.height // 8 * 8, px.batch, px.tint),), {}
    if class_type == "LoadImage":
        path = ctx.folders.annotated_path(i["image"])
        with Image.open(path) as img:
            width, height = img.size
        loaded = Images(width, height, 1, _tint(path.read_bytes()))
        return (loaded, Handle("torch.Tensor", f"mask:{path}")), {}
    if class_type == "ImageScale":
        im: Images = i["image"]
        width, height = _resize(i["width"], i["height"], im.width, im.height, 1)
        return (replace(im, width=width, height=height),), {}
    if class_type == "ImageBlend":
        a, b = i["image1"], i["image2"]
        return (replace(a, tint=_tint(a.tint, b.tint, i["blend_factor"], i["blend_mode"])),), {}
    if class_type == "SaveImage":
        return (), _save(i["images"], i["filename_prefix"], ctx, "output")
    if class_type == "PreviewImage":
        suffix = "".join(random.choice(string.ascii_lowercase) for _ in range(5))
        return (), _save(i["images"], f"ComfyUI_temp_{suffix}", ctx, "temp")
    raise NotImplementedError(class_type)


__all__ = ["Handle", "Images", "Latent", "RunContext", "preview_frame", "preview_jpeg", "render_png", "run_node"]
