"""The quality scoreboard: every registered version with its key numbers and its role.

The numbers fit each model's task: its pipeline's selection metric (roc_auc, f1_macro, rmse...) and the
task's worst-group fairness gap (parity_diff, error_rate_gap, mae_gap).
"""
from __future__ import annotations

from dataclasses import dataclass

from specops.core.tables import markdown_table
from specops.registry import CHALLENGER, CHAMPION, connect, run_metrics
from specops.spec import Pipeline, SpecSet
from specops.spec.kinds import TASK_FAIRNESS_METRICS

# Aliases that name a role, strongest first; a version with none of them is retired.
ROLES = ((CHAMPION, "champion"), ("canary", "canary"), ("shadow", "shadow"), (CHALLENGER, "candidate"))
COLUMNS = ("model", "version", "task", "metric", "score", "fairness_gap", "avg_psi", "p95_latency_ms", "status")


@dataclass(frozen=True)
class Row:
    model: str
    version: int
    task: str
    metric: str  # the pipeline's selection metric, what `score` is
    score: float | None
    fairness_gap: float | None  # the task's first fairness metric: parity_diff, error_rate_gap or mae_gap
    avg_psi: float | None  # written by monitors; empty until one has run
    p95_latency_ms: float | None
    status: str


def scoreboard(specs: SpecSet) -> list[Row]:
    from mlflow.exceptions import MlflowException

    client = connect(specs)
    rows = []
    for pipeline in sorted(specs.of_kind(Pipeline), key=lambda p: p.spec.model_name):
        name, task, metric = pipeline.spec.model_name, pipeline.spec.task, pipeline.spec.selection.metric
        fairness = TASK_FAIRNESS_METRICS[task][0]
        try:
            aliases = client.get_registered_model(name).aliases
        except MlflowException:  # not registered yet
            continue
        for version in client.search_model_versions(f"name='{name}'"):
            metrics = run_metrics(client, version)
            rows.append(Row(name, int(version.version), task, metric, metrics.get(metric), metrics.get(fairness),
                            metrics.get("avg_psi"), metrics.get("p95_latency_ms"), role(version.version, aliases)))
    return sorted(rows, key=lambda r: (r.model, -r.version))


def role(version: str, aliases: dict[str, str]) -> str:
    held = {alias for alias, v in aliases.items() if str(v) == str(version)}
    return next((status for alias, status in ROLES if alias in held), "retired")


def _cell(value) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def cells(row: Row) -> list[str]:
    return [_cell(getattr(row, column)) for column in COLUMNS]


def to_markdown(rows: list[Row]) -> str:
    return markdown_table(COLUMNS, map(cells, rows))
