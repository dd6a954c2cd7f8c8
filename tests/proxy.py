"""A restricted-dialect HTTP proxy on 127.0.0.1 in front of a real `mlflow server`.

It answers the way the managed services are documented or reported to (shared backends/README.md):
what a profile refuses gets ``400 INVALID_PARAMETER_VALUE`` with the quoted message, page tokens are
its own opaque ones wrapping the server's (a token it did not issue is refused), and an armed burst
of ``429`` with ``Retry-After: 1`` answers the next requests. Everything else is passed through
unchanged, so what hpohash reads through it is the real server's data in another dialect. Requests
are counted by kind, so a test can assert what probing cost. Faults can be armed too: a burst of
``503`` (``arm_burst(n, 503)``) and answers cut off mid-body (``arm_drop``): the status line, headers
naming the whole length, half the body, then the connection closed.
"""

from __future__ import annotations

import http.client
import json
import re
import secrets
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

SEARCH_RUNS = "/api/2.0/mlflow/runs/search"
DELETE_TAG = "/api/2.0/mlflow/runs/delete-tag"


@dataclass(frozen=True)
class Profile:
    """What one managed service refuses (True: refused)."""

    name: str
    like: bool = False
    not_equal: bool = False
    start_time: bool = False
    is_null: bool = False
    max_experiment_ids: int | None = None
    opaque_tokens: bool = True
    delete_tag: bool = False


#: Azure ML workspace: no LIKE/ILIKE, no tag !=, no start_time filters, no IS NULL, no delete-tag
AZURE_ML = Profile("azureml", like=True, not_equal=True, start_time=True, is_null=True, delete_tag=True)
#: Databricks: at most 10 experiment ids a search, IS NULL refused
DATABRICKS = Profile("databricks", is_null=True, max_experiment_ids=10)

_LIKE = re.compile(r"\btags\.(`[^`]*`|\"[^\"]*\"|\S+)\s+(I?LIKE)\s", re.IGNORECASE)
_TAG_NE = re.compile(r"\btags\.(`[^`]*`|\"[^\"]*\"|\S+)\s*!=", re.IGNORECASE)
_IS_NULL = re.compile(r"\bIS\s+(NOT\s+)?NULL\b", re.IGNORECASE)
_START = re.compile(r"\b(attributes?\.|attr\.|run\.)?start_time\b", re.IGNORECASE)
_OR = re.compile(r"\sOR\s", re.IGNORECASE)


