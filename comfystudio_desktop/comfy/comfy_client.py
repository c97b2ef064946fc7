"""Blocking HTTP client for ComfyUI's REST API (`requests`); the WebSocket side lives in `comfy_stream.py`.

Every call has a timeout and raises only `ComfyError` subclasses, so callers never see `requests` exceptions.
"""

from __future__ import annotations

import ipaddress
import logging
import mimetypes
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlparse

import requests

from comfystudio_desktop.comfy.comfy_errors import ComfyError, ComfyHTTPError, ComfyUnavailable, error_from_reply
from comfystudio_desktop.settings import Settings

__all__ = ["ComfyClient", "QueueItem", "QueueState", "SubmitResult", "is_loopback_host"]

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S = 5.0
_READ_TIMEOUT_S = 30.0
_TRANSFER_TIMEOUT_S = 120.0  # uploads and downloads of large images
_MAX_VIEW_BYTES = 512 * 1024 * 1024
_ERROR_BODY_CHARS = 4000


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """ComfyUI's answer to `POST /prompt`: our prompt id and its place in the global counter."""

    prompt_id: str
    number: int | None = None


@dataclass(frozen=True, slots=True)
class QueueItem:
    """One queued or running prompt, as `GET /queue` lists it."""

    number: int
    prompt_id: str
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class QueueState:
    """`GET /queue`: what runs and what waits, in ComfyUI's order."""

    running: tuple[QueueItem, ...] = ()
    pending: tuple[QueueItem, ...] = ()

    @property
    def running_ids(self) -> tuple[str, ...]:
        """Prompt ids being executed (0 or 1 on a stock ComfyUI)."""
        return tuple(item.prompt_id for item in self.running)

    @property
    def pending_ids(self) -> tuple[str, ...]:
        """Prompt ids waiting, in queue order."""
        return tuple(item.prompt_id for item in self.pending)

    def __contains__(self, prompt_id: object) -> bool:
        return prompt_id in self.running_ids or prompt_id in self.pending_ids


