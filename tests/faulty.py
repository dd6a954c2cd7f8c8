"""Misbehaving HTTP servers on 127.0.0.1, on raw sockets (no HTTP library to tidy their faults up).

Each answers every request the same way: ``silent`` accepts and never answers, ``trickle`` sends a
header then one byte every ``interval`` seconds, ``throttle`` answers 429 with ``Retry-After``,
``endless`` answers a listing of ``config/`` for MLflow's artifact-list endpoint and an endless body
for anything else. ``sent`` counts the body bytes written, ``requests`` the requests read.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

MODES = ("silent", "trickle", "throttle", "endless")


class FaultyServer:
    def __init__(self, mode: str, *, retry_after: int = 3600, interval: float = 1.0) -> None:
        assert mode in MODES, mode
        self.mode = mode
        self.retry_after = retry_after
        self.interval = interval
        self.sent = 0
        self.requests = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        self._threads: list[threading.Thread] = []

    def start(self) -> FaultyServer:
        t = threading.Thread(target=self._accept, name="faulty-accept", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), name="faulty-conn", daemon=True)
            t.start()
            self._threads.append(t)

    def _read_request(self, conn: socket.socket) -> str | None:
        data = b""
        conn.settimeout(0.2)
        while b"\r\n\r\n" not in data:
            if self._stop.is_set():
                return None
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return None
            if not chunk:
                return None
            data += chunk
        with self._lock:
            self.requests += 1
        return data.split(b"\r\n", 1)[0].decode("latin-1")

    def _send(self, conn: socket.socket, data: bytes, *, body: bool = True) -> bool:
        try:
            conn.sendall(data)
        except OSError:
            return False
        if body:
            with self._lock:
                self.sent += len(data)
        return True

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            while not self._stop.is_set():
                line = self._read_request(conn)
                if line is None:
                    return
                if self.mode == "silent":
                    self._stop.wait()
                    return
                if self.mode == "throttle":
                    head = (
                        "HTTP/1.1 429 Too Many Requests\r\n"
                        f"Retry-After: {self.retry_after}\r\nContent-Length: 0\r\n\r\n"
                    )
                    if not self._send(conn, head.encode(), body=False):
                        return
                    continue
                if self.mode == "trickle":
                    head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
                    if not self._send(conn, head.encode(), body=False):
                        return
                    while not self._stop.wait(self.interval):
                        if not self._send(conn, b" "):
                            return
                    return
                # endless: the listing of config/, then a body that never ends for the file itself
                target = line.split(" ")[1] if " " in line else ""
                if "/mlflow-artifacts/artifacts?" in target:
                    listing = json.dumps({"files": [{"path": "hpo.yaml", "is_dir": False}]}).encode()
                    head = (
                        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(listing)}\r\n\r\n"
                    )
                    if not self._send(conn, head.encode() + listing, body=False):
                        return
                    continue
                head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
                if not self._send(conn, head.encode(), body=False):
                    return
                chunk = b"k: v\n" * 13107  # 64 KiB of YAML, forever
                while not self._stop.is_set():
                    if not self._send(conn, chunk):
                        return
                return


@contextmanager
def faulty(mode: str, **kwargs: float) -> Iterator[FaultyServer]:
    server = FaultyServer(mode, **kwargs).start()  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()
