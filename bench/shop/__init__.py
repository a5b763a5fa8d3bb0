"""The whole-platform benchmark: ``python -m bench.shop`` (see ``__main__``)."""
