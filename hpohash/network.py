"""Bounds on every request to a tracking store: a total deadline, throttling waited out within a
budget, a line on stderr for any wait of more than a few seconds, artifact bodies read up to a cap.

Where the retry loop lives. MLflow's client already retries each request that meets a 429, a 5xx or
a dropped connection (urllib3's ``Retry``, honouring ``Retry-After``; for Databricks its own loop),
with defaults tuned for the managed services. A second loop here would multiply the attempts, so
hpohash keeps MLflow's as the only one and never lowers its settings. What MLflow does not bound is
the total: a per-read timeout lets a server trickle forever, and ``Retry-After: 3600`` is slept in
full. So each call runs on a daemon thread (never keeping the process alive at exit) watched from
the caller's thread, which owns the policy:

- the call's own time (not counting waits the server asked for) is bounded by ``deadline_s``, the
  first call of a connection (resolving, connecting, authenticating) by ``connect_timeout_s``;
- a wait the server asks for (``Retry-After``) is charged to one budget per connection,
  ``max_throttle_wait_s``; a wait longer than what is left fails at once, naming it;
- after a few seconds without an answer, one line on stderr says what is awaited and why.

The watch learns that MLflow is sleeping on a ``Retry-After`` (and for how long) by reading the
waiting thread's stack (urllib3's ``Retry.sleep_for_retry``), read-only: nothing process-wide is
patched or set for a library caller (only the CLI sets environment variables, at its edge).
"""

from __future__ import annotations

import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlparse

from hpohash.context import carried
from hpohash.errors import BackendError
from hpohash.redact import redact
from hpohash.settings import BackendSettings

T = TypeVar("T")

#: how often a waiting caller looks at the call it waits for
TICK_S = 0.2
#: a wait longer than this says on stderr what it is waiting for (sooner under a short deadline)
NOTICE_S = 5.0
#: read size of a bounded artifact body
CHUNK = 64 * 1024

#: MLflow's error codes for a throttled or temporarily unavailable service
THROTTLE_CODES = ("REQUEST_LIMIT_EXCEEDED", "TEMPORARILY_UNAVAILABLE")
_THROTTLE_TEXT = re.compile(r"too many (429|503) error responses|\b(429|503) (?:Client|Server) Error")


class ThrottledError(BackendError):
    """The store kept throttling (429/503) past what hpohash waits out: exit 3, like any backend
    failure, but not a sign the store is down (backfill's consecutive-failure stop ignores it)."""


def is_throttling(exc: BaseException) -> bool:
    """A 429/503 answer that MLflow's own retries did not get past."""
    if getattr(exc, "error_code", None) in THROTTLE_CODES:
        return True
    return bool(_THROTTLE_TEXT.search(str(getattr(exc, "message", None) or exc)))


def say(line: str) -> None:
    """One line on stderr, redacted (a library caller's stderr is not wrapped by the CLI's)."""
    sys.stderr.write(redact(line) + "\n")
    sys.stderr.flush()


def _seconds(s: float) -> str:
    return f"{s:.0f} s" if s >= 10 or s == int(s) else f"{s:.1f} s"


@dataclass(frozen=True)
class Pause:
    """MLflow's retry loop sleeping before its next attempt, as seen from outside."""

    #: the server asked for it (``Retry-After``): charged to the throttling budget
    asked: bool
    seconds: float
    #: what the last attempt met: an HTTP status, or the connection error's name
    reason: str
    #: tells one sleep from the next within a request (the attempts made so far)
    token: int


def retry_pause(thread_id: int | None) -> Pause | None:
    """Whether that thread sleeps in urllib3's retry loop, why and for how long (read-only)."""
    frame = sys._current_frames().get(thread_id) if thread_id is not None else None
    while frame is not None:
        code = frame.f_code
        if "urllib3" in code.co_filename and code.co_name in ("sleep_for_retry", "_sleep_backoff"):
            local = frame.f_locals
            retry = local.get("self")
            history = getattr(retry, "history", None) or ()
            last = history[-1] if history else None
            reason = ""
            if last is not None:
                reason = f"HTTP {last.status}" if last.status else type(last.error).__name__
            if code.co_name == "sleep_for_retry":
                status = getattr(local.get("response"), "status", None)
                return Pause(True, float(local.get("retry_after") or 0), f"HTTP {status}", len(history))
            return Pause(False, float(local.get("backoff") or 0), reason, len(history))
        frame = frame.f_back
    return None


