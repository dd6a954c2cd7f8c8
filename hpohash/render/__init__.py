"""One renderer per output format: ``table`` (Rich), ``json``, ``markdown``."""
