"""ComfyUI HTTP + WebSocket client, model catalogue and workflow templates (Qt-free)."""
