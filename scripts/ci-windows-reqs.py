"""Print the project's requirements for Windows CPython, one per line: pyproject's dependencies and the dev extras
the Windows stage uses (tests, import layers, the PyInstaller build), with their environment markers evaluated for
win32, not for the Linux machine that downloads the wheels (`pip download --platform` keeps the host's markers).
ruff, mypy and the type stubs are left out: their checks do not depend on the platform and run in the Linux stage.

    python scripts/ci-windows-reqs.py pyproject.toml [python version, default 3.11]
"""

from __future__ import annotations

import sys
import tomllib

from packaging.requirements import Requirement

_LINUX_ONLY_TOOLS = {"ruff", "mypy", "types-requests", "types-psutil"}


def main(pyproject: str, python_version: str = "3.11") -> None:
    with open(pyproject, "rb") as file:
        project = tomllib.load(file)["project"]
    environment = {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt",
                   "python_version": python_version, "python_full_version": f"{python_version}.0",
                   "implementation_name": "cpython", "platform_python_implementation": "CPython",
                   "platform_machine": "AMD64"}
    for text in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        requirement = Requirement(text)
        if requirement.name.lower() in _LINUX_ONLY_TOOLS:
            continue
        if requirement.marker is None or requirement.marker.evaluate(environment):
            requirement.marker = None
            print(requirement)


if __name__ == "__main__":
    main(*sys.argv[1:])
