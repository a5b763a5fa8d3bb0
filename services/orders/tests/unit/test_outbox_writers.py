"""The outbox is written in one place (and the placement statement, named for it)."""

from __future__ import annotations

import re
from pathlib import Path

import orders

SOURCES = Path(orders.__file__).parent
WRITE = re.compile(r"\boutbox\.(add|add_many|insert_sql|parameters)\(")

# recording.py writes every move's events; the placement statement carries order_created
# in its CTE ``order_created`` (see recording.py for why it is the one exception).
WRITERS = {"order/recording.py", "order/placement_repository.py"}


def test_only_recording_and_the_placement_statement_write_the_outbox() -> None:
    writers = {
        str(path.relative_to(SOURCES))
        for path in SOURCES.rglob("*.py")
        if WRITE.search(path.read_text(encoding="utf-8"))
    }
    assert writers == WRITERS


def test_the_placement_statement_names_its_outbox_write() -> None:
    from orders.events import outbox
    from orders.order.placement_repository import INSERT_ORDER

    insert = outbox.insert_sql(first_parameter=22)
    assert f"order_created AS (\n    {insert}" in INSERT_ORDER
    assert INSERT_ORDER.count(str(outbox.table.name)) == 1
