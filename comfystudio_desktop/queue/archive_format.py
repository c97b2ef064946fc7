"""The portable queue archive (a zip) and its strict reader.

Members: `manifest.json` ({"format", "version", "created_at", "jobs"}), `jobs.jsonl` (one job a line, see
`ArchivedJob`), `inputs/{job_id}_{slot}.{ext}` (input images) and, optionally, `outputs/{file}` (output images).

An archive comes from outside: `read_archive` checks everything before anything is written. Member names must
have one of those exact forms (no folders, `..`, absolute paths or backslashes), no symlinks or encrypted
members, bounded count, sizes and compression ratio (zip bombs); every job goes through `Job.from_dict` and every
image through the core image check. Any failure is one `ArchiveError` naming the member.
"""

from __future__ import annotations

import re
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from comfystudio_desktop.images import ImageValidationError, validate_image_bytes
from comfystudio_desktop.jobs import IMAGE_SLOTS, Job, JobStatus, JobValidationError, parse_json

__all__ = [
    "FORMAT",
    "JOBS",
    "MANIFEST",
    "VERSION",
    "ArchiveError",
    "ArchiveLimits",
    "ArchivedJob",
    "archive_size_ok",
    "input_member",
    "read_archive",
    "read_member",
]

FORMAT = "comfystudio-queue-archive"
VERSION = 1
MANIFEST = "manifest.json"
JOBS = "jobs.jsonl"
_ID = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
_INPUT_RE = re.compile(rf"inputs/({_ID})_({'|'.join(IMAGE_SLOTS)})\.(png|jpg|webp|bmp)")
_OUTPUT_RE = re.compile(rf"outputs/({_ID})\.(png|jpg|jpeg|webp)")  # {job_id}.png, {job_id}_2.png
_JOB_KEYS = frozenset({"job", "status", "ended_ms", "seed_used", "error", "image_url", "outputs", "inputs"})
_MANIFEST_KEYS = frozenset({"format", "version", "created_at", "jobs"})
_MAX_TEXT = 20_000


class ArchiveError(ValueError):
    """The archive cannot be imported; the message names the member at fault."""


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """Bounds that keep a hostile archive from filling memory or disk."""

    max_archive_bytes: int = 8 * 2**30
    max_members: int = 100_000
    max_total_bytes: int = 8 * 2**30  # uncompressed
    max_jobs_bytes: int = 256 * 2**20
    max_image_bytes: int = 50 * 2**20
    max_image_pixels: int = 64_000_000
    max_ratio: int = 100  # uncompressed / compressed, for members over 1 MiB


@dataclass(frozen=True, slots=True)
class ArchivedJob:
    """One job of an archive: what was asked, how it stood, and which members hold its images."""

    job: Job
    status: JobStatus
    ended_ms: int | None = None
    seed_used: int | None = None
    error: str = ""
    image_url: str = ""
    outputs: tuple[str, ...] = ()  # file names; member `outputs/{name}` when the archive carries them
    inputs: dict[str, str] = field(default_factory=dict)  # slot → member name

    def to_line(self) -> dict[str, object]:
        """The `jobs.jsonl` form."""
        return {"job": self.job.to_dict(), "status": self.status.value, "ended_ms": self.ended_ms,
                "seed_used": self.seed_used, "error": self.error, "image_url": self.image_url,
                "outputs": list(self.outputs), "inputs": dict(self.inputs)}


def input_member(job_id: str, slot: str, extension: str) -> str:
    """The member name of a job's input image (`extension` with its dot, as `ImageInfo.extension`)."""
    return f"inputs/{job_id}_{slot}{extension}"