class ComfyClient:
    """One ComfyUI server, addressed by its base URL, with our own `client_id` for WebSocket routing.

    Safe to share between threads: each thread gets its own `requests.Session`.
    """

    def __init__(self, base_url: str, *, client_id: str | None = None, connect_timeout: float = _CONNECT_TIMEOUT_S,
                 read_timeout: float = _READ_TIMEOUT_S, transfer_timeout: float = _TRANSFER_TIMEOUT_S) -> None:
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"ComfyUI URL must be http(s)://host[:port], got {base_url!r}")
        self._base = base_url.rstrip("/")
        self._client_id = client_id or uuid.uuid4().hex
        self._timeout = (connect_timeout, read_timeout)
        self._transfer_timeout = (connect_timeout, transfer_timeout)
        # A desktop user's HTTP_PROXY must not capture calls to the ComfyUI on this machine.
        self._trust_env = not is_loopback_host(parsed.hostname)
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> ComfyClient:
        """A client for `settings.comfy_url`."""
        return cls(settings.comfy_url, **kwargs)

    @property
    def base_url(self) -> str:
        """The server's base URL, without a trailing slash."""
        return self._base

    @property
    def client_id(self) -> str:
        """Sent with every prompt so its WebSocket messages come to our socket."""
        return self._client_id

    def ws_url(self) -> str:
        """The WebSocket URL for our `client_id`."""
        scheme = "wss" if self._base.startswith("https:") else "ws"
        return f"{scheme}:{self._base.split(':', 1)[1]}/ws?{urlencode({'clientId': self._client_id})}"

    # ---- read-only calls -------------------------------------------------------------------------------------

    def system_stats(self) -> dict[str, Any]:
        """`GET /system_stats`: versions, RAM and devices."""
        return _object(self._json("GET", "/system_stats"), "/system_stats")

    def is_up(self, timeout: float = 2.0) -> bool:
        """True if ComfyUI answers `/system_stats` within `timeout`."""
        try:
            self._request("GET", "/system_stats", timeout=(timeout, timeout))
        except ComfyError:
            return False
        return True

    def object_info(self, node_class: str | None = None) -> dict[str, Any]:
        """Node definitions by class name: all of them (~0.5 MB), or one class (`{}` if ComfyUI lacks it)."""
        path = "/object_info" if node_class is None else f"/object_info/{quote(node_class, safe='')}"
        return _object(self._json("GET", path), path)

    def models(self, folder: str) -> list[str]:
        """Model file names in one folder (`checkpoints`, `diffusion_models`, ...); an unknown folder gives `[]`."""
        if not folder or "/" in folder or "\\" in folder:
            raise ValueError(f"invalid model folder {folder!r}")
        path = f"/models/{quote(folder, safe='')}"
        try:
            data = self._json("GET", path)
        except ComfyHTTPError as exc:
            if exc.status == 404:  # legacy aliases such as `unet` are not listed by the API
                return []
            raise
        return [name for name in _list(data, path) if isinstance(name, str)]

    def features(self) -> dict[str, Any]:
        """`GET /features` (`supports_preview_metadata`, `max_upload_size`); `{}` on servers without it."""
        try:
            return _object(self._json("GET", "/features"), "/features")
        except ComfyHTTPError as exc:
            if exc.status == 404:
                return {}
            raise

    def queue(self) -> QueueState:
        """`GET /queue`: running and pending prompts."""
        data = _object(self._json("GET", "/queue"), "/queue")
        return QueueState(_queue_items(data.get("queue_running")), _queue_items(data.get("queue_pending")))

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The history entry of one prompt, or None while it has not finished (ComfyUI answers `{}`)."""
        _require_id(prompt_id)
        path = f"/history/{quote(prompt_id, safe='')}"
        data = _object(self._json("GET", path), path)
        entry = data.get(prompt_id)
        return entry if isinstance(entry, dict) else None

    def view(self, filename: str, subfolder: str = "", image_type: str = "output") -> bytes:
        """Download a file ComfyUI wrote (`type` is output, input or temp)."""
        if not filename:
            raise ValueError("view needs a filename")
        params = {"filename": filename, "subfolder": subfolder, "type": image_type}
        response = self._request("GET", "/view", params=params, timeout=self._transfer_timeout, stream=True)
        with response:
            chunks: list[bytes] = []
            size = 0
            try:
                for chunk in response.iter_content(chunk_size=256 * 1024):
                    size += len(chunk)
                    if size > _MAX_VIEW_BYTES:
                        too_big = f"ComfyUI file {filename!r} is larger than {_MAX_VIEW_BYTES} bytes"
                        raise ComfyHTTPError("GET", "/view", response.status_code, message=too_big)
                    chunks.append(chunk)
            except requests.RequestException as exc:
                raise ComfyUnavailable(self._base, f"download of {filename!r} failed: {exc}") from exc
        return b"".join(chunks)

    # ---- calls that change something --------------------------------------------------------------------------

    def upload_image(self, image: Path | str | bytes, name: str | None = None, *, overwrite: bool = False,
                     subfolder: str = "", image_type: str = "input") -> str:
        """Upload an image for LoadImage; return the name ComfyUI stored it under (`subfolder/name` if any).

        ComfyUI renames on a clash with different bytes (`x (1).png`), so always use the returned name.
        A path that cannot be read raises OSError.
        """
        if isinstance(image, bytes):
            if not name:
                raise ValueError("uploading bytes needs a name")
            content = image
        else:
            path = Path(image)
            content = path.read_bytes()
            name = name or path.name
        if not name or Path(name).name != name:
            raise ValueError(f"upload name must be a plain file name, got {name!r}")
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
        form = {"overwrite": "true" if overwrite else "false", "type": image_type}
        if subfolder:
            form["subfolder"] = subfolder
        response = self._request("POST", "/upload/image", files={"image": (name, content, mime)}, data=form,
                                 timeout=self._transfer_timeout)
        reply = _object(_decode(response, "/upload/image"), "/upload/image")
        stored, folder = str(reply.get("name") or ""), str(reply.get("subfolder") or "")
        if not stored:
            raise ComfyHTTPError("POST", "/upload/image", response.status_code, message="ComfyUI upload gave no name")
        result = f"{folder}/{stored}" if folder else stored
        log.info("Uploaded %s (%d bytes) to ComfyUI as %s", name, len(content), result)
        return result

    def submit(self, workflow: Mapping[str, Any], prompt_id: str, client_id: str | None = None) -> SubmitResult:
        """Queue an API-format workflow under our chosen `prompt_id` (the job id) and our `client_id`.

        Raises `ComfyValidationError` when ComfyUI rejects the workflow.
        """
        _require_id(prompt_id)
        if not isinstance(workflow, Mapping) or not workflow:
            raise ValueError("workflow must be a non-empty API-format graph")
        body = {"prompt": dict(workflow), "client_id": client_id or self._client_id, "prompt_id": prompt_id}
        reply = _object(self._json("POST", "/prompt", json_body=body), "/prompt")
        if reply.get("node_errors"):
            # Accepted, but some output nodes were dropped; worth a line in the log.
            log.warning("ComfyUI accepted prompt %s with node errors: %s", prompt_id, reply["node_errors"])
        number = reply.get("number")
        result = SubmitResult(str(reply.get("prompt_id") or prompt_id), number if isinstance(number, int) else None)
        log.info("Submitted prompt %s to ComfyUI (%d nodes, number %s)", prompt_id, len(workflow), result.number)
        return result

    def interrupt(self, prompt_id: str) -> None:
        """Stop `prompt_id` if it is the one running; ComfyUI ignores a non-matching id.

        There is deliberately no way to send an empty interrupt: that would stop whatever runs, even
        another client's job.
        """
        _require_id(prompt_id)
        self._request("POST", "/interrupt", json_body={"prompt_id": prompt_id})
        log.info("Asked ComfyUI to interrupt prompt %s", prompt_id)

    def delete_from_queue(self, prompt_ids: Iterable[str]) -> None:
        """Remove pending prompts (never the running one; use `interrupt`). No ids: nothing is sent."""
        ids = [prompt_id for prompt_id in prompt_ids]
        for prompt_id in ids:
            _require_id(prompt_id)
        if not ids:
            return
        self._request("POST", "/queue", json_body={"delete": ids})
        log.info("Deleted %d pending prompt(s) from the ComfyUI queue: %s", len(ids), ", ".join(ids))

    def close(self) -> None:
        """Close every thread's HTTP session."""
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def __enter__(self) -> ComfyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- plumbing ---------------------------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = self._trust_env
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _json(self, method: str, path: str, json_body: Any = None) -> Any:
        return _decode(self._request(method, path, json_body=json_body), path)

    def _request(self, method: str, path: str, *, params: Mapping[str, str] | None = None, json_body: Any = None,
                 files: Any = None, data: Any = None, timeout: tuple[float, float] | None = None,
                 stream: bool = False) -> requests.Response:
        if path == "/interrupt" and not (isinstance(json_body, dict) and json_body.get("prompt_id")):
            # A bodiless interrupt stops whatever runs; refuse it at the lowest level too.
            raise ValueError("refusing to send an interrupt without a prompt_id")
        try:
            response = self._session().request(method, self._base + path, params=params, json=json_body,
                                               files=files, data=data, timeout=timeout or self._timeout,
                                               stream=stream)
        except requests.Timeout as exc:
            raise ComfyUnavailable(self._base, f"{method} {path} timed out") from exc
        except requests.RequestException as exc:
            raise ComfyUnavailable(self._base, _reason(exc)) from exc
        if response.status_code >= 400:
            with response:
                text = response.text[:_ERROR_BODY_CHARS]  # ComfyUI's error bodies are small
            error = error_from_reply(method, path, response.status_code, text)
            log.debug("ComfyUI %s %s -> HTTP %d: %s", method, path, response.status_code, text[:500])
            raise error
        return response


