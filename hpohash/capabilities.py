"""What one tracking backend accepts, and the filter clauses hpohash asks it for.

Managed MLflow services speak narrower dialects than the open-source server (no ``ILIKE``, no
``IS NULL``, no ``start_time`` filters, at most 10 experiment ids a search, opaque page tokens, tag
caps, no ``delete_tag``). The family known from the URI scheme gives a first guess; a form marked
unknown (``None``) is tried once and learned, and a refused form is evaluated here instead, on the
runs the weaker search returns, so every command gives the same answer on every backend.
No MLflow import here: this module is pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlparse

#: local SQL stores MLflow opens itself (``postgresql+psycopg2://`` counts as ``postgresql``)
SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
#: a search with more experiment ids than this is split where the backend refuses it
EXPERIMENTS_PER_SEARCH = 10
#: MLflow's own cap on the tags of one ``log_batch`` call (every backend)
TAGS_PER_BATCH = 100

#: filter forms a backend may refuse; ``=`` on a tag is accepted everywhere and never probed
FORMS = ("tag_ilike", "tag_is_null", "start_time", "run_id_in", "many_experiments")
FORM_TEXT = {
    "tag_ilike": "tag ILIKE",
    "tag_is_null": "tag IS NULL",
    "start_time": "start_time filter",
    "run_id_in": "run_id IN",
    "many_experiments": f"more than {EXPERIMENTS_PER_SEARCH} experiment ids a search",
}


def family_of(uri: str) -> str:
    """The backend family of a tracking URI: ``sql``, ``file``, ``http``, ``azureml``, ``databricks``,
    or ``plugin`` (any other registered scheme). ``databricks`` and ``databricks-uc`` without ``://``
    are store names, not paths."""
    text = uri.strip()
    if text in ("databricks", "databricks-uc"):
        return "databricks"
    try:
        scheme = urlparse(text).scheme.lower()
    except ValueError:
        return "file"
    base = scheme.split("+", 1)[0]
    if base in SQL_SCHEMES:
        return "sql"
    if scheme in ("", "file") or len(scheme) == 1:  # a bare path, file://, or a Windows drive letter
        return "file"
    if scheme in ("http", "https"):
        return "http"
    if scheme == "azureml":
        return "azureml"
    if scheme in ("databricks", "databricks-uc"):
        return "databricks"
    return "plugin"


@dataclass(frozen=True)
class Capabilities:
    """One connection's dialect and limits. ``None`` means unknown: tried once on first use, then learned.

    ``decided`` says, per filter form, how its value was reached (for ``--verbose``).
    """

    family: str
    tag_ilike: bool | None = None
    tag_is_null: bool | None = None
    start_time: bool | None = None
    run_id_in: bool | None = None
    many_experiments: bool | None = None
    #: page tokens may be predicted (MLflow's offset form): ``True`` where the store is MLflow's own
    #: SQL/file store, ``None`` until a server returns one of that form, ``False`` never (opaque)
    offset_tokens: bool | None = None
    page_size: int = 1000
    max_tags_per_run: int | None = None
    max_key_length: int | None = None
    max_value_length: int | None = None
    tags_per_batch: int = TAGS_PER_BATCH
    #: ``delete_tag`` works (undo removes tags backfill added)
    delete_tags: bool | None = None
    #: concurrent requests that are safe (reads ahead, config fetches, writes)
    workers: int = 1
    decided: Mapping[str, str] = field(default_factory=dict)

    def form(self, name: str) -> bool | None:
        value: bool | None = getattr(self, name)
        return value

    def learn(self, name: str, value: bool, how: str) -> Capabilities:
        changes: dict[str, Any] = {name: value, "decided": {**self.decided, name: how}}
        return replace(self, **changes)


def for_family(family: str) -> Capabilities:
    """What each family is documented (or known, for MLflow's own stores) to accept; the rest is probed.

    MLflow's own local stores run the installed MLflow, so their dialect is known except ``IS NULL``
    (only in recent MLflow releases). Servers are probed: the same ``http://`` may be an old
    open-source server or a gateway speaking a managed service's dialect. Limits follow
    backends/README.md: Azure ML 50 tags a run, keys ≤ 100, values ≤ 1,000 characters; Databricks
    1,600 tags a run and at most 10 experiment ids a search; MLflow keys ≤ 250, values ≤ 8,000.
    """
    known = "known for this backend"
    if family in ("sql", "file"):
        yes = dict.fromkeys(("tag_ilike", "start_time", "run_id_in", "many_experiments"), known)
        return Capabilities(
            family, tag_ilike=True, start_time=True, run_id_in=True, many_experiments=True,
            offset_tokens=True, max_key_length=250, max_value_length=8000, delete_tags=True, workers=1,
            decided=yes,
        )  # fmt: skip
    if family == "http":
        return Capabilities(family, max_key_length=250, max_value_length=8000, workers=8)
    if family == "azureml":
        return Capabilities(
            family, tag_ilike=False, run_id_in=True, offset_tokens=False, page_size=500, max_tags_per_run=50,
            max_key_length=100, max_value_length=1000, workers=8,
            decided={"tag_ilike": known, "run_id_in": known},
        )  # fmt: skip
    if family == "databricks":
        return Capabilities(
            family, many_experiments=False, offset_tokens=False, max_tags_per_run=1600, max_key_length=250,
            max_value_length=5000, workers=8, decided={"many_experiments": known},
        )  # fmt: skip
    return Capabilities(family, offset_tokens=False, workers=8)


# ------------------------------------------------------------------------------------------ clauses


def _quote(value: str) -> str:
    return "'" + value.replace("'", "") + "'"


@dataclass(frozen=True)
class Clause:
    """One condition of a run search, as text for the server and as a test on a run for the client.

    ``kind`` is ``tag`` (``=``, ``ILIKE``, ``IS NULL``), ``start_time`` (``>=``, ``<``) or ``run_id``
    (``IN``). ``exact`` (with ``ILIKE``): the values a server without ``ILIKE`` is asked for one ``=``
    at a time, before falling back to no server filter at all.
    """

    kind: str
    op: str
    key: str = ""
    value: str | int | tuple[str, ...] | None = None
    exact: tuple[str, ...] = ()

    @property
    def form(self) -> str | None:
        """The filter form this clause needs; ``None``: accepted everywhere (tag ``=``)."""
        if self.kind == "tag":
            return {"ILIKE": "tag_ilike", "IS NULL": "tag_is_null"}.get(self.op)
        return {"start_time": "start_time", "run_id": "run_id_in"}.get(self.kind)

    def text(self) -> str:
        if self.kind == "tag":
            if self.op == "IS NULL":
                return f"tags.`{self.key}` IS NULL"
            return f"tags.`{self.key}` {self.op} {_quote(str(self.value))}"
        if self.kind == "start_time":
            return f"attributes.start_time {self.op} {int(self.value)}"  # type: ignore[arg-type]
        values = self.value if isinstance(self.value, tuple) else ()
        return f"attributes.run_id IN ({', '.join(_quote(v) for v in values)})"

    def with_equal(self, value: str) -> Clause:
        return Clause("tag", "=", self.key, value)

    def matches(self, run: Any) -> bool:
        """The server's answer to this clause, for one MLflow ``Run`` (filtering on the client)."""
        if self.kind == "tag":
            tags = run.data.tags
            if self.op == "IS NULL":
                return self.key not in tags
            current = tags.get(self.key)
            if current is None:
                return False
            if self.op == "=":
                return bool(current == self.value)
            if self.op == "ILIKE":
                return _like(str(self.value)).fullmatch(current) is not None
            raise ValueError(f"no client-side form of tag {self.op}")
        if self.kind == "start_time":
            started = run.info.start_time
            if started is None:
                return False
            return bool(started >= self.value if self.op == ">=" else started < self.value)
        values = self.value if isinstance(self.value, tuple) else ()
        return bool(run.info.run_id in values)


_LIKE_CACHE: dict[str, re.Pattern[str]] = {}


def _like(pattern: str) -> re.Pattern[str]:
    """SQL ``ILIKE``: ``%`` any run of characters, ``_`` one character, case ignored."""
    compiled = _LIKE_CACHE.get(pattern)
    if compiled is None:
        body = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
        compiled = _LIKE_CACHE[pattern] = re.compile(body, re.IGNORECASE | re.DOTALL)
    return compiled


def tag(key: str, op: str, value: str | None = None, *, exact: tuple[str, ...] = ()) -> Clause:
    return Clause("tag", op, key, value, exact)


def started(op: str, ms: int) -> Clause:
    return Clause("start_time", op, value=int(ms))


def id_in(ids: tuple[str, ...]) -> Clause:
    return Clause("run_id", "IN", value=tuple(i for i in ids if "'" not in i))


@dataclass(frozen=True)
class Search:
    """One request series the server answers: experiments, filter text, and what the client checks."""

    experiment_ids: tuple[str, ...]
    filter_string: str
    client: tuple[Clause, ...] = ()
    #: the filter forms sent to the server (a refusal of the search says one of them is refused)
    forms: tuple[str, ...] = ()
