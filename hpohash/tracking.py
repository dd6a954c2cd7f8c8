"""The one module that talks to MLflow: paged reads, config artifact fetches, batched tag writes.

Everything else works on the frozen ``RunRecord`` snapshots this module returns, so the audit,
planner and diff never call MLflow themselves and every command reads an experiment the same way.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast
from urllib.parse import urlparse

from hpohash import configs as cfg
from hpohash import partitions
from hpohash.capabilities import (
    EXPERIMENTS_PER_SEARCH,
    FORM_TEXT,
    Capabilities,
    Clause,
    Search,
    family_of,
    for_family,
    id_in,
)
from hpohash.context import carried
from hpohash.errors import BackendError, HpohashError, UsageError, missing_driver
from hpohash.forked import ForkedChildError
from hpohash.limits import read_bounded
from hpohash.network import Endpoint, Watch, WatchedClient, read_artifact
from hpohash.partitions import Split, read_parts, split_by_offsets, split_by_time
from hpohash.perf import collect_young, gc_paused
from hpohash.records import Experiment, Reducer, RunRecord
from hpohash.redact import add_uri_secrets, redact
from hpohash.settings import BackendSettings
from hpohash.sqlread import LocalArtifacts, SqlReader
from hpohash.text import one_line

PAGE_SIZE = 1000
#: Over HTTP, pages requested ahead of the one being reduced (see ``Tracking._pages``).
READ_AHEAD_HTTP = 2
#: Where ``start_time`` filters are refused, experiments whose runs are counted to balance the parts
#: (one-run requests, about log2(runs / page) + 3 each); with more, parts get equal counts of them
COUNTED_EXPERIMENTS = 16
ARTIFACT_DIR = "config"
DEFAULT_WORKERS_HTTP = 8

#: Tracking URIs without ``:`` that name a store, not a directory (MLflow's own list)
STORE_NAMES = ("databricks", "databricks-uc", "uc")


def default_tracking_uri() -> str:
    """MLflow's tracking URI when none is given. With MLflow not yet imported, nothing can have set
    one in this process, so ``MLFLOW_TRACKING_URI`` is what ``mlflow.get_tracking_uri`` would return:
    read directly, a read over SQL never imports MLflow."""
    if "mlflow" not in sys.modules and os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    import mlflow

    return str(mlflow.get_tracking_uri())


def redact_uri(uri: str) -> str:
    """The URI without any ``user:password@`` part and with secret query values masked."""
    try:
        parsed = urlparse(uri)
        if parsed.username or parsed.password:
            host = parsed.hostname or ""
            if parsed.port:
                host += f":{parsed.port}"
            uri = parsed._replace(netloc=host).geturl()
    except ValueError:  # a malformed port or netloc: the generic redaction still masks credentials
        pass
    return redact(uri)


def _unwatched(what: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``Watch.call`` for what is not a call to the store (a local artifact file): ``fn(*args)``."""
    return fn(*args)


def _download_listed_file(repo: Any, path: str, local: Path) -> str:
    """One file the listing just named, in one request. ``download_artifacts`` would first list the
    path again to learn whether it is a directory (two requests per file through the artifact proxy);
    ``_download_file`` is the abstract method every MLflow artifact repository implements (and
    ``download_artifacts`` calls), and the local name is ours, not the listing's."""
    repo._download_file(remote_file_path=path, local_path=str(local))
    return str(local)


def _offset_token(offset: int) -> str:
    """The page token MLflow's SQL and file stores return after ``offset`` runs (base64 of
    ``{"offset": N}``, ``SearchUtils.create_page_token``)."""
    return base64.b64encode(json.dumps({"offset": offset}).encode("utf-8")).decode("ascii")


def is_http(uri: str) -> bool:
    return urlparse(uri).scheme in ("http", "https")


def _record(run: Any) -> RunRecord:
    """One run with all of its tags, params and metrics (named runs, never a whole scan)."""
    return Reducer().record(run)


#: answers that mean "this backend does not accept that request" (a dialect), not "it failed"
REFUSALS = ("INVALID_PARAMETER_VALUE", "BAD_REQUEST")
#: a tag key nobody writes: deleting it tells whether the backend deletes tags, and changes nothing
DELETE_PROBE_KEY = "hpohash.probe.delete_tag"

#: what each backend was found to accept, by tracking URI, for the whole process: each filter form is
#: tried once per process, however many commands or library calls use the store
_LEARNED: dict[str, Capabilities] = {}
_LEARNED_LOCK = threading.RLock()


def error_code(exc: BaseException) -> str | None:
    code = getattr(exc, "error_code", None)
    return code if isinstance(code, str) else None


def is_refusal(exc: BaseException) -> bool:
    """A 400 / ``INVALID_PARAMETER_VALUE`` / ``BAD_REQUEST`` answer: the request's form is refused."""
    if error_code(exc) in REFUSALS:
        return True
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return status == 400


def _delete_refused(exc: BaseException) -> bool:
    """``delete_tag`` answered as a backend that has no such operation (or refuses it) answers."""
    if error_code(exc) == "RESOURCE_DOES_NOT_EXIST":  # no such run or tag: the operation itself exists
        return False
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return is_refusal(exc) or error_code(exc) in ("ENDPOINT_NOT_FOUND", "NOT_IMPLEMENTED") or status in (404, 405, 501)


class _Refused(Exception):
    """A search refused on its first page although every form in it was taken as accepted."""

    def __init__(self, error: Exception, forms: tuple[str, ...]) -> None:
        super().__init__(str(error))
        self.error, self.forms = error, forms


class _Unsplittable(Exception):
    """A run without a start time: no start-time range holds it, so the search is not split."""


def _serialised(fn: Callable[[int], None]) -> Callable[[int], None]:
    """``fn`` called by one thread at a time (progress callbacks are not written for threads)."""
    lock = threading.Lock()

    def call(n: int) -> None:
        with lock:
            fn(n)

    return call