def _decode(response: requests.Response, path: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise ComfyHTTPError(response.request.method or "?", path, response.status_code,
                             message=f"ComfyUI answered {path} with something that is not JSON") from exc


def _object(data: Any, path: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ComfyHTTPError("GET", path, 200, message=f"ComfyUI answered {path} with {type(data).__name__}, "
                                                       "expected an object")
    return data


def _list(data: Any, path: str) -> list[Any]:
    if not isinstance(data, list):
        raise ComfyHTTPError("GET", path, 200, message=f"ComfyUI answered {path} with {type(data).__name__}, "
                                                       "expected a list")
    return data


def _queue_items(raw: object) -> tuple[QueueItem, ...]:
    items: list[QueueItem] = []
    for entry in raw if isinstance(raw, list) else []:
        # [number, prompt_id, prompt, extra_data, outputs_to_execute]
        if isinstance(entry, list) and len(entry) >= 2 and isinstance(entry[1], str):
            extra = entry[3] if len(entry) > 3 and isinstance(entry[3], dict) else {}
            client_id = extra.get("client_id")
            number = entry[0] if isinstance(entry[0], int) else -1
            items.append(QueueItem(number, entry[1], client_id if isinstance(client_id, str) else None))
    return tuple(items)


def _require_id(prompt_id: object) -> None:
    if not isinstance(prompt_id, str) or not prompt_id.strip():
        raise ValueError(f"a prompt id is required, got {prompt_id!r}")


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and loopback addresses: this machine, which no proxy should stand in front of."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reason(exc: requests.RequestException) -> str:
    # requests nests the socket error a few levels deep; the innermost text is what a person can act on.
    inner: BaseException = exc
    for _ in range(8):
        if inner.__context__ is None:
            break
        inner = inner.__context__
    text = str(inner) or type(inner).__name__
    return "connection refused" if "Connection refused" in text or "10061" in text else text
