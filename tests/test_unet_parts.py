"""Choosing a UNET model's family, text encoder and VAE from ComfyUI's loader lists (pure functions)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comfystudio_desktop.comfy.unet_parts import (
    FAMILY_SPECS,
    PartLists,
    PartsError,
    Pick,
    encoder_family,
    resolve_unet_parts,
)
from comfystudio_desktop.comfy.workflow_templates import family_for_model
from tests.conftest import COMFY_TRANSCRIPTS

TRANSCRIPTS = COMFY_TRANSCRIPTS
ALL_TYPES = PartLists(clip_types=frozenset({"stable_diffusion", "lumina2"}), dual_clip_types=frozenset({"flux"}))


def lists(encoders: tuple[str, ...], vaes: tuple[str, ...]) -> PartLists:
    return PartLists(text_encoders=encoders, vaes=vaes, clip_types=ALL_TYPES.clip_types,
                     dual_clip_types=ALL_TYPES.dual_clip_types)


def _recorded_object_info() -> dict[str, Any]:
    events = json.loads((TRANSCRIPTS / "a_info_endpoints.json").read_text())["events"]
    info: dict[str, Any] = {}
    for event in events:
        if event.get("path", "").startswith("/object_info/") and isinstance(event.get("response_json"), dict):
            info.update(event["response_json"])
    return info


def test_lists_from_the_recorded_object_info_and_the_recorded_unet_runs_as_sd15() -> None:
    recorded = PartLists.from_object_info(_recorded_object_info())
    assert recorded.text_encoders == ("tiny/clip-l-random.safetensors",)
    assert recorded.vaes == ("tiny/sd15-vae-random.safetensors",)  # `pixel_space` is no file
    assert {"stable_diffusion", "lumina2"} <= recorded.clip_types
    # The case: default settings, the recorded UNET, its CLIP-L and VAE - no setting needed.
    parts = resolve_unet_parts("tiny/sd15-unet-random.safetensors", recorded)
    assert (parts.family, parts.text_encoder, parts.vae) == ("unet-sd15", "tiny/clip-l-random.safetensors",
                                                             "tiny/sd15-vae-random.safetensors")


@pytest.mark.parametrize(("model", "encoders", "vaes", "family", "encoder", "vae"), [
    # the name says the family; the one fitting file is used
    ("z_image_turbo_bf16.safetensors", ("qwen_3_4b.safetensors", "clip_l.safetensors"), ("ae.safetensors",),
     "unet-zimage", "qwen_3_4b.safetensors", "ae.safetensors"),
    ("flux/dev-fp8.safetensors", ("clip_l.safetensors", "t5xxl_fp8_e4m3fn.safetensors", "qwen_3_4b.safetensors"),
     ("ae.safetensors", "sd15/vae-ft-mse.safetensors"), "unet-flux", "t5xxl_fp8_e4m3fn.safetensors",
     "ae.safetensors"),
    # the name says nothing: the installed encoders do (only Z-Image's is there)
    ("my-finetune.safetensors", ("qwen_3_4b.safetensors",), ("ae.safetensors",), "unet-zimage",
     "qwen_3_4b.safetensors", "ae.safetensors"),
    # only a CLIP-L: SD 1.5 (Flux would need a T5 too)
    ("unnamed.safetensors", ("tiny/clip-l-random.safetensors",), ("a.safetensors", "b-sd15.safetensors"),
     "unet-sd15", "tiny/clip-l-random.safetensors", "b-sd15.safetensors"),
    # one neutral file fits when nothing matches the family by name
    ("z-image/turbo.safetensors", ("my_encoder.safetensors", "clip_l.safetensors"), ("my_vae.safetensors",),
     "unet-zimage", "my_encoder.safetensors", "my_vae.safetensors"),
])
def test_automatic_choice(model: str, encoders: tuple[str, ...], vaes: tuple[str, ...], family: str, encoder: str,
                          vae: str) -> None:
    parts = resolve_unet_parts(model, lists(encoders, vaes))
    assert (parts.family, parts.text_encoder, parts.vae) == (family, encoder, vae)


def test_flux_gets_its_clip_l_too() -> None:
    parts = resolve_unet_parts("flux1-dev.safetensors", lists(("clip_l.safetensors", "t5xxl.safetensors"),
                                                              ("ae.safetensors",)))
    assert (parts.text_encoder, parts.clip_l) == ("t5xxl.safetensors", "clip_l.safetensors")


def test_a_name_without_family_and_several_possible_families_asks() -> None:
    installed = lists(("clip_l.safetensors", "t5xxl.safetensors", "qwen_3_4b.safetensors"), ("ae.safetensors",))
    with pytest.raises(PartsError) as caught:
        resolve_unet_parts("my-model.safetensors", installed)
    text = str(caught.value)
    assert "Cannot tell whether UNET model 'my-model.safetensors' is Z-Image or Flux or SD 1.5" in text
    assert "pick a text encoder for this model in the prompt panel or `submit --text-encoder`" in text
    assert "installed: clip_l.safetensors, t5xxl.safetensors, qwen_3_4b.safetensors" in text
    # picking the encoder answers it, and is remembered as the family's
    parts = resolve_unet_parts("my-model.safetensors", installed, text_encoder=Pick("qwen_3_4b.safetensors"))
    assert (parts.family, parts.text_encoder) == ("unet-zimage", "qwen_3_4b.safetensors")


def test_a_pick_that_is_not_installed_names_it_where_it_came_from_and_what_is() -> None:
    installed = lists(("tiny/clip-l-random.safetensors",), ("tiny/sd15-vae-random.safetensors",))
    with pytest.raises(PartsError, match=r"The text encoder 'qwen_3_4b.safetensors' \(setting `unet_text_encoder`\) "
                                         r"is not installed; pick a text encoder for this model in the prompt panel "
                                         r"or `submit --text-encoder`; installed: tiny/clip-l-random.safetensors\."):
        resolve_unet_parts("z-image/turbo.safetensors", installed,
                           default_text_encoder=Pick("qwen_3_4b.safetensors", "setting `unet_text_encoder`"))
    with pytest.raises(PartsError, match=r"The VAE 'ae.safetensors' \(chosen for this job\) is not installed; pick a "
                                         r"VAE for this model in the prompt panel or `submit --vae`"):
        resolve_unet_parts("tiny/sd15-unet.safetensors", installed, vae=Pick("ae.safetensors", "chosen for this job"))


def test_a_default_that_does_not_fit_the_family_is_not_used() -> None:
    installed = lists(("clip_l.safetensors", "t5xxl.safetensors", "qwen_3_4b.safetensors"),
                      ("ae.safetensors", "sd15-vae.safetensors"))
    parts = resolve_unet_parts("flux1-dev.safetensors", installed, default_text_encoder=Pick("qwen_3_4b.safetensors"),
                               default_vae=Pick("sd15-vae.safetensors"))
    assert (parts.family, parts.text_encoder, parts.vae) == ("unet-flux", "t5xxl.safetensors", "ae.safetensors")


def test_several_fitting_files_ask_and_none_says_so() -> None:
    with pytest.raises(PartsError, match=r"Several text encoders could fit Flux model 'flux.safetensors' "
                                         r"\(t5xxl_fp16.safetensors, t5xxl_fp8.safetensors\); pick a text encoder"):
        resolve_unet_parts("flux.safetensors", lists(("clip_l.safetensors", "t5xxl_fp16.safetensors",
                                                      "t5xxl_fp8.safetensors"), ("ae.safetensors",)))
    with pytest.raises(PartsError, match=r"No VAE for Z-Image model 'zimage.safetensors' is installed; install one, "
                                         r"or pick a VAE"):
        resolve_unet_parts("zimage.safetensors", lists(("qwen.safetensors",), ()))


def test_a_lone_vae_of_another_family_is_not_used() -> None:
    with pytest.raises(PartsError, match=r"No VAE for Z-Image model 'z-image.safetensors' is installed; install one, "
                                         r"or pick a VAE .*; installed: sd15-vae.safetensors\."):
        resolve_unet_parts("z-image.safetensors", lists(("qwen.safetensors",), ("sd15-vae.safetensors",)))


def test_a_family_this_comfy_cannot_load_is_not_guessed() -> None:
    old_comfy = PartLists(text_encoders=("qwen_3_4b.safetensors",), vaes=("ae.safetensors",),
                          clip_types=frozenset({"stable_diffusion"}))
    with pytest.raises(PartsError, match="none of their text encoders is installed"):
        resolve_unet_parts("model.safetensors", old_comfy)


def test_only_families_with_a_template_are_chosen() -> None:
    installed = lists(("clip_l.safetensors", "t5xxl.safetensors"), ("ae.safetensors",))
    parts = resolve_unet_parts("model.safetensors", installed, families=("checkpoint", "unet-flux"))
    assert parts.family == "unet-flux"


@pytest.mark.parametrize(("name", "family"), [("qwen_3_4b.safetensors", "unet-zimage"),
                                              ("t5xxl_fp8_e4m3fn.safetensors", "unet-flux"),
                                              ("text_encoders/clip_l.safetensors", "unet-sd15"),
                                              ("tiny/clip-l-random.safetensors", "unet-sd15"),
                                              ("clip_g.safetensors", None), ("clipl.bin", "unet-sd15")])
def test_encoder_family(name: str, family: str | None) -> None:
    assert encoder_family(name) == family


@pytest.mark.parametrize("model", ["my-model.safetensors", "unet/custom.gguf"])
def test_a_name_alone_no_longer_defaults_to_z_image(model: str) -> None:
    with pytest.raises(ValueError, match="cannot tell the family"):
        family_for_model(model, "UNET")


_names = st.sampled_from(["clip_l.safetensors", "t5xxl.safetensors", "qwen_3_4b.safetensors", "ae.safetensors",
                          "sd15-vae.safetensors", "x.safetensors", "flux/ae.sft", "", "clip-l.bin"])


@given(model=st.one_of(st.text(max_size=40), _names), encoders=st.lists(_names, max_size=5),
       vaes=st.lists(_names, max_size=4), picked=_names, default=_names,
       families=st.one_of(st.none(), st.lists(st.sampled_from([s.family for s in FAMILY_SPECS]), max_size=3)))
def test_any_lists_give_installed_files_or_one_clear_error(model: str, encoders: list[str], vaes: list[str],
                                                           picked: str, default: str,
                                                           families: list[str] | None) -> None:
    installed = lists(tuple(encoders), tuple(vaes))
    try:
        parts = resolve_unet_parts(model, installed, text_encoder=Pick(picked), default_text_encoder=Pick(default),
                                   families=families)
    except PartsError as exc:
        assert str(exc).endswith(".") and "\n" not in str(exc)
        return
    assert parts.text_encoder in encoders and parts.vae in vaes
    assert families is None or parts.family in families
    assert (parts.clip_l in encoders) if parts.family == "unet-flux" else parts.clip_l == ""


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                 max_size=3), max_leaves=12))
def test_lists_from_any_object_info_never_raise(info: Any) -> None:
    if not isinstance(info, dict):
        info = {"CLIPLoader": info}
    parsed = PartLists.from_object_info(info)
    assert all(isinstance(name, str) and name for name in parsed.text_encoders + parsed.vaes)
