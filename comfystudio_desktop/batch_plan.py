"""A batch planned in the window: prompts (lines, each maybe a matrix) × models × a seed range → one `JobBatch`.

The count is known before anything is expanded, so the live preview and the `MAX_BATCH_JOBS` cap cost nothing
however large the request. Jobs come out in the order `submit --models/--seeds` makes them: model by model
(ComfyUI loads each model once), then prompt by prompt, then seed by seed.

A prompt is read as a matrix only when it holds a choice (`{...|...}`); other braces stay literal text, so a
prompt that merely contains `{` or `}` is never refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from comfystudio_desktop.batch_expansion import (
    MAX_BATCH_JOBS,
    BatchSyntaxError,
    expand_matrix,
    matrix_count,
    new_batch_id,
    parse_matrix,
)
from comfystudio_desktop.jobs import SEED_MAX, Job, new_job_id
from comfystudio_desktop.prompt_lists import prompt_lines

__all__ = ["BatchPlan", "BatchTooLarge", "JobBatch", "is_matrix", "plan_batch", "spread_batch"]

_CHOICE_RE = re.compile(r"\{[^{}]*\|[^{}]*\}")
#: The text encoder and VAE for a model ("" = automatic), as the form would pick them.
PartsFor = Callable[[str], tuple[str, str]]


class BatchTooLarge(BatchSyntaxError):
    """The plan would make more jobs than one batch may hold, or its seed range runs out of seeds."""


@dataclass(frozen=True, slots=True)
class JobBatch:
    """Jobs submitted together under one batch id, in the order they are to run."""

    batch_id: str
    jobs: tuple[Job, ...]


def is_matrix(prompt: str) -> bool:
    """True when `prompt` holds a matrix choice such as `{red|green}`."""
    return _CHOICE_RE.search(prompt) is not None


def _prompt_count(prompt: str) -> int:
    return matrix_count(parse_matrix(prompt)) if is_matrix(prompt) else 1


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """What one Generate will queue: the prompt texts (unexpanded), the models and the seed range."""

    texts: tuple[str, ...]
    models: tuple[str, ...]
    first_seed: int
    seed_count: int
    prompt_count: int

    @property
    def count(self) -> int:
        """How many jobs the plan makes."""
        return self.prompt_count * len(self.models) * self.seed_count

    def summary(self) -> str:
        """"6 jobs · 2 models × 3 prompts" (only the factors above one are named)."""
        factors = [f"{n:,} {word}{'s' * (n != 1)}" for n, word in
                   ((len(self.models), "model"), (self.prompt_count, "prompt"), (self.seed_count, "seed")) if n > 1]
        head = f"{self.count:,} job{'s' * (self.count != 1)}"
        return " · ".join([head, " × ".join(factors)]) if factors else head

    def prompts(self) -> list[str]:
        """Every prompt, each text's matrix expanded in place."""
        return [p for text in self.texts for p in (expand_matrix(text) if is_matrix(text) else [text])]

    def seeds(self) -> list[int]:
        """The seeds, one per job of a prompt and model (-1: each picks a random one)."""
        if self.first_seed < 0:
            return [-1] * self.seed_count
        return list(range(self.first_seed, self.first_seed + self.seed_count))


def plan_batch(text: str, *, per_line: bool, models: Sequence[str], first_seed: int, seed_count: int,
               limit: int = MAX_BATCH_JOBS) -> BatchPlan:
    """The plan for the form's values.

    Raises `BatchSyntaxError` for a bad matrix or no prompt, `BatchTooLarge` for a bad seed range or too many jobs.

    `first_seed` -1 (Random) with several seeds gives each job a random seed of its own.
    """
    texts = tuple(prompt_lines(text)) if per_line else (text.strip(),)
    if per_line and not texts:
        raise BatchSyntaxError("no prompts: write one prompt per line")
    counts = []
    for number, prompt in enumerate(texts, start=1):
        try:
            counts.append(_prompt_count(prompt))
        except BatchSyntaxError as exc:
            raise BatchSyntaxError(f"line {number}: {exc}" if per_line else str(exc)) from None
    if seed_count < 1:
        raise BatchTooLarge("the number of seeds must be at least 1")
    if first_seed >= 0 and first_seed + seed_count - 1 > SEED_MAX:
        raise BatchTooLarge(f"the seed range ends past {SEED_MAX}")
    plan = BatchPlan(texts, tuple(dict.fromkeys(models)) or ("",), first_seed, seed_count, sum(counts))
    if plan.count > limit:
        raise BatchTooLarge(f"{plan.summary()}: at most {limit:,} jobs are allowed in one batch")
    return plan


def spread_batch(base: Job, plan: BatchPlan, parts_for: PartsFor) -> JobBatch:
    """The plan's jobs made from `base` (every other field), model by model, prompt by prompt, seed by seed.

    The jobs are not validated here: the caller validates each, so it can say which one is wrong.
    """
    prompts, seeds = plan.prompts(), plan.seeds()
    batch_id = new_batch_id() if plan.count > 1 else ""
    jobs: list[Job] = []
    for model in plan.models:
        text_encoder, vae = parts_for(model) if model else (base.text_encoder, base.vae)
        for prompt in prompts:
            for seed in seeds:
                jobs.append(replace(base, job_id=new_job_id() if jobs else base.job_id, prompt=prompt, seed=seed,
                                    model=model or base.model, text_encoder=text_encoder, vae=vae,
                                    batch_id=batch_id, images=dict(base.images)))
    return JobBatch(batch_id, tuple(jobs))
