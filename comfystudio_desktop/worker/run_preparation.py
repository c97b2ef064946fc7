"""From claim to `POST /prompt`: re-attach to an earlier attempt, or check, upload, fill and submit."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from comfystudio_desktop.comfy.comfy_errors import ComfyError, ComfyUnavailable
from comfystudio_desktop.comfy.job_tracker import JobOutcome, JobTracker
from comfystudio_desktop.comfy.model_catalogue import Catalogue, load_catalogue
from comfystudio_desktop.comfy.workflow_fill import resolve_seed
from comfystudio_desktop.comfy.workflow_templates import WorkflowTemplate
from comfystudio_desktop.jobs import JobStatus
from comfystudio_desktop.worker.job_inputs import JobInputError, build_graph, choose_template, store_and_upload_inputs
from comfystudio_desktop.worker.job_run import Phase, WorkerRun

if TYPE_CHECKING:
    from comfystudio_desktop.worker.consumer import Consumer

__all__ = ["RunPreparer", "comfy_backoff_s", "next_prompt_id"]

log = logging.getLogger(__name__)


def next_prompt_id(job_id: str, previous: str) -> str:
    """The prompt id for the next run of a job: `{job_id}-r2`, `-r3`, ... after `previous`."""
    prefix = f"{job_id}-r"
    number = int(previous[len(prefix):]) + 1 if previous.startswith(prefix) and previous[len(prefix):].isdigit() else 2
    return f"{prefix}{number}"


def comfy_backoff_s(failures: int, *, base: float = 1.0, cap: float = 30.0) -> float:
    """Wait before the next try to reach ComfyUI: 1, 2, 4 ... seconds, capped at 30."""
    return float(min(cap, base * 2.0 ** max(0, failures - 1)))


class RunPreparer:
    """Prepares runs for one Consumer; keeps the model catalogue between jobs."""

    def __init__(self, consumer: Consumer) -> None:
        self._c = consumer
        self._catalogue: Catalogue | None = None
        self._checked_templates: set[str] = set()

    def prepare(self, run: WorkerRun) -> None:
        """Take a claimed (or waiting) run as far as ComfyUI's queue; failures are reported on the run."""
        try:
            self._prepare(run)
        except ComfyUnavailable as exc:
            self._c.wait_for_comfy(run, exc)
        except (JobInputError, ComfyError) as exc:
            self._c.report_failure(run, exc)

    def _prepare(self, run: WorkerRun) -> None:
        c = self._c
        job = run.lease.job
        record = c.queue.status(job.job_id)
        if run.seed_used < 0 and record is not None and record.seed_used is not None:
            run.seed_used = record.seed_used  # keep the seed an earlier attempt recorded
        if record is not None and record.comfy_prompt_id:
            run.prompt_id = record.comfy_prompt_id
        submitted_before = run.lease.attempts > 0 or (record is not None and bool(record.comfy_prompt_id))
        if record is not None and record.rerun_required:
            self._start_afresh(run)
        elif submitted_before and self._reattach(run):  # a job never submitted has nothing to re-attach to
            return
        catalogue = self._catalogue_with(job.model)
        template = choose_template(job, c.library, catalogue)
        self._check_nodes_known(template)
        uploaded = store_and_upload_inputs(job, c.home, c.settings, c.client)
        c._report(run, JobStatus.PROCESSING, 15, "inputs uploaded")
        if run.seed_used < 0:
            run.seed_used = resolve_seed(job.seed)
        prepared = build_graph(job, template, uploaded, seed_used=run.seed_used, catalogue=catalogue,
                               settings=c.settings)
        c._report(run, JobStatus.PROCESSING, 20, "workflow ready", seed_used=run.seed_used)
        if c._stream is not None:
            c._stream.wait_connected(2.0)  # so the first messages reach us (history covers a miss)
        c._report(run, JobStatus.PROCESSING, 25, "ComfyUI connected")
        c.client.submit(prepared.graph, prompt_id=run.prompt_id)
        run.tracker = JobTracker(run.prompt_id, total_nodes=len(prepared.graph))
        run.phase = Phase.SUBMITTED
        run.submitted_at = run.last_history_poll = time.monotonic()
        run.comfy_failures = 0
        c._report(run, JobStatus.PROCESSING, 30, "submitted to ComfyUI", rerun_required=0,
                  comfy_prompt_id=run.prompt_id)

    def _reattach(self, run: WorkerRun) -> bool:
        """After a crash, follow or collect the prompt an earlier attempt submitted instead of running it again."""
        c = self._c
        entry = c.client.history(run.prompt_id)
        if entry:
            tracker = JobTracker(run.prompt_id)
            tracker.apply_history(entry)
            if tracker.outcome is not JobOutcome.SUCCESS:
                self._start_afresh(run)  # it failed or was interrupted there: run it again under a new id
                return False
            log.info("Job %s already finished in ComfyUI; collecting its outputs", run.job_id)
            run.tracker, run.phase, run.reattached = tracker, Phase.SUBMITTED, True
            run.submitted_at = time.monotonic()
            c._report(run, JobStatus.PROCESSING, 30, "re-attached: finished in ComfyUI")
            c._complete(run)
            return True
        if run.prompt_id in c.client.queue():
            log.info("Job %s is still in ComfyUI's queue; following it", run.job_id)
            run.tracker, run.phase, run.reattached = JobTracker(run.prompt_id), Phase.SUBMITTED, True
            run.submitted_at = run.last_history_poll = time.monotonic()
            c._report(run, JobStatus.PROCESSING, 30, "re-attached to the running prompt")
            return True
        return False

    def _start_afresh(self, run: WorkerRun) -> None:
        """A retried job runs again under a new prompt id; whatever ComfyUI still runs of the old one is stopped."""
        c = self._c
        old = run.prompt_id
        state = c.client.queue()
        if old in state.pending_ids:
            c.client.delete_from_queue([old])
        elif old in state.running_ids:
            c.client.interrupt(old)
        run.prompt_id = next_prompt_id(run.job_id, old)
        log.info("Job %s runs afresh as ComfyUI prompt %s", run.job_id, run.prompt_id)

    def _check_nodes_known(self, template: WorkflowTemplate) -> None:
        """A template using node classes the running ComfyUI lacks fails with a clear message, before upload.

        Checked once per template for as long as the model catalogue (i.e. this ComfyUI session) is current.
        """
        if template.source in self._checked_templates:
            return
        missing = [name for name in sorted(template.node_classes()) if not self._c.client.object_info(name)]
        if missing:
            raise JobInputError(f"Workflow template {Path(template.source).name} ({template.label}) needs node types "
                                f"this ComfyUI does not have: "
                                f"{', '.join(missing)} (install the custom nodes, or pick another workflow).")
        self._checked_templates.add(template.source)

    def _catalogue_with(self, model: str) -> Catalogue:
        """The catalogue from ComfyUI, reloaded once when `model` is not in the cached one."""
        if self._catalogue is None or not self._catalogue.contains(model):
            catalogue = load_catalogue(self._c.client)
            if not catalogue.comfy_answered:
                raise ComfyUnavailable(self._c.client.base_url, "the model list did not load")
            self._catalogue = catalogue
            self._checked_templates.clear()  # a reloaded catalogue may be another ComfyUI session
        return self._catalogue
