"""Who is calling, as a verified access token says."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the user id (the token's ``sub``) and roles, from a verified token."""

    user_id: uuid.UUID
    roles: frozenset[str]
    token_id: str | None
    expires_at: float

    def has_role(self, role: str) -> bool:
        return role in self.roles

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles
