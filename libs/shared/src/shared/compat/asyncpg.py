"""Whether an idle asyncpg connection has input waiting that asyncpg has not read yet.

asyncpg says whether a connection is closed (``is_closed()``) but not whether the server
has written to it since it went idle: a connection the server cut a moment ago (its goodbye
waiting on the socket) looks open until the event loop runs its reader. The pool's checkout
(``shared.db``) asks here, for free, whether such a connection needs a ping before it is
handed out; without it, it would ping on every checkout (one round trip per transaction)
or hand out a dead connection.

``libs/shared/tests/test_compat_asyncpg.py`` checks the internals this relies on.
"""

from __future__ import annotations

import select
from typing import Any

# The asyncpg release this module was read against; the test fails on any other.
REVIEWED_ASYNCPG = "0.32.0"


def has_unread_input(driver: Any) -> bool:
    """Whether the server wrote to this idle connection (its goodbye, usually) or closed it;
    True when it cannot tell (the caller then pings)."""
    transport = getattr(driver, "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return True  # cannot tell: ping
    # poll, not select: select refuses descriptors above 1023, which a busy process reaches.
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))
