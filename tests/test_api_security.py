"""The API's locks: bearer token, CORS, loopback-only binding, outputs confined to their folder, size limits."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from comfystudio_desktop.api.api_token import load_or_create_token, token_path
from comfystudio_desktop.api.output_files import read_output
from comfystudio_desktop.api.request_body import MAX_JSON_BYTES
from comfystudio_desktop.api.server import BindRefused, check_bind
from comfystudio_desktop.home import Home
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.settings import Settings, SettingsError
from tests.api_support import ApiHarness, files_in, png_bytes
from tests.conftest import REPO_ROOT

ORIGIN = "http://localhost:3000"


@pytest.fixture
def api(home: Home, queue: JobQueue) -> Iterator[ApiHarness]:
    settings = Settings(comfy_url="http://127.0.0.1:9", api_allowed_origins=(ORIGIN,), max_upload_mb=1)
    with ApiHarness(home, settings, queue) as harness:
        yield harness


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/api/generate"), ("GET", "/api/status/abc"), ("POST", "/api/cancel/abc"), ("GET", "/api/models"),
    ("GET", "/api/jobs"), ("POST", "/api/retry/abc"), ("GET", "/outputs/abc.png"), ("GET", "/api/events"),
    ("GET", "/api/ws"), ("GET", "/api/openapi.json"), ("GET", "/no/such/route"),
])
def test_every_route_needs_the_token(api: ApiHarness, method: str, path: str) -> None:
    missing = api.request(method, path, token=False, json={"prompt": "a cat"})
    wrong = api.request(method, path, token=False, json={"prompt": "a cat"},
                        headers={"Authorization": "Bearer " + "x" * 43})
    for answer in (missing, wrong):
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert "error" in answer.json()
    assert api.get("/api/jobs").json()["jobs"] == [], "a refused generate queued nothing"


def test_a_token_that_differs_in_its_last_character_is_refused(api: ApiHarness) -> None:
    token = api.token
    near = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert api.get("/api/jobs", token=False, headers={"Authorization": f"Bearer {near}"}).status_code == 401
    assert api.get("/api/jobs", token=False, headers={"Authorization": token}).status_code == 401  # no scheme
    assert api.get("/api/jobs").status_code == 200


def test_query_token_only_where_a_browser_cannot_send_a_header(api: ApiHarness) -> None:
    assert api.get(f"/api/jobs?token={api.token}", token=False).status_code == 401
    assert api.post(f"/api/generate?token={api.token}", token=False, json={"prompt": "x"}).status_code == 401
    assert api.get(f"/outputs/nothing.png?token={api.token}", token=False).status_code == 404  # past the lock
    assert api.get("/outputs/nothing.png?token=wrong", token=False).status_code == 401


def test_token_file_is_private_and_stable(home: Home) -> None:
    first = load_or_create_token(home)
    assert load_or_create_token(home) == first
    if os.name == "posix":
        assert stat.S_IMODE(token_path(home).stat().st_mode) == 0o600
    token_path(home).write_text("not a token\n", encoding="ascii")
    assert load_or_create_token(home) != first  # a damaged file is replaced, never accepted


def test_token_never_reaches_the_log(api: ApiHarness, home: Home) -> None:
    api.get(f"/outputs/x.png?token={api.token}", token=False)
    api.get("/api/jobs")
    logs = "".join(p.read_text(encoding="utf-8", errors="replace") for p in home.logs.glob("*.log"))
    assert api.token not in logs


def test_unknown_origin_is_refused_and_listed_one_allowed(api: ApiHarness) -> None:
    refused = api.get("/api/jobs", headers={"Origin": "http://evil.example"})
    assert refused.status_code == 403
    assert "origin" in refused.json()["error"]
    assert "Access-Control-Allow-Origin" not in refused.headers
    allowed = api.get("/api/jobs", headers={"Origin": ORIGIN})
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    preflight = api.request("OPTIONS", "/api/generate", token=False,
                            headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert api.request("OPTIONS", "/api/generate", token=False,
                       headers={"Origin": "http://evil.example"}).status_code == 403


def test_cors_is_closed_by_default() -> None:
    assert Settings().api_allowed_origins == ()
    with pytest.raises(SettingsError, match="api_allowed_origins"):
        Settings(api_allowed_origins=("http://x.example/path",)).validate()


@pytest.mark.parametrize("path", [
    "/outputs/..%2f..%2fetc%2fpasswd.png", "/outputs/..%2Fsecret.png", "/outputs/%2e%2e.png", "/outputs/.png",
    "/outputs/a%00b.png", "/outputs/abc.txt", "/outputs/..\\..\\x.png", "/outputs/abc.PNG", "/outputs/abc.png%20",
    "/outputs/../api_token", "/outputs/%2fetc%2fpasswd",
])
def test_outputs_refuse_traversal(api: ApiHarness, home: Home, path: str) -> None:
    (home.storage / "secret.png").write_bytes(b"secret")
    answer = api.get(path)
    assert 400 <= answer.status_code < 500
    assert b"secret" not in answer.content
    assert "error" in answer.json()


def test_outputs_refuse_a_symlink_pointing_out(api: ApiHarness, home: Home, tmp_path: Path) -> None:
    outside = tmp_path / "outside.png"
    outside.write_bytes(png_bytes())
    link = home.outputs / "abc.png"
    try:
        link.symlink_to(outside)
    except OSError as exc:  # Windows without the symlink privilege: the refusal is then moot
        pytest.fail(f"cannot create a symlink here: {exc}")
    answer = api.get("/outputs/abc.png")
    assert answer.status_code == 404
    with pytest.raises(Exception, match="no such output"):
        read_output(home.outputs, "abc.png")


def test_outputs_serve_a_real_output(api: ApiHarness, home: Home) -> None:
    (home.outputs / "job-1.png").write_bytes(png_bytes())
    (home.outputs / "job-1_2.png").write_bytes(png_bytes(colour="blue"))
    answer = api.get("/outputs/job-1.png")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "image/png"
    assert answer.content == (home.outputs / "job-1.png").read_bytes()
    assert api.get("/outputs/job-1_2.png").content == (home.outputs / "job-1_2.png").read_bytes()


def test_oversize_json_is_refused_before_reading(api: ApiHarness) -> None:
    body = json.dumps({"prompt": "x" * (MAX_JSON_BYTES + 10)})
    answer = api.post("/api/generate", data=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    assert "error" in answer.json()
    assert api.get("/api/jobs").json()["jobs"] == []


def test_oversize_image_is_refused_and_nothing_stored(api: ApiHarness, home: Home) -> None:
    before = files_in(home.inputs)
    big = b"\x89PNG\r\n\x1a\n" + os.urandom(1024 * 1024 + 100)  # over max_upload_mb = 1
    answer = api.post("/api/generate", files={
        "job": (None, json.dumps({"prompt": "a", "workflow": "image_to_image"}), "application/json"),
        "input": ("big.png", big, "image/png")})
    assert answer.status_code == 413
    assert answer.json()["field"] == "input"
    assert files_in(home.inputs) == before
    assert api.get("/api/jobs").json()["jobs"] == []


def test_body_over_the_server_limit_is_refused(api: ApiHarness, home: Home) -> None:
    huge = os.urandom(4 * 1024 * 1024)  # over client_max_size for three 1 MB images
    answer = api.post("/api/generate", data=huge, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    assert files_in(home.inputs) == set()


def test_loopback_only_unless_confirmed() -> None:
    check_bind("127.0.0.1", False)
    check_bind("::1", False)
    check_bind("localhost", False)
    for host in ("0.0.0.0", "192.168.1.5", "::", "example.com"):
        with pytest.raises(BindRefused):
            check_bind(host, False)
        check_bind(host, True)
    with pytest.raises(SettingsError, match="api_expose_confirmed"):
        Settings(api_host="0.0.0.0").validate()
    Settings(api_host="0.0.0.0", api_expose_confirmed=True).validate()


def test_serve_on_all_interfaces_needs_the_confirmation_flag(home: Home) -> None:
    result = subprocess.run([sys.executable, "-m", "comfystudio_desktop", "--home", str(home.root), "serve",
                             "--host", "0.0.0.0", "--port", "0"], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 2
    assert "--i-understand-this-exposes-the-api" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    bad = subprocess.run([sys.executable, "-m", "comfystudio_desktop", "--home", str(home.root), "serve",
                          "--host", "http://x/"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
                         check=False)
    assert bad.returncode == 2
