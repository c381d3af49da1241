"""Delivery and governance KPIs (the blueprint's catalog), computed from the audit log and the registry.

The audit log is the source of truth for what happened when. Events that
later parts of specops write (rollbacks, incidents, drift alerts) are read
by action name; until they occur the KPI says so instead of inventing a value.
"""
from __future__ import annotations

import statistics
import subprocess
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from specops.registry import CHAMPION
from specops.state.audit import AuditAction, AuditLog
from specops.state.storage import open_storage
from specops.spec import Pipeline, SpecSet

# Lineage tags that, with the run's parameters, say what a version was built from.
INPUT_TAGS = ("lineage.data_md5", "lineage.code_sha256", "lineage.requirements_sha256", "lineage.feature_set")
# Set only where a retraining joined labelled production rows (spec.feedback): rows the data file's hash misses.
PRODUCTION_ROWS_TAG = "lineage.production_rows_md5"


@dataclass(frozen=True)
class Kpi:
    name: str
    value: float | None
    unit: str
    target: str
    detail: str

    def show(self) -> str:
        if self.value is None:
            return "—"
        if self.unit == "h" and self.value < 1:  # a loop that closed within minutes reads "0.00 h" otherwise
            return f"{self.value * 60:.1f} min"
        return f"{self.value:.4g} {self.unit}".rstrip() if abs(self.value) < 0.01 else f"{self.value:.2f} {self.unit}".rstrip()


def when(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["time"])


