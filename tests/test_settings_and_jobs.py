"""Typed settings (schema version, migration, clear errors) and job validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comfystudio_desktop.home import Home, resolve_home
from comfystudio_desktop.jobs import Job, JobValidationError
from comfystudio_desktop.settings import SCHEMA_VERSION, Settings, SettingsError, load_settings, save_settings


def test_defaults_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    assert load_settings(path) == Settings()
    changed = Settings().with_changes(pipeline_depth=3, comfy_args=("--lowvram",), close_to_tray=True)
    save_settings(path, changed)
    assert load_settings(path) == changed
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION


def test_v1_file_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"timeout": 120, "comfy_url": "http://127.0.0.1:9000"}))
    settings = load_settings(path)
    assert settings.job_timeout_s == 120.0 and settings.comfy_url == "http://127.0.0.1:9000"


@pytest.mark.parametrize(("data", "field"), [
    ({"nonsense": 1}, "nonsense"),
    ({"pipeline_depth": "2"}, "pipeline_depth"),
    ({"comfy_url": "ftp://x"}, "comfy_url"),
    ({"redis_mode": "external"}, "redis_url"),
    ({"schema_version": 99}, "schema_version"),
    ({"notifications": 1}, "notifications"),
])
def test_invalid_values_name_the_field(tmp_path: Path, data: dict[str, object], field: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    assert err.value.field == field and field in str(err.value)


def test_broken_json_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{")
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(path)


def test_home_resolution_and_storage_containment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFYSTUDIO_HOME", str(tmp_path / "env-home"))
    assert resolve_home() == (tmp_path / "env-home").resolve()
    assert resolve_home(tmp_path / "cli") == (tmp_path / "cli").resolve()
    home = Home(tmp_path / "h").create()
    assert home.resolve_inside_storage("outputs/a.png") == (home.outputs / "a.png").resolve()
    with pytest.raises(ValueError, match="outside the storage folder"):
        home.resolve_inside_storage("../config.json")
    with pytest.raises(ValueError, match="outside the storage folder"):
        home.resolve_inside_storage("/etc/passwd")


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"prompt": ""}, "prompt"),
    ({"seed": -2}, "seed"),
    ({"seed": 2**64}, "seed"),
    ({"batch_size": 0}, "batch_size"),
    ({"width": 100, "height": 512}, "width"),
    ({"width": 512}, "width"),
    ({"steps": 0}, "steps"),
    ({"cfg": 31.0}, "cfg"),
    ({"denoise": 1.5}, "denoise"),
    ({"images": {"mask": "/x.png"}}, "images"),
    ({"model": "a/../../b.safetensors"}, "model"),
    ({"workflow": "../evil"}, "workflow"),
    ({"job_id": "a/b"}, "job_id"),
])
def test_job_validation_names_the_field(kwargs: dict[str, object], field: str) -> None:
    base: dict[str, object] = {"prompt": "a cat"}
    base.update(kwargs)
    with pytest.raises(JobValidationError) as err:
        Job(**base).validate()  # type: ignore[arg-type]
    assert err.value.field == field


def test_job_json_round_trip_and_seed_format() -> None:
    job = Job(prompt="a cat", seed=7, images={"input": "/tmp/a.png"}, width=512, height=768).validate()
    assert Job.from_json(job.to_json()) == job
    seed = Job.from_dict({"job_id": "uuid-1234", "prompt": "a cat", "seed": 12345, "workflow": "text_to_image",
                          "model": "turbo_fp8", "aspect_ratio": "1:1", "batch_size": 1, "images": {},
                          "created_at": "2024-12-31T10:00:00"}).validate()
    assert seed.job_id == "uuid-1234" and seed.seed == 12345
    with pytest.raises(JobValidationError, match="unknown field"):
        Job.from_dict({"prompt": "x", "colour": "red"})
    rerun = job.rerun()
    assert rerun.job_id != job.job_id and rerun.prompt == job.prompt and rerun.seed == job.seed
    assert Job(prompt="x", model="sub\\dir\\model.safetensors").validate()  # Windows ComfyUI lists with '\\'
