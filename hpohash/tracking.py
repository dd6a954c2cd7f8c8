"""The one module that talks to MLflow: paged reads, config artifact fetches, batched tag writes.

Everything else works on the frozen ``RunRecord`` snapshots this module returns, so the audit,
planner and diff never call MLflow themselves and every command reads an experiment the same way.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlparse

from hpohash import configs as cfg
from hpohash.errors import BackendError, UsageError
from hpohash.limits import read_bounded
from hpohash.perf import collect_young, gc_paused
from hpohash.redact import add_uri_secrets, redact
from hpohash.text import one_line

PAGE_SIZE = 1000
ARTIFACT_DIR = "config"
DEFAULT_WORKERS_HTTP = 8

#: Defaults applied only when the user has not set MLflow's own retry variables: an unreachable
#: server should fail within seconds, not after MLflow's default of 7 retries with backoff.
HTTP_RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


@dataclass(frozen=True)
class RunRecord:
    """A read-only snapshot of one run: what the study model and audit need, nothing more."""

    run_id: str
    experiment_id: str
    name: str
    artifact_uri: str
    lifecycle_stage: str
    status: str
    start_time: int
    tags: Mapping[str, str]
    params: Mapping[str, str]
    metrics: Mapping[str, float]

    @property
    def deleted(self) -> bool:
        return self.lifecycle_stage == "deleted"


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    name: str


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


def is_http(uri: str) -> bool:
    return urlparse(uri).scheme in ("http", "https")


def _record(run: Any) -> RunRecord:
    info, data = run.info, run.data
    return RunRecord(
        run_id=info.run_id,
        experiment_id=str(info.experiment_id),
        name=info.run_name or "",
        artifact_uri=info.artifact_uri or "",
        lifecycle_stage=info.lifecycle_stage,
        status=info.status,
        start_time=int(info.start_time or 0),
        # MLflow built these dicts for this Run alone: wrap them read-only instead of copying them
        tags=MappingProxyType(data.tags),
        params=MappingProxyType(data.params),
        metrics=MappingProxyType(data.metrics),
    )


def _classify(exc: Exception, what: str) -> Exception:
    """Turn an MLflow/requests exception into UsageError (not found) or BackendError (anything else)."""
    code = getattr(exc, "error_code", None)
    message = redact(one_line(getattr(exc, "message", None) or exc))
    if len(message) > 300:
        message = message[:300] + "…"
    if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "BAD_REQUEST"):
        return UsageError(f"{what}: {message}")
    return BackendError(f"{what}: tracking backend failed: {message}")


class Tracking:
    """A connection to one tracking store."""

    def __init__(self, tracking_uri: str | None = None, *, create: bool = False) -> None:
        for key, value in HTTP_RETRY_DEFAULTS.items():
            os.environ.setdefault(key, value)
        import mlflow
        from mlflow import MlflowClient

        for name in ("mlflow", "alembic"):  # their INFO lines (DB migrations) are not our output
            logging.getLogger(name).setLevel(logging.WARNING)

        uri = tracking_uri or mlflow.get_tracking_uri()
        if not isinstance(uri, str):
            uri = str(uri)
        add_uri_secrets(uri)
        self._check_local(uri, create=create)
        self.uri = uri
        self.display_uri = redact_uri(uri)
        self.http = is_http(uri)
        self.client = MlflowClient(tracking_uri=uri)

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
        out: list[Experiment] = []
        for name in names:
            try:
                exp = self.client.get_experiment_by_name(name)
            except Exception as exc:  # noqa: BLE001
                raise _classify(exc, f"experiment '{name}'") from exc
            if exp is None:
                raise UsageError(f"experiment '{name}' not found at {self.display_uri}")
            out.append(Experiment(exp.experiment_id, exp.name))
        for eid in ids:
            try:
                exp = self.client.get_experiment(eid)
            except Exception as exc:  # noqa: BLE001
                err = _classify(exc, f"experiment id '{eid}'")
                if isinstance(err, UsageError):
                    raise UsageError(f"experiment id '{eid}' not found at {self.display_uri}") from exc
                raise err from exc
            out.append(Experiment(exp.experiment_id, exp.name))
        unique: dict[str, Experiment] = {}
        for e in out:
            unique.setdefault(e.experiment_id, e)  # first of each id, in the order given
        return list(unique.values())

    def all_experiment_ids(self) -> list[str]:
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
            raise _classify(exc, "listing experiments") from exc

    def scan(
        self,
        experiment_ids: Sequence[str],
        *,
        filter_string: str = "",
        include_deleted: bool = True,
        on_page: Callable[[int], None] | None = None,
    ) -> Iterator[RunRecord]:
        """Every run of the experiments, one paged ``search_runs`` (no cap on the number of runs)."""
        from mlflow.entities import ViewType

        view = ViewType.ALL if include_deleted else ViewType.ACTIVE_ONLY
        token = None
        with gc_paused():
            while True:
                try:
                    page = self.client.search_runs(
                        list(experiment_ids),
                        filter_string=filter_string,
                        run_view_type=view,
                        max_results=PAGE_SIZE,
                        page_token=token,
                    )
                except Exception as exc:  # noqa: BLE001
                    raise _classify(exc, f"searching runs of experiment(s) {', '.join(experiment_ids)}") from exc
                for run in page:
                    yield _record(run)
                n, token = len(page), page.token
                del page
                collect_young()
                if on_page is not None:
                    on_page(n)
                if not token:
                    return

    def get_run(self, run_id: str) -> RunRecord:
        """One run by id (used for a command's named runs, never per scanned run)."""
        try:
            return _record(self.client.get_run(run_id))
        except Exception as exc:  # noqa: BLE001
            err = _classify(exc, f"run '{run_id}'")
            if isinstance(err, UsageError):
                raise UsageError(f"run '{run_id}' not found at {self.display_uri}") from exc
            raise err from exc

    def runs_by_id(self, run_ids: Sequence[str]) -> dict[str, RunRecord]:
        """Named runs via filtered paged scans (100 ids a filter), not one ``get_run`` each."""
        ids = list(dict.fromkeys(run_ids))
        if not ids:
            return {}
        experiments = self.all_experiment_ids()
        out: dict[str, RunRecord] = {}
        for start in range(0, len(ids), 100):
            chunk = ", ".join(f"'{i}'" for i in ids[start : start + 100] if "'" not in i)
            if not chunk:
                continue
            for run in self.scan(experiments, filter_string=f"attributes.run_id IN ({chunk})"):
                out[run.run_id] = run
        return out

    def experiment_name(self, experiment_id: str) -> str:
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
        try:
            repo = self._artifact_repo(run)
            infos = repo.list_artifacts(ARTIFACT_DIR)
        except Exception as exc:  # noqa: BLE001
            err = _classify(exc, f"listing artifacts of run {run_id}")
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
                    local = repo.download_artifacts(info.path, tmp)
                    data = read_bounded(local, cfg.MAX_BYTES)  # file_size may be unknown: never read more
                    if len(data) > cfg.MAX_BYTES:
                        out[stem] = cfg.ConfigError(where, "larger than 1 MiB")
                        continue
                    out[stem] = (info.path, data)
                except Exception as exc:  # noqa: BLE001
                    err = _classify(exc, f"downloading {where}")
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

        self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def delete_tag(self, run_id: str, key: str) -> None:
        self.client.delete_tag(run_id, key)

    # ---------------------------------------------------------------- demo writer

    def demo_experiment(self, name: str, marker: str) -> str:
        """Create (or empty, if it carries ``marker``) the demo experiment; refuse any other one."""
        try:
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                return self.client.create_experiment(name, tags={marker: "true"})
            if exp.tags.get(marker) != "true":
                raise UsageError(f"experiment '{name}' exists and is not a demo experiment: refusing to write into it")
            if exp.lifecycle_stage == "deleted":
                self.client.restore_experiment(exp.experiment_id)
            for run in self.scan([exp.experiment_id], include_deleted=False):
                self.client.delete_run(run.run_id)
            return exp.experiment_id
        except UsageError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _classify(exc, f"preparing experiment '{name}'") from exc

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
            raise _classify(exc, f"creating run '{name}'") from exc
