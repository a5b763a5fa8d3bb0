"""A harness that runs the whole platform for real, for the end-to-end, fuzz and fault tests."""
