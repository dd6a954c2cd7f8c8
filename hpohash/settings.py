"""How a command may use its backend, decided once by the caller and handed to the adapter.

The CLI fills this from its options (and the few environment variables it honours) at its edge; a
library caller passes one or takes the defaults. Nothing below the CLI reads the environment for
these, so two calls in one process never see each other's settings.
"""

from __future__ import annotations

from dataclasses import dataclass

#: where runs are read from: ``auto`` (a direct SQL read where the store allows it, else MLflow's API),
#: ``api`` (always ``search_runs``), ``sql`` (the direct SQL read, or a usage error where impossible)
READ_VIA = ("auto", "api", "sql")
#: server-side filtering of HPO runs: ``auto`` (where it pays), ``always``, ``never``
SERVER_FILTER = ("auto", "always", "never")


@dataclass(frozen=True)
class BackendSettings:
    """Bounds and choices for one connection to a tracking store."""

    #: a single request's total deadline, connection included (a silent server fails within it)
    deadline_s: float = 60.0
    #: reaching the host at all: resolving, connecting, authenticating
    connect_timeout_s: float = 30.0
    #: the most a command waits out throttling (429/503 with ``Retry-After``) in total
    max_throttle_wait_s: float = 300.0
    read_via: str = "auto"
    server_filter: str = "auto"
    #: over HTTP, start-time parts of one scan read at once: 0 auto (up to 4 where the runs fill that
    #: many pages and the server pages by offset), 1 never, K at most K (``hpohash.partitions``)
    scan_parts: int = 0
    #: say on stderr which filter forms the backend accepted and which were evaluated here
    verbose: bool = False
