"""Each service installs alone: its package and ``commerce-shared`` in a fresh virtual
environment, and nothing else the repository's ``.venv`` happens to hold, are enough to
import it and build its app and worker."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.services import ROOT, SERVICES, Service

pytestmark = pytest.mark.slow

CHECK = """
import importlib, sys
name = sys.argv[1]
app = importlib.import_module(f"{name}.main").create_app()
assert app.title, app
if name != "gateway":
    importlib.import_module(f"{name}.worker")
importlib.import_module(f"{name}.config").get_settings()
print("ok")
"""


def _run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def _copy(package: Path, into: Path) -> Path:
    ignored = shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "tests")
    return Path(shutil.copytree(package, into / "src" / package.name, ignore=ignored))


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.name)
def test_a_service_installed_alone_imports_and_builds_its_app(
    service: Service, tmp_path: Path
) -> None:
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    # Built from copies: a build writes build/ beside the sources it is given.
    sources = [_copy(ROOT / "libs" / "shared", tmp_path), _copy(service.directory, tmp_path)]
    installed = _run(
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "-c",
        ROOT / "constraints.txt",
        *sources,
        cwd=tmp_path,
    )
    assert installed.returncode == 0, installed.stderr[-4000:]
    # Run from an empty folder so nothing of the repository is importable by accident.
    checked = _run(python, "-c", CHECK, service.name, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr[-4000:]
    assert checked.stdout.strip().endswith("ok")
    assert sys.prefix != str(environment)
