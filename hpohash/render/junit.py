"""JUnit XML renderer: a test suite per study, a test case per run checked, a failure per error finding.

Azure DevOps (PublishTestResults), GitLab (``artifacts:reports:junit``) and Jenkins read this shape.
Warnings are failures only with ``--strict`` (as the exit code says); otherwise they are listed in
the test case's ``system-out``. Only verify speaks this format.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

from hpohash.render import CheckedRun, VerifyContext, write_stdout

if TYPE_CHECKING:
    from hpohash.reports import VerifyReport


def _failing(f: dict[str, Any], strict: bool) -> bool:
    return f["severity"] == "error" or strict


def _failure_text(f: dict[str, Any]) -> str:
    lines = [f"{f['code']} ({f['severity']}) on {f['stage']} {f['run_id']}", f["message"]]
    for name in ("expected", "actual", "cause"):
        if f[name]:
            lines.append(f"{name}: {f[name]}")
    lines.append("fixable by hpohash backfill" if f["fixable"] else "not fixable by backfill")
    return "\n".join(lines)


def verify_xml(report: dict[str, Any], ctx: VerifyContext) -> ET.Element:
    """The ``<testsuites>`` element of one verify run."""
    by_run: dict[str, list[dict[str, Any]]] = {}
    for f in report["findings"]:
        by_run.setdefault(f["run_id"], []).append(f)
    runs = list(ctx.runs)
    seen = {r.run_id for r in runs}
    runs += [
        CheckedRun(f["run_id"], f["stage"], f["parent_run_id"]) for f in report["findings"] if f["run_id"] not in seen
    ]
    studies = {s["parent_run_id"]: s for s in report["studies"]}
    suites: dict[str, list[CheckedRun]] = {}
    for run in dict.fromkeys(runs):
        key = run.parent_run_id if run.parent_run_id is not None and run.parent_run_id in studies else ""
        suites.setdefault(key, []).append(run)

    root = ET.Element("testsuites", name="hpohash verify")
    totals = {"tests": 0, "failures": 0}
    for key, members in suites.items():
        st = studies.get(key)
        name = f"study {key} ({st['model'] or 'no model'})" if st else "runs whose parent is not in scope"
        suite = ET.SubElement(root, "testsuite", name=name)
        failed_cases = 0
        for run in members:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"hpohash.{name.split(' (')[0].replace(' ', '-')}",
                name=f"{run.stage} {run.run_id}",
            )
            failing = [f for f in by_run.get(run.run_id, []) if _failing(f, ctx.strict)]
            passing = [f for f in by_run.get(run.run_id, []) if not _failing(f, ctx.strict)]
            for f in failing:
                failure = ET.SubElement(case, "failure", type=f["code"], message=f"{f['code']} {f['message']}")
                failure.text = _failure_text(f)
            if passing:
                ET.SubElement(case, "system-out").text = "\n\n".join(_failure_text(f) for f in passing)
            failed_cases += bool(failing)
        suite.set("tests", str(len(members)))
        suite.set("failures", str(failed_cases))
        suite.set("errors", "0")
        suite.set("skipped", "0")
        totals["tests"] += len(members)
        totals["failures"] += failed_cases
    root.set("tests", str(totals["tests"]))
    root.set("failures", str(totals["failures"]))
    root.set("errors", "0")
    return root


def render_verify(verify: VerifyReport, *, quiet: bool = False, ctx: VerifyContext | None = None) -> None:
    report = verify.as_dict()
    root = verify_xml(report, ctx or VerifyContext())
    ET.indent(root)
    write_stdout('<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n")
