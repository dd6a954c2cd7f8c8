"""One redaction function every line hpohash prints passes through (SPEC §5: credentials are never printed).

Secrets reach output by many roads: a ``user:password@`` tracking URI echoed in MLflow's own error
messages, a signed artifact URL's ``sig=`` in a traceback, an ``MLFLOW_TRACKING_TOKEN`` quoted by a
library. Rather than trusting each road, the CLI routes stdout, stderr, tracebacks and the journal
header through a :class:`Redactor`, which knows the shapes (URL credentials, secret query parameters,
``Bearer`` tokens) and the literal values it was told about (the tracking URI's password and the
credential environment variables). The literals belong to one call (``hpohash.context``), not the process.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, TextIO
from urllib.parse import parse_qsl, unquote, urlsplit

from hpohash.context import Secrets, active
from hpohash.errors import OutputError

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

#: a literal shorter than this is not searched for in free text (it would mask parts of ordinary words);
#: shorter secrets are still masked wherever they appear in a URL, a query string or a header
MIN_LITERAL = 4

# Both patterns start with a literal or a small class, so a large JSON document is scanned quickly.
_USERINFO = re.compile(r"://(?P<userinfo>[^/\s?#\"'<>]*)@")
_VALUE = re.compile(r"=(?P<value>[^&;#\s\"'<>)]+)")  # starts with a literal: fast on large documents
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_SECRET_PARAMS = frozenset(SECRET_PARAMS)
_HEADER = re.compile(r"\b(?P<kind>Bearer|Basic|Token)\s+(?P<value>[A-Za-z0-9._~+/=-]{6,})")


class Redactor:
    """The literal secrets one call (one CLI command) masks, besides the shapes every text is searched for.

    The literals are the call's (``hpohash.context.Secrets``), never the process's: two calls in one
    process mask each their own secrets, and a secret of one is not a word the other can no longer print.
    """

    def __init__(self, secrets: Secrets | None = None) -> None:
        self.secrets = secrets if secrets is not None else Secrets()
        self._lock = self.secrets.lock
        self._literals = self.secrets.literals

    def add_secret(self, value: str | None) -> None:
        """Remember a literal secret (and its percent-decoded form) so free text never shows it."""
        if not value:
            return
        with self._lock:
            for v in (value, unquote(value)):
                if len(v) >= MIN_LITERAL:
                    self._literals.add(v)
                    self._literals.add(json.dumps(v, ensure_ascii=False)[1:-1])  # as a JSON string holds it

    def add_uri_secrets(self, uri: str | None) -> None:
        """The password and secret query values of a URI become literals to mask everywhere."""
        if not uri:
            return
        try:
            parts = urlsplit(uri)
        except ValueError:
            return
        self.add_secret(parts.password)
        if parts.username and parts.password is None:
            self.add_secret(parts.username)  # https://<token>@host
        for name, value in parse_qsl(parts.query, keep_blank_values=False):
            if name.lower() in SECRET_PARAMS:
                self.add_secret(value)

    def add_env_secrets(self, environ: Mapping[str, str]) -> None:
        """The credential variables of an environment (the CLI passes ``os.environ``: its edge)."""
        for name in SECRET_ENV:
            self.add_secret(environ.get(name))
        self.add_uri_secrets(environ.get("MLFLOW_TRACKING_URI"))

    def redact(self, text: str) -> str:
        """``text`` with every known secret shape and this redactor's literals replaced by ``***``."""
        text = redact_shapes(text)
        if not text:
            return text
        with self._lock:
            literals = sorted(self._literals, key=len, reverse=True)
        for lit in literals:
            if lit in text:
                text = _mask_literal(text, lit)
        return text


def _current() -> Redactor | None:
    ctx = active()
    return Redactor(ctx.secrets) if ctx is not None else None


def add_secret(value: str | None) -> None:
    """A secret for the call in progress to mask (outside a call: nobody's, so nothing to remember)."""
    redactor = _current()
    if redactor is not None:
        redactor.add_secret(value)


def add_uri_secrets(uri: str | None) -> None:
    """The secrets of a URI, for the call in progress to mask."""
    redactor = _current()
    if redactor is not None:
        redactor.add_uri_secrets(uri)


