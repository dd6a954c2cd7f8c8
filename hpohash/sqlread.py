"""A read-only path to the runs of a SQL-backed tracking store, and to config files on a local
artifact root, without MLflow.

MLflow's ``search_runs`` builds an entity object for every tag of every run and pages with
``LIMIT/OFFSET``; on a SQLite file of 30,000 runs the same data is read by a few set-based queries
about ten times faster, and without importing MLflow at all. This reader returns exactly what
``search_runs`` would: the same runs (experiments, lifecycle stages, the filters ``loading`` sends,
translated to SQL here), in the same order (``start_time DESC, run_uuid``), reduced by the same
``Reducer``. It is used only on a schema revision hpohash has been tested against that is also
the installed MLflow's own (a schema MLflow would refuse is left to MLflow to refuse); anything
else, a filter it does not know included, is ``SqlUnavailable`` and the caller reads through
MLflow. It never writes: SQLite is opened read-only, PostgreSQL sessions are read-only.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import sqlite3
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlparse

from hpohash.errors import UsageError
from hpohash.perf import gc_paused
from hpohash.records import Experiment, Fields, Keep, Reducer, RunRecord

#: URI schemes (before any ``+driver``) of the databases this reader speaks to
SQL_SCHEMES = ("sqlite", "postgresql", "mysql")
#: runs per round of child queries (tags, params, metrics): well below SQLite's bound-parameter limit
CHUNK = 500
RUN_NAME_TAG = "mlflow.runName"
#: the expanding parameter that carries a chunk's run ids in every per-chunk statement
IDS = "hpohash_run_ids"
#: MLflow's alembic revisions of the 3.x schema, 3.0's last one through 3.17.2's head: the tables read
#: here (experiments, runs, tags, params, latest_metrics) have the same columns in all of them
KNOWN_REVISIONS = frozenset(
    (
        "6953534de441",
        "bda7b8c39065",
        "cbc13b556ace",
        "770bee3ae1dd",
        "a1b2c3d4e5f6",
        "de4033877273",
        "1a0cddfcaa16",
        "534353b11cbc",
        "71994744cf8e",
        "3da73c924c2f",
        "bf29a5ff90ea",
        "1bd49d398cd23",
        "b7c8d9e0f1a2",
        "5d2d30f0abce",
        "c9d4e5f6a7b8",
        "2c33131f4dae",
        "d3e4f5a6b7c8",
        "d0e1f2a3b4c5",
        "c8d9e0f1a2b3",
        "1b5f0d9ad7c1",
        "e1f2a3b4c5d6",
        "76601a5f987d",
        "c3d6457b6d8a",
        "a5b4c3d2e1f0",
        "ae8bbe7743c9",
        "7d34483879f0",
        "da6fb0208061",
        "89d3d66ed43f",
        "b7e4c1a90f23",
        "a8b9c0d1e2f3",
        "c1d2e3f4a5b6",
        "c3d9e7f1a2b4",
        "6f8d9c3b2a1e",
        "1971f2d9a75b",
        "17e22815139b",
        "b7e2c1a4d9f3",
        "75868b020152",
        "dc11669786a5",
    )
)
_ACTIVE, _DELETED = "active", "deleted"


class SqlUnavailable(Exception):
    """Why this store (or this one request) cannot be read by SQL here; the message is one line."""


def sql_scheme(uri: str) -> str | None:
    """``sqlite``/``postgresql``/``mysql`` for a URI naming such a database, else None."""
    scheme = urlparse(uri).scheme.split("+", 1)[0].lower()
    return scheme if scheme in SQL_SCHEMES else None


@functools.cache
def installed_head() -> str | None:
    """The head revision of the installed MLflow's migrations, read from its files (finding the
    package does not import it): MLflow refuses a store at any other revision."""
    spec = importlib.util.find_spec("mlflow")
    if spec is None or not spec.submodule_search_locations:
        return None
    versions = Path(next(iter(spec.submodule_search_locations))) / "store" / "db_migrations" / "versions"
    revision = re.compile(r"^revision\s*(?::[^=]*)?=\s*['\"]([0-9a-f]+)['\"]", re.M)
    down = re.compile(r"^down_revision\s*(?::[^=]*)?=\s*['\"]([0-9a-f]+)['\"]", re.M)
    revs, downs = set(), set()
    for path in versions.glob("*.py"):
        text = path.read_text(encoding="utf-8", errors="replace")
        if m := revision.search(text):
            revs.add(m.group(1))
        downs.update(down.findall(text))
    heads = revs - downs
    return next(iter(heads)) if len(heads) == 1 else None


# ---------------------------------------------------------------------------------------- filters

_TAG = re.compile(r"tags\.`(?P<key>[^`]*)`\s+(?P<op>IS NOT NULL|IS NULL|!=|=|ILIKE|LIKE)(?:\s+'(?P<value>[^']*)')?")
_START = re.compile(r"attributes\.start_time\s*(?P<op>>=|<=|!=|=|>|<)\s*(?P<value>-?\d+)")
_RUN_IDS = re.compile(r"attributes\.run_id\s+IN\s+\((?P<ids>\s*'[^']*'(?:\s*,\s*'[^']*')*\s*)\)")
_AND = re.compile(r"\s+AND\s+")


@dataclass(frozen=True)
class Clause:
    """One clause of the filter language subset ``loading`` sends: on a tag, the start time, run ids."""

    kind: str  # "tag", "start_time", "run_id"
    op: str
    key: str = ""
    value: Any = None


def parse_filter(text: str) -> list[Clause]:
    """The clauses of a filter string; anything outside the subset is ``SqlUnavailable``."""
    out: list[Clause] = []
    pos, text = 0, text.strip()
    while pos < len(text):
        if out:
            sep = _AND.match(text, pos)
            if sep is None:
                raise SqlUnavailable(f"filter not translated to SQL here: {text!r}")
            pos = sep.end()
        if m := _TAG.match(text, pos):
            op = m.group("op")
            if (m.group("value") is None) != op.startswith("IS "):
                raise SqlUnavailable(f"filter not translated to SQL here: {text!r}")
            out.append(Clause("tag", op, m.group("key"), m.group("value")))
        elif m := _START.match(text, pos):
            out.append(Clause("start_time", m.group("op"), value=int(m.group("value"))))
        elif m := _RUN_IDS.match(text, pos):
            ids = tuple(re.findall(r"'([^']*)'", m.group("ids")))
            out.append(Clause("run_id", "IN", value=ids))
        else:
            raise SqlUnavailable(f"filter not translated to SQL here: {text!r}")
        pos = m.end()
    return out


# ---------------------------------------------------------------------------------------- reader


@dataclass(frozen=True)
class _Chunk:
    """The rows of one chunk of runs, grouped by run id."""

    runs: dict[str, Any]
    tags: dict[str, list[tuple[str, Any]]]
    params: dict[str, list[tuple[str, Any]]]
    metrics: dict[str, list[tuple[str, Any]]]


class SqlReader:
    """Experiments and runs of one MLflow SQL store, read by SQLAlchemy Core on one connection."""

    def __init__(self, uri: str, *, display_uri: str, connect_timeout_s: float = 30.0) -> None:
        import sqlalchemy as sa

        scheme = sql_scheme(uri)
        if scheme is None:
            raise SqlUnavailable(f"{display_uri} is not a SQL database (sqlite, postgresql, mysql)")
        self.sa = sa
        self.dialect = scheme
        self.display_uri = display_uri
        self._engine = self._make_engine(uri, scheme, connect_timeout_s)
        self._conn = self._engine.connect()
        self._reopen = lambda: self._make_engine(uri, scheme, connect_timeout_s)
        self._inherited: list[Any] = []
        #: per-chunk statements, built once (``_statement``) and expanded once per chunk length (``_all_ids``)
        self._statements: dict[Any, Any] = {}
        self._expanded: dict[tuple[Any, int], tuple[str, dict[str, Any], list[str], Sequence[str] | None]] = {}
        try:
            self.revision = self._check_schema()
        except BaseException:
            self.close()
            raise
        t = sa.table
        c = sa.column
        self.experiments = t("experiments", c("experiment_id"), c("name"), c("lifecycle_stage"), c("creation_time"))
        self.runs = t(
            "runs",
            c("run_uuid"),
            c("name"),
            c("experiment_id"),
            c("artifact_uri"),
            c("lifecycle_stage"),
            c("status"),
            c("start_time"),
        )
        self.tags = t("tags", c("run_uuid"), c("key"), c("value"))
        self.params = t("params", c("run_uuid"), c("key"), c("value"))
        self.metrics = t("latest_metrics", c("run_uuid"), c("key"), c("value"), c("is_nan"))

    def _make_engine(self, uri: str, scheme: str, connect_timeout_s: float) -> Any:
        sa = self.sa
        if scheme == "sqlite":
            # read-only, through SQLite's own URI: this reader can never create or change the file
            path = uri.split(":///", 1)[1] if ":///" in uri else ""
            if not path or path == ":memory:" or "?" in path:
                raise SqlUnavailable(f"{self.display_uri}: not a SQLite file this reader opens")
            target = f"file:{quote(os.path.abspath(path))}?mode=ro"
            return sa.create_engine(
                "sqlite://",
                creator=lambda: sqlite3.connect(target, uri=True, check_same_thread=False),
                poolclass=sa.pool.StaticPool,
            )
        timeout = max(1, int(connect_timeout_s))
        args: dict[str, Any] = {"connect_timeout": timeout}
        if scheme == "postgresql":
            args["options"] = "-c default_transaction_read_only=on"
        return sa.create_engine(uri, connect_args=args, poolclass=sa.pool.NullPool)

    def _check_schema(self) -> str:
        sa = self.sa
        try:
            rows = self._conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        except sa.exc.SQLAlchemyError as exc:
            raise SqlUnavailable("no MLflow schema revision (alembic_version) in the database") from exc
        finally:
            self._conn.rollback()
        if len(rows) != 1:
            raise SqlUnavailable(f"{len(rows)} schema revisions in alembic_version, expected one")
        revision = str(rows[0][0])
        if revision not in KNOWN_REVISIONS:
            raise SqlUnavailable(f"schema revision {revision} is not one hpohash has been tested against")
        head = installed_head()
        if revision != head:
            raise SqlUnavailable(f"schema revision {revision} is not the installed MLflow's ({head})")
        columns = {col["name"] for col in sa.inspect(self._conn).get_columns("experiments")}
        if "workspace" in columns:
            other = self._conn.execute(sa.text("SELECT COUNT(*) FROM experiments WHERE workspace <> 'default'"))
            if other.scalar():
                raise SqlUnavailable("experiments in MLflow workspaces (left to MLflow's own store)")
        self._conn.rollback()
        return revision

    def close(self) -> None:
        self._conn.close()
        self._engine.dispose()

    def forked(self) -> None:
        """In a forked child (``hpohash.forked``): a connection of its own. The parent's is kept
        referenced and never closed here: closing a PostgreSQL connection ends it for the parent too,
        and SQLite forbids using a connection across a fork."""
        self._inherited.append((self._engine, self._conn))
        self._engine = self._reopen()
        self._conn = self._engine.connect()

    def _all(self, stmt: Any) -> list[Any]:
        """Every row of one read as the driver's own tuples. The columns are untyped, so SQLAlchemy
        would convert nothing; its ``Row`` objects alone cost ~1 µs a row (a third of the read)."""
        return self._rows(lambda: self._conn.execute(stmt))

    def _rows(self, execute: Callable[[], Any]) -> list[Any]:
        """The rows of the result ``execute()`` gives (``_all``, ``_all_ids``), the transaction ended."""
        try:
            result = execute()
            try:
                return list(result.cursor.fetchall()) if result.returns_rows else []
            finally:
                result.close()
        finally:
            self._conn.rollback()  # no transaction (and on SQLite no read lock) held between reads

    def _statement(self, key: Any, build: Callable[[], Any]) -> Any:
        """The statement ``build()`` makes, built and compiled once per ``key`` for the whole read."""
        found = self._statements.get(key)
        if found is None:
            stmt = build()
            found = self._statements[key] = (stmt, stmt.compile(dialect=self._engine.dialect))
        return found

    def _all_ids(self, key: Any, build: Callable[[], Any], ids: list[str]) -> list[Any]:
        """``_all`` of a statement whose run ids are the expanding parameter ``IDS``, bound to ``ids``.

        SQLAlchemy coerces every value of ``in_(ids)`` and expands the 500 parameters again on every
        execution: ~1.5 s of a 100,000-run read. Here the statement is compiled once and expanded once
        per chunk length; only the values change between chunks.
        """
        stmt, compiled = self._statement(key, build)
        prepared = self._expanded.get((key, len(ids)))
        if prepared is None:
            state = compiled.construct_expanded_state({IDS: ids})
            if state.processors:  # a typed column: values converted per execution, as SQLAlchemy does
                return self._all(stmt.params({IDS: ids}))
            prepared = (state.statement, dict(state.parameters), state.parameter_expansion[IDS], state.positiontup)
            self._expanded[(key, len(ids))] = prepared
        sql, values, names, order = prepared
        values = {**values, **dict(zip(names, ids, strict=True))}
        args = tuple(values[name] for name in order) if order is not None else values
        return self._rows(lambda: self._conn.exec_driver_sql(sql, args))

    # ---------------------------------------------------------------- comparisons as MLflow makes them

    def _compare(self, column: Any, op: str, value: Any) -> Any:
        """A string comparison the way MLflow's ``SearchUtils.get_sql_comparison_func`` makes it: on
        MySQL, ``=``/``!=``/``LIKE`` also compare the bytes (MySQL compares case-insensitively)."""
        sa = self.sa
        if self.dialect == "mysql" and op in ("=", "!=", "LIKE"):
            binary = sa.cast(column, sa.LargeBinary)
            raw = sa.cast(sa.literal(value), sa.LargeBinary)
            if op == "=":
                return sa.and_(column == value, binary == raw)
            if op == "!=":
                return sa.or_(column != value, binary != raw)
            return sa.and_(column.like(value), binary.like(raw))
        if op == "=":
            return column == value
        if op == "!=":
            return column != value
        if op == "LIKE":
            return column.like(value)
        return column.ilike(value)

    def _where(self, experiment_ids: Sequence[str], filter_string: str, include_deleted: bool) -> list[Any]:
        sa, runs = self.sa, self.runs
        try:
            exp_ids = [int(e) for e in experiment_ids]
        except ValueError as exc:
            raise SqlUnavailable(f"experiment id not an integer: {exc}") from exc
        stages = [_ACTIVE, _DELETED] if include_deleted else [_ACTIVE]
        where = [runs.c.experiment_id.in_(exp_ids), runs.c.lifecycle_stage.in_(stages)]
        for clause in parse_filter(filter_string):
            if clause.kind == "start_time":
                where.append(_ORDER_OPS[clause.op](runs.c.start_time, clause.value))
            elif clause.kind == "run_id":
                where.append(runs.c.run_uuid.in_(list(clause.value)))
            elif clause.op in ("IS NULL", "IS NOT NULL"):
                tags = self.tags
                has = sa.select(tags.c.run_uuid).where(tags.c.run_uuid == runs.c.run_uuid, tags.c.key == clause.key)
                where.append(~has.exists() if clause.op == "IS NULL" else has.exists())
            else:
                tags = self.tags
                matching = sa.select(tags.c.run_uuid).where(
                    self._compare(tags.c.key, "=", clause.key), self._compare(tags.c.value, clause.op, clause.value)
                )
                where.append(runs.c.run_uuid.in_(matching))
        return where

    # ---------------------------------------------------------------- experiments

    def _experiment(self, column: Any, value: Any) -> Experiment | None:
        """The active or deleted experiment whose ``column`` equals ``value`` (as ``get_experiment*``)."""
        exps = self.experiments
        rows = self._all(
            self.sa.select(exps.c.experiment_id, exps.c.name).where(
                column == value, exps.c.lifecycle_stage.in_([_ACTIVE, _DELETED])
            )
        )
        return Experiment(str(rows[0][0]), rows[0][1]) if rows else None

    def resolve_experiments(self, names: Sequence[str], ids: Sequence[str]) -> list[Experiment]:
        """As ``Tracking.resolve_experiments``: deleted experiments too, first of each id."""
        out: list[Experiment] = []
        for name in names:
            exp = self._experiment(self.experiments.c.name, name)
            if exp is None:
                raise UsageError(f"experiment '{name}' not found at {self.display_uri}")
            out.append(exp)
        for eid in ids:
            try:
                found = self._experiment(self.experiments.c.experiment_id, int(eid or "0"))
            except ValueError:
                found = None
            if found is None:
                raise UsageError(f"experiment id '{eid}' not found at {self.display_uri}")
            out.append(found)
        unique: dict[str, Experiment] = {}
        for e in out:
            unique.setdefault(e.experiment_id, e)
        return list(unique.values())

    def all_experiment_ids(self) -> list[str]:
        """Active experiments in ``search_experiments``' order (newest first, then by id)."""
        exps = self.experiments
        stmt = (
            self.sa.select(exps.c.experiment_id)
            .where(exps.c.lifecycle_stage == _ACTIVE)
            .order_by(exps.c.creation_time.desc(), exps.c.experiment_id)
        )
        return [str(row[0]) for row in self._all(stmt)]

    def experiment_name(self, experiment_id: str) -> str | None:
        exps = self.experiments
        try:
            number = int(experiment_id or "0")
        except ValueError:
            return None
        rows = self._all(self.sa.select(exps.c.name).where(exps.c.experiment_id == number))
        return str(rows[0][0]) if rows else None

    # ---------------------------------------------------------------- runs

    def scan(
        self,
        experiment_ids: Sequence[str],
        *,
        filter_string: str = "",
        include_deleted: bool = True,
        on_page: Callable[[int], None] | None = None,
        reducer: Reducer | None = None,
        say: Callable[[str], None] | None = None,
    ) -> Iterator[RunRecord]:
        """The runs ``search_runs`` returns for the same arguments, in its order.

        The ordered run ids come first (one query, ~40 bytes a run), then each chunk of them is read
        whole in three or four queries (runs, kept tags, params, latest metrics) and reduced before the
        next, so only a chunk's raw rows are alive at a time and no query pages by offset. Where a
        second process may be forked (``hpohash.forked``), it reads every other chunk meanwhile
        (``say``: the ``--verbose`` line telling so).
        """
        reducer = reducer or Reducer()
        where = self._where(experiment_ids, filter_string, include_deleted)  # SqlUnavailable before any read
        runs = self.runs
        ordered = self.sa.select(runs.c.run_uuid).where(*where).order_by(runs.c.start_time.desc(), runs.c.run_uuid)
        ids = [row[0] for row in self._all(ordered)]
        chunks: list[list[str] | None] = [ids[start : start + CHUNK] for start in range(0, len(ids), CHUNK)]
        del ids  # each chunk's ids are let go once it is read (``_chunk_fields``)
        with gc_paused():
            for fields in self._chunk_fields(chunks, reducer, say):
                # no young collection per chunk, as MLflow's pages have: a chunk's rows, fields and records
                # make no reference cycle (none found at 100,000 runs on SQLite and PostgreSQL), and each
                # collection walked the chunk's new records for nothing (0.1 s at 100,000 runs)
                records = [reducer.make(f) for f in fields]
                del fields
                if on_page is not None:
                    on_page(len(records))
                yield from records
                del records

    def _chunk_fields(
        self, chunks: list[list[str] | None], reducer: Reducer, say: Callable[[str], None] | None
    ) -> Iterator[list[Fields]]:
        """Each chunk's runs as ``Reducer.fields``, in order.

        Reading is most of a scan's time, and Python work (the driver's rows, grouping them): a thread
        would share the interpreter lock with the building of records. So a forked second process reads
        every other chunk and sends its fields (``marshal``, the key tuples and repeated strings once a
        chunk) while this one reads the rest and builds every record. If the child fails, this process
        reads its chunks too: the same records either way.
        """
        from hpohash import forked

        runs = sum(len(chunk or ()) for chunk in chunks)
        why = forked.why_not(runs) if len(chunks) > 1 else "one chunk"
        theirs = [chunk or [] for chunk in chunks[1::2]] if why is None else []
        got, sent = 0, len(theirs)
        reader = lambda: (self._fields(chunk, reducer) for chunk in theirs)  # noqa: E731 - run in the child
        started = (
            forked.forked(reader, prepare=self.forked, stream=True, codec=forked.MARSHAL) if theirs else nullcontext()
        )
        with started as child:
            # the child has its own copy of the lists: here each chunk's ids are let go once it is read,
            # so the records' run ids (a copy from the child's) are the only ones left at the scan's end
            theirs.clear()
            received = child.received() if child is not None else iter(())
            for i, chunk in enumerate(chunks):
                chunks[i] = None
                fields = next(received, None) if i % 2 else None
                if fields is None:
                    fields = self._fields(chunk or [], reducer)
                else:
                    got += 1
                del chunk
                yield fields
            for _ in received:  # the end mark: the child is reaped, and ``ok`` says how it ended
                pass
        if say is not None and sent:
            if child is not None and child.ok:
                say(f"read {got} of {len(chunks)} chunks of runs in a second process")
            else:
                say(f"the second process reading runs stopped after {got} of {sent} chunks: read the rest here")

    def _fields(self, chunk: list[str], reducer: Reducer) -> list[Fields]:
        """One chunk of runs read and reduced to ``Reducer.fields``."""
        rows = self._read_chunk(chunk, reducer.keep)
        out: list[Fields] = []
        for rid in chunk:
            row = rows.runs.get(rid)
            if row is None:  # deleted from the store since the ids were read (search_runs: not returned)
                continue
            run_tags = rows.tags.get(rid, [])
            name = row[1]
            if not name:  # as MLflow: runs logged before runs.name existed carry it in a tag only
                name = next((v for k, v in run_tags if k == RUN_NAME_TAG), name)
            out.append(
                reducer.fields(
                    run_id=rid,
                    experiment_id=str(row[2]),
                    name=name,
                    artifact_uri=row[3],
                    lifecycle_stage=row[4],
                    status=row[5],
                    start_time=row[6],
                    tags=run_tags,
                    params=rows.params.get(rid, ()),
                    metrics=rows.metrics.get(rid, ()),
                )
            )
        return out

    def get_run(self, run_id: str) -> RunRecord | None:
        """One run with all of its tags, params and metrics, or None when there is none."""
        reducer = Reducer()
        got = self._fields([run_id], reducer)
        return reducer.make(got[0]) if got else None

    def _read_chunk(self, ids: list[str], keep: Keep) -> _Chunk:
        """The rows of a chunk of runs: a query each for the runs, kept tags, params and (unless they
        are left out: ``latest_metric``) latest metrics."""
        sa, runs = self.sa, self.runs
        rows = self._all_ids(
            "runs",
            lambda: sa.select(
                runs.c.run_uuid,
                runs.c.name,
                runs.c.experiment_id,
                runs.c.artifact_uri,
                runs.c.lifecycle_stage,
                runs.c.status,
                runs.c.start_time,
            ).where(runs.c.run_uuid.in_(sa.bindparam(IDS, expanding=True))),
            ids,
        )
        tag_keys = None if keep.tags is None else sorted(keep.tags | {RUN_NAME_TAG})
        tags = self._children(self.tags, ids, tag_keys, keep.tag_prefixes if keep.tags is not None else ())
        params = self._children(self.params, ids, None if keep.params is None else sorted(keep.params))
        metrics: dict[str, list[tuple[str, Any]]] = {}
        if keep.metrics is None or keep.metrics:  # empty: read later, one metric (``latest_metric``)
            names = None if keep.metrics is None else sorted(keep.metrics)
            metrics = self._children(self.metrics, ids, names, nan=True)
        return _Chunk({row[0]: row for row in rows}, tags, params, metrics)

    def latest_metric(self, run_ids: Sequence[str], key: str) -> dict[str, float]:
        """The latest value of one metric of each run that has it (NaN where MLflow stored one)."""
        out: dict[str, float] = {}
        for start in range(0, len(run_ids), CHUNK):
            found = self._children(self.metrics, list(run_ids[start : start + CHUNK]), [key], nan=True)
            out.update((rid, float(pairs[0][1])) for rid, pairs in found.items())
        return out

    def _children(
        self,
        table: Any,
        ids: list[str],
        keys: Iterable[str] | None,
        prefixes: tuple[str, ...] = (),
        *,
        nan: bool = False,
    ) -> dict[str, list[tuple[str, Any]]]:
        """(key, value) pairs per run of one child table, only the keys kept (filtered in SQL)."""
        sa = self.sa
        kept = None if keys is None else tuple(keys)

        def build() -> Any:
            columns = [table.c.run_uuid, table.c.key, table.c.value] + ([table.c.is_nan] if nan else [])
            stmt = sa.select(*columns).where(table.c.run_uuid.in_(sa.bindparam(IDS, expanding=True)))
            if kept is not None:
                wanted = [table.c.key.in_(list(kept))]
                wanted += [table.c.key.like(_like_prefix(p), escape="\\") for p in prefixes]
                stmt = stmt.where(sa.or_(*wanted))
            return stmt

        out: dict[str, list[tuple[str, Any]]] = {}
        rows = self._all_ids((table.name, kept, prefixes, nan), build, ids)
        if nan:
            for rid, key, value, is_nan in rows:
                out.setdefault(rid, []).append((key, float("nan") if is_nan else value))
        else:
            for rid, key, value in rows:
                out.setdefault(rid, []).append((key, value))
        return out


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


