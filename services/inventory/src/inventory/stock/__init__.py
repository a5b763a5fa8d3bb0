"""Stock: on hand, reserved, the movement ledger and reservations."""
