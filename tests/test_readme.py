"""The README stays true: it (or a reference page under docs/) names every setting, and it
names every make target."""

from __future__ import annotations

import re

import pytest

from shared.settings import BaseServiceSettings
from tests.services import ROOT, SERVICES, Service

README = (ROOT / "README.md").read_text()
REFERENCE = README + "".join(path.read_text() for path in sorted(ROOT.glob("docs/*.md")))


def _declared_in_shared(settings_class: type[BaseServiceSettings], field: str) -> bool:
    """Whether ``field`` comes from a settings class of ``shared`` (the base, or a mixin such
    as ``shared.cursors.CursorSettings``) rather than from the service's own class."""
    for cls in settings_class.__mro__:
        if field in getattr(cls, "__annotations__", {}):
            return cls.__module__.startswith("shared.")
    return False


def _documented_names(service: Service) -> list[str]:
    prefix = service.settings_class.env_prefix()
    names = []
    for field in service.settings_class.model_fields:
        shared = _declared_in_shared(service.settings_class, field)
        names.append(f"COMMERCE_{field.upper()}" if shared else f"{prefix}{field.upper()}")
    return names


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.name)
def test_every_setting_is_in_the_readme(service: Service) -> None:
    missing = [name for name in _documented_names(service) if f"`{name}`" not in REFERENCE]
    assert not missing, f"neither README.md nor docs/ documents: {', '.join(missing)}"


def test_every_make_target_is_in_the_readme() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = re.findall(r"^([a-z0-9-]+):.*## ", makefile, re.MULTILINE)
    assert targets
    missing = [target for target in targets if f"`make {target}`" not in README]
    assert not missing, f"README.md does not document: {', '.join(missing)}"
