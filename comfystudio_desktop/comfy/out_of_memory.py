"""Telling an out-of-memory failure from other ComfyUI errors (it is the machine's state, not the job's fault)."""

from __future__ import annotations

import re

__all__ = ["is_out_of_memory"]

# torch raises torch.OutOfMemoryError (torch.cuda.OutOfMemoryError before 2.5) with "CUDA out of memory. Tried to
# allocate ..." or "Allocation on device 0 would exceed allowed memory. (out of memory)"; Apple's MPS backend and
# DirectML raise RuntimeError with "MPS backend out of memory" / "could not allocate tensor".
_OOM = re.compile(r"OutOfMemoryError|\bout of memory\b|Allocation on device|could not allocate tensor", re.IGNORECASE)


def is_out_of_memory(exception_type: str, message: str) -> bool:
    """Whether ComfyUI's `execution_error` (its `exception_type` and message, or our one-line summary of both)
    reports that the GPU or the system ran out of memory."""
    return bool(_OOM.search(exception_type) or _OOM.search(message))
