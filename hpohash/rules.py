"""The rule catalogue: one entry per finding code, the single place a code's severity, title, fix,
explanation, hints and fixing tags live. Findings are built from it, the planner marks what each
planned change fixes from it, verify's summary hints from it, ``hpohash rules`` prints it, ``--select``
checks codes against it, and the README's code table is generated from it (a test fails when they
differ). Adding a rule: an entry here, its detection in the ``audit.py`` function it names
(``detected_in``) and its cases file (tests/cases/HHxxx.yaml).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from hpohash.classify import PARENT, REFIT, TRIAL

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Rule:
    """One finding code: what it means, how bad it is, and what ``backfill`` changes to fix it."""

    code: str
    severity: str
    title: str
    #: what backfill writes to fix it ("" when backfill cannot: the finding stays until a person acts)
    fix: str
    explanation: str
    example: str
    #: a few words for ``--statistics`` and narrow layouts
    short: str = ""
    #: the function of ``hpohash.audit`` that detects it (the one place: a test holds the code to it)
    detected_in: str = ""
    #: what a person does when backfill does not fix it (verify's summary says it per code)
    hint: str = ""
    #: the finding's message shows a hash: verify suggests ``hpohash diff`` on such a run
    shows_hash: bool = False
    #: the planned tag changes that fix it, as (stage of the run written, tag name): the planner
    #: marks each change with the codes it fixes from here, and verify's ``fixable`` is read from that
    fixed_by: tuple[tuple[str, str], ...] = ()
    #: the fix is a link written on another run to the run the finding is on (HH130: a refit's link
    #: to the champion trial), and only when that link names this run
    fixed_through_link: bool = False

    @property
    def fixable_by_backfill(self) -> bool:
        return bool(self.fix)

    def as_dict(self) -> dict[str, Any]:
        """``hpohash.rules/1``: the catalogue's public fields (hints and fixing tags stay internal)."""
        return {
            "code": self.code,
            "severity": self.severity,
            "title": self.title,
            "fix": self.fix,
            "explanation": self.explanation,
            "example": self.example,
            "short": self.short,
            "fixable_by_backfill": self.fixable_by_backfill,
        }


