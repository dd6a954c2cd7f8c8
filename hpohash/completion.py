"""Shell completion of experiment names, where that is cheap: read from a local SQLite store, no mlflow.

A tracking server would mean importing mlflow and a request per key press: no suggestions there.
"""

from __future__ import annotations

from pathlib import Path

#: MLflow's local default store
DEFAULT_URI = "sqlite:///mlflow.db"


def experiment_names(tracking_uri: str | None, incomplete: str) -> list[str]:
    """The active experiments of a local SQLite store whose names start with ``incomplete``."""
    import sqlite3

    uri = tracking_uri or DEFAULT_URI
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or not Path(uri[len(prefix) :]).is_file():
        return []
    try:
        con = sqlite3.connect(f"file:{uri[len(prefix) :]}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT name FROM experiments WHERE lifecycle_stage = 'active' ORDER BY name").fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []
    return [name for (name,) in rows if name.startswith(incomplete)]
