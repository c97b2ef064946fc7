"""The job worker: claims jobs from the queue and runs them on ComfyUI (Qt-free)."""
