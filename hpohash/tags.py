"""The tag registry: which MLflow tag key holds each logical value (SPEC §2).

Teams that renamed their tags load their pipeline's own tags YAML with ``--tags-config``; every other
module asks the registry for keys instead of spelling them, so a rename reaches every command.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from hpohash.errors import ArgumentError
from hpohash.text import one_line

DEFAULT_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "stage": "code.stage",
        "run_type": "code.run_type",
        "study_key_hash": "code.study_key_hash",
        "trial_key_hash": "code.trial_key_hash",
        "study_family_hash": "code.study_family_hash",
        "key_schema_version": "code.study.key_schema_version",
        "data_fingerprint": "code.fingerprint.data",
        "eval_fingerprint": "code.fingerprint.eval",
        "objective_direction": "code.objective.direction",
        "refit_of_trial_run_id": "code.refit.of_trial_run_id",
        "refit_run_id": "code.refit_run_id",
        "artifact_available": "code.artifact.available",
        "trial_number": "code.hpo.trial_number",
        "backbone": "code.backbone",
        "model": "code.model",
        "hpo_sweep_run_id": "code.lineage.hpo_sweep_run_id",
        "output_dir": "code.output_dir",
        "parent": "mlflow.parentRunId",
    }
)

DEFAULT_LEGACY: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "study_key_hash": ("code.grouping.study_key_hash",),
        "trial_key_hash": ("code.grouping.trial_key_hash",),
        "trial_number": ("trial_number",),
    }
)

#: ``section.name`` in the pipeline's tags YAML → logical name here.
TAGS_CONFIG_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "process.stage": "stage",
        "process.run_type": "run_type",
        "process.backbone": "backbone",
        "process.model": "model",
        "grouping.study_key_hash": "study_key_hash",
        "grouping.trial_key_hash": "trial_key_hash",
        "grouping.study_family_hash": "study_family_hash",
        "study.key_schema_version": "key_schema_version",
        "fingerprint.data": "data_fingerprint",
        "fingerprint.eval": "eval_fingerprint",
        "objective.direction": "objective_direction",
        "refit.of_trial_run_id": "refit_of_trial_run_id",
        "artifact.available": "artifact_available",
        "hpo.trial_number": "trial_number",
        "training.trial_number": "trial_number",
        "lineage.hpo_sweep_run_id": "hpo_sweep_run_id",
        "paths.output_dir": "output_dir",
        "output.dir": "output_dir",
    }
)

LEGACY_PREFIX = "code.legacy."


@dataclass(frozen=True)
class TagRegistry:
    """Logical name → tag key, plus legacy keys read (never written) when the main key is absent."""

    keys: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_KEYS))
    legacy: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_LEGACY))

    def key(self, name: str) -> str:
        return self.keys[name]

    @functools.cached_property
    def _lookups(self) -> dict[str, tuple[str, ...]]:
        """Per logical name, its key then its legacy keys: ``read`` runs ~20 times a run."""
        return {name: (key, *self.legacy.get(name, ())) for name, key in self.keys.items()}

    def read(self, tags: Mapping[str, str], name: str) -> str | None:
        """The value of a logical tag: its key, else the first legacy key that is set."""
        for key in self._lookups[name]:
            value = tags.get(key)
            if value is not None and value != "":
                return value
        return None

    @staticmethod
    def legacy_key(name: str) -> str:
        """Where backfill keeps a value it replaced (``code.legacy.<logical name>``)."""
        return LEGACY_PREFIX + name

    def with_overrides(self, overrides: Mapping[str, str]) -> TagRegistry:
        return replace(self, keys={**self.keys, **overrides})


#: what MLflow accepts in a tag key (letters, digits, ``_ - . / : `` and space), up to 250 characters
TAG_KEY_RE = re.compile(r"^[\w\-./: ]{1,250}$")
#: a tags file is a few KiB; anything past this is not one
MAX_TAGS_CONFIG_BYTES = 1024 * 1024


def registry_for(tags_config: str | Path | None) -> TagRegistry:
    """The registry of ``--tags-config`` (the defaults without one)."""
    return load_tags_config(tags_config) if tags_config else TagRegistry()


def load_tags_config(path: str | Path) -> TagRegistry:
    """Load a pipeline tags YAML (``section: {name: key}``) over the defaults; malformed → UsageError.

    A file that would make backfill write an MLflow system tag (``mlflow.runName``…) or the
    ``code.legacy.*`` backups, or that gives two logical names one key (two values planned for one
    tag), is refused: those are the ways a tags file could point hpohash at the wrong tags.
    """
    import yaml

    from hpohash.limits import LimitError, check_value, load_yaml, read_bounded

    p = Path(path)

    def bad(detail: str) -> ArgumentError:
        return ArgumentError.on("tags_config", f"{p}: {detail}")

    try:
        if p.is_dir():
            raise bad("is a directory, not a file")
        raw = read_bounded(p, MAX_TAGS_CONFIG_BYTES)
    except OSError as exc:
        raise bad(f"cannot read: {exc.strerror or exc}") from exc
    if len(raw) > MAX_TAGS_CONFIG_BYTES:
        raise bad("larger than 1 MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    try:
        doc = load_yaml(text)
        check_value(doc)
    except yaml.YAMLError as exc:
        raise bad(f"not valid YAML: {one_line(exc)}") from exc
    except LimitError as exc:
        raise bad(str(exc)) from exc
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise bad(f"expected a mapping of sections, got {type(doc).__name__}")
    overrides: dict[str, str] = {}
    named: dict[str, str] = {}
    for section, entries in doc.items():
        known = [k for k in TAGS_CONFIG_NAMES if k.split(".", 1)[0] == str(section)]
        if not known:
            continue  # unknown sections are ignored (the pipeline's file has many)
        if not isinstance(entries, dict):
            raise bad(f"section '{section}' must map names to tag keys")
        for name, key in entries.items():
            logical = TAGS_CONFIG_NAMES.get(f"{section}.{name}")
            if logical is None:
                continue
            if not isinstance(key, str) or not key.strip():
                raise bad(f"'{section}.{name}' must be a non-empty string tag key")
            key = key.strip()
            if not TAG_KEY_RE.match(key):
                raise bad(
                    f"'{section}.{name}' = {key[:60]!r} is not an MLflow tag key "
                    "(letters, digits, _ - . / : and spaces, at most 250 characters)"
                )
            if key.lower().startswith("mlflow."):
                raise bad(f"'{section}.{name}' = '{key}' is an MLflow system tag; hpohash would overwrite it")
            if key.startswith(LEGACY_PREFIX):
                raise bad(
                    f"'{section}.{name}' = '{key}' is under {LEGACY_PREFIX}, where backfill keeps "
                    "the values it replaces"
                )
            overrides[logical] = key
            named[logical] = f"{section}.{name}"
    registry = TagRegistry().with_overrides(overrides)
    owners: dict[str, str] = {}
    for logical, key in registry.keys.items():
        label = f"'{named[logical]}'" if logical in named else f"the default of {logical}"
        if key in owners:
            raise bad(f"{owners[key]} and {label} both map to '{key}': one tag cannot hold both")
        owners[key] = label
    return registry
