"""infra/Dockerfile cannot be built here (no Docker engine); these checks read it against
docker-compose.yml."""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
import yaml

from tests.services import ROOT

DOCKERFILE = ROOT / "infra" / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(keyword, arguments) of every instruction, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            found.append((keyword.upper(), arguments.strip()))
    return found


def runtime_user(text: str) -> str:
    (user,) = [arguments for keyword, arguments in instructions(text) if keyword == "USER"]
    return user


def owned_directories(text: str, user: str) -> set[str]:
    """The directories the RUN instructions create (``mkdir``) and give to ``user``
    (``chown``)."""
    created: set[str] = set()
    chowned: set[str] = set()
    for keyword, arguments in instructions(text):
        if keyword != "RUN":
            continue
        for command in re.split(r"&&|;", arguments):
            words = shlex.split(command)
            operands = [word for word in words[1:] if not word.startswith("-")]
            if words[:1] == ["mkdir"]:
                created.update(operands)
            elif words[:1] == ["chown"] and operands[0].split(":")[0] == user:
                chowned.update(operands[1:])
    return created & chowned


def named_volume_targets(compose: dict[str, Any]) -> set[tuple[str, str]]:
    """(service, mount target) of every named volume an app service (our image) mounts."""
    volumes = set(compose.get("volumes", {}))
    targets = set()
    for name, definition in compose["services"].items():
        if "build" not in definition:
            continue
        for volume in definition.get("volumes", []):
            source, _, rest = volume.partition(":")
            if source in volumes:
                targets.add((name, rest.split(":")[0]))
    return targets


def test_the_parser_finds_only_directories_made_and_given_to_the_user() -> None:
    text = (
        "FROM python\nRUN useradd app \\\n    && mkdir -p /a /b && chown app /a\n"
        "RUN mkdir /c; chown -R app:app /c /d\nUSER app\n"
    )
    assert runtime_user(text) == "app"
    assert owned_directories(text, "app") == {"/a", "/c"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_every_named_volume_of_an_app_mounts_on_a_directory_its_user_owns(
    compose: dict[str, Any],
) -> None:
    """An empty named volume copies the owner of the image's directory when first mounted;
    where the image has none, the volume is root's and the runtime user cannot write it."""
    text = DOCKERFILE.read_text()
    owned = owned_directories(text, runtime_user(text))
    targets = named_volume_targets(compose)
    assert targets
    missing = sorted(f"{service}: {target}" for service, target in targets if target not in owned)
    assert not missing, f"infra/Dockerfile does not make these its user's: {missing}"
