"""The run model every reader hands on: slim, read-only snapshots of runs and experiments.

It lives apart from the MLflow adapter (``tracking``) so the study model, the audit and the planner
depend on the snapshot, not on how it was read: through MLflow's client today, by other readers
(a backend dialect, a direct SQL read) behind the same seam.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from hpohash.perf import frozen_maker


class Compact(Mapping[str, Any]):
    """A read-only mapping whose key index is shared by every run with the same keys.

    Runs of one pipeline carry the same tag/param/metric names, so a scan of 100,000 runs holds a
    few dozen key indexes and one tuple of values per run instead of 100,000 dicts (SPEC §6 memory).
    """

    __slots__ = ("_index", "_values")

    def __init__(self, index: Mapping[str, int], values: Sequence[Any]) -> None:
        self._index = index
        self._values = values

    def __getitem__(self, key: str) -> Any:
        return self._values[self._index[key]]

    def get(self, key: str, default: Any = None) -> Any:
        """``Mapping.get`` without its ``try: self[key]`` round trip: tags are read ~15 times a run."""
        i = self._index.get(key)
        return default if i is None else self._values[i]

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __repr__(self) -> str:
        return repr(dict(self.items()))


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A read-only snapshot of one run: what the study model and audit need, nothing more."""

    run_id: str
    experiment_id: str
    name: str
    #: the artifact URI, or (``_artifact_derived``) the root it is ``<root>/<run_id>/artifacts`` under,
    #: one string shared by every run of the experiment
    _artifact: str
    lifecycle_stage: str
    status: str
    start_time: int
    tags: Mapping[str, str]
    params: Mapping[str, str]
    metrics: Mapping[str, float]
    _artifact_derived: bool = False

    @property
    def artifact_uri(self) -> str:
        return f"{self._artifact}/{self.run_id}/artifacts" if self._artifact_derived else self._artifact

    @property
    def deleted(self) -> bool:
        return self.lifecycle_stage == "deleted"

    @property
    def run_name(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class RunStub:
    """What verify keeps of a run once its study is audited (``Study.release``): its id, experiment
    and lifecycle, which the report and later studies' cross-study checks still read. The tags and
    params are let go, so the findings take the records' place in memory."""

    run_id: str
    experiment_id: str
    lifecycle_stage: str

    @property
    def deleted(self) -> bool:
        return self.lifecycle_stage == "deleted"


#: ``RunRecord(...)`` without the frozen ``__init__``'s cost (``perf.frozen_maker``): a scan makes one a run
_new_record = frozen_maker(RunRecord)
#: ``RunStub(...)`` the same way: verify makes one a run as it lets the records go
new_stub = frozen_maker(RunStub)


@dataclass(frozen=True)
class Keep:
    """Which tags, params and metrics a scan keeps of each run (``None``: all of them)."""

    tags: frozenset[str] | None = None
    tag_prefixes: tuple[str, ...] = ()
    params: frozenset[str] | None = None
    metrics: frozenset[str] | None = None


KEEP_ALL = Keep()
#: one run as ``Reducer.fields`` gives it: run id, experiment id, name, artifact URI (or root), derived,
#: lifecycle stage, status, start time, then keys and values of its tags, params and metrics
Fields = tuple[Any, ...]
EMPTY = Compact(MappingProxyType({}), ())


class Reducer:
    """Turns MLflow's full ``Run`` objects into slim ``RunRecord`` s while a scan pages.

    Equal strings (tag keys, stage values, a study's hash on each of its 98 trials, repeated
    hyperparameter values) are stored once, and key indexes are shared between runs with the same
    keys, so what stays alive per run is a few tuples of values.
    """

    def __init__(self, keep: Keep = KEEP_ALL) -> None:
        self.keep = keep
        self._strings: dict[str, str] = {}
        self._indexes: dict[tuple[str, ...], Mapping[str, int]] = {}
        self._keys: dict[tuple[str, ...], tuple[str, ...]] = {}

    def _s(self, value: str) -> str:
        return self._strings.setdefault(value, value)

    def _sorted(self, pairs: Iterable[tuple[str, Any]]) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        """A run's (keys, values), sorted by key; the keys tuple is the one shared by every run with
        those keys (so a marshalled chunk carries it once)."""
        items = sorted(pairs)
        if not items:
            return (), ()
        keys, values = zip(*items, strict=True)
        return self._keys.setdefault(keys, keys), values

    def _compact(self, keys: tuple[str, ...], values: Sequence[Any], *, strings: bool) -> Compact:
        if not keys:  # one empty mapping for every run (a SQL scan keeps no metrics: 144 bytes a run)
            return EMPTY
        index = self._indexes.get(keys)
        if index is None:
            index = self._indexes[keys] = MappingProxyType({self._s(k): i for i, k in enumerate(keys)})
        if strings:  # dict.setdefault(v, v) called from C: the values shared without a Python frame each
            return Compact(index, tuple(map(self._strings.setdefault, values, values)))
        return Compact(index, array("d", map(float, values)))

    def record(self, run: Any) -> RunRecord:
        info, data = run.info, run.data
        return self.from_fields(
            run_id=info.run_id,
            experiment_id=str(info.experiment_id),
            name=info.run_name,
            artifact_uri=info.artifact_uri,
            lifecycle_stage=info.lifecycle_stage,
            status=info.status,
            start_time=info.start_time,
            tags=data.tags.items(),
            params=data.params.items(),
            metrics=data.metrics.items(),
        )

    def from_fields(self, **fields: Any) -> RunRecord:
        """One run from its raw fields, whoever read them (MLflow's entities, a direct SQL read), so
        every reader keeps the same keys and shares strings and key indexes the same way."""
        return self.make(self.fields(**fields))

    def fields(
        self,
        *,
        run_id: str,
        experiment_id: str,
        name: str | None,
        artifact_uri: str | None,
        lifecycle_stage: str,
        status: str,
        start_time: int | None,
        tags: Iterable[tuple[str, str]],
        params: Iterable[tuple[str, str]],
        metrics: Iterable[tuple[str, float]],
    ) -> Fields:
        """The first half of ``from_fields``: the kept keys, sorted and split from their values, as plain
        tuples ``marshal`` can carry (a second process reading part of a SQL scan sends these)."""
        keep = self.keep
        if keep.tags is not None:
            wanted, prefixes = keep.tags, keep.tag_prefixes
            tags = [(k, v) for k, v in tags if k in wanted or k.startswith(prefixes)]
        if keep.params is not None:
            params = [(k, v) for k, v in params if k in keep.params]
        if keep.metrics is not None:
            metrics = [(k, v) for k, v in metrics if k in keep.metrics]
        uri, suffix = artifact_uri or "", f"/{run_id}/artifacts"
        derived = uri.endswith(suffix)
        return (
            run_id,
            self._s(experiment_id),
            name or "",
            self._s(uri[: -len(suffix)]) if derived else uri,
            derived,
            self._s(lifecycle_stage),
            self._s(status),
            int(start_time or 0),
            *self._sorted(tags),
            *self._sorted(params),
            *self._sorted(metrics),
        )

    def make(self, f: Fields) -> RunRecord:
        """The second half of ``from_fields``: the record, its strings and key indexes shared."""
        return _new_record(
            f[0],  # run_id
            self._s(f[1]),  # experiment_id
            f[2],  # name
            self._s(f[3]) if f[4] else f[3],  # _artifact
            self._s(f[5]),  # lifecycle_stage
            self._s(f[6]),  # status
            f[7],  # start_time
            self._compact(f[8], f[9], strings=True),  # tags
            self._compact(f[10], f[11], strings=True),  # params
            self._compact(f[12], f[13], strings=False),  # metrics
            f[4],  # _artifact_derived
        )


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    name: str