_RULES = (
    Rule(
        "HH100", ERROR, "parent has no study_key_hash",
        "the v2 hash recomputed from the study's configs, with schema 2.0 and fingerprints",
        "Every trial and refit is anchored on its parent's study hash; a parent without one anchors nothing.",
        "parent 3f2a… has no code.study_key_hash; configs found → backfill writes their v2 hash",
        short="parent has no study_key_hash",
        detected_in="_check_parent",
        hint="no v2 hash to write: give the study's configs (--config-dir)",
        fixed_by=((PARENT, "study_key_hash"),),
    ),
    Rule(
        "HH101", ERROR,
        "parent's schema tag is missing or not `2.0` (cause: what its hash is — `v1`, `seed-eval`, `unknown`, "
        "or `v2` when only the tag is missing)",
        "the recomputed v2 hash, schema 2.0, fingerprint tags and objective direction (old hash kept under "
        "code.legacy.study_key_hash)",
        "A parent not tagged 2.0 is legacy: its hash was made by an older formula, so the study's v2 hash comes "
        "from its configs.",
        "parent tagged 1.0 with its v1 hash 7dab…; configs reproduce it as v1 → upgraded to v2 3cd5…",
        short="parent schema tag missing or not 2.0",
        detected_in="_check_parent",
        hint="no v2 hash to write: give the study's configs (--config-dir)",
        fixed_by=((PARENT, "study_key_hash"), (PARENT, "key_schema_version")),
    ),
    Rule(
        "HH102", WARNING,
        "parent tagged `2.0` but its hash differs from the v2 hash of its logged configs (the tag stays the "
        "source of truth)",
        "",
        "The parent's tag is what trials and refits were anchored on, so it is kept; the finding says its logged "
        "configs are not the ones it was hashed from (cause names the variant when one fits).",
        "parent 2.0-tagged 9eeb…, its config/ artifacts give 13db… (cause seed-eval)",
        short="parent v2 tag differs from its configs' v2 hash",
        detected_in="_check_parent",
        hint="the parent's 2.0 tag stays the source of truth: check its configs",
    ),
    Rule(
        "HH103", WARNING, "parent fingerprint tags missing or differ from recomputation",
        "code.fingerprint.data / code.fingerprint.eval from the configs that reproduce the parent",
        "Fingerprints let later runs find a study by data and evaluation; a 2.0 parent whose configs reproduce "
        "its hash should carry theirs.",
        "parent has no code.fingerprint.eval → backfill writes a2a6…",
        short="parent fingerprint tags missing or differ",
        detected_in="_check_parent",
        hint="no configs to recompute the fingerprints from (--config-dir)",
        fixed_by=((PARENT, "data_fingerprint"), (PARENT, "eval_fingerprint")),
    ),
    Rule(
        "HH110", ERROR, "trial study_key_hash differs from the study's v2 hash",
        "the study's v2 hash (old value kept under code.legacy.study_key_hash)",
        "A trial must carry its study's v2 hash — the parent's tag when the parent is 2.0, else the recomputed "
        "one — or it cannot be grouped with its study (cause names why it differs: v1, seed-eval, unknown).",
        "trial on the v1 hash 7dab… of a study whose parent is tagged 2.0 with 3cd5… (cause v1)",
        short="trial study_key_hash is not the study's v2 hash",
        detected_in="_check_study_hash",
        hint="stored hash of unknown provenance: check it, then backfill --force",
        shows_hash=True,
        fixed_by=((TRIAL, "study_key_hash"),),
    ),
    Rule(
        "HH111", ERROR, "trial has no trial_key_hash",
        "the trial key of (study v2 hash, its hyperparameters)",
        "Refits are linked to trials by trial hash; a trial without one cannot be found.",
        "trial 12 has no code.trial_key_hash → backfill writes H(trial key)",
        short="trial has no trial_key_hash",
        detected_in="_check_trial_hash",
        hint="no v2 hash to anchor it on: give the study's configs (--config-dir)",
        shows_hash=True,
        fixed_by=((TRIAL, "trial_key_hash"),),
    ),
    Rule(
        "HH112", ERROR, "trial trial_key_hash is not the trial key of (study v2 hash, its hyperparameters)",
        "the trial key on the study's v2 hash, in the generation the study's correct trials use",
        "A trial hash in either generation (inner schema 1.0 or 2.0) on the right v2 study hash is correct; "
        "anything else was computed on another anchor (cause v1, folder8, seed-eval) or is unknown.",
        "trial hash computed on the v1 study hash (cause v1)",
        short="trial trial_key_hash is not its v2 trial key",
        detected_in="_check_trial_hash",
        hint="stored hash of unknown provenance: check it, then backfill --force",
        shows_hash=True,
        fixed_by=((TRIAL, "trial_key_hash"),),
    ),
    Rule(
        "HH120", ERROR, "refit study_key_hash differs from the study's v2 hash",
        "the study's v2 hash, with the schema and fingerprint tags the pipeline writes beside it on a refit",
        "A refit's study hash must be its study's v2 hash. Early-v2 pipeline code recomputed it with the v1 "
        "formula; the parent's `study-<8 hex>` folder (the v1 prefix) is the store's own evidence of that.",
        "refit on 6eab… while its parent is tagged 2.0 with 13db… (cause v1, by the study folder study-6eabf219)",
        short="refit study_key_hash is not the study's v2 hash",
        detected_in="_check_study_hash",
        hint="stored hash of unknown provenance: check it, then backfill --force",
        shows_hash=True,
        fixed_by=((REFIT, "study_key_hash"),),
    ),
    Rule(
        "HH121", ERROR, "refit has no `code.refit.of_trial_run_id`",
        "the link to the one trial with the same new trial hash, old trial hash, trial number or hyperparameters",
        "Without the link the refit's checkpoint cannot be traced to the trial it retrained.",
        "refit without a link; exactly one trial has its trial number 1 → linked",
        short="refit has no link to its trial",
        detected_in="_check_refit_link",
        hint="no single trial matches the refit: set code.refit.of_trial_run_id by hand",
        fixed_by=((REFIT, "refit_of_trial_run_id"),),
    ),
    Rule(
        "HH122", ERROR,
        "refit link names a run that does not exist, is deleted, or is not a trial of the same study",
        "a link resolved as for HH121 (the dangling value kept under code.legacy.refit_of_trial_run_id)",
        "A dangling link is as bad as none, and worse for being trusted.",
        "code.refit.of_trial_run_id names a deleted run",
        short="refit link names no trial of the study",
        detected_in="_check_refit_link",
        hint="no single trial matches the refit: set code.refit.of_trial_run_id by hand",
        fixed_by=((REFIT, "refit_of_trial_run_id"),),
    ),
    Rule(
        "HH123", ERROR,
        "refit trial_key_hash differs from its linked trial's (or, unlinked, from its own recomputation)",
        "the linked trial's trial hash (the same generation)",
        "Within one study a refit's trial hash must equal its trial's exactly; legacy refits anchored it on the "
        "8-character study folder (cause folder8).",
        "refit trial hash on the folder study-7dab3623 (cause folder8)",
        short="refit trial_key_hash differs from its trial's",
        detected_in="_check_refit_trial_hash",
        hint="stored hash of unknown provenance: check it, then backfill --force",
        shows_hash=True,
        fixed_by=((REFIT, "trial_key_hash"),),
    ),
    Rule(
        "HH124", ERROR, "refit's `code.artifact.available` is not `true`",
        "",
        "The refit is where the champion checkpoint lives; backfill never invents that it exists.",
        "code.artifact.available = 'false'",
        short="refit artifact not available",
        detected_in="_check_artifact",
        hint="the refit has no checkpoint; backfill never sets code.artifact.available",
    ),
    Rule(
        "HH125", ERROR,
        "the parent's `code.refit_run_id` names a run that does not exist, is deleted, or is not a refit of the "
        "study",
        "",
        "The pipeline records the study's refit on the parent after refitting; a record naming no refit of the "
        "study sends users to a checkpoint that is not there.",
        "parent's code.refit_run_id = ffff…, which does not exist in the scanned experiments",
        short="parent's refit record names no refit of the study",
        detected_in="_check_champion",
    ),
    Rule(
        "HH130", ERROR,
        "the study's champion (best trial by the objective) resolves to no refit run (the parent's "
        "`code.refit_run_id` naming a refit of the study counts: the pipeline's own choice)",
        "a refit link to the champion, when one refit resolves to it (HH121/HH122)",
        "Champion checkpoints are found through the refit that retrained the best trial.",
        "best trial (macro-f1 maximize: 0.85) has no refit linking it or sharing its trial hash",
        short="champion trial resolves to no refit",
        detected_in="_check_champion",
        hint="the champion trial needs a refit run (or a refit linked to it)",
        fixed_by=((REFIT, "refit_of_trial_run_id"),),
        fixed_through_link=True,
    ),
    Rule(
        "HH140", WARNING, "configs for the study cannot be found: hashes could not be recomputed",
        "",
        "Without configs the v2 hash cannot be recomputed: trials and refits are compared with the parent's "
        "stored hash, and only what the store itself proves (the study folder) names causes.",
        "no config artifacts and no --config-dir",
        short="configs not found",
        detected_in="_check_configs",
        hint="give the study's configs (--config-dir) or the model (--model)",
    ),
    Rule(
        "HH141", ERROR, "a config artifact is malformed (names the run, the artifact and the parser's message)",
        "",
        "A config that exists but cannot be read is not silently skipped: someone logged it for a reason.",
        "run 3f2a… artifact config/hpo.yaml: malformed YAML",
        short="config artifact malformed",
        detected_in="_check_configs",
        hint="fix or re-log the config artifact named in the finding",
    ),
    Rule(
        "HH142", WARNING,
        "configs were found (`--config-dir`, its history) but none reproduces the parent's stored study hash "
        "(names the nearest candidate); trials and refits are compared with the parent's tag",
        "",
        "The study was hashed from configs that are in neither the work tree nor the searched history; the "
        "nearest candidate and what the parent's fingerprint tags say narrow down where they differ.",
        "none of 8 candidates reproduces it; nearest: config/data/resume_v1.yaml, … (eval fingerprint differs)",
        short="no config candidate reproduces the parent hash",
        detected_in="_check_configs",
        hint="none of the configs reproduces the parent's hash: see the nearest candidate",
    ),
    Rule(
        "HH143", WARNING,
        "the model comes from the shortened `code.model` tag (no `code.backbone` tag or `backbone` param)",
        "",
        "The pipeline writes a shortened name to code.model; if the study key used the full backbone name, "
        "recomputed hashes will not match until the backbone tag or --model says it.",
        "model 'distilbert' from tag:code.model (parent; shortened name)",
        short="model from the shortened code.model tag",
        detected_in="_check_configs",
    ),
    Rule(
        "HH150", WARNING, "trial or refit whose parent cannot be found in scope",
        "",
        "A run naming a parent outside the scanned experiments (or none) cannot be checked against a study; add "
        "the parent's experiment with another -e.",
        "trial names parent 9b1c…, which is not in the scanned experiments",
        short="parent not in scope",
        detected_in="_check_orphan",
        hint="add the parent's experiment (-e) to the scope",
    ),
    Rule(
        "HH160", WARNING,
        "`code.output_dir` names a `study-<8 hex>` folder that is not the v2 hash's prefix",
        "",
        "Early-v2 studies kept the folder named after their v1 hash; files on disk are where they are, so the "
        "tag is left alone and only reported.",
        "code.output_dir …/study-6eabf219, v2 prefix study-13dbd752",
        short="output_dir folder is not the v2 prefix",
        detected_in="_check_output_dir",
        hint="the folder name is history; nothing to write",
    ),
)  # fmt: skip

#: every finding code, in catalogue order
RULES: Mapping[str, Rule] = MappingProxyType({r.code: r for r in _RULES})


@functools.cache
def fixed_codes(stage: str, name: str, *, links_here: bool = False) -> tuple[str, ...]:
    """The codes a planned change of tag ``name`` on a ``stage`` run fixes, in catalogue order;
    ``links_here``: the change is a link to a run that a ``fixed_through_link`` rule is about."""
    return tuple(
        r.code for r in RULES.values() if (stage, name) in r.fixed_by and (links_here or not r.fixed_through_link)
    )


def markdown_table(rules: Mapping[str, Rule] = RULES) -> str:
    """The README's code table, generated (a test keeps the README equal to it)."""
    lines = ["| code | severity | finding |", "|---|---|---|"]
    lines += [f"| {r.code} | {r.severity} | {r.title} |" for r in rules.values()]
    return "\n".join(lines)
