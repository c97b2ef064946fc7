"""Process supervision: pid files, restart policy, supervised processes (Qt-free)."""
