"""hpohash: audit and repair the study/trial hash and link tags of HPO runs in MLflow."""

__version__ = "0.1.0"
