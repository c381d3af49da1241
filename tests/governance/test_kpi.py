"""KPIs from audit entries and registry versions: each computed on known inputs."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from specops.governance.kpi import (
    change_failure_rate, deployment_frequency, drift_reaction_time, fairness_regression, inputs_fingerprint, mttr, releases,
    reproducibility,
)
from rich.console import Console

from specops.cli.options import table
from specops.governance.scoreboard import COLUMNS, Row, cells, role, to_markdown

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def entry(hours: float, action: str = "update", **fields) -> dict:
    return {"time": (T0 + timedelta(hours=hours)).isoformat(), "action": action, **fields}


def release(hours: float, version: int) -> dict:
    return entry(hours, outputs={"model": "m", "version": version, "aliases": ["challenger", "champion"]})


def test_releases_are_the_entries_that_made_a_champion():
    entries = [entry(0), release(1, 1), entry(2, outputs={"model": "m", "version": 2, "aliases": ["challenger"]})]
    assert releases(entries) == [entries[1]]


def test_deployment_frequency_and_change_failure_rate():
    entries = [entry(0), release(24, 1), release(48, 2), entry(50, "rollback"), release(72, 3), release(96, 4)]
    released = releases(entries)
    frequency = deployment_frequency(entries, released, now=T0 + timedelta(days=14))
    assert frequency.value == 4 / 14 * 7
    assert change_failure_rate(entries, released).value == 25.0
    young = deployment_frequency(entries[:2], releases(entries[:2]), now=T0 + timedelta(days=1))
    assert young.value == 1.0  # one release, counted over at least a week


def test_mttr_pairs_incidents_with_their_recovery():
    entries = [entry(0, "incident", incident="a"), entry(0.5, "incident", incident="b"),
               entry(0.25, "recovered", incident="a"), entry(1.5, "recovered", incident="b")]
    entries.sort(key=lambda e: e["time"])
    assert mttr(entries).value == (15 + 60) / 2
    assert mttr([]).value is None and "no incidents" in mttr([]).detail


def test_drift_reaction_time_is_alert_to_retrain_start():
    entries = [entry(0, "drift_alert", pipeline="p"), entry(3, "retrain_started", pipeline="p"),
               entry(10, "drift_alert", pipeline="p"), entry(11, "retrain_started", pipeline="p")]
    assert drift_reaction_time(entries).value == 2.0


def test_reproducibility_compares_versions_built_from_identical_inputs():
    same = [{"inputs": "A", "metrics": {"accuracy": 0.8, "p95_latency_ms": 10.0}},
            {"inputs": "A", "metrics": {"accuracy": 0.8, "p95_latency_ms": 12.0}},
            {"inputs": "A", "metrics": {"accuracy": 0.79, "p95_latency_ms": 10.0}},
            {"inputs": "B", "metrics": {"accuracy": 0.9}},
            {"inputs": None, "metrics": {"accuracy": 0.9}}]
    kpi = reproducibility(same)
    assert kpi.value == 50.0 and kpi.detail == "1 of 2 rebuild(s) reproduced"
    assert reproducibility(same[3:]).value is None


def test_fairness_regression_is_champion_minus_previous():
    released = [release(1, 1), release(2, 2)]
    metrics = {("m", "1"): {"parity_diff": 0.03}, ("m", "2"): {"parity_diff": 0.06}}
    assert round(fairness_regression(released, metrics).value, 6) == 0.03


def test_scoreboard_roles_and_formats():
    aliases = {"champion": "3", "challenger": "4", "canary": "4"}
    assert [role(v, aliases) for v in ("1", "3", "4")] == ["retired", "champion", "canary"]
    rows = [Row("m", 4, "binary", "roc_auc", 0.88, 0.05, None, 315.0, "canary"),
            Row("m", 3, "regression", "rmse", 12.5, None, 0.08, 310.0, "champion")]
    terminal = Console(width=200, record=True)
    terminal.print(table(COLUMNS, map(cells, rows)))
    assert terminal.export_text().splitlines()[1].split() == ["m", "4", "binary", "roc_auc", "0.880", "0.050", "—", "315.000", "canary"]
    assert to_markdown(rows).splitlines()[3] == "| m | 3 | regression | rmse | 12.500 | — | 0.080 | 310.000 | champion |"


def test_cost_per_1000_predictions_prices_every_deployment_over_the_logged_span(tmp_path):
    from specops.governance.kpi import cost_per_1000_predictions
    from specops.core.paths import ProjectPaths
    from specops.serving.inference_log import InferenceLog
    from specops.spec import load_specs

    specs_dir = tmp_path / "specs"
    specs_dir.mkdir()
    (tmp_path / "d.csv").write_text("x,y\n1.0,0\n")
    (specs_dir / "all.yaml").write_text("""
