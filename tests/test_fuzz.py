"""Fuzzing as a habit (issue 10 item 8): random bytes and random nested structures as config files,
config artifacts, ``--tags-config``, journals and ``--hyperparameters``, through the real CLI.

Whatever comes in: an exit code in {0, 1, 2}, no traceback, exactly one error line on exit 2,
strict JSON on stdout with ``--format json``, and nothing written to the store. Example counts are
bounded so the whole file runs in well under a minute on a 2-core machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.builders import Builder, load_case
from tests.test_hostile import BOMB, snapshot

FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,  # no .hypothesis/ directory left behind
)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
YAML_BITS = [
    "a:", "b: ", " - ", "&x ", "*x", "<<: *x", "[", "]", "{", "}", ", ", "\n", "  ", "!!binary ", "!!set ", ".nan",
    ".inf", "1e-5", "2.0e-5", "'", '"', "9" * 12, "2020-01-01", "? ", "---\n", "%YAML 1.1\n", "[/x]", "[bold]",
]  # fmt: skip


def _yaml(v: object) -> bytes:
    return yaml.safe_dump(v, allow_unicode=True).encode()


documents = st.one_of(
    st.binary(max_size=120),
    st.text(max_size=120).map(str.encode),
    values.map(_yaml),
    values.map(lambda v: json.dumps(v).encode()),  # NaN/Infinity tokens included
    st.lists(st.sampled_from(YAML_BITS), max_size=25).map(lambda bits: "".join(bits).encode()),
    st.just(BOMB.encode()),
)


def _strict(text: str) -> object:
    def refuse(token: str) -> object:
        raise AssertionError(f"non-strict JSON token on stdout: {token}")

    return json.loads(text, parse_constant=refuse)


def check(r, allowed: set[int], *, json_out: bool = True) -> None:
    assert r.code in allowed, (r.code, r.err)
    assert "Traceback" not in r.err and "internal error" not in r.err, r.err
    if r.code == 2:
        lines = r.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("hpohash: error: "), r.err
        assert r.out == ""
    elif json_out:
        _strict(r.out)


def test_fuzz_config_files(run_cli, tmp_path: Path) -> None:
    case = load_case("c01_realistic.yaml")

    @FUZZ
    @given(doc=documents, which=st.sampled_from(["data", "hpo", "train"]), suffix=st.sampled_from([".yaml", ".json"]))
    def run(doc: bytes, which: str, suffix: str) -> None:
        d = tmp_path / "cfg"
        d.mkdir(exist_ok=True)
        for f in d.iterdir():
            f.unlink()
        for n in ("data", "hpo", "train"):
            (d / f"{n}.yaml").write_text(yaml.safe_dump(case[n]))
        (d / f"{which}.yaml").unlink()
        (d / f"{which}{suffix}").write_bytes(doc)
        check(run_cli(["hash", "--config-dir", str(d), "--model", "m", "--format", "json"]), {0, 2})

    run()


def test_fuzz_config_artifacts(run_cli, builder: Builder) -> None:
    """Random bytes as a logged config artifact: a finding (HH141) or a verdict, never an abort."""
    exp, name = builder.experiment()
    s = builder.study(exp)
    art = Path(builder.client.get_run(s.parent).info.artifact_uri.removeprefix("file://")) / "config"
    before = snapshot(builder, exp)

    @FUZZ
    @given(
        doc=documents,
        which=st.sampled_from(["data", "hpo", "train"]),
        suffix=st.sampled_from([".yaml", ".json"]),
        fmt=st.sampled_from(["json", "table", "markdown"]),
    )
    def run(doc: bytes, which: str, suffix: str, fmt: str) -> None:
        original = (art / f"{which}.yaml").read_bytes()
        (art / f"{which}.yaml").unlink()
        (art / f"{which}{suffix}").write_bytes(doc)
        try:
            r = run_cli(["verify", "--tracking-uri", builder.uri, "-e", name, "--format", fmt])
        finally:
            (art / f"{which}{suffix}").unlink()
            (art / f"{which}.yaml").write_bytes(original)
        check(r, {0, 1}, json_out=fmt == "json")
        if fmt == "json":
            codes = {f["code"] for f in _strict(r.out)["findings"]}  # type: ignore[index]
            assert codes <= {"HH141", "HH102", "HH103", "HH110", "HH112", "HH120", "HH123", "HH130"}, codes

    run()
    assert snapshot(builder, exp) == before


def test_fuzz_tags_config(run_cli, builder: Builder, tmp_path: Path) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp)
    builder.make_legacy(s)
    before = snapshot(builder, exp)
    sections = st.sampled_from(["grouping", "process", "hpo", "refit", "study", "fingerprint", "lineage", "paths"])
    names = st.sampled_from(
        ["study_key_hash", "trial_key_hash", "stage", "run_type", "model", "backbone", "trial_number",
         "of_trial_run_id", "key_schema_version", "data", "hpo_sweep_run_id"]
    )  # fmt: skip
    keys = st.sampled_from(["mlflow.runName", "code.stage", "code.x", "code.legacy.y", "", "a`b", "code.model"])
    structured = st.dictionaries(sections, st.dictionaries(names, keys | scalars, max_size=3), max_size=3).map(_yaml)
    f = tmp_path / "tags.yaml"

    @FUZZ
    @given(doc=documents | structured)
    def run(doc: bytes) -> None:
        f.write_bytes(doc)
        r = run_cli(["verify", "--tracking-uri", builder.uri, "-e", name, "--format", "json", "--tags-config", str(f)])
        check(r, {0, 1, 2})

    run()
    assert snapshot(builder, exp) == before


def test_fuzz_journals(run_cli, builder: Builder, tmp_path: Path) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp)
    before = snapshot(builder, exp)
    header = json.dumps({"hpohash_journal": 1, "command": "backfill", "tracking_uri": builder.uri, "experiments": []})
    entry = st.fixed_dictionaries(
        {
            "run_id": st.sampled_from([s.parent, s.trials[0], "0" * 32, "x"]) | st.text(max_size=6),
            "key": st.sampled_from(["code.study_key_hash", "code.stage", "mlflow.runName"]) | st.text(max_size=6),
            "old": st.none() | st.text(max_size=6) | values,
            "new": st.none() | st.text(max_size=6),
        }
    ).map(json.dumps)
    structured = st.tuples(st.lists(entry, max_size=4), st.integers(0, 40)).map(
        lambda t: ("\n".join([header, *t[0]])[: -t[1] or None] + "\n").encode()
    )
    f = tmp_path / "j.jsonl"

    @FUZZ
    @given(doc=documents | structured)
    def run(doc: bytes) -> None:
        f.write_bytes(doc)
        r = run_cli(["undo", str(f), "--tracking-uri", builder.uri, "--dry-run", "--format", "json"])
        check(r, {0, 1, 2})

    run()
    assert snapshot(builder, exp) == before
    assert not (Path.cwd() / ".hpohash").exists()  # a dry run journals nothing


def test_fuzz_hyperparameters(run_cli, c01_dir: Path) -> None:
    objects = st.dictionaries(st.text(max_size=5), values).map(json.dumps)

    @FUZZ
    @given(text=st.text(max_size=80) | values.map(json.dumps) | objects)
    def run(text: str) -> None:
        r = run_cli(["hash", "--config-dir", str(c01_dir), "--model", "m", "--format", "json",
                     "--hyperparameters", text])  # fmt: skip
        check(r, {0, 2})

    run()