_ORDER_OPS: dict[str, Callable[[Any, int], Any]] = {
    ">=": lambda col, v: col >= v,
    "<=": lambda col, v: col <= v,
    ">": lambda col, v: col > v,
    "<": lambda col, v: col < v,
    "=": lambda col, v: col == v,
    "!=": lambda col, v: col != v,
}


# ---------------------------------------------------------------------------------------- artifacts

INVALID_PATH = "Invalid path: resolved path is outside the artifact directory"


class ArtifactRefused(Exception):
    """What MLflow's local artifact repository raises, with the same code and message, so the caller
    classifies and reports it exactly as it does MLflow's."""

    def __init__(self, message: str, error_code: str) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code


@dataclass(frozen=True)
class FileInfo:
    path: str
    is_dir: bool
    file_size: int | None


def _url2pathname(path: str) -> str:
    """``urllib.request.url2pathname``, as MLflow converts a ``file:`` URI; on POSIX that is ``unquote``,
    without importing ``urllib.request`` (and ``http.client``, ``ssl``): ~20 ms of every verify."""
    if os.name == "nt":
        from urllib.request import url2pathname

        return url2pathname(path)
    return unquote(path)


class LocalArtifacts:
    """The two calls ``Tracking.fetch_configs`` makes of an artifact repository, for an artifact URI
    on the local file system, with the checks of MLflow's ``LocalArtifactRepository`` (a path that
    resolves outside the run's artifact directory is refused) and without importing MLflow."""

    def __init__(self, artifact_dir: str) -> None:
        self.artifact_dir = artifact_dir

    @classmethod
    def for_uri(cls, artifact_uri: str) -> LocalArtifacts | None:
        """The local repository of a ``file:`` (or plain absolute path) artifact URI, else None."""
        parsed = urlparse(artifact_uri)
        if parsed.scheme == "file" and parsed.netloc in ("",):
            return cls(_url2pathname(parsed.path))
        if parsed.scheme == "" and artifact_uri.startswith("/"):
            return cls(_url2pathname(artifact_uri))
        return None

    @functools.cached_property
    def _base(self) -> str:
        """The artifact directory with its links resolved, once per run (every listing and read checks
        against it)."""
        return os.path.realpath(self.artifact_dir)

    def _within(self, path: str) -> None:
        """``path``, its links resolved, is the artifact directory or inside it (MLflow's check)."""
        real, base = os.path.realpath(path), self._base
        if real != base and not real.startswith(base.rstrip(os.sep) + os.sep):
            raise ArtifactRefused(INVALID_PATH, "INVALID_PARAMETER_VALUE")

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        if path:
            path = os.path.normpath(path)
        list_dir = os.path.join(self.artifact_dir, path) if path else self.artifact_dir
        self._within(list_dir)
        if not os.path.isdir(list_dir):
            return []
        infos = []
        with os.scandir(list_dir) as entries:
            for entry in entries:  # is_dir and stat follow links, as os.path.isdir and getsize do
                rel = os.path.relpath(entry.path, self.artifact_dir)
                if entry.is_dir():
                    infos.append(FileInfo(rel, True, None))
                else:
                    infos.append(FileInfo(rel, False, entry.stat().st_size))
        return sorted(infos, key=lambda f: f.path)

    def read_bounded(self, remote_file_path: str, limit: int) -> bytes:
        """At most ``limit + 1`` bytes of one listed file, read in place (nothing is copied, so a huge
        or endless file costs no disk and no more memory than the cap)."""
        parts = remote_file_path.split("/")
        if "#" in remote_file_path or ".." in parts or remote_file_path.startswith("/") or "\\" in remote_file_path:
            raise ArtifactRefused("Invalid path", "INVALID_PARAMETER_VALUE")
        source = os.path.join(self.artifact_dir, os.path.normpath(remote_file_path))
        self._within(source)
        rel = lambda: os.path.relpath(source, self.artifact_dir)  # noqa: E731 - named in a refusal only
        if not os.path.exists(source):
            raise ArtifactRefused(f"No such artifact: '{rel()}'", "RESOURCE_DOES_NOT_EXIST")
        # opened without blocking: a FIFO in the artifact directory would wait for a writer forever
        # (no deadline bounds a local read); anything but a regular file is refused
        fd = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ArtifactRefused(f"Not a regular file: '{rel()}'", "INVALID_PARAMETER_VALUE")
            with open(fd, "rb", closefd=False) as fh:
                return fh.read(limit + 1)
        finally:
            os.close(fd)
