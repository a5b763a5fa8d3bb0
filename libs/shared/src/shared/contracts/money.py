"""Money on the wire: integer minor units and an ISO 4217 code, never a float."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Money(BaseModel):
    """``{"amount": 1999, "currency": "USD"}``: 19.99 US dollars."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    amount: int = Field(description="Minor units (cents for USD).")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code.")
