"""A protocol-faithful fake ComfyUI (0.3.64 HTTP + WebSocket API) for the test-suite.

Run it with `python -m tests.fake_comfyui --listen 127.0.0.1 --port N`, or from a test with
`FakeComfyProcess` (see `process.py`), which starts it as a child process and always reaps it.
"""

from __future__ import annotations

from tests.fake_comfyui.process import FakeComfyProcess, free_port

__all__ = ["FakeComfyProcess", "free_port"]