class RestrictedProxy:
    """``start()`` on a free port; ``uri`` is what hpohash is pointed at."""

    def __init__(self, upstream: str, profile: Profile) -> None:
        parsed = urlparse(upstream)
        self.upstream_host, self.upstream_port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.profile = profile
        self.counts: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        #: every search asked for, in arrival order: (experiment ids, filter, max_results, page token given)
        self.searches: list[tuple[tuple[str, ...], str, int, bool]] = []
        self._tokens: dict[str, str] = {}
        self._burst = 0
        self._burst_status = 429
        self._drop = 0
        self._drop_path = ""
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.uri = ""

    # ------------------------------------------------------------------ control

    def start(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                return

            def do_GET(self) -> None:
                proxy._handle(self)

            def do_POST(self) -> None:
                proxy._handle(self)

            def do_PUT(self) -> None:
                proxy._handle(self)

            def do_DELETE(self) -> None:
                proxy._handle(self)

            def do_PATCH(self) -> None:
                proxy._handle(self)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self.uri = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, name="restricted-proxy", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def arm_burst(self, n: int, status: int = 429) -> None:
        """The next ``n`` requests are answered ``status`` (429 or 503) with ``Retry-After: 1``."""
        with self._lock:
            self._burst, self._burst_status = n, status

    def arm_drop(self, n: int, path: str = "") -> None:
        """The next ``n`` answers (to ``path`` only, when given) stop half-way through their body."""
        with self._lock:
            self._drop, self._drop_path = n, path

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()
            self.refused.clear()
            self.searches.clear()

    # ------------------------------------------------------------------ handling

    def _reply(self, h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]) -> None:
        h.send_response(status)
        for key, value in headers.items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _refuse(self, h: BaseHTTPRequestHandler, why: str, message: str) -> None:
        with self._lock:
            self.refused[why] += 1
        body = json.dumps({"error_code": "INVALID_PARAMETER_VALUE", "message": message}).encode()
        self._reply(h, 400, body, {"Content-Type": "application/json"})

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        path = urlparse(h.path).path
        with self._lock:
            self.counts["requests"] += 1
            throttled = self._burst > 0
            status = self._burst_status
            if throttled:
                self._burst -= 1
                self.counts[str(status)] += 1
            drop = self._drop > 0 and (not self._drop_path or path == self._drop_path)
            if drop:
                self._drop -= 1
                self.counts["dropped"] += 1
        if throttled:
            code = "REQUEST_LIMIT_EXCEEDED" if status == 429 else "TEMPORARILY_UNAVAILABLE"
            payload = json.dumps({"error_code": code, "message": "Try again later"}).encode()
            self._reply(h, status, payload, {"Content-Type": "application/json", "Retry-After": "1"})
            return
        if drop:
            status, headers, data = self._forward(h.command, h.path, body, h.headers.get("Content-Type"))
            h.send_response(status)
            for key, value in headers.items():
                h.send_header(key, value)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data[: len(data) // 2])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(2)  # SHUT_RDWR: the client reads half a body, then the end
            return
        if path == SEARCH_RUNS and h.command == "POST":
            self._search(h, body)
            return
        if path == DELETE_TAG and h.command == "POST":
            with self._lock:
                self.counts["delete_tag"] += 1
                key = json.loads(body or b"{}").get("key", "")
                if key.startswith("hpohash.probe"):
                    self.counts["delete_tag_probe"] += 1
            if self.profile.delete_tag:
                self._refuse(h, "delete_tag", "Deleting tags is not supported for runs in this workspace")
                return
        status, headers, data = self._forward(h.command, h.path, body, h.headers.get("Content-Type"))
        self._reply(h, status, data, headers)

    def _search(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        request = json.loads(body or b"{}")
        flt = str(request.get("filter") or "")
        ids = request.get("experiment_ids") or []
        p = self.profile
        with self._lock:
            self.counts["search"] += 1
            if int(request.get("max_results") or 0) == 1:
                self.counts["probe"] += 1
            asked = (
                tuple(str(i) for i in ids),
                flt,
                int(request.get("max_results") or 0),
                bool(request.get("page_token")),
            )
            self.searches.append(asked)
        like = _LIKE.search(flt)
        if p.like and like:
            self._refuse(h, "like", f"Operator '{like.group(2).upper()}' not supported for key type 'Tag'")
            return
        if p.not_equal and _TAG_NE.search(flt):
            self._refuse(h, "not_equal", "Operator '!=' not supported for key type 'Tag'")
            return
        if p.is_null and _IS_NULL.search(flt):
            self._refuse(h, "is_null", "Operator 'IS NULL' not supported for key type 'Tag'")
            return
        if p.start_time and _START.search(flt):
            self._refuse(h, "start_time", "Filtering on run attribute 'start_time' is not supported")
            return
        if _OR.search(flt):
            self._refuse(h, "or", "Operator 'OR' not supported")
            return
        if p.max_experiment_ids is not None and len(ids) > p.max_experiment_ids:
            self._refuse(h, "experiment_ids", "Too many experiment_ids specified in SearchRuns request")
            return
        token = request.get("page_token")
        if token and p.opaque_tokens:
            with self._lock:
                upstream = self._tokens.get(token)
            if upstream is None:
                self._refuse(h, "page_token", "Invalid page token")
                return
            request["page_token"] = upstream
        status, headers, data = self._forward("POST", SEARCH_RUNS, json.dumps(request).encode(), "application/json")
        if status == 200 and p.opaque_tokens:
            doc = json.loads(data or b"{}")
            if doc.get("next_page_token"):
                mine = "opaque-" + secrets.token_hex(12)
                with self._lock:
                    self._tokens[mine] = doc["next_page_token"]
                doc["next_page_token"] = mine
            data = json.dumps(doc).encode()
        self._reply(h, status, data, headers)

    def _forward(self, method: str, path: str, body: bytes, content_type: str | None) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            headers = {"Content-Type": content_type} if content_type else {}
            conn.request(method, path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            keep = {k: v for k, v in resp.getheaders() if k.lower() == "content-type"}
            return resp.status, keep, data
        finally:
            conn.close()
