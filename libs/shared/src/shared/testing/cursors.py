"""Cursors no server issued, for testing that every list refuses them the same way."""

from __future__ import annotations

from shared.cursors import MAX_CURSOR_CHARS, CursorCodec

UNKNOWN_KEY = "a-key-no-replica-holds-0123456789abcdef"


def bad_cursors(*, issued: str, kind: str, position: str) -> dict[str, str]:
    """Named variations of ``issued`` (a real cursor of list ``kind`` at ``position``):
    each must answer 400 ``/problems/invalid-cursor``."""
    encoded, _, tag = issued.partition(".")
    flipped = "B" if encoded[0] != "B" else "C"
    return {
        "tampered position": flipped + encoded[1:] + "." + tag,
        "tampered tag": encoded + "." + tag[:-2] + ("AA" if tag[-2:] != "AA" else "BB"),
        "truncated": issued[:-3],
        "no tag": encoded,
        "garbage": "not a cursor!",
        "empty": "",
        "over long": issued + "A" * MAX_CURSOR_CHARS,
        "signed by an unknown key": CursorCodec([UNKNOWN_KEY]).encode(kind, position),
        "signed for another list": CursorCodec(["change-me"]).encode("another-list", position),
    }
