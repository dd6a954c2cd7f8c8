"""What a command reads, said once: the frozen request every ``api`` command takes.

The CLI builds one from its options and the environment (its edge); a Python caller builds one
directly, or passes the same keywords to ``hpohash.verify(...)`` and friends, which build it. Every
argument is checked here, once, so a bad value is a usage error before any connection is made, and
the checked forms (the ``--select`` selection, the tag registry, ``since`` in milliseconds) travel
with the request instead of being parsed again further down.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from hpohash.errors import ArgumentError, literal
from hpohash.githistory import DEFAULT_HISTORY_MIB
from hpohash.selection import Selection
from hpohash.settings import READ_VIA, SERVER_FILTER, BackendSettings

if TYPE_CHECKING:
    from hpohash.tags import TagRegistry
    from hpohash.tracking import Tracking

#: experiment ids are integers in every MLflow store (a SQL column, the file store's directory names)
MAX_EXPERIMENT_ID = 2**63 - 1


def check_experiment_ids(ids: Sequence[str]) -> tuple[str, ...]:
    """Experiment ids as given, stripped; a number no store can hold is a usage error, not a backend failure."""
    out = []
    for raw in ids:
        eid = str(raw).strip()
        if not eid:
            raise ArgumentError("{}: empty", "experiment_ids")
        if eid.isdigit() and int(eid) > MAX_EXPERIMENT_ID:
            raise ArgumentError(
                "{} " + literal(eid) + f": out of range (experiment ids are at most {MAX_EXPERIMENT_ID})",
                "experiment_ids",
            )
        out.append(eid)
    return tuple(out)


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


@dataclass(frozen=True)
class Store:
    """Which tracking store, and how a command may use it (deadlines, read path, server filtering)."""

    tracking_uri: str | None = None
    settings: BackendSettings = field(default_factory=BackendSettings)

    def __post_init__(self) -> None:
        if self.settings.read_via not in READ_VIA:
            raise ArgumentError("{} " + literal(self.settings.read_via) + f": one of {', '.join(READ_VIA)}", "read_via")
        if self.settings.server_filter not in SERVER_FILTER:
            raise ArgumentError(
                "{} " + literal(self.settings.server_filter) + f": one of {', '.join(SERVER_FILTER)}", "server_filter"
            )
        if not self.settings.deadline_s > 0:
            raise ArgumentError("{} " + literal(str(self.settings.deadline_s)) + ": must be above 0 seconds", "timeout")

    def open(self, *, create: bool = False) -> Tracking:
        from hpohash.tracking import Tracking

        return Tracking(self.tracking_uri, create=create, settings=self.settings)


@dataclass(frozen=True)
class Request:
    """Where to read and what: the scope every command that scans experiments shares.

    ``selection``, ``registry`` and ``since_ms`` are derived and checked once, when the request is made.
    """

    store: Store = field(default_factory=Store)
    experiments: tuple[str, ...] = ()
    experiment_ids: tuple[str, ...] = ()
    parent_run_id: str | None = None
    #: every study of the experiments; with none named, every active experiment of the store
    check_all: bool = False
    #: ``"1d"``, ``"12h"``, ``"2026-11-20"``: only the studies with a run started since then
    since: str | None = None
    include_deleted: bool = False
    config_dirs: tuple[str, ...] = ()
    config_history: bool = True
    config_rev: str | None = None
    #: the bound on reading config history (MiB of config versions; file versions and candidate sets
    #: scale with it), past which older history is skipped with a warning
    max_history_mib: int = DEFAULT_HISTORY_MIB
    tags_config: str | None = None
    #: the model of studies whose runs name none (last resort)
    model: str | None = None
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    selection: Selection = field(init=False, compare=False)
    registry: TagRegistry = field(init=False, compare=False, repr=False)
    since_ms: int | None = field(init=False, compare=False)

    def __post_init__(self) -> None:
        from hpohash.tags import registry_for
        from hpohash.text import parse_since

        for name in ("experiments", "config_dirs", "select", "ignore"):
            object.__setattr__(self, name, _strings(getattr(self, name)))
        object.__setattr__(self, "experiment_ids", check_experiment_ids(_strings(self.experiment_ids)))
        if self.check_all and self.parent_run_id:
            raise ArgumentError("{} and {} exclude each other", "check_all", "parent_run_id")
        if self.since is not None and (self.check_all or self.parent_run_id):
            raise ArgumentError("{} excludes {} and {}", "since", "check_all", "parent_run_id")
        object.__setattr__(self, "selection", Selection.parse(self.select, self.ignore))
        object.__setattr__(self, "since_ms", parse_since(self.since) if self.since is not None else None)
        # a bad tags file fails before any connection is made
        object.__setattr__(self, "registry", registry_for(self.tags_config))

    @property
    def tracking_uri(self) -> str | None:
        return self.store.tracking_uri

    @property
    def names_experiments(self) -> bool:
        """Whether the request says what to read (experiments, ids or a parent), not only ``check_all``."""
        return bool(self.experiments or self.experiment_ids or self.parent_run_id)

    @classmethod
    def of(cls, keywords: Mapping[str, Any]) -> Request:
        """The request the keyword form names (``hpohash.verify(tracking_uri=..., experiments=[...])``)."""
        keywords = dict(keywords)
        store = keywords.pop("store", None)
        if store is None:
            settings = keywords.pop("settings", None) or BackendSettings()
            store = Store(keywords.pop("tracking_uri", None), settings)
        elif "tracking_uri" in keywords or "settings" in keywords:
            raise TypeError("give store=, or tracking_uri=/settings=, not both")
        known = {f.name for f in fields(cls) if f.init}
        unknown = sorted(set(keywords) - known)
        if unknown:
            raise TypeError(f"unexpected keyword argument(s): {', '.join(unknown)}")
        return cls(store=store, **keywords)


def request_of(request: Request | None, keywords: Mapping[str, Any]) -> Request:
    """A given request, or the one the keyword form builds; never both."""
    if request is None:
        return Request.of(keywords)
    if keywords:
        raise TypeError(f"give a Request or keywords, not both (got {', '.join(sorted(keywords))})")
    return request
