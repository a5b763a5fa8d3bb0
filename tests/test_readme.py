"""The README stays true: it names every setting and every make target."""

from __future__ import annotations

import re

import pytest

from shared.settings import BaseServiceSettings
from tests.services import ROOT, SERVICES, Service

# The README and the reference pages it links (docs/edge.md: the gateway's edge settings).
README = (ROOT / "README.md").read_text() + (ROOT / "docs" / "edge.md").read_text()


def _documented_names(service: Service) -> list[str]:
    prefix = service.settings_class.env_prefix()
    names = []
    for field in service.settings_class.model_fields:
        own = field in service.settings_class.__annotations__
        shared = field in BaseServiceSettings.model_fields and not own
        names.append(f"COMMERCE_{field.upper()}" if shared else f"{prefix}{field.upper()}")
    return names


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.name)
def test_every_setting_is_in_the_readme(service: Service) -> None:
    missing = [name for name in _documented_names(service) if f"`{name}`" not in README]
    assert not missing, f"README.md does not document: {', '.join(missing)}"


def test_every_make_target_is_in_the_readme() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = re.findall(r"^([a-z0-9-]+):.*## ", makefile, re.MULTILINE)
    assert targets
    missing = [target for target in targets if f"`make {target}`" not in README]
    assert not missing, f"README.md does not document: {', '.join(missing)}"
