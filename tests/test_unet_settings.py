"""The per-model text encoder / VAE choice in the settings, and the job's own pick."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comfystudio_desktop.jobs import Job, JobValidationError
from comfystudio_desktop.settings import Settings, SettingsError, is_model_file_name, load_settings, save_settings


def test_choice_is_remembered_per_model_and_survives_a_save(tmp_path: Path) -> None:
    settings = Settings().with_unet_choice("flux/dev.safetensors", "t5xxl.safetensors", "ae.safetensors")
    settings = settings.with_unet_choice("z-image/turbo.safetensors", "qwen_3_4b.safetensors", "")
    save_settings(tmp_path / "config.json", settings)
    loaded = load_settings(tmp_path / "config.json")
    assert loaded == settings
    assert loaded.unet_choice("flux/dev.safetensors") == {"text_encoder": "t5xxl.safetensors", "vae": "ae.safetensors"}
    assert loaded.unet_choice("other.safetensors") == {}
    assert "flux/dev.safetensors" not in loaded.with_unet_choice("flux/dev.safetensors", "", "").unet_parts
    assert Settings().unet_parts == {}  # the default is not shared between instances
    assert Settings().unet_parts is not Settings().unet_parts


@pytest.mark.parametrize(("raw", "field"), [
    ({"unet_parts": []}, "unet_parts"),
    ({"unet_parts": {"../up.safetensors": {"vae": "a"}}}, "unet_parts"),
    ({"unet_parts": {"m.safetensors": {"clip": "a"}}}, "unet_parts"),
    ({"unet_parts": {"m.safetensors": {"vae": 3}}}, "unet_parts"),
    ({"unet_parts": {"m.safetensors": "ae.safetensors"}}, "unet_parts"),
    ({"unet_text_encoder": "/abs/qwen.safetensors"}, "unet_text_encoder"),
    ({"unet_vae": "a\x00b"}, "unet_vae"),
    ({"flux_clip_l": 5}, "flux_clip_l"),
])
def test_bad_values_name_the_setting(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_dict(raw)
    assert caught.value.field == field


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                                  max_size=3), max_leaves=10)


@given(_json)
def test_any_json_for_unet_parts_loads_or_names_the_setting(value: Any) -> None:
    try:
        settings = Settings.from_dict({"unet_parts": value})
    except SettingsError as exc:
        assert exc.field == "unet_parts"
        return
    for model, parts in settings.unet_parts.items():
        assert is_model_file_name(model) and set(parts) <= {"text_encoder", "vae"}
    assert Settings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings


@given(st.text(max_size=40))
def test_job_parts_are_validated_like_model_names(name: str) -> None:
    for part in ("text_encoder", "vae"):
        job = Job(prompt="p", **cast(dict[str, Any], {part: name}))
        try:
            job.validate()
        except JobValidationError as exc:
            assert exc.field == part and name != ""
        else:
            assert name == "" or is_model_file_name(name)


def test_job_parts_round_trip_and_default_to_automatic() -> None:
    job = Job(prompt="p", model="flux/dev.safetensors", text_encoder="t5xxl.safetensors", vae="ae.safetensors")
    assert Job.from_json(job.to_json()) == job
    assert (Job(prompt="p").text_encoder, Job(prompt="p").vae) == ("", "")
    with pytest.raises(JobValidationError, match="text_encoder"):
        Job(prompt="p", text_encoder="../../etc/passwd").validate()