@dataclass(frozen=True)
class Endpoint:
    """Where a connection goes: the name used in messages and, for HTTP, the socket to try first."""

    name: str
    #: (host, port) reached with one TCP connection before the first request; None: not HTTP
    address: tuple[str, int] | None = None
    #: False for a store on this machine (SQLite, a file store): nothing to wait for
    remote: bool = True

    @classmethod
    def of(cls, uri: str, display_uri: str) -> Endpoint:
        parsed = urlparse(uri)
        scheme = parsed.scheme.lower()
        if uri in DATABRICKS_NAMES or scheme == "databricks":
            host = _databricks_host(uri)
            if host is None:  # no host configured: the first call fails with MLflow's auth error
                return cls(display_uri)
            address = _address(host if "://" in host else f"https://{host}")
            return cls(f"{address[0]} ({display_uri})" if address else display_uri, address)
        if scheme in ("", "file", "sqlite") or (len(scheme) == 1 and scheme.isalpha()):  # C:\ too
            return cls(display_uri, None, remote=False)
        if scheme in ("http", "https", "azureml"):
            address = _address(uri)
            if address is None:
                return cls(display_uri)
            try:
                name = f"{address[0]}:{parsed.port}" if parsed.port else address[0]
            except ValueError:
                name = address[0]
            return cls(name if scheme != "azureml" else f"{name} ({scheme})", address)
        return cls(display_uri)


#: tracking URIs that name a Databricks workspace without ``://``
DATABRICKS_NAMES = ("databricks", "databricks-uc", "uc")


def _address(url: str) -> tuple[str, int] | None:
    """(host, port) of an ``http(s)://`` (or ``azureml://``, HTTPS underneath) URL; None if malformed."""
    parsed = urlparse(url)
    try:
        port = parsed.port or (80 if parsed.scheme.lower() == "http" else 443)
    except ValueError:  # a malformed port: MLflow's own error says so
        return None
    return (parsed.hostname, port) if parsed.hostname else None


def _databricks_host(uri: str) -> str | None:
    """The workspace host MLflow will use for a Databricks URI, found the way the Databricks SDK
    finds it (``DATABRICKS_HOST``, else the profile in ``~/.databrickscfg``), without the SDK: it
    resolves the host itself, with retries, for minutes, before any answer."""
    import configparser
    import os

    profile = None
    if "://" in uri:  # databricks://PROFILE or databricks://SCOPE:PREFIX (a secret scope: no file)
        profile = urlparse(uri).netloc.split(":", 1)[0] or None
        if profile is None or ":" in urlparse(uri).netloc:
            return None
    else:
        if os.environ.get("DATABRICKS_HOST"):
            return os.environ["DATABRICKS_HOST"]
        profile = os.environ.get("DATABRICKS_CONFIG_PROFILE") or "DEFAULT"
    path = os.environ.get("DATABRICKS_CONFIG_FILE") or os.path.expanduser("~/.databrickscfg")
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
        host = parser.get(profile, "host", fallback=None)
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None
    return host.strip() or None if host else None


