"""Process supervision (Qt-free): pid files, restart policy, supervised processes, the watchdog, ComfyUI launch."""
