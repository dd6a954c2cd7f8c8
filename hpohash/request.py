"""What a command reads, said once: the frozen request every ``api`` command takes.

The CLI builds one from its options and the environment (its edge); a Python caller builds one
directly, or passes the same keywords to ``hpohash.verify(...)`` and friends, which build it. Every
argument is checked here, once, so a bad value is a usage error before any connection is made.
"""

from __future__ import annotations

from collections.abc import Sequence

from hpohash.errors import UsageError

#: experiment ids are integers in every MLflow store (a SQL column, the file store's directory names)
MAX_EXPERIMENT_ID = 2**63 - 1


def check_experiment_ids(ids: Sequence[str]) -> tuple[str, ...]:
    """Experiment ids as given, stripped; a number no store can hold is a usage error, not a backend failure."""
    out = []
    for raw in ids:
        eid = str(raw).strip()
        if not eid:
            raise UsageError("--experiment-id: empty")
        if eid.isdigit() and int(eid) > MAX_EXPERIMENT_ID:
            raise UsageError(f"--experiment-id {eid}: out of range (experiment ids are at most {MAX_EXPERIMENT_ID})")
        out.append(eid)
    return tuple(out)