class Watch:
    """The bounds of one connection: every call to the store goes through :meth:`call`."""

    def __init__(self, endpoint: Endpoint, settings: BackendSettings) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self._lock = threading.Lock()
        self._reached = False
        self._throttled_s = 0.0
        self._said: set[str] = set()

    @property
    def host(self) -> str:
        return self.endpoint.name

    def say_once(self, line: str) -> None:
        """A waiting line once per connection (eight threads waiting on one host say it once)."""
        with self._lock:
            if line in self._said:
                return
            self._said.add(line)
        say(line)

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` within the connection's bounds; exceptions pass through as raised,
        except a throttling one (:class:`ThrottledError`) and a missed deadline (``BackendError``)."""
        if not self.endpoint.remote:
            return fn(*args, **kwargs)
        # the first call also reaches the host: over HTTP a TCP connection does that, bounded
        # apart; for other stores (Databricks, Azure ML: authentication first) the call itself
        connecting = not self._reached and self.endpoint.address is None
        if not self._reached and self.endpoint.address is not None:
            self.reach()
        deadline = self.settings.deadline_s
        if connecting:
            deadline = min(deadline, self.settings.connect_timeout_s)
        result = self._watched(what, fn, args, kwargs, deadline, connecting)
        self._reached = True
        return result

    def reach(self) -> None:
        """Resolve the host and open one TCP connection (to the proxy, where one applies) within
        ``connect_timeout_s``: an unknown or unreachable host is one clear line, not MLflow's
        retries with backoff."""
        assert self.endpoint.address is not None
        host, port = self.endpoint.address
        via = ""
        proxy = _proxy_for(host)
        if proxy is not None:
            via = f" (through the proxy {proxy[0]}:{proxy[1]})"
            host, port = proxy
        limit = self.settings.connect_timeout_s
        start = time.monotonic()
        found: dict[str, Any] = {}

        def resolve() -> None:
            try:
                found["addrs"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                found["error"] = exc

        # getaddrinfo has no timeout of its own: a daemon thread, abandoned past the limit
        resolver = threading.Thread(target=resolve, name="hpohash-resolve", daemon=True)
        resolver.start()
        resolver.join(limit)
        prefix = f"tracking backend failed: cannot reach {self.host}{via}"
        if resolver.is_alive():
            raise BackendError(f"{prefix}: the host name {host} did not resolve within {_seconds(limit)}")
        if "error" in found:
            exc = found["error"]
            raise BackendError(f"{prefix}: the host name {host} does not resolve ({exc.strerror or exc})")
        error: OSError | None = None
        for family, kind, proto, _, addr in found["addrs"]:
            left = limit - (time.monotonic() - start)
            if left <= 0:
                break
            try:
                with socket.socket(family, kind, proto) as sock:
                    sock.settimeout(left)
                    sock.connect(addr)
                return
            except OSError as exc:
                error = exc
        if error is None or isinstance(error, TimeoutError):
            raise BackendError(f"{prefix}: no connection within {_seconds(limit)}")
        raise BackendError(f"{prefix}: {error.strerror or error}")

    def _watched(self, what: str, fn: Callable[..., T], args: Any, kwargs: Any, deadline: float, connecting: bool) -> T:
        box: dict[str, Any] = {}
        done = threading.Event()

        def work() -> None:
            try:
                box["value"] = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                box["error"] = exc
            finally:
                done.set()

        # named after the thread it works for (a page read ahead stays "hpohash-page…")
        worker = threading.Thread(target=carried(work), name=f"{threading.current_thread().name}:{what}", daemon=True)
        worker.start()
        notice = min(NOTICE_S, deadline / 2)
        waited, seen, last = 0.0, -1, time.monotonic()
        action = what.replace("_", " ")
        while not done.wait(TICK_S):
            now = time.monotonic()
            step, last = now - last, now
            pause = retry_pause(worker.ident)
            if pause is not None and pause.asked:
                with self._lock:
                    self._throttled_s += step if pause.token == seen else 0.0
                    left = self.settings.max_throttle_wait_s - self._throttled_s
                if pause.token != seen:  # a new Retry-After: is it within what is left?
                    seen = pause.token
                    if pause.seconds > left:
                        raise ThrottledError(
                            f"{action}: tracking backend failed: {self.host} is throttling ({pause.reason}) and "
                            f"asks to wait {_seconds(pause.seconds)} (Retry-After), more than the "
                            f"{_seconds(max(left, 0))} left of the {_seconds(self.settings.max_throttle_wait_s)} "
                            "hpohash waits out"
                        )
                    if pause.seconds >= notice:
                        say(
                            f"hpohash: {self.host} is throttling ({pause.reason}): waiting "
                            f"{_seconds(pause.seconds)} as it asks (Retry-After) before retrying {action}"
                        )
                elif left <= 0:
                    raise ThrottledError(
                        f"{action}: tracking backend failed: {self.host} kept throttling ({pause.reason}) "
                        f"past the {_seconds(self.settings.max_throttle_wait_s)} hpohash waits out"
                    )
                continue
            waited += step
            if waited >= notice:
                why = f" (retrying after {pause.reason})" if pause is not None and pause.reason else ""
                self.say_once(
                    f"hpohash: waiting for {self.host}: no answer to {action} yet{why}; "
                    f"giving up after {_seconds(deadline)}"
                )
            if waited >= deadline:
                hint = "is the host reachable, are the credentials set?" if connecting else "is the store overloaded?"
                raise BackendError(
                    f"{action}: tracking backend failed: no answer from {self.host} within {_seconds(deadline)}; "
                    f"{hint} (--timeout sets the limit)"
                )
        if "error" in box:
            exc = box["error"]
            if is_throttling(exc):
                found = _THROTTLE_TEXT.search(str(exc))
                status = f"HTTP {found.group(1) or found.group(2)}" if found else str(getattr(exc, "error_code", ""))
                raise ThrottledError(
                    f"{action}: tracking backend failed: {self.host} kept throttling ({status}) "
                    "past MLflow's retries (MLFLOW_HTTP_REQUEST_MAX_RETRIES)"
                ) from exc
            if "Databricks credential configuration failed" in str(exc):
                raise BackendError(
                    f"tracking backend failed: Databricks authentication for {self.host} failed: no "
                    "credentials found (set DATABRICKS_HOST and DATABRICKS_TOKEN, or use "
                    "databricks://PROFILE with that profile in ~/.databrickscfg)"
                ) from exc
            raise exc
        value: T = box["value"]
        return value


def _proxy_for(host: str) -> tuple[str, int] | None:
    """The HTTP(S) proxy ``requests`` would use for this host (from the environment), if any."""
    from urllib.request import getproxies, proxy_bypass  # ~20 ms of start-up: only a remote store asks

    if proxy_bypass(host):
        return None
    proxies = getproxies()
    url = proxies.get("https") or proxies.get("http")
    if not url:
        return None
    parsed = urlparse(url if "://" in url else f"http://{url}")
    try:
        return (parsed.hostname, parsed.port or 80) if parsed.hostname else None
    except ValueError:
        return None


class WatchedClient:
    """An ``MlflowClient`` whose every method call runs within the connection's :class:`Watch`."""

    def __init__(self, client: Any, watch: Watch) -> None:
        self._client = client
        self._watch = watch

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr
        watch = self._watch

        def watched(*args: Any, **kwargs: Any) -> Any:
            return watch.call(name, attr, *args, **kwargs)

        return watched


def read_artifact(repo: Any, path: str, limit: int) -> bytes | None:
    """At most ``limit + 1`` bytes of one artifact, read straight into memory: over HTTP the body
    is streamed and the connection closed past the cap; from a local directory the file is read,
    not copied. None: this repository offers neither (the caller downloads, then reads bounded)."""
    local = getattr(repo, "read_bounded", None)
    if local is not None:  # hpohash's own reader of a local artifact root (MLflow not imported)
        return bytes(local(path, limit))
    from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    if isinstance(repo, HttpArtifactRepository):
        import posixpath

        from mlflow.utils.request_utils import augmented_raise_for_status
        from mlflow.utils.rest_utils import http_request

        resp = http_request(repo._host_creds, posixpath.join("/", path), "GET", stream=True)
        try:
            augmented_raise_for_status(resp)
            data = bytearray()
            for chunk in resp.iter_content(chunk_size=CHUNK):
                data += chunk
                if len(data) > limit:
                    break
            return bytes(data[: limit + 1])
        finally:
            resp.close()
    if isinstance(repo, LocalArtifactRepository):
        import os

        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
        from mlflow.utils.uri import validate_path_is_safe, validate_path_within_directory

        from hpohash.limits import read_bounded

        safe = validate_path_is_safe(path)
        local = os.path.join(repo.artifact_dir, os.path.normpath(safe))
        validate_path_within_directory(repo.artifact_dir, local)
        if not os.path.isfile(local):
            raise MlflowException(f"No such artifact: '{safe}'", error_code=RESOURCE_DOES_NOT_EXIST)
        return read_bounded(local, limit)
    return None
