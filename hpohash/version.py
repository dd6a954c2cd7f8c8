"""The package version, apart from the package itself so a module deep in the house (a journal names
the version that wrote it) need not import the package's top."""

__version__ = "0.3.0"
