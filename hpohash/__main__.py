"""``python -m hpohash`` — same entry point as the console script."""

from hpohash.cli import entry

entry()
