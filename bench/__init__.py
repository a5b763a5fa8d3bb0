"""Load benchmarks (``make bench``); they print figures and never pass or fail."""
