"""Orders, their state machine, and the orchestration of the order saga."""
