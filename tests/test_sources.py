"""Config sources on disk, without a store: the tree layout, experiment files, hostile content (hypothesis)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hpohash.sources import ConfigSources, SourceError, _named_path, git_blob_id, role_of
from tests.pipeline import TREE


def test_roles_of_paths() -> None:
    assert [role_of(p) for p in ("data.yaml", "hpo.json", "train.yml", "benchmark.yaml", "tags.yaml")] == [
        "data", "hpo", "train", "benchmark", None,
    ]  # fmt: skip
    assert [role_of(p) for p in ("data/a.yaml", "hpo/b.yml", "experiment/x.yaml", "model/m.yaml", "a/b/c.yaml")] == [
        "data", "hpo", "experiment", None, None,
    ]  # fmt: skip
    assert _named_path("./data//x.yaml") == "data/x.yaml"
    assert _named_path("../../etc/passwd") is None and _named_path(["x"]) is None


def test_git_blob_id_is_gits() -> None:
    assert git_blob_id(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's empty blob
    if shutil.which("git"):
        raw = b"name: x\nversion: '2'\n"
        out = subprocess.run(["git", "hash-object", "--stdin"], input=raw, capture_output=True, check=True)
        assert git_blob_id(raw) == out.stdout.decode().strip()


def test_example_tree_candidates(tmp_path: Path) -> None:
    s = ConfigSources.read([str(TREE)], history=False)
    # 2 data × 2 hpo × 1 train × 1 benchmark
    assert len(s.candidates) == 4
    assert {(Path(c.data.path).name, Path(c.hpo.path).name) for c in s.candidates} == {
        ("resume_tiny.yaml", "prod.yaml"), ("resume_tiny.yaml", "smoke.yaml"),
        ("resume_v1.yaml", "prod.yaml"), ("resume_v1.yaml", "smoke.yaml"),
    }  # fmt: skip
    assert s.default_choice().sources["hpo"].endswith("hpo/prod.yaml")
    assert s.default_choice("smoke").sources["hpo"].endswith("hpo/smoke.yaml")


def test_malformed_work_tree_file_is_a_usage_error(tmp_path: Path) -> None:
    tree = tmp_path / "config"
    shutil.copytree(TREE, tree)
    (tree / "hpo" / "smoke.yaml").write_text("search_space: {a: [1,\n")
    with pytest.raises(SourceError, match=r"hpo/smoke.yaml: malformed YAML"):
        ConfigSources.read([str(tree)], history=False)
    with pytest.raises(SourceError, match="no such directory"):
        ConfigSources.read([str(tmp_path / "nope")], history=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="no data, hpo and train configs"):
        ConfigSources.read([str(empty)], history=False)


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=60)
@given(exp=st.dictionaries(st.sampled_from(
    ["data_config", "hpo_config", "train_config", "benchmark_config", "stages", "x"]), values | st.text(max_size=40)),
    stage=st.text(max_size=8))  # fmt: skip
def test_hostile_experiment_files_never_crash(tmp_path_factory: pytest.TempPathFactory, exp: dict, stage: str) -> None:
    tree = tmp_path_factory.mktemp("tree")
    for rel in ("data/d.yaml", "hpo/h.yaml", "train.yaml"):
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text("name: x\n")
    (tree / "experiment").mkdir()
    (tree / "experiment" / "e.yaml").write_text(yaml.safe_dump(exp))
    s = ConfigSources.read([str(tree)], history=False)
    assert len(s.candidates) >= 1
    with contextlib.suppress(SourceError):
        s.default_choice(stage or None)


def test_errors_are_usage_errors() -> None:
    """Bad input from a config source or a bounded parse is exit 2 wherever it surfaces, untranslated."""
    from hpohash.errors import EXIT_USAGE, UsageError
    from hpohash.limits import LimitError, load_json

    with pytest.raises(UsageError) as caught:
        ConfigSources.read(["no-such-dir"], history=False)
    assert isinstance(caught.value, SourceError) and caught.value.exit_code == EXIT_USAGE
    with pytest.raises(UsageError) as limit:
        load_json("[NaN]")
    assert isinstance(limit.value, LimitError) and isinstance(limit.value, ValueError)
    assert limit.value.exit_code == EXIT_USAGE


def test_discovery_over_a_candidate_set_built_by_hand(tmp_path: Path) -> None:
    """The constructor reads nothing: discovery works on candidates a caller already has."""
    from hpohash.candidates import Candidate, CandidateSet, ConfigFile
    from hpohash.hashing import compute_study_hashes
    from hpohash.sources import Evidence, Origin, Revision

    def f(role: str, value: dict) -> ConfigFile:
        return ConfigFile(role, f"cfg/{role}.yaml", f"{role}.yaml", git_blob_id(repr(value).encode()), value)

    old, new = Revision("a" * 40, "2024-01-01T00:00:00+00:00"), Revision(None, None)
    c_new = Candidate(f("data", {"version": "2"}), f("hpo", {"h": 1}), f("train", {"t": 1}), None, "cfg", [new])
    c_old = Candidate(f("data", {"version": "1"}), f("hpo", {"h": 1}), f("train", {"t": 1}), None, "cfg", [old])
    s = ConfigSources(CandidateSet([c_new, c_old]))
    stored = compute_study_hashes({"version": "1"}, {"h": 1}, {"t": 1}, "m").study_key_hash
    found = s.discover(Evidence(stored=stored, schema_tag="2.0", model="m"))
    assert found.candidate is c_old and found.examined == 2
    assert Origin.of(c_old, None).as_dict() == {
        "revision": "a" * 40, "commit": "a" * 40, "date": "2024-01-01T00:00:00+00:00",
        "files": {"data": "cfg/data.yaml", "hpo": "cfg/hpo.yaml", "train": "cfg/train.yaml"},
    }  # fmt: skip
