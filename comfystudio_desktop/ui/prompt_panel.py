"""`PromptPanel`: everything a user sets before pressing Generate, turned into a validated `Job` or `JobBatch`.

Validation messages appear right under the field they are about (and the first bad field gets focus);
nothing is emitted until the whole form is valid. Several prompts (one per line, a dropped prompt file, a
`{a|b}` matrix), several seeds or several checked models make one batch; the Jobs row counts it live.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from comfystudio_desktop.batch_expansion import BatchSyntaxError
from comfystudio_desktop.batch_plan import BatchPlan, BatchTooLarge, JobBatch, plan_batch, spread_batch
from comfystudio_desktop.comfy.model_catalogue import GROUP_FOLDERS, Catalogue
from comfystudio_desktop.comfy.unet_parts import PartLists
from comfystudio_desktop.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from comfystudio_desktop.jobs import ASPECT_RATIOS, MAX_BATCH, Job, JobValidationError
from comfystudio_desktop.prompt_lists import read_prompt_file
from comfystudio_desktop.queue.ordering import Priority
from comfystudio_desktop.ui.advanced_section import AdvancedSection
from comfystudio_desktop.ui.background_tasks import run_in_background
from comfystudio_desktop.ui.batch_form import BatchRow, ModelChecks, PromptEdit
from comfystudio_desktop.ui.image_slots_panel import ImageSlotsPanel
from comfystudio_desktop.ui.message_label import MessageLabel, with_message
from comfystudio_desktop.ui.model_combo import ModelCombo
from comfystudio_desktop.ui.seed_field import SeedField
from comfystudio_desktop.ui.unet_parts_picker import UnetChoice, UnetPartsPicker
from comfystudio_desktop.ui.workflow_choices import WorkflowInfo
from comfystudio_desktop.workflow_slots import slot_problems

__all__ = ["FIELD_LABELS", "PromptPanel"]

log = logging.getLogger(__name__)

#: How a `Job` field is named in messages.
FIELD_LABELS: dict[str, str] = {
    "prompt": "Prompt", "negative_prompt": "Negative prompt", "seed": "Seed", "workflow": "Workflow",
    "model": "Model", "aspect_ratio": "Aspect ratio", "batch_size": "Batch size", "width": "Size",
    "height": "Size", "steps": "Steps", "cfg": "CFG", "denoise": "Denoise", "images": "Images",
    "text_encoder": "Text encoder", "vae": "VAE", "priority": "Priority", "jobs": "Jobs",
}
# Fields with no widget of their own are reported next to the nearest one.
_FIELD_ALIASES = {"width": "aspect_ratio", "height": "aspect_ratio", "text_encoder": "model", "vae": "model"}


def _ratio_label(ratio: str) -> str:
    w, h = (int(x) for x in ratio.split(":"))
    shape = "square" if w == h else "landscape" if w > h else "portrait"
    return f"{ratio}  {shape}"


class PromptPanel(QWidget):
    """Prompt, model, images and sampler settings; `generate_requested(Job)` when the user asks and all is valid,
    `batch_requested(JobBatch)` when the form makes several jobs."""

    generate_requested = Signal(object)  # Job
    batch_requested = Signal(JobBatch)
    workflow_changed = Signal(str)
    unet_choice_changed = Signal(object)  # UnetChoice: remember it for that model

    def __init__(self, image_dir: Path, *, max_image_bytes: int = DEFAULT_MAX_BYTES,
                 max_image_pixels: int = DEFAULT_MAX_PIXELS, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._workflows: dict[str, WorkflowInfo] = {}
        self._fields: dict[str, tuple[QWidget, MessageLabel]] = {}
        self._build(image_dir, max_image_bytes, max_image_pixels)
        self._connect()
        self.set_workflows([])
        self._update_preview()

    def _build(self, image_dir: Path, max_bytes: int, max_pixels: int) -> None:
        self.workflow_combo = QComboBox(self)
        self.workflow_combo.setAccessibleName("Workflow")
        self.model_combo = ModelCombo(self)
        self.model_combo.setAccessibleName("Model")
        self.refresh_button = QToolButton(self)
        self.refresh_button.setDefaultAction(self.model_combo.refresh_action)
        self.refresh_button.setText("⟳")
        model_row = QWidget(self)
        row = QHBoxLayout(model_row)
        row.setContentsMargins(0, 0, 0, 0)
        self.model_checks = ModelChecks(self)
        row.addWidget(self.model_combo, 1)
        row.addWidget(self.model_checks)
        row.addWidget(self.refresh_button)
        self.unet_parts = UnetPartsPicker(self)
        self.image_slots = ImageSlotsPanel(image_dir, max_bytes=max_bytes, max_pixels=max_pixels, parent=self)

        self.prompt_edit = PromptEdit(self)
        self._shape_text_edit(self.prompt_edit, "Describe the image… ({red|blue} or a dropped .txt/.csv: many jobs)",
                              "Prompt", lines=4)
        self.negative_edit = self._shape_text_edit(QPlainTextEdit(self), "What to avoid (optional)",
                                                   "Negative prompt", lines=2)
        self.batch_row = BatchRow(self)
        self.aspect_combo = QComboBox(self)
        self.aspect_combo.setAccessibleName("Aspect ratio")
        for ratio in ASPECT_RATIOS:
            self.aspect_combo.addItem(_ratio_label(ratio), ratio)
        self.batch_spin = QSpinBox(self)
        self.batch_spin.setRange(1, MAX_BATCH)
        self.batch_spin.setAccessibleName("Batch size")
        self.batch_spin.setToolTip(f"Images per job (1–{MAX_BATCH})")
        self.seed_field = SeedField(self)
        self.priority_combo = QComboBox(self)
        self.priority_combo.setAccessibleName("Priority")
        self.priority_combo.setToolTip("Higher-priority jobs run before the others, whenever they were queued")
        for level in (Priority.HIGH, Priority.NORMAL, Priority.LOW):
            self.priority_combo.addItem(level.label.capitalize(), level)
        self.priority_combo.setCurrentIndex(1)
        self.advanced = AdvancedSection(self)
        self.general_message = MessageLabel(self)
        self._build_generate()
        self._lay_out(model_row)

    def _build_generate(self) -> None:
        self.generate_action = QAction("Generate", self)
        self.generate_action.setShortcuts([QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")])
        self.generate_action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.generate_action.setToolTip("Queue a job with these settings (Ctrl+Enter)")
        self.addAction(self.generate_action)
        self.generate_button = QPushButton("Generate", self)
        self.generate_button.setToolTip(self.generate_action.toolTip())
        self.generate_button.setMinimumHeight(self.generate_button.sizeHint().height() + 8)

    def _lay_out(self, model_row: QWidget) -> None:
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self._add_row(form, "workflow", "&Workflow", self.workflow_combo)
        self._add_row(form, "model", "&Model", model_row, focus=self.model_combo)
        form.addRow(self.unet_parts)
        form.addRow(self.image_slots)
        self._add_row(form, "prompt", "&Prompt", self.prompt_edit)
        self._add_row(form, "jobs", "&Jobs", self.batch_row, focus=self.batch_row.per_line_check)
        self._add_row(form, "negative_prompt", "&Negative", self.negative_edit)
        self._add_row(form, "aspect_ratio", "&Aspect ratio", self.aspect_combo)
        self._add_row(form, "batch_size", "&Batch", self.batch_spin)
        self._add_row(form, "seed", "&Seed", self.seed_field, focus=self.seed_field.edit)
        self._add_row(form, "priority", "P&riority", self.priority_combo)
        form.addRow(self.advanced)
        self._fields.update(self.advanced.fields())
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addStretch(1)
        layout.addWidget(self.general_message)
        layout.addWidget(self.generate_button)
        self.setMinimumWidth(340)
        self._set_tab_order()

    def _shape_text_edit(self, edit: QPlainTextEdit, placeholder: str, name: str, *, lines: int) -> QPlainTextEdit:
        edit.setPlaceholderText(placeholder)
        edit.setAccessibleName(name)
        edit.setTabChangesFocus(True)  # Tab moves on; the shortcut, not Enter, generates
        height = edit.fontMetrics().lineSpacing() * lines + 2 * edit.frameWidth() + 8
        edit.setMinimumHeight(height)
        edit.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding if lines > 2
                           else QSizePolicy.Policy.Preferred)
        edit.setMaximumHeight(height * 4 if lines > 2 else height * 2)
        return edit

    def _add_row(self, form: QFormLayout, name: str, label: str, widget: QWidget, *,
                 focus: QWidget | None = None) -> None:
        container, message = with_message(widget)
        form.addRow(label, container)
        buddy = form.labelForField(container)
        target = focus or widget
        if isinstance(buddy, QLabel):
            buddy.setBuddy(target)  # Alt+letter jumps to the field
        self._fields[name] = (target, message)

    def _set_tab_order(self) -> None:
        chain: list[QWidget] = [self.workflow_combo, self.model_combo, self.model_checks, self.refresh_button,
                                self.unet_parts.text_encoder_combo, self.unet_parts.vae_combo]
        chain += [self.image_slots.slot(n) for n in ("input", "source", "target")]
        chain += [self.prompt_edit, self.batch_row.per_line_check, self.batch_row.seeds_spin, self.negative_edit,
                  self.aspect_combo, self.batch_spin, self.seed_field.edit,
                  self.seed_field.random_check, self.seed_field.reuse_button, self.priority_combo,
                  self.advanced.toggle_button,
                  self.advanced.steps, self.advanced.cfg, self.advanced.denoise, self.generate_button]
        for first, second in itertools.pairwise(chain):
            QWidget.setTabOrder(first, second)

    def _connect(self) -> None:
        self.generate_action.triggered.connect(self._on_generate_action_triggered)
        self.generate_button.clicked.connect(self._on_generate_action_triggered)
        self.workflow_combo.currentIndexChanged.connect(self._on_workflow_combo_current_index_changed)
        self.model_combo.model_changed.connect(self._on_model_combo_model_changed)
        self.unet_parts.choice_changed.connect(self.unet_choice_changed)
        self.prompt_edit.textChanged.connect(self._on_prompt_edit_text_changed)
        self.negative_edit.textChanged.connect(self._on_negative_edit_text_changed)
        self.seed_field.changed.connect(self._on_seed_field_changed)
        self.batch_spin.valueChanged.connect(self._on_batch_spin_value_changed)
        self.prompt_edit.file_dropped.connect(self.load_prompt_file)
        self.batch_row.changed.connect(self._on_batch_form_changed)
        self.model_checks.changed.connect(self._on_batch_form_changed)

    # --- public API -------------------------------------------------------------------------------------

    def set_workflows(self, workflows: Sequence[WorkflowInfo]) -> None:
        """Offer `workflows`; keep the current one if it is still there."""
        current = self.current_workflow()
        infos = list(workflows)
        self._workflows = {w.name: w for w in infos}
        self.workflow_combo.blockSignals(True)
        self.workflow_combo.clear()
        for info in infos:
            self.workflow_combo.addItem(info.label, info.name)
            self.workflow_combo.setItemData(self.workflow_combo.count() - 1, info.name, Qt.ItemDataRole.ToolTipRole)
        index = self.workflow_combo.findData(current)
        self.workflow_combo.setCurrentIndex(index if index >= 0 else 0 if infos else -1)
        self.workflow_combo.blockSignals(False)
        self._on_workflow_combo_current_index_changed(self.workflow_combo.currentIndex())

    def current_workflow(self) -> str:
        """The selected workflow's name, or ""."""
        return str(self.workflow_combo.currentData() or "")

    def set_models(self, models: Mapping[str, Sequence[str]], online: bool) -> None:
        """Forward the model list to the model combo and the checkable list (see `ModelCombo.set_models`)."""
        self.model_combo.set_models(models, online)
        self.model_checks.set_models(models)

    def set_catalogue(self, catalogue: Catalogue) -> None:
        """Offer the catalogue's models, grouped (offline when the list came from the models folder)."""
        groups = {group: catalogue.groups.get(group, ()) for group in GROUP_FOLDERS}
        self.set_models(groups, catalogue.comfy_answered)

    def set_unet_part_lists(self, lists: PartLists) -> None:
        """The text encoders and VAEs ComfyUI's loaders accept, offered when a UNET model is chosen."""
        self.unet_parts.set_lists(lists)

    def set_unet_choices(self, choices: Mapping[str, Mapping[str, str]]) -> None:
        """The text encoder / VAE remembered per UNET model (the `unet_parts` setting)."""
        self.unet_parts.set_remembered(choices)

    def set_image_limits(self, max_bytes: int, max_pixels: int) -> None:
        """Apply new upload limits (from the settings) to images checked from now on."""
        self.image_slots.set_limits(max_bytes, max_pixels)

    def set_last_seed(self, seed: int | None) -> None:
        """Remember the last finished job's seed for "Reuse last"."""
        self.seed_field.set_last_seed(seed)

    def build_job(self, *, prompt: str | None = None, model: str = "") -> Job | None:
        """A validated `Job` from the form, or None after showing every problem next to its field.

        `prompt` and `model`, when given, stand in for the prompt box and the model combo (a batch's first job).
        """
        self._clear_all_errors()
        errors: dict[str, str] = {}
        workflow = self._workflows.get(self.current_workflow())
        if workflow is None:
            errors["workflow"] = "Choose a workflow"
        if not model and not self.model_combo.current_model():
            none_listed = not self.model_combo.models()
            errors["model"] = "Choose a model" + (" (none are listed: check ComfyUI's models folder)" * none_listed)
        missing = self._check_image_slots(workflow)
        try:
            seed = self.seed_field.seed()
        except JobValidationError as exc:
            errors["seed"], seed = f"Seed {exc.message}", -1
        steps, cfg, denoise = self.advanced.values()
        parts = self.unet_parts.choice() if self.model_combo.current_group() == "UNET" else UnetChoice("")
        job = Job(prompt=self.prompt_edit.toPlainText().strip() if prompt is None else prompt,
                  negative_prompt=self.negative_edit.toPlainText().strip(),
                  seed=seed, workflow=workflow.name if workflow else "text_to_image",
                  model=model or self.model_combo.current_model(), aspect_ratio=str(self.aspect_combo.currentData()),
                  batch_size=self.batch_spin.value(), images=self.image_slots.paths(),
                  steps=steps, cfg=cfg, denoise=denoise, text_encoder=parts.text_encoder, vae=parts.vae,
                  priority=self.priority().value)
        try:
            job.validate()
        except JobValidationError as exc:
            errors.setdefault(exc.field, f"{FIELD_LABELS.get(exc.field, exc.field.capitalize())} {exc.message}")
        if errors or missing:
            self._show_errors(errors)
            log.info("Job not queued: %s", "; ".join([*errors.values(), *missing]))
            return None
        return job

    def plan(self) -> BatchPlan:
        """What Generate would queue now; `BatchSyntaxError` (or `BatchTooLarge`) if it cannot."""
        try:
            first_seed = self.seed_field.seed()
        except JobValidationError:
            first_seed = 0  # the seed field shows its own message; the count does not depend on it
        return plan_batch(self.prompt_edit.toPlainText(), per_line=self.batch_row.per_line(),
                          models=self.model_checks.checked_models(), first_seed=first_seed,
                          seed_count=self.batch_row.seed_count())

    def build_batch(self) -> JobBatch | None:
        """Every job the form asks for, validated (one job: an empty batch id), or None after showing why not."""
        self._clear_all_errors()
        try:
            plan = self.plan()
        except BatchSyntaxError as exc:
            self._show_errors({"jobs" if isinstance(exc, BatchTooLarge) else "prompt": str(exc)})
            log.info("Batch not queued: %s", exc)
            return None
        prompts = plan.prompts()
        base = self.build_job(prompt=prompts[0], model=plan.models[0])
        if base is None:
            return None
        batch = spread_batch(base, plan, self._parts_for)
        for number, job in enumerate(batch.jobs, start=1):
            try:
                job.validate()
            except JobValidationError as exc:
                label = FIELD_LABELS.get(exc.field, exc.field.capitalize())
                self._show_errors({exc.field: f"Job {number} of {len(batch.jobs)}: {label} {exc.message}"})
                log.info("Batch not queued: job %d: %s", number, exc)
                return None
        return batch

    def generate(self) -> Job | None:
        """Build the job (or batch) and emit `generate_requested` (or `batch_requested`) if it is valid.

        Returns the job queued, or a batch's first job.
        """
        batch = self.build_batch()
        if batch is None:
            return None
        first = batch.jobs[0]
        if not batch.batch_id:
            log.info("Generate requested: job %s (%s, %s)", first.job_id, first.workflow, first.model)
            self.generate_requested.emit(first)
            return first
        log.info("Generate requested: batch %r of %d jobs", batch.batch_id, len(batch.jobs))
        self.batch_requested.emit(batch)
        return first

    def load_prompt_file(self, path: Path) -> None:
        """Fill the prompt box with a .txt/.csv file's prompts, one per line, once it is read (off the GUI thread:
        the file may be on a slow share); a bad file is told at the prompt box, which keeps its text."""
        self._clear_error("prompt")
        log.info("Reading prompt file %r", str(path))
        run_in_background(partial(read_prompt_file, path), self._on_prompt_file_read)

    def _on_prompt_file_read(self, outcome: list[str] | Exception) -> None:
        if isinstance(outcome, Exception):
            if isinstance(outcome, BatchSyntaxError):
                log.info("Prompt file not loaded: %s", outcome)
                text = str(outcome)
            else:  # not a refusal of the file but a fault of ours: logged in full, told in one line
                log.error("Reading a prompt file failed", exc_info=outcome)
                text = f"The file could not be read ({type(outcome).__name__})"
            self._show_error("prompt", text)
            self._fields["prompt"][0].setFocus(Qt.FocusReason.OtherFocusReason)
            return
        self.batch_row.per_line_check.setChecked(True)
        self.prompt_edit.setPlainText("\n".join(outcome))
        log.info("Prompt file loaded: %d prompts", len(outcome))

    def load_job(self, job: Job) -> None:
        """Fill the form with `job`'s parameters (e.g. "load parameters" on a finished job)."""
        self._clear_all_errors()
        index = self.workflow_combo.findData(job.workflow)
        if index >= 0:
            self.workflow_combo.setCurrentIndex(index)
        else:
            self._show_error("workflow", f"Workflow {job.workflow!r} is not installed")
        if job.model and not self.model_combo.set_current_model(job.model):
            self._show_error("model", f"{job.model} is not in the model list")
        if job.text_encoder or job.vae:
            self.unet_parts.show_choice(UnetChoice(job.model, job.text_encoder, job.vae))
        self.prompt_edit.setPlainText(job.prompt)
        self.negative_edit.setPlainText(job.negative_prompt)
        ratio = self.aspect_combo.findData(job.aspect_ratio)
        if ratio < 0:
            self.aspect_combo.addItem(job.aspect_ratio, job.aspect_ratio)
            ratio = self.aspect_combo.count() - 1
        self.aspect_combo.setCurrentIndex(ratio)
        self.batch_spin.setValue(job.batch_size)
        self.seed_field.set_seed(job.seed)
        self.advanced.set_values(job.steps, job.cfg, job.denoise)
        self.priority_combo.setCurrentIndex(max(0, self.priority_combo.findData(Priority.of(job.priority))))
        self.image_slots.set_paths(job.images)

    def priority(self) -> Priority:
        """The priority chosen for the next job."""
        level = self.priority_combo.currentData()
        return level if isinstance(level, Priority) else Priority.NORMAL

    def error_message(self, name: str) -> str:
        """The validation message shown for field `name` ("" if none); "general" for the one above Generate."""
        if name == "general":
            return self.general_message.message()
        return self._fields[name][1].message() if name in self._fields else ""

    # --- internals --------------------------------------------------------------------------------------

    def _check_image_slots(self, workflow: WorkflowInfo | None) -> list[str]:
        """Show a message on each required slot that is empty or still being checked; return the messages."""
        problems = []
        wanted = workflow.image_slots if workflow else ()
        # The rule `submit --image` applies too; the panel shows only the workflow's slots, so none is extra.
        missing = slot_problems(workflow.name if workflow else "", wanted, self.image_slots.paths())
        for name in wanted:
            slot = self.image_slots.slot(name)
            if slot.is_busy():
                text = "Still checking this image…"
            elif name in missing:
                text = missing[name]
            else:
                continue
            slot.show_message(text)
            problems.append(f"{name}: {text}")
        return problems

    def _parts_for(self, model: str) -> tuple[str, str]:
        if self.model_combo.group_of(model) != "UNET":
            return "", ""
        choice = self.unet_parts.choice_for(model)
        return choice.text_encoder, choice.vae

    def _show_errors(self, errors: Mapping[str, str]) -> None:
        """Show each message under its field and focus the first field (in form order) that has one."""
        for name, text in errors.items():
            self._show_error(name, text)
        shown = {_FIELD_ALIASES.get(name, name) for name in errors}
        first = next((name for name in self._fields if name in shown), None)
        if first is not None:
            self._fields[first][0].setFocus(Qt.FocusReason.OtherFocusReason)
            return
        for name in self.image_slots.visible_slots():
            if self.image_slots.slot(name).message():
                self.image_slots.slot(name).setFocus(Qt.FocusReason.OtherFocusReason)
                return

    def _show_error(self, name: str, text: str) -> None:
        name = _FIELD_ALIASES.get(name, name)
        if name in ("steps", "cfg", "denoise"):
            self.advanced.set_expanded(True)
        if name in self._fields:
            self._fields[name][1].show_message(text)
        else:
            self.general_message.show_message(text)

    def _clear_error(self, name: str) -> None:
        if name in self._fields:
            self._fields[name][1].clear_message()

    def _clear_all_errors(self) -> None:
        for _widget, label in self._fields.values():
            label.clear_message()
        self.general_message.clear_message()
        for name in self.image_slots.visible_slots():
            self.image_slots.slot(name).show_message("")

    def _on_generate_action_triggered(self) -> None:
        self.generate()

    def _on_workflow_combo_current_index_changed(self, _index: int) -> None:
        workflow = self._workflows.get(self.current_workflow())
        slots = list(workflow.image_slots) if workflow else []
        self.image_slots.set_slots(slots)
        self.image_slots.setVisible(bool(slots))
        self._clear_error("workflow")
        self.workflow_changed.emit(workflow.name if workflow else "")

    def _on_model_combo_model_changed(self, model: str) -> None:
        self.unet_parts.show_model(model if self.model_combo.current_group() == "UNET" else "")
        self._clear_error("model")

    def _on_prompt_edit_text_changed(self) -> None:
        self._clear_error("prompt")
        self._update_preview()

    def _on_batch_form_changed(self) -> None:
        self._update_preview()

    def _update_preview(self) -> None:
        """The live count of the jobs Generate would queue; too many, or a bad matrix, is told at once."""
        self._clear_error("jobs")
        try:
            plan = self.plan()
        except BatchTooLarge as exc:
            self.batch_row.show_preview("")
            self._show_error("jobs", str(exc))
            return
        except BatchSyntaxError as exc:
            self.batch_row.show_preview(str(exc))
            return
        self.batch_row.show_preview(plan.summary())

    def _on_negative_edit_text_changed(self) -> None:
        self._clear_error("negative_prompt")

    def _on_seed_field_changed(self) -> None:
        self._clear_error("seed")
        self._update_preview()

    def _on_batch_spin_value_changed(self, _value: int) -> None:
        self._clear_error("batch_size")