def _part_reader(
    tracking: Tracking,
    search: Search,
    seen: set[str] | None,
    include_deleted: bool,
    on_page: Callable[[int], None] | None,
    reducer: Reducer,
    first: Any = None,
) -> Callable[[], Iterator[RunRecord]]:
    """One part's scan, started when ``read_parts`` calls it (in its own thread when there are several)."""
    return lambda: tracking._scan_search(search, seen, include_deleted, on_page, reducer, first)


def classify_error(exc: Exception, what: str) -> Exception:
    """Turn an MLflow/requests exception into UsageError (not found) or BackendError (anything else)."""
    if isinstance(exc, HpohashError):  # already one line naming what failed (a deadline, throttling)
        return exc
    driver = missing_driver(exc)  # the store's database driver is not installed: the user's set-up
    if driver is not None:
        return driver
    code = getattr(exc, "error_code", None)
    message = redact(one_line(getattr(exc, "message", None) or exc))
    if len(message) > 300:
        message = message[:300] + "…"
    if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "BAD_REQUEST"):
        return UsageError(f"{what}: {message}")
    return BackendError(f"{what}: tracking backend failed: {message}")


def configure_process() -> None:
    """What the ``hpohash`` command sets for its own process (never done for a library caller):
    MLflow's INFO lines off. MLflow's retry settings are left as they are (its defaults suit the
    managed services that throttle); the bounds on time are hpohash's own (``hpohash.network``)."""
    # their INFO lines (DB migrations) are not our output; MLflow sets its own logger's level when it
    # is imported (later, and only by the commands that need it), from this variable
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # "Failed to create databricks SDK workspace client ... Falling back": the error that follows
    # says what is wrong, in one line
    logging.getLogger("mlflow.utils.databricks_utils").setLevel(logging.ERROR)


