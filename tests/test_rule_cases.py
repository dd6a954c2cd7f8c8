"""The rule catalogue as data: one cases file per finding code (tests/cases/HHxxx.yaml), runs in and
findings and planned changes out, built in memory (no MLflow) and run by this one test."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hpohash.audit import audit
from hpohash.plan import build_plan
from hpohash.rules import RULES
from tests.memory import expand, scope_for

CASES = Path(__file__).parent / "cases"


def _cases() -> list[tuple[str, dict]]:
    out = []
    for path in sorted(CASES.glob("HH*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for case in doc["cases"]:
            out.append((f"{doc['code']}: {case['name']}", {**case, "code": doc["code"]}))
    return out


def test_every_code_has_a_cases_file_and_nothing_else() -> None:
    files = {p.stem for p in CASES.glob("HH*.yaml")}
    assert files == set(RULES)
    for path in CASES.glob("HH*.yaml"):
        assert yaml.safe_load(path.read_text(encoding="utf-8"))["code"] == path.stem


@pytest.mark.parametrize(("name", "case"), _cases(), ids=[n for n, _ in _cases()])
def test_rule_case(name: str, case: dict, tmp_path: Path) -> None:
    scope, values = scope_for(case, tmp_path)
    plan = build_plan(scope)
    findings = audit(scope, plan)
    codes = set(case.get("codes", [case["code"]]))
    got = sorted((f.code, f.run_id, f.cause, f.fixable) for f in findings if f.code in codes)
    want = sorted(tuple(x) for x in expand(case["findings"], values))
    assert got == want, [f.message for f in findings if f.code in codes]
    for f in findings:
        assert f.severity == RULES[f.code].severity
        # what the catalogue says backfill can fix, it can fix (and nothing else)
        assert not f.fixable or RULES[f.code].fixable_by_backfill, f
    if "changes" in case:
        changes = sorted((c.run_id, c.key, c.new) for c in plan.changes)
        assert changes == sorted(tuple(x) for x in expand(case["changes"], values))


def test_each_format_implements_the_renderer_interface() -> None:
    import importlib

    from hpohash.render import RENDER_FUNCTIONS

    for name in ("table", "json_", "markdown"):
        module = importlib.import_module(f"hpohash.render.{name}")
        assert [f for f in RENDER_FUNCTIONS if not callable(getattr(module, f, None))] == [], name
    for name in ("github", "junit"):  # CI formats: verify only
        assert callable(importlib.import_module(f"hpohash.render.{name}").format_verify)


def test_rules_command_lists_the_catalogue(run_cli) -> None:
    import json

    r = run_cli(["rules", "--format", "json"])
    assert r.code == 0
    assert [x["code"] for x in json.loads(r.out)["rules"]] == list(RULES)
    r = run_cli(["rules", "hh120"])
    assert r.code == 0 and r.out.startswith("HH120 (error): refit study_key_hash differs")
    r = run_cli(["rules", "HH999"])
    assert r.code == 2 and r.err.startswith("hpohash: error: rules HH999: no such finding code")


def test_a_rule_owns_its_fix_and_hint() -> None:
    """What backfill fixes is said once, on the rule: a rule that names a fix names the tags whose
    change fixes it, and the planner marks changes from those tags alone."""
    from hpohash.rules import fixed_codes

    for rule in RULES.values():
        assert bool(rule.fixed_by) == rule.fixable_by_backfill, rule.code
        assert rule.short, rule.code
    assert fixed_codes("parent", "study_key_hash") == ("HH100", "HH101")
    assert fixed_codes("refit", "refit_of_trial_run_id") == ("HH121", "HH122")
    assert fixed_codes("refit", "refit_of_trial_run_id", links_here=True) == ("HH121", "HH122", "HH130")
    assert fixed_codes("refit", "data_fingerprint") == ()  # a companion copied from the parent fixes nothing
    assert [c for c, r in RULES.items() if not r.hint] == ["HH125", "HH143"]  # verify says "see the finding"


def test_each_code_is_detected_in_the_one_function_its_rule_names() -> None:
    import ast

    import hpohash.audit

    tree = ast.parse(Path(hpohash.audit.__file__).read_text(encoding="utf-8"))
    found: dict[str, set[str]] = {}
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef):
            for node in ast.walk(fn):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in RULES:
                    found.setdefault(node.value, set()).add(fn.name)
    assert found == {code: {rule.detected_in} for code, rule in RULES.items()}