def releases(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Audit entries that put a new model version in production (the champion alias)."""
    return [e for e in entries if CHAMPION in (e.get("outputs") or {}).get("aliases", [])]


@lru_cache(maxsize=256)
def commit_time(root: Path, commit: str) -> datetime | None:
    out = subprocess.run(["git", "show", "-s", "--format=%cI", commit], cwd=root, capture_output=True, text=True)
    return datetime.fromisoformat(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None


def lead_time(root: Path, released: list[dict[str, Any]]) -> Kpi:
    hours = [(when(e) - t).total_seconds() / 3600 for e in released if e.get("commit") and (t := commit_time(root, e["commit"]))]
    value = statistics.median(hours) if hours else None
    return Kpi("lead time", value, "h", "< 2 h", f"median over {len(hours)} release(s), commit to champion")


def deployment_frequency(entries: list[dict[str, Any]], released: list[dict[str, Any]], now: datetime) -> Kpi:
    if not entries:
        return Kpi("deployment frequency", None, "/week", ">= 5/week", "nothing applied yet")
    # At least a week, so that a young project's first release does not read as a weekly rate of seven.
    days = max((now - when(entries[0])).total_seconds() / 86400, 7.0)
    return Kpi("deployment frequency", len(released) / days * 7, "/week", ">= 5/week",
               f"{len(released)} release(s) in {days:.1f} day(s)")


def change_failure_rate(entries: list[dict[str, Any]], released: list[dict[str, Any]]) -> Kpi:
    rollbacks = sum(1 for e in entries if e.get("action") == AuditAction.ROLLBACK)
    if not released:
        return Kpi("change failure rate", None, "%", "< 5%", "no releases yet")
    return Kpi("change failure rate", 100 * rollbacks / len(released), "%", "< 5%",
               f"{rollbacks} rollback(s) for {len(released)} release(s)")


def paired_minutes(entries: list[dict[str, Any]], start: AuditAction, end: AuditAction, key: str) -> list[float]:
    """Minutes from each `start` event to the first later `end` event with the same key."""
    opened: dict[Any, datetime] = {}
    minutes = []
    for entry in entries:
        ident = entry.get(key)
        if entry.get("action") == start:
            opened.setdefault(ident, when(entry))
        elif entry.get("action") == end and ident in opened:
            minutes.append((when(entry) - opened.pop(ident)).total_seconds() / 60)
    return minutes


def mttr(entries: list[dict[str, Any]]) -> Kpi:
    minutes = paired_minutes(entries, AuditAction.INCIDENT, AuditAction.RECOVERED, "incident")
    if not minutes:
        return Kpi("MTTR", None, "min", "< 30 min", "no incidents recorded")
    return Kpi("MTTR", statistics.mean(minutes), "min", "< 30 min", f"mean over {len(minutes)} incident(s)")


def drift_reaction_time(entries: list[dict[str, Any]]) -> Kpi:
    hours = [m / 60 for m in paired_minutes(entries, AuditAction.DRIFT_ALERT, AuditAction.RETRAIN_STARTED, "pipeline")]
    if not hours:
        return Kpi("drift reaction time", None, "h", "< 24 h", "no drift alerts recorded")
    return Kpi("drift reaction time", statistics.median(hours), "h", "< 24 h", f"median over {len(hours)} alert(s)")


def reproducibility(versions: list[dict[str, Any]]) -> Kpi:
    """Of the versions built from the same inputs as an earlier one, the share that got its metrics."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for version in versions:
        if version["inputs"] is not None:
            groups[version["inputs"]].append(version["metrics"])
    repeats = [(group[0], later) for group in groups.values() for later in group[1:]]
    if not repeats:
        return Kpi("reproducibility", None, "%", "100%", "no version was rebuilt from identical inputs yet")
    same = sum(1 for first, later in repeats if deterministic(first) == deterministic(later))
    return Kpi("reproducibility", 100 * same / len(repeats), "%", "100%", f"{same} of {len(repeats)} rebuild(s) reproduced")


def deterministic(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if not k.endswith("_latency_ms")}


def fairness_regression(released: list[dict[str, Any]], metrics_of: dict[tuple[str, str], dict[str, float]]) -> Kpi:
    recorded = [metrics_of.get((e["outputs"]["model"], str(e["outputs"]["version"])), {}).get("parity_diff") for e in released]
    parity = [p for p in recorded if p is not None]
    if len(parity) < 2:
        return Kpi("fairness regression", None, "", "<= 0.02", "needs two releases with a parity metric")
    return Kpi("fairness regression", parity[-1] - parity[-2], "", "<= 0.02", "parity diff, champion minus previous champion")


def cost_per_1000_predictions(specs: SpecSet) -> Kpi:
    """What the endpoints' instances cost over the logged span, per 1000 predictions answered in it.

    Every declared deployment holds its instances whether or not it gets traffic (an idle
    challenger costs too). Predictions are the logged live rows, scaled up by the sampling rate.
    """
    from specops.serving.inference_log import read_log
    from specops.spec.endpoints import Endpoint

    name, target = "cost per 1000 predictions", "trending down"
    prices = specs.project.spec.instance_prices
    endpoints = specs.of_kind(Endpoint)
    if not endpoints:
        return Kpi(name, None, "", target, "no Endpoint declared")
    unpriced = sorted({d.instance_type for e in endpoints for d in e.spec.deployments} - set(prices))
    if unpriced:
        return Kpi(name, None, "", target, f"no price for {', '.join(unpriced)} (Project spec.instance_prices)")
    cost, predictions = 0.0, 0.0
    for endpoint in endpoints:
        records = [r for r in read_log(specs.paths.endpoint(endpoint.name)) if not r.get("shadow")]
        if len(records) < 2:
            continue
        hours = (records[-1]["time"] - records[0]["time"]) / 3600
        cost += hours * sum(prices[d.instance_type] * d.instance_count for d in endpoint.spec.deployments)
        rates = {d.name: d.data_collector.sampling_rate if d.data_collector.enabled else 0 for d in endpoint.spec.deployments}
        predictions += sum(1 / rates[r["deployment"]] for r in records if rates.get(r["deployment"]))
    if not predictions:
        return Kpi(name, None, "", target, "no logged predictions yet")
    return Kpi(name, 1000 * cost / predictions, "", target,
               f"{cost:.4g} for {predictions:,.0f} predictions at the declared instance prices")


def registry_versions(specs: SpecSet) -> list[dict[str, Any]]:
    """Every registered version of the specs' models, with its metrics and a fingerprint of its inputs."""
    from mlflow.exceptions import MlflowException

    from specops.registry import connect

    client = connect(specs)
    found = []
    for name in sorted({p.spec.model_name for p in specs.of_kind(Pipeline)}):
        try:
            versions = client.search_model_versions(f"name='{name}'")
        except MlflowException:
            continue
        for v in versions:
            if v.run_id is None:  # registered outside a run: no metrics or inputs to compare
                continue
            run = client.get_run(v.run_id).data
            found.append({"model": name, "version": str(v.version), "metrics": run.metrics,
                          "inputs": inputs_fingerprint(v.tags, run.params)})
    return found


def inputs_fingerprint(tags: dict[str, str], params: dict[str, str]) -> str | None:
    """What a version was built from (data, production rows, code, lock, feature set, parameters); None when its
    lineage is incomplete, so it is never compared."""
    inputs = [tags.get(tag) for tag in INPUT_TAGS]
    if not all(inputs):
        return None
    return repr([inputs, tags.get(PRODUCTION_ROWS_TAG, ""), sorted(params.items())])


def compute(specs: SpecSet, now: datetime | None = None) -> list[Kpi]:
    now = now or datetime.now(UTC)
    entries = sorted(AuditLog(specs.root, storage=open_storage(specs)).entries(), key=when)
    released = releases(entries)
    versions = registry_versions(specs)
    metrics_of = {(v["model"], v["version"]): v["metrics"] for v in versions}
    return [
        lead_time(specs.root, released),
        deployment_frequency(entries, released, now),
        change_failure_rate(entries, released),
        mttr(entries),
        drift_reaction_time(entries),
        reproducibility(versions),
        fairness_regression(released, metrics_of),
        cost_per_1000_predictions(specs),
    ]
