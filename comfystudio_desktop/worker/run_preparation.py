"""From claim to `POST /prompt`: re-attach to an earlier attempt, or check, upload, fill and submit.

The I/O half of preparing a run: it reads Redis and ComfyUI, lets `run_decisions` decide, and returns the
outcome (`Submitted | Reattached | WaitForComfy | Failed`, or `ReusedResult` from the result cache) for the
Consumer to apply.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.comfy.comfy_errors import ComfyError, ComfyUnavailable
from comfystudio_desktop.comfy.job_tracker import JobTracker
from comfystudio_desktop.comfy.model_catalogue import GROUP_UNET, Catalogue, load_catalogue
from comfystudio_desktop.comfy.unet_parts import PART_LOADERS, PartLists, UnetParts
from comfystudio_desktop.comfy.workflow_fill import resolve_seed
from comfystudio_desktop.comfy.workflow_templates import TemplateLibrary, WorkflowTemplate
from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobStatus
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.queue.result_cache import ResultCache
from comfystudio_desktop.settings import Settings, SettingsError, load_settings
from comfystudio_desktop.worker.cached_results import job_cache_key, reuse_outputs
from comfystudio_desktop.worker.job_inputs import (
    JobInputError,
    build_graph,
    choose_template,
    input_copy_name,
    resolve_parts,
    store_and_upload_inputs,
)
from comfystudio_desktop.worker.job_run import Phase, WorkerRun
from comfystudio_desktop.worker.run_decisions import (
    Begin,
    Preparation,
    Reattach,
    Reattached,
    ReusedResult,
    Submitted,
    cache_candidate,
    how_to_begin,
    never_submitted,
    next_prompt_id,
    preparation_failed,
    reattach_verdict,
)

__all__ = ["ReportFn", "RunPreparer"]

log = logging.getLogger(__name__)
#: Records a run's progress (status, percent, message, extra hash fields) in the queue and tells the listener.
ReportFn = Callable[..., None]


class RunPreparer:
    """Prepares runs for one Consumer; keeps the model catalogue between jobs.

    `settings` is asked on every job: the headless worker swaps the settings it changes live. `results` is the
    result cache a fresh claim is looked up in.
    """

    def __init__(self, queue: JobQueue, client: ComfyClient, home: Home, library: TemplateLibrary,
                 settings: Callable[[], Settings], results: ResultCache) -> None:
        self._queue = queue
        self._results = results
        self._client = client
        self._home = home
        self._library = library
        self._settings = settings
        self._catalogue: Catalogue | None = None
        self._checked_templates: set[str] = set()

    @staticmethod
    def comfy_answered(runs: Iterable[WorkerRun]) -> None:
        """ComfyUI answers again: every run waiting for it is retried at once, its back-off started afresh."""
        for run in runs:
            if run.phase is Phase.WAITING_COMFY:
                run.next_attempt_at = 0.0
                run.comfy_failures = 0

    def prepare(self, run: WorkerRun, report: ReportFn, wait_connected: Callable[[float], object]) -> Preparation:
        """Take a claimed (or waiting) run as far as ComfyUI's queue; say what came of it.

        Args:
            report: records progress on the way (15, 20, 25, 30 %).
            wait_connected: waits up to the given seconds for the ComfyUI event stream, so that the first
                messages of the prompt reach the worker (its history covers a miss).
        """
        try:
            return self._prepare(run, report, wait_connected)
        except (JobInputError, ComfyError) as exc:
            return preparation_failed(exc, run.comfy_failures)

    def _prepare(self, run: WorkerRun, report: ReportFn, wait_connected: Callable[[float], object]) -> Preparation:
        job = run.lease.job
        record = self._queue.status(job.job_id)
        if run.seed_used < 0 and record is not None and record.seed_used is not None:
            run.seed_used = record.seed_used  # keep the seed an earlier attempt recorded
        if record is not None and record.comfy_prompt_id:
            run.prompt_id = record.comfy_prompt_id
        begin = how_to_begin(run.lease.attempts, record)
        if begin is Begin.AFRESH:
            self._start_afresh(run)
        elif begin is Begin.REATTACH and (reattached := self._reattach(run, report)) is not None:
            return reattached
        catalogue = self._catalogue_with(job.model)
        parts = self._unet_parts(job, catalogue)
        template = choose_template(job, self._library, catalogue, parts)
        self._check_nodes_known(template)
        if run.seed_used < 0:
            run.seed_used = resolve_seed(job.seed)
        self._remember_cache_key(run, template, catalogue, parts)
        uploaded = store_and_upload_inputs(job, self._home, self._settings(), self._client)
        report(run, JobStatus.PROCESSING, 15, "inputs uploaded")
        prepared = build_graph(job, template, uploaded, seed_used=run.seed_used, catalogue=catalogue, parts=parts)
        report(run, JobStatus.PROCESSING, 20, "workflow ready", seed_used=run.seed_used)
        wait_connected(2.0)
        report(run, JobStatus.PROCESSING, 25, "ComfyUI connected")
        self._client.submit(prepared.graph, prompt_id=run.prompt_id)
        run.tracker = JobTracker(run.prompt_id, total_nodes=len(prepared.graph))
        run.phase = Phase.SUBMITTED
        run.submitted_at = run.last_history_poll = time.monotonic()
        run.comfy_failures = 0
        report(run, JobStatus.PROCESSING, 30, "submitted to ComfyUI", rerun_required=0,
               comfy_prompt_id=run.prompt_id)
        return Submitted()

    def look_up_cache(self, run: WorkerRun) -> ReusedResult | None:
        """For a fresh claim: copy an identical finished job's output to this job, if the result cache has one.

        Only runs `cache_candidate` and `never_submitted` allow are looked up; a run that fails to prepare here
        simply goes the normal way (None), which reports the problem.
        """
        job = run.lease.job
        if not cache_candidate(self._settings().result_cache, job, run.lease.attempts):
            return None
        try:
            if not never_submitted(self._queue.status(job.job_id)):
                return None
            catalogue = self._catalogue_with(job.model)
            parts = self._unet_parts(job, catalogue)
            template = choose_template(job, self._library, catalogue, parts)
            run.seed_used = job.seed
            self._remember_cache_key(run, template, catalogue, parts)
        except (JobInputError, ComfyError):
            return None
        hit = self._results.lookup(run.cache_key) if run.cache_key else None
        if hit is None:
            return None
        outputs = reuse_outputs(hit, job.job_id, self._home)
        if outputs is None:
            self._results.forget(run.cache_key)
            return None
        return ReusedResult(outputs)

    def _remember_cache_key(self, run: WorkerRun, template: WorkflowTemplate, catalogue: Catalogue,
                            parts: UnetParts | None) -> None:
        """Keep the run's result-cache key: the graph as it will be filled (upload names are the job's own) and
        the input images' bytes. A run that goes to ComfyUI is cached under it once it finishes."""
        settings = self._settings()
        if not settings.result_cache:
            return
        job = run.lease.job
        expected = {slot: input_copy_name(job.job_id, slot) for slot in job.images}
        graph = build_graph(job, template, expected, seed_used=run.seed_used, catalogue=catalogue, parts=parts).graph
        run.cache_key = job_cache_key(job, graph, settings.max_upload_mb * 1024 * 1024)

    def _reattach(self, run: WorkerRun, report: ReportFn) -> Reattached | None:
        """After a crash, follow or collect the prompt an earlier attempt submitted instead of running it again.

        None: nothing to re-attach to; the run is submitted (under a new prompt id if the earlier one failed).
        """
        entry = self._client.history(run.prompt_id)
        tracker = JobTracker(run.prompt_id)
        if entry:
            tracker.apply_history(entry)
        in_queue = not entry and run.prompt_id in self._client.queue()
        verdict = reattach_verdict(tracker.outcome, in_history=bool(entry), in_queue=in_queue)
        if verdict is Reattach.RUN_AFRESH:
            self._start_afresh(run)
        if verdict in (Reattach.RUN_AFRESH, Reattach.SUBMIT):
            return None
        finished = verdict is Reattach.COLLECT
        if finished:
            log.info("Job %r already finished in ComfyUI; collecting its outputs", run.job_id)
        else:
            log.info("Job %r is still in ComfyUI's queue; following it", run.job_id)
        run.tracker, run.phase, run.reattached = tracker, Phase.SUBMITTED, True
        run.submitted_at = time.monotonic()
        if not finished:
            run.last_history_poll = run.submitted_at
        report(run, JobStatus.PROCESSING, 30,
               "re-attached: finished in ComfyUI" if finished else "re-attached to the running prompt")
        return Reattached(finished=finished)

    def _start_afresh(self, run: WorkerRun) -> None:
        """A retried job runs again under a new prompt id; whatever ComfyUI still runs of the old one is stopped."""
        old = run.prompt_id
        state = self._client.queue()
        if old in state.pending_ids:
            self._client.delete_from_queue([old])
        elif old in state.running_ids:
            self._client.interrupt(old)
        run.prompt_id = next_prompt_id(run.job_id, old)
        log.info("Job %r runs afresh as ComfyUI prompt %r", run.job_id, run.prompt_id)

    def _check_nodes_known(self, template: WorkflowTemplate) -> None:
        """A template using node classes the running ComfyUI lacks fails with a clear message, before upload.

        Checked once per template for as long as the model catalogue (i.e. this ComfyUI session) is current.
        """
        if template.source in self._checked_templates:
            return
        missing = [name for name in sorted(template.node_classes()) if not self._client.object_info(name)]
        if missing:
            raise JobInputError(f"Workflow template {Path(template.source).name} ({template.label}) needs node types "
                                f"this ComfyUI does not have: "
                                f"{', '.join(missing)} (install the custom nodes, or pick another workflow).")
        self._checked_templates.add(template.source)

    def _unet_parts(self, job: Job, catalogue: Catalogue) -> UnetParts | None:
        """For a UNET job: its family, text encoder and VAE, from the loaders' file lists in `/object_info`."""
        if catalogue.group_of(job.model) != GROUP_UNET or job.workflow not in self._library:
            return None  # checkpoints load everything from one file; an unknown workflow is reported later
        info: dict[str, Any] = {}
        for node_class in PART_LOADERS:
            info.update(self._client.object_info(node_class))
        return resolve_parts(job, self._settings_with_saved_choices(), PartLists.from_object_info(info),
                             self._library.families(job.workflow))

    def _settings_with_saved_choices(self) -> Settings:
        """The worker's settings with the per-model picks as saved now (the window saves them as they are made)."""
        settings = self._settings()
        config = self._home.config_file
        if not config.is_file():
            return settings
        try:
            return replace(settings, unet_parts=load_settings(config).unet_parts)
        except SettingsError as exc:
            log.warning("Saved text encoder / VAE picks not read (%s); using those from the start", exc)
            return settings

    def _catalogue_with(self, model: str) -> Catalogue:
        """The catalogue from ComfyUI, reloaded once when `model` is not in the cached one."""
        if self._catalogue is None or not self._catalogue.contains(model):
            catalogue = load_catalogue(self._client)
            if not catalogue.comfy_answered:
                raise ComfyUnavailable(self._client.base_url, "the model list did not load")
            self._catalogue = catalogue
            self._checked_templates.clear()  # a reloaded catalogue may be another ComfyUI session
        return self._catalogue
