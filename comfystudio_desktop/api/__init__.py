"""The local HTTP API: the seed system's REST endpoints, plus job listing, retry, uploads and push events.

Qt-free and at the top of the layers, beside `cli`: the window (on its qasync loop) and
`comfystudio-desktop serve` (headless) both run `ApiServer` from `server.py`.
"""
