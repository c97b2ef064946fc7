"""Where a finished job's images live, and getting them onto this machine (Qt-free)."""
