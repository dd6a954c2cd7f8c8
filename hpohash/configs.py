"""Config location and parsing: one parser for files on disk and bytes fetched from artifacts (SPEC §4).

YAML is read with PyYAML ``safe_load`` (YAML 1.1: ``1e-5`` stays a string) because the hashes on
record were made that way; ``.json`` files are read as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpohash.errors import UsageError
from hpohash.limits import LimitError, check_value, load_json, load_yaml, read_bounded
from hpohash.text import one_line

REQUIRED = ("data", "hpo", "train")
OPTIONAL = ("benchmark",)
NAMES = REQUIRED + OPTIONAL
SUFFIXES = (".yaml", ".yml", ".json")
MAX_BYTES = 1024 * 1024


class ConfigError(UsageError):
    """A config that exists but cannot be used; ``where`` names the file or artifact (exit 2)."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


class ConfigMissing(ConfigError):
    """A required config was not found anywhere it is looked up."""


@dataclass(frozen=True)
class ConfigSet:
    """The configs that make a study key, and where each came from (for messages and ``diff``)."""

    data: dict[str, Any]
    hpo: dict[str, Any]
    train: dict[str, Any]
    benchmark: dict[str, Any] | None = None
    sources: dict[str, str] = field(default_factory=dict)


def parse_config(where: str, raw: bytes) -> dict[str, Any]:
    """Parse one config's bytes; ``where`` ends with the file name, whose suffix picks the parser."""
    import yaml

    if len(raw) > MAX_BYTES:
        raise ConfigError(where, f"larger than 1 MiB ({len(raw)} bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(where, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if where.lower().endswith(".json"):
        try:
            value = load_json(text) if text.strip() else None
        except json.JSONDecodeError as exc:
            raise ConfigError(where, f"malformed JSON: {exc}") from exc
        except LimitError as exc:
            raise ConfigError(where, str(exc)) from exc
    else:
        try:
            value = load_yaml(text)
        except yaml.YAMLError as exc:
            raise ConfigError(where, f"malformed YAML: {one_line(exc)}") from exc
        except LimitError as exc:
            raise ConfigError(where, str(exc)) from exc
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(where, f"not a mapping (top level is a {type(value).__name__})")
    try:
        check_value(value)
    except LimitError as exc:
        raise ConfigError(where, str(exc)) from exc
    return value


def read_config_file(path: Path) -> dict[str, Any]:
    """Read at most 1 MiB (+1 byte to tell "larger"): a pipe or ``<(…)`` is read like a file."""
    try:
        if path.is_dir():
            raise ConfigError(str(path), "is a directory, not a file")
        raw = read_bounded(path, MAX_BYTES)
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror or exc}") from exc
    if len(raw) > MAX_BYTES:
        raise ConfigError(str(path), "larger than 1 MiB")
    return parse_config(str(path), raw)


def load_config_files(
    data: str | Path, hpo: str | Path, train: str | Path, benchmark: str | Path | None = None
) -> ConfigSet:
    """Load configs from explicit file paths (``hash --data/--hpo/--train/--benchmark``)."""
    paths = {"data": data, "hpo": hpo, "train": train, "benchmark": benchmark}
    found: dict[str, dict[str, Any] | None] = {}
    sources: dict[str, str] = {}
    for name, path in paths.items():
        if path is None:
            found[name] = None
            continue
        p = Path(path)
        if not p.exists():
            raise ConfigMissing(str(p), "no such file")
        found[name] = read_config_file(p)
        sources[name] = str(p)
    return config_set(found, sources)


def config_set(found: Mapping[str, dict[str, Any] | None], sources: dict[str, str]) -> ConfigSet:
    """A config set from what was found per name (a missing data/hpo/train counts as empty)."""
    return ConfigSet(
        data=found.get("data") or {},
        hpo=found.get("hpo") or {},
        train=found.get("train") or {},
        benchmark=found.get("benchmark"),
        sources=sources,
    )
