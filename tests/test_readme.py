"""The documents stay true: every setting and make target is documented, every link resolves
inside the repository, and the README stays a front door."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.services import ROOT, SERVICES, Service

README = ROOT / "README.md"
SETTINGS = ROOT / "docs" / "settings.md"
DOCUMENTS = [README, *sorted((ROOT / "docs").rglob("*.md")), ROOT / "bench" / "CHANGES.md"]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
HTML_LINK = re.compile(r"""\b(?:href|src)=["']([^"']+)["']""")
OUTSIDE_PATH = re.compile(r"(?<![\w./])((?:\.\./)+[\w.\-/]+)")


def _documented_names(service: Service) -> list[str]:
    """A field the service declares itself under its prefix, an inherited one under COMMERCE_
    (as docs/settings.md's generated tables name them)."""
    prefix = service.settings_class.env_prefix()
    own = service.settings_class.__annotations__
    return [
        f"{prefix}{field.upper()}" if field in own else f"COMMERCE_{field.upper()}"
        for field in service.settings_class.model_fields
    ]


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.name)
def test_every_setting_is_in_the_settings_reference(service: Service) -> None:
    text = SETTINGS.read_text()
    missing = [name for name in _documented_names(service) if f"`{name}`" not in text]
    assert not missing, f"docs/settings.md does not document: {', '.join(missing)}"


def test_every_make_target_is_in_the_readme() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = re.findall(r"^([a-z0-9-]+):.*## ", makefile, re.MULTILINE)
    assert targets
    text = README.read_text()
    missing = [target for target in targets if f"`make {target}`" not in text]
    assert not missing, f"README.md does not document: {', '.join(missing)}"


def test_the_readme_is_a_front_door_of_at_most_300_lines() -> None:
    assert len(README.read_text().splitlines()) <= 300


def _targets(text: str) -> list[str]:
    """Every link target: inline and image links, reference definitions, HTML attributes."""
    return LINK.findall(text) + REFERENCE.findall(text) + HTML_LINK.findall(text)


def _anchors(document: Path) -> set[str]:
    """The ids GitHub gives the document's headings: lower case, punctuation dropped,
    spaces as hyphens."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", document.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_link_resolves_inside_the_repository(document: Path) -> None:
    broken = []
    for target in _targets(document.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file, _, anchor = target.partition("#")
        path = (document.parent / file).resolve() if file else document
        inside = path.is_relative_to(ROOT.resolve()) and path.exists()
        if not inside or (anchor and path.suffix == ".md" and anchor not in _anchors(path)):
            broken.append(target)
    assert not broken, f"{document.name} links outside the repository or to nothing: {broken}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_document_names_a_path_outside_the_repository(document: Path) -> None:
    """Not even as text: a clone carries everything its documents point at."""
    outside = [
        path
        for path in OUTSIDE_PATH.findall(document.read_text())
        if not (document.parent / path).resolve().is_relative_to(ROOT.resolve())
    ]
    assert not outside, f"{document.name} points outside the repository: {outside}"
