"""A batch planned in the window: the count before expansion, the cap, literal braces, and the CLI's job order."""

from __future__ import annotations

import argparse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comfystudio_desktop.batch_expansion import MAX_BATCH_JOBS, BatchSyntaxError
from comfystudio_desktop.batch_plan import BatchTooLarge, is_matrix, plan_batch, spread_batch
from comfystudio_desktop.cli_batch_jobs import spread_jobs
from comfystudio_desktop.jobs import SEED_MAX, Job

BASE = Job(prompt="unused", model="base.safetensors", seed=5, steps=12)


def parts(model: str) -> tuple[str, str]:
    return (f"{model}.te", f"{model}.vae") if model.startswith("unet") else ("", "")


def test_the_window_orders_jobs_as_the_cli_does() -> None:
    plan = plan_batch("a {red|blue} cube", per_line=False, models=["m1", "m2"], first_seed=7, seed_count=2)
    window = [(j.model, j.prompt, j.seed) for j in spread_batch(BASE, plan, parts).jobs]
    args = argparse.Namespace(matrix="a {red|blue} cube", from_file=None, prompt=None, models="m1,m2", seeds="7-8")
    cli = [(j.model, j.prompt, j.seed) for j in spread_jobs(args, {"model": "base.safetensors"}, lambda j: j)]
    assert window == cli
    assert plan.summary() == "8 jobs · 2 models × 2 prompts × 2 seeds"


def test_one_job_has_no_batch_id_and_keeps_the_form() -> None:
    plan = plan_batch("  a plain prompt  ", per_line=False, models=[], first_seed=5, seed_count=1)
    batch = spread_batch(BASE, plan, parts)
    (job,) = batch.jobs
    assert (batch.batch_id, job.batch_id, job.job_id, job.prompt, job.model) == \
        ("", "", BASE.job_id, "a plain prompt", "base.safetensors")
    assert plan.summary() == "1 job"


def test_checked_unet_models_get_their_parts() -> None:
    plan = plan_batch("x", per_line=False, models=["unet-a", "ckpt", "unet-a"], first_seed=-1, seed_count=2)
    jobs = spread_batch(BASE, plan, parts).jobs
    assert [(j.model, j.text_encoder, j.vae, j.seed) for j in jobs] == [
        ("unet-a", "unet-a.te", "unet-a.vae", -1), ("unet-a", "unet-a.te", "unet-a.vae", -1),
        ("ckpt", "", "", -1), ("ckpt", "", "", -1)]
    assert len({j.job_id for j in jobs}) == 4 and len({j.batch_id for j in jobs}) == 1


@pytest.mark.parametrize("text", ["a {single} brace", "json {\"k\": 1}", "a } b { c", "pipes | alone", "{|"])
def test_braces_without_a_choice_stay_literal(text: str) -> None:
    assert not is_matrix(text)
    assert plan_batch(text, per_line=False, models=[], first_seed=0, seed_count=1).prompts() == [text]


def test_a_bad_matrix_line_is_named() -> None:
    with pytest.raises(BatchSyntaxError, match=r"^line 2: matrix: '\\' at 5 must escape"):
        plan_batch("fine\n{a|b\\x}\n", per_line=True, models=[], first_seed=0, seed_count=1)
    with pytest.raises(BatchSyntaxError, match="no prompts"):
        plan_batch("\n # only\n", per_line=True, models=[], first_seed=0, seed_count=1)


def test_the_cap_is_checked_before_expanding() -> None:
    huge = " ".join(["{a|b|c|d|e|f|g|h|i|j}"] * 12)  # 10**12 prompts: expanding them would never finish
    with pytest.raises(BatchTooLarge, match=r"^1,000,000,000,000 jobs · .*: at most 1,000 jobs"):
        plan_batch(huge, per_line=False, models=[], first_seed=0, seed_count=1)
    with pytest.raises(BatchTooLarge, match="seed range ends past"):
        plan_batch("x", per_line=False, models=[], first_seed=SEED_MAX, seed_count=2)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.text("xyz ", min_size=1, max_size=3), min_size=1, max_size=4), min_size=1, max_size=4),
       st.lists(st.sampled_from(["m1", "m2", "unet-3"]), max_size=3), st.integers(1, 5), st.booleans())
def test_the_count_is_the_jobs_made(choices: list[list[str]], models: list[str], seeds: int, per_line: bool) -> None:
    lines = ["p{" + "|".join(options) + "}" for options in choices]
    text = "\n".join(lines) if per_line else lines[0]
    try:
        plan = plan_batch(text, per_line=per_line, models=models, first_seed=100, seed_count=seeds)
    except BatchTooLarge:
        return
    batch = spread_batch(BASE, plan, parts)
    assert len(batch.jobs) == plan.count <= MAX_BATCH_JOBS
    assert (batch.batch_id != "") == (plan.count > 1)
    assert all(j.validate() is j and j.batch_id == batch.batch_id for j in batch.jobs)