def read_archive(zf: zipfile.ZipFile, limits: ArchiveLimits) -> tuple[list[ArchivedJob], dict[str, zipfile.ZipInfo]]:
    """Check the whole archive; return its jobs and its image members by name. Raises only `ArchiveError`."""
    members = _check_members(zf, limits)
    for name in (MANIFEST, JOBS):
        if name not in members:
            raise ArchiveError(f"member {name!r} is missing: not a queue archive")
    expected = _manifest(read_member(zf, members[MANIFEST], 64 * 1024))
    jobs = _jobs(read_member(zf, members[JOBS], limits.max_jobs_bytes), members)
    if len(jobs) != expected:
        raise ArchiveError(f"member {JOBS!r}: {len(jobs)} jobs, the manifest says {expected}")
    used = {MANIFEST, JOBS} | {m for j in jobs for m in j.inputs.values()} | {f"outputs/{o}" for j in jobs
                                                                              for o in j.outputs}
    stray = sorted(set(members) - used)
    if stray:
        raise ArchiveError(f"member {stray[0]!r}: no job refers to it")
    images = {name: info for name, info in members.items() if name not in (MANIFEST, JOBS)}
    for name, info in images.items():
        try:
            validate_image_bytes(read_member(zf, info, limits.max_image_bytes), name=name,
                                 max_bytes=limits.max_image_bytes, max_pixels=limits.max_image_pixels)
        except ImageValidationError as exc:
            raise ArchiveError(f"member {name!r}: {exc}") from exc
    return jobs, images


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """A member's bytes (never more than its checked size); a CRC or decompression failure is an ArchiveError."""
    if info.file_size > limit:
        raise ArchiveError(f"member {info.filename!r}: {info.file_size} bytes, more than {limit}")
    try:
        with zf.open(info) as fh:
            data = fh.read(limit + 1)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError) as exc:
        raise ArchiveError(f"member {info.filename!r} cannot be read: {exc}") from exc
    if len(data) > limit:
        raise ArchiveError(f"member {info.filename!r}: more than {limit} bytes")
    return data


