"""JUnit XML renderer: a test suite per study, a test case per run checked, a failure per error finding.

Azure DevOps (PublishTestResults), GitLab (``artifacts:reports:junit``) and Jenkins read this shape.
Warnings are failures only with ``--strict`` (as the exit code says); otherwise they are listed in
the test case's ``system-out``. Only verify speaks this format.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from hpohash.render import VerifyContext, by_run
from hpohash.reports import CheckedRun

if TYPE_CHECKING:
    from hpohash.audit import Finding
    from hpohash.reports import VerifyReport


def _failing(f: Finding, strict: bool) -> bool:
    return f.severity == "error" or strict


def _failure_text(f: Finding) -> str:
    lines = [f"{f.code} ({f.severity}) on {f.stage} {f.run_id}", f.message]
    for name, value in (("expected", f.expected), ("actual", f.actual), ("cause", f.cause)):
        if value:
            lines.append(f"{name}: {value}")
    lines.append("fixable by hpohash backfill" if f.fixable else "not fixable by backfill")
    return "\n".join(lines)


def verify_xml(report: VerifyReport, ctx: VerifyContext) -> ET.Element:
    """The ``<testsuites>`` element of one verify run."""
    findings = by_run(report.findings)
    runs = list(report.checked)
    seen = {r.run_id for r in runs}
    runs += [CheckedRun(f.run_id, f.stage, f.parent_run_id) for f in report.findings if f.run_id not in seen]
    studies = {s.parent_run_id: s for s in report.studies}
    suites = by_run(
        dict.fromkeys(runs),
        lambda run: run.parent_run_id if run.parent_run_id is not None and run.parent_run_id in studies else "",
    )

    root = ET.Element("testsuites", name="hpohash verify")
    totals = {"tests": 0, "failures": 0}
    for key, members in suites.items():
        st = studies.get(key)
        name = f"study {key} ({st.model or 'no model'})" if st else "runs whose parent is not in scope"
        suite = ET.SubElement(root, "testsuite", name=name)
        failed_cases = 0
        for run in members:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"hpohash.{name.split(' (')[0].replace(' ', '-')}",
                name=f"{run.stage} {run.run_id}",
            )
            failing = [f for f in findings.get(run.run_id, []) if _failing(f, ctx.strict)]
            passing = [f for f in findings.get(run.run_id, []) if not _failing(f, ctx.strict)]
            for f in failing:
                failure = ET.SubElement(case, "failure", type=f.code, message=f"{f.code} {f.message}")
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


def format_verify(report: VerifyReport, ctx: VerifyContext, *, quiet: bool = False) -> str:
    root = verify_xml(report, ctx)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
