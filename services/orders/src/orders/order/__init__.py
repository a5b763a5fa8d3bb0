"""Orders: placing, reading, and the actions customers and admins take on them."""
