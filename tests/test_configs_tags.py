"""Config parsing errors and the tag registry / --tags-config loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpohash.configs import ConfigError, parse_config
from hpohash.errors import ArgumentError, UsageError
from hpohash.options import FLAGS
from hpohash.tags import TagRegistry, load_tags_config


def test_yaml_and_json_parse() -> None:
    assert parse_config("config/hpo.yaml", b"lr: 1e-5\nx: 2.0e-5\n") == {"lr": "1e-5", "x": 2e-5}
    assert parse_config("config/hpo.json", b'{"lr": 1e-5}') == {"lr": 1e-5}
    assert parse_config("config/empty.yaml", b"") == {}


@pytest.mark.parametrize(
    ("where", "raw", "reason"),
    [
        ("config/data.yaml", b"a: [1, 2\n", "malformed YAML"),
        ("config/data.yaml", b"- 1\n- 2\n", "not a mapping (top level is a list)"),
        ("config/data.json", b"{nope", "malformed JSON"),
        ("config/data.yaml", b"when: 2024-01-02\n", "holds a value JSON cannot express"),
        ("config/data.yaml", b"\xff\xfe", "not UTF-8 text"),
        ("config/data.yaml", b"a: 1\n" + b"#" * (1024 * 1024), "larger than 1 MiB"),
    ],
)
def test_parse_errors_name_where_and_why(where: str, raw: bytes, reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(where, raw)
    assert err.value.where == where
    assert err.value.reason.startswith(reason)
    assert str(err.value).startswith(f"{where}: {reason}")


def test_flat_config_dir(tmp_path: Path) -> None:
    from hpohash.sources import ConfigSources

    (tmp_path / "data.yml").write_text("name: d\n")
    (tmp_path / "hpo.json").write_text('{"objective": {"metric": "f1"}}')
    (tmp_path / "train.yaml").write_text("num_epochs: 2\n")
    cs = ConfigSources.read([str(tmp_path)], history=False).default_choice()
    assert (cs.data, cs.hpo, cs.train, cs.benchmark) == (
        {"name": "d"},
        {"objective": {"metric": "f1"}},
        {"num_epochs": 2},
        None,
    )
    assert cs.sources["hpo"].endswith("hpo.json")


def test_flat_config_dir_missing(tmp_path: Path) -> None:
    from hpohash.sources import ConfigSources, SourceError

    (tmp_path / "data.yaml").write_text("name: d\n")
    with pytest.raises(SourceError, match=rf"^config_dirs: {tmp_path}: no data, hpo and train configs"):
        ConfigSources.read([str(tmp_path)], history=False)
    with pytest.raises(SourceError, match="no such directory"):
        ConfigSources.read([str(tmp_path / "nope")], history=False)


def test_registry_defaults_and_legacy_reads() -> None:
    reg = TagRegistry()
    assert reg.key("study_key_hash") == "code.study_key_hash"
    assert reg.read({"code.grouping.study_key_hash": "abc"}, "study_key_hash") == "abc"
    assert reg.read({"code.study_key_hash": "new", "code.grouping.study_key_hash": "old"}, "study_key_hash") == "new"
    assert reg.read({"trial_number": "4"}, "trial_number") == "4"
    assert reg.read({}, "trial_number") is None
    assert TagRegistry.legacy_key("study_key_hash") == "code.legacy.study_key_hash"


def test_tags_config_overrides(tmp_path: Path) -> None:
    f = tmp_path / "tags.yaml"
    f.write_text(
        "grouping:\n  study_key_hash: team.study_hash\n  trial_key_hash: team.trial_hash\n"
        "refit:\n  of_trial_run_id: team.refit_of\nprocess:\n  stage: team.stage\n"
        "fingerprint:\n  data: team.fp.data\n  eval: team.fp.eval\nsomething_else:\n  x: y\n"
    )
    reg = load_tags_config(f)
    assert reg.key("study_key_hash") == "team.study_hash"
    assert reg.key("trial_key_hash") == "team.trial_hash"
    assert reg.key("refit_of_trial_run_id") == "team.refit_of"
    assert reg.key("stage") == "team.stage"
    assert reg.key("data_fingerprint") == "team.fp.data"
    assert reg.key("eval_fingerprint") == "team.fp.eval"
    assert reg.key("artifact_available") == "code.artifact.available"  # default kept


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("grouping: [1, 2]\n", "section 'grouping' must map names to tag keys"),
        ("- a\n", "expected a mapping of sections, got list"),
        ("grouping: {study_key_hash: 3}\n", "'grouping.study_key_hash' must be a non-empty string tag key"),
        ("grouping: {a: [\n", "not valid YAML"),
    ],
)
def test_tags_config_malformed(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "tags.yaml"
    f.write_text(text)
    with pytest.raises(ArgumentError) as err:
        load_tags_config(f)
    assert str(err.value).startswith(f"tags_config {f}: ")
    assert err.value.naming(FLAGS).startswith(f"--tags-config {f}: ")
    assert message in str(err.value)


def test_tags_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        load_tags_config(tmp_path / "none.yaml")


def test_example_tags_file_is_the_defaults() -> None:
    """examples/tags.yaml (shown in the README) spells out the defaults in the pipeline's format."""
    import yaml

    from hpohash.tags import DEFAULT_KEYS, TAGS_CONFIG_NAMES

    example = Path(__file__).resolve().parents[1] / "examples" / "tags.yaml"
    doc = yaml.safe_load(example.read_text())
    named = {
        TAGS_CONFIG_NAMES[f"{sec}.{n}"]: key
        for sec, body in doc.items()
        for n, key in body.items()
        if f"{sec}.{n}" in TAGS_CONFIG_NAMES
    }
    assert len(named) == 16 and all(DEFAULT_KEYS[logical] == key for logical, key in named.items())
    assert dict(load_tags_config(example).keys) == dict(TagRegistry().keys)


def test_readme_code_table_is_the_rule_catalogue() -> None:
    from hpohash.audit import SEVERITY
    from hpohash.rules import RULES, markdown_table

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme, "README's code table differs from hpohash.rules: regenerate it"
    assert set(SEVERITY) == set(RULES)
