"""The one module that talks to MLflow: paged reads, config artifact fetches, batched tag writes.

Everything else works on the frozen ``RunRecord`` snapshots this module returns, so the audit,
planner and diff never call MLflow themselves and every command reads an experiment the same way.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlparse

from hpohash import configs as cfg
from hpohash.errors import BackendError, HpohashError, UsageError
from hpohash.limits import read_bounded
from hpohash.perf import collect_young, gc_paused
from hpohash.records import Experiment, Reducer, RunRecord
from hpohash.redact import add_uri_secrets, redact
from hpohash.settings import BackendSettings
from hpohash.sqlread import LocalArtifacts, SqlReader
from hpohash.text import one_line

PAGE_SIZE = 1000
#: Over HTTP, pages requested ahead of the one being reduced (see ``Tracking._pages``).
READ_AHEAD_HTTP = 2
ARTIFACT_DIR = "config"
DEFAULT_WORKERS_HTTP = 8

#: Defaults applied only when the user has not set MLflow's own retry variables: an unreachable
#: server should fail within seconds, not after MLflow's default of 7 retries with backoff.
HTTP_RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


#: ``--verbose`` lines about how runs are read (the CLI shows this logger's records under --verbose)
READ_LOG = logging.getLogger("hpohash.read")


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


def classify_error(exc: Exception, what: str) -> Exception:
    """Turn an MLflow/requests exception into UsageError (not found) or BackendError (anything else)."""
    code = getattr(exc, "error_code", None)
    message = redact(one_line(getattr(exc, "message", None) or exc))
    if len(message) > 300:
        message = message[:300] + "…"
    if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "BAD_REQUEST"):
        return UsageError(f"{what}: {message}")
    return BackendError(f"{what}: tracking backend failed: {message}")


def configure_process() -> None:
    """What the ``hpohash`` command sets for its own process (never done for a library caller):
    short HTTP retries unless the user set MLflow's own variables, and MLflow's INFO lines off."""
    for key, value in HTTP_RETRY_DEFAULTS.items():
        os.environ.setdefault(key, value)
    # their INFO lines (DB migrations) are not our output; MLflow sets its own logger's level when it
    # is imported (later, and only by the commands that need it), from this variable
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def tag_filter(key: str, op: str, value: str | None = None) -> str:
    """One clause of MLflow's filter language on a tag (``=``, ``ILIKE``, ``IS NULL``)."""
    if value is None:
        return f"tags.`{key}` {op}"
    return f"tags.`{key}` {op} '{value.replace(chr(39), '')}'"


