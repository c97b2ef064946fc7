"""Fetch the redis-server.exe the Windows build bundles: a pinned release of a Windows port, checked by SHA-256.

    python scripts/fetch-redis-windows.py [--dest resources/bin] [--cache build/redis-download] [--force]

Downloads Redis-x64-5.0.14.1.zip from the tporadowski/redis GitHub releases (once: it is kept in the cache
folder), refuses it unless its SHA-256 is the one pinned below, then copies redis-server.exe, its AOF checker
redis-check-aof.exe (the repair in Services runs it) and the DLLs beside them into resources/bin/ (git-ignored: the
binaries are never committed). An archive without a checker gets a copy of redis-server.exe under the checker's
name: Redis picks its mode from argv[0]. build.spec bundles what it finds there, and from a source checkout the
app finds it there too. Runs on any OS (the tests run it on Linux with a local file). docs/windows-build.md says
why this port is the one shipped.

Moving to another release: change REDIS_VERSION, REDIS_URL and REDIS_SHA256 together. Take the checksum from a
download you have verified (PowerShell `Get-FileHash -Algorithm SHA256 FILE`, or `sha256sum FILE`), or from an
independent source such as a package manager's manifest, never from the same server at build time. Try a new
release first with `--url URL --sha256 HEX`, which override the pinned pair for one run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

REDIS_VERSION = "5.0.14.1"
REDIS_URL = f"https://github.com/tporadowski/redis/releases/download/v{REDIS_VERSION}/Redis-x64-{REDIS_VERSION}.zip"
#: SHA-256 of Redis-x64-5.0.14.1.zip (12,617,669 bytes), cross-checked against Scoop's `redis5` manifest for
#: 5.0.14.1 and other projects that pin the same download.
REDIS_SHA256 = "018ea18a35876383cbb5f4cd0258adfc87747cf9d619bce1cf73a2e36f720ccf"

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DEST = ROOT / "resources" / "bin"
DEFAULT_CACHE = ROOT / "build" / "redis-download"
SERVER_NAME = "redis-server.exe"
CHECKER_NAME = "redis-check-aof.exe"
STAMP_NAME = "redis-server.source.json"
LICENSE_NAME = "REDIS-LICENSE.txt"
_CHUNK = 1 << 20
_ATTEMPTS = 3


class FetchError(RuntimeError):
    """The download or the archive is unusable; the message says why."""


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, target: Path, expected_sha256: str, *, timeout: float = 60.0) -> Path:
    """Download `url` to `target` (through a `.part` file) unless a verified copy is there; verify the hash."""
    if target.is_file() and sha256_of(target) == expected_sha256:
        print(f"using the cached {target.name}")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    last_error: Exception | None = None
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            print(f"downloading {url} (attempt {attempt})")
            request = urllib.request.Request(url, headers={"User-Agent": "comfystudio-build"})
            with urllib.request.urlopen(request, timeout=timeout) as response, open(part, "wb") as out:
                shutil.copyfileobj(response, out, _CHUNK)
            break
        except OSError as exc:  # URLError and socket errors are OSErrors
            last_error = exc
            part.unlink(missing_ok=True)
            if attempt < _ATTEMPTS:
                time.sleep(2.0 * attempt)  # back off before retrying a flaky network
    else:
        raise FetchError(f"download failed: {last_error}")
    actual = sha256_of(part)
    if actual != expected_sha256:
        part.unlink(missing_ok=True)
        raise FetchError(f"SHA-256 mismatch for {url}: got {actual}, expected {expected_sha256}; refusing it")
    part.replace(target)
    return target


def extract_server(archive: Path, dest: Path) -> list[Path]:
    """Copy redis-server.exe, redis-check-aof.exe, the DLLs in their folder and a licence file (if any) from the zip
    into `dest`; without a checker in the archive, the server is copied under the checker's name.

    Members are written under their base names only, so no path in the archive can escape `dest`.
    """
    with zipfile.ZipFile(archive) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        servers = [n for n in names if PurePosixPath(n).name.lower() == SERVER_NAME]
        if len(servers) != 1:
            raise FetchError(f"{archive.name}: expected one {SERVER_NAME}, found {len(servers)}")
        folder = PurePosixPath(servers[0]).parent
        wanted = {servers[0]: SERVER_NAME}
        for name in names:
            path = PurePosixPath(name)
            if path.parent == folder and path.suffix.lower() == ".dll":
                wanted[name] = path.name
            elif path.parent == folder and path.name.lower() == CHECKER_NAME:
                wanted[name] = CHECKER_NAME
            elif path.parent == folder and path.stem.lower() in ("license", "copying"):
                wanted[name] = LICENSE_NAME
        dest.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for member, out_name in sorted(wanted.items()):
            out_path = dest / out_name
            tmp = out_path.with_name(out_path.name + ".tmp")
            with zf.open(member) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
            tmp.replace(out_path)
            written.append(out_path)
    if CHECKER_NAME not in wanted.values():
        checker = dest / CHECKER_NAME
        shutil.copyfile(dest / SERVER_NAME, checker.with_name(CHECKER_NAME + ".tmp"))
        checker.with_name(CHECKER_NAME + ".tmp").replace(checker)
        written.append(checker)
    return written


def is_up_to_date(dest: Path, url: str, sha256: str) -> bool:
    """True if `dest` holds a server extracted from exactly this archive."""
    stamp = dest / STAMP_NAME
    if not (dest / SERVER_NAME).is_file() or not (dest / CHECKER_NAME).is_file() or not stamp.is_file():
        return False
    try:
        data = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(data.get("url") == url and data.get("sha256") == sha256)


def fetch(dest: Path, cache: Path, *, url: str = REDIS_URL, sha256: str = REDIS_SHA256, force: bool = False) -> int:
    """Make `dest` hold the pinned redis-server.exe; return an exit code."""
    sha256 = sha256.strip().lower()
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        print(f"error: --sha256 must be 64 hex digits, got {sha256!r}", file=sys.stderr)
        return 2
    if not force and is_up_to_date(dest, url, sha256):
        print(f"{dest / SERVER_NAME} is up to date ({url})")
        return 0
    try:
        archive = download(url, cache / PurePosixPath(url).name, sha256)
        written = extract_server(archive, dest)
    except (FetchError, OSError, zipfile.BadZipFile) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    (dest / STAMP_NAME).write_text(json.dumps({"url": url, "sha256": sha256, "version": REDIS_VERSION}, indent=2)
                                   + "\n", encoding="utf-8")
    print(f"verified SHA-256 {sha256}")
    for path in written:
        print(f"  {path} ({path.stat().st_size:,} bytes)")
    if not (dest / LICENSE_NAME).is_file():
        print(f"note: the archive has no licence file; add Redis's BSD-3-Clause text as {dest / LICENSE_NAME} "
              "before a public release (build.spec bundles it when present)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="where redis-server.exe goes")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the downloaded zip is kept")
    parser.add_argument("--url", default=REDIS_URL, help="another archive (give --sha256 with it)")
    parser.add_argument("--sha256", default=REDIS_SHA256, help="the archive's expected SHA-256")
    parser.add_argument("--force", action="store_true", help="extract again even if up to date")
    args = parser.parse_args(argv)
    if (args.url != REDIS_URL) != (args.sha256 != REDIS_SHA256):
        parser.error("--url and --sha256 go together")
    return fetch(args.dest, args.cache, url=args.url, sha256=args.sha256, force=args.force)


if __name__ == "__main__":
    sys.exit(main())
