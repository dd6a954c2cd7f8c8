"""Rich renderer: panels and tables for people at a terminal."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from hpohash.render import silence_stdout


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """Rich exits 1 here; hpohash drops the rest of the output and keeps its own exit code."""
        self.quiet = True
        silence_stdout()


def console(stderr: bool = False) -> Console:
    """A console that keeps 64-character hashes on one line even when output is piped."""
    c = _Console(highlight=False, stderr=stderr)
    if not c.is_terminal:
        c = _Console(highlight=False, stderr=stderr, width=max(c.width, 160))
    return c


def render_hash(report: dict[str, Any], *, show_key: bool = False) -> None:
    out = console()
    t = Table(title=f"hpohash hash — model {report['model']}", show_header=True, header_style="bold")
    t.add_column("field")
    t.add_column("value", overflow="fold")
    t.add_row("study_key_hash (v2)", f"[bold green]{report['study_key_hash']}[/]")
    t.add_row("data_fingerprint", report["data_fingerprint"])
    t.add_row("eval_fingerprint", report["eval_fingerprint"])
    t.add_row("eval_config", json.dumps(report["eval_config"], sort_keys=True))
    for s, h in report["study_key_hash_v1"].items():
        t.add_row(f"study_key_hash_v1 ({s})", h)
    for s, h in report["study_family_hash"].items():
        t.add_row(f"study_family_hash ({s})", h)
    out.print(t)
    if report["trials"]:
        tt = Table(title="trials", header_style="bold")
        tt.add_column("hyperparameters", overflow="fold")
        tt.add_column(f"trial_key_hash (schema {report['trials'][0]['trial_key_schema']})", overflow="fold")
        for trial in report["trials"]:
            tt.add_row(json.dumps(trial["hyperparameters"], sort_keys=True), trial["trial_key_hash"])
        out.print(tt)
    if show_key:
        out.print("canonical v2 study key:")
        out.print(json.dumps(report["study_key"], sort_keys=True, separators=(",", ":")), markup=False, soft_wrap=True)


def _short(h: str | None) -> str:
    """Hashes shortened to 12 characters; short values (``2.0``, ``true``) shown whole."""
    if not h:
        return "—"
    return h[:12] + "…" if len(h) > 16 else h


def render_verify(report: dict[str, Any], *, quiet: bool = False) -> None:
    out = console()
    s = report["summary"]
    style = "green" if s["ok"] and not s["warnings"] else ("yellow" if s["ok"] else "red")
    headline = "no errors" if s["ok"] else f"{s['errors']} error(s)"
    out.print(
        Panel(
            f"[bold]{headline}[/], {s['warnings']} warning(s)\n"
            f"studies {s['studies']} · trials {s['trials']} · refits {s['refits']}"
            + (f" · skipped {s['studies_skipped']} (no run since --since)" if "studies_skipped" in s else "")
            + "\n"
            f"experiments: {', '.join(report['experiments'])} · store: {report['tracking_uri']}",
            title="hpohash verify",
            border_style=style,
            expand=False,
        )
    )
    if quiet:
        _findings_table(out, report["findings"])
        return
    for st in report["studies"]:
        t = Table(title=f"study {st['parent_run_id']}", title_justify="left", header_style="bold", show_header=True)
        t.add_column("model")
        t.add_column("trials", justify="right")
        t.add_column("refits", justify="right")
        t.add_column("stored study hash")
        t.add_column("recomputed v2")
        t.add_column("errors", justify="right")
        t.add_column("warnings", justify="right")
        same = st["study_key_hash"] and st["study_key_hash"] == st["recomputed_study_key_hash"]
        t.add_row(
            f"{st['model'] or '—'}\n[dim]{st['model_source'] or ''}[/]",
            str(st["trials"]),
            str(st["refits"]),
            _short(st["study_key_hash"]),
            ("[green]" if same else "[yellow]") + _short(st["recomputed_study_key_hash"]) + "[/]",
            f"[red]{st['errors']}[/]" if st["errors"] else "0",
            f"[yellow]{st['warnings']}[/]" if st["warnings"] else "0",
        )
        out.print(t)
    _findings_table(out, report["findings"])


def _findings_table(out: Console, findings: list[dict[str, Any]]) -> None:
    if not findings:
        out.print("[green]No findings.[/]")
        return
    t = Table(title="findings", header_style="bold")
    t.add_column("code")
    t.add_column("severity")
    t.add_column("run")
    t.add_column("stage")
    t.add_column("message", overflow="fold")
    t.add_column("fixable")
    for f in findings:
        sev = "[red]error[/]" if f["severity"] == "error" else "[yellow]warning[/]"
        t.add_row(f["code"], sev, f["run_id"], f["stage"], f["message"], "yes" if f["fixable"] else "no")
    out.print(t)


def render_demo(created: dict[str, Any]) -> None:
    from hpohash.render.markdown import _demo_text

    console().print(_demo_text(created), markup=False)


def render_backfill(
    scope: Any, plan: Any, *, dry_run: bool, journal: str | None, result: Any, preview: bool = False
) -> None:
    """The plan grouped by study (run, stage, key, old → new, reason), conflicts, then the outcome.

    ``preview`` is the plan shown before the confirmation; the final call then shows only the outcome.
    """
    from hpohash.apply import backfill_report

    out = console()
    r = backfill_report(plan, dry_run=dry_run, journal=journal, result=result)
    if preview or result is None:
        _plan_tables(out, scope, r["changes"])
    if preview:
        return
    _rows_table(
        out,
        "conflicts (left alone)",
        "bold yellow",
        ("run", "stage", "key", "current", "message"),
        [(c["run_id"], c["stage"], c["key"] or "—", _short(c["current"]), c["message"]) for c in r["conflicts"]],
    )
    _rows_table(out, "failed writes", "bold red", ("run", "error"), [(f["run_id"], f["error"]) for f in r["failures"]])
    s = r["summary"]
    if dry_run:
        head = (
            f"dry run: {s['tags_planned']} tags on {s['runs_planned']} runs would change"
            if s["tags_planned"]
            else "nothing to backfill"
        )
    else:
        head = f"wrote {s['runs_written']} of {s['runs_planned']} runs ({s['tags_planned']} tags)"
    lines = [f"[bold]{head}[/]", f"conflicts {s['conflicts']} · failed runs {s['runs_failed']}"]
    if journal:
        lines.append(f"journal: {journal}  (undo: hpohash undo {journal})")
    ok = not s["conflicts"] and not s["runs_failed"]
    out.print(Panel("\n".join(lines), title="hpohash backfill", border_style="green" if ok else "yellow", expand=False))


def _plan_tables(out: Console, scope: Any, changes: list[dict[str, Any]]) -> None:
    by_run: dict[str, list[dict[str, Any]]] = {}
    for c in changes:
        by_run.setdefault(c["run_id"], []).append(c)
    for study in scope.studies:
        members = [m.run_id for m in study.members() if m.run_id in by_run]
        if not members:
            continue
        _rows_table(
            out,
            f"study {study.parent.run_id}",
            "bold",
            ("run", "stage", "key", "old → new", "reason"),
            [
                (rid, c["stage"], c["key"], f"{_short(c['old'])} → [green]{_short(c['new'])}[/]", c["reason"])
                for rid in members
                for c in by_run[rid]
            ],
        )


def _rows_table(out: Console, title: str, style: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    t = Table(title=title, title_justify="left", header_style=style)
    for col in columns:
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(*row)
    out.print(t)


def render_undo(plan: Any, *, dry_run: bool, journal: str | None, result: Any, preview: bool = False) -> None:
    from hpohash.apply import undo_report

    out = console()
    r = undo_report(plan, dry_run=dry_run, journal=journal, result=result)
    if preview or result is None:
        _rows_table(
            out,
            "tags to restore",
            "bold",
            ("run", "key", "now", "restored to"),
            [
                (c["run_id"], c["key"], _short(c["old"]), "[dim](deleted)[/]" if c["new"] is None else _short(c["new"]))
                for c in r["changes"]
            ],
        )
    if preview:
        return
    _rows_table(
        out,
        "changed since the journal (left alone)",
        "bold yellow",
        ("run", "key", "journal wrote", "now"),
        [(e["run_id"], e["key"], _short(e["journal_new"]), _short(e["current"])) for e in r["skipped"]],
    )
    _rows_table(out, "failed writes", "bold red", ("run", "error"), [(f["run_id"], f["error"]) for f in r["failures"]])
    s = r["summary"]
    if not s["tags_planned"]:
        head = "nothing to undo: every journaled tag already holds its old value (or changed since)"
    elif dry_run:
        head = f"dry run: {s['tags_planned']} tags on {s['runs_planned']} runs would be restored"
    else:
        head = f"restored {s['runs_written']} of {s['runs_planned']} runs ({s['tags_planned']} tags)"
    lines = [
        f"[bold]{head}[/]",
        f"skipped {s['skipped']} · missing runs {s['missing_runs']} · failed {s['runs_failed']}",
    ]
    if journal:
        lines.append(f"journal: {journal}")
    out.print(Panel("\n".join(lines), title="hpohash undo", expand=False))


def _compact(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= 70 else text[:67] + "…"


def render_diff(report: dict[str, Any]) -> None:
    """Both sides' hashes in a header, then the differing fields side by side."""
    out = console()
    a, b = report["a"], report["b"]
    same_study = report["same_study"]
    verdict = "[green]same study[/]" if same_study else "[red]different studies[/]"
    if report["same_trial"] is not None:
        verdict += ", [green]same trial[/]" if report["same_trial"] else ", [red]different trials[/]"
    head = Table(title=f"hpohash diff — {verdict}", title_justify="left", header_style="bold")
    head.add_column("")
    head.add_column(a["label"], overflow="fold")
    head.add_column(b["label"], overflow="fold")
    head.add_row("model", a["model"] or "—", b["model"] or "—")
    head.add_row("study hash (claimed)", _short(a["study_key_hash"]), _short(b["study_key_hash"]))
    head.add_row("study hash (stored)", _short(a["stored_study_key_hash"]), _short(b["stored_study_key_hash"]))
    head.add_row(
        "study hash (recomputed v2)", _short(a["recomputed_study_key_hash"]), _short(b["recomputed_study_key_hash"])
    )
    head.add_row("trial hash (claimed)", _short(a["trial_key_hash"]), _short(b["trial_key_hash"]))
    head.add_row(
        "trial hash (recomputed)", _short(a["recomputed_trial_key_hash"]), _short(b["recomputed_trial_key_hash"])
    )
    head.add_row("cause", a["cause"] or "—", b["cause"] or "—")
    out.print(head)
    if report["differences"]:
        _rows_table(
            out,
            "differing fields",
            "bold",
            ("field", "a", "b"),
            [(d["path"], _compact(d["a"]), _compact(d["b"])) for d in report["differences"]],
        )
    elif report["a"]["recomputed_study_key_hash"] and report["b"]["recomputed_study_key_hash"]:
        out.print(
            "The configs agree field for field"
            + ("." if same_study else ": the claims differ because of how a stored hash was made (see cause).")
        )
    for note in report["notes"]:
        out.print(f"[yellow]note:[/] {note}")