apiVersion: specops/v1
kind: Project
metadata: {name: p}
spec: {instance_prices: {Small: 2.0, Big: 6.0}}
---
apiVersion: specops/v1
kind: Dataset
metadata: {name: d}
spec: {path: d.csv, target: y, columns: {x: {type: float}, y: {type: int}}}
---
apiVersion: specops/v1
kind: FeatureSet
metadata: {name: f}
spec: {dataset: d, version: 1, owner: o, refresh: "0 0 * * *", features: [{name: x}]}
---
apiVersion: specops/v1
kind: Gate
metadata: {name: g}
spec: {checks: [{metric: accuracy, min: 0}]}
---
apiVersion: specops/v1
kind: Pipeline
metadata: {name: t}
spec: {dataset: d, feature_set: f, gate: g, model_name: m}
---
apiVersion: specops/v1
kind: Endpoint
metadata: {name: e}
spec:
  deployments:
    - {name: blue, model: m@1, instance_type: Small, instance_count: 2}
    - {name: green, model: m@2, instance_type: Big, data_collector: {sampling_rate: 0.5}}
  traffic: {blue: 100}
""")
    specs = load_specs(tmp_path)
    assert cost_per_1000_predictions(specs).detail == "no logged predictions yet"
    log = InferenceLog(ProjectPaths(tmp_path).endpoint("e"), 0)
    # Two hours of logs: 3,000 rows on blue (all logged), 500 logged of 1,000 on green (half sampled), a mirror row.
    records = [{"time": 1000.0 + 7200 * i / 2999, "request_id": str(i), "deployment": "blue"} for i in range(3000)]
    records += [{"time": 2000.0, "request_id": f"g{i}", "deployment": "green"} for i in range(500)]
    records += [{"time": 3000.0, "request_id": "s", "deployment": "green", "shadow": True}]
    log.write_requests(records)
    kpi = cost_per_1000_predictions(specs)
    # (2 x 2.0 + 1 x 6.0) per hour for 2 hours = 20.0, for 4,000 predictions.
    assert abs(kpi.value - 1000 * 20.0 / 4000) < 1e-9, kpi.detail
    (specs_dir / "all.yaml").write_text((specs_dir / "all.yaml").read_text().replace("Big: 6.0", "Other: 1.0"))
    assert cost_per_1000_predictions(load_specs(tmp_path)).detail == "no price for Big (Project spec.instance_prices)"


def test_versions_trained_on_other_production_rows_are_not_rebuilds_of_each_other():
    """The data file's hash misses the labelled production rows a retraining joined: their hash counts too."""
    lineage = {"lineage.data_md5": "d", "lineage.code_sha256": "c", "lineage.requirements_sha256": "r",
               "lineage.feature_set": "f:1"}
    params = {"max_depth": "5"}
    plain = inputs_fingerprint(lineage, params)
    assert plain == inputs_fingerprint(dict(lineage), dict(params))  # a rebuild
    with_rows = inputs_fingerprint({**lineage, "lineage.production_rows_md5": "p1"}, params)
    assert len({plain, with_rows, inputs_fingerprint({**lineage, "lineage.production_rows_md5": "p2"}, params)}) == 3
    assert inputs_fingerprint({**lineage, "lineage.code_sha256": ""}, params) is None
