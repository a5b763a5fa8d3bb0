"""Each package declares every distribution its code imports.

A dependency that arrives only through another package (a service importing
``prometheus_client`` because ``commerce-shared`` happens to need it) breaks the day that
package stops needing it. Every import in a package's ``src/`` (type-checking imports
included) is resolved to the installed distribution whose files hold the module, and must
be named in that package's ``pyproject.toml``.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import os
import re
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.services import ROOT

PACKAGES = (
    ROOT / "libs" / "shared",
    *sorted(path.parent for path in (ROOT / "services").glob("*/pyproject.toml")),
    ROOT / "gateway",
)
MODULE_SUFFIXES = frozenset({".py", ".so", ".pyd"})


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(package: Path, module: Path) -> set[str]:
    """What ``module`` of ``package`` may import: the package's dependencies, and those of
    an extra named for a folder it is in (``shared/testing`` may use the ``testing`` extra)."""
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra, requirements in project.get("optional-dependencies", {}).items():
        if extra in module.relative_to(package / "src").parts[1:-1]:
            lines.extend(requirements)
    return {normalized(Requirement(line).name) for line in lines}


def project_name(package: Path) -> str:
    return normalized(tomllib.loads((package / "pyproject.toml").read_text())["project"]["name"])


def imported_modules(package: Path) -> Iterator[tuple[tuple[str, ...], Path]]:
    """Every absolute import of the package's code, as the modules it may name (``from a
    import b`` names ``a.b`` if that is a module, else ``a``), and the file importing it."""
    for path in sorted((package / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield (alias.name,), path
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    yield (f"{node.module}.{alias.name}", node.module), path


@cache
def distributions_by_file() -> dict[str, str]:
    """Every installed module file (as ``os.path.abspath`` spells it), by its distribution."""
    owners: dict[str, str] = {}
    for distribution in importlib.metadata.distributions():
        name = normalized(distribution.metadata["Name"])
        for file in distribution.files or ():
            if file.suffix in MODULE_SUFFIXES:
                owners[os.path.abspath(str(distribution.locate_file(file)))] = name
    return owners


@cache
def first_party() -> dict[Path, str]:
    """The repository's own packages: their source folder and distribution name."""
    return {(package / "src").absolute(): project_name(package) for package in PACKAGES}


def origin_of(candidates: tuple[str, ...]) -> str:
    """The file of the first candidate that is a module with a file of its own (a namespace
    package has none: the module imported from it names the distribution)."""
    for module in candidates:
        try:
            spec = importlib.util.find_spec(module)
        except (ModuleNotFoundError, ValueError):  # ``from a import b``, b not a module
            continue
        if spec is not None and spec.origin is not None:
            return os.path.abspath(spec.origin)
    raise AssertionError(f"none of {candidates} is an installed module")


@cache
def distribution_of(candidates: tuple[str, ...]) -> str | None:
    """The distribution that provides the import; None for the standard library."""
    if candidates[-1].partition(".")[0] in sys.stdlib_module_names:
        return None
    origin = origin_of(candidates)
    for source, name in first_party().items():
        if Path(origin).is_relative_to(source):
            return name
    owner = distributions_by_file().get(origin)
    assert owner is not None, f"no installed distribution holds {origin}"
    return owner


def undeclared(package: Path) -> dict[str, set[str]]:
    """Distributions imported but not declared, with where each is imported."""
    own = project_name(package)
    missing: dict[str, set[str]] = {}
    for candidates, path in imported_modules(package):
        distribution = distribution_of(candidates)
        if distribution is None or distribution == own or distribution in declared(package, path):
            continue
        where = f"{path.relative_to(package.parent)} ({candidates[-1]})"
        missing.setdefault(distribution, set()).add(where)
    return missing


@pytest.mark.parametrize("package", PACKAGES, ids=lambda package: package.name)
def test_every_imported_distribution_is_declared(package: Path) -> None:
    assert undeclared(package) == {}


def test_an_undeclared_import_is_found(tmp_path: Path) -> None:
    """The check itself: a package importing what it does not declare is caught."""
    package = tmp_path / "demo"
    (package / "src" / "demo").mkdir(parents=True)
    (package / "pyproject.toml").write_text(
        '[project]\nname = "demo"\nversion = "0"\ndependencies = ["pydantic"]\n'
    )
    (package / "src" / "demo" / "__init__.py").write_text(
        "import json\nimport pydantic\nfrom orjson import dumps\n"
    )
    assert list(undeclared(package)) == ["orjson"]
