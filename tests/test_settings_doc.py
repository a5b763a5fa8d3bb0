"""docs/settings.md is rendered from the settings classes (``make settings-doc``): a setting
added, removed or changed in code without rendering the page again fails here."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from infra.dev import settings_doc
from shared.settings import BaseServiceSettings


def test_the_settings_reference_is_what_the_settings_classes_render() -> None:
    current = settings_doc.DOCUMENT.read_text()
    assert settings_doc.render(current) == current, "docs/settings.md is stale: make settings-doc"


def test_every_setting_has_a_meaning() -> None:
    assert settings_doc.MISSING not in settings_doc.render(settings_doc.DOCUMENT.read_text())


def test_every_process_and_the_shared_classes_have_a_table() -> None:
    names = [cls.__name__ for cls in settings_doc.settings_classes()]
    assert names[:2] == ["BaseServiceSettings", "CursorSettings"]
    expected = {"GatewaySettings", "InventorySettings", "OrdersSettings", "PaymentsSettings"}
    assert expected <= set(names)


class _Example(BaseServiceSettings):
    model_config = BaseServiceSettings.model_config | {"env_prefix": "EXAMPLE_"}

    mode: Literal["fast", "safe"] = "safe"
    """How it runs."""
    limit: int = Field(default=5, ge=1, le=10)
    """At most this | many."""
    token: SecretStr = SecretStr("")
    written_by_hand: float | None = None


def test_a_table_row_holds_variable_type_bounds_default_and_meaning() -> None:
    document = (
        f"# Example\n\n{settings_doc.BEGIN}\n"
        "| `EXAMPLE_WRITTEN_BY_HAND` | number | unset | kept from the page |\n"
        f"{settings_doc.END}\n\nprose after\n"
    )
    meanings = settings_doc.known_meanings(document)
    rows = settings_doc._section(_Example, meanings)
    assert "| `EXAMPLE_MODE` | `fast` or `safe` | `safe` | How it runs. |" in rows
    assert "| `EXAMPLE_LIMIT` | integer, ≥ 1, ≤ 10 | `5` | At most this \\| many. |" in rows
    assert f"| `EXAMPLE_TOKEN` | secret | empty | {settings_doc.MISSING} |" in rows
    assert "| `EXAMPLE_WRITTEN_BY_HAND` | number or unset | unset | kept from the page |" in rows


def test_an_inherited_default_keeps_its_parents_description() -> None:
    from orders.config import OrdersSettings

    assert settings_doc.description(OrdersSettings, "port") == settings_doc.description(
        BaseServiceSettings, "port"
    )


def test_only_the_generated_part_is_rewritten() -> None:
    begin, end = settings_doc.BEGIN, settings_doc.END
    document = f"# Settings\n\nprose before\n\n{begin}\nstale\n{end}\n\nafter\n"
    rendered = settings_doc.render(document)
    assert rendered.startswith("# Settings\n\nprose before\n\n")
    assert rendered.endswith(f"{settings_doc.END}\n\nafter\n")
    assert "stale" not in rendered
    assert "`COMMERCE_DB_NAME`" in rendered
