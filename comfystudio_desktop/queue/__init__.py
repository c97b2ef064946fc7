"""Redis: the embedded server, the resilient connection and the crash-safe job queue (Qt-free)."""
