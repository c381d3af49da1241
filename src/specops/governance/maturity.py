"""Score a repository against the blueprint's six-level MLOps maturity model.

Each level is a list of practices, each a check on the specs and the
repository. A level counts only when it and every level below it are complete,
so the report always names the next practices to adopt.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from specops.spec import SpecSet

Check = Callable[[SpecSet], bool]
LEVELS = ("ad-hoc", "repeatable", "defined", "managed", "optimizing", "autonomous")


def _docs(specs: SpecSet, kind: str) -> list:
    return [d for d in specs.documents if d.kind == kind]


def _any_file(*paths: str) -> Check:
    return lambda specs: any((specs.root / p).exists() and (not (specs.root / p).is_dir() or any((specs.root / p).iterdir()))
                             for p in paths)


def _has(kind: str) -> Check:
    return lambda specs: bool(_docs(specs, kind))


def _strategy(*names: str) -> Check:
    return lambda specs: any(e.spec.rollout is not None and e.spec.rollout.strategy in names for e in _docs(specs, "Endpoint"))


def _monitor_action(action: str) -> Check:
    return lambda specs: any(getattr(m.spec.actions, action) for m in _docs(specs, "Monitor"))


def _retrain_trigger(specs: SpecSet) -> bool:
    triggers = [p.spec.triggers for p in _docs(specs, "Pipeline")]
    return any(t.schedule or t.data_change for t in triggers) or _monitor_action("retrain")(specs)


PRACTICES: dict[str, list[tuple[str, Check]]] = {
    "repeatable": [
        ("versioned pipeline (Pipeline spec, DVC stages)", lambda s: _has("Pipeline")(s) and _any_file("dvc.yaml")(s)),
        ("experiment tracking (MLflow)", lambda s: bool(s.project.spec.tracking_uri)),
        ("data contract (Dataset spec)", _has("Dataset")),
    ],
    "defined": [
        ("CI/CD (GitHub Actions or Azure DevOps)", _any_file(".github/workflows", "azure-pipelines.yml")),
        ("quality gate (Gate spec)", _has("Gate")),
        ("model registry (Pipeline registers a model)", lambda s: any(p.spec.model_name for p in _docs(s, "Pipeline"))),
        ("serving endpoint (Endpoint spec)", _has("Endpoint")),
        ("monitoring baseline (Monitor spec)", _has("Monitor")),
    ],
    "managed": [
        ("drift detection (Monitor with data drift)", lambda s: any(m.spec.data_drift is not None for m in _docs(s, "Monitor"))),
        ("retraining triggers (schedule, data change or monitor action)", _retrain_trigger),
        ("SLA enforcement (SLO spec)", _has("SLO")),
        ("safe rollout (canary or blue-green)", _strategy("canary", "blue-green")),
    ],
    "optimizing": [
        ("A/B experimentation (ab or bandit rollout)", _strategy("ab", "bandit")),
        ("cost governance (infrastructure as code)", _any_file("infra/bicep", "infra/terraform")),
    ],
    "autonomous": [
        ("self-healing (monitor rolls back an endpoint)", _monitor_action("rollback")),
        ("adaptive retraining (monitor retrains a pipeline)", _monitor_action("retrain")),
        ("adaptive traffic (bandit rollout)", _strategy("bandit")),
    ],
}


@dataclass(frozen=True)
class Assessment:
    level: int  # 1..6
    results: dict[str, list[tuple[str, bool]]]

    @property
    def name(self) -> str:
        return LEVELS[self.level - 1]

    def missing_for_next(self) -> list[str]:
        if self.level == len(LEVELS):
            return []
        return [practice for practice, ok in self.results[LEVELS[self.level]] if not ok]


def assess(specs: SpecSet) -> Assessment:
    results = {level: [(name, bool(check(specs))) for name, check in checks] for level, checks in PRACTICES.items()}
    level = 1
    for name in LEVELS[1:]:
        if not all(ok for _, ok in results[name]):
            break
        level += 1
    return Assessment(level, results)


def report(assessment: Assessment) -> str:
    lines = [f"maturity level {assessment.level} of {len(LEVELS)}: {assessment.name}"]
    for level, practices in assessment.results.items():
        lines.append(f"  {LEVELS.index(level) + 1} {level}")
        lines += [f"    [{'x' if ok else ' '}] {practice}" for practice, ok in practices]
    missing = assessment.missing_for_next()
    if missing:
        lines.append(f"next level ({LEVELS[assessment.level]}) needs: " + "; ".join(missing))
    return "\n".join(lines)