def _userinfo(m: re.Match[str]) -> str:
    return f"://{MASK}@"


def _mask_params(text: str) -> str:
    """``?token=…``/``&sig=…``: the value after ``=`` is masked when the name before it is a secret's."""
    out: list[str] = []
    last = 0
    for m in _VALUE.finditer(text):
        eq = m.start()
        start = eq
        while start > 0 and eq - start < 40 and text[start - 1] in _NAME_CHARS:
            start -= 1
        if start > 0 and text[start - 1] in "?&;" and text[start:eq].lower() in _SECRET_PARAMS:
            out += [text[last : m.start("value")], MASK]
            last = m.end("value")
    return "".join(out) + text[last:] if out else text


#: every character JSON may hold outside a string: structure, whitespace, numbers, true/false/null
_JSON_BARE = frozenset("{}[],: \t\r\n0123456789+-.eEtrufalsn")
_STRUCTURE = "{}[],: \t\r\n"
_SCALAR = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|true|false|null")
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.+-")


def _is_bare_json(text: str) -> bool:
    """``text`` is JSON scalars and structure only: what may stand outside a JSON string."""
    parts = [p for p in re.split(r"[{}\[\],:\s]+", text) if p]
    return all(_SCALAR.fullmatch(p) for p in parts)


def _mask_literal(text: str, lit: str) -> str:
    """Mask ``lit`` where it is the secret, never where it is a JSON value that happens to be equal.

    A literal made only of characters JSON allows outside strings (``true``, ``1234``) is left alone
    where the word around it is a number, ``true``/``false``/``null`` or structure: masking it there
    would turn ``"ok": true`` into ``"ok": ***``. Anywhere else (inside a longer word, a string, a
    URL) it is masked as any secret.
    """
    if not set(lit) <= _JSON_BARE:
        return text.replace(lit, MASK)
    out: list[str] = []
    last = 0
    start = text.find(lit)
    while start != -1:
        end = start + len(lit)
        lo, hi = start, end
        while lo > 0 and text[lo - 1] in _TOKEN_CHARS:
            lo -= 1
        while hi < len(text) and text[hi] in _TOKEN_CHARS:
            hi += 1
        if not _is_bare_json(text[lo:hi].strip(_STRUCTURE)):
            out += [text[last:start], MASK]
            last = end
        start = text.find(lit, end)
    return "".join(out) + text[last:] if out else text


def redact_shapes(text: str) -> str:
    """``text`` with every secret shape (URL credentials, secret query values, auth headers) masked."""
    if not text:
        return text
    if "@" in text:
        text = _USERINFO.sub(_userinfo, text)
    if "=" in text:
        text = _mask_params(text)
    # substring scans: ~100x cheaper than the regex; and a letter is ~8x cheaper than a word (a report's
    # findings often have no capital B or T at all: 0.27 s -> 0.03 s for 88 MB of JSON)
    if ("B" in text or "T" in text) and ("Bearer" in text or "Basic" in text or "Token" in text):
        text = _HEADER.sub(lambda m: f"{m.group('kind')} {MASK}", text)
    return text


def redact(text: str) -> str:
    """``text`` with every known secret shape, and the literals of the call in progress, replaced by ``***``."""
    redactor = _current()
    return redactor.redact(text) if redactor is not None else redact_shapes(text)


class RedactingStream:
    """A text stream proxy whose ``write`` redacts; everything else (isatty, fileno…) is the stream's.

    A write or flush the OS refuses (a full disk, a closed descriptor) becomes :class:`OutputError`
    naming the stream and the OS's reason; a closed pipe stays ``BrokenPipeError`` (the reader left:
    the renderers drop the rest and keep the exit code).
    """

    def __init__(self, stream: TextIO, name: str = "stdout", redactor: Redactor | None = None) -> None:
        self._stream = stream
        self._name = name
        self._redact = redactor.redact if redactor is not None else redact

    def _failed(self, exc: OSError) -> OutputError:
        return OutputError(f"cannot write to {self._name}: {exc.strerror or exc}")

    def write(self, text: str) -> int:
        try:
            self._stream.write(self._redact(text))
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise self._failed(exc) from exc
        return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise self._failed(exc) from exc

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
