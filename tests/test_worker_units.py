"""Pure decisions of the worker: prompt ids for retried runs, backoff while ComfyUI is away, output names."""

from __future__ import annotations

import pytest

from comfystudio_desktop.worker.job_inputs import input_copy_name
from comfystudio_desktop.worker.job_outputs import output_names
from comfystudio_desktop.worker.run_decisions import COMFY_RETRY, next_prompt_id


@pytest.mark.parametrize(("previous", "expected"), [
    ("job-1", "job-1-r2"),
    ("job-1-r2", "job-1-r3"),
    ("job-1-r9", "job-1-r10"),
    ("job-1-rx", "job-1-r2"),
])
def test_next_prompt_id(previous: str, expected: str) -> None:
    assert next_prompt_id("job-1", previous) == expected


@pytest.mark.parametrize(("failures", "delay"), [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, 30.0), (50, 30.0)])
def test_comfy_backoff(failures: int, delay: float) -> None:
    assert COMFY_RETRY.delay(failures) == delay


def test_storage_names() -> None:
    assert output_names("abc", 1) == ["abc.png"]
    assert output_names("abc", 3) == ["abc.png", "abc_2.png", "abc_3.png"]
    assert input_copy_name("abc", "source") == "upload_abc_source.png"


def test_child_environment_drops_the_bundle_library_path() -> None:
    from comfystudio_desktop.supervise.child_env import child_environment

    frozen = {"PATH": "/bin", "LD_LIBRARY_PATH": "/app/_internal", "LD_LIBRARY_PATH_ORIG": "/usr/local/lib"}
    assert child_environment({"X": "1"}, base=frozen) == {"PATH": "/bin", "LD_LIBRARY_PATH": "/usr/local/lib",
                                                         "X": "1"}
    bundle_only = {"PATH": "/bin", "LD_LIBRARY_PATH": "/app/_internal", "DYLD_LIBRARY_PATH_ORIG": "/opt"}
    assert child_environment(base=bundle_only) == {"PATH": "/bin", "DYLD_LIBRARY_PATH": "/opt"}
    assert child_environment(base={"LD_LIBRARY_PATH": "/mine"}) == {"LD_LIBRARY_PATH": "/mine"}
