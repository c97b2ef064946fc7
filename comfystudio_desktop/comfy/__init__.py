"""ComfyUI HTTP + WebSocket client, model catalogue and workflow templates (Qt-free).

- `comfy_client`: `ComfyClient`, the REST calls (submit, history, upload, view, interrupt, ...).
- `comfy_errors`: `ComfyError` and its subclasses, built once from the HTTP reply.
- `comfy_events` / `comfy_stream`: one immutable `ComfyEvent` per WebSocket frame; `ComfyEventStream` reads them.
- `job_tracker` / `progress_mapping`: when a prompt has ended, with which outputs, and its 30-95 % progress.
- `model_catalogue`: the models a user can pick, by group.
- `workflow_templates` / `workflow_fill` / `sizes`: templates, filling one for a job, sizes per aspect ratio.
"""
