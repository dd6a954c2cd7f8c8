"""Rich renderer: panels and tables for people at a terminal."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table


def console(stderr: bool = False) -> Console:
    """A console that keeps 64-character hashes on one line even when output is piped."""
    c = Console(highlight=False, stderr=stderr)
    if not c.is_terminal:
        c = Console(highlight=False, stderr=stderr, width=max(c.width, 160))
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
