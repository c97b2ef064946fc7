"""The node classes the fake knows, with the `/object_info` shape ComfyUI 0.3.64 serves for them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.fake_comfyui.folders import Folders

MAX_RESOLUTION = 16384
SAMPLERS = [
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2",
    "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp",
    "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
    "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm",
    "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp", "res_multistep_ancestral",
    "res_multistep_ancestral_cfg_pp", "gradient_estimation", "gradient_estimation_cfg_pp", "er_sde", "seeds_2",
    "seeds_3", "sa_solver", "sa_solver_pece", "ddim", "uni_pc", "uni_pc_bh2",
]
SCHEDULERS = ["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
              "linear_quadratic", "kl_optimal"]
CLIP_TYPES = ["stable_diffusion", "stable_cascade", "sd3", "stable_audio", "mochi", "ltxv", "pixart", "cosmos",
              "lumina2", "wan", "hidream", "chroma", "ace", "omnigen2", "qwen_image", "hunyuan_image"]
DUAL_CLIP_TYPES = ["sdxl", "sd3", "flux", "hunyuan_video", "hidream", "hunyuan_image"]
WEIGHT_DTYPES = ["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"]
DEVICE = (["default", "cpu"], {"advanced": True})
HIDDEN_SAVE = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}
CLIP_RECIPES = (
    "[Recipes]\n\nstable_diffusion: clip-l\nstable_cascade: clip-g\nsd3: t5 xxl/ clip-g / clip-l\nstable_audio: "
    "t5 base\nmochi: t5 xxl\ncosmos: old t5 xxl\nlumina2: gemma 2 2B\nwan: umt5 xxl\n hidream: llama-3.1 "
    "(Recommend) or t5\nomnigen2: qwen vl 2.5 3B"
)
DUAL_CLIP_RECIPES = (
    "[Recipes]\n\nsdxl: clip-l, clip-g\nsd3: clip-l, clip-g / clip-l, t5 / clip-g, t5\nflux: clip-l, t5\n"
    "hidream: at least one of t5 or llama, recommended t5 and llama\nhunyuan_image: qwen2.5vl 7b and byt5 small"
)


@dataclass(frozen=True)
class Files:
    """A combo whose choices are read from a folder when `/object_info` or validation asks."""

    folder: str  # a model folder name, or "input" for the input images, or "vae" (+ pixel_space)


@dataclass(frozen=True)
class NodeDef:
    """One node class: its inputs (ComfyUI's INPUT_TYPES shape), outputs and UI metadata."""

    name: str
    display_name: str
    category: str
    required: dict[str, tuple[Any, ...]]
    outputs: tuple[str, ...]
    optional: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    hidden: dict[str, str] = field(default_factory=dict)
    output_names: tuple[str, ...] | None = None
    output_node: bool = False
    description: str = ""
    python_module: str = "nodes"
    output_tooltips: tuple[str, ...] | None = None
    has_validate: bool = False  # like VALIDATE_INPUTS(image): the combo check is replaced by a file check
    is_sampler: bool = False
    is_loader: bool = False

    def input_types(self, folders: Folders) -> dict[str, dict[str, Any]]:
        """INPUT_TYPES() with the file combos filled in."""
        out: dict[str, dict[str, Any]] = {"required": _resolve(self.required, folders)}
        if self.optional:
            out["optional"] = _resolve(self.optional, folders)
        if self.hidden:
            out["hidden"] = dict(self.hidden)
        return out

    def info(self, folders: Folders) -> dict[str, Any]:
        """The `/object_info/{Class}` entry."""
        types = self.input_types(folders)
        info: dict[str, Any] = {
            "input": types,
            "input_order": {key: list(value) for key, value in types.items()},
            "output": list(self.outputs),
            "output_is_list": [False] * len(self.outputs),
            "output_name": list(self.output_names or self.outputs),
            "name": self.name,
            "display_name": self.display_name,
            "description": self.description,
            "python_module": self.python_module,
            "category": self.category,
            "output_node": self.output_node,
        }
        if self.output_tooltips is not None:
            info["output_tooltips"] = list(self.output_tooltips)
        return info


def choices(source: Files, folders: Folders) -> list[str]:
    """The current choices of a file combo."""
    if source.folder == "input":
        return folders.input_images()
    names = folders.list_models(source.folder)
    return [*names, "pixel_space"] if source.folder == "vae" else names


def _resolve(spec: dict[str, tuple[Any, ...]], folders: Folders) -> dict[str, list[Any]]:
    resolved: dict[str, list[Any]] = {}
    for name, entry in spec.items():
        kind = choices(entry[0], folders) if isinstance(entry[0], Files) else entry[0]
        resolved[name] = [kind, *entry[1:]]
    return resolved


def _tip(text: str, **opts: Any) -> dict[str, Any]:
    return {**opts, "tooltip": text}


def _int(default: int, lo: int, hi: int, step: int | None = None, tooltip: str | None = None) -> tuple[Any, ...]:
    opts: dict[str, Any] = {"default": default, "min": lo, "max": hi}
    if step is not None:
        opts["step"] = step
    if tooltip is not None:
        opts["tooltip"] = tooltip
    return ("INT", opts)


def _float(default: float, lo: float, hi: float, step: float) -> tuple[Any, ...]:
    return ("FLOAT", {"default": default, "min": lo, "max": hi, "step": step})


def _catalogue() -> list[NodeDef]:
    latent_size = "The {} of the latent images in pixels."
    return [
        NodeDef("CheckpointLoaderSimple", "Load Checkpoint", "loaders",
                {"ckpt_name": (Files("checkpoints"), _tip("The name of the checkpoint (model) to load."))},
                ("MODEL", "CLIP", "VAE"), is_loader=True,
                description="Loads a diffusion model checkpoint, diffusion models are used to denoise latents.",
                output_tooltips=("The model used for denoising latents.",
                                 "The CLIP model used for encoding text prompts.",
                                 "The VAE model used for encoding and decoding images to and from latent space.")),
        NodeDef("UNETLoader", "Load Diffusion Model", "advanced/loaders",
                {"unet_name": (Files("diffusion_models"),), "weight_dtype": (WEIGHT_DTYPES,)},
                ("MODEL",), is_loader=True),
        NodeDef("CLIPLoader", "Load CLIP", "advanced/loaders",
                {"clip_name": (Files("text_encoders"),), "type": (CLIP_TYPES,)}, ("CLIP",),
                optional={"device": DEVICE}, description=CLIP_RECIPES, is_loader=True),
        NodeDef("DualCLIPLoader", "DualCLIPLoader", "advanced/loaders",
                {"clip_name1": (Files("text_encoders"),), "clip_name2": (Files("text_encoders"),),
                 "type": (DUAL_CLIP_TYPES,)}, ("CLIP",),
                optional={"device": DEVICE}, description=DUAL_CLIP_RECIPES, is_loader=True),
        NodeDef("VAELoader", "Load VAE", "loaders", {"vae_name": (Files("vae"),)}, ("VAE",), is_loader=True),
        NodeDef("CLIPTextEncode", "CLIP Text Encode (Prompt)", "conditioning",
                {"text": ("STRING", _tip("The text to be encoded.", multiline=True, dynamicPrompts=True)),
                 "clip": ("CLIP", _tip("The CLIP model used for encoding the text."))},
                ("CONDITIONING",),
                description="Encodes a text prompt using a CLIP model into an embedding that can be used to guide "
                            "the diffusion model towards generating specific images.",
                output_tooltips=("A conditioning containing the embedded text used to guide the diffusion model.",)),
        NodeDef("EmptyLatentImage", "Empty Latent Image", "latent",
                {"width": _int(512, 16, MAX_RESOLUTION, 8, latent_size.format("width")),
                 "height": _int(512, 16, MAX_RESOLUTION, 8, latent_size.format("height")),
                 "batch_size": _int(1, 1, 4096, None, "The number of latent images in the batch.")},
                ("LATENT",), description="Create a new batch of empty latent images to be denoised via sampling.",
                output_tooltips=("The empty latent image batch.",)),
        NodeDef("EmptySD3LatentImage", "EmptySD3LatentImage", "latent/sd3",
                {"width": _int(1024, 16, MAX_RESOLUTION, 16), "height": _int(1024, 16, MAX_RESOLUTION, 16),
                 "batch_size": _int(1, 1, 4096)}, ("LATENT",), python_module="comfy_extras.nodes_sd3"),
        NodeDef("KSampler", "KSampler", "sampling", {
            "model": ("MODEL", _tip("The model used for denoising the input latent.")),
            "seed": ("INT", _tip("The random seed used for creating the noise.", default=0, min=0,
                                 max=0xFFFFFFFFFFFFFFFF, control_after_generate=True)),
            "steps": _int(20, 1, 10000, None, "The number of steps used in the denoising process."),
            "cfg": ("FLOAT", _tip(
                "The Classifier-Free Guidance scale balances creativity and adherence to the prompt. Higher values "
                "result in images more closely matching the prompt however too high values will negatively impact "
                "quality.", default=8.0, min=0.0, max=100.0, step=0.1, round=0.01)),
            "sampler_name": (SAMPLERS, _tip("The algorithm used when sampling, this can affect the quality, speed, "
                                            "and style of the generated output.")),
            "scheduler": (SCHEDULERS, _tip("The scheduler controls how noise is gradually removed to form the "
                                           "image.")),
            "positive": ("CONDITIONING", _tip("The conditioning describing the attributes you want to include in the "
                                              "image.")),
            "negative": ("CONDITIONING", _tip("The conditioning describing the attributes you want to exclude from "
                                              "the image.")),
            "latent_image": ("LATENT", _tip("The latent image to denoise.")),
            "denoise": ("FLOAT", _tip("The amount of denoising applied, lower values will maintain the structure of "
                                      "the initial image allowing for image to image sampling.",
                                      default=1.0, min=0.0, max=1.0, step=0.01)),
        }, ("LATENT",), is_sampler=True,
            description="Uses the provided model, positive and negative conditioning to denoise the latent image.",
            output_tooltips=("The denoised latent.",)),
        NodeDef("VAEDecode", "VAE Decode", "latent",
                {"samples": ("LATENT", _tip("The latent to be decoded.")),
                 "vae": ("VAE", _tip("The VAE model used for decoding the latent."))},
                ("IMAGE",), description="Decodes latent images back into pixel space images.",
                output_tooltips=("The decoded image.",)),
        NodeDef("VAEEncode", "VAE Encode", "latent", {"pixels": ("IMAGE",), "vae": ("VAE",)}, ("LATENT",)),
        NodeDef("SaveImage", "Save Image", "image",
                {"images": ("IMAGE", _tip("The images to save.")),
                 "filename_prefix": ("STRING", _tip(
                     "The prefix for the file to save. This may include formatting information such as "
                     "%date:yyyy-MM-dd% or %Empty Latent Image.width% to include values from nodes.",
                     default="ComfyUI"))},
                (), hidden=HIDDEN_SAVE, output_node=True,
                description="Saves the input images to your ComfyUI output directory."),
        NodeDef("PreviewImage", "Preview Image", "image", {"images": ("IMAGE",)}, (), hidden=HIDDEN_SAVE,
                output_node=True, description="Saves the input images to your ComfyUI output directory."),
        NodeDef("LoadImage", "Load Image", "image", {"image": (Files("input"), {"image_upload": True})},
                ("IMAGE", "MASK"), has_validate=True),
        NodeDef("ImageScale", "Upscale Image", "image/upscaling", {
            "image": ("IMAGE",),
            "upscale_method": (["nearest-exact", "bilinear", "area", "bicubic", "lanczos"],),
            "width": _int(512, 0, MAX_RESOLUTION, 1), "height": _int(512, 0, MAX_RESOLUTION, 1),
            "crop": (["disabled", "center"],)}, ("IMAGE",)),
        NodeDef("ImageBlend", "Image Blend", "image/postprocessing", {
            "image1": ("IMAGE",), "image2": ("IMAGE",), "blend_factor": _float(0.5, 0.0, 1.0, 0.01),
            "blend_mode": (["normal", "multiply", "screen", "overlay", "soft_light", "difference"],)},
            ("IMAGE",), python_module="comfy_extras.nodes_post_processing"),
        NodeDef("LatentUpscale", "Upscale Latent", "latent", {
            "samples": ("LATENT",),
            "upscale_method": (["nearest-exact", "bilinear", "area", "bicubic", "bislerp"],),
            "width": _int(512, 0, MAX_RESOLUTION, 8), "height": _int(512, 0, MAX_RESOLUTION, 8),
            "crop": (["disabled", "center"],)}, ("LATENT",)),
        NodeDef("RepeatLatentBatch", "Repeat Latent Batch", "latent/batch",
                {"samples": ("LATENT",), "amount": _int(1, 1, 64)}, ("LATENT",)),
        NodeDef("ModelSamplingAuraFlow", "ModelSamplingAuraFlow", "advanced/model",
                {"model": ("MODEL",), "shift": _float(1.73, 0.0, 100.0, 0.01)}, ("MODEL",),
                python_module="comfy_extras.nodes_model_advanced"),
        NodeDef("FluxGuidance", "FluxGuidance", "advanced/conditioning/flux",
                {"conditioning": ("CONDITIONING",), "guidance": _float(3.5, 0.0, 100.0, 0.1)},
                ("CONDITIONING",), python_module="comfy_extras.nodes_flux"),
    ]


NODES: dict[str, NodeDef] = {node.name: node for node in _catalogue()}


def object_info(folders: Folders, name: str | None = None) -> dict[str, Any]:
    """`GET /object_info` (all classes) or `/object_info/{name}` (`{}` when unknown)."""
    if name is None:
        return {key: node.info(folders) for key, node in NODES.items()}
    node = NODES.get(name)
    return {name: node.info(folders)} if node else {}
