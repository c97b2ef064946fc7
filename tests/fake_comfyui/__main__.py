"""`python -m tests.fake_comfyui --listen 127.0.0.1 --port N ...`: run the fake ComfyUI until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from aiohttp import web
from PIL import Image

from tests.fake_comfyui.control import FAULT_MODES, Faults
from tests.fake_comfyui.folders import Folders
from tests.fake_comfyui.process import EXIT_PORT_TAKEN, PORT_TAKEN_ERRNOS
from tests.fake_comfyui.server import FakeComfyUI

log = logging.getLogger("fake_comfyui")


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """ComfyUI-like options; unknown ComfyUI options (`--cpu`, `--preview-method x`, ...) are accepted and ignored."""
    parser = argparse.ArgumentParser(prog="python -m tests.fake_comfyui", description=__doc__)
    parser.add_argument("--listen", nargs="?", const="0.0.0.0", default="127.0.0.1",
                        help="address to bind; only loopback addresses are allowed")
    parser.add_argument("--port", type=int, default=8188, help="port (0 picks a free one)")
    parser.add_argument("--step-time", type=float, default=0.05, help="seconds per sampler step")
    parser.add_argument("--model-step-times", type=step_times, default={},
                        help='JSON {"model name part": seconds per step}: models of different speeds')
    parser.add_argument("--load-time", type=float, default=0.0, help="seconds a model loader node takes")
    parser.add_argument("--slow-seconds", type=float, default=2.0, help="reply delay in the 'slow' fault mode")
    parser.add_argument("--models-dir", type=Path, help="scan models from here instead of the built-in catalogue")
    parser.add_argument("--model-list", type=model_list,
                        help='JSON {"folder": ["name", ...]} listed instead of the built-in catalogue (no files)')
    parser.add_argument("--output-dir", type=Path)
    parser.add_argument("--input-dir", type=Path)
    parser.add_argument("--temp-dir", type=Path)
    parser.add_argument("--fault", choices=FAULT_MODES, default="none", help="fault mode at start")
    parser.add_argument("--verbose", action="store_true", help="log requests and executor events")
    return parser.parse_known_args(argv)


def model_list(text: str) -> dict[str, list[str]]:
    """`--model-list`: a JSON object of model folder -> names; ArgumentTypeError for anything else."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict) or not all(
            isinstance(folder, str) and isinstance(names, list) and all(isinstance(n, str) and n for n in names)
            for folder, names in data.items()):
        raise argparse.ArgumentTypeError('expected {"folder": ["name", ...]}')
    return {folder: list(names) for folder, names in data.items()}


def step_times(text: str) -> dict[str, float]:
    """`--model-step-times`: a JSON object of model name part -> seconds per step."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict) or not all(
            isinstance(name, str) and isinstance(seconds, int | float) and not isinstance(seconds, bool)
            and seconds >= 0 for name, seconds in data.items()):
        raise argparse.ArgumentTypeError('expected {"model name part": seconds, ...}')
    return {name: float(seconds) for name, seconds in data.items()}


def is_loopback(host: str) -> bool:
    """Whether `host` is localhost or a loopback IP (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _folders(args: argparse.Namespace, owned: list[Path]) -> Folders:
    def pick(given: Path | None, name: str) -> Path:
        if given is not None:
            given.mkdir(parents=True, exist_ok=True)
            return given.resolve()
        made = Path(tempfile.mkdtemp(prefix=f"fake-comfyui-{name}-"))
        owned.append(made)
        if name == "input":  # ComfyUI ships input/example.png
            Image.new("RGB", (64, 64), (200, 120, 40)).save(made / "example.png")
        return made.resolve()

    folders = Folders(input_dir=pick(args.input_dir, "input"), output_dir=pick(args.output_dir, "output"),
                      temp_dir=pick(args.temp_dir, "temp"),
                      models_dir=args.models_dir.resolve() if args.models_dir else None)
    if args.model_list is not None:
        folders.use_model_list(args.model_list)
    return folders


async def serve(args: argparse.Namespace, folders: Folders, argv: list[str]) -> None:
    """Start the server, print ComfyUI's ready line, and run until a stop signal."""
    faults = Faults(mode=args.fault, step_time=args.step_time, load_time=args.load_time,
                    slow_seconds=args.slow_seconds, model_step_times=args.model_step_times)
    fake = FakeComfyUI(folders, faults, argv)
    runner = web.AppRunner(fake.make_app(), shutdown_timeout=1.0,
                           access_log=logging.getLogger("aiohttp.access") if args.verbose else None)
    await runner.setup()
    site = web.TCPSite(runner, args.listen, args.port)
    await site.start()
    worker = asyncio.create_task(fake.executor.run_forever())
    stop = fake.quit
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    port = runner.addresses[0][1]
    host = f"[{args.listen}]" if ":" in args.listen else args.listen
    print("Starting server\n", flush=True)
    print(f"To see the GUI go to: http://{host}:{port}", flush=True)
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({worker, stopper}, return_when=asyncio.FIRST_COMPLETED)
    faults.set_mode("none")  # let anything held by a 'hang' finish
    for task in (worker, stopper):
        task.cancel()
    await fake.hub.close_all()
    await runner.cleanup()
    if worker in done and worker.exception() is not None:
        raise RuntimeError("the executor stopped") from worker.exception()


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args, ignored = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s fake_comfyui %(levelname)s %(message)s")
    if not is_loopback(args.listen):
        print(f"refusing to listen on {args.listen!r}: the fake ComfyUI only binds loopback addresses",
              file=sys.stderr)
        return 2
    if ignored:
        log.info("ignoring ComfyUI options: %s", " ".join(ignored))
    owned: list[Path] = []
    folders = _folders(args, owned)
    try:
        asyncio.run(serve(args, folders, ["main.py", *(sys.argv[1:] if argv is None else argv)]))
    except OSError as ex:
        taken = ex.errno in PORT_TAKEN_ERRNOS
        print(f"fake ComfyUI could not start: {ex}", file=sys.stderr)
        return EXIT_PORT_TAKEN if taken else 1
    finally:
        for path in owned:
            shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