def started_filter(op: str, ms: int) -> str:
    """A clause on a run's start time (epoch milliseconds)."""
    return f"attributes.start_time {op} {int(ms)}"


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
        self._client: Any = None
        #: how runs are read, and why (one line each; the CLI prints them under --verbose)
        self.notes: list[str] = []
        self._sql: SqlReader | None = None if create else self._open_sql()

    @property
    def client(self) -> Any:
        """MLflow's client, made (and MLflow imported) on first use: writes, HTTP, non-file artifacts,
        and every read when the store is not read by SQL."""
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    # ---------------------------------------------------------------- the direct SQL read (sqlread)

    def _note(self, line: str) -> None:
        line = redact(one_line(line.replace(self.uri, self.display_uri)))
        self.notes.append(line)
        READ_LOG.info(line)

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
            return False, None
        try:
            return True, getattr(self._sql, method)(*args)
        except HpohashError:
            raise
        except Exception as exc:  # noqa: BLE001
            self._sql_failed(exc)
            return False, None

    def _scan_sql(self, sql: SqlReader, experiment_ids: Sequence[str], **kw: Any) -> Iterator[RunRecord]:
        """The runs by SQL; a failure part-way goes on through MLflow (the same order, so the runs
        already handed on are skipped), a filter not translated here reads this one scan through it."""
        from hpohash.sqlread import SqlUnavailable

        done: set[str] = set()
        try:
            for run in sql.scan(experiment_ids, **kw):
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
        for run in self._scan_api(experiment_ids, **kw):
            if run.run_id not in done:
                yield run

    @staticmethod
    def _check_local(uri: str, *, create: bool) -> None:
        """MLflow silently creates a missing SQLite file; a typo'd path should be an error instead."""
        if create:
            return
        parsed = urlparse(uri)
        if parsed.scheme == "sqlite":
            path = uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else ""
            if path and path != ":memory:" and not Path(path).exists():
                raise UsageError(f"tracking store {uri}: no such SQLite file")
        elif parsed.scheme in ("", "file") and uri not in ("",):
            path = parsed.path if parsed.scheme == "file" else uri
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

    def scan(
        self,
        experiment_ids: Sequence[str],
        *,
        filter_string: str = "",
        include_deleted: bool = True,
        on_page: Callable[[int], None] | None = None,
        reducer: Reducer | None = None,
    ) -> Iterator[RunRecord]:
        """Every run of the experiments, in ``search_runs``' order: by SQL when the store is read so."""
        kw: dict[str, Any] = {
            "filter_string": filter_string,
            "include_deleted": include_deleted,
            "on_page": on_page,
            "reducer": reducer,
        }
        if self._sql is not None:
            return self._scan_sql(self._sql, experiment_ids, **kw)
        return self._scan_api(experiment_ids, **kw)

    def _scan_api(
        self,
        experiment_ids: Sequence[str],
        *,
        filter_string: str = "",
        include_deleted: bool = True,
        on_page: Callable[[int], None] | None = None,
        reducer: Reducer | None = None,
    ) -> Iterator[RunRecord]:
        """Every run of the experiments, one paged ``search_runs`` (no cap on the number of runs).

        Each page is reduced to slim records and dropped before any of them is handed on, so at most
        one page of MLflow's full ``Run`` objects is alive at a time (over HTTP, plus the pages read
        ahead, ``_pages``).
        """
        from mlflow.entities import ViewType

        reducer = reducer or Reducer()
        view = ViewType.ALL if include_deleted else ViewType.ACTIVE_ONLY

        def fetch(token: str | None) -> Any:
            try:
                return self.client.search_runs(
                    list(experiment_ids),
                    filter_string=filter_string,
                    run_view_type=view,
                    max_results=PAGE_SIZE,
                    page_token=token,
                )
            except Exception as exc:  # noqa: BLE001
                raise classify_error(exc, f"searching runs of experiment(s) {', '.join(experiment_ids)}") from exc

        with gc_paused():
            for page in self._pages(fetch):
                records = [reducer.record(run) for run in page]
                del page
                collect_young()
                if on_page is not None:
                    on_page(len(records))
                yield from records
                del records

    def _pages(self, fetch: Callable[[str | None], Any]) -> Iterator[Any]:
        """The pages of one search, in order.

        Over HTTP the server's time is most of a scan's, and it sits idle while a page is parsed
        and reduced here. MLflow's SQL and file stores page by offset: when the token the server
        returns is exactly the one it makes for the runs read so far (``_offset_token``), the next
        ``READ_AHEAD_HTTP`` pages are requested with the tokens the server would return for them,
        on threads, while this page is reduced. The requests are the ones a sequential scan would
        send, in the same order of offsets. Any other token (another store, a format MLflow
        changes) is followed as given, one page at a time.
        """
        ahead: dict[int, Future[Any]] = {}
        pool: ThreadPoolExecutor | None = None
        page, done = fetch(None), 0
        try:
            while True:
                done += len(page)
                token = page.token
                if self.http and READ_AHEAD_HTTP > 0 and token == _offset_token(done):
                    if pool is None:
                        pool = ThreadPoolExecutor(max_workers=READ_AHEAD_HTTP, thread_name_prefix="hpohash-page")
                    for offset in range(done, done + READ_AHEAD_HTTP * PAGE_SIZE, PAGE_SIZE):
                        if offset not in ahead:
                            ahead[offset] = pool.submit(fetch, _offset_token(offset))
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
        """Named runs via filtered paged scans (100 ids a filter), not one ``get_run`` each."""
        ids = list(dict.fromkeys(run_ids))
        if not ids:
            return {}
        experiments = list(experiment_ids) if experiment_ids is not None else self.all_experiment_ids()
        out: dict[str, RunRecord] = {}
        for start in range(0, len(ids), 100):
            chunk = ", ".join(f"'{i}'" for i in ids[start : start + 100] if "'" not in i)
            if not chunk:
                continue
            for run in self.scan(experiments, filter_string=f"attributes.run_id IN ({chunk})", reducer=reducer):
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

        uri = add_databricks_profile_info_to_artifact_uri(run.artifact_uri, self.uri)
        return get_artifact_repository(uri, tracking_uri=self.uri)

    def fetch_configs(self, run: RunRecord) -> dict[str, tuple[str, bytes] | cfg.ConfigError]:
        """The raw ``config/*`` artifacts of one run: name → (artifact path, bytes) or the error for it."""
        run_id = run.run_id
        try:  # a local artifact root is read as files (sqlread.LocalArtifacts: MLflow's checks, no import)
            repo = LocalArtifacts.for_uri(run.artifact_uri) or self._artifact_repo(run)
            infos = repo.list_artifacts(ARTIFACT_DIR)
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
        with tempfile.TemporaryDirectory(prefix="hpohash-") as tmp:
            for stem, info in by_name.items():
                where = f"run {run_id} artifact {info.path}"
                if info.file_size is not None and info.file_size > cfg.MAX_BYTES:
                    out[stem] = cfg.ConfigError(where, f"larger than 1 MiB ({info.file_size} bytes)")
                    continue
                try:
                    local = _download_listed_file(repo, info.path, Path(tmp) / stem)
                    data = read_bounded(local, cfg.MAX_BYTES)  # file_size may be unknown: never read more
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
        n = workers if workers is not None else (DEFAULT_WORKERS_HTTP if self.http else 1)
        if n <= 1 or len(items) <= 1:
            return [fn(i) for i in items]
        pool = ThreadPoolExecutor(max_workers=n)
        try:
            return list(pool.map(fn, items))
        except BaseException:
            # Ctrl-C (or a crash): start nothing new; only the calls already running finish
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)

    # ---------------------------------------------------------------- writes

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """All of one run's new tag values in a single ``log_batch`` call."""
        from mlflow.entities import RunTag

        try:
            self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        except Exception as exc:  # noqa: BLE001 - a write error is classified like a read error
            raise classify_error(exc, f"run {run_id}") from exc

    def delete_tag(self, run_id: str, key: str) -> None:
        try:
            self.client.delete_tag(run_id, key)
        except Exception as exc:  # noqa: BLE001
            raise classify_error(exc, f"run {run_id}") from exc

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