class Tracking:
    """A connection to one tracking store."""

    def __init__(
        self, tracking_uri: str | None = None, *, create: bool = False, settings: BackendSettings | None = None
    ) -> None:
        uri = tracking_uri or default_tracking_uri()
        if not isinstance(uri, str):
            uri = str(uri)
        add_uri_secrets(uri)
        self._check_local(uri, create=create)
        self.uri = uri
        self.display_uri = redact_uri(uri)
        self.http = is_http(uri)
        self.settings = settings or BackendSettings()
        #: where MLflow's client goes: MLflow refuses ``databricks-uc`` as a tracking URI (it names
        #: Unity Catalog's model registry); the runs of that workspace are in its ``databricks`` store
        self.store_uri = uri
        if uri == "databricks-uc" or uri.startswith("databricks-uc://"):
            self.store_uri = "databricks" + uri[len("databricks-uc") :]
        #: every request's bounds (deadline, throttling, waiting lines): ``hpohash.network``
        self.watch = Watch(Endpoint.of(self.store_uri, self.display_uri), self.settings)
        self._client: Any = None
        self.family = family_of(uri)
        #: a store reached over the network (concurrent reads and writes pay there)
        self.remote = self.family not in ("sql", "file")
        self._said: set[str] = set()
        #: how runs are read, and why (one line each; the CLI prints them under --verbose)
        self.notes: list[str] = []
        #: in a second process forked by ``hpohash.forked`` (``forked``)
        self._in_child = False
        self._sql: SqlReader | None = None if create else self._open_sql()

    @property
    def client(self) -> Any:
        """MLflow's client, made (and MLflow imported) on first use: writes, HTTP, non-file artifacts,
        and every read when the store is not read by SQL."""
        if self._client is None:
            from mlflow import MlflowClient

            self._client = WatchedClient(MlflowClient(tracking_uri=self.store_uri), self.watch)
        return self._client

    # ---------------------------------------------------------------- the direct SQL read (sqlread)

    def _note(self, line: str) -> None:
        line = redact(one_line(line.replace(self.uri, self.display_uri)))
        self.notes.append(line)
        if self.settings.verbose:
            sys.stderr.write(f"hpohash: {line}\n")

    def _open_sql(self) -> SqlReader | None:
        """The SQL reader when ``settings.read_via`` allows it and the store qualifies; else None,
        with a note saying why (``read_via="sql"``: a usage error instead)."""
        from hpohash import sqlread

        via = self.settings.read_via
        if via == "api":
            return None
        try:
            reader = sqlread.SqlReader(
                self.uri, display_uri=self.display_uri, connect_timeout_s=self.settings.connect_timeout_s
            )
        except sqlread.SqlUnavailable as exc:
            why = str(exc)
        except Exception as exc:  # noqa: BLE001 - any failure: MLflow reads the store instead
            why = f"{type(exc).__name__}: {exc}"
        else:
            self._note(f"reading runs by SQL (schema revision {reader.revision})")
            return reader
        if via == "sql":
            raise UsageError(f"--read-via sql: {redact(one_line(why.replace(self.uri, self.display_uri)))}")
        self._note(f"reading runs through MLflow's search_runs: {why}")
        return None

    def _sql_failed(self, exc: Exception) -> None:
        """A SQL read failed: the rest of the command reads through MLflow (``read_via="sql"``: an error)."""
        why = f"{type(exc).__name__}: {exc}"
        if self.settings.read_via == "sql":
            shown = redact(one_line(why.replace(self.uri, self.display_uri)))
            raise BackendError(f"--read-via sql: reading {self.display_uri} failed: {shown}") from exc
        self._note(f"reading runs through MLflow's search_runs from here on: the SQL read failed: {why}")
        if self._sql is not None:
            self._sql.close()
        self._sql = None

    def _via_sql(self, method: str, *args: Any) -> tuple[bool, Any]:
        """(True, the SQL reader's answer), or (False, None) when MLflow is to answer instead."""
        if self._sql is None:
            if self._in_child:
                raise ForkedChildError(f"{method}: no SQL reader in the second process")
            return False, None
        try:
            return True, getattr(self._sql, method)(*args)
        except HpohashError:
            raise
        except Exception as exc:  # noqa: BLE001
            if self._in_child:
                raise
            self._sql_failed(exc)
            return False, None

    def forked(self) -> None:
        """In a process forked to audit part of the studies (``hpohash.forked``): the SQL reader gets a
        connection of its own, and a read that fails there fails that process, never falling back to
        MLflow: the parent then audits those studies itself, and says what it does."""
        self._in_child = True
        if self._sql is not None:
            self._sql.forked()

    def say(self, line: str) -> None:
        """One ``--verbose`` line about how this command reads (kept in ``notes``)."""
        if not self._in_child:
            self._note(line)

    def _scan_sql(
        self,
        sql: SqlReader,
        experiment_ids: Sequence[str],
        text: str,
        clauses: Sequence[Clause],
        filter_string: str,
        **kw: Any,
    ) -> Iterator[RunRecord]:
        """The runs by SQL (``text``: the whole filter); a failure part-way goes on through MLflow (the
        same order, so the runs already handed on are skipped), a filter not translated here reads this
        one scan through it."""
        from hpohash.sqlread import SqlUnavailable

        done: set[str] = set()
        try:
            for run in sql.scan(experiment_ids, filter_string=text, say=self.say, **kw):
                done.add(run.run_id)
                yield run
            return
        except SqlUnavailable as exc:
            if self.settings.read_via == "sql":
                raise UsageError(f"--read-via sql: {exc}") from exc
            self._note(f"one scan through MLflow's search_runs: {exc}")
        except HpohashError:
            raise
        except Exception as exc:  # noqa: BLE001
            self._sql_failed(exc)
        for run in self._scan_api(experiment_ids, filter_string=filter_string, clauses=clauses, **kw):
            if run.run_id not in done:
                yield run

    @staticmethod
    def _check_local(uri: str, *, create: bool) -> None:
        """MLflow silently creates a missing SQLite file or store directory; a typo'd path should be
        an error instead. Only paths are checked: store names (``databricks``) and every other
        scheme (``databricks://PROFILE``, ``azureml://``, a plugin's) are MLflow's to reach."""
        if create or not uri or uri in STORE_NAMES:
            return
        parsed = urlparse(uri)
        scheme = parsed.scheme.lower()
        if scheme == "sqlite":
            path = uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else ""
            if path and path != ":memory:" and not Path(path).exists():
                raise UsageError(f"tracking store {uri}: no such SQLite file")
        elif family_of(uri) == "file":  # a bare path, file://, or a Windows drive letter
            path = parsed.path if scheme == "file" else uri
            if not Path(path).exists():
                raise UsageError(f"tracking store {uri}: no such directory")

    # ---------------------------------------------------------------- experiments and runs

    def resolve_experiments(self, names: Sequence[str], ids: Sequence[str]) -> list[Experiment]:
        """Experiments by name and id; an unknown one is a usage error naming it."""
        ok, got = self._via_sql("resolve_experiments", names, ids)
        if ok:
            return list(got)
        out: list[Experiment] = []
        for name in names:
            try:
                exp = self.client.get_experiment_by_name(name)
            except Exception as exc:  # noqa: BLE001
                raise classify_error(exc, f"experiment '{name}'") from exc
            if exp is None:
                raise UsageError(f"experiment '{name}' not found at {self.display_uri}")
            out.append(Experiment(exp.experiment_id, exp.name))
        for eid in ids:
            try:
                exp = self.client.get_experiment(eid)
            except Exception as exc:  # noqa: BLE001
                err = classify_error(exc, f"experiment id '{eid}'")
                if isinstance(err, UsageError):
                    raise UsageError(f"experiment id '{eid}' not found at {self.display_uri}") from exc
                raise err from exc
            out.append(Experiment(exp.experiment_id, exp.name))
        unique: dict[str, Experiment] = {}
        for e in out:
            unique.setdefault(e.experiment_id, e)  # first of each id, in the order given
        return list(unique.values())

    def all_experiment_ids(self) -> list[str]:
        ok, got = self._via_sql("all_experiment_ids")
        if ok:
            return list(got)
        from mlflow.entities import ViewType

        ids: list[str] = []
        token = None
        try:
            while True:
                page = self.client.search_experiments(
                    view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token
                )
                ids += [e.experiment_id for e in page]
                token = page.token
                if not token:
                    return ids
        except Exception as exc:  # noqa: BLE001
            raise classify_error(exc, "listing experiments") from exc

    # ---------------------------------------------------------------- dialect: probe, then fall back

    @property
    def capabilities(self) -> Capabilities:
        """What this backend accepts: its family's record, plus what this process has learned of it."""
        with _LEARNED_LOCK:
            caps = _LEARNED.get(self.uri)
            if caps is None:
                caps = _LEARNED[self.uri] = for_family(self.family)
            return caps

    @capabilities.setter
    def capabilities(self, caps: Capabilities) -> None:
        with _LEARNED_LOCK:
            _LEARNED[self.uri] = caps

    def _learn(self, name: str, value: bool | None, how: str) -> None:
        with _LEARNED_LOCK:
            caps = self.capabilities
            if value is None:  # distrusted: tried again on next use
                changes: dict[str, Any] = {name: None, "decided": {k: v for k, v in caps.decided.items() if k != name}}
                self.capabilities = replace(caps, **changes)
            else:
                self.capabilities = caps.learn(name, value, how)

    def _say_form(self, name: str, fallback: str = "") -> None:
        """``--verbose``: one line per filter form a command uses, saying where it is evaluated."""
        if not self.settings.verbose or name in self._said:
            return
        self._said.add(name)
        caps = self.capabilities
        how = caps.decided.get(name, "")
        where = "sent to the server" if caps.form(name) else f"evaluated here{fallback}"
        sys.stderr.write(f"hpohash: backend {self.family}: {FORM_TEXT[name]}: {where} ({how})\n")

    def _accepts(self, name: str, experiment_ids: Sequence[str], clause: Clause | None) -> bool:
        """Whether the backend takes this filter form: known, or tried once (``max_results=1``)."""
        with _LEARNED_LOCK:  # one probe per form per process, however many threads ask
            known = self.capabilities.form(name)
            if known is not None:
                return known
            from mlflow.entities import ViewType

            ids = list(experiment_ids)
            if name != "many_experiments":
                ids = ids[:EXPERIMENTS_PER_SEARCH]
            try:
                self.client.search_runs(
                    ids, filter_string=clause.text() if clause else "", run_view_type=ViewType.ALL, max_results=1
                )
            except Exception as exc:  # noqa: BLE001
                if not is_refusal(exc):
                    raise classify_error(exc, f"searching runs of experiment(s) {', '.join(ids)}") from exc
                reason = redact(one_line(getattr(exc, "message", None) or exc))[:120]
                self._learn(name, False, f"refused by the server when tried: {reason}")
                return False
            self._learn(name, True, "accepted by the server when tried")
            return True

    def plan_search(
        self, experiment_ids: Sequence[str], clauses: Sequence[Clause], filter_string: str = ""
    ) -> list[Search]:
        """The searches that answer ``clauses`` on this backend, each form at its strongest accepted:
        ``ILIKE`` → ``=`` per exact value → none; ``IS NULL``, ``start_time``, ``run_id IN`` → none;
        a clause the server does not take is evaluated here. More than 10 experiment ids where they
        are refused: batches of 10. The runs of all searches together, merged by run id, are the
        runs the one full search would return."""
        ids = list(experiment_ids)
        batches = [ids]
        if len(ids) > EXPERIMENTS_PER_SEARCH and not self._accepts("many_experiments", ids, None):
            batches = [ids[i : i + EXPERIMENTS_PER_SEARCH] for i in range(0, len(ids), EXPERIMENTS_PER_SEARCH)]
        if len(ids) > EXPERIMENTS_PER_SEARCH:
            self._say_form("many_experiments", f": {len(batches)} searches of at most {EXPERIMENTS_PER_SEARCH}")
        server: list[str] = [filter_string] if filter_string else []
        sent: list[str] = ["many_experiments"] if len(ids) > EXPERIMENTS_PER_SEARCH and len(batches) == 1 else []
        client: list[Clause] = []
        variants: list[list[str]] = [[]]
        for clause in clauses:
            form = clause.form
            if form is None or self._accepts(form, ids, clause):
                server.append(clause.text())
                if form is not None:
                    sent.append(form)
                    self._say_form(form)
                continue
            client.append(clause)
            if form == "tag_ilike" and clause.exact:
                variants = [v + [clause.with_equal(x).text()] for v in variants for x in clause.exact]
                self._say_form(form, f"; '=' sent per value ({', '.join(clause.exact)})")
            else:
                self._say_form(form)
        return [
            Search(tuple(batch), " AND ".join([*server, *variant]), tuple(client), tuple(sent))
            for variant in variants
            for batch in batches
        ]

    # ---------------------------------------------------------------- experiments and runs (reads)

    def scan(
        self,
        experiment_ids: Sequence[str],
        *,
        filter_string: str = "",
        clauses: Sequence[Clause] = (),
        include_deleted: bool = True,
        on_page: Callable[[int], None] | None = None,
        reducer: Reducer | None = None,
    ) -> Iterator[RunRecord]:
        """Every run of the experiments, in ``search_runs``' order: by SQL when the store is read so."""
        kw: dict[str, Any] = {"include_deleted": include_deleted, "on_page": on_page, "reducer": reducer}
        if self._sql is not None:  # every filter form is SQL there: the clauses go as text
            text = " AND ".join(t for t in (filter_string, *(c.text() for c in clauses)) if t)
            return self._scan_sql(self._sql, experiment_ids, text, clauses, filter_string, **kw)
        return self._scan_api(experiment_ids, filter_string=filter_string, clauses=clauses, **kw)

    def _scan_api(
        self,
        experiment_ids: Sequence[str],
        *,
        filter_string: str = "",
        clauses: Sequence[Clause] = (),
        include_deleted: bool = True,
        on_page: Callable[[int], None] | None = None,
        reducer: Reducer | None = None,
    ) -> Iterator[RunRecord]:
        """Every run of the experiments that matches ``clauses`` (and ``filter_string``, sent as is),
        one paged ``search_runs`` per search of ``plan_search`` (no cap on the number of runs).

        Each page is reduced to slim records and dropped before any of them is handed on, so at most
        one page of MLflow's full ``Run`` objects is alive at a time (over HTTP, plus the pages read
        ahead, ``_pages``). A search refused on its first page although its forms were taken as
        accepted from the family's record (not tried) is planned again with those forms tried: a
        refusal always wins over what a family is known for.
        """
        reducer = reducer or Reducer()
        if on_page is not None:  # parts read at once report their pages from their own threads
            on_page = _serialised(on_page)
        for attempt in (0, 1):
            searches = self.plan_search(experiment_ids, clauses, filter_string)
            seen: set[str] | None = set() if len(searches) > 1 else None
            started = False
            try:
                for search in searches:
                    key = None
                    if len(searches) == 1:
                        readers, key = self._part_readers(search, include_deleted, on_page, reducer)
                    else:
                        readers = [_part_reader(self, search, seen, include_deleted, on_page, reducer)]
                    for record in read_parts(readers, key=key):
                        started = True
                        yield record
                return
            except _Refused as refused:
                if started or attempt:
                    raise refused.error from None
                for form in refused.forms:
                    self._learn(form, None, "")

    def _scan_search(
        self,
        search: Search,
        seen: set[str] | None,
        include_deleted: bool,
        on_page: Callable[[int], None] | None,
        reducer: Reducer,
        first: Any = None,
    ) -> Iterator[RunRecord]:
        """One search's runs; ``seen``: run ids the other searches of a merged scan already gave;
        ``first``: its first page, already read."""
        size = min(PAGE_SIZE, self.capabilities.page_size)
        client = search.client

        def fetch(token: str | None) -> Any:
            return self._search_page(search, include_deleted, size, token)

        with gc_paused():
            for page in self._pages(fetch, size, first):
                n = len(page)
                if client or seen is not None:
                    runs = [r for r in page if all(c.matches(r) for c in client)]
                    if seen is not None:
                        runs = [r for r in runs if r.info.run_id not in seen]
                        seen.update(r.info.run_id for r in runs)
                    del page
                    records = [reducer.record(run) for run in runs]
                    del runs
                else:
                    records = [reducer.record(run) for run in page]
                    del page
                collect_young()
                if on_page is not None:
                    on_page(n)
                yield from records
                del records

    def _search_page(
        self, search: Search, include_deleted: bool, size: int, token: str | None, order_by: str = ""
    ) -> Any:
        """One page of one search; a refusal of its first page, of forms taken as accepted from the
        family's record rather than tried, is ``_Refused`` (``scan`` plans again with them tried)."""
        from mlflow.entities import ViewType

        view = ViewType.ALL if include_deleted else ViewType.ACTIVE_ONLY
        extra: dict[str, Any] = {"order_by": [order_by]} if order_by else {}
        try:
            return self.client.search_runs(
                list(search.experiment_ids),
                filter_string=search.filter_string,
                run_view_type=view,
                max_results=size,
                page_token=token,
                **extra,
            )
        except Exception as exc:  # noqa: BLE001
            err = classify_error(exc, f"searching runs of experiment(s) {', '.join(search.experiment_ids)}")
            assumed = self._assumed(search.forms) if token is None and is_refusal(exc) else ()
            if assumed:
                raise _Refused(err, assumed) from exc
            raise err from exc

    # ---------------------------------------------------------------- partitioned scans (hpohash.partitions)

    def _part_readers(
        self,
        search: Search,
        include_deleted: bool,
        on_page: Callable[[int], None] | None,
        reducer: Reducer,
    ) -> tuple[list[Callable[[], Iterator[RunRecord]]], Callable[[RunRecord], Any] | None]:
        """``search`` as readers of parts the server reads at once, and the key merging them (None:
        handed on one after another, newest first): start-time parts (``_plan_parts``), or experiment
        groups where the server refuses ``start_time`` (``_plan_experiment_parts``); one scan where a
        split is not worth deciding: asked for none, a local store (one reader, nothing to overlap), or
        (auto) pages too small to tell."""
        asked = self.settings.scan_parts
        size = min(PAGE_SIZE, self.capabilities.page_size)
        if asked == 1 or not self.remote or (asked == 0 and size < partitions.AUTO_RUNS_PER_PART):
            return [_part_reader(self, search, None, include_deleted, on_page, reducer)], None
        if not self._accepts("start_time", search.experiment_ids, Clause("start_time", ">=", value=0)):
            first, groups = self._plan_experiment_parts(search, include_deleted)
            if groups:
                readers = [_part_reader(self, part, None, include_deleted, on_page, reducer) for part in groups]
                return readers, lambda r: partitions.scan_order(r.start_time, r.run_id)
            return [_part_reader(self, search, None, include_deleted, on_page, reducer, first)], None
        first, head, parts = self._plan_parts(search, include_deleted)
        if not parts:
            return [_part_reader(self, search, None, include_deleted, on_page, reducer, first)], None
        return [
            _part_reader(self, search, None, include_deleted, on_page, reducer, head),
            *(_part_reader(self, part, None, include_deleted, on_page, reducer) for part in parts),
        ], None

    def _plan_experiment_parts(self, search: Search, include_deleted: bool) -> tuple[Any, list[Search]]:
        """Where ``start_time`` is refused: (the scan's first page if read, one search per group of
        its experiments); no groups: one scan, from that first page when it was read.

        Only for 2+ experiments (one search: batches of 10 and ``ILIKE`` variants are read as they
        are), and only after the scan's first page shows more than one page. The parts are merged
        by ``partitions.scan_order`` into the one scan's order, not handed on one after another: the
        loader keeps the scan's order where nothing else orders (orphan runs, the run index). Groups
        are balanced by run counts (``count_runs`` per experiment, one-run requests at offsets)
        where the tokens are proved offsets, there are more experiments than parts and at most
        ``COUNTED_EXPERIMENTS``; else one experiment a part, or by count of experiments. Auto
        (``scan_parts`` 0) needs those counts to pick K; otherwise it reads one scan. The first page
        is read again by the parts (one page more than one scan): it is a prefix of their merged
        order, not of any one part."""
        ids = search.experiment_ids
        if len(ids) < 2:
            return None, []
        asked = self.settings.scan_parts
        size = min(PAGE_SIZE, self.capabilities.page_size)
        first = self._search_page(search, include_deleted, size, None)
        if not first.token:
            return first, []
        offsets = self._offset_paged(first.token, len(first))
        weights, requests, runs = [1] * len(ids), 0, None
        if offsets and (asked == 0 or len(ids) > asked) and len(ids) <= COUNTED_EXPERIMENTS:

            def probe(exp: str) -> Callable[[int], bool]:
                one = Search((exp,), search.filter_string, search.client, search.forms)
                return lambda offset: bool(len(self._search_page(one, include_deleted, 1, _offset_token(offset))))

            counted = [partitions.count_runs(probe(exp), size) for exp in ids]
            weights = [n for n, _ in counted]
            requests, runs = sum(r for _, r in counted), sum(weights)
        elif asked < 2:
            return first, []
        k = asked if asked >= 2 else partitions.auto_parts(runs or 0)
        groups = partitions.groups_by_weight(weights, k)
        if len(groups) < 2:
            return first, []
        if self.settings.verbose:
            about = f"about {runs} runs, " if runs else ""
            sys.stderr.write(
                f"hpohash: backend {self.family}: scan read in {len(groups)} experiment parts at once, "
                f"start_time filters being refused ({about}{requests} request(s) to place them)\n"
            )
        return None, [
            Search(tuple(ids[i] for i in g), search.filter_string, search.client, search.forms) for g in groups
        ]

    def _plan_parts(self, search: Search, include_deleted: bool) -> tuple[Any, Any, list[Search]]:
        """(the scan's first page if read, the runs of it kept, the searches of the parts after it);
        no parts: one scan, from that first page when it was read (``hpohash.partitions``).

        Where ``_part_readers`` found a split worth deciding and the backend takes ``start_time``
        filters, and where the runs warrant it. The scan's own first page is read first: a scan of one
        page costs nothing more. Its runs newer than its last are all the runs that new (the order is
        ``start_time DESC``), so they are kept as the first part; the rest (``start_time`` up to the
        last's) is split by ``_split``."""
        size = min(PAGE_SIZE, self.capabilities.page_size)
        first = self._search_page(search, include_deleted, size, None)
        times = [run.info.start_time for run in first]
        if not first.token or not times or None in times:  # one page; or runs no start-time range holds
            return first, None, []
        last = int(times[-1])
        forms = search.forms if "start_time" in search.forms else (*search.forms, "start_time")

        def narrowed(clause: str) -> Search:
            text = " AND ".join(f for f in (search.filter_string, clause) if f)
            return Search(search.experiment_ids, text, search.client, forms)

        below = f"attributes.start_time < {last + 1}"
        split = self._split(narrowed(below), include_deleted, size, last, self._offset_paged(first.token, len(first)))
        if split.parts < 2:
            return first, None, []
        if self.settings.verbose:
            runs = f"about {split.runs_estimate} runs, " if split.runs_estimate else ""
            sys.stderr.write(
                f"hpohash: backend {self.family}: scan read in {split.parts} start-time parts at once "
                f"after its first page ({runs}{split.requests} request(s) to place them)\n"
            )
        from mlflow.store.entities import PagedList

        head = PagedList([run for run in first if run.info.start_time > last], None)
        return None, head, [narrowed(f"{below} AND {part}") for part in split.filters()]

    def _split(self, rest: Search, include_deleted: bool, size: int, newest: int, offsets: bool) -> Split:
        """Where to cut ``rest``: at equal run counts where the server's tokens are proved offsets,
        evenly in time otherwise (only when parts were asked for: the run count is unknown)."""
        asked = self.settings.scan_parts

        def one(token: str | None, order_by: str = "") -> int | None:
            page = self._search_page(rest, include_deleted, 1, token, order_by)
            if not len(page):
                return None
            started = page[0].info.start_time
            if started is None:  # cannot happen under this filter; never a boundary
                raise _Unsplittable
            return int(started)

        try:
            if offsets:
                return split_by_offsets(lambda offset: one(_offset_token(offset)), size, asked)
            if asked < 2:
                return Split()
            oldest = one(None, "attributes.start_time ASC")
            return replace(split_by_time(newest, oldest if oldest is not None else newest, asked), requests=1)
        except _Unsplittable:
            return Split()

    def _assumed(self, forms: Sequence[str]) -> tuple[str, ...]:
        """Of the forms a search sent, those taken from the family's record rather than tried."""
        caps = self.capabilities
        return tuple(f for f in forms if caps.form(f) and "when tried" not in caps.decided.get(f, ""))

    def _pages(self, fetch: Callable[[str | None], Any], size: int | None = None, first: Any = None) -> Iterator[Any]:
        """The pages of one search, in order.

        Over the network the server's time is most of a scan's, and it sits idle while a page is
        parsed and reduced here. MLflow's SQL and file stores page by offset: when the token the
        server returns is exactly the one it makes for the runs read so far (``_offset_token``) and
        the backend's tokens are not known to be opaque, the next ``READ_AHEAD_HTTP`` pages are
        requested with the tokens the server would return for them, on threads, while this page is
        reduced. The requests are the ones a sequential scan would send, in the same order of
        offsets. Any other token (a managed service's, a format MLflow changes) is followed as
        given, one page at a time.
        """
        size = size or PAGE_SIZE
        ahead: dict[int, Future[Any]] = {}
        pool: ThreadPoolExecutor | None = None
        page, done = (first if first is not None else fetch(None)), 0
        try:
            while True:
                done += len(page)
                token = page.token
                if self._predictable(token, done):
                    if pool is None:
                        pool = ThreadPoolExecutor(max_workers=READ_AHEAD_HTTP, thread_name_prefix="hpohash-page")
                    for offset in range(done, done + READ_AHEAD_HTTP * size, size):
                        if offset not in ahead:
                            ahead[offset] = pool.submit(carried(fetch), _offset_token(offset))
                else:  # a token not predicted: what was read ahead is not the next page
                    for future in ahead.values():
                        future.cancel()
                    ahead.clear()
                yield page
                del page
                if not token:
                    return
                early = ahead.pop(done, None)
                page = early.result() if early is not None else fetch(token)
        finally:  # cancel_futures: pages read ahead and not yet started are not requested
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def _predictable(self, token: str | None, done: int) -> bool:
        """Read ahead only where it pays (over the network) and the store proved it pages by offset:
        its family is MLflow's own store, or it returned exactly the offset token for ``done``."""
        return self.remote and READ_AHEAD_HTTP > 0 and self._offset_paged(token, done)

    def _offset_paged(self, token: str | None, done: int) -> bool:
        """The store pages by offset: not known to be opaque, and ``token`` (after ``done`` runs) is
        exactly MLflow's offset token, so the tokens of later offsets may be predicted."""
        if not (token and token == _offset_token(done)):
            return False
        offset_tokens = self.capabilities.offset_tokens
        if offset_tokens is None:
            self._learn("offset_tokens", True, "the server returned an offset page token")
            return True
        return offset_tokens

    @property
    def defers_metrics(self) -> bool:
        """Whether a scan may leave metrics out (``Keep.metrics`` empty) and ``latest_metric`` read the
        one a study is ranked by: by SQL that skips ~8 metric rows a run for the one used."""
        return self._sql is not None

    def latest_metric(self, run_ids: Sequence[str], key: str) -> dict[str, float]:
        """The latest value of metric ``key`` of each run that has it (as ``search_runs`` gives it);
        by SQL, else (the SQL read failed since the scan) through ``runs_by_id``'s filtered scans."""
        ok, got = self._via_sql("latest_metric", run_ids, key)
        if ok:
            return cast(dict[str, float], got)
        runs = self.runs_by_id(run_ids)
        return {rid: run.metrics[key] for rid, run in runs.items() if key in run.metrics}

    def get_run(self, run_id: str) -> RunRecord:
        """One run by id (used for a command's named runs, never per scanned run)."""
        ok, got = self._via_sql("get_run", run_id)
        if ok:
            if got is None:
                raise UsageError(f"run '{run_id}' not found at {self.display_uri}")
            return got
        try:
            return _record(self.client.get_run(run_id))
        except Exception as exc:  # noqa: BLE001
            err = classify_error(exc, f"run '{run_id}'")
            if isinstance(err, UsageError):
                raise UsageError(f"run '{run_id}' not found at {self.display_uri}") from exc
            raise err from exc

    def runs_by_id(
        self,
        run_ids: Sequence[str],
        *,
        experiment_ids: Sequence[str] | None = None,
        reducer: Reducer | None = None,
    ) -> dict[str, RunRecord]:
        """Named runs via filtered paged scans (100 ids a filter), not one ``get_run`` each; where
        ``run_id IN`` is refused, one scan of the experiments with the ids checked here."""
        ids = list(dict.fromkeys(i for i in run_ids if "'" not in i))
        if not ids:
            return {}
        experiments = list(experiment_ids) if experiment_ids is not None else self.all_experiment_ids()
        step = 100
        if not self._accepts("run_id_in", experiments, id_in(tuple(ids[:step]))):
            step = len(ids)
        out: dict[str, RunRecord] = {}
        for start in range(0, len(ids), step):
            clause = id_in(tuple(ids[start : start + step]))
            for run in self.scan(experiments, clauses=(clause,), reducer=reducer):
                out[run.run_id] = run
        return out

    def experiment_name(self, experiment_id: str) -> str:
        ok, got = self._via_sql("experiment_name", experiment_id)
        if ok:
            return str(got or experiment_id)
        try:
            return self.client.get_experiment(experiment_id).name
        except Exception:  # noqa: BLE001
            return experiment_id

    # ---------------------------------------------------------------- config artifacts

    def _artifact_repo(self, run: RunRecord) -> Any:
        """The run's artifact repository from the URI the scan already returned (no ``get_run``)."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
        from mlflow.utils.uri import add_databricks_profile_info_to_artifact_uri

        uri = add_databricks_profile_info_to_artifact_uri(run.artifact_uri, self.store_uri)
        return get_artifact_repository(uri, tracking_uri=self.store_uri)

    def fetch_configs(self, run: RunRecord) -> dict[str, tuple[str, bytes] | cfg.ConfigError]:
        """The raw ``config/*`` artifacts of one run: name → (artifact path, bytes) or the error for it."""
        run_id = run.run_id
        # a local artifact root is read as files (sqlread.LocalArtifacts: MLflow's checks, no import), in
        # place: a local file is no call to the store's host, so not on a thread bounded by the store's
        # deadline (with a PostgreSQL host that thread per file was 0.4 s of 300 studies)
        call: Callable[..., Any] = self.watch.call
        try:
            repo: Any = LocalArtifacts.for_uri(run.artifact_uri)
            if repo is not None:
                call = _unwatched
            else:
                repo = self._artifact_repo(run)
            infos = call("list_artifacts", repo.list_artifacts, ARTIFACT_DIR)
        except Exception as exc:  # noqa: BLE001
            err = classify_error(exc, f"listing artifacts of run {run_id}")
            if isinstance(err, BackendError):
                raise err from exc
            # the store refused this run's config/ (a symlink out of the artifact root, say): a finding
            # for this study (reported once, under the first required config), not the end of the scan
            reason = f"cannot list the {ARTIFACT_DIR}/ artifacts: {redact(one_line(getattr(exc, 'message', exc)))}"
            return {cfg.REQUIRED[0]: cfg.ConfigError(f"run {run_id} artifact {ARTIFACT_DIR}/", reason)}
        by_name: dict[str, Any] = {}
        for info in infos:
            if info.is_dir:
                continue
            base = info.path.rsplit("/", 1)[-1]
            stem, dot, suffix = base.rpartition(".")
            if not dot or f".{suffix.lower()}" not in cfg.SUFFIXES or stem not in cfg.NAMES:
                continue
            # .yaml before .yml before .json, as on disk
            if stem not in by_name or cfg.SUFFIXES.index(f".{suffix.lower()}") < cfg.SUFFIXES.index(
                "." + by_name[stem].path.rsplit(".", 1)[-1].lower()
            ):
                by_name[stem] = info
        out: dict[str, tuple[str, bytes] | cfg.ConfigError] = {}
        if not by_name:
            return out
        with contextlib.ExitStack() as stack:
            tmp = None  # made only for a repository that must download (local and HTTP read in place)
            for stem, info in by_name.items():
                where = f"run {run_id} artifact {info.path}"
                if info.file_size is not None and info.file_size > cfg.MAX_BYTES:
                    out[stem] = cfg.ConfigError(where, f"larger than 1 MiB ({info.file_size} bytes)")
                    continue
                try:
                    # file_size may be unknown or wrong: never read past the cap. HTTP and local
                    # repositories are read bounded into memory; any other is downloaded first
                    data = call("download", read_artifact, repo, info.path, cfg.MAX_BYTES)
                    if data is None:
                        tmp = tmp or stack.enter_context(tempfile.TemporaryDirectory(prefix="hpohash-"))
                        local = call("download", _download_listed_file, repo, info.path, Path(tmp) / stem)
                        data = read_bounded(local, cfg.MAX_BYTES)
                    if len(data) > cfg.MAX_BYTES:
                        out[stem] = cfg.ConfigError(where, "larger than 1 MiB")
                        continue
                    out[stem] = (info.path, data)
                except Exception as exc:  # noqa: BLE001
                    err = classify_error(exc, f"downloading {where}")
                    if isinstance(err, BackendError):
                        raise err from exc
                    out[stem] = cfg.ConfigError(where, f"cannot download: {one_line(exc)}")
        return out

    def map_concurrent(self, fn: Callable[[Any], Any], items: Iterable[Any], workers: int | None = None) -> list[Any]:
        """``map`` that uses a thread pool over HTTP and a plain loop for local stores."""
        items = list(items)
        n = workers if workers is not None else self.capabilities.workers
        if n <= 1 or len(items) <= 1:
            return [fn(i) for i in items]
        pool = ThreadPoolExecutor(max_workers=n)
        try:
            return list(pool.map(carried(fn), items))
        except BaseException:
            # Ctrl-C (or a crash): start nothing new; only the calls already running finish
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)

    # ---------------------------------------------------------------- writes

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """All of one run's new tag values in one ``log_batch`` call (more only beyond the backend's
        tags per call, 100 everywhere)."""
        from mlflow.entities import RunTag

        items = [RunTag(k, v) for k, v in tags.items()]
        step = max(1, self.capabilities.tags_per_batch)
        try:
            for start in range(0, len(items), step):
                self.client.log_batch(run_id, tags=items[start : start + step])
        except Exception as exc:  # noqa: BLE001 - a write error is classified like a read error
            raise classify_error(exc, f"run {run_id}") from exc

    def delete_tag(self, run_id: str, key: str) -> bool:
        """Delete one tag; ``False`` when this backend does not delete tags (refused, or known so).

        A refusal on a backend not proved to delete tags teaches that it cannot; where deleting was
        proved to work, a refusal is a failure of this run (a deleted run, say) and raises.
        """
        if self.capabilities.delete_tags is False:
            return False
        try:
            self.client.delete_tag(run_id, key)
        except Exception as exc:  # noqa: BLE001
            if _delete_refused(exc) and self.capabilities.delete_tags is not True:
                self._learn("delete_tags", False, "a tag deletion was refused")
                return False
            raise classify_error(exc, f"run {run_id}") from exc
        if self.capabilities.delete_tags is None:
            self._learn("delete_tags", True, "a tag was deleted")
        return True

    def can_delete_tags(self, run_id: str) -> bool | None:
        """Whether undo could remove tags backfill adds, asked before anything is written: deleting
        ``DELETE_PROBE_KEY`` (a tag no run has) on ``run_id`` answers "no such tag" where deletion
        works and is refused where it does not; nothing changes either way. ``None``: the answer
        said neither (no permission to write, say), and undo learns it from its first deletion."""
        known = self.capabilities.delete_tags
        if known is not None:
            return known
        try:
            self.client.delete_tag(run_id, DELETE_PROBE_KEY)
        except Exception as exc:  # noqa: BLE001
            if error_code(exc) != "RESOURCE_DOES_NOT_EXIST":
                if not _delete_refused(exc):
                    return None
                self._learn("delete_tags", False, "deleting a tag was refused when tried")
                return False
        self._learn("delete_tags", True, "deleting a tag was accepted when tried")
        return True

    def undo_limit_note(self, changes: Sequence[Any]) -> str | None:
        """What undo could not do on this store, for a plan's changes (``old`` ``None``: an added tag),
        said before anything is written; ``None`` when undo could restore everything."""
        added = [c for c in changes if c.old is None]
        if not added or self.can_delete_tags(added[0].run_id) is not False:
            return None
        restored = len(changes) - len(added)
        return (
            f"this store cannot delete tags: undo could restore {restored} changed value(s) "
            f"but not remove {len(added)} added tag(s)"
        )

    def tag_counts(self, run_ids: Sequence[str]) -> dict[str, int]:
        """How many tags each run carries in all (scans keep only the tags hpohash reads), for caps
        on tags per run; read only where the backend has such a cap."""
        return {rid: len(run.tags) for rid, run in self.runs_by_id(run_ids).items()}

    # ---------------------------------------------------------------- demo writer

    def experiment_tags(self, name: str) -> tuple[str, dict[str, str], bool] | None:
        """(id, tags, deleted) of the experiment of that name, or None when there is none."""
        try:
            exp = self.client.get_experiment_by_name(name)
        except Exception as exc:  # noqa: BLE001
            raise classify_error(exc, f"experiment '{name}'") from exc
        if exp is None:
            return None
        return exp.experiment_id, dict(exp.tags), exp.lifecycle_stage == "deleted"

    def create_experiment(self, name: str, tags: Mapping[str, str]) -> str:
        try:
            return str(self.client.create_experiment(name, tags=dict(tags)))
        except Exception as exc:  # noqa: BLE001
            raise classify_error(exc, f"creating experiment '{name}'") from exc

    def restore_and_empty(self, experiment_id: str, *, restore: bool) -> None:
        """Restore a deleted experiment and delete its runs (the demo writer starts from nothing)."""
        try:
            if restore:
                self.client.restore_experiment(experiment_id)
            for run in self.scan([experiment_id], include_deleted=False):
                self.client.delete_run(run.run_id)
        except Exception as exc:  # noqa: BLE001
            raise classify_error(exc, f"emptying experiment {experiment_id}") from exc

    def create_run(
        self,
        experiment_id: str,
        name: str,
        *,
        tags: Mapping[str, str],
        params: Mapping[str, str] = MappingProxyType({}),
        metrics: Mapping[str, float] = MappingProxyType({}),
        texts: Mapping[str, str] = MappingProxyType({}),
    ) -> str:
        """One finished run with its tags, params, metrics and text artifacts (demo and fixtures)."""
        import time

        from mlflow.entities import Metric, Param, RunTag

        try:
            run = self.client.create_run(experiment_id, run_name=name)
            rid = run.info.run_id
            now = int(time.time() * 1000)
            self.client.log_batch(
                rid,
                metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
                params=[Param(k, v) for k, v in params.items()],
                tags=[RunTag(k, v) for k, v in tags.items()],
            )
            for path, text in texts.items():
                self.client.log_text(rid, text, path)
            self.client.set_terminated(rid)
            return rid
        except Exception as exc:  # noqa: BLE001
            raise classify_error(exc, f"creating run '{name}'") from exc
