"""`submit`'s batch options: the prompts (one, a matrix, or a file of lines / CSV) times `--models` times `--seeds`.

Jobs come out model by model (ComfyUI loads each model once), then prompt by prompt, then seed by seed, all under
one new batch id when there is more than one.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

from comfystudio_desktop.batch_expansion import (
    MAX_BATCH_JOBS,
    BatchSyntaxError,
    batch_size_check,
    expand_matrix,
    matrix_count,
    new_batch_id,
    parse_matrix,
    parse_models,
    parse_seed_range,
    prompts_from_csv,
)
from comfystudio_desktop.job_batch import BatchError, jobs_from_lines, read_batch_lines
from comfystudio_desktop.jobs import Job, new_job_id

__all__ = ["spread_jobs"]


def spread_jobs(args: argparse.Namespace, defaults: Mapping[str, Any], check: Callable[[Job], Job]) -> list[Job]:
    """Every job `submit`'s options ask for, validated (`check` sees each distinct prompt once)."""
    models = parse_models(args.models) if args.models is not None else None
    seeds = parse_seed_range(args.seeds) if args.seeds is not None else None
    base = _base_jobs(args, defaults, check, multiplier=len(models or [""]) * len(seeds or [0]))
    if models is None and seeds is None:
        if len(base) == 1 and args.matrix is None and args.from_file is None:
            return base  # one plain job: no batch
        batch_id = new_batch_id()
        return [job if job.batch_id else Job.from_dict(job.to_dict() | {"batch_id": batch_id}) for job in base]
    jobs: list[Job] = []
    for model in models if models is not None else [None]:
        for job in base:
            for seed in seeds if seeds is not None else [None]:
                fields = job.to_dict() | {"job_id": new_job_id()}
                if model is not None:
                    fields["model"] = model
                if seed is not None:
                    fields["seed"] = seed
                jobs.append(Job.from_dict(fields))
    batch_id = new_batch_id()
    return [job if job.batch_id else Job.from_dict(job.to_dict() | {"batch_id": batch_id}) for job in jobs]


def _base_jobs(args: argparse.Namespace, defaults: Mapping[str, Any], check: Callable[[Job], Job], *,
               multiplier: int) -> list[Job]:
    """The jobs before `--models` and `--seeds`, with the batch cap checked before the large part is built."""
    if args.matrix is not None:
        batch_size_check(matrix_count(parse_matrix(args.matrix)), multiplier)  # before anything is built
        prompts = expand_matrix(args.matrix)
        return [check(Job.from_dict({**defaults, "prompt": prompt})) for prompt in prompts]
    if args.from_file is not None and args.from_file.lower().endswith(".csv"):
        lines = read_batch_lines(args.from_file)
        try:
            text = b"\n".join(lines).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise BatchError(f"--from {args.from_file!r}: not valid UTF-8") from exc
        prompts = prompts_from_csv(text)
        batch_size_check(len(prompts), multiplier)
        return [check(Job.from_dict({**defaults, "prompt": prompt})) for prompt in prompts]
    if args.from_file is not None:
        jobs = jobs_from_lines(read_batch_lines(args.from_file), defaults, check)
        if multiplier > 1:
            batch_size_check(len(jobs), multiplier)
        return jobs
    if multiplier > MAX_BATCH_JOBS:
        raise BatchSyntaxError(f"the batch makes {multiplier:,} jobs; at most {MAX_BATCH_JOBS:,} are allowed")
    return [check(Job.from_dict({**defaults, "prompt": args.prompt}))]
