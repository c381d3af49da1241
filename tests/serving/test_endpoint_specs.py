"""Endpoint and BatchEndpoint specs: valid examples load, every mistake is named with its position."""
from __future__ import annotations

from pathlib import Path

import pytest

from specops.errors import SpecErrors
from specops.spec import load_specs
from specops.core.durations import seconds as duration_seconds
from specops.spec.endpoints import BlueGreenRollout, CanaryRollout, Endpoint, ModelRef
from tests.conftest import copy_specs

REPO = Path(__file__).resolve().parents[2]

CANARY = """apiVersion: specops/v1
kind: Endpoint
metadata: {name: credit-scoring}
spec:
  auth_mode: key
  deployments:
    - name: blue
      model: credit-risk@champion
      instance_type: Standard_DS3_v2
      instance_count: 2
      environment_variables: {LOG_LEVEL: info}
      request_settings: {request_timeout_ms: 3000, max_concurrent_requests_per_instance: 8}
      liveness_probe: {period: 5}
      readiness_probe: {initial_delay: 2}
    - name: green
      model: credit-risk@challenger
    - name: shadow
      model: credit-risk@3
  traffic: {blue: 90, green: 10}
  mirror_traffic: {shadow: 20}
  rollout:
    strategy: canary
    min_samples: 200
    steps:
      - weight: 10
      - analysis: promotion
      - pause: {duration: 5m}
      - weight: 50
      - pause: {}
    rollback: {latency_slo_ms: 350}
"""

BATCH = """apiVersion: specops/v1
kind: BatchEndpoint
metadata: {name: nightly}
spec:
  default_deployment: main
  dataset: credit-applications
  deployments:
    - {name: main, model: credit-risk@champion, mini_batch_size: 500, max_concurrency_per_instance: 2}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    # The example's own Endpoint and Monitor left out: these tests write theirs.
    copy_specs(tmp_path / "specs")
    return tmp_path


def write(project: Path, text: str, name: str = "endpoint.yaml") -> Path:
    path = project / "specs" / name
    path.write_text(text)
    return path


def errors_of(project: Path) -> list[str]:
    with pytest.raises(SpecErrors) as info:
        load_specs(project)
    return [str(e) for e in info.value.errors]


def test_canary_and_batch_examples_load(project: Path):
    write(project, CANARY)
    write(project, BATCH, "batch.yaml")
    specs = load_specs(project)
    endpoint = specs.get(Endpoint, "credit-scoring")
    assert isinstance(endpoint.spec.rollout, CanaryRollout)
    assert endpoint.spec.deployments[0].request_settings.max_concurrent_requests_per_instance == 8
    assert specs.index["BatchEndpoint/nightly"].spec.deployments[0].mini_batch_size == 500


def test_blue_green_ab_and_bandit_strategies_parse(project: Path):
    rollout = "  rollout:\n    strategy: canary\n"
    blue_green = CANARY.split(rollout)[0] + ("  rollout:\n    strategy: blue-green\n    pre_promotion_analysis: promotion\n"
                                              "    auto_promotion_enabled: true\n")
    write(project, blue_green)
    assert isinstance(load_specs(project).get(Endpoint, "credit-scoring").spec.rollout, BlueGreenRollout)
    for strategy in ("strategy: ab\n    metrics: [accuracy]\n", "strategy: bandit\n    reward: {metric: accuracy}\n    floor: 10\n"):
        write(project, CANARY.split(rollout)[0] + "  rollout:\n    " + strategy)
        assert load_specs(project).get(Endpoint, "credit-scoring").spec.rollout.strategy in ("ab", "bandit")


def test_traffic_must_sum_to_100_and_name_deployments(project: Path):
    write(project, CANARY.replace("traffic: {blue: 90, green: 10}", "traffic: {blue: 80, purple: 10}"))
    errors = errors_of(project)
    assert "specs/endpoint.yaml:19:3: spec.traffic: traffic weights sum to 90, not 100" in errors
    assert "specs/endpoint.yaml:19:23: spec.traffic.purple: no deployment named 'purple' (deployments: blue, green, shadow)" in errors


def test_mirror_names_an_existing_deployment_without_live_traffic_at_most_50_percent(project: Path):
    write(project, CANARY.replace("mirror_traffic: {shadow: 20}", "mirror_traffic: {green: 60}"))
    errors = errors_of(project)
    assert any("spec.mirror_traffic.green: deployment 'green' takes live traffic" in e for e in errors)
    assert any("spec.mirror_traffic.green: mirror traffic is at most 50% (got 60%)" in e for e in errors)
    write(project, CANARY.replace("mirror_traffic: {shadow: 20}", "mirror_traffic: {ghost: 10}"))
    assert any("spec.mirror_traffic.ghost: no deployment named 'ghost'" in e for e in errors_of(project))


def test_model_must_be_registered_by_a_pipeline_and_well_formed(project: Path):
    write(project, CANARY.replace("model: credit-risk@challenger", "model: fraud@champion"))
    assert errors_of(project) == [
        "specs/endpoint.yaml:16:7: spec.deployments[1].model: no Pipeline registers model 'fraud' (registered: credit-risk)"]
    write(project, CANARY.replace("credit-risk@3", "credit-risk"))
    [error] = errors_of(project)
    assert error.startswith("specs/endpoint.yaml:18:14: spec.deployments[2].model: "
                            "model reference 'credit-risk' must be name@version or name@alias")


def test_analysis_gate_must_exist_and_steps_are_single_actions(project: Path):
    write(project, CANARY.replace("- analysis: promotion", "- analysis: strict"))
    assert errors_of(project) == ["specs/endpoint.yaml:26:9: spec.rollout.steps[1].analysis: no Gate named 'strict' (known: promotion)"]
    write(project, CANARY.replace("- weight: 50", "- {weight: 50, analysis: promotion}"))
    [error] = errors_of(project)
    assert error.endswith("steps[3]: a canary step is exactly one of weight, pause, analysis or load_test")


def test_duplicate_deployments_unknown_fields_and_bad_durations(project: Path):
    text = CANARY.replace("    - name: green\n", "    - name: blue\n").replace("{duration: 5m}", "{duration: soon}")
    write(project, text.replace("auth_mode: key", "auth_mode: key\n  colour: red"))
    errors = errors_of(project)
    assert any("spec.colour: unknown field" in e for e in errors)
    assert any("invalid duration 'soon': expected a number with a unit" in e for e in errors)


def test_batch_endpoint_default_deployment_and_dataset_must_exist(project: Path):
    write(project, BATCH.replace("default_deployment: main", "default_deployment: other")
                        .replace("dataset: credit-applications", "dataset: loans"), "batch.yaml")
    errors = errors_of(project)
    assert any("spec.default_deployment: no deployment named 'other' (deployments: main)" in e for e in errors)
    assert any("spec.dataset: no Dataset named 'loans'" in e for e in errors)


def test_model_refs_and_durations_parse():
    assert ModelRef.parse("credit-risk@3") == ModelRef("credit-risk", "3", None)
    assert ModelRef.parse("credit-risk@champion") == ModelRef("credit-risk", None, "champion")
    assert duration_seconds("5m") == 300 and duration_seconds("250ms") == 0.25