def _check_members(zf: zipfile.ZipFile, limits: ArchiveLimits) -> dict[str, zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise ArchiveError(f"{len(infos)} members, more than {limits.max_members}")
    members: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        # The name as the archive holds it: on Windows zipfile turns each backslash into '/' in `filename`, so a
        # member named with a backslash would pass there as an input image while Linux refuses it.
        name = info.orig_filename
        shown = repr(name[:100])
        if name in members:
            raise ArchiveError(f"member {shown} appears twice")
        if not (name in (MANIFEST, JOBS) or _INPUT_RE.fullmatch(name) or _OUTPUT_RE.fullmatch(name)):
            raise ArchiveError(f"member {shown}: not a name a queue archive holds")
        if stat.S_ISLNK(info.external_attr >> 16) or info.is_dir():
            raise ArchiveError(f"member {shown}: a link or folder, not a file")
        if info.flag_bits & 0x1:
            raise ArchiveError(f"member {shown} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ArchiveError(f"member {shown}: unsupported compression")
        total += info.file_size
        if total > limits.max_total_bytes:
            raise ArchiveError(f"member {shown}: the archive unpacks to more than {limits.max_total_bytes} bytes")
        if info.file_size > 2**20 and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise ArchiveError(f"member {shown}: compressed more than {limits.max_ratio}:1 (a zip bomb?)")
        members[name] = info
    return members


def _manifest(data: bytes) -> int:
    value = _json(data, MANIFEST)
    if not isinstance(value, dict) or set(value) != _MANIFEST_KEYS:
        raise ArchiveError(f"member {MANIFEST!r}: expected exactly the keys {sorted(_MANIFEST_KEYS)}")
    if value["format"] != FORMAT:
        raise ArchiveError(f"member {MANIFEST!r}: not a queue archive (format {str(value['format'])[:40]!r})")
    if type(value["version"]) is not int or value["version"] != VERSION:
        raise ArchiveError(f"member {MANIFEST!r}: format version {str(value['version'])[:20]} is not supported "
                           f"(this version reads {VERSION})")
    count = value["jobs"]
    if type(count) is not int or count < 0 or not isinstance(value["created_at"], str):
        raise ArchiveError(f"member {MANIFEST!r}: bad jobs count or created_at")
    return count


def _jobs(data: bytes, members: dict[str, zipfile.ZipInfo]) -> list[ArchivedJob]:
    jobs: list[ArchivedJob] = []
    seen: set[str] = set()
    for number, line in _lines(data):
        where = f"member {JOBS!r} line {number}"
        try:
            job = _job(_json(line, where), members)
        except (JobValidationError, ArchiveError) as exc:
            raise ArchiveError(f"{where}: {exc}") from exc
        if job.job.job_id in seen:
            raise ArchiveError(f"{where}: job {job.job.job_id!r} appears twice")
        seen.add(job.job.job_id)
        jobs.append(job)
    return jobs


def _lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(data.split(b"\n"), 1):
        if line.strip():
            yield number, line


def _json(data: bytes, where: str) -> object:
    try:
        return parse_json(data)
    except JobValidationError as exc:
        raise ArchiveError(f"{where}: {exc.message}") from exc


def _job(value: object, members: dict[str, zipfile.ZipInfo]) -> ArchivedJob:
    if not isinstance(value, dict) or set(value) != _JOB_KEYS:
        raise ArchiveError(f"expected an object with exactly the keys {sorted(_JOB_KEYS)}")
    job = Job.from_dict(value["job"])
    status = value["status"]
    if not isinstance(status, str) or status not in {s.value for s in JobStatus}:
        raise ArchiveError("status: not a job status")
    ended, seed = value["ended_ms"], value["seed_used"]
    if ended is not None and (type(ended) is not int or not 0 <= ended < 10**15):
        raise ArchiveError("ended_ms: not a time in ms")
    if seed is not None and (type(seed) is not int or not 0 <= seed < 2**64):
        raise ArchiveError("seed_used: not a seed")
    for key in ("error", "image_url"):
        if not isinstance(value[key], str) or len(value[key]) > _MAX_TEXT or "\x00" in value[key]:
            raise ArchiveError(f"{key}: not text")
    outputs = _outputs(value["outputs"], job)
    inputs = _inputs(value["inputs"], job, members)
    if not JobStatus(status).is_terminal and set(inputs) != set(job.images):
        raise ArchiveError("an unfinished job must carry all its input images")
    return ArchivedJob(job=job, status=JobStatus(status), ended_ms=ended, seed_used=seed, error=value["error"],
                       image_url=value["image_url"], outputs=tuple(outputs), inputs=dict(inputs))


def _outputs(outputs: object, job: Job) -> list[str]:
    if not isinstance(outputs, list) or len(outputs) > 64:
        raise ArchiveError("outputs: not a list of file names")
    for name in outputs:
        match = _OUTPUT_RE.fullmatch(f"outputs/{name}") if isinstance(name, str) else None
        if match is None or not (match[1] == job.job_id or match[1].rpartition("_")[0] == job.job_id):
            raise ArchiveError(f"outputs: {str(name)[:80]!r} is not an output name of this job")
    return outputs


def _inputs(inputs: object, job: Job, members: dict[str, zipfile.ZipInfo]) -> dict[str, str]:
    if not isinstance(inputs, dict):
        raise ArchiveError("inputs: not an object of slot: member")
    for slot, member in inputs.items():
        match = _INPUT_RE.fullmatch(member) if isinstance(member, str) else None
        if match is None or match[1] != job.job_id or match[2] != slot or slot not in job.images:
            raise ArchiveError(f"inputs: {str(member)[:80]!r} is not the {str(slot)[:20]!r} image of this job")
        if member not in members:
            raise ArchiveError(f"inputs: member {member!r} is missing")
    return inputs


def archive_size_ok(path: Path, limits: ArchiveLimits) -> None:
    """Refuse a file that is not a regular file or is bigger than the limit, before opening it as a zip."""
    try:
        info = path.stat()
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise ArchiveError(f"{path.name!r} cannot be read: {getattr(exc, 'strerror', None) or exc}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise ArchiveError(f"{path.name!r} is not a regular file")
    if info.st_size > limits.max_archive_bytes:
        raise ArchiveError(f"{path.name!r}: {info.st_size} bytes, more than {limits.max_archive_bytes}")
