"""Getting a finished job's images onto this machine, wherever its worker ran.

A file already in this home's `storage/outputs` with the recorded size and SHA-256 is used as it is. Otherwise it
is downloaded from the ComfyUI that made it (`/view`): the URL of that backend in this home's settings first, then
the URL the worker used (a loopback URL only when the worker ran on this machine). Every download is bounded (the
recorded size, connect and read timeouts, a floor on the rate), checked against the recorded size and hash, and
written atomically into `storage/outputs` under the job's own name, where retention and favourites treat it as any
other output.
Nothing here raises for what a server, a record or a disk does: the result is `Available` or `Unavailable`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import requests

from comfystudio_desktop.comfy.comfy_client import is_loopback_host
from comfystudio_desktop.file_replace import replace_file
from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import JobRecord, JobStatus
from comfystudio_desktop.outputs.host_identity import host_id
from comfystudio_desktop.outputs.location import BadLocation, OutputFile, OutputLocation, parse_location
from comfystudio_desktop.settings import Settings

__all__ = ["Available", "FetchResult", "OutputFetcher", "Unavailable", "unavailable_message"]

log = logging.getLogger(__name__)
_CHUNK = 256 * 1024
_MIN_RATE = 256 * 1024  # bytes/s: a download slower than this (after the first 30 s) is given up


@dataclass(frozen=True, slots=True)
class Available:
    """Every output of the job is in this home's storage, checked."""

    paths: tuple[Path, ...]


@dataclass(frozen=True, slots=True)
class Unavailable:
    """The outputs cannot be had now; `message` is for the user, `detail` says why (for the log)."""

    message: str
    detail: str = ""


FetchResult = Available | Unavailable


def unavailable_message(where: str) -> str:
    """What a window and `fetch` say while no source answers."""
    return f"image on {where or 'another machine'}, unavailable"


class _Refused(Exception):
    """One source could not give one file (unreachable, an HTTP error, the wrong bytes)."""


class OutputFetcher:
    """Makes a finished job's outputs available in `home`; safe to call from any thread."""

    def __init__(self, home: Home, settings: Settings, *, connect_timeout_s: float = 2.0,
                 read_timeout_s: float = 10.0) -> None:
        self.home = home
        self.settings = settings
        self._timeouts = (connect_timeout_s, read_timeout_s)

    def fetch(self, record: JobRecord) -> FetchResult:
        """The local paths of `record`'s outputs, fetched and checked if needed."""
        if record.status is not JobStatus.FINISHED or not record.outputs:
            return Unavailable(f"job {record.job_id} has no finished outputs", "not finished")
        where = record.backend or "another machine"
        if not record.output_location:  # written before locations were recorded, or by another tool
            return self._local_only(record, unavailable_message(where))
        location = parse_location(record.output_location)
        if isinstance(location, BadLocation):
            log.warning("Job %r: output location unreadable (%s)", record.job_id, location.reason)
            return self._local_only(record, unavailable_message(where))
        paths: list[Path] = []
        for file in location.files:
            outcome = self._one(record.job_id, location, file)
            if isinstance(outcome, Unavailable):
                return outcome
            paths.append(outcome)
        return Available(tuple(paths))

    def _local_only(self, record: JobRecord, message: str) -> FetchResult:
        try:
            paths = tuple(self.home.resolve_inside_storage(f"outputs/{name}") for name in record.outputs)
        except ValueError:
            return Unavailable(message, "an output name points outside storage")
        if all(path.is_file() for path in paths):
            return Available(paths)
        return Unavailable(message, "not on this machine, and the record does not say where it is")

    def _one(self, job_id: str, location: OutputLocation, file: OutputFile) -> Path | Unavailable:
        target = self.home.resolve_inside_storage(f"outputs/{file.name}")
        if _matches(target, file):
            return target
        reasons: list[str] = []
        for url in self._comfy_urls(location) if file.filename else []:
            try:
                data = self._download(url, file)
            except _Refused as exc:
                reasons.append(f"{url}: {exc}")
                continue
            try:
                _write(target, data)
            except OSError as exc:
                return Unavailable(f"image from {location.where} not saved: {exc.strerror or exc}", str(exc))
            log.info("Job %r: output %r fetched from %s", job_id, file.name, location.where)
            return target
        detail = "; ".join(reasons) or "no source to fetch it from"
        log.info("Job %r: output %r unavailable (%s)", job_id, file.name, detail)
        return Unavailable(unavailable_message(location.where), detail)

    def _comfy_urls(self, location: OutputLocation) -> list[str]:
        """This home's URL for the backend first; the worker's own URL when it can mean the same server here."""
        urls = [b.comfy_url for b in self.settings.backends if b.name == location.backend]
        host = urlparse(location.comfy_url).hostname or ""
        if location.comfy_url and (not is_loopback_host(host) or location.host_id == host_id(self.home.root)):
            urls.append(location.comfy_url)
        return list(dict.fromkeys(url.rstrip("/") for url in urls))

    def _download(self, base_url: str, file: OutputFile) -> bytes:
        """`/view` of `file`, at most its recorded size, with its recorded hash."""
        params = {"filename": file.filename, "subfolder": file.subfolder, "type": file.type}
        host = urlparse(base_url).hostname or ""
        try:
            with requests.Session() as session:
                session.trust_env = not is_loopback_host(host)  # a user's proxy must not stand before this machine
                with session.get(f"{base_url}/view", params=params, timeout=self._timeouts, stream=True,
                                 allow_redirects=False) as reply:
                    if reply.status_code != 200:
                        raise _Refused(f"HTTP {reply.status_code}")
                    data = bytearray()
                    give_up_at = time.monotonic() + 30.0 + file.size / _MIN_RATE
                    for chunk in reply.iter_content(_CHUNK):
                        data += chunk
                        if len(data) > file.size:
                            raise _Refused(f"more than the recorded {file.size} bytes")
                        if time.monotonic() > give_up_at:
                            raise _Refused("too slow")
        except requests.RequestException as exc:
            raise _Refused(type(exc).__name__) from None
        if len(data) != file.size:
            raise _Refused(f"{len(data)} bytes, {file.size} recorded")
        if hashlib.sha256(data).hexdigest() != file.sha256:
            raise _Refused("the SHA-256 differs from the recorded one")
        return bytes(data)


def _matches(path: Path, file: OutputFile) -> bool:
    """Whether `path` is a regular file with the recorded size and hash."""
    try:
        if not path.is_file() or path.stat().st_size != file.size:
            return False
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return False
    return digest.hexdigest() == file.sha256


def _write(target: Path, data: bytes) -> None:
    """Write atomically: a reader sees the old file or the whole new one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.fetch.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        replace_file(tmp, target)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
