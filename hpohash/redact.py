"""One redaction function every line hpohash prints passes through (SPEC §5: credentials are never printed).

Secrets reach output by many roads: a ``user:password@`` tracking URI echoed in MLflow's own error
messages, a signed artifact URL's ``sig=`` in a traceback, an ``MLFLOW_TRACKING_TOKEN`` quoted by a
library. Rather than trusting each road, the CLI routes stdout, stderr, tracebacks and the journal
header through :func:`redact`, which knows the shapes (URL credentials, secret query parameters,
``Bearer`` tokens) and the literal values it was told about (the tracking URI's password and the
credential environment variables).
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any, TextIO
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"

#: query parameters whose value is a credential (matched case-insensitively)
SECRET_PARAMS = (
    "token", "access_token", "refresh_token", "id_token", "auth", "password", "passwd", "pwd", "secret",
    "client_secret", "api_key", "apikey", "key", "sig", "signature", "x-amz-signature", "x-amz-credential",
    "x-amz-security-token", "x-goog-signature", "x-goog-credential", "credential",
)  # fmt: skip

#: environment variables whose values are credentials (MLflow's and the artifact stores' standard ones)
SECRET_ENV = (
    "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_CLIENT_CERT_PATH",
    "DATABRICKS_TOKEN", "DATABRICKS_CLIENT_SECRET", "DATABRICKS_PASSWORD",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_CONNECTION_STRING", "AZURE_CLIENT_SECRET", "GOOGLE_API_KEY", "HF_TOKEN",
)  # fmt: skip

#: a literal shorter than this is not searched for in free text (``true`` must stay ``true`` in JSON);
#: shorter secrets are still masked wherever they appear in a URL, a query string or a header
MIN_LITERAL = 4

_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s?#\"'<>]*)@")
_PARAM = re.compile(
    r"(?P<lead>[?&;](?:" + "|".join(re.escape(p) for p in SECRET_PARAMS) + r")=)(?P<value>[^&;#\s\"'<>)]+)",
    re.IGNORECASE,
)
_HEADER = re.compile(r"\b(?P<kind>Bearer|Basic|Token)\s+(?P<value>[A-Za-z0-9._~+/=-]{6,})")

_lock = threading.Lock()
_literals: set[str] = set()


def add_secret(value: str | None) -> None:
    """Remember a literal secret (and its percent-decoded form) so free text never shows it."""
    if not value:
        return
    with _lock:
        for v in (value, unquote(value)):
            if len(v) >= MIN_LITERAL:
                _literals.add(v)


def add_uri_secrets(uri: str | None) -> None:
    """The password and secret query values of a URI become literals to mask everywhere."""
    if not uri:
        return
    try:
        parts = urlsplit(uri)
    except ValueError:
        return
    add_secret(parts.password)
    if parts.username and parts.password is None:
        add_secret(parts.username)  # https://<token>@host
    for name, value in parse_qsl(parts.query, keep_blank_values=False):
        if name.lower() in SECRET_PARAMS:
            add_secret(value)


def add_env_secrets(environ: Any = None) -> None:
    env = os.environ if environ is None else environ
    for name in SECRET_ENV:
        add_secret(env.get(name))
    add_uri_secrets(env.get("MLFLOW_TRACKING_URI"))


def _userinfo(m: re.Match[str]) -> str:
    return f"{m.group('scheme')}{MASK}@"


def redact(text: str) -> str:
    """``text`` with every known secret shape and literal replaced by ``***``."""
    if not text:
        return text
    if "@" in text:
        text = _USERINFO.sub(_userinfo, text)
    if "=" in text:
        text = _PARAM.sub(lambda m: m.group("lead") + MASK, text)
    text = _HEADER.sub(lambda m: f"{m.group('kind')} {MASK}", text)
    with _lock:
        literals = sorted(_literals, key=len, reverse=True)
    for lit in literals:
        if lit in text:
            text = text.replace(lit, MASK)
    return text


class RedactingStream:
    """A text stream proxy whose ``write`` redacts; everything else (isatty, fileno…) is the stream's."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
