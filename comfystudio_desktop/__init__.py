"""ComfyStudio Desktop: a desktop front end for a local ComfyUI with a crash-safe embedded Redis queue."""

__version__ = "0.1.0"
